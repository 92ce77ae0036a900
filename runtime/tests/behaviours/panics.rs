use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use booster_runtime::*;

use crate::common::*;

/// Panics once, outside per-record isolation, on the slice holding "r00003".
struct PanicOnce(AtomicBool);

impl RecordHandler for PanicOnce {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        out.push(record.to_vec());
        Ok(())
    }
    fn process_slice(&self, job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        if records.iter().any(|r| r == b"r00003") && !self.0.swap(true, Ordering::SeqCst) {
            panic!("boom in process_slice");
        }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_is_replaced_and_its_lease_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_sliced("panic", Arc::new(PanicOnce(AtomicBool::new(false))));
    let job = rt.submit(sliced("panic", 2)).await.unwrap();
    let input = records(8);
    upload_all(&rt, job, &input).await;
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.state, JobState::Completed);
    assert_eq!(download(&rt, job, Category::Main), input);
    assert_eq!(rt.workers().await[0].restarts, 1);
    assert_eq!(rt.metrics().worker_restarts, 1);
    assert_eq!(
        rt.metrics().lease_expiries,
        0,
        "the lease came back at once, not by expiry"
    );
}

/// Panics inside `process` on one record: isolated to that record.
struct PanicOnRecord;

impl RecordHandler for PanicOnRecord {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        if record == b"r00004" {
            panic!("cannot handle r00004");
        }
        out.push(record.to_vec());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_on_one_record_becomes_that_records_error() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_sliced("p", Arc::new(PanicOnRecord));
    let job = rt
        .submit(sliced("p", 5).with_collect_errors(true))
        .await
        .unwrap();
    upload_all(&rt, job, &records(10)).await;
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.state, JobState::Completed);
    assert_eq!((s.records_out, s.records_errors), (9, 1));
    assert!(s.errors[0].message.contains("cannot handle r00004"));
    assert_eq!(s.errors[0].samples[0].record_number, 5);
    assert_eq!(rt.workers().await[0].restarts, 0);
}
