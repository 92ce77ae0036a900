//! Sliced auto-retry while `booster work` is killed with SIGKILL at seeded
//! random moments (issue 14): the kind's stored retry policy lets each
//! slice fail twice; an `exec` command fails each slice's first two runs
//! (it counts them in a marker file per slice). Whatever the kills cut —
//! a failure not yet durable, a retry waiting out its backoff, a retry
//! running — every job completes with every record once, in order, and no
//! slice fails for good: the retry count neither resets nor counts twice,
//! and a waiting retry is never lost.
//!
//! Short by default; `BOOSTER_LONG=1` runs many more cycles.
//! `BOOSTER_SEED=<n>` replays a run.

use std::time::Duration;

use booster_tests::cli::{describe, run_then_kill, Ending, Sandbox};
use booster_tests::rng::{scale, seed, Rng};

#[test]
fn slices_that_fail_twice_under_a_two_retry_policy_all_complete_across_kills() {
    let seed = seed("slices_that_fail_twice_under_a_two_retry_policy_all_complete_across_kills");
    let mut rng = Rng::new(seed);
    let sb = Sandbox::new();
    let markers = sb.path("markers");
    std::fs::create_dir_all(&markers).unwrap();
    sb.ok(&[
        "-q",
        "kind",
        "retry",
        "exec",
        "--max-retries",
        "2",
        "--backoff-ms",
        "20",
        "--jitter-percent",
        "50",
    ]);
    // A slice's records on stdin; its checksum names its marker. The first
    // two runs of each slice fail, the third copies.
    let cmd = format!(
        "d=$(cat); k={m}/$(printf '%s' \"$d\" | cksum | cut -d' ' -f1); \
         echo run >> \"$k\"; \
         if [ \"$(wc -l < \"$k\")\" -le 2 ]; then echo 'not yet' >&2; exit 1; fi; \
         printf '%s\\n' \"$d\"",
        m = markers.display()
    );
    let mut jobs: Vec<(u64, String)> = Vec::new();
    for cycle in 0..scale(5, 100) {
        let lines: String = (0..rng.range(1, 400))
            .map(|n| format!("c{cycle} l{n}\n"))
            .collect();
        let file = sb.write(&format!("c{cycle}.txt"), lines.as_bytes());
        let made = sb.json(&[
            "submit",
            "--kind",
            "exec",
            "--cmd",
            &cmd,
            "--slice-size",
            "40",
            "--input",
            &file.display().to_string(),
        ]);
        jobs.push((made["id"].as_u64().unwrap(), lines));
        match run_then_kill(
            sb.cmd(&["work", "--workers", "2"]),
            Duration::from_millis(rng.range(20, 400)),
        ) {
            Ending::Killed { .. } => {}
            Ending::Finished(out) => panic!("work ended on its own: {}", describe(&out)),
        }
    }
    // A slice waiting out its backoff leaves `work --until-idle` idle: a
    // later process (a replay) finds its retry due.
    for _ in 0..20 {
        sb.ok(&["-q", "work", "--until-idle"]);
        if sb.jobs().iter().all(|j| j["state"] != "running") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (id, lines) in &jobs {
        let job = sb.job(*id);
        assert_eq!(job["state"], "completed", "seed {seed}: {job:#}");
        assert_eq!(job["records_failed"], 0, "seed {seed}: {job:#}");
        let out = sb.path(&format!("out-{id}.txt"));
        sb.ok(&[
            "download",
            &id.to_string(),
            "--output",
            &out.display().to_string(),
        ]);
        let got = std::fs::read_to_string(&out).unwrap();
        assert!(&got == lines, "seed {seed}: job {id}'s output differs");
    }
    eprintln!("{} jobs, seed {seed}", jobs.len());
}
