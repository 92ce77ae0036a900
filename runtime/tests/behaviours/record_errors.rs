use std::sync::Arc;

use booster_runtime::*;

use crate::common::*;

/// Fails records that contain "bad".
pub struct RejectBad;

impl RecordHandler for RejectBad {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        if record.windows(3).any(|w| w == b"bad") {
            return Err(HandlerError("record is bad".into()));
        }
        out.push(record.to_vec());
        Ok(())
    }
}

fn input() -> Vec<Vec<u8>> {
    let mut recs = records(30);
    recs[13] = b"bad-13".to_vec();
    recs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_error_fails_its_slice_by_default_and_keeps_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("check", Arc::new(RejectBad));
    let job = rt.submit(sliced("check", 10)).await.unwrap();
    let mut up = rt.upload(job).await.unwrap();
    for (i, r) in input().into_iter().enumerate() {
        up.push_line(r, i as u64 + 2).await.unwrap();
    }
    up.finish().await.unwrap();
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.state, JobState::Failed);
    assert_eq!((s.slices_done, s.slices_failed), (2, 1));
    assert_eq!(
        (s.records_in, s.records_out, s.records_in_failed_slices),
        (30, 20, 10)
    );
    assert_eq!(s.records_in, s.records_out + s.records_failed);
    let sample = &s.errors[0].samples[0];
    assert_eq!(s.errors[0].message, "record is bad");
    assert_eq!(
        (sample.slice, sample.record_number, sample.line),
        (1, 14, Some(15))
    );
    assert_eq!(sample.record, "bad-13");
    // Output of the failed slice is absent, the others are in input order.
    let mut expected = input();
    expected.drain(10..20);
    assert_eq!(download(&rt, job, Category::Main), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_errors_sends_failing_records_to_errors_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("check", Arc::new(RejectBad));
    let job = rt
        .submit(sliced("check", 10).with_collect_errors(true))
        .await
        .unwrap();
    let mut up = rt.upload(job).await.unwrap();
    for r in input() {
        up.push(r).await.unwrap();
    }
    up.push_rejected(b"\"unterminated".to_vec(), 99, "malformed CSV".into())
        .await
        .unwrap();
    up.finish().await.unwrap();
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.state, JobState::Completed);
    assert_eq!((s.records_in, s.records_out, s.records_errors), (31, 29, 2));
    assert_eq!(s.records_in, s.records_out + s.records_failed);
    let errors: Vec<serde_json::Value> = download(&rt, job, Category::Errors)
        .iter()
        .map(|e| serde_json::from_slice(e).unwrap())
        .collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["record_number"], 14);
    assert_eq!(errors[0]["record"], "bad-13");
    assert_eq!(errors[0]["message"], "record is bad");
    assert_eq!(errors[1]["line"], 99);
    assert_eq!(errors[1]["message"], "malformed CSV");
    assert_eq!(download(&rt, job, Category::Main).len(), 29);
    assert_eq!(download(&rt, job, Category::Input).len(), 30);
}

fn errors_of(rt: &Runtime, job: JobId) -> Vec<serde_json::Value> {
    download(rt, job, Category::Errors)
        .iter()
        .map(|e| serde_json::from_slice(e).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_records_fill_slices_like_accepted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("check", Arc::new(RejectBad));
    let job = rt
        .submit(sliced("check", 10).with_collect_errors(true))
        .await
        .unwrap();
    let mut up = rt.upload(job).await.unwrap();
    for i in 0..35u64 {
        let raw = format!("junk-{i}").into_bytes();
        up.push_rejected(raw, i + 1, "malformed".into())
            .await
            .unwrap();
    }
    up.finish().await.unwrap();
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.slices_total, 4, "35 rejects in slices of 10");
    assert_eq!((s.records_in, s.records_errors), (35, 35));
    let errors = errors_of(&rt, job);
    assert_eq!(errors.len(), 35);
    assert_eq!(errors[34]["record"], "junk-34");
    assert_eq!(errors[34]["record_number"], 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_hold_the_exact_bytes_of_every_failed_record() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("check", Arc::new(RejectBad));
    let job = rt
        .submit(sliced("check", 10).with_collect_errors(true))
        .await
        .unwrap();
    let long_text = format!("bad-{}", "é".repeat(3000)).into_bytes();
    let not_utf8 = b"bad-\xc3\x28-\xff".to_vec();
    let rejected = b"\xc3\x28 rejected".to_vec();
    let mut up = rt.upload(job).await.unwrap();
    up.push(long_text.clone()).await.unwrap();
    up.push(not_utf8.clone()).await.unwrap();
    up.push_rejected(rejected.clone(), 3, "malformed".into())
        .await
        .unwrap();
    up.finish().await.unwrap();
    rt.wait(job).await.unwrap();
    let errors = errors_of(&rt, job);
    let bytes_of = |e: &serde_json::Value| match e["record"].as_str() {
        Some(text) => text.as_bytes().to_vec(),
        None => base64::engine::general_purpose::STANDARD
            .decode(
                e["record_base64"]
                    .as_str()
                    .expect("record or record_base64"),
            )
            .unwrap(),
    };
    let mut got: Vec<Vec<u8>> = errors.iter().map(bytes_of).collect();
    got.sort();
    let mut want = vec![long_text, not_utf8, rejected];
    want.sort();
    assert_eq!(got, want);
    assert!(errors.iter().any(|e| e.get("record").is_none()));
}

/// Writes every record twice, except records holding "drop", which it
/// reads and writes nothing for.
pub struct TwiceOrNone;

impl RecordHandler for TwiceOrNone {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        if !record.windows(4).any(|w| w == b"drop") {
            out.push(record.to_vec());
            out.push(record.to_vec());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_out_counts_what_the_handler_wrote_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("twice", Arc::new(TwiceOrNone));
    let job = rt.submit(sliced("twice", 10)).await.unwrap();
    let mut recs = records(30);
    recs[4] = b"drop-4".to_vec();
    upload_all(&rt, job, &recs).await;
    let s = rt.wait(job).await.unwrap();
    let counts = |s: &JobStatus| {
        (
            s.records_in,
            s.records_processed,
            s.records_out,
            s.records_failed,
        )
    };
    assert_eq!(counts(&s), (30, 30, 58, 0));
    assert_eq!(download(&rt, job, Category::Main).len(), 58);
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();

    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    assert_eq!(
        counts(&rt.job(job).await.unwrap()),
        (30, 30, 58, 0),
        "replayed"
    );
    rt.compact().await.unwrap();
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    assert_eq!(
        counts(&rt.job(job).await.unwrap()),
        (30, 30, 58, 0),
        "restored from the compaction snapshot"
    );
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_slices_records_are_in_errors_with_their_message_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("check", Arc::new(RejectBad));
    let job = rt.submit(sliced("check", 10)).await.unwrap();
    let mut up = rt.upload(job).await.unwrap();
    for (i, r) in input().into_iter().enumerate() {
        up.push_line(r, i as u64 + 2).await.unwrap();
    }
    up.finish().await.unwrap();
    let s = rt.wait(job).await.unwrap();
    assert_eq!((s.slices_failed, s.records_in_failed_slices), (1, 10));
    let errors: Vec<serde_json::Value> = download(&rt, job, Category::Errors)
        .iter()
        .map(|e| serde_json::from_slice(e).unwrap())
        .collect();
    // records in = processed + errors file, in the files a user downloads.
    assert_eq!(errors.len(), 10, "{errors:?}");
    for (i, e) in errors.iter().enumerate() {
        let n = 11 + i as u64;
        assert_eq!(e["record_number"], n, "{e}");
        assert_eq!(e["line"], n + 1, "{e}");
        assert_eq!(
            e["record"],
            if n == 14 {
                "bad-13".to_string()
            } else {
                format!("r{:05}", n - 1)
            }
        );
        assert_eq!(e["message"], "slice 1 failed: record is bad", "{e}");
    }
}

/// A rejected record's message may come from a client (an `items`
/// upload): it is clipped like a record sample, never kept whole in error
/// groups, meta records and every status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_reject_message_is_clipped_not_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 1)).await.unwrap();
    rt.register_sliced("echo", std::sync::Arc::new(Echo));
    let job = rt.submit(sliced("echo", 5)).await.unwrap();
    let mut up = rt.upload(job).await.unwrap();
    up.push_rejected(b"raw".to_vec(), 1, "m".repeat(1 << 20))
        .await
        .unwrap();
    up.push(b"ok".to_vec()).await.unwrap();
    up.finish().await.unwrap();
    let st = rt.wait(job).await.unwrap();
    assert_eq!(st.records_in, 2);
    let message = &st.errors[0].message;
    assert!(message.len() <= 1000, "{} bytes kept", message.len());
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}
