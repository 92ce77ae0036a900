//! Simple jobs from the command line (`submit --kind K --args JSON`, `job
//! show` prints the result) and cron entries (`submit --cron`, `booster
//! cron list|pause|resume|remove`), on the built binary (issue 14).

mod common;

use common::*;

#[test]
fn submit_args_makes_a_simple_job_whose_result_job_show_prints() {
    let sb = Sandbox::new();
    let submitted = sb.json(&[
        "submit",
        "--kind",
        "noop",
        "--args",
        r#"{"day": "2026-11-29"}"#,
    ]);
    assert_eq!(submitted["state"], "queued", "{submitted}");
    assert_eq!(submitted["kind"], "noop");
    let id = job_id(&submitted).to_string();
    sb.ok(&["work", "--until-idle"]);
    let shown = sb.json(&["job", "show", &id]);
    assert_eq!(shown["state"], "completed", "{shown}");
    assert_eq!(shown["result"], serde_json::json!({"day": "2026-11-29"}));
    let text = stdout(&sb.ok(&["job", "show", &id]));
    assert!(
        text.contains(r#"result        {"day":"2026-11-29"}"#),
        "{text}"
    );
    // A simple job has no slices or records: no empty counts about them.
    for sliced_only in ["slices", "records ", "progress"] {
        assert!(
            !text.contains(sliced_only),
            "a simple job's `job show` prints a `{sliced_only}` line: {text}"
        );
    }
    assert!(text.contains("attempts      1"), "{text}");
    assert_eq!(shown["simple"], true, "{shown}");
}

#[test]
fn submit_args_refuses_bad_json_sliced_kinds_and_sliced_options() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"a\n");
    for (args, says) in [
        (
            vec!["--kind", "noop", "--args", "{day: 1}"],
            "not valid JSON",
        ),
        (
            vec!["--kind", "copy", "--args", "{}"],
            "copy is a sliced kind",
        ),
        (
            vec!["--kind", "noop", "--args", "{}", "--slice-size", "5"],
            "--slice-size is for sliced jobs",
        ),
        (
            vec![
                "--kind",
                "copy",
                "--input",
                s(&input),
                "--cron",
                "* * * * *",
            ],
            "--cron makes runs of a simple job",
        ),
    ] {
        let mut argv = vec!["submit"];
        argv.extend(args);
        let out = sb.expect(2, &argv);
        assert!(stderr(&out).contains(says), "{argv:?}: {}", stderr(&out));
    }
    let out = sb.expect(2, &["run", "--kind", "noop", "--args", "{}"]);
    assert!(
        stderr(&out).contains("booster submit --kind KIND --args JSON"),
        "{}",
        stderr(&out)
    );
    assert!(!sb.data().exists(), "nothing refused made a data directory");
}

#[test]
fn cron_entries_are_added_listed_paused_resumed_and_removed() {
    let sb = Sandbox::new();
    let added = sb.json(&[
        "submit",
        "--kind",
        "noop",
        "--args",
        "{}",
        "--cron",
        "0 3 * * *",
        "--tz",
        "Europe/Berlin",
        "--window",
        "02:00-06:00",
    ]);
    assert_eq!(added["id"], 1, "{added}");
    // --tz is the zone of the cron expression and of the runs' window.
    assert_eq!(added["window"]["tz"], "Europe/Berlin", "{added}");
    assert_eq!(added["expr"], "0 3 * * *");
    assert_eq!(added["tz"], "Europe/Berlin");
    assert!(added["next_tick_ms"].as_u64().is_some(), "{added}");
    let listed = sb.json(&["cron", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let paused = sb.json(&["cron", "pause", "1"]);
    assert_eq!(paused[0]["paused"], true, "{paused}");
    let text = stdout(&sb.ok(&["cron", "list"]));
    assert!(
        text.contains("'0 3 * * *' (Europe/Berlin)  noop  paused"),
        "{text}"
    );
    assert!(
        text.contains("runs only 02:00-06:00 Europe/Berlin"),
        "{text}"
    );
    let resumed = sb.json(&["cron", "resume", "1"]);
    assert_eq!(resumed[0]["paused"], false, "{resumed}");
    let out = sb.expect(1, &["cron", "pause", "7"]);
    assert!(stderr(&out).contains("no cron entry 7"), "{}", stderr(&out));
    let out = sb.expect(
        1,
        &[
            "submit", "--kind", "noop", "--args", "{}", "--cron", "0 3 * *",
        ],
    );
    assert!(stderr(&out).contains("give 5"), "{}", stderr(&out));
    assert_eq!(sb.json(&["cron", "remove", "1"]), serde_json::json!([]));
}

#[test]
fn submit_after_waits_for_the_jobs_it_names_and_refuses_unknown_ones() {
    let sb = Sandbox::new();
    let first = job_id(&sb.json(&["submit", "--kind", "noop", "--args", "1"])).to_string();
    let input = sb.write("in.txt", b"a\nb\n");
    let second = sb.json(&[
        "submit",
        "--kind",
        "copy",
        "--input",
        s(&input),
        "--after",
        &first,
        "--on-dependency-failure",
        "abort",
    ]);
    assert_eq!(second["state"], "waiting", "{second}");
    assert_eq!(second["after"][0].to_string(), first, "{second}");
    assert_eq!(second["on_dependency_failure"], "abort", "{second}");
    let shown = stdout(&sb.ok(&["job", "show", &job_id(&second).to_string()]));
    assert!(
        shown.contains(&format!(
            "jobs {first} (if one does not complete, this job is aborted)"
        )),
        "{shown}"
    );
    assert!(
        second["waiting_reason"]
            .as_str()
            .unwrap()
            .contains(&format!("job {first}")),
        "{second}"
    );
    let waiting = sb.json(&["jobs", "--state", "waiting"]);
    assert_eq!(waiting.as_array().unwrap().len(), 1, "{waiting}");
    sb.ok(&["work", "--until-idle"]);
    let second = sb.json(&["job", "show", &job_id(&second).to_string()]);
    assert_eq!(second["state"], "completed", "{second}");
    let out = sb.expect(
        1,
        &["submit", "--kind", "noop", "--args", "1", "--after", "99"],
    );
    assert!(
        stderr(&out).contains("job 99, named in after, does not exist"),
        "{}",
        stderr(&out)
    );
    let out = sb.expect(
        2,
        &[
            "submit",
            "--kind",
            "noop",
            "--args",
            "1",
            "--after",
            &first,
            "--on-dependency-failure",
            "maybe",
        ],
    );
    assert!(
        stderr(&out).contains("use fail, abort or run"),
        "{}",
        stderr(&out)
    );
}
