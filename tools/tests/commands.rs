//! Each subcommand on the built binary, its `--json` shape and exit codes.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

#[test]
fn keygen_writes_a_0600_key_and_refuses_to_overwrite() {
    let sb = Sandbox::new();
    let key = sb.path("k");
    sb.ok(&["keygen", "--out", s(&key)]);
    let text = std::fs::read_to_string(&key).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert!(text.trim().chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = sb.expect(1, &["keygen", "--out", s(&key)]);
    assert!(
        stderr(&out).contains("refusing to overwrite"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
}

#[test]
fn submit_work_download_cycle_with_job_controls() {
    let sb = Sandbox::new();
    let text = numbered_lines(500);
    let input = sb.write("in.txt", text.as_bytes());
    let submitted = sb.json(&[
        "submit",
        "--kind",
        "copy",
        "--slice-size",
        "50",
        "--priority",
        "20",
        "--input",
        s(&input),
    ]);
    let id = job_id(&submitted).to_string();
    assert_eq!(submitted["state"], "queued", "{submitted}");
    assert_eq!(submitted["records_in"], 500);
    assert_eq!(submitted["records_out"], 0);
    assert_eq!(submitted["records_failed"], 0);

    let listed = sb.json(&["jobs", "--state", "queued"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], submitted["id"]);

    let changed = sb.json(&["job", "priority", &id, "5"]);
    assert_eq!(changed["priority"], 5);
    let out = sb.expect(2, &["job", "priority", &id, "0"]);
    assert!(stderr(&out).contains("1..=100"), "{}", stderr(&out));

    assert_eq!(sb.json(&["job", "pause", &id])["state"], "paused");
    // A paused job is not runnable: work has nothing to do.
    sb.ok(&["work", "--until-idle"]);
    assert_eq!(sb.json(&["job", "show", &id])["state"], "paused");
    assert_eq!(sb.json(&["job", "resume", &id])["state"], "queued");

    sb.ok(&["work", "--until-idle", "--workers", "2"]);
    let done = sb.json(&["job", "show", &id]);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["records_out"], 500);

    let output = sb.path("out.txt.gz");
    sb.ok(&["download", &id, "--output", s(&output)]);
    assert_eq!(read_decompressed(&output), text.as_bytes());

    let human = stdout(&sb.ok(&["jobs"]));
    assert!(
        human.contains("completed") && human.contains("copy"),
        "{human}"
    );
    let shown = stdout(&sb.ok(&["job", "show", &id]));
    assert!(shown.contains("500 in"), "{shown}");

    sb.ok(&["job", "destroy", &id]);
    let destroyed = "not found: it was completed, then destroyed at ";
    let text = stderr(&sb.expect(1, &["job", "show", &id]));
    assert!(text.contains(destroyed), "{text}");
    sb.ok(&["compact"]);
    assert!(sb.json(&["jobs"]).as_array().unwrap().is_empty());
    // Its tombstone outlives the compaction (for the retention period).
    let text = stderr(&sb.expect(1, &["job", "show", &id]));
    assert!(text.contains(destroyed), "{text}");
    let text = stderr(&sb.expect(1, &["job", "show", "99"]));
    assert!(
        text.contains("job 99 not found: no job ever had this id; `booster jobs` lists the jobs"),
        "{text}"
    );
}

/// `work` reports the jobs this run finished, and only those: not the
/// jobs finished before it (read from what was unfinished when it started
/// and the jobs created since, never from a listing of every job, which
/// held millions of rows in RAM), and it names a job it cannot run.
#[test]
fn work_reports_only_the_jobs_it_finished_and_names_those_that_wait() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(20).as_bytes());
    let submit = || job_id(&sb.json(&["submit", "--kind", "copy", "--input", s(&input)]));
    let earlier = submit();
    sb.ok(&["work", "--until-idle"]);
    let (a, b) = (submit(), submit());
    let paused = submit();
    sb.ok(&["job", "pause", &paused.to_string()]);
    sb.ok(&["-q", "kind", "limit", "exec", "0"]);
    let exec = [
        "submit",
        "--kind",
        "exec",
        "--cmd",
        "cat",
        "--input",
        s(&input),
    ];
    let waits = job_id(&sb.json(&exec));
    let report = sb.json(&["work", "--until-idle"]);
    let ids: Vec<u64> = (report["finished"].as_array().unwrap().iter())
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![a, b],
        "not {earlier} (finished before), not {paused} (paused): {report}"
    );
    let said = stdout(&sb.ok(&["work", "--until-idle"]));
    assert!(said.contains(&format!("job {waits} waits: ")), "{said}");
    assert!(!said.contains("nothing to do"), "{said}");
    sb.ok(&["job", "resume", &paused.to_string()]);
    let report = sb.json(&["work", "--until-idle"]);
    assert_eq!(report["finished"][0]["id"], paused, "{report}");
    assert_eq!(report["finished"].as_array().unwrap().len(), 1, "{report}");
}

/// `n` jobs of kind "held", which no worker of the CLI runs, queued in
/// the sandbox's store through the embedding API.
fn queue_held(sb: &Sandbox, n: usize) {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async {
        let mut opts = booster_runtime::RuntimeOptions::new(sb.data());
        opts.workers = 1;
        let rt = booster_runtime::Runtime::open(opts).await.unwrap();
        let specs = (0..n)
            .map(|_| booster_runtime::JobSpec::simple("held", serde_json::Value::Null))
            .collect();
        rt.submit_many(specs).await.unwrap();
        rt.shutdown(std::time::Duration::from_secs(5))
            .await
            .unwrap();
    });
}

/// A backlog `work` cannot run is counted, and only its oldest 100 jobs
/// are read for a reason (before: every unfinished job's status, one
/// "waits" line each: 1.9 GB and 9.6 s over 1M queued jobs).
#[test]
fn work_counts_a_backlog_it_cannot_run_and_names_why_the_oldest_wait() {
    let sb = Sandbox::new();
    queue_held(&sb, 150);
    let said = stdout(&sb.ok(&["work", "--until-idle"]));
    let waits: Vec<&str> = said.lines().filter(|l| l.contains(" waits: ")).collect();
    assert_eq!(waits.len(), 100, "{said}");
    assert!(waits[0].starts_with("job 1 waits: "), "{said}");
    assert!(waits[99].starts_with("job 100 waits: "), "{said}");
    let counted = "150 jobs are unfinished (the oldest 100 looked at); \
                   `booster jobs --state queued` lists them";
    assert!(said.contains(counted), "{said}");
    assert!(!said.contains("nothing to do"), "{said}");
    let report = sb.json(&["work", "--until-idle"]);
    let none = serde_json::json!({"interrupted": false, "finished": []});
    assert_eq!(report, none);
}

/// `jobs --json` lists every page as one JSON array, newest first, written
/// a page at a time (never the whole list in RAM: 18 GB for 4M jobs), and
/// an empty store is `[]`.
#[test]
fn jobs_json_lists_every_page_as_one_array_newest_first() {
    let sb = Sandbox::new();
    queue_held(&sb, 0);
    assert_eq!(sb.json(&["jobs"]), serde_json::json!([]));
    // Three pages of 1000.
    queue_held(&sb, 2500);
    let listed = sb.json(&["jobs"]);
    let ids: Vec<u64> = (listed.as_array().unwrap().iter())
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=2500).rev().collect::<Vec<u64>>());
}

#[test]
fn abort_and_illegal_transitions_are_reported() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(10).as_bytes());
    let id = job_id(&sb.json(&["submit", "--kind", "copy", "--input", s(&input)])).to_string();
    assert_eq!(sb.json(&["job", "abort", &id])["state"], "aborted");
    let out = sb.expect(1, &["job", "resume", &id]);
    assert!(stderr(&out).contains("cannot"), "{}", stderr(&out));
    let out = sb.expect(1, &["job", "retry", "999"]);
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn inspect_reports_segments_and_compression() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(3000).as_bytes());
    sb.ok(&[
        "run",
        "--kind",
        "copy",
        "--input",
        s(&input),
        "--output",
        s(&sb.path("o.txt")),
    ]);
    let report = sb.json(&["inspect"]);
    assert!(report["segments"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["frames"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["compression_ratio"].as_f64().unwrap() > 1.0,
        "{report}"
    );
    assert_eq!(report["jobs"], 1);
    assert_eq!(report["jobs_by_state"], serde_json::json!({"completed": 1}));
    // Counted by state as the runtime counts them (never by listing every
    // job, which held each one in RAM): a queued and an aborted job join.
    let queued = sb.write("q.txt", numbered_lines(10).as_bytes());
    sb.ok(&["submit", "--kind", "copy", "--input", s(&queued)]);
    let id = job_id(&sb.json(&["submit", "--kind", "copy", "--input", s(&queued)])).to_string();
    sb.ok(&["job", "abort", &id]);
    let report = sb.json(&["inspect"]);
    assert_eq!(report["jobs"], 3, "{report}");
    let by_state = serde_json::json!({"completed": 1, "queued": 1, "aborted": 1});
    assert_eq!(report["jobs_by_state"], by_state, "{report}");
    let human = stdout(&sb.ok(&["inspect"]));
    assert!(
        human.contains("jobs            3 (1 aborted, 1 completed, 1 queued)"),
        "{human}"
    );
    assert!(
        human.contains("compression") && human.contains("segments"),
        "{human}"
    );
}

#[test]
fn verify_is_clean_then_finds_a_flipped_byte() {
    let sb = Sandbox::new();
    let key = sb.path("k");
    sb.ok(&["keygen", "--out", s(&key)]);
    let input = sb.write("in.txt", numbered_lines(5000).as_bytes());
    sb.ok(&[
        "--key-file",
        s(&key),
        "run",
        "--kind",
        "copy",
        "--input",
        s(&input),
        "--output",
        s(&sb.path("o.txt")),
    ]);
    let clean = sb.json(&["--key-file", s(&key), "verify"]);
    assert_eq!(clean["ok"], true, "{clean}");
    assert!(clean["tags_checked"].as_u64().unwrap() > 0, "{clean}");

    let segment = booster_store::format::segment_paths(&sb.data())
        .unwrap()
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();

    let out = sb.expect(4, &["--key-file", s(&key), "verify"]);
    let text = stdout(&out);
    assert!(
        text.contains("CORRUPT segment") && text.contains("offset"),
        "{text}{}",
        stderr(&out)
    );
}

/// `verify` runs on the files: a torn tail is named and left in place (the
/// old verify opened the store, cut the tail and said "clean"); the next
/// command that opens the store cuts it and says so on stderr.
#[test]
fn verify_writes_nothing_and_the_next_open_reports_the_cut_tail() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(200).as_bytes());
    sb.ok(&[
        "run",
        "--kind",
        "copy",
        "--input",
        s(&input),
        "--output",
        s(&sb.path("o.txt")),
    ]);
    let mut segments = booster_store::format::segment_paths(&sb.data()).unwrap();
    let last = segments.pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[0xAB; 33]);
    std::fs::write(&last, &bytes).unwrap();

    let out = sb.expect(4, &["verify"]);
    assert!(stdout(&out).contains("CORRUPT segment"), "{}", stdout(&out));
    assert_eq!(std::fs::read(&last).unwrap(), bytes, "verify wrote nothing");

    let out = sb.expect(0, &["jobs"]);
    assert!(
        stderr(&out).contains("recovery cut a torn tail") && stderr(&out).contains("offset"),
        "{}",
        stderr(&out)
    );
    sb.ok(&["verify"]);
}

#[test]
fn wrong_key_is_a_clear_error() {
    let sb = Sandbox::new();
    let (k1, k2) = (sb.path("k1"), sb.path("k2"));
    sb.ok(&["keygen", "--out", s(&k1)]);
    sb.ok(&["keygen", "--out", s(&k2)]);
    let input = sb.write("in.txt", b"secret\n");
    sb.ok(&[
        "--key-file",
        s(&k1),
        "submit",
        "--kind",
        "copy",
        "--input",
        s(&input),
    ]);
    let out = sb.expect(1, &["--key-file", s(&k2), "jobs"]);
    assert!(stderr(&out).contains("wrong key"), "{}", stderr(&out));
    let out = sb.expect(1, &["--key-file", s(&sb.path("nope")), "jobs"]);
    assert!(stderr(&out).contains("booster keygen"), "{}", stderr(&out));
}

#[test]
fn missing_input_says_so_and_creates_no_job() {
    let sb = Sandbox::new();
    let out = sb.expect(
        1,
        &[
            "run",
            "--kind",
            "copy",
            "--input",
            s(&sb.path("absent.csv")),
            "--output",
            "-",
        ],
    );
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = sb.expect(1, &["jobs"]);
    assert!(
        stderr(&out).contains("no data directory")
            || sb.json(&["jobs"]).as_array().unwrap().is_empty()
    );
}

#[test]
fn locked_data_directory_names_the_holder() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"x\n");
    sb.ok(&["submit", "--kind", "copy", "--input", s(&input)]);
    let mut worker = sb
        .cmd(&["work"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (without taking the lock ourselves) until the worker holds it.
    let pid = worker.id().to_string();
    for _ in 0..1000 {
        let holder = std::fs::read_to_string(sb.data().join("LOCK")).unwrap_or_default();
        if holder.trim() == pid {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = sb.run(&["jobs"]);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{message}");
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert!(message.contains("locked"), "{message}");
    assert!(message.contains(&format!("process {pid}")), "{message}");
    assert!(message.contains("pass another --data"), "{message}");
}

#[test]
fn usage_errors_exit_2_and_help_has_examples() {
    let sb = Sandbox::new();
    sb.expect(2, &["run", "--kind", "copy"]);
    sb.expect(
        2,
        &[
            "submit",
            "--kind",
            "copy",
            "--input",
            "x",
            "--priority",
            "101",
        ],
    );
    let help = stdout(&sb.ok(&["--help"]));
    assert!(
        help.contains("Exit codes") && help.contains("130"),
        "{help}"
    );
    for sub in [
        "keygen",
        "run",
        "submit",
        "work",
        "download",
        "jobs",
        "inspect",
        "verify",
        "compact",
        "demo",
        "serve",
        "retention",
    ] {
        let help = stdout(&sb.ok(&[sub, "--help"]));
        assert!(help.contains("Example"), "{sub}: {help}");
    }
    for sub in [
        "show", "priority", "pause", "resume", "abort", "retry", "destroy",
    ] {
        let help = stdout(&sb.ok(&["job", sub, "--help"]));
        assert!(help.contains("Example"), "job {sub}: {help}");
    }
}

#[test]
fn exec_without_cmd_is_refused_before_anything_is_stored() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"x\n");
    let out = sb.expect(2, &["submit", "--kind", "exec", "--input", s(&input)]);
    assert!(stderr(&out).contains("--cmd"), "{}", stderr(&out));
}

#[test]
fn demo_reconciles_on_a_small_run() {
    let sb = Sandbox::new();
    let dir = sb.path("demo");
    let out = sb.run(&["demo", "--records", "20000", "--dir", s(&dir)]);
    let text = stdout(&out);
    for check in ["completed", "reconciled", "downloaded", "encrypted"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("ok") && l.contains(check)),
            "{check} not ok:\n{text}\n{}",
            stderr(&out)
        );
    }
    assert!(!text.contains("FAIL"), "{text}\n{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");

    let summary = demo_json(&sb, "demo2", &["--records", "5000"]);
    for check in [
        "completed",
        "reconciled",
        "downloaded",
        "priority",
        "encrypted",
    ] {
        assert_eq!(summary["checks"][check]["ok"], true, "{check}: {summary}");
    }
    assert_eq!(summary["records_in"], 5000);
    assert_eq!(summary["records_failed"], 5 + 2 + 1);
    assert!(dir.join("demo.key").exists() && dir.join("customers-errors.jsonl").exists());
}

/// `--json demo` with `args`, in a new directory `name`; exit 0 asserted.
fn demo_json(sb: &Sandbox, name: &str, args: &[&str]) -> serde_json::Value {
    let dir = sb.path(name);
    let mut all = vec!["--json", "demo", "--dir", s(&dir)];
    all.extend_from_slice(args);
    let out = sb.run(&all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn demo_priority_check_passes_at_small_sizes() {
    let sb = Sandbox::new();
    for (records, workers) in [("50", "2"), ("500", "2"), ("50", "1"), ("500", "8")] {
        let summary = demo_json(
            &sb,
            &format!("demo-{records}-{workers}"),
            &["--records", records, "--workers", workers],
        );
        assert_eq!(
            summary["checks"]["priority"]["ok"], true,
            "{records} records on {workers} workers: {summary}"
        );
        assert_eq!(summary["ok"], true, "{summary}");
    }
}

#[test]
fn demo_too_small_for_priority_says_so_and_passes() {
    let sb = Sandbox::new();
    let summary = demo_json(&sb, "tiny", &["--records", "3", "--workers", "4"]);
    let priority = &summary["checks"]["priority"];
    assert_eq!(priority["ok"], serde_json::Value::Null, "{summary}");
    assert!(
        priority["detail"].as_str().unwrap().contains("--records"),
        "{summary}"
    );
    assert_eq!(summary["ok"], true, "{summary}");
}

#[test]
fn demo_passes_every_check_at_the_default_size() {
    let sb = Sandbox::new();
    let summary = demo_json(&sb, "default", &[]);
    assert_eq!(summary["records_in"], 1_000_000);
    for (check, result) in summary["checks"].as_object().unwrap() {
        assert_eq!(result["ok"], true, "{check}: {summary}");
    }
}

#[test]
fn exec_commands_do_not_see_the_key_or_token_file() {
    let sb = Sandbox::new();
    let key = sb.path("k");
    sb.ok(&["keygen", "--out", s(&key)]);
    let input = sb.write("in.txt", b"x\n");
    let output = sb.path("out.txt");
    let cmd = "read r; echo \"key=${BOOSTER_KEY_FILE:-unset} token=${BOOSTER_TOKEN_FILE:-unset}\"";
    let out = sb
        .cmd(&[
            "run",
            "--kind",
            "exec",
            "--cmd",
            cmd,
            "--input",
            s(&input),
            "--output",
            s(&output),
        ])
        .env("BOOSTER_KEY_FILE", &key)
        .env("BOOSTER_TOKEN_FILE", sb.path("token"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "key=unset token=unset\n"
    );
}

#[test]
fn a_key_file_other_users_can_read_is_refused_with_the_chmod_to_run() {
    let sb = Sandbox::new();
    let key = sb.path("k");
    sb.ok(&["keygen", "--out", s(&key)]);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let input = sb.write("in.txt", b"x\n");
    let out = sb.expect(
        1,
        &[
            "--key-file",
            s(&key),
            "submit",
            "--kind",
            "copy",
            "--input",
            s(&input),
        ],
    );
    assert!(
        stderr(&out).contains(&format!("chmod 600 {}", key.display())),
        "{}",
        stderr(&out)
    );
    assert!(!sb.data().exists(), "nothing was created");
}
