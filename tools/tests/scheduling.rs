//! Rocket Job's scheduling features from the command line (issue 14):
//! `booster kind` (throttles that persist: a kind's running-job limit,
//! retries and lease policy are stored in the data directory, so they hold
//! for every later process until reset) and `submit --singleton`.

mod common;

use common::*;

#[test]
fn a_paused_kind_holds_its_jobs_across_processes_until_reset() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(20).as_bytes());
    sb.ok(&["-q", "kind", "limit", "copy", "0"]);
    let id = job_id(&sb.json(&["submit", "--kind", "copy", "--input", s(&input)])).to_string();
    // A later process: nothing may start, so --until-idle ends and says why.
    let out = sb.ok(&["work", "--until-idle"]);
    let said = stdout(&out);
    assert!(
        said.contains(&format!("job {id} waits: kind \"copy\" is paused")),
        "{said}"
    );
    assert_eq!(sb.json(&["job", "show", &id])["state"], "queued");
    let shown = sb.json(&["kind", "show", "copy"]);
    assert_eq!(shown[0]["stored"]["max_running"], 0, "{shown}");

    sb.ok(&["-q", "kind", "limit", "copy", "none"]);
    let shown = sb.json(&["kind", "show", "copy"]);
    assert!(shown[0]["effective"]["max_running"].is_null(), "{shown}");
    sb.ok(&["-q", "kind", "reset", "copy"]);
    assert!(sb.json(&["kind", "show", "copy"])[0]["stored"].is_null());
    sb.ok(&["-q", "work", "--until-idle"]);
    assert_eq!(sb.json(&["job", "show", &id])["state"], "completed");
}

/// Minutes after UTC midnight, `ahead_min` from now, as HH:MM.
fn utc_in(ahead_min: u64) -> String {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minute = (now_s / 60 + ahead_min) % (24 * 60);
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

#[test]
fn a_kind_outside_its_window_waits_across_processes_until_the_window_is_cleared() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(20).as_bytes());
    // A window that opens in two hours and closes in three: closed now.
    let span = format!("{}-{}", utc_in(120), utc_in(180));
    sb.ok(&["-q", "kind", "window", "copy", &span]);
    let id = job_id(&sb.json(&["submit", "--kind", "copy", "--input", s(&input)])).to_string();
    let said = stdout(&sb.ok(&["work", "--until-idle"]));
    assert!(
        said.contains(&format!(
            "job {id} waits: kind \"copy\" runs only {span} UTC; next opens at"
        )),
        "{said}"
    );
    assert_eq!(sb.json(&["job", "show", &id])["state"], "queued");
    let shown = sb.json(&["kind", "show", "copy"]);
    assert_eq!(shown[0]["stored"]["window"]["tz"], "UTC", "{shown}");

    sb.ok(&[
        "-q",
        "kind",
        "window",
        "copy",
        "22:00-06:00",
        "--tz",
        "Europe/Berlin",
    ]);
    let text = stdout(&sb.ok(&["kind", "show", "copy"]));
    assert!(
        text.contains("runs only 22:00-06:00 Europe/Berlin"),
        "{text}"
    );
    sb.expect(2, &["kind", "window", "copy", "22-6"]);
    sb.expect(
        2,
        &["kind", "window", "copy", "22:00-06:00", "--tz", "Mars/Base"],
    );

    sb.ok(&["-q", "kind", "window", "copy", "none"]);
    assert!(sb.json(&["kind", "show", "copy"])[0]["stored"]["window"].is_null());
    sb.ok(&["-q", "work", "--until-idle"]);
    assert_eq!(sb.json(&["job", "show", &id])["state"], "completed");
}

/// `submit --window` (issue 14): a job's own window holds it back while
/// other jobs of its kind run, across processes; `--tz` gives its zone; a
/// job whose window is open runs; bad windows are usage errors.
#[test]
fn a_job_outside_its_own_window_waits_while_its_kind_runs_and_one_inside_runs() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(20).as_bytes());
    // Opens in two hours, closes in three: closed now.
    let closed = format!("{}-{}", utc_in(120), utc_in(180));
    let submit = |extra: &[&str]| {
        let mut words = vec!["submit", "--kind", "copy", "--input", s(&input)];
        words.extend_from_slice(extra);
        job_id(&sb.json(&words)).to_string()
    };
    let held = submit(&["--window", &closed, "--tz", "UTC"]);
    // Opened a minute ago, closes in an hour.
    let open = submit(&[
        "--window",
        &format!("{}-{} UTC", utc_in(24 * 60 - 1), utc_in(60)),
    ]);
    let plain = submit(&[]);
    let said = stdout(&sb.ok(&["work", "--until-idle"]));
    assert!(
        said.contains(&format!(
            "job {held} waits: this job runs only {closed} UTC; next opens at"
        )),
        "{said}"
    );
    assert_eq!(sb.json(&["job", "show", &open])["state"], "completed");
    assert_eq!(sb.json(&["job", "show", &plain])["state"], "completed");
    let shown = sb.json(&["job", "show", &held]);
    assert_eq!(shown["state"], "queued", "{shown}");
    assert_eq!(shown["window"]["tz"], "UTC", "{shown}");
    let text = stdout(&sb.ok(&["job", "show", &held]));
    assert!(text.contains(&format!("runs only {closed} UTC")), "{text}");

    // A later process still holds it back.
    sb.ok(&["-q", "work", "--until-idle"]);
    assert_eq!(sb.json(&["job", "show", &held])["state"], "queued");

    for bad in [
        vec!["--window", "22-6"],
        vec!["--window", "22:00-06:00 Mars/Base"],
        vec!["--window", "22:00-06:00 UTC extra"],
        vec!["--window", "22:00-06:00 UTC", "--tz", "Europe/Berlin"],
        vec!["--tz", "Europe/Berlin"],
    ] {
        let mut words = vec!["submit", "--kind", "copy", "--input", s(&input)];
        words.extend_from_slice(&bad);
        sb.expect(2, &words);
    }
    let out = sb.expect(
        2,
        &[
            "run",
            "--kind",
            "copy",
            "--input",
            s(&input),
            "--window",
            "22:00-06:00",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--window is for submit"),
        "{out:?}"
    );
}

/// `job max-workers` (issue 14: a job's `max_workers` is stored and
/// changeable at runtime, as the API's PATCH and the dashboard do).
#[test]
fn a_jobs_max_workers_is_stored_and_changed_from_the_command_line() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(20).as_bytes());
    let id = job_id(&sb.json(&["submit", "--kind", "copy", "--input", s(&input)])).to_string();
    assert!(sb.json(&["job", "show", &id])["max_workers"].is_null());
    let said = stdout(&sb.ok(&["job", "max-workers", &id, "2"]));
    assert!(said.contains("at most 2 of its slices"), "{said}");
    assert_eq!(sb.json(&["job", "show", &id])["max_workers"], 2);
    sb.expect(2, &["job", "max-workers", &id, "0"]);
    sb.expect(2, &["job", "max-workers", &id, "many"]);
    assert_eq!(sb.json(&["job", "show", &id])["max_workers"], 2);
    sb.ok(&["-q", "job", "max-workers", &id, "none"]);
    assert!(sb.json(&["job", "show", &id])["max_workers"].is_null());
    // A simple job has no slices to limit, and a finished job runs none.
    let simple = job_id(&sb.json(&["submit", "--kind", "noop", "--args", "{}"])).to_string();
    let out = sb.expect(1, &["job", "max-workers", &simple, "2"]);
    assert!(stderr(&out).contains("is a simple job"), "{}", stderr(&out));
    sb.ok(&["-q", "work", "--until-idle"]);
    let out = sb.expect(1, &["job", "max-workers", &id, "2"]);
    assert!(stderr(&out).contains("it is completed"), "{}", stderr(&out));
}

#[test]
fn retry_and_lease_settings_are_stored_and_bad_values_are_usage_errors() {
    let sb = Sandbox::new();
    sb.ok(&[
        "-q",
        "kind",
        "retry",
        "report",
        "--max-retries",
        "3",
        "--backoff-ms",
        "500",
        "--jitter-percent",
        "20",
    ]);
    sb.ok(&[
        "-q",
        "kind",
        "lease",
        "report",
        "--max-expiries",
        "5",
        "--timeout-ms",
        "60000",
    ]);
    let shown = sb.json(&["kind", "show", "report"]);
    let stored = &shown[0]["stored"];
    assert_eq!(stored["retry"]["max_retries"], 3, "{shown}");
    assert_eq!(stored["retry"]["backoff_base_ms"], 500, "{shown}");
    assert_eq!(stored["retry"]["jitter_percent"], 20, "{shown}");
    assert_eq!(stored["lease"]["max_expiries"], 5, "{shown}");
    let text = stdout(&sb.ok(&["kind", "show"]));
    assert!(
        text.contains("3 retries, the first after 500 ms (+0-20%)") && text.contains("(stored)"),
        "{text}"
    );
    sb.expect(2, &["kind", "limit", "copy", "lots"]);
    sb.expect(2, &["kind", "lease", "copy", "--max-expiries", "0"]);
    sb.expect(
        2,
        &[
            "kind",
            "retry",
            "copy",
            "--max-retries",
            "1",
            "--jitter-percent",
            "101",
        ],
    );
}

/// `kind retry` with one option changes that part of the stored policy
/// and keeps the rest, as `kind lease` and `kind limit` keep theirs.
#[test]
fn kind_retry_changes_only_the_options_it_is_given() {
    let sb = Sandbox::new();
    let retry = |args: &[&str]| {
        let mut a = vec!["-q", "kind", "retry", "report"];
        a.extend_from_slice(args);
        sb.ok(&a);
        sb.json(&["kind", "show", "report"])[0]["stored"]["retry"].clone()
    };
    let set = retry(&["--max-retries", "3", "--backoff-ms", "500"]);
    assert_eq!(
        (set["max_retries"].as_u64(), set["backoff_base_ms"].as_u64()),
        (Some(3), Some(500)),
        "{set}"
    );
    let jittered = retry(&["--jitter-percent", "20"]);
    assert_eq!(
        jittered,
        serde_json::json!({"max_retries": 3, "backoff_base_ms": 500, "jitter_percent": 20}),
        "only the jitter changed"
    );
    let fewer = retry(&["--max-retries", "1"]);
    assert_eq!(
        fewer,
        serde_json::json!({"max_retries": 1, "backoff_base_ms": 500, "jitter_percent": 20}),
        "only the count changed"
    );
    let out = sb.expect(2, &["kind", "retry", "report"]);
    assert!(stderr(&out).contains("--max-retries"), "{}", stderr(&out));
}

#[test]
fn a_second_singleton_submit_is_refused_naming_the_job_that_holds_the_key() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(5).as_bytes());
    let submit = [
        "submit",
        "--kind",
        "copy",
        "--singleton",
        "--input",
        s(&input),
    ];
    let first = job_id(&sb.json(&submit)).to_string();
    let out = sb.expect(1, &submit);
    let text = stderr(&out);
    assert!(
        text.contains(&format!("singleton \"copy\" is held by job {first}")),
        "{text}"
    );
    // Another key, or none, is not held back; once the job ends the key is free.
    sb.ok(&[
        "-q",
        "submit",
        "--kind",
        "copy",
        "--singleton",
        "other",
        "--input",
        s(&input),
    ]);
    sb.ok(&["-q", "work", "--until-idle"]);
    sb.ok(&[
        "-q",
        "submit",
        "--kind",
        "copy",
        "--singleton",
        "--input",
        s(&input),
    ]);
}
