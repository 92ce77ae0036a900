//! Start at placement (issue 17; ARCHITECTURE.md, "Start at placement"):
//! an urgent job starts once its `Created` record is placed in the log,
//! before it is durable; its submit is acknowledged only once it is. The
//! simulated file system holds the `fdatasync` (`SimFileLayer::hold_syncs`),
//! so each test sees what happens while it is under way, without timing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;
use booster_store::fs::sim::{CrashMode, SimFileLayer};
use parking_lot::Mutex;
use serde_json::Value;

use crate::common::*;

/// Notes each job it starts; holds (heartbeating) while `hold` is set.
#[derive(Default)]
struct Probe {
    started: Mutex<Vec<JobId>>,
    finished: Mutex<Vec<JobId>>,
    hold: AtomicBool,
}

impl Probe {
    fn started(&self) -> Vec<JobId> {
        self.started.lock().clone()
    }

    fn finished(&self) -> Vec<JobId> {
        self.finished.lock().clone()
    }
}

impl SimpleHandler for Probe {
    fn perform(&self, job: &JobContext<'_>, _args: &Value) -> Result<Option<Value>, HandlerError> {
        self.started.lock().push(job.id);
        while self.hold.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
            booster_runtime::heartbeat();
        }
        self.finished.lock().push(job.id);
        Ok(None)
    }
}

/// Holds `fs`'s syncs until dropped, so a test that fails while they
/// are held fails instead of leaving the store's writer waiting forever.
struct HeldSyncs(SimFileLayer);

impl HeldSyncs {
    fn new(fs: &SimFileLayer) -> HeldSyncs {
        fs.hold_syncs(true);
        HeldSyncs(fs.clone())
    }
}

impl Drop for HeldSyncs {
    fn drop(&mut self) {
        self.0.hold_syncs(false);
    }
}

/// One worker, on `fs`, with the probe registered and one probe run: a
/// kind's first submit carries its `kind_id` record (the durable path)
/// and creates the first segment.
async fn open_with_probe(fs: &SimFileLayer) -> (Runtime, Arc<Probe>) {
    let rt = open(fs).await;
    let probe = Arc::new(Probe::default());
    rt.register_simple("probe", probe.clone());
    let first = rt.submit(urgent()).await.unwrap();
    assert_eq!(rt.wait(first).await.unwrap().state, JobState::Completed);
    (rt, probe)
}

async fn open(fs: &SimFileLayer) -> Runtime {
    let fs = fs.clone();
    let mut o = opts(std::path::Path::new("/placed"), 1);
    o.auto_checkpoint = false;
    let store_opts = booster_store::StoreOptions {
        reserve_bytes: 0,
        ..booster_store::StoreOptions::default()
    };
    Runtime::open_on(o, move || {
        booster_store::Store::open_with(fs, "/placed", store_opts)
    })
    .await
    .unwrap()
}

fn urgent() -> JobSpec {
    JobSpec::simple("probe", Value::Null).with_priority(1)
}

/// Every job the listing shows: (id, state).
async fn listed(rt: &Runtime) -> Vec<(JobId, JobState)> {
    let jobs = rt.jobs(JobFilter::default()).await.unwrap();
    jobs.iter().map(|j| (j.id, j.state)).collect()
}

fn not_found(r: Result<JobStatus, RuntimeError>) -> bool {
    matches!(r, Err(RuntimeError::NotFound(..)))
}

/// Jobs the scheduler counts, over all states.
fn counted(rt: &Runtime) -> u64 {
    rt.metrics().jobs_by_state.iter().map(|(_, n)| n).sum()
}

/// Holds `fs`'s syncs, submits an urgent probe, and waits until its
/// handler started (the second probe of `open_with_probe`'s runtime).
async fn submit_and_start_with_sync_held(
    fs: &SimFileLayer,
    rt: &Runtime,
    probe: &Probe,
) -> (
    HeldSyncs,
    tokio::task::JoinHandle<Result<JobId, RuntimeError>>,
    JobId,
) {
    let held = HeldSyncs::new(fs);
    let submitting = rt.clone();
    let submit = tokio::spawn(async move { submitting.submit(urgent()).await });
    until("the probe started with its sync held", || {
        probe.started().len() == 2
    })
    .await;
    (held, submit, probe.started()[1])
}

/// Fails the held sync (the store is poisoned, G9): the submit fails,
/// and the placed job is out of the scheduler's counts (`before` again).
async fn fail_the_held_sync(
    fs: &SimFileLayer,
    held: HeldSyncs,
    submit: tokio::task::JoinHandle<Result<JobId, RuntimeError>>,
    rt: &Runtime,
    before: u64,
) {
    fs.crash_at(Some(fs.mutating_ops() + 1));
    drop(held);
    let err = submit.await.unwrap().unwrap_err();
    assert!(matches!(err, RuntimeError::Store(_)), "{err}");
    assert_eq!(counted(rt), before, "the placed job was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_job_starts_while_its_created_record_is_being_synced() {
    let fs = SimFileLayer::new();
    let (rt, probe) = open_with_probe(&fs).await;
    let (held, submit, id) = submit_and_start_with_sync_held(&fs, &rt, &probe).await;
    assert!(
        !submit.is_finished(),
        "the submit was answered before its record was durable"
    );
    // Not durable yet: no reader sees it.
    assert!(not_found(rt.job(id).await));
    assert!(not_found(rt.job_or_kept(id).await));
    assert!(listed(&rt).await.iter().all(|(j, _)| *j != id));
    for state in [None, Some(JobState::Running)] {
        let page = rt
            .jobs_page(JobQuery {
                filter: JobFilter {
                    state,
                    ..JobFilter::default()
                },
                before: None,
                limit: 100,
            })
            .await
            .unwrap();
        assert_eq!(page.total, Some(page.jobs.len() as u64), "{state:?}");
    }
    assert!(rt.abort(id).await.is_err());
    drop(held);
    assert_eq!(submit.await.unwrap().unwrap(), id);
    assert_eq!(rt.wait(id).await.unwrap().state, JobState::Completed);
    let live = listed(&rt).await;
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let rt = open(&fs).await;
    assert_eq!(listed(&rt).await, live, "replay rebuilds the live table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_job_whose_sync_fails_is_dropped_never_started_and_its_submit_fails() {
    let fs = SimFileLayer::new();
    let (rt, probe) = open_with_probe(&fs).await;
    // The one worker is busy, so the placed job waits in the queue.
    probe.hold.store(true, Ordering::SeqCst);
    let busy = rt
        .submit(JobSpec::simple("probe", serde_json::json!({"busy": true})))
        .await
        .unwrap();
    until("the busy job started", || probe.started().contains(&busy)).await;
    let before = counted(&rt);
    let held = HeldSyncs::new(&fs);
    let submitting = rt.clone();
    let submit = tokio::spawn(async move { submitting.submit(urgent()).await });
    until("the job is placed", || counted(&rt) == before + 1).await;
    let id = busy + 1;
    assert!(not_found(rt.job(id).await));
    assert!(listed(&rt).await.iter().all(|(j, _)| *j != id));
    fail_the_held_sync(&fs, held, submit, &rt, before).await;
    probe.hold.store(false, Ordering::SeqCst);
    // Its worker is free once the busy job's commit failed too.
    tokio::time::timeout(Duration::from_secs(30), rt.wait_idle())
        .await
        .expect("the poisoned runtime goes idle");
    assert!(!probe.started().contains(&id), "{:?}", probe.started());
    assert!(not_found(rt.job(id).await));
    assert!(listed(&rt).await.iter().all(|(j, _)| *j != id));
    drop(rt);
    let rt = open(&fs.crash_image(CrashMode::DropUnsynced)).await;
    assert!(not_found(rt.job(id).await));
    assert_eq!(rt.job(busy).await.unwrap().state, JobState::Queued);
}

/// The machine stops while the `Created` record's group is being synced,
/// after the handler ran: whatever part of the unsynced write survives,
/// the job comes back without its completion (it runs again: G3), or not
/// at all; never completed without its creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_created_record_is_durable_never_keeps_the_completion() {
    let fs = SimFileLayer::new();
    let (rt, probe) = open_with_probe(&fs).await;
    let before = listed(&rt).await;
    let (held, submit, id) = submit_and_start_with_sync_held(&fs, &rt, &probe).await;
    until("the probe returned", || probe.finished().contains(&id)).await;
    fs.crash_at(Some(fs.mutating_ops() + 1));
    drop(held);
    assert!(submit.await.unwrap().is_err());
    drop(rt);
    let mut modes = vec![CrashMode::DropUnsynced, CrashMode::KeepUnsynced];
    modes.extend((0..8).map(|seed| CrashMode::TornUnsynced { seed }));
    for mode in modes {
        let rt = open(&fs.crash_image(mode)).await;
        let after = listed(&rt).await;
        match rt.job(id).await {
            Err(RuntimeError::NotFound(..)) => assert_eq!(after, before, "{mode:?}"),
            Ok(job) => {
                assert_eq!(job.state, JobState::Queued, "{mode:?}");
                let mut queued = before.clone();
                queued.push((id, JobState::Queued));
                assert_eq!(after, queued, "{mode:?}");
            }
            Err(e) => panic!("{mode:?}: {e}"),
        }
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}

/// A placed job's completion waits for its creation (ARCHITECTURE.md,
/// "Start at placement", rule 2): the writer is held in the sync of an
/// earlier group (a queued job's), so the urgent `Created` is placed in
/// the next group, and its handler finishes before that group is
/// written. Were its `SimpleDone` placed then, it would go in the same
/// write as its `Created`, and a disk that kept the later page and not
/// the earlier would hold a completion without its creation. That write's
/// sync fails: the image that keeps its unsynced bytes holds the
/// creation, never the completion, and the job's commit is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_jobs_completion_is_not_placed_before_its_creation_is_durable() {
    let fs = SimFileLayer::new();
    let (rt, probe) = open_with_probe(&fs).await;
    let held = HeldSyncs::new(&fs);
    let ops = fs.mutating_ops();
    let submitting = rt.clone();
    let queued = tokio::spawn(async move {
        submitting
            .submit(JobSpec::simple(
                "probe",
                serde_json::json!({"queued": true}),
            ))
            .await
    });
    until("the queued job's group is written, its sync held", || {
        fs.mutating_ops() > ops
    })
    .await;
    let submitting = rt.clone();
    let submit = tokio::spawn(async move { submitting.submit(urgent()).await });
    until("the urgent probe ran", || probe.finished().len() == 2).await;
    let id = probe.finished()[1];
    // Long enough for a completion to be placed, were it let.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The queued job's sync, the urgent group's write, then its sync fails.
    fs.crash_at(Some(fs.mutating_ops() + 3));
    drop(held);
    let queued = queued.await.unwrap().unwrap();
    assert!(submit.await.unwrap().is_err());
    drop(rt);
    let rt = open(&fs.crash_image(CrashMode::KeepUnsynced)).await;
    assert_eq!(rt.job(queued).await.unwrap().state, JobState::Queued);
    let job = rt.job(id).await.expect("its group was written, unsynced");
    assert_eq!(
        job.state,
        JobState::Queued,
        "a completion placed with its creation"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let rt = open(&fs.crash_image(CrashMode::DropUnsynced)).await;
    assert!(not_found(rt.job(id).await));
}

/// The placed job is running when its `Created`'s sync fails:
/// `drop_placed` revokes its lease, so the handler's commit, which waited
/// for the creation, is refused (`commits_fenced`), and no image of the
/// disk holds its completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_placed_job_whose_sync_fails_loses_its_commit() {
    let fs = SimFileLayer::new();
    let (rt, probe) = open_with_probe(&fs).await;
    let before = listed(&rt).await;
    let counted_before = counted(&rt);
    probe.hold.store(true, Ordering::SeqCst);
    let (held, submit, id) = submit_and_start_with_sync_held(&fs, &rt, &probe).await;
    let fenced = rt.metrics().commits_fenced;
    fail_the_held_sync(&fs, held, submit, &rt, counted_before).await;
    probe.hold.store(false, Ordering::SeqCst);
    until("the handler returned", || probe.finished().contains(&id)).await;
    until("its commit was refused", || {
        rt.metrics().commits_fenced > fenced
    })
    .await;
    assert!(not_found(rt.job(id).await));
    assert_eq!(probe.started().iter().filter(|j| **j == id).count(), 1);
    drop(rt);
    for mode in [CrashMode::DropUnsynced, CrashMode::KeepUnsynced] {
        let rt = open(&fs.crash_image(mode)).await;
        let after = listed(&rt).await;
        match rt.job(id).await {
            Err(RuntimeError::NotFound(..)) => assert_eq!(after, before, "{mode:?}"),
            Ok(job) => assert_eq!(job.state, JobState::Queued, "{mode:?}"),
            Err(e) => panic!("{mode:?}: {e}"),
        }
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}
