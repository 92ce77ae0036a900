use std::sync::Arc;
use std::time::{Duration, Instant};

use booster_runtime::*;
use parking_lot::Mutex;

use crate::common::*;

/// Spins the CPU for a while per record, logging which job ran.
struct Spin(Arc<Mutex<Vec<JobId>>>);

impl RecordHandler for Spin {
    fn process(
        &self,
        job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        self.0.lock().push(job.id);
        let until = Instant::now() + Duration::from_millis(25);
        let mut x = 0u64;
        while Instant::now() < until {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        out.push(record.to_vec());
        Ok(())
    }
}

struct Urgent(Arc<Mutex<Vec<JobId>>>);

impl SimpleHandler for Urgent {
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
async fn cpu_spinning_handlers_do_not_delay_a_priority_1_job() {
    let dir = tempfile::tempdir().unwrap();
    let workers = 2;
    let rt = Runtime::open(opts(dir.path(), workers)).await.unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    rt.register_sliced("spin", Arc::new(Spin(log.clone())));
    rt.register_simple("urgent", Arc::new(Urgent(log.clone())));
    let big = rt.submit(sliced("spin", 1)).await.unwrap();
    upload_all(&rt, big, &records(40)).await;
    until("workers saturated", || log.lock().len() >= 4).await;
    // Submitting goes through tokio and the store while every worker spins.
    let urgent = rt
        .submit(JobSpec::simple("urgent", serde_json::Value::Null).with_priority(1))
        .await
        .unwrap();
    let started_before = log.lock().len();
    rt.wait(urgent).await.unwrap();
    rt.wait(big).await.unwrap();
    let log = log.lock().clone();
    let at = log.iter().position(|j| *j == urgent).unwrap();
    // Only slices already running (one per worker) may start ahead of it.
    assert!(
        at <= started_before + workers,
        "urgent job started at {at}, {started_before} slices had started when it was submitted"
    );
    assert!(
        log.len() - at > 40 - started_before - workers - 1,
        "big job still had slices waiting"
    );
}
