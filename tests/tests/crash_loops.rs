//! Crash loops with real processes: `booster` (and `fault-worker`) killed
//! with SIGKILL at seeded random moments and restarted until the work is
//! done. Every acknowledged record and job must come out exactly once, the
//! records made to fail exactly once in `errors`, and the counts reconcile.
//!
//! Short by default (tens of cycles); `BOOSTER_LONG=1` runs thousands.
//! Each test prints its seed; `BOOSTER_SEED=<n>` replays it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use booster_tests::cli::{assert_no_crash, fault_worker_bin, run_then_kill, Ending, Sandbox};
use booster_tests::data::{self, Customers};
use booster_tests::rng::{scale, seed, Rng};
use serde_json::Value;

fn s(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

fn u(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

/// Runs `work --until-idle`, killed after a random delay, until the job is
/// in a final state. Checks that progress never goes backwards. Returns
/// (kills, the final job status).
fn work_until_done(
    sb: &Sandbox,
    id: u64,
    rng: &mut Rng,
    kills_wanted: u64,
    window_ms: u64,
) -> (u64, Value) {
    let mut kills = 0;
    let mut last_done = 0;
    let mut last_out = 0;
    for cycle in 0.. {
        assert!(
            cycle < kills_wanted + 50,
            "job {id} did not finish after {cycle} cycles"
        );
        let cmd = sb.cmd(&["work", "--until-idle", "--workers", "2"]);
        if cycle < kills_wanted {
            match run_then_kill(cmd, Duration::from_millis(rng.range(0, window_ms))) {
                Ending::Killed { .. } => kills += 1,
                Ending::Finished(out) => assert_no_crash("booster work", &out),
            }
        } else {
            let out = sb
                .cmd(&["work", "--until-idle", "--workers", "2"])
                .output()
                .unwrap();
            assert_no_crash("booster work", &out);
            // Exit 0 unless a job it finished has failed records (or
            // failed): then 3. A job an earlier, killed run finished is not
            // reported again.
            let job = sb.job(id);
            let clean = job["state"] == "completed" && u(&job, "records_failed") == 0;
            let reported = String::from_utf8_lossy(&out.stdout).contains(&format!("job {id} "));
            assert_eq!(
                out.status.code(),
                Some(if clean || !reported { 0 } else { 3 }),
                "an uninterrupted `work --until-idle` exits 0 only for a clean job, else 3: {job}\n{}",
                booster_tests::cli::describe(&out)
            );
        }
        let job = sb.job(id);
        let (done, out) = (u(&job, "slices_done"), u(&job, "records_out"));
        assert!(
            done >= last_done && out >= last_out,
            "progress went backwards: {job}"
        );
        (last_done, last_out) = (done, out);
        let state = job["state"].as_str().unwrap().to_string();
        if cycle >= kills_wanted && ["completed", "failed", "aborted"].contains(&state.as_str()) {
            return (kills, job);
        }
    }
    unreachable!()
}

/// Downloads and checks: output rows are the expected ones, in order, each
/// once; errors hold exactly the bad ids, each once; counts reconcile.
fn check_customers_job(sb: &Sandbox, id: u64, input: &Customers, job: &Value) {
    assert_eq!(job["state"], "completed", "{job}");
    let out_path = sb.path(&format!("out-{id}.csv"));
    let err_path = sb.path(&format!("err-{id}.jsonl"));
    let out = sb.run(&[
        "download",
        &id.to_string(),
        "--output",
        &s(&out_path),
        "--errors",
        &s(&err_path),
    ]);
    assert_no_crash("booster download", &out);
    assert!(
        out.status.success(),
        "{}",
        booster_tests::cli::describe(&out)
    );
    let got: Vec<String> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let want = input.expected_output();
    if got != want {
        let got_ids: Vec<&String> = got.iter().collect();
        let mut seen = BTreeMap::new();
        for row in &got_ids {
            *seen.entry(row.as_str()).or_insert(0) += 1;
        }
        let dups: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).take(5).collect();
        let missing: Vec<_> = want
            .iter()
            .filter(|r| !seen.contains_key(r.as_str()))
            .take(5)
            .collect();
        panic!(
            "output differs: {} rows, want {}; duplicated {dups:?}; missing {missing:?}",
            got.len(),
            want.len()
        );
    }
    let mut error_ids = Vec::new();
    for line in std::fs::read_to_string(&err_path).unwrap().lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        let record = e["record"].as_str().unwrap();
        let rid: u64 = record.split(',').next().unwrap().parse().unwrap();
        assert_eq!(record, Customers::row(rid), "error record text");
        assert_eq!(u(&e, "record_number"), rid, "record number of {record}");
        error_ids.push(rid);
    }
    assert_eq!(
        error_ids,
        input.bad_ids(),
        "errors must hold exactly the bad rows, once each, in order"
    );
    assert_eq!(u(job, "records_in"), input.n);
    assert_eq!(u(job, "records_out"), input.good_count());
    assert_eq!(u(job, "records_errors"), input.bad_ids().len() as u64);
    assert_eq!(u(job, "records_failed"), input.bad_ids().len() as u64);
    assert_eq!(u(job, "records_in_failed_slices"), 0);
    assert_eq!(u(job, "slices_done"), u(job, "slices_total"));
    assert_eq!(u(job, "slices_failed"), 0);
}

fn submit_customers(sb: &Sandbox, input: &Customers, slice_size: u64) -> u64 {
    let path = sb.write(&format!("customers-{}.csv", input.n), input.csv.as_bytes());
    let v = sb.json(&[
        "submit",
        "--kind",
        "validate-customers",
        "--collect-errors",
        "--slice-size",
        &slice_size.to_string(),
        "--input",
        &s(&path),
    ]);
    u(&v, "id")
}

fn verify_clean(sb: &Sandbox) {
    let out = sb.run(&["verify"]);
    assert!(
        out.status.success(),
        "verify after the crash loop: {}",
        booster_tests::cli::describe(&out)
    );
}

#[test]
fn sliced_job_survives_work_killed_at_random_moments() {
    let seed = seed("sliced_job_survives_work_killed_at_random_moments");
    let mut rng = Rng::new(seed);
    let sb = Sandbox::new();
    let input = Customers::new(scale(2000, 20_000));
    let id = submit_customers(&sb, &input, 10);
    let (kills, job) = work_until_done(&sb, id, &mut rng, scale(20, 2000), 300);
    eprintln!("seed {seed}: {kills} kills");
    check_customers_job(&sb, id, &input, &job);
    verify_clean(&sb);
}

#[test]
fn a_killed_upload_is_failed_with_its_reason_or_complete_never_half_visible() {
    let seed = seed("a_killed_upload_is_failed_with_its_reason_or_complete_never_half_visible");
    let mut rng = Rng::new(seed);
    let sb = Sandbox::new();
    let input = Customers::new(scale(5000, 50_000));
    let path = sb.write("big.csv", input.csv.as_bytes());
    let mut killed = 0;
    for _ in 0..scale(8, 1000) {
        let cmd = sb.cmd(&[
            "--json",
            "submit",
            "--kind",
            "validate-customers",
            "--collect-errors",
            "--slice-size",
            "50",
            "--input",
            &s(&path),
        ]);
        match run_then_kill(cmd, Duration::from_millis(rng.range(0, 300))) {
            Ending::Killed { .. } => killed += 1,
            Ending::Finished(out) => assert!(
                out.status.success(),
                "{}",
                booster_tests::cli::describe(&out)
            ),
        }
    }
    eprintln!("seed {seed}: {killed} uploads killed");
    let out = sb.cmd(&["work", "--until-idle"]).output().unwrap();
    assert_no_crash("booster work", &out);
    for job in sb.jobs() {
        let id = u(&job, "id");
        let job = sb.job(id);
        match job["state"].as_str().unwrap() {
            "completed" => {
                assert_eq!(job["upload_complete"], true, "{job}");
                check_customers_job(&sb, id, &input, &job);
            }
            "failed" => {
                assert_eq!(
                    job["upload_complete"], false,
                    "a complete upload failed: {job}"
                );
                let reason = job["failure_reason"].as_str().unwrap_or("");
                assert!(reason.contains("upload interrupted"), "{job}");
                assert_eq!(
                    u(&job, "records_out"),
                    0,
                    "a half upload was processed: {job}"
                );
            }
            other => panic!("job {id} is {other} after work --until-idle: {job}"),
        }
    }
    verify_clean(&sb);
}

#[test]
fn downloads_killed_at_random_moments_change_nothing() {
    let seed = seed("downloads_killed_at_random_moments_change_nothing");
    let mut rng = Rng::new(seed);
    let sb = Sandbox::new();
    let input = Customers::new(scale(5000, 50_000));
    let id = submit_customers(&sb, &input, 100);
    let (_, job) = work_until_done(&sb, id, &mut rng, 0, 1);
    for _ in 0..scale(10, 1000) {
        let out_path = sb.path("partial.csv");
        let cmd = sb.cmd(&["download", &id.to_string(), "--output", &s(&out_path)]);
        let _ = run_then_kill(cmd, Duration::from_millis(rng.range(0, 300)));
    }
    check_customers_job(&sb, id, &input, &job);
    verify_clean(&sb);
}

#[test]
fn compaction_killed_at_random_moments_keeps_live_jobs_whole() {
    let seed = seed("compaction_killed_at_random_moments_keeps_live_jobs_whole");
    let mut rng = Rng::new(seed);
    let sb = Sandbox::new();
    let doomed = Customers::new(500);
    let kept = Customers::new(scale(5000, 50_000));
    let doomed_id = submit_customers(&sb, &doomed, 50);
    let kept_id = submit_customers(&sb, &kept, 50);
    let (_, _) = work_until_done(&sb, doomed_id, &mut rng, 0, 1);
    let (_, job) = work_until_done(&sb, kept_id, &mut rng, 0, 1);
    sb.ok(&["job", "destroy", &doomed_id.to_string()]);
    let mut killed = 0;
    for _ in 0..scale(12, 1000) {
        match run_then_kill(
            sb.cmd(&["compact"]),
            Duration::from_millis(rng.range(0, 500)),
        ) {
            Ending::Killed { .. } => killed += 1,
            Ending::Finished(out) => assert!(
                out.status.success(),
                "{}",
                booster_tests::cli::describe(&out)
            ),
        }
        // After every kill the store opens and the live job is whole.
        let now = sb.job(kept_id);
        assert_eq!(now["state"], "completed", "{now}");
    }
    eprintln!("seed {seed}: {killed} compactions killed");
    sb.ok(&["compact"]);
    check_customers_job(&sb, kept_id, &kept, &job);
    let gone = sb.run(&["job", "show", &doomed_id.to_string()]);
    assert!(
        !gone.status.success(),
        "a destroyed job came back after compaction"
    );
    verify_clean(&sb);
}

#[test]
fn retry_of_failed_slices_killed_at_random_moments_completes_exactly_once() {
    let seed = seed("retry_of_failed_slices_killed_at_random_moments_completes_exactly_once");
    let mut rng = Rng::new(seed);
    let sb = Sandbox::new();
    let flag = sb.write("fail-bad-slices", b"");
    let lines = data::lines(scale(1000, 20_000), |i| i % 97 == 13);
    let input = sb.write("lines.txt", (lines.join("\n") + "\n").as_bytes());
    // While the flag file exists, a slice holding a -BAD line fails.
    let cmd = format!(
        "t=$(cat); if [ -e '{}' ]; then case \"$t\" in *BAD*) echo 'bad slice' >&2; exit 3;; esac; fi; printf '%s\\n' \"$t\"",
        s(&flag)
    );
    let v = sb.json(&[
        "submit",
        "--kind",
        "exec",
        "--cmd",
        &cmd,
        "--slice-size",
        "20",
        "--input",
        &s(&input),
    ]);
    let id = u(&v, "id");
    let (_, job) = work_until_done(&sb, id, &mut rng, 0, 1);
    let failed_slices = u(&job, "slices_failed");
    assert!(failed_slices > 0, "no slice failed: {job}");
    assert_eq!(job["state"], "failed", "{job}");
    std::fs::remove_file(&flag).unwrap();
    sb.ok(&["job", "retry", &id.to_string()]);
    let (kills, job) = work_until_done(&sb, id, &mut rng, scale(15, 2000), 300);
    eprintln!("seed {seed}: {kills} kills during the retry");
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(u(&job, "records_out"), lines.len() as u64);
    assert_eq!(u(&job, "records_failed"), 0, "{job}");
    let out_path = sb.path("out.txt");
    sb.ok(&["download", &id.to_string(), "--output", &s(&out_path)]);
    let got: Vec<String> = std::fs::read_to_string(&out_path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got.len(), lines.len(), "output line count");
    assert!(
        got == lines,
        "output is not every input line once, in order"
    );
    verify_clean(&sb);
}

/// Reads "n id" lines written after each acknowledged submit.
fn acked(path: &std::path::Path) -> BTreeMap<u64, u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let (n, id) = l.split_once(' ').unwrap();
            (n.parse().unwrap(), id.parse().unwrap())
        })
        .collect()
}

#[test]
fn acknowledged_simple_jobs_complete_exactly_once_across_kills() {
    simple_jobs_across_kills(
        "acknowledged_simple_jobs_complete_exactly_once_across_kills",
        "work",
        400,
    );
}

/// As above, with background compaction at any dead bytes past half the
/// store (`fault-worker work-compacting`), and kills landing up to 3 s in,
/// while the timer's checkpoints and compactions run.
#[test]
fn acknowledged_simple_jobs_survive_kills_during_background_compaction() {
    let compactions = simple_jobs_across_kills(
        "acknowledged_simple_jobs_survive_kills_during_background_compaction",
        "work-compacting",
        3000,
    );
    assert!(compactions > 0, "no background compaction ran");
}

/// Enqueues and works simple jobs in cycles, each process killed at a
/// random moment in `window_ms`; then every acknowledged job completed
/// exactly once. Returns the background compactions the processes that
/// finished reported.
fn simple_jobs_across_kills(name: &str, work_command: &str, window_ms: u64) -> u64 {
    let seed = seed(name);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acked_path = dir.path().join("acked.txt");
    let log = dir.path().join("ran.txt");
    let worker = |args: &[&str]| {
        let mut cmd = std::process::Command::new(fault_worker_bin());
        cmd.arg(&data).args(args);
        cmd
    };
    let mut compactions = 0;
    let per_cycle = 200;
    let cycles = scale(15, 2000);
    for cycle in 0..cycles {
        let from = (cycle * per_cycle).to_string();
        let to = ((cycle + 1) * per_cycle).to_string();
        let enqueue = worker(&["enqueue", &from, &to, &s(&acked_path)]);
        if let Ending::Finished(out) =
            run_then_kill(enqueue, Duration::from_millis(rng.range(0, 400)))
        {
            assert!(
                out.status.success(),
                "{}",
                booster_tests::cli::describe(&out)
            );
        }
        let work = worker(&[work_command, &s(&log)]);
        let after = Duration::from_millis(rng.range(0, window_ms));
        if let Ending::Finished(out) = run_then_kill(work, after) {
            assert!(
                out.status.success(),
                "{}",
                booster_tests::cli::describe(&out)
            );
            let said: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            compactions += said["auto_compactions"].as_u64().unwrap_or(0);
        }
    }
    let out = worker(&["work", &s(&log)]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        booster_tests::cli::describe(&out)
    );
    let out = worker(&["jobs"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        booster_tests::cli::describe(&out)
    );
    let jobs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let by_id: BTreeMap<u64, &Value> = jobs.iter().map(|j| (u(j, "id"), j)).collect();
    assert_eq!(by_id.len(), jobs.len(), "a job id is listed twice");
    let acked = acked(&acked_path);
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged in {cycles} cycles"
    );
    let ran: BTreeSet<u64> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    for (n, id) in &acked {
        let job = by_id
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged job {id} (n={n}) is gone (seed {seed})"));
        assert_eq!(
            job["state"], "completed",
            "acknowledged job {id} (n={n}): {job} (seed {seed})"
        );
        assert_eq!(job["result"], serde_json::json!(n), "result of job {id}");
        assert!(
            ran.contains(n),
            "job {id} completed but its handler never ran"
        );
    }
    // Every job that exists (acknowledged or made durable just before a kill) completed once.
    let mut results = BTreeMap::new();
    for job in &jobs {
        assert_eq!(job["state"], "completed", "{job} (seed {seed})");
        let n = job["result"].as_u64().unwrap();
        assert!(
            results.insert(n, u(job, "id")).is_none(),
            "n={n} completed as two jobs"
        );
    }
    eprintln!(
        "seed {seed}: {} acknowledged, {} jobs in all, {compactions} background compactions",
        acked.len(),
        jobs.len()
    );
    compactions
}
