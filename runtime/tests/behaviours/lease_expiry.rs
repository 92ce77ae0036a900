use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::*;
use parking_lot::Mutex;

use crate::common::*;

/// Hangs on the first record it ever sees until released; then copies.
struct HangOnce {
    hung: AtomicBool,
    release: Mutex<Option<mpsc::Receiver<()>>>,
    calls: AtomicUsize,
}

impl RecordHandler for HangOnce {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.hung.swap(true, Ordering::SeqCst) {
            let rx = self.release.lock().take().unwrap();
            rx.recv().unwrap();
        }
        out.push(record.to_vec());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_handler_loses_its_lease_and_its_late_commit_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1);
    o.lease_timeout = Duration::from_millis(300);
    let rt = Runtime::open(o).await.unwrap();
    let job = rt.submit(sliced("hang", 2)).await.unwrap();
    let input = records(6);
    upload_all(&rt, job, &input).await;
    let (release_tx, release_rx) = mpsc::channel();
    let handler = Arc::new(HangOnce {
        hung: AtomicBool::new(false),
        release: Mutex::new(Some(release_rx)),
        calls: AtomicUsize::new(0),
    });
    rt.register_sliced("hang", handler.clone());
    // The only worker hangs; its lease expires and a fresh thread finishes the job.
    let status = rt.wait(job).await.unwrap();
    assert_eq!(status.state, JobState::Completed);
    assert!(rt.metrics().lease_expiries >= 1);
    assert_eq!(rt.workers().await[0].restarts, 1);
    // Now the hung handler returns: its commit must be rejected.
    release_tx.send(()).unwrap();
    until("late commit fenced", || rt.metrics().commits_fenced == 1).await;
    assert_eq!(
        download(&rt, job, Category::Main),
        input,
        "exactly one output per slice"
    );
    assert_eq!(rt.job(job).await.unwrap().records_out, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_who_holds_which_slice_and_until_when() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let job = rt.submit(sliced("hang", 2)).await.unwrap();
    upload_all(&rt, job, &records(2)).await;
    let (release_tx, release_rx) = mpsc::channel();
    rt.register_sliced(
        "hang",
        Arc::new(HangOnce {
            hung: AtomicBool::new(false),
            release: Mutex::new(Some(release_rx)),
            calls: AtomicUsize::new(0),
        }),
    );
    until("slice leased", || {
        futures::executor::block_on(rt.job(job))
            .unwrap()
            .leases
            .iter()
            .any(|l| l.slice == Some(0))
    })
    .await;
    let lease = rt.job(job).await.unwrap().leases[0].clone();
    assert_eq!((lease.worker, lease.job, lease.slice), (0, job, Some(0)));
    assert!(lease.deadline > lease.since);
    let w = rt.workers().await;
    assert_eq!(w[0].lease.as_ref().map(|l| l.epoch), Some(lease.epoch));
    release_tx.send(()).unwrap();
    rt.wait(job).await.unwrap();
}

/// Hangs on every record containing "HANG" until the test drops `release`;
/// copies the rest. With `beat`, it sends heartbeats while it hangs.
struct HangAlways {
    release: Mutex<mpsc::Receiver<()>>,
    beat: bool,
}

impl HangAlways {
    fn new(beat: bool) -> (Arc<HangAlways>, mpsc::Sender<()>) {
        let (tx, rx) = mpsc::channel();
        let h = HangAlways {
            release: Mutex::new(rx),
            beat,
        };
        (Arc::new(h), tx)
    }
    fn hang(&self) {
        loop {
            if self.beat {
                heartbeat();
            }
            // Only one thread waits on the channel at a time; others poll.
            if let Some(rx) = self.release.try_lock() {
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl RecordHandler for HangAlways {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        if record.starts_with(b"HANG") {
            self.hang();
        }
        out.push(record.to_vec());
        Ok(())
    }
}

impl SimpleHandler for HangAlways {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        if args == "HANG" {
            self.hang();
        }
        Ok(Some(args.clone()))
    }
}

fn short_lease(dir: &std::path::Path) -> RuntimeOptions {
    let mut o = opts(dir, 2);
    o.lease_timeout = Duration::from_millis(200);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_whose_lease_expired_three_times_fails_as_hung_and_the_rest_completes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(short_lease(dir.path())).await.unwrap();
    let (handler, release) = HangAlways::new(false);
    rt.register_sliced("hang", handler);
    let job = rt.submit(sliced("hang", 5)).await.unwrap();
    let mut input = records(20);
    input[7] = b"HANG-7".to_vec();
    upload_all(&rt, job, &input).await;
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.state, JobState::Failed);
    assert_eq!((s.slices_done, s.slices_failed), (3, 1));
    let message = &s.errors[0].message;
    assert!(
        message.starts_with("hung: lease expired 3 times"),
        "{message}"
    );
    assert_eq!(rt.metrics().lease_expiries, 3);
    assert_eq!(s.records_in, s.records_out + s.records_failed);
    drop(release);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_job_that_always_hangs_fails_and_jobs_batched_with_it_complete() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(short_lease(dir.path())).await.unwrap();
    let (handler, release) = HangAlways::new(false);
    let policy = LeasePolicy {
        max_expiries: 2,
        ..LeasePolicy::default()
    };
    rt.set_lease_policy("hang", policy);
    rt.register_simple("hang", handler);
    let args = ["a", "HANG", "b", "c"];
    let specs = args
        .iter()
        .map(|a| JobSpec::simple("hang", serde_json::json!(a)))
        .collect();
    let ids = rt.submit_many(specs).await.unwrap();
    for (id, a) in ids.iter().zip(args) {
        let s = rt.wait(*id).await.unwrap();
        if a == "HANG" {
            assert_eq!(s.state, JobState::Failed);
            let reason = s.failure_reason.unwrap_or_default();
            assert!(
                reason.starts_with("hung: lease expired 2 times"),
                "{reason}"
            );
        } else {
            assert_eq!(s.state, JobState::Completed, "{a}");
            assert_eq!(s.result, Some(serde_json::json!(a)));
        }
    }
    drop(release);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_timeout_ends_a_lease_even_while_heartbeats_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1);
    o.lease_timeout = Duration::from_secs(30);
    let rt = Runtime::open(o).await.unwrap();
    let (handler, release) = HangAlways::new(true);
    rt.set_lease_policy(
        "beat",
        LeasePolicy {
            max_expiries: 1,
            timeout: Some(Duration::from_millis(200)),
        },
    );
    rt.register_sliced("beat", handler);
    let job = rt.submit(sliced("beat", 5)).await.unwrap();
    let mut input = records(10);
    input[2] = b"HANG-2".to_vec();
    upload_all(&rt, job, &input).await;
    let s = rt.wait(job).await.unwrap();
    assert_eq!((s.state, s.slices_failed), (JobState::Failed, 1));
    let message = &s.errors[0].message;
    assert!(
        message.starts_with("hung: lease expired 1 time (") && message.contains("200 ms"),
        "{message}"
    );
    drop(release);
}

/// A restart must not reset how often a job's lease expired: a job that
/// hangs every process that runs it would otherwise run forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_expiries_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let policy = LeasePolicy {
        max_expiries: 2,
        ..LeasePolicy::default()
    };
    let (handler, release) = HangAlways::new(false);
    let job = {
        let rt = Runtime::open(short_lease(dir.path())).await.unwrap();
        rt.set_lease_policy("hang", policy);
        rt.register_simple("hang", handler.clone());
        let job = rt
            .submit(JobSpec::simple("hang", serde_json::json!("HANG")))
            .await
            .unwrap();
        until("one expiry", || rt.metrics().lease_expiries >= 1).await;
        let _ = rt.shutdown(Duration::from_millis(10)).await;
        job
    };
    // The count is in the log: the next process fails the job at its
    // first expiry, the second in all.
    let rt = Runtime::open(short_lease(dir.path())).await.unwrap();
    rt.set_lease_policy("hang", policy);
    rt.register_simple("hang", handler);
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.state, JobState::Failed);
    let reason = s.failure_reason.unwrap_or_default();
    assert!(
        reason.starts_with("hung: lease expired 2 times"),
        "{reason}"
    );
    assert_eq!(rt.metrics().lease_expiries, 1, "one expiry in this process");
    drop(release);
}

/// The review of faults12, finding 6: a stored lease bound under a
/// millisecond is refused, saying what to do. The wire carries the bound
/// in whole milliseconds with 0 for none: stored, a bound of 0 ended
/// every lease at hand-out while a remote worker read it as no bound, and
/// every lease expired as a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_lease_bound_under_a_millisecond_is_refused_saying_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    for timeout in [Duration::ZERO, Duration::from_micros(500)] {
        let settings = KindSettings {
            lease: Some(LeasePolicy {
                max_expiries: 3,
                timeout: Some(timeout),
            }),
            ..KindSettings::default()
        };
        let e = rt
            .store_kind_settings("k", Some(settings))
            .await
            .unwrap_err();
        assert!(
            matches!(e, RuntimeError::Invalid(_)) && e.to_string().contains("at least 1 ms"),
            "{e}"
        );
    }
    let bounded = KindSettings {
        lease: Some(LeasePolicy {
            max_expiries: 3,
            timeout: Some(Duration::from_millis(1)),
        }),
        ..KindSettings::default()
    };
    rt.store_kind_settings("k", Some(bounded)).await.unwrap();
}
