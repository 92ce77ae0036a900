use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use booster_runtime::*;
use parking_lot::Mutex;

use crate::common::*;

fn refused(r: Result<(), RuntimeError>, action: &str, state: JobState) {
    match r {
        Err(RuntimeError::IllegalTransition {
            action: a,
            state: s,
            ..
        }) => assert_eq!((a.as_str(), s), (action, state)),
        other => panic!("{action} from {state:?} should be refused, got {other:?}"),
    }
}

async fn state(rt: &Runtime, job: JobId) -> JobState {
    rt.job(job).await.unwrap().state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_paused_failed_aborted_transitions_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    // No handler for "parked": the job stays queued.
    let j = rt
        .submit(JobSpec::simple("parked", serde_json::Value::Null))
        .await
        .unwrap();
    assert_eq!(state(&rt, j).await, JobState::Queued);
    refused(rt.resume(j).await, "resume", JobState::Queued);
    refused(rt.retry(j).await, "retry", JobState::Queued);
    rt.pause(j).await.unwrap();
    assert_eq!(state(&rt, j).await, JobState::Paused);
    refused(rt.pause(j).await, "pause", JobState::Paused);
    refused(rt.retry(j).await, "retry", JobState::Paused);
    rt.resume(j).await.unwrap();
    assert_eq!(state(&rt, j).await, JobState::Queued);
    rt.fail(j, "operator said so".into()).await.unwrap();
    let s = rt.job(j).await.unwrap();
    assert_eq!(s.state, JobState::Failed);
    assert_eq!(s.failure_reason.as_deref(), Some("operator said so"));
    refused(rt.pause(j).await, "pause", JobState::Failed);
    refused(rt.resume(j).await, "resume", JobState::Failed);
    refused(rt.fail(j, "again".into()).await, "fail", JobState::Failed);
    rt.retry(j).await.unwrap();
    assert_eq!(state(&rt, j).await, JobState::Queued);
    rt.abort(j).await.unwrap();
    assert_eq!(state(&rt, j).await, JobState::Aborted);
    for (r, action) in [
        (rt.abort(j).await, "abort"),
        (rt.pause(j).await, "pause"),
        (rt.resume(j).await, "resume"),
        (rt.retry(j).await, "retry"),
        (rt.fail(j, "x".into()).await, "fail"),
    ] {
        refused(r, action, JobState::Aborted);
    }
    rt.destroy(j).await.unwrap();
    assert!(matches!(rt.job(j).await, Err(RuntimeError::NotFound(..))));
    assert!(matches!(rt.pause(j).await, Err(RuntimeError::NotFound(..))));
    // A failed job can be aborted.
    let k = rt
        .submit(JobSpec::simple("parked", serde_json::Value::Null))
        .await
        .unwrap();
    rt.fail(k, "x".into()).await.unwrap();
    rt.abort(k).await.unwrap();
    assert_eq!(state(&rt, k).await, JobState::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_job_pauses_and_resumes_to_scheduled() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let mut spec = JobSpec::simple("parked", serde_json::Value::Null);
    spec.run_at = Some(SystemTime::now() + Duration::from_secs(3600));
    let j = rt.submit(spec).await.unwrap();
    assert_eq!(state(&rt, j).await, JobState::Scheduled);
    refused(rt.resume(j).await, "resume", JobState::Scheduled);
    rt.pause(j).await.unwrap();
    rt.resume(j).await.unwrap();
    assert_eq!(state(&rt, j).await, JobState::Scheduled);
    rt.destroy(j).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_job_runs_once_its_time_comes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_simple("ok", Arc::new(Ok42));
    let mut spec = JobSpec::simple("ok", serde_json::Value::Null);
    spec.run_at = Some(SystemTime::now() + Duration::from_millis(100));
    let j = rt.submit(spec).await.unwrap();
    assert_eq!(state(&rt, j).await, JobState::Scheduled);
    assert_eq!(rt.wait(j).await.unwrap().state, JobState::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_not_started_before_expires_at_is_dropped_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let mut spec = JobSpec::simple("parked", serde_json::Value::Null);
    spec.expires_at = Some(SystemTime::now() + Duration::from_millis(50));
    let j = rt.submit(spec).await.unwrap();
    let s = rt.wait(j).await.unwrap();
    assert_eq!(s.state, JobState::Aborted);
    assert!(s.failure_reason.unwrap().starts_with("expired"));
}

/// A simple handler that blocks without heartbeating until `go` is set:
/// its lease expires.
#[derive(Default)]
struct Stuck {
    go: std::sync::atomic::AtomicBool,
}

impl SimpleHandler for Stuck {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        _args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        while !self.go.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(None)
    }
}

/// A job leased when its `expires_at` passed, whose lease then expired,
/// is back in the queue unfinished: it expires live as it does after a
/// reopen (before, live it was never expired, and any reopen expired it
/// at its first tick).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_lease_expired_past_its_expires_at_expires_live_as_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_ms(1_000_000));
    let mut o = opts(dir.path(), 1);
    o.clock = clock.clone();
    o.auto_checkpoint = false;
    let rt = Runtime::open(o.clone()).await.unwrap();
    let stuck = Arc::new(Stuck::default());
    rt.register_simple("stuck", stuck.clone());
    let mut spec = JobSpec::simple("stuck", serde_json::Value::Null);
    spec.expires_at = Some(std::time::UNIX_EPOCH + Duration::from_millis(1_010_000));
    let id = rt.submit(spec).await.unwrap();
    until("the job leased", || {
        rt.metrics().jobs_by_state.contains(&(JobState::Running, 1))
    })
    .await;
    // Nothing leases it again once its lease ends.
    rt.set_kind_limit("stuck", Some(0)).await;
    clock.advance_ms(20_000);
    // Past expires_at while leased; then the lease (30 s) expires.
    let mut expiries = 0;
    while expiries == 0 {
        clock.advance_ms(1_000);
        tokio::time::sleep(Duration::from_millis(20)).await;
        expiries = rt.metrics().lease_expiries;
    }
    // The expiry is counted as its records are written; the job shows
    // Running until they are durable and applied, then Queued (the old
    // fault) or Aborted. Wait for a finished state, bounded.
    let mut live = rt.job(id).await.unwrap();
    for _ in 0..3000 {
        if live.state.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        live = rt.job(id).await.unwrap();
    }
    stuck.go.store(true, std::sync::atomic::Ordering::SeqCst);
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
    let rt = Runtime::open(o).await.unwrap();
    let reopened = rt.wait(id).await.unwrap();
    assert_eq!(
        (live.state, live.failure_reason),
        (reopened.state, reopened.failure_reason),
        "live and reopened agree"
    );
    assert_eq!(reopened.state, JobState::Aborted);
}

struct Ok42;

impl SimpleHandler for Ok42 {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        _args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        Ok(Some(serde_json::json!(42)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_job_refuses_everything_but_destroy() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_simple("ok", Arc::new(Ok42));
    let j = rt
        .submit(JobSpec::simple("ok", serde_json::Value::Null))
        .await
        .unwrap();
    let s = rt.wait(j).await.unwrap();
    assert_eq!(
        (s.state, s.result),
        (JobState::Completed, Some(serde_json::json!(42)))
    );
    for (r, action) in [
        (rt.pause(j).await, "pause"),
        (rt.resume(j).await, "resume"),
        (rt.abort(j).await, "abort"),
        (rt.retry(j).await, "retry"),
        (rt.fail(j, "x".into()).await, "fail"),
    ] {
        refused(r, action, JobState::Completed);
    }
    assert!(matches!(
        rt.set_priority(j, 5).await,
        Err(RuntimeError::IllegalTransition { .. })
    ));
    assert!(matches!(
        rt.set_priority(j, 0).await,
        Err(RuntimeError::BadPriority(0))
    ));
    assert!(matches!(
        rt.set_priority(j, 101).await,
        Err(RuntimeError::BadPriority(101))
    ));
    rt.destroy(j).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_sliced_job_pauses_resumes_and_cannot_be_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_sliced("echo", echo());
    let j = rt.submit(sliced("echo", 10)).await.unwrap();
    let mut up = rt.upload(j).await.unwrap();
    up.push(b"a".to_vec()).await.unwrap();
    // Its before_batch hook ran: the job is running, waiting for its upload.
    until("job running", || {
        futures::executor::block_on(rt.job(j)).unwrap().state == JobState::Running
    })
    .await;
    refused(rt.destroy(j).await, "destroy", JobState::Running);
    rt.pause(j).await.unwrap();
    rt.resume(j).await.unwrap();
    assert_eq!(state(&rt, j).await, JobState::Running);
    up.finish().await.unwrap();
    assert_eq!(rt.wait(j).await.unwrap().state, JobState::Completed);
}

struct Hold(Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>);

impl SimpleHandler for Hold {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        _args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        if let Some((started, go)) = self.0.lock().take() {
            started.send(()).unwrap();
            go.recv().unwrap();
        }
        Ok(None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_simple_job_cannot_pause_but_can_be_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    rt.register_simple(
        "hold",
        Arc::new(Hold(Mutex::new(Some((started_tx, go_rx))))),
    );
    let j = rt
        .submit(JobSpec::simple("hold", serde_json::Value::Null))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    assert_eq!(state(&rt, j).await, JobState::Running);
    refused(rt.pause(j).await, "pause", JobState::Running);
    refused(rt.destroy(j).await, "destroy", JobState::Running);
    rt.abort(j).await.unwrap();
    go_tx.send(()).unwrap();
    until("late result fenced", || rt.metrics().commits_fenced == 1).await;
    let s = rt.job(j).await.unwrap();
    assert_eq!(
        s.state,
        JobState::Aborted,
        "the late result does not revive it"
    );
    assert_eq!(s.attempts, 0);
}

/// `wait` on a job destroyed by the record that completed it answers
/// completed (its tombstone's state): an embedder's `rt.wait(id).await?`
/// succeeds for every destroy-on-complete success; a job destroyed before
/// it finished is still `NotFound` with why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_a_job_destroyed_once_completed_with_its_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_sliced("echo", echo());
    let mut spec = sliced("echo", 10);
    spec.destroy_on_complete = Some(true);
    let done = rt.submit(spec).await.unwrap();
    upload_all(&rt, done, &records(3)).await;
    let status = rt.wait(done).await.unwrap();
    assert_eq!(status.state, JobState::Completed);
    assert!(
        matches!(
            rt.job(done).await,
            Err(RuntimeError::NotFound(_, Missing::Destroyed { .. }))
        ),
        "the job itself is gone"
    );
    let queued = rt.submit(sliced("nobody", 10)).await.unwrap();
    rt.destroy(queued).await.unwrap();
    match rt.wait(queued).await {
        Err(RuntimeError::NotFound(id, Missing::Destroyed { state, .. })) => {
            assert_eq!((id, state), (queued, JobState::Queued));
        }
        other => panic!("a job destroyed while queued never finishes: {other:?}"),
    }
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
