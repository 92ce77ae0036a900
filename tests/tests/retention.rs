//! Retention and destroy through the real `booster` binary (issue 12,
//! step 6): the stored periods survive a restart; `job show` tells a
//! destroyed job's tombstone, a job removed after its retention and an id
//! never handed out apart; a kill -9 right after an acknowledged destroy
//! loses nothing. Time moves by starting each process with
//! `BOOSTER_CLOCK_MS` (the runtime's fixed clock), never by sleeping.
//! Only a debug build of `booster` reads that variable (a release one
//! refuses to start with it set), so under `--release` (the long runs)
//! this file holds no test.
#![cfg(debug_assertions)]

use std::process::Output;

use booster_tests::cli::{describe, Sandbox, Serving};

/// 2027-01-15T08:00:00Z, on a whole minute.
const T0: u64 = 1_800_000_000_000;
const T0_TEXT: &str = "2027-01-15T08:00:00Z";
const MINUTE_MS: u64 = 60_000;

/// `booster ARGS` with the runtime's clock at `now_ms`, expecting `code`.
fn at(sb: &Sandbox, now_ms: u64, code: i32, args: &[&str]) -> Output {
    let out = sb
        .cmd(args)
        .env("BOOSTER_CLOCK_MS", now_ms.to_string())
        .output()
        .expect("spawn booster");
    assert_eq!(
        out.status.code(),
        Some(code),
        "booster {args:?}\n{}",
        describe(&out)
    );
    out
}

fn json_at(sb: &Sandbox, now_ms: u64, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = at(sb, now_ms, 0, &all);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// What `job show ID` says on stderr when there is no such job.
fn missing_at(sb: &Sandbox, now_ms: u64, id: u64) -> String {
    let out = at(sb, now_ms, 1, &["job", "show", &id.to_string()]);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn submit(sb: &Sandbox, now_ms: u64, extra: &[&str]) -> u64 {
    let input = sb.write("in.txt", b"a\nb\nc\n");
    let mut args = vec![
        "submit",
        "--kind",
        "copy",
        "--input",
        input.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let job = json_at(sb, now_ms, &args);
    job["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {job}"))
}

#[test]
fn retention_survives_a_restart_and_job_show_tells_destroyed_removed_and_never_apart() {
    let sb = Sandbox::new();
    let stored = json_at(
        &sb,
        T0,
        &["retention", "--completed", "2m", "--failed", "90d"],
    );
    let want = serde_json::json!({
        "completed_ms": 2 * MINUTE_MS,
        "aborted_ms": 7 * 24 * 60 * MINUTE_MS,
        "failed_ms": 90 * 24 * 60 * MINUTE_MS,
    });
    assert_eq!(stored, want);
    // Another process: the periods were stored.
    assert_eq!(json_at(&sb, T0, &["retention"]), want);
    let human = at(&sb, T0, 0, &["retention"]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("completed 2m, aborted 7d, failed 90d"),
        "{}",
        describe(&human)
    );
    let bad = at(&sb, T0, 2, &["retention", "--failed", "-3d"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("such as 7d, 12h, 30m or 90s"),
        "{}",
        describe(&bad)
    );

    let gone = submit(&sb, T0, &["--destroy-on-complete"]);
    let kept = submit(&sb, T0, &[]);
    at(&sb, T0, 0, &["work", "--until-idle"]);
    let destroyed = format!("job {gone} not found: it was completed, then destroyed at {T0_TEXT}");
    assert!(missing_at(&sb, T0, gone).contains(&destroyed));
    assert_eq!(
        json_at(&sb, T0, &["job", "show", &kept.to_string()])["state"],
        "completed"
    );
    let never = missing_at(&sb, T0, 99);
    assert!(
        never.contains("job 99 not found: no job ever had this id"),
        "{never}"
    );

    // A compaction's checkpoint files both for the sweep; they are due
    // once their minute and the 2 minutes have passed.
    at(&sb, T0, 0, &["compact"]);
    at(&sb, T0 + 3 * MINUTE_MS - 1, 0, &["compact"]);
    assert!(missing_at(&sb, T0 + 3 * MINUTE_MS - 1, gone).contains(&destroyed));
    let shown = json_at(
        &sb,
        T0 + 3 * MINUTE_MS - 1,
        &["job", "show", &kept.to_string()],
    );
    assert_eq!(shown["state"], "completed");
    at(&sb, T0 + 3 * MINUTE_MS, 0, &["compact"]);
    let later = T0 + 4 * MINUTE_MS;
    for id in [gone, kept] {
        let text = missing_at(&sb, later, id);
        assert!(
            text.contains(&format!(
                "job {id} not found: it was removed after its retention period"
            )),
            "{text}"
        );
    }
    assert_eq!(json_at(&sb, later, &["jobs"]), serde_json::json!([]));
    assert!(missing_at(&sb, later, 99).contains("no job ever had this id"));
    assert_eq!(json_at(&sb, later, &["retention"]), want);
}

#[test]
fn a_kill_9_right_after_an_acknowledged_destroy_keeps_the_job_destroyed() {
    let sb = Sandbox::new();
    let id = submit(&sb, T0, &[]);
    // No worker thread: the job stays queued until the destroy.
    let mut serving = Serving::start(&sb, &["--workers", "0"]);
    let url = serving.url.clone();
    let mut destroy = sb.cmd(&["--server", &url, "job", "destroy", &id.to_string()]);
    let out = destroy.output().expect("spawn booster");
    assert!(out.status.success(), "{}", describe(&out));
    serving.kill9();
    let text = missing_at(&sb, T0, id);
    assert!(
        text.contains(&format!(
            "job {id} not found: it was queued, then destroyed at"
        )),
        "{text}"
    );
    assert_eq!(json_at(&sb, T0, &["jobs"]), serde_json::json!([]));
}

/// `booster run` downloads its job's output once it completes, so it keeps
/// the job whatever its kind says: a kind with destroy-on-complete on
/// neither loses the output nor fails the run, here or through a server.
#[test]
fn run_keeps_its_job_s_output_when_the_kind_destroys_on_complete() {
    let sb = Sandbox::new();
    at(&sb, T0, 0, &["kind", "destroy-on-complete", "copy", "on"]);
    let input = sb.write("in.txt", b"a\nb\nc\n");
    let local = sb.path("local.txt");
    at(
        &sb,
        T0,
        0,
        &[
            "run",
            "--kind",
            "copy",
            "--input",
            input.to_str().unwrap(),
            "--output",
            local.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&local).unwrap(), b"a\nb\nc\n");
    let serving = Serving::start(&sb, &[]);
    let remote = sb.path("remote.txt");
    let mut run = sb.cmd(&[
        "--server",
        &serving.url,
        "run",
        "--kind",
        "copy",
        "--input",
        input.to_str().unwrap(),
        "--output",
        remote.to_str().unwrap(),
    ]);
    let out = run.output().expect("spawn booster");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(std::fs::read(&remote).unwrap(), b"a\nb\nc\n");
}

/// `job watch` on a job its kind destroys on complete ends with success
/// when it completes (its tombstone says completed), locally and through
/// a server, instead of "not found".
#[test]
fn job_watch_ends_with_success_when_the_job_is_destroyed_as_it_completes() {
    let sb = Sandbox::new();
    let local = submit(&sb, T0, &["--destroy-on-complete"]);
    at(&sb, T0, 0, &["work", "--until-idle"]);
    at(&sb, T0, 0, &["job", "watch", &local.to_string()]);
    let serving = Serving::start(&sb, &[]);
    let id = {
        let input = sb.write("in2.txt", b"a\nb\n");
        let out = sb
            .cmd(&[
                "--server",
                &serving.url,
                "-q",
                "submit",
                "--kind",
                "copy",
                "--destroy-on-complete",
                "--input",
                input.to_str().unwrap(),
            ])
            .output()
            .expect("spawn booster");
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let out = sb
        .cmd(&["--server", &serving.url, "job", "watch", &id])
        .output()
        .expect("spawn booster");
    assert!(out.status.success(), "{}", describe(&out));
}
