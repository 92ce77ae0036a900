//! Batches and dependent jobs while `booster work` is killed with SIGKILL
//! at seeded random moments (issue 14): every batch's on-complete job runs
//! once, after every job of its batch finished; a chain of `--after` jobs
//! completes in order; nothing is lost or made twice.
//!
//! Short by default; `BOOSTER_LONG=1` runs many more cycles.
//! `BOOSTER_SEED=<n>` replays a run.

use std::time::Duration;

use booster_tests::cli::{describe, run_then_kill, Ending, Sandbox};
use booster_tests::rng::{scale, seed, Rng};
use serde_json::Value;

#[test]
fn batches_and_chains_killed_at_random_run_each_on_complete_job_once_after_its_batch() {
    let seed =
        seed("batches_and_chains_killed_at_random_run_each_on_complete_job_once_after_its_batch");
    let mut rng = Rng::new(seed);
    let sb = Sandbox::new();
    let mut batches: Vec<(Vec<u64>, u64)> = Vec::new();
    let mut chain: Vec<u64> = Vec::new();
    for cycle in 0..scale(6, 120) {
        // A batch of 1 to 3 files, each a copy job.
        let mut words = vec!["batch".to_string()];
        for i in 0..rng.range(1, 4) {
            let lines: String = (0..rng.range(1, 300))
                .map(|n| format!("c{cycle} f{i} l{n}\n"))
                .collect();
            let file = sb.write(&format!("c{cycle}-{i}.txt"), lines.as_bytes());
            words.extend(["--input".into(), file.display().to_string()]);
        }
        words.extend(
            [
                "--kind",
                "copy",
                "--slice-size",
                "50",
                "--on-complete-kind",
                "noop",
            ]
            .map(String::from),
        );
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let made = sb.json(&args);
        let jobs = made["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j.as_u64().unwrap())
            .collect();
        batches.push((jobs, made["on_complete"].as_u64().unwrap()));
        // The chain grows by one job that runs after the last.
        let mut submit = vec!["submit", "--kind", "noop", "--args", "{}"];
        let after = chain.last().map(u64::to_string);
        if let Some(after) = &after {
            submit.extend(["--after", after]);
        }
        chain.push(sb.json(&submit)["id"].as_u64().unwrap());
        match run_then_kill(
            sb.cmd(&["work", "--workers", "2"]),
            Duration::from_millis(rng.range(20, 500)),
        ) {
            Ending::Killed { .. } => {}
            Ending::Finished(out) => panic!("work ended on its own: {}", describe(&out)),
        }
    }
    sb.ok(&["work", "--until-idle"]);
    let jobs: Vec<Value> = sb.jobs();
    let job = |id: u64| -> &Value {
        jobs.iter()
            .find(|j| j["id"] == id)
            .unwrap_or_else(|| panic!("job {id} is gone"))
    };
    let made = batches.iter().map(|(b, _)| b.len() + 1).sum::<usize>() + chain.len();
    assert_eq!(jobs.len(), made, "jobs made or lost: {jobs:#?}");
    for (batch, then) in &batches {
        let then = job(*then);
        assert_eq!(then["state"], "completed", "{then:#}");
        for id in batch {
            let j = job(*id);
            assert_eq!(j["state"], "completed", "{j:#}");
            assert!(
                then["started_at_ms"].as_u64().unwrap() >= j["completed_at_ms"].as_u64().unwrap(),
                "on-complete job {} started before job {id} finished",
                then["id"]
            );
        }
    }
    for pair in chain.windows(2) {
        let (first, second) = (job(pair[0]), job(pair[1]));
        assert_eq!(second["state"], "completed", "{second:#}");
        assert!(
            second["started_at_ms"].as_u64().unwrap() >= first["completed_at_ms"].as_u64().unwrap(),
            "{pair:?}"
        );
    }
    eprintln!("{} batches, a chain of {}", batches.len(), chain.len());
}
