use std::sync::mpsc;
use std::sync::Arc;

use booster_runtime::*;
use parking_lot::Mutex;

use crate::common::*;

struct Log(Arc<Mutex<Vec<JobId>>>);

impl SimpleHandler for Log {
    fn perform(
        &self,
        job: &JobContext<'_>,
        _args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        self.0.lock().push(job.id);
        Ok(None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_runs_jobs_in_priority_then_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut specs = Vec::new();
    for _ in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let p = (seed % 100 + 1) as u8;
        specs.push(JobSpec::simple("log", serde_json::Value::Null).with_priority(p));
    }
    // Half in one batch, the rest one by one: both paths share the order.
    let mut ids = rt.submit_many(specs[..150].to_vec()).await.unwrap();
    for s in &specs[150..] {
        ids.push(rt.submit(s.clone()).await.unwrap());
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    rt.register_simple("log", Arc::new(Log(log.clone())));
    rt.wait_idle().await;
    let mut expected: Vec<(u8, JobId)> = ids
        .iter()
        .zip(&specs)
        .map(|(id, s)| (s.priority, *id))
        .collect();
    expected.sort();
    let expected: Vec<JobId> = expected.into_iter().map(|(_, id)| id).collect();
    assert_eq!(*log.lock(), expected);
}

/// Logs (job, first record) and holds the first slice it sees until released.
struct Step {
    log: Arc<Mutex<Vec<JobId>>>,
    started: Mutex<Option<mpsc::Sender<()>>>,
    hold: Mutex<Option<mpsc::Receiver<()>>>,
}

impl RecordHandler for Step {
    fn process(
        &self,
        job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        self.log.lock().push(job.id);
        if let Some(started) = self.started.lock().take() {
            started.send(()).unwrap();
            self.hold.lock().take().unwrap().recv().unwrap();
        }
        out.push(record.to_vec());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_change_at_runtime_jumps_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    let a = rt.submit(sliced("step", 1)).await.unwrap();
    let b = rt.submit(sliced("step", 1)).await.unwrap();
    upload_all(&rt, a, &records(5)).await;
    upload_all(&rt, b, &records(5)).await;
    let (started_tx, started_rx) = mpsc::channel();
    let (hold_tx, hold_rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    rt.register_sliced(
        "step",
        Arc::new(Step {
            log: log.clone(),
            started: Mutex::new(Some(started_tx)),
            hold: Mutex::new(Some(hold_rx)),
        }),
    );
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    // A's first slice is running; B waits behind A's other four.
    rt.set_priority(b, 10).await.unwrap();
    hold_tx.send(()).unwrap();
    rt.wait(a).await.unwrap();
    rt.wait(b).await.unwrap();
    assert_eq!(*log.lock(), vec![a, b, b, b, b, b, a, a, a, a]);
}

/// A simple job that blocks its worker until released.
struct Hold(Mutex<Option<mpsc::Receiver<()>>>, mpsc::Sender<()>);

impl SimpleHandler for Hold {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        _args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        let _ = self.1.send(());
        if let Some(rx) = self.0.lock().take() {
            let _ = rx.recv();
        }
        Ok(None)
    }
}

/// With one of two workers reserved for priority 10 and above, an urgent
/// job starts while the other worker is held by an ordinary job, and an
/// ordinary job never takes the reserved slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_worker_starts_an_urgent_job_while_the_others_are_busy() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 2);
    o.reserved_workers = 1;
    o.reserved_priority = 10;
    let rt = Runtime::open(o).await.unwrap();
    let (release, held) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    rt.register_simple("hold", Arc::new(Hold(Mutex::new(Some(held)), started_tx)));
    let log = Arc::new(Mutex::new(Vec::new()));
    rt.register_simple("log", Arc::new(Log(log.clone())));
    let busy = rt
        .submit(JobSpec::simple("hold", serde_json::Value::Null))
        .await
        .unwrap();
    started.recv().unwrap();
    let ordinary = rt
        .submit(JobSpec::simple("log", serde_json::Value::Null))
        .await
        .unwrap();
    let urgent = rt
        .submit(JobSpec::simple("log", serde_json::Value::Null).with_priority(5))
        .await
        .unwrap();
    assert_eq!(rt.wait(urgent).await.unwrap().state, JobState::Completed);
    assert_eq!(
        *log.lock(),
        vec![urgent],
        "the ordinary job waits for the busy worker"
    );
    assert_eq!(rt.job(ordinary).await.unwrap().state, JobState::Queued);
    release.send(()).unwrap();
    assert_eq!(rt.wait(busy).await.unwrap().state, JobState::Completed);
    assert_eq!(rt.wait(ordinary).await.unwrap().state, JobState::Completed);
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();

    let mut o = opts(dir.path(), 2);
    o.reserved_workers = 2;
    let err = Runtime::open(o)
        .await
        .err()
        .expect("a lane of every worker");
    assert!(err.to_string().contains("reserve fewer"), "{err}");
}
