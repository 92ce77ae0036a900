//! What an upload holds in flight is bounded in bytes, however many codec
//! threads the pool runs (`upload::INFLIGHT_BYTES`; issues 12 and 17: the
//! sliced copy's memory grew with the cores). The store's append gate,
//! held as a checkpoint holds it, keeps every slice handed to the pool
//! from reaching the store, so nothing leaves flight: no timing.

use std::time::Duration;

use futures::FutureExt;

use crate::commit_handoff_tests::HeldGate;
use crate::upload::{INFLIGHT_BYTES, RECORD_OVERHEAD};
use crate::*;

/// A runtime of `codec_threads` upload threads whose jobs wait (no
/// handler is registered for their kind), and a job of slices of
/// `slice_size` records.
async fn open_uploading(
    dir: &std::path::Path,
    codec_threads: usize,
    slice_size: usize,
) -> (Runtime, JobId) {
    let mut opts = RuntimeOptions::new(dir);
    opts.workers = 1;
    opts.codec_threads = codec_threads;
    opts.auto_checkpoint = false;
    let rt = Runtime::open(opts).await.unwrap();
    let mut spec = JobSpec::sliced("unhandled");
    spec.shape = JobShape::Sliced {
        slice_size: Some(slice_size),
        collect_errors: false,
    };
    let job = rt.submit(spec).await.unwrap();
    (rt, job)
}

async fn input_of(rt: &Runtime, job: JobId) -> Vec<Vec<u8>> {
    rt.download(job, Category::Input)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_holds_at_most_its_byte_budget_in_flight_however_many_codec_threads() {
    let dir = tempfile::tempdir().unwrap();
    // 16 upload threads: a budget of slices per thread allowed 128.
    let (rt, job) = open_uploading(dir.path(), 16, 1).await;
    let gate = HeldGate::take(rt.shared());
    // Slices of one record that take an eighth of the budget each.
    let len = INFLIGHT_BYTES / 8 - RECORD_OVERHEAD;
    let records: Vec<Vec<u8>> = (0..9u8).map(|i| vec![b'a' + i; len]).collect();
    let mut up = rt.upload(job).await.unwrap();
    for (i, r) in records[..8].iter().enumerate() {
        let pushed = up.push_bytes(r).now_or_never();
        assert!(
            matches!(pushed, Some(Ok(()))),
            "slice {i} fits in the budget: the push goes through at once"
        );
    }
    // The ninth slice would pass the budget while none of the eight is
    // stored: its push waits (its record stays in the uploader).
    assert!(
        up.push_bytes(&records[8]).now_or_never().is_none(),
        "a slice past the byte budget waits for one in flight to be stored"
    );
    drop(gate);
    let done = tokio::time::timeout(Duration::from_secs(60), up.finish())
        .await
        .expect("the upload finishes once the store takes appends again")
        .unwrap();
    assert_eq!(done.records_in, 9);
    assert_eq!(
        input_of(&rt, job).await,
        records,
        "every record once, in order"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_larger_than_the_upload_budget_goes_through_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, job) = open_uploading(dir.path(), 2, 4).await;
    // Under the 64 MiB slice cap, over the in-flight budget.
    let big = vec![b'b'; INFLIGHT_BYTES + (1 << 20)];
    let mut records: Vec<Vec<u8>> = (0..6u8).map(|i| vec![b'0' + i; 100]).collect();
    records.insert(3, big);
    let mut up = rt.upload(job).await.unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        for r in &records {
            up.push_bytes(r).await.unwrap();
        }
        up.finish().await.unwrap()
    })
    .await
    .expect("a slice over the budget does not wait for room it can never get");
    assert_eq!(finished.records_in, records.len() as u64);
    assert_eq!(
        input_of(&rt, job).await,
        records,
        "every record once, in order"
    );
    rt.shutdown(Duration::from_secs(5)).await.unwrap();
}
