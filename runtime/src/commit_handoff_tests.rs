//! A worker's slice commit is handed to its commit thread (issue 17;
//! ARCHITECTURE.md, "Priority: what bounds a start"): the worker takes its
//! next lease while the output is still on its way to the store. The
//! store's append gate, held here as a checkpoint or a compaction holds
//! it, stands for a commit that takes long on the worker's way to the
//! store (compression, sealing, a contended core): no timing.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use crate::*;

/// Holds the first slice it is given until released; copies every record.
struct HeldCopy {
    started: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
    /// The first record of each slice it ran, once per run.
    ran: Mutex<Vec<Vec<u8>>>,
}

impl RecordHandler for HeldCopy {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        out.push(record.to_vec());
        Ok(())
    }

    fn process_slice(&self, _job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        self.ran
            .lock()
            .push(records.first().cloned().unwrap_or_default());
        if let Some(started) = self.started.lock().take() {
            let _ = started.send(());
            let release = self.release.lock().take().expect("held once");
            while release.recv_timeout(Duration::from_millis(5)).is_err() {
                heartbeat();
            }
        }
        SliceOutcome::Done {
            output: records.to_vec(),
            record_errors: Vec::new(),
        }
    }
}

impl HeldCopy {
    /// One that holds no slice (the first was held before a reopen).
    fn free() -> Arc<HeldCopy> {
        Arc::new(HeldCopy {
            started: Mutex::new(None),
            release: Mutex::new(None),
            ran: Mutex::new(Vec::new()),
        })
    }
}

/// Notes the jobs it starts.
#[derive(Default)]
pub(crate) struct Probe(pub(crate) Mutex<Vec<JobId>>);

impl SimpleHandler for Probe {
    fn perform(&self, job: &JobContext<'_>, _args: &Value) -> Result<Option<Value>, HandlerError> {
        self.0.lock().push(job.id);
        Ok(None)
    }
}

/// Holds `shared`'s append gate exclusively on a thread of its own (a
/// parking_lot guard stays on the thread that took it) until dropped.
pub(crate) struct HeldGate(
    Option<mpsc::Sender<()>>,
    Option<std::thread::JoinHandle<()>>,
);

impl HeldGate {
    pub(crate) fn take(shared: &Arc<crate::shared::Shared>) -> HeldGate {
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let shared = shared.clone();
        let thread = std::thread::spawn(move || {
            let _gate = shared.append_gate.write();
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
        held_rx.recv().expect("the gate is taken");
        HeldGate(Some(release_tx), Some(thread))
    }
}

impl Drop for HeldGate {
    fn drop(&mut self) {
        drop(self.0.take());
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

/// Registers `held-copy` (holding its first slice), submits a job of it
/// with 8 records in slices of 4, and waits until its first slice is
/// held in the handler. Returns the job, its records and the release.
async fn start_held_job(rt: &Runtime) -> (JobId, Vec<Vec<u8>>, mpsc::Sender<()>) {
    start_held_job_of(rt, 8).await
}

/// `start_held_job` with `n` records.
pub(crate) async fn start_held_job_of(
    rt: &Runtime,
    n: usize,
) -> (JobId, Vec<Vec<u8>>, mpsc::Sender<()>) {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    rt.register_sliced(
        "held-copy",
        Arc::new(HeldCopy {
            started: Mutex::new(Some(started_tx)),
            release: Mutex::new(Some(release_rx)),
            ran: Mutex::new(Vec::new()),
        }),
    );
    let (job, records) = submit_copy_job(rt, n).await;
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    (job, records, release_tx)
}

/// The job finished with every record once, in input order.
async fn assert_complete(rt: &Runtime, job: JobId, records: &[Vec<u8>], what: &str) {
    let done = tokio::time::timeout(Duration::from_secs(30), rt.wait(job))
        .await
        .expect("the job finishes")
        .unwrap();
    assert_eq!(done.state, JobState::Completed, "{what}");
    assert_eq!(done.records_in, records.len() as u64, "{what}");
    assert_eq!(done.records_processed, records.len() as u64, "{what}");
    assert_eq!(done.records_out, records.len() as u64, "{what}");
    let out: Vec<Vec<u8>> = rt
        .download(job, Category::Main)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, records, "{what}: every record once, in input order");
}

pub(crate) async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freed_worker_starts_an_urgent_job_before_its_slice_output_reaches_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RuntimeOptions::new(dir.path());
    opts.workers = 1;
    opts.slice_size = 4;
    opts.auto_checkpoint = false;
    let rt = Runtime::open(opts).await.unwrap();
    let probe = Arc::new(Probe::default());
    rt.register_simple("probe", probe.clone());
    let (job, records, release_tx) = start_held_job(&rt).await;
    // The one worker is busy: the urgent job waits in the queue.
    let urgent = rt
        .submit(JobSpec::simple("probe", Value::Null).with_priority(1))
        .await
        .unwrap();
    let gate = HeldGate::take(rt.shared());
    release_tx.send(()).unwrap();
    until(
        "the urgent job started while its worker's slice commit waits",
        || probe.0.lock().contains(&urgent),
    )
    .await;
    assert_eq!(
        rt.job(job).await.unwrap().slices_done,
        0,
        "the slice's output cannot be in the store while the gate is held"
    );
    drop(gate);
    assert_complete(&rt, job, &records, "once its commits reach the store").await;
    assert_eq!(rt.wait(urgent).await.unwrap().state, JobState::Completed);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// One worker on the simulated file system at `/handed`.
async fn open_sim(fs: &booster_store::fs::sim::SimFileLayer) -> Runtime {
    let fs = fs.clone();
    let mut opts = RuntimeOptions::new("/handed");
    opts.workers = 1;
    opts.slice_size = 4;
    opts.auto_checkpoint = false;
    let store_opts = booster_store::StoreOptions {
        reserve_bytes: 0,
        ..booster_store::StoreOptions::default()
    };
    Runtime::open_on(opts, move || {
        booster_store::Store::open_with(fs, "/handed", store_opts)
    })
    .await
    .unwrap()
}

/// The sync of a handed slice commit fails (the store is poisoned, G9)
/// after its worker went on to its next lease (the job's second slice,
/// leased while the first's sync is held): the slice was never done, and
/// after a reopen it runs again where the disk dropped the unsynced
/// write (or its kept commit stands), and the output holds every record
/// once, in order, with the counts reconciled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handed_commit_whose_sync_fails_runs_its_slice_again_and_loses_no_record() {
    use booster_store::fs::sim::{CrashMode, SimFileLayer};
    let fs = SimFileLayer::new();
    let rt = open_sim(&fs).await;
    let (job, records, release_tx) = start_held_job(&rt).await;
    fs.hold_syncs(true);
    let ops = fs.mutating_ops();
    release_tx.send(()).unwrap();
    until("the first slice's commit is written, its sync held", || {
        fs.mutating_ops() > ops
    })
    .await;
    until(
        "the worker leased the second slice while the first's sync is held",
        || {
            rt.shared().state.lock().book.leases.values().any(|l| {
                matches!(l.work, crate::state::LeaseWork::Slice { job: j, slice: 1 } if j == job)
            })
        },
    )
    .await;
    assert_eq!(
        rt.shared().state.lock().book.poisoned,
        None,
        "the second slice was leased before the first's sync failed"
    );
    fs.crash_at(Some(fs.mutating_ops() + 1));
    fs.hold_syncs(false);
    until("the runtime is poisoned", || {
        rt.shared().state.lock().book.poisoned.is_some()
    })
    .await;
    assert_eq!(rt.job(job).await.unwrap().slices_done, 0);
    drop(rt);
    for mode in [CrashMode::DropUnsynced, CrashMode::KeepUnsynced] {
        let rt = open_sim(&fs.crash_image(mode)).await;
        let handler = HeldCopy::free();
        rt.register_sliced("held-copy", handler.clone());
        assert_complete(&rt, job, &records, &format!("{mode:?}")).await;
        let ran = handler.ran.lock().clone();
        if mode == CrashMode::DropUnsynced {
            assert_eq!(
                ran.iter().filter(|r| **r == records[0]).count(),
                1,
                "the first slice ran again, once, after its write was dropped: {ran:?}"
            );
        }
        assert!(
            ran.iter().all(|r| *r == records[0] || *r == records[4]),
            "only whole slices ran: {ran:?}"
        );
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}

/// The runtime's store, except for an append made on a worker's commit
/// thread: while `panics` is above 0 it panics (as a panic in
/// `Batch::prepare` would), dropping its callback uncalled; while `held`,
/// it waits (a commit thread that is behind, its compression slow).
struct OnCommitThread {
    inner: Arc<dyn crate::slice_store::SliceStore>,
    panics: std::sync::atomic::AtomicU32,
    held: Mutex<bool>,
    released: parking_lot::Condvar,
}

impl OnCommitThread {
    fn new(inner: Arc<dyn crate::slice_store::SliceStore>, panics: u32, held: bool) -> Self {
        OnCommitThread {
            inner,
            panics: std::sync::atomic::AtomicU32::new(panics),
            held: Mutex::new(held),
            released: parking_lot::Condvar::new(),
        }
    }

    fn release(&self) {
        *self.held.lock() = false;
        self.released.notify_all();
    }

    fn on_append(&self) {
        use std::sync::atomic::Ordering;
        let on_commit_thread = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("booster-commit"));
        if !on_commit_thread {
            return;
        }
        let mut held = self.held.lock();
        while *held {
            self.released.wait(&mut held);
        }
        drop(held);
        if self
            .panics
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("a commit panicked on its way to the store (test)");
        }
    }
}

type Done = Box<dyn FnOnce(Result<booster_store::Receipt, booster_store::StoreError>) + Send>;
type Bounds = (std::ops::Bound<u64>, std::ops::Bound<u64>);

impl crate::slice_store::SliceStore for OnCommitThread {
    fn append_with(&self, batch: booster_store::Batch, done: Done) {
        self.on_append();
        self.inner.append_with(batch, done)
    }
    fn append_placing(&self, batch: booster_store::Batch, done: Done) -> bool {
        self.on_append();
        self.inner.append_placing(batch, done)
    }
    fn read_slice(
        &self,
        key: &booster_store::SliceKey,
    ) -> Result<Option<Vec<Vec<u8>>>, booster_store::StoreError> {
        self.inner.read_slice(key)
    }
    fn read_slice_records(
        &self,
        key: &booster_store::SliceKey,
    ) -> Result<Option<booster_store::SliceRecords>, booster_store::StoreError> {
        self.inner.read_slice_records(key)
    }
    fn slices(&self, owner: u64, stream: u32) -> Vec<booster_store::SliceInfo> {
        self.inner.slices(owner, stream)
    }
    fn scan(
        &self,
        owner: u64,
        stream: u32,
        seqs: Bounds,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<booster_store::SliceInfo>, booster_store::StoreError> {
        self.inner.scan(owner, stream, seqs, rev, limit)
    }
    fn scan_within(
        &self,
        owner: u64,
        stream: u32,
        seqs: Bounds,
        rev: bool,
        limit: usize,
        max_keys: usize,
    ) -> Result<booster_store::ScanPage, booster_store::StoreError> {
        self.inner
            .scan_within(owner, stream, seqs, rev, limit, max_keys)
    }
    fn compact(
        &self,
        plan: &dyn booster_store::CompactionPlan,
    ) -> Result<booster_store::CompactionReport, booster_store::StoreError> {
        self.inner.compact(plan)
    }
    fn compact_segments(
        &self,
        plan: &dyn booster_store::CompactionPlan,
        min_dead_share: f64,
    ) -> Result<booster_store::CompactionReport, booster_store::StoreError> {
        self.inner.compact_segments(plan, min_dead_share)
    }
    fn stats(&self) -> booster_store::StoreStats {
        self.inner.stats()
    }
    fn verify(&self) -> booster_store::VerifyReport {
        self.inner.verify()
    }
    fn stats_with(
        &self,
        plan: &dyn booster_store::CompactionPlan,
    ) -> Result<booster_store::StoreStats, booster_store::StoreError> {
        self.inner.stats_with(plan)
    }
    fn memory(&self) -> booster_store::StoreMemory {
        self.inner.memory()
    }
    fn shutdown(&self) -> Result<(), booster_store::StoreError> {
        self.inner.shutdown()
    }
    fn free_bytes(&self) -> Option<u64> {
        self.inner.free_bytes()
    }
}

/// One worker, on a store whose commit-thread appends panic `panics`
/// times and wait while `held` (`OnCommitThread`, returned).
async fn open_on_commit_thread(
    dir: &std::path::Path,
    panics: u32,
    held: bool,
) -> (Runtime, Arc<OnCommitThread>) {
    let mut opts = RuntimeOptions::new(dir);
    opts.workers = 1;
    opts.slice_size = 4;
    opts.auto_checkpoint = false;
    let path = dir.to_path_buf();
    let (tx, rx) = mpsc::channel();
    let rt = Runtime::open_wrapped(
        opts,
        move || booster_store::Store::open(&path, booster_store::StoreOptions::default()),
        move |inner| {
            let wrapped = Arc::new(OnCommitThread::new(inner, panics, held));
            let _ = tx.send(wrapped.clone());
            wrapped
        },
    )
    .await
    .unwrap();
    (rt, rx.recv().expect("the store was wrapped"))
}

/// Submits a job of `held-copy` with `n` records (`r0`, `r1`, ...) in
/// slices of 4.
async fn submit_copy_job(rt: &Runtime, n: usize) -> (JobId, Vec<Vec<u8>>) {
    let records: Vec<Vec<u8>> = (0..n).map(|i| format!("r{i}").into_bytes()).collect();
    let job = rt
        .submit(JobSpec::sliced("held-copy").with_slice_size(4))
        .await
        .unwrap();
    let mut up = rt.upload(job).await.unwrap();
    for r in &records {
        up.push(r.clone()).await.unwrap();
    }
    up.finish().await.unwrap();
    (job, records)
}

/// One worker, on a store whose commit-thread appends panic `panics`
/// times; runs a one-slice job of `held-copy` (holding nothing) to its end. Returns the
/// runtime, the job's end, and how many times its slice ran.
async fn run_with_commit_panics(dir: &std::path::Path, panics: u32) -> (Runtime, JobStatus, u32) {
    let (rt, _) = open_on_commit_thread(dir, panics, false).await;
    let handler = HeldCopy::free();
    rt.register_sliced("held-copy", handler.clone());
    let (job, _) = submit_copy_job(&rt, 4).await;
    let done = tokio::time::timeout(Duration::from_secs(30), rt.wait(job))
        .await
        .expect("the job ends: no lease stays committing for good (G4)")
        .unwrap();
    let ran = handler.ran.lock().len() as u32;
    (rt, done, ran)
}

/// How many leases are committing (won `begin_commit`, not yet ended).
fn committing(rt: &Runtime) -> usize {
    let st = rt.shared().state.lock();
    st.book.leases.values().filter(|l| l.committing).count()
}

/// The worker's commit thread is behind: one commit stuck on its way to
/// the store, two queued behind it. The worker takes the urgent job
/// submitted then (on the old code it waited to hand over its third
/// commit, and the urgent job waited with it), and only that: the bulk
/// job's fourth slice waits for the thread to catch up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_commit_thread_is_behind_still_starts_an_urgent_job() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, store) = open_on_commit_thread(dir.path(), 0, true).await;
    let probe = Arc::new(Probe::default());
    rt.register_simple("probe", probe.clone());
    let handler = HeldCopy::free();
    rt.register_sliced("held-copy", handler.clone());
    let (job, records) = submit_copy_job(&rt, 16).await;
    until("three slice commits wait for the commit thread", || {
        committing(&rt) == 3
    })
    .await;
    let urgent = rt
        .submit(JobSpec::simple("probe", Value::Null).with_priority(1))
        .await
        .unwrap();
    until(
        "the urgent job started while the commit thread is behind",
        || probe.0.lock().contains(&urgent),
    )
    .await;
    assert_eq!(
        handler.ran.lock().len(),
        3,
        "a worker that is behind takes no slice of the bulk job"
    );
    assert_eq!(rt.job(job).await.unwrap().slices_done, 0);
    store.release();
    assert_complete(&rt, job, &records, "once the commit thread catches up").await;
    assert_eq!(rt.wait(urgent).await.unwrap().state, JobState::Completed);
    assert_drained(rt).await;
}

/// No commit is left counted in flight, and shutdown (which waits on
/// that count) ends.
async fn assert_drained(rt: Runtime) {
    let shared = rt.shared().clone();
    until("no commit is counted in flight", || {
        shared
            .inflight_commits
            .load(std::sync::atomic::Ordering::Acquire)
            == 0
    })
    .await;
    tokio::time::timeout(Duration::from_secs(30), rt.shutdown(Duration::from_secs(5)))
        .await
        .expect("shutdown ends")
        .unwrap();
}

/// A commit that panics on the commit thread (its callback dropped
/// uncalled) hands its lease back: the slice runs again, and after the
/// third panic it fails, named as a panic on the way to the store, not
/// in the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_whose_commit_panics_three_times_runs_again_then_fails_not_as_a_handler_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, done, ran) = run_with_commit_panics(dir.path(), 3).await;
    assert_eq!(ran, 3, "the slice ran once per panicked commit");
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    assert_eq!(done.slices_failed, 1, "{done:?}");
    let said = format!("{:?} {:?}", done.failure_reason, done.errors);
    assert!(said.contains("on the way to the store"), "{said}");
    assert!(!said.contains("handler panicked"), "{said}");
    assert_drained(rt).await;
}

/// The `SliceFailed` that the third panic commits panics too (on the
/// commit thread, inside `on_panic`): the thread lives on, the lease goes
/// back, and the slice runs again to completion; nothing hangs (G4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_failing_a_panicked_commit_hands_the_lease_back() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, done, ran) = run_with_commit_panics(dir.path(), 4).await;
    assert_eq!(done.state, JobState::Completed, "{done:?}");
    assert_eq!(ran, 4, "the slice ran again after each lost commit");
    assert_eq!(done.records_out, 4, "{done:?}");
    assert_drained(rt).await;
}

/// `shutdown` with its grace spent while two slice commits are still with
/// the commit thread (one waiting for the store's append gate, one
/// queued): it waits for them (`handed_commits`) before its last
/// checkpoint and the store's close, so both are durable, and the
/// reopened store has the slices done: neither runs again. On the old
/// code the shutdown closed the store after its 1 s wait for the workers,
/// the late appends failed `Closed`, and both slices ran again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_commits_handed_to_a_commit_thread() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || {
        let mut opts = RuntimeOptions::new(dir.path());
        opts.workers = 1;
        opts.slice_size = 4;
        opts.auto_checkpoint = false;
        opts
    };
    let rt = Runtime::open(opts()).await.unwrap();
    let (job, records, release_tx) = start_held_job(&rt).await;
    let gate = HeldGate::take(rt.shared());
    release_tx.send(()).unwrap();
    until("both slice commits are with the commit thread", || {
        committing(&rt) == 2
    })
    .await;
    let mut stop = tokio::spawn(rt.shutdown(Duration::ZERO));
    // Long past the old code's 1 s wait for its workers: by then the old
    // code had closed the store; the new one waits for the gate.
    let early = tokio::time::timeout(Duration::from_secs(3), &mut stop).await;
    drop(gate);
    match early {
        Ok(stopped) => stopped.unwrap().unwrap(),
        Err(_) => stop.await.unwrap().unwrap(),
    }
    let rt = Runtime::open(opts()).await.unwrap();
    let handler = HeldCopy::free();
    rt.register_sliced("held-copy", handler.clone());
    assert_complete(&rt, job, &records, "after the reopen").await;
    assert_eq!(
        *handler.ran.lock(),
        Vec::<Vec<u8>>::new(),
        "no slice ran again: both commits reached the store before it closed"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
