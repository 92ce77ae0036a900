//! Cron entries (issue 14) on a `ManualClock`: a tick makes one run, the
//! next waits for the run to end, missed ticks give one catch-up run,
//! pause and resume, time zones, and restarts. No test waits for a tick:
//! each moves the clock.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;
use serde_json::json;

use crate::common::*;

const MINUTE_MS: u64 = 60_000;
/// 2026-12-02 00:00:00 UTC.
const MIDNIGHT_MS: u64 = 1_796_169_600_000;

async fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> (Runtime, Arc<Held>) {
    let mut o = opts(dir, 1);
    o.clock = clock.clone();
    let rt = Runtime::open(o).await.unwrap();
    let handler = Arc::new(Held::default());
    rt.register_simple("report", handler.clone());
    (rt, handler)
}

fn every_minute() -> CronSpec {
    CronSpec {
        expr: "* * * * *".into(),
        tz: None,
        job: JobSpec::simple("report", json!({"n": 1})),
    }
}

/// The runs of every cron entry: (tick, job id, state), by id.
async fn runs(rt: &Runtime) -> Vec<(u64, JobId, JobState)> {
    rt.jobs(JobFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|j| j.cron.map(|c| (c.tick_ms, j.id, j.state)))
        .collect()
}

async fn finished_runs(rt: &Runtime) -> usize {
    runs(rt)
        .await
        .iter()
        .filter(|r| r.2 == JobState::Completed)
        .count()
}

/// Waits until `n` runs have completed.
async fn until_completed(rt: &Runtime, n: usize) {
    for _ in 0..3000 {
        if finished_runs(rt).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "gave up waiting for {n} completed runs: {:?}",
        runs(rt).await
    );
}

/// Gives the timer (10 ms) a few turns to do what it would.
async fn a_few_timer_turns() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tick_makes_one_run_with_its_own_id_and_the_entry_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS + 5));
    let (rt, _) = open(dir.path(), &clock).await;
    let id = rt.add_cron(every_minute()).await.unwrap();
    a_few_timer_turns().await;
    assert!(runs(&rt).await.is_empty(), "no tick has passed yet");
    let view = &rt.crons()[0];
    assert_eq!(view.id, id);
    assert_eq!(view.next_tick_ms, Some(MIDNIGHT_MS + MINUTE_MS));
    for minute in 1..=3 {
        clock.set_ms(MIDNIGHT_MS + minute * MINUTE_MS + 1);
        until_completed(&rt, minute as usize).await;
    }
    let runs = runs(&rt).await;
    let ticks: Vec<u64> = runs.iter().map(|r| r.0).collect();
    assert_eq!(
        ticks,
        (1..=3)
            .map(|m| MIDNIGHT_MS + m * MINUTE_MS)
            .collect::<Vec<_>>()
    );
    let mut ids: Vec<JobId> = runs.iter().map(|r| r.1).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "every run is its own job");
    let result = rt.job(runs[0].1).await.unwrap().result;
    assert_eq!(result, Some(json!({"n": 1})));
    assert_eq!(
        rt.crons()[0].last_tick_ms,
        Some(MIDNIGHT_MS + 3 * MINUTE_MS)
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_give_one_catch_up_run_for_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS));
    {
        let (rt, _) = open(dir.path(), &clock).await;
        rt.add_cron(every_minute()).await.unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    // An hour passes with no process running.
    clock.set_ms(MIDNIGHT_MS + 60 * MINUTE_MS + 30_000);
    let (rt, _) = open(dir.path(), &clock).await;
    until_completed(&rt, 1).await;
    a_few_timer_turns().await;
    let runs = runs(&rt).await;
    assert_eq!(runs.len(), 1, "one catch-up run, not 60: {runs:?}");
    assert_eq!(runs[0].0, MIDNIGHT_MS + 60 * MINUTE_MS);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_run_waits_until_the_last_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS));
    let (rt, handler) = open(dir.path(), &clock).await;
    handler.hold.store(true, Ordering::SeqCst);
    rt.add_cron(every_minute()).await.unwrap();
    clock.set_ms(MIDNIGHT_MS + MINUTE_MS);
    until("the first run", || rt.crons()[0].running.is_some()).await;
    // Five more ticks pass while it runs: none makes a run.
    clock.set_ms(MIDNIGHT_MS + 6 * MINUTE_MS);
    a_few_timer_turns().await;
    assert_eq!(runs(&rt).await.len(), 1);
    handler.hold.store(false, Ordering::SeqCst);
    // It ended: one run for the latest passed tick.
    until_completed(&rt, 2).await;
    let ticks: Vec<u64> = runs(&rt).await.iter().map(|r| r.0).collect();
    assert_eq!(
        ticks,
        [MIDNIGHT_MS + MINUTE_MS, MIDNIGHT_MS + 6 * MINUTE_MS]
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_entry_makes_no_runs_until_resumed_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS));
    let id = {
        let (rt, _) = open(dir.path(), &clock).await;
        let id = rt.add_cron(every_minute()).await.unwrap();
        rt.pause_cron(id).await.unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
        id
    };
    clock.set_ms(MIDNIGHT_MS + 3 * MINUTE_MS);
    let (rt, _) = open(dir.path(), &clock).await;
    assert!(rt.crons()[0].paused, "paused is durable");
    a_few_timer_turns().await;
    assert!(runs(&rt).await.is_empty(), "a paused entry makes no run");
    rt.resume_cron(id).await.unwrap();
    until_completed(&rt, 1).await;
    assert_eq!(runs(&rt).await[0].0, MIDNIGHT_MS + 3 * MINUTE_MS);
    rt.remove_cron(id).await.unwrap();
    assert!(rt.crons().is_empty());
    let e = rt.pause_cron(id).await.unwrap_err().to_string();
    assert!(e.contains("no cron entry"), "{e}");
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_zone_entry_ticks_at_its_local_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS));
    let (rt, _) = open(dir.path(), &clock).await;
    let mut spec = every_minute();
    spec.expr = "0 3 * * *".into();
    spec.tz = Some("Europe/Berlin".into());
    rt.add_cron(spec).await.unwrap();
    // 03:00 in Berlin is 02:00 UTC in November.
    assert_eq!(
        rt.crons()[0].next_tick_ms,
        Some(MIDNIGHT_MS + 120 * MINUTE_MS)
    );
    clock.set_ms(MIDNIGHT_MS + 120 * MINUTE_MS - 1);
    a_few_timer_turns().await;
    assert!(runs(&rt).await.is_empty());
    clock.set_ms(MIDNIGHT_MS + 120 * MINUTE_MS);
    until_completed(&rt, 1).await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_and_their_last_tick_survive_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS));
    {
        let (rt, _) = open(dir.path(), &clock).await;
        rt.add_cron(every_minute()).await.unwrap();
        clock.set_ms(MIDNIGHT_MS + MINUTE_MS);
        until_completed(&rt, 1).await;
        rt.compact().await.unwrap();
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let (rt, _) = open(dir.path(), &clock).await;
    let view = rt.crons().pop().unwrap();
    assert_eq!(view.last_tick_ms, Some(MIDNIGHT_MS + MINUTE_MS));
    a_few_timer_turns().await;
    assert_eq!(
        runs(&rt).await.len(),
        1,
        "the tick that ran does not run again"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliced_cron_entries_and_bad_expressions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(MIDNIGHT_MS));
    let (rt, _) = open(dir.path(), &clock).await;
    let mut sliced = every_minute();
    sliced.job = JobSpec::sliced("copy");
    let e = rt.add_cron(sliced).await.unwrap_err().to_string();
    assert!(e.contains("runs simple jobs"), "{e}");
    let mut bad = every_minute();
    bad.expr = "every minute".into();
    let e = rt.add_cron(bad).await.unwrap_err().to_string();
    assert!(e.contains("fields"), "{e}");
    let mut run = JobSpec::simple("report", json!(null));
    run.cron = Some(CronRun {
        cron: 1,
        tick_ms: 0,
    });
    let e = rt.submit(run).await.unwrap_err().to_string();
    assert!(e.contains("add_cron"), "{e}");
    assert!(rt.crons().is_empty());
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
