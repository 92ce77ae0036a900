//! Input that is too big fails its own slice or request with a message
//! naming the cap; it never poisons the runtime (G9).

use std::sync::Arc;

use booster_runtime::*;

use crate::common::*;

/// Copies records; a record containing "BIG" comes out as 100 KiB.
struct Blow;

impl RecordHandler for Blow {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        if record.windows(3).any(|w| w == b"BIG") {
            out.push(vec![b'x'; 100 << 10]);
        } else {
            out.push(record.to_vec());
        }
        Ok(())
    }
}

fn capped(dir: &std::path::Path) -> RuntimeOptions {
    let mut o = opts(dir, 2);
    o.max_slice_bytes = 64 << 10;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slice_whose_output_passes_the_cap_fails_alone_and_the_runtime_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = records(30);
    input[14] = b"BIG-14".to_vec();
    let (big, other);
    {
        let rt = Runtime::open(capped(dir.path())).await.unwrap();
        rt.register_sliced("blow", Arc::new(Blow));
        big = rt.submit(sliced("blow", 10)).await.unwrap();
        other = rt.submit(sliced("blow", 10)).await.unwrap();
        upload_all(&rt, big, &input).await;
        upload_all(&rt, other, &records(30)).await;
        let s = rt.wait(big).await.unwrap();
        assert_eq!(s.state, JobState::Failed);
        assert_eq!((s.slices_done, s.slices_failed), (2, 1));
        let message = &s.errors[0].message;
        assert!(
            message.contains("output of slice 1 is") && message.contains("over the 64 KiB cap"),
            "{message}"
        );
        assert_eq!(s.records_in, s.records_out + s.records_failed);
        let s = rt.wait(other).await.unwrap();
        assert_eq!((s.state, s.records_out), (JobState::Completed, 30));
        // Not poisoned: new work is accepted and done.
        let after = rt.submit(sliced("blow", 10)).await.unwrap();
        upload_all(&rt, after, &records(20)).await;
        assert_eq!(rt.wait(after).await.unwrap().state, JobState::Completed);
        rt.shutdown(std::time::Duration::from_secs(5))
            .await
            .unwrap();
    }
    let rt = Runtime::open(capped(dir.path())).await.unwrap();
    rt.register_sliced("blow", Arc::new(Blow));
    assert_eq!(rt.job(big).await.unwrap().state, JobState::Failed);
    let mut expected = input.clone();
    expected.drain(10..20);
    assert_eq!(download(&rt, big, Category::Main), expected);
    let again = rt.submit(sliced("blow", 10)).await.unwrap();
    upload_all(&rt, again, &records(20)).await;
    assert_eq!(rt.wait(again).await.unwrap().state, JobState::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slice_size_over_the_cap_is_refused_with_a_message_naming_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1);
    o.max_slice_records = 1000;
    let rt = Runtime::open(o).await.unwrap();
    let err = rt.submit(sliced("echo", 1001)).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Invalid(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("cap of 1000 records"), "{message}");
    assert!(rt.jobs(JobFilter::default()).await.unwrap().is_empty());
    rt.submit(sliced("echo", 1000)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cuts_a_slice_when_its_bytes_reach_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(capped(dir.path())).await.unwrap();
    rt.register_sliced("echo", echo());
    let job = rt.submit(sliced("echo", 1000)).await.unwrap();
    // 40 records of 4 KiB: 160 KiB, so at least three slices of <= 64 KiB.
    let input: Vec<Vec<u8>> = (0..40u8).map(|i| vec![b'a' + i % 26; 4096]).collect();
    upload_all(&rt, job, &input).await;
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.state, JobState::Completed);
    assert!(s.slices_total >= 3, "{} slices", s.slices_total);
    assert_eq!(download(&rt, job, Category::Main), input);
}

/// Returns a string of `args` bytes.
struct Sized;

impl SimpleHandler for Sized {
    fn perform(
        &self,
        _job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError> {
        let n = args.as_u64().unwrap_or(0) as usize;
        Ok(Some(serde_json::Value::String("x".repeat(n))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_result_over_the_cap_fails_its_job_alone() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(capped(dir.path())).await.unwrap();
    rt.register_simple("sized", Arc::new(Sized));
    let specs = [10u64, 100 << 10, 20]
        .iter()
        .map(|n| JobSpec::simple("sized", serde_json::json!(n)))
        .collect();
    let ids = rt.submit_many(specs).await.unwrap();
    let big = rt.wait(ids[1]).await.unwrap();
    assert_eq!(big.state, JobState::Failed);
    let reason = big.failure_reason.unwrap_or_default();
    assert!(reason.contains("over the 64 KiB cap"), "{reason}");
    for id in [ids[0], ids[2]] {
        assert_eq!(rt.wait(id).await.unwrap().state, JobState::Completed);
    }
    let after = rt
        .submit(JobSpec::simple("sized", serde_json::json!(5)))
        .await
        .unwrap();
    assert_eq!(rt.wait(after).await.unwrap().state, JobState::Completed);
}
