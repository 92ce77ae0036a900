//! `--server` gives what a local command gives: the same input options
//! (delimiter, encoding, output encoding, layout, zip members, column rules,
//! categories) through `booster serve`, and byte-identical files.

mod common;

use std::io::{BufRead, Read};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// exec's command for the categories case; the server must allow it.
const SORT_CMD: &str = r#"awk -F, '{ if ($2 > 5) print "big\t" $0; else print "main\t" $0 }'"#;

/// A `booster serve` that allows `SORT_CMD`, on its own data directory.
struct Server {
    _serving: booster_tests::cli::Serving,
    url: String,
    _sandbox: Sandbox,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Server {
        let sandbox = Sandbox::new();
        let mut args = vec!["--exec-allow", SORT_CMD];
        args.extend_from_slice(extra);
        let serving = serve(&sandbox, &args);
        Server {
            url: serving.url.clone(),
            _serving: serving,
            _sandbox: sandbox,
        }
    }
}

/// Every file under `dir`, by name, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

/// `run ARGS --output-dir` locally (into `local/`) and through `server`
/// (into `remote/`): the same files, byte for byte, and the same counts.
fn same_locally_and_remotely(server: &Server, input: (&str, &[u8]), args: &[&str]) -> Sandbox {
    let sb = Sandbox::new();
    let path = sb.write(input.0, input.1);
    let mut outputs = Vec::new();
    let mut jobs = Vec::new();
    for remote in [false, true] {
        let dir = sb.path(if remote { "remote" } else { "local" });
        let mut all: Vec<&str> = Vec::new();
        if remote {
            all.extend(["--server", &server.url]);
        }
        all.extend([
            "--json",
            "run",
            "--input",
            s(&path),
            "--output-dir",
            s(&dir),
        ]);
        all.extend_from_slice(args);
        let out = sb.cmd(&all).output().unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{all:?}: {}",
            stderr(&out)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let counts = |j: &serde_json::Value| {
            [
                "records_in",
                "records_processed",
                "records_failed",
                "records_out",
                "records_out_by_category",
                "output_records",
                "error_records",
            ]
            .map(|k| j[k].clone())
        };
        jobs.push(match json.as_array() {
            Some(many) => many.iter().map(counts).collect::<Vec<_>>(),
            None => vec![counts(&json)],
        });
        outputs.push(files(&dir));
    }
    assert!(!outputs[0].is_empty());
    assert_eq!(
        outputs[0], outputs[1],
        "{args:?}: the same files, byte for byte"
    );
    assert_eq!(jobs[0], jobs[1], "{args:?}: the same counts");
    sb
}

#[test]
fn run_through_serve_writes_the_same_files_as_a_local_run_for_every_input_option() {
    let server = Server::start();

    // latin-1 PSV with CRLF and a quoted newline, renamed and projected
    // columns, written back in latin-1.
    let mut text = String::from("id|name|city\r\n");
    for i in 1..=20 {
        text.push_str(&format!("{i}|\"Jos\u{e9} {i}\nJr\"|M\u{fc}nchen\r\n"));
    }
    // Every character is below U+0100: latin-1 is one byte each.
    let psv: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
    same_locally_and_remotely(
        &server,
        ("people.psv", &psv),
        &[
            "--kind",
            "copy",
            "--slice-size",
            "6",
            "--encoding",
            "latin1",
            "--output-encoding",
            "input",
            "--columns",
            "key,who,town",
            "--output-columns",
            "town,key",
        ],
    );

    // A tab-delimited .csv by --delimiter, a bad row collected as an error.
    let tsv = b"a\tb\n1\t2\n3\n4\t5\n";
    same_locally_and_remotely(
        &server,
        ("tabs.csv", tsv),
        &["--kind", "copy", "--delimiter", "\\t", "--collect-errors"],
    );

    // Fixed width by a layout file, a short line an error.
    let sb = Sandbox::new();
    let layout = sb.write(
        "layout.json",
        br#"{"fields": [{"name": "id", "start": 1, "width": 3}, {"name": "n", "start": 4, "width": 4}]}"#,
    );
    same_locally_and_remotely(
        &server,
        ("bank.txt", b"001abcd\n002ef\n003ghij\n"),
        &[
            "--kind",
            "copy",
            "--format",
            "fixed",
            "--layout",
            s(&layout),
            "--collect-errors",
        ],
    );

    // A zip of three members: a job per member, or one member.
    let zip = zip_of(&[
        ("a.txt", b"x\ny\n", true),
        ("b.jsonl", b"{\"n\":1}\n{\"n\":2}\n", false),
        ("c.csv", b"id,v\r\n1,\"p\r\nq\"\r\n", true),
    ]);
    same_locally_and_remotely(&server, ("in.zip", &zip), &["--kind", "copy"]);
    same_locally_and_remotely(
        &server,
        ("in.zip", &zip),
        &["--kind", "copy", "--member", "c.csv"],
    );

    // Categories from exec, each file with the CSV header.
    let csv = b"id,score\n1,3\n2,9\n3,7\n4,1\n";
    let local = same_locally_and_remotely(
        &server,
        ("scores.csv", csv),
        &["--kind", "exec", "--cmd", SORT_CMD, "--categories", "big"],
    );
    assert_eq!(
        std::fs::read_to_string(local.path("local").join("scores.big.csv")).unwrap(),
        "id,score\n2,9\n3,7\n"
    );
}

#[test]
fn ctrl_c_stops_a_remote_run_waiting_and_the_job_goes_on_on_the_server() {
    // A node that runs no work itself: the job waits for ever.
    let server = Server::start_with(&["--workers", "0"]);
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"a\nb\n");
    let mut run = sb
        .cmd(&[
            "--server",
            &server.url,
            "run",
            "--kind",
            "copy",
            "--input",
            s(&input),
            "--output",
            s(&sb.path("out.txt")),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(run.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("job 1: uploaded 2 records"), "{first}");
    booster_tests::cli::interrupt(&run);
    let status = run.wait().unwrap();
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("job 1 goes on on the server"), "{err}");
    assert!(
        !sb.path("out.txt").exists(),
        "no output for a job that did not finish"
    );
}

/// `submit --args`, `job show` and `cron ...` through `booster serve` print
/// what they print locally (issue 14).
#[test]
fn simple_jobs_and_cron_entries_work_through_serve() {
    let server = Server::start();
    let client = Sandbox::new();
    let url = server.url.as_str();
    let submitted = client.json(&[
        "--server",
        url,
        "submit",
        "--kind",
        "noop",
        "--args",
        r#"{"n": 7}"#,
    ]);
    let id = job_id(&submitted).to_string();
    let mut shown = serde_json::Value::Null;
    for _ in 0..500 {
        shown = client.json(&["--server", url, "job", "show", &id]);
        if shown["state"] == "completed" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(shown["result"], serde_json::json!({"n": 7}), "{shown}");

    let cron = [
        "--server",
        url,
        "submit",
        "--kind",
        "noop",
        "--args",
        "{}",
        "--cron",
        "*/10 * * * *",
    ];
    let text = stdout(&client.ok(&cron));
    assert!(
        text.starts_with("cron 1  '*/10 * * * *' (UTC)  noop  active"),
        "{text}"
    );
    let text = stdout(&client.ok(&["--server", url, "cron", "pause", "1"]));
    assert!(text.contains("noop  paused"), "{text}");
    assert_eq!(
        client.json(&["--server", url, "cron", "list"])[0]["paused"],
        true
    );
}

/// `--server` round trips are as exact as local ones: the items upload
/// carries each record's separators, and the download brings them back.
#[test]
fn files_come_back_byte_for_byte_through_serve() {
    let server = Server::start();
    for (name, content) in separator_files() {
        exact_round_trip_with(&["--server", &server.url], name, &content);
    }
}
