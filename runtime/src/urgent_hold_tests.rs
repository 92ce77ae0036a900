//! A worker freed while an urgent submit is between its id and its
//! placement holds for it (issue 17; ARCHITECTURE.md, "Where the urgent
//! tail goes"). The store's append gate, held as a checkpoint holds it,
//! keeps the submit in flight; a manual clock keeps the hold's bound from
//! running out: the order of starts decides, no timing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::commit_handoff_tests::{start_held_job_of, until, HeldGate, Probe};
use crate::*;

/// One worker runs a one-slice bulk job (held in its handler); a
/// priority-50 job is queued behind it; an urgent submit has its id and
/// waits for the append gate. Then the slice's handler returns. On the
/// old code the freed worker leased the queued job at once, and the
/// urgent one, placed a moment later, waited for it to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_freed_while_an_urgent_submit_is_placed_starts_it_before_other_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RuntimeOptions::new(dir.path());
    opts.workers = 1;
    opts.slice_size = 4;
    opts.auto_checkpoint = false;
    opts.clock = Arc::new(ManualClock::at_ms(1_700_000_000_000));
    let rt = Arc::new(Runtime::open(opts).await.unwrap());
    let probe = Arc::new(Probe::default());
    rt.register_simple("probe", probe.clone());
    let (job, _, release_tx) = start_held_job_of(&rt, 4).await;
    let other = rt
        .submit(JobSpec::simple("probe", Value::Null))
        .await
        .unwrap();
    let gate = HeldGate::take(rt.shared());
    let submitter = rt.clone();
    let urgent = tokio::spawn(async move {
        submitter
            .submit(JobSpec::simple("probe", Value::Null).with_priority(1))
            .await
    });
    until(
        "the urgent submit has its id and waits for the gate",
        || rt.shared().state.lock().book.urgent_in_flight.jobs == 1,
    )
    .await;
    release_tx.send(()).unwrap();
    until(
        "the freed worker holds for the urgent job, or started the other job",
        || {
            rt.shared().state.lock().book.urgent_in_flight.holding == 1
                || probe.0.lock().contains(&other)
        },
    )
    .await;
    drop(gate);
    let urgent = urgent.await.unwrap().unwrap();
    for id in [urgent, other, job] {
        let done = tokio::time::timeout(Duration::from_secs(30), rt.wait(id))
            .await
            .expect("every job finishes")
            .unwrap();
        assert_eq!(done.state, JobState::Completed, "job {id}");
    }
    assert_eq!(
        *probe.0.lock(),
        vec![urgent, other],
        "the urgent job starts first, though the worker was freed before it was placed"
    );
    assert_eq!(rt.shared().state.lock().book.urgent_in_flight.jobs, 0);
    let rt = Arc::try_unwrap(rt).unwrap_or_else(|_| panic!("the submit task is done"));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
