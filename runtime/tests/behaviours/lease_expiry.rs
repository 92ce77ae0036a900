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
