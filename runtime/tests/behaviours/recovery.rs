use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;
use parking_lot::Mutex;

use crate::common::*;

/// Copies records slowly, counting runs per slice (by its first record).
struct SlowCopy {
    runs: Mutex<HashMap<Vec<u8>, u32>>,
    slices: AtomicUsize,
}

impl RecordHandler for SlowCopy {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        std::thread::sleep(Duration::from_millis(1));
        out.push(record.to_vec());
        Ok(())
    }
    fn process_slice(&self, job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        self.slices.fetch_add(1, Ordering::SeqCst);
        *self.runs.lock().entry(records[0].clone()).or_default() += 1;
        let mut output = Vec::new();
        for r in records {
            self.process(job, r, &mut output).unwrap();
        }
        SliceOutcome::Done {
            output,
            record_errors: Vec::new(),
        }
    }
}

fn slow() -> Arc<SlowCopy> {
    Arc::new(SlowCopy {
        runs: Mutex::new(HashMap::new()),
        slices: AtomicUsize::new(0),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_job_finishes_with_complete_output_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = records(600);
    let job;
    {
        let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
        rt.register_sliced("copy", slow());
        job = rt.submit(sliced("copy", 10)).await.unwrap();
        upload_all(&rt, job, &input).await;
        until("some slices done", || {
            futures::executor::block_on(rt.job(job))
                .unwrap()
                .slices_done
                >= 10
        })
        .await;
        // Dropped without shutdown, mid-job.
    }
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    let at_open = rt.job(job).await.unwrap();
    assert!(at_open.slices_done >= 10 && at_open.slices_done < 60);
    assert_eq!(at_open.slices_running, 0, "leases do not survive a restart");
    let handler = slow();
    rt.register_sliced("copy", handler.clone());
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.state, JobState::Completed);
    // Nothing committed before the restart ran again.
    assert_eq!(
        handler.slices.load(Ordering::SeqCst) as u64,
        60 - at_open.slices_done
    );
    assert!(handler.runs.lock().values().all(|n| *n == 1));
    assert_eq!(
        download(&rt, job, Category::Main),
        input,
        "complete, in order, exactly once"
    );
    assert_eq!((s.records_in, s.records_out), (600, 600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_interrupted_by_a_crash_leaves_the_job_failed_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let job;
    {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        job = rt.submit(sliced("copy", 10)).await.unwrap();
        let mut up = rt.upload(job).await.unwrap();
        for r in records(35) {
            up.push(r).await.unwrap();
        }
        // Like a crash: the uploader vanishes on a thread without tokio, so
        // it cannot record anything.
        std::thread::spawn(move || drop(up)).join().unwrap();
    }
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let s = rt.job(job).await.unwrap();
    assert_eq!(s.state, JobState::Failed);
    assert!(!s.upload_complete);
    assert!(s.failure_reason.unwrap().contains("upload interrupted"));
    assert!(matches!(rt.retry(job).await, Err(RuntimeError::Invalid(_))));
}

/// Issue 16: "finished 1 ms ago" after every open. Replay takes every
/// time from the log, never from the clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_keep_their_times_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (interrupted, failed) = {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        let interrupted = rt.submit(sliced("copy", 10)).await.unwrap();
        let up = rt.upload(interrupted).await.unwrap();
        std::thread::spawn(move || drop(up)).join().unwrap();
        let failed = rt.submit(sliced("copy", 10)).await.unwrap();
        upload_all(&rt, failed, &records(3)).await;
        rt.fail(failed, "stale".into()).await.unwrap();
        (interrupted, failed)
    };
    let times = |s: JobStatus| (s.state, s.created_at, s.completed_at);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        let a = times(rt.job(interrupted).await.unwrap());
        let b = times(rt.job(failed).await.unwrap());
        assert_eq!(
            a.0,
            JobState::Failed,
            "the first open fails the interrupted upload"
        );
        seen.push((a, b));
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
        // The clock moves on between opens; the times must not.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_jobs_survive_a_restart_and_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let ids;
    {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        let specs = vec![JobSpec::simple("later", serde_json::json!({"x": 1})); 100];
        ids = rt.submit_many(specs).await.unwrap();
    }
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    assert_eq!(rt.metrics().jobs_by_state[1], (JobState::Queued, 100));
    let count = Arc::new(AtomicUsize::new(0));
    rt.register_simple("later", Arc::new(Count(count.clone())));
    for id in &ids {
        assert_eq!(rt.wait(*id).await.unwrap().state, JobState::Completed);
    }
    assert_eq!(count.load(Ordering::SeqCst), 100);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    assert_eq!(rt.metrics().jobs_by_state[4], (JobState::Completed, 100));
}

struct Count(Arc<AtomicUsize>);

impl SimpleHandler for Count {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Some(args["x"].clone()))
    }
}

/// Holds every record until `release` opens it, heartbeating meanwhile.
struct Held {
    open: std::sync::atomic::AtomicBool,
}

impl RecordHandler for Held {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        while !self.open.load(Ordering::Acquire) && !lease_ended() {
            heartbeat();
            std::thread::sleep(Duration::from_millis(2));
        }
        out.push(record.to_vec());
        Ok(())
    }
}

/// The epoch of the one lease out, once there is one.
async fn leased_epoch(rt: &Runtime) -> u64 {
    let mut epoch = None;
    for _ in 0..3000 {
        epoch = rt
            .workers()
            .await
            .iter()
            .find_map(|w| w.lease.as_ref().map(|l| l.epoch));
        if epoch.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    epoch.expect("a lease within 15 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_epochs_never_repeat_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let mut epochs = Vec::new();
    let job = {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        let job = rt.submit(sliced("held", 10)).await.unwrap();
        upload_all(&rt, job, &records(20)).await;
        job
    };
    for _ in 0..2 {
        let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
        let held = Arc::new(Held {
            open: std::sync::atomic::AtomicBool::new(false),
        });
        rt.register_sliced("held", held.clone());
        epochs.push(leased_epoch(&rt).await);
        // Like a crash: the lease is never committed.
        rt.shutdown(Duration::ZERO).await.unwrap();
        held.open.store(true, Ordering::Release);
    }
    assert_ne!(
        epochs[0], epochs[1],
        "the second open handed out the first one's epoch"
    );
    assert!(epochs[1] > epochs[0], "{epochs:?}");
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    assert_eq!(rt.job(job).await.unwrap().slices_done, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_and_failed_record_counters_count_live_work_not_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
        rt.register_sliced("copy", echo());
        let job = rt.submit(sliced("copy", 10)).await.unwrap();
        let mut up = rt.upload(job).await.unwrap();
        for (i, r) in records(30).into_iter().enumerate() {
            if i < 4 {
                up.push_rejected(r, i as u64 + 1, "bad".into())
                    .await
                    .unwrap();
            } else {
                up.push(r).await.unwrap();
            }
        }
        up.finish().await.unwrap();
        rt.wait(job).await.unwrap();
        let gone = rt.submit(sliced("copy", 10)).await.unwrap();
        rt.fail(gone, "operator".into()).await.unwrap();
        let m = rt.metrics();
        assert_eq!(
            (m.jobs_completed, m.jobs_failed, m.records_failed),
            (1, 1, 4)
        );
        rt.shutdown(Duration::from_secs(5)).await.unwrap();
    }
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    let m = rt.metrics();
    assert_eq!(
        (m.jobs_completed, m.jobs_failed, m.records_failed),
        (0, 0, 0),
        "replaying the log is not new work"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
