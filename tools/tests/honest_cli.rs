//! Exit codes and files that tell the truth: a failed job never looks
//! successful, a bad command line exits 2, outputs that are not regular
//! files are written in place, and a closed stdout ends quietly.

mod common;

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// A shell command for `exec` that fails the slice holding `boom` and
/// copies every other slice.
const FAILS_ON_BOOM: &str = "c=$(cat); case \"$c\" in *boom*) exit 1;; esac; printf '%s\\n' \"$c\"";

/// Lines a, b | boom, c | d, e in slices of 2: the middle slice fails.
fn input_with_a_failing_slice(sb: &Sandbox) -> std::path::PathBuf {
    sb.write("in.txt", b"a\nb\nboom\nc\nd\ne\n")
}

#[test]
fn bad_command_lines_exit_2() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"x\n");
    let i = s(&input);
    let cases: [&[&str]; 7] = [
        &["run", "--kind", "exec", "--input", i, "--output", "-"],
        &["run", "--kind", "copy", "--cmd", "cat", "--input", i],
        &["job", "priority", "1", "0"],
        &["run", "--kind", "copy", "--workers", "0", "--input", i],
        &[
            "submit",
            "--kind",
            "copy",
            "--max-workers",
            "0",
            "--input",
            i,
        ],
        &["--json", "run", "--kind", "copy", "--input", i],
        &["download", "1"],
    ];
    for args in cases {
        let out = sb.expect(2, args);
        assert!(!stderr(&out).is_empty(), "{args:?} says why");
    }
    assert!(!sb.data().exists(), "nothing was stored");
}

#[test]
fn an_unknown_kind_is_refused_at_submit_with_the_known_kinds() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"x\n");
    for verb in ["run", "submit"] {
        let out = sb.expect(2, &[verb, "--kind", "frobnicate", "--input", s(&input)]);
        let err = stderr(&out);
        assert!(
            err.contains("frobnicate") && err.contains("copy, exec, validate-customers"),
            "{err}"
        );
    }
    assert!(!sb.data().exists(), "no job was created");
}

#[test]
fn work_exits_3_when_a_job_it_processed_failed() {
    let sb = Sandbox::new();
    let input = input_with_a_failing_slice(&sb);
    sb.ok(&[
        "submit",
        "--kind",
        "exec",
        "--cmd",
        FAILS_ON_BOOM,
        "--slice-size",
        "2",
        "--input",
        s(&input),
    ]);
    let out = sb.expect(3, &["work", "--until-idle"]);
    assert!(stdout(&out).contains("failed"), "{}", stdout(&out));
}

#[test]
fn quiet_run_still_prints_the_counts_when_records_failed() {
    let sb = Sandbox::new();
    let input = input_with_a_failing_slice(&sb);
    let output = sb.path("out.txt");
    let out = sb.expect(
        3,
        &[
            "-q",
            "run",
            "--kind",
            "exec",
            "--cmd",
            FAILS_ON_BOOM,
            "--slice-size",
            "2",
            "--input",
            s(&input),
            "--output",
            s(&output),
        ],
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("6 records in") && text.contains("2 failed"),
        "{text}"
    );
}

#[test]
fn download_of_a_failed_job_exits_3_and_names_what_is_missing() {
    let sb = Sandbox::new();
    let input = input_with_a_failing_slice(&sb);
    let output = sb.path("out.txt");
    let ran = sb.expect(
        3,
        &[
            "--json",
            "run",
            "--kind",
            "exec",
            "--cmd",
            FAILS_ON_BOOM,
            "--slice-size",
            "2",
            "--input",
            s(&input),
            "--output",
            s(&output),
        ],
    );
    let ran: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    let id = job_id(&ran).to_string();
    let again = sb.path("again.txt");
    let errors = sb.path("errors.jsonl");
    let out = sb.expect(
        3,
        &[
            "download",
            &id,
            "--output",
            s(&again),
            "--errors",
            s(&errors),
        ],
    );
    // Without --collect-errors the failed slice's records are in the errors
    // file, each with its line: 4 out + 2 errors = 6 in.
    let entries: Vec<serde_json::Value> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<_> = entries
        .iter()
        .map(|e| (e["line"].clone(), e["record"].clone()))
        .collect();
    assert_eq!(
        lines,
        [(3.into(), "boom".into()), (4.into(), "c".into())],
        "{entries:?}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("1 slice") && err.contains("2 records") && err.contains("missing"),
        "{err}"
    );
    assert_eq!(std::fs::read(&again).unwrap(), b"a\nb\nd\ne\n");
}

/// A job whose upload stopped after 3 stored records of 1-record slices,
/// none of them processed (no worker ran): what `submit` leaves when it is
/// stopped mid-upload.
fn job_with_an_upload_that_stopped(sb: &Sandbox) -> u64 {
    use booster_runtime::{JobShape, JobSpec, Runtime, RuntimeOptions};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut opts = RuntimeOptions::new(sb.data());
        opts.start_workers = false;
        let runtime = Runtime::open(opts).await.unwrap();
        booster_tools::kinds::register_builtin(&runtime);
        let mut spec = JobSpec::sliced("copy");
        spec.shape = JobShape::Sliced {
            slice_size: Some(1),
            collect_errors: false,
        };
        let id = runtime.submit(spec).await.unwrap();
        let mut upload = runtime.upload(id).await.unwrap();
        for (i, record) in ["a", "b", "c", "d"].iter().enumerate() {
            upload
                .push_line(record.as_bytes().to_vec(), i as u64 + 1)
                .await
                .unwrap();
        }
        upload
            .fail("upload interrupted by Ctrl-C".into())
            .await
            .unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
        id
    })
}

#[test]
fn download_of_an_upload_that_stopped_says_how_much_of_it_is_in_the_output() {
    let sb = Sandbox::new();
    let id = job_with_an_upload_that_stopped(&sb).to_string();
    let job = sb.json(&["job", "show", &id]);
    assert_eq!(
        (&job["upload_complete"], &job["records_out"]),
        (&false.into(), &0.into()),
        "{job}"
    );
    let uploaded = job["records_in"].as_u64().unwrap();
    assert!(uploaded >= 3, "{job}");
    let out = sb.expect(3, &["download", &id, "--output", s(&sb.path("o.txt"))]);
    let err = stderr(&out);
    assert!(
        err.contains("its upload never completed")
            && err.contains(&format!("{uploaded} records were uploaded"))
            && err.contains("0 records are in the output"),
        "{err}"
    );
    assert_eq!(std::fs::read(sb.path("o.txt")).unwrap(), b"");
}

#[test]
fn a_failed_run_keeps_its_output_as_partial() {
    let sb = Sandbox::new();
    let input = input_with_a_failing_slice(&sb);
    let output = sb.path("out.txt");
    let out = sb.expect(
        3,
        &[
            "run",
            "--kind",
            "exec",
            "--cmd",
            FAILS_ON_BOOM,
            "--slice-size",
            "2",
            "--input",
            s(&input),
            "--output",
            s(&output),
        ],
    );
    assert!(!output.exists(), "no output under the final name");
    let partial = sb.path("out.txt.partial");
    assert_eq!(std::fs::read(&partial).unwrap(), b"a\nb\nd\ne\n");
    assert!(stderr(&out).contains("out.txt.partial"), "{}", stderr(&out));

    std::fs::remove_file(&partial).unwrap();
    sb.expect(
        3,
        &[
            "run",
            "--kind",
            "exec",
            "--cmd",
            FAILS_ON_BOOM,
            "--slice-size",
            "2",
            "--input",
            s(&input),
            "--output",
            s(&output),
            "--keep-partial",
        ],
    );
    assert_eq!(std::fs::read(&output).unwrap(), b"a\nb\nd\ne\n");
    assert!(!partial.exists());
}

#[test]
fn an_output_that_is_a_fifo_is_written_in_place() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"one\ntwo\n");
    let fifo = sb.path("out.fifo");
    let name = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    // A reader that is already open lets the writer open without blocking;
    // the two lines fit in the pipe's buffer.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    sb.ok(&[
        "run",
        "--kind",
        "copy",
        "--input",
        s(&input),
        "--output",
        s(&fifo),
    ]);
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO is still a FIFO"
    );
    let mut got = Vec::new();
    let _ = reader.read_to_end(&mut got);
    assert_eq!(got, b"one\ntwo\n");
    assert!(!sb.path("out.fifo.partial").exists());
}

#[test]
fn an_output_that_is_a_directory_is_refused_before_any_work() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"one\n");
    let dir = sb.path("outdir");
    std::fs::create_dir(&dir).unwrap();
    for flag in ["--output", "--errors"] {
        let out = sb.expect(
            1,
            &["run", "--kind", "copy", "--input", s(&input), flag, s(&dir)],
        );
        assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
    }
    assert!(!sb.data().exists(), "nothing was uploaded");
    assert!(!sb.path("outdir.partial").exists());
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"one\n");
    sb.ok(&["submit", "--kind", "copy", "--input", s(&input)]);
    for args in [&["jobs"][..], &["--json", "jobs"], &["job", "show", "1"]] {
        let mut child = sb
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_ne!(out.status.code(), Some(101), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn remote_job_watch_stops_on_the_first_ctrl_c() {
    use std::io::BufRead;
    let sb = Sandbox::new();
    let mut server = sb
        .cmd(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    let url = banner[banner.find("http://").unwrap()..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    // An upload from a pipe this test holds open: job 1 waits for it.
    let mut submit = sb
        .cmd(&["--server", &url, "submit", "--kind", "copy", "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut jobs = serde_json::Value::Null;
    for _ in 0..1000 {
        jobs = sb.json(&["--server", &url, "jobs"]);
        if jobs.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(jobs[0]["id"], 1, "{jobs}");
    let mut watch = sb
        .cmd(&["--server", &url, "job", "watch", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(watch.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("job 1"), "{first}");
    let status = interrupt_once(&mut watch);
    drop(submit.stdin.take());
    let _ = submit.wait();
    // SAFETY: kill(2) with a pid we spawned and have not waited for.
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    let _ = server.wait();
    assert_eq!(status.code(), Some(130));
}

#[test]
fn local_job_watch_stops_on_the_first_ctrl_c() {
    use std::io::BufRead;
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(10).as_bytes());
    // Submitted, and no worker runs here: job 1 stays queued.
    sb.ok(&["-q", "submit", "--kind", "copy", "--input", s(&input)]);
    let mut watch = sb
        .cmd(&["job", "watch", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(watch.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("job 1: queued"), "{first}");
    assert_eq!(interrupt_once(&mut watch).code(), Some(130));
}

/// Sends one SIGINT and waits for the process to end on its own (a second
/// Ctrl-C would end it anyway, so one that needs it has ignored the first).
/// The bound is generous: it catches a hang, it measures nothing.
fn interrupt_once(child: &mut std::process::Child) -> std::process::ExitStatus {
    booster_tests::cli::interrupt(child);
    for _ in 0..1500 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("the process ignored the first Ctrl-C");
}

#[test]
fn inspect_after_destroy_counts_the_destroyed_jobs_bytes_as_dead() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(5_000).as_bytes());
    sb.ok(&[
        "run",
        "--kind",
        "copy",
        "--input",
        s(&input),
        "--output",
        s(&sb.path("o.txt")),
    ]);
    let before = sb.json(&["inspect"]);
    sb.ok(&["job", "destroy", "1"]);
    let after = sb.json(&["inspect"]);
    let dead = |v: &serde_json::Value| v["dead_bytes"].as_u64().unwrap();
    let live = |v: &serde_json::Value| v["live_bytes"].as_u64().unwrap();
    // The job's input and output slices (5,000 records each, compressed)
    // are what compact will reclaim.
    assert!(
        dead(&after) > dead(&before) + 10_000,
        "before {before}\nafter {after}"
    );
    assert!(
        live(&after) < live(&before),
        "before {before}\nafter {after}"
    );
    // `compact` rewrites the segments at least half dead: the destroyed
    // job's slices fill theirs.
    sb.ok(&["compact"]);
    let compacted = sb.json(&["inspect"]);
    assert!(
        dead(&compacted) < dead(&after) - 10_000,
        "after {after}\ncompacted {compacted}"
    );
    // `compact --full` rewrites every live frame: no dead byte stays.
    sb.ok(&["compact", "--full"]);
    let full = sb.json(&["inspect"]);
    assert_eq!(dead(&full), 0, "{full}");
}

#[test]
fn exec_counts_the_records_its_command_wrote_as_records_out() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(560).as_bytes());
    for (cmd, written) in [("head -n 3", 18), ("sed p", 1120)] {
        let output = sb.path("out.txt");
        let out = sb.expect(
            0,
            &[
                "--json",
                "run",
                "--kind",
                "exec",
                "--cmd",
                cmd,
                "--slice-size",
                "100",
                "--input",
                s(&input),
                "--output",
                s(&output),
            ],
        );
        let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(job["records_out"], written, "{cmd}: {job}");
        assert_eq!(job["records_processed"], 560, "{cmd}: {job}");
        assert_eq!(job["records_failed"], 0, "{cmd}: {job}");
        let lines = std::fs::read_to_string(&output).unwrap().lines().count();
        assert_eq!(
            lines as u64, written,
            "{cmd}: the file holds what was counted"
        );
        let shown = stdout(&sb.ok(&["job", "show", &job_id(&job).to_string()]));
        assert!(
            shown.contains("560 processed") && shown.contains("differs"),
            "{cmd}: {shown}"
        );
    }
}

#[test]
fn exec_one_to_one_fails_a_slice_whose_output_count_differs() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(200).as_bytes());
    let out = sb.expect(
        3,
        &[
            "--json",
            "run",
            "--kind",
            "exec",
            "--cmd",
            "head -n 3",
            "--exec-one-to-one",
            "--slice-size",
            "100",
            "--input",
            s(&input),
            "--output",
            s(&sb.path("o.txt")),
        ],
    );
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["slices_failed"], 2, "{job}");
    let message = job["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("wrote 3 lines for 100 records"), "{job}");
    sb.ok(&[
        "run",
        "--kind",
        "exec",
        "--cmd",
        "cat",
        "--exec-one-to-one",
        "--input",
        s(&input),
        "--output",
        s(&sb.path("o2.txt")),
    ]);
    sb.expect(
        2,
        &[
            "run",
            "--kind",
            "copy",
            "--exec-one-to-one",
            "--input",
            s(&input),
        ],
    );
}

#[test]
fn jobs_lists_newest_first_with_limit_and_search() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"x\n");
    for name in ["alpha", "beta", "gamma"] {
        sb.ok(&[
            "submit",
            "--kind",
            "copy",
            "--input",
            s(&input),
            "--description",
            name,
        ]);
    }
    let ids =
        |v: serde_json::Value| -> Vec<u64> { v.as_array().unwrap().iter().map(job_id).collect() };
    assert_eq!(ids(sb.json(&["jobs"])), [3, 2, 1]);
    assert_eq!(ids(sb.json(&["jobs", "--limit", "2"])), [3, 2]);
    assert_eq!(ids(sb.json(&["jobs", "--search", "bet"])), [2]);
    let table = stdout(&sb.ok(&["jobs"]));
    let header = table.lines().next().unwrap();
    for column in ["CREATED", "DURATION", "RECORDS", "FAILED"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(table.lines().nth(1).unwrap().contains("gamma"), "{table}");
}

/// `jobs` shows one page; its last line names the command for the next
/// (older) one, `--before` asks for it, and `--all` lists every page.
#[test]
fn jobs_pages_with_before_and_names_the_command_for_the_older_page() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"x\n");
    for name in ["a", "b", "c", "d"] {
        let job = ["submit", "--kind", "copy", "--input", s(&input)];
        sb.ok(&[&job[..], &["--description", name]].concat());
    }
    let ids =
        |v: serde_json::Value| -> Vec<u64> { v.as_array().unwrap().iter().map(job_id).collect() };
    let page = stdout(&sb.ok(&["jobs", "--limit", "2", "--search", "a b"]));
    assert!(page.contains("no jobs"), "{page}");
    let page = stdout(&sb.ok(&["jobs", "--limit", "2"]));
    let last = page.lines().last().unwrap();
    assert_eq!(
        last, "2 of 4 jobs shown; older: booster jobs --limit 2 --before 3",
        "{page}"
    );
    assert_eq!(
        ids(sb.json(&["jobs", "--limit", "2", "--before", "3"])),
        [2, 1]
    );
    let older = stdout(&sb.ok(&["jobs", "--limit", "2", "--before", "3"]));
    assert!(
        !older.contains("older:"),
        "the oldest page ends it: {older}"
    );
    assert_eq!(ids(sb.json(&["jobs", "--all"])), [4, 3, 2, 1]);
    let out = sb.run(&["jobs", "--limit", "1001"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// A script reading `--json jobs` or `-q jobs` gets every job, as before
/// paging: only `--limit` or `--before` makes it one page, and then
/// stderr names the command for the older page (stdout stays the list).
#[test]
fn jobs_json_and_quiet_list_every_job_unless_a_page_is_asked_for() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"x\n");
    let mut batch = vec!["batch", "--kind", "copy", "--on-complete-kind", "noop"];
    for _ in 0..101 {
        batch.extend(["--input", s(&input)]);
    }
    sb.ok(&batch);
    let listed = sb.json(&["jobs"]);
    assert_eq!(listed.as_array().unwrap().len(), 102, "--json lists all");
    let quiet = stdout(&sb.ok(&["-q", "jobs"]));
    assert_eq!(quiet.lines().count(), 102, "-q lists all: {quiet}");
    assert_eq!(quiet.lines().last(), Some("1"), "{quiet}");

    let out = sb.ok(&["--json", "jobs", "--limit", "2"]);
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert!(
        stderr(&out)
            .contains("2 of 102 jobs shown; older: booster --json jobs --limit 2 --before 101"),
        "{}",
        stderr(&out)
    );
    let out = sb.ok(&["-q", "jobs", "--before", "3"]);
    assert_eq!(stdout(&out), "2\n1\n");
    assert!(
        !stderr(&out).contains("older"),
        "the last page: {}",
        stderr(&out)
    );
}

#[test]
fn a_store_locked_by_serve_names_the_server_url() {
    use std::io::BufRead;
    let sb = Sandbox::new();
    let mut server = sb
        .cmd(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    let url = banner[banner.find("http://").unwrap()..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let out = sb.run(&["jobs"]);
    // SAFETY: kill(2) with a pid we spawned and have not waited for.
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    let _ = server.wait();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("--server {url}")), "{err}");
    assert!(
        !sb.data().join("SERVE").exists(),
        "the note goes with the server"
    );
}

#[test]
fn job_show_names_the_input_format_and_command_and_escapes_records() {
    let sb = Sandbox::new();
    let input = sb.write(
        "people.csv",
        b"id,name,email\n1,\"two\nlines\",not-an-email\n",
    );
    sb.expect(
        3,
        &[
            "run",
            "--kind",
            "validate-customers",
            "--input",
            s(&input),
            "--output",
            s(&sb.path("o.csv")),
        ],
    );
    let shown = stdout(&sb.ok(&["job", "show", "1"]));
    assert!(shown.contains("input         people.csv"), "{shown}");
    assert!(shown.contains("format        csv"), "{shown}");
    assert!(shown.contains("1 slice:"), "{shown}");
    assert!(
        shown.contains("\"two\\nlines\""),
        "one line, escaped: {shown}"
    );
    let cmd = "tr a-z A-Z";
    sb.ok(&[
        "run",
        "--kind",
        "exec",
        "--cmd",
        cmd,
        "--input",
        s(&input),
        "--format",
        "lines",
        "--output",
        s(&sb.path("o.txt")),
    ]);
    let shown = stdout(&sb.ok(&["job", "show", "2"]));
    assert!(shown.contains("command       tr a-z A-Z"), "{shown}");
}
