use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use booster_runtime::*;
use parking_lot::Mutex;

use crate::common::*;

/// Fails "bad" records while `failing`; counts runs per slice (by its first record).
struct Flaky {
    failing: AtomicBool,
    runs: Mutex<HashMap<Vec<u8>, u32>>,
}

impl RecordHandler for Flaky {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        if self.failing.load(Ordering::SeqCst) && record.starts_with(b"bad") {
            return Err(HandlerError("flaky".into()));
        }
        out.push(record.to_vec());
        Ok(())
    }
    fn process_slice(&self, job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        *self.runs.lock().entry(records[0].clone()).or_default() += 1;
        let mut output = Vec::new();
        let mut record_errors = Vec::new();
        for (i, r) in records.iter().enumerate() {
            if let Err(e) = self.process(job, r, &mut output) {
                record_errors.push((i, e.0));
            }
        }
        SliceOutcome::Done {
            output,
            record_errors,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_reruns_only_the_failed_slices() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    let flaky = Arc::new(Flaky {
        failing: AtomicBool::new(true),
        runs: Mutex::new(HashMap::new()),
    });
    rt.register_sliced("flaky", flaky.clone());
    let mut input = records(50);
    input[15] = b"bad-15".to_vec();
    input[37] = b"bad-37".to_vec();
    let job = rt.submit(sliced("flaky", 10)).await.unwrap();
    upload_all(&rt, job, &input).await;
    let s = rt.wait(job).await.unwrap();
    assert_eq!((s.state, s.slices_failed), (JobState::Failed, 2));
    flaky.failing.store(false, Ordering::SeqCst);
    rt.retry(job).await.unwrap();
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.state, JobState::Completed);
    assert_eq!((s.records_out, s.records_failed), (50, 0));
    let runs = flaky.runs.lock().clone();
    for (slice, first) in input.chunks(10).map(|c| c[0].clone()).enumerate() {
        let expected = if slice == 1 || slice == 3 { 2 } else { 1 };
        assert_eq!(runs[&first], expected, "slice {slice}");
    }
    assert_eq!(download(&rt, job, Category::Main), input);
}
