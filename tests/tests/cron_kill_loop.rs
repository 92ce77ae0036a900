//! A cron entry over many ticks while its process is killed with SIGKILL
//! at seeded random moments (issue 14): every tick has at most one run,
//! the runs' ticks rise with their ids, every run completes, and ticks
//! missed while no process ran give one catch-up run. Time is a clock the
//! test writes to a file (`fault-worker DATA cron CLOCK`), moved ahead by
//! seconds while each process runs, so no test waits for a tick.
//!
//! Short by default; `BOOSTER_LONG=1` runs hundreds of cycles.
//! `BOOSTER_SEED=<n>` replays a run.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use booster_tests::cli::{describe, fault_worker_bin, run_then_kill, Ending};
use booster_tests::rng::{scale, seed, Rng};
use serde_json::Value;

/// 2026-11-29 00:00:00 UTC.
const START_MS: u64 = 1_796_169_600_000;

/// Replaces the clock file whole (a rename), so the worker never reads
/// half a number.
fn set_clock(path: &Path, ms: u64) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, ms.to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn read_clock(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_cron_killed_at_random_runs_each_tick_at_most_once_and_catches_up_once() {
    let seed = seed("a_cron_killed_at_random_runs_each_tick_at_most_once_and_catches_up_once");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let clock = dir.path().join("clock");
    set_clock(&clock, START_MS);
    let worker = |args: &[&str]| {
        let mut cmd = std::process::Command::new(fault_worker_bin());
        cmd.arg(&data).arg("cron").arg(&clock).args(args);
        cmd
    };
    let cycles = scale(8, 300);
    for _ in 0..cycles {
        // While the process runs, a thread moves time on by 0.2 to 2.5 s
        // every few real milliseconds: many ticks per life.
        let running = Arc::new(AtomicBool::new(true));
        let ticker = {
            let (running, clock) = (running.clone(), clock.clone());
            let mut rng = Rng::new(rng.next_u64());
            std::thread::spawn(move || {
                while running.load(Ordering::SeqCst) {
                    let now = read_clock(&clock);
                    set_clock(&clock, now + rng.range(200, 2_500));
                    std::thread::sleep(Duration::from_millis(rng.range(2, 15)));
                }
            })
        };
        let ending = run_then_kill(worker(&[]), Duration::from_millis(rng.range(30, 400)));
        running.store(false, Ordering::SeqCst);
        ticker.join().unwrap();
        if let Ending::Finished(out) = ending {
            panic!("the cron worker ended on its own: {}", describe(&out));
        }
        // Sometimes no process runs for a while: ticks are missed.
        if rng.range(0, 3) == 0 {
            set_clock(&clock, read_clock(&clock) + rng.range(5_000, 60_000));
        }
    }
    let out = worker(&["settle"]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let end_ms = read_clock(&clock);

    let out = std::process::Command::new(fault_worker_bin())
        .arg(&data)
        .arg("jobs")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let jobs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut runs: Vec<(u64, u64, String)> = jobs
        .iter()
        .map(|j| {
            let tick = j["cron"]["tick_ms"]
                .as_u64()
                .unwrap_or_else(|| panic!("a job that is not a cron run: {j}"));
            let state = j["state"].as_str().unwrap().to_string();
            (j["id"].as_u64().unwrap(), tick, state)
        })
        .collect();
    runs.sort();
    eprintln!(
        "{} runs over {} s of clock",
        runs.len(),
        (end_ms - START_MS) / 1000
    );
    assert!(runs.len() >= 2, "too few runs to tell anything: {runs:?}");
    let ticks: BTreeSet<u64> = runs.iter().map(|r| r.1).collect();
    assert_eq!(ticks.len(), runs.len(), "a tick ran twice: {runs:?}");
    for pair in runs.windows(2) {
        assert!(pair[0].1 < pair[1].1, "ticks fall with ids: {pair:?}");
    }
    for (id, tick, state) in &runs {
        assert_eq!(
            tick % 1000,
            0,
            "job {id}: tick {tick} is not a whole second"
        );
        assert!(
            (START_MS..=end_ms).contains(tick),
            "job {id}: tick {tick} outside the clock's range"
        );
        assert_eq!(state, "completed", "job {id} (tick {tick})");
    }
    // The settled process caught up with one run, for the latest tick.
    assert_eq!(runs.last().unwrap().1, end_ms / 1000 * 1000, "{runs:?}");
}
