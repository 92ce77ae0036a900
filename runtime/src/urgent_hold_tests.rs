//! A worker freed while an urgent submit is between its id and its
//! placement holds for it (issue 17; ARCHITECTURE.md, "Where the urgent
//! tail goes"). The store's append gate, held as a checkpoint holds it,
//! keeps the submit in flight; the hold's bound is set to an hour so it
//! does not run out: the order of starts decides, no timing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::clock::from_ms;
use crate::commit_handoff_tests::{start_held_job_of, until, HeldGate, Probe};
use crate::*;

const NOW_MS: u64 = 1_700_000_000_000;
/// A hold's bound that does not run out in a test: the held append gate,
/// not time, decides.
const AN_HOUR: Duration = Duration::from_secs(3600);

/// One worker runs a one-slice bulk job (held in its handler) and a
/// priority-50 job is queued behind it. Returns the runtime, the probe
/// (the order simple jobs started in), the bulk job, the queued one and
/// the bulk job's release.
async fn one_busy_worker_and_a_queued_job(
    hold_max: Duration,
) -> (
    tempfile::TempDir,
    Arc<Runtime>,
    Arc<Probe>,
    JobId,
    JobId,
    std::sync::mpsc::Sender<()>,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RuntimeOptions::new(dir.path());
    opts.workers = 1;
    opts.slice_size = 4;
    opts.auto_checkpoint = false;
    opts.clock = Arc::new(ManualClock::at_ms(NOW_MS));
    let rt = Arc::new(Runtime::open(opts).await.unwrap());
    rt.shared().state.lock().book.urgent_in_flight.max = hold_max;
    let probe = Arc::new(Probe::default());
    rt.register_simple("probe", probe.clone());
    let (job, _, release_tx) = start_held_job_of(&rt, 4).await;
    let other = rt
        .submit(JobSpec::simple("probe", Value::Null))
        .await
        .unwrap();
    (dir, rt, probe, job, other, release_tx)
}

/// Takes the append gate and submits `spec` on a task of its own: it
/// gets its id and waits for the gate until the returned gate drops.
fn submit_behind_the_gate(
    rt: &Arc<Runtime>,
    spec: JobSpec,
) -> (
    HeldGate,
    tokio::task::JoinHandle<Result<JobId, RuntimeError>>,
) {
    let gate = HeldGate::take(rt.shared());
    let submitter = rt.clone();
    (
        gate,
        tokio::spawn(async move { submitter.submit(spec).await }),
    )
}

/// Waits for each of `ids` to complete.
async fn wait_all(rt: &Runtime, ids: &[JobId]) {
    for &id in ids {
        let done = tokio::time::timeout(Duration::from_secs(30), rt.wait(id))
            .await
            .expect("every job finishes")
            .unwrap();
        assert_eq!(done.state, JobState::Completed, "job {id}");
    }
}

/// Checks that nothing is left in flight or holding, and shuts `rt` down.
async fn finish(rt: Arc<Runtime>) {
    {
        let st = rt.shared().state.lock();
        assert_eq!(st.book.urgent_in_flight.jobs, 0, "every announce settled");
        assert_eq!(st.book.urgent_in_flight.holding, 0, "no worker holds");
    }
    let rt = Arc::try_unwrap(rt).unwrap_or_else(|_| panic!("the submit task is done"));
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// An urgent submit has its id and waits for the append gate. Then the
/// slice's handler returns. On the old code the freed worker leased the
/// queued job at once, and the urgent one, placed a moment later, waited
/// for it to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_freed_while_an_urgent_submit_is_placed_starts_it_before_other_work() {
    let (_dir, rt, probe, job, other, release_tx) = one_busy_worker_and_a_queued_job(AN_HOUR).await;
    let (gate, urgent) =
        submit_behind_the_gate(&rt, JobSpec::simple("probe", Value::Null).with_priority(1));
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
    wait_all(&rt, &[urgent, other, job]).await;
    assert_eq!(
        *probe.0.lock(),
        vec![urgent, other],
        "the urgent job starts first, though the worker was freed before it was placed"
    );
    finish(rt).await;
}

/// An urgent job for later (its `run_at` an hour ahead) is on its way
/// to placement when the worker is freed: no worker could lease it, so
/// none holds for it, and the queued job starts while it is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_submit_for_later_does_not_make_a_freed_worker_hold() {
    let (_dir, rt, probe, job, other, release_tx) = one_busy_worker_and_a_queued_job(AN_HOUR).await;
    let next_id = rt.shared().state.lock().book.next_id;
    let mut spec = JobSpec::simple("probe", Value::Null).with_priority(1);
    spec.run_at = Some(from_ms(NOW_MS + 3_600_000));
    let (gate, later) = submit_behind_the_gate(&rt, spec);
    until("the submit for later has its id", || {
        rt.shared().state.lock().book.next_id > next_id
    })
    .await;
    assert_eq!(
        rt.shared().state.lock().book.urgent_in_flight.jobs,
        0,
        "a job that cannot be leased now is not announced"
    );
    release_tx.send(()).unwrap();
    until(
        "the freed worker leases the queued job while the submit for later waits for the gate",
        || probe.0.lock().contains(&other),
    )
    .await;
    drop(gate);
    later.await.unwrap().unwrap();
    wait_all(&rt, &[other, job]).await;
    finish(rt).await;
}

/// The runtime's clock stands still (a manual clock), the urgent submit
/// stays stalled at the append gate: the freed worker holds for it only
/// `HOLD_MAX_US` by the monotonic clock, then leases the queued job while
/// the submit is still in flight. (Timed by the runtime's clock, the hold
/// never ran out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_ends_for_a_stalled_urgent_submit_though_the_runtime_clock_stands_still() {
    let max = Duration::from_micros(crate::placement::HOLD_MAX_US);
    let (_dir, rt, probe, job, other, release_tx) = one_busy_worker_and_a_queued_job(max).await;
    let (gate, urgent) =
        submit_behind_the_gate(&rt, JobSpec::simple("probe", Value::Null).with_priority(1));
    until("the urgent submit is announced", || {
        rt.shared().state.lock().book.urgent_in_flight.jobs == 1
    })
    .await;
    release_tx.send(()).unwrap();
    until(
        "the freed worker leases the queued job while the urgent submit is stalled",
        || probe.0.lock().contains(&other),
    )
    .await;
    drop(gate);
    let urgent = urgent.await.unwrap().unwrap();
    wait_all(&rt, &[urgent, other, job]).await;
    assert_eq!(*probe.0.lock(), vec![other, urgent]);
    finish(rt).await;
}

/// Every way out of an urgent submit but its apply at placement (the
/// store poisoned, the batch not placed, a panic) drops its `Announced`:
/// the count goes and the holding worker is woken and leases the queued
/// job, though the hold's bound (an hour here) has not run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_submit_that_is_not_placed_counts_itself_out_and_frees_the_holding_worker() {
    let (_dir, rt, probe, job, other, release_tx) = one_busy_worker_and_a_queued_job(AN_HOUR).await;
    let announced = {
        let mut st = rt.shared().state.lock();
        crate::placement::Announced::new(rt.shared(), &mut st, 1)
    };
    release_tx.send(()).unwrap();
    until("the freed worker holds", || {
        rt.shared().state.lock().book.urgent_in_flight.holding == 1
    })
    .await;
    assert!(!probe.0.lock().contains(&other));
    drop(announced);
    until("the worker leases the queued job", || {
        probe.0.lock().contains(&other)
    })
    .await;
    wait_all(&rt, &[other, job]).await;
    finish(rt).await;
}
