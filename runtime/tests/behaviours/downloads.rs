//! Downloads of many slices: read ahead on several threads, handed out in
//! input order byte for byte, with empty and failed slices where they lie.

use std::sync::Arc;

use booster_runtime::*;
use booster_store::format::{segment_paths, FrameKind};

use crate::common::*;
use crate::degraded::{rot_nth, run_one_job};

/// Emits nothing for records starting "drop" (their slices come out
/// empty) and fails records starting "bad" (failing their slice).
struct Sieve;

impl RecordHandler for Sieve {
    fn process(
        &self,
        _job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        if record.starts_with(b"bad") {
            return Err(HandlerError("record is bad".into()));
        }
        if !record.starts_with(b"drop") {
            out.push(record.to_vec());
        }
        Ok(())
    }
}

/// 60 slices of 10 records of 1 to 97 bytes: slices 7 and 31 come out
/// empty, slice 44 fails. (Its reader threads are counted in a binary
/// of its own, `tests/read_ahead_threads.rs`: other tests' downloads run
/// in this process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_of_many_slices_is_handed_out_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("sieve", Arc::new(Sieve));
    let input: Vec<Vec<u8>> = (0..600usize)
        .map(|i| match (i / 10, i) {
            (7 | 31, _) => format!("drop-{i:05}"),
            (_, 446) => format!("bad-{i:05}"),
            _ => format!("r{i:05}{}", "x".repeat(i % 92)),
        })
        .map(String::into_bytes)
        .collect();
    let job = rt.submit(sliced("sieve", 10)).await.unwrap();
    upload_all(&rt, job, &input).await;
    let s = rt.wait(job).await.unwrap();
    assert_eq!((s.slices_done, s.slices_failed), (59, 1), "{s:?}");

    let got = download(&rt, job, Category::Main);
    let expected: Vec<Vec<u8>> = input
        .iter()
        .enumerate()
        .filter(|(i, r)| !r.starts_with(b"drop") && i / 10 != 44)
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "main differs from the input it copies");

    // The failed slice's records, each once, in input order, as errors.
    let errors = download(&rt, job, Category::Errors);
    assert_eq!(errors.len(), 10);
    for (k, e) in errors.iter().enumerate() {
        let e: serde_json::Value = serde_json::from_slice(e).unwrap();
        assert_eq!(e["record_number"], 441 + k as u64, "{e}");
        let raw = String::from_utf8(input[440 + k].clone()).unwrap();
        assert_eq!(e["record"], raw, "{e}");
        assert_eq!(e["message"], "slice 44 failed: record is bad", "{e}");
    }
}

/// A rotted output slice in the middle of a download read ahead: every
/// record before it comes out in order, then the error naming its frame,
/// then nothing (the reads past it are dropped), as when each slice was
/// read on the caller's thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotted_slice_stops_a_download_read_ahead_after_every_record_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let job = run_one_job(dir.path(), 100).await;
    let path = segment_paths(dir.path()).unwrap().last().unwrap().clone();
    let offset = rot_nth(&path, 0, |e| {
        let k = e.header.key;
        e.header.kind == FrameKind::Slice && k.owner == job && k.stream == 1 && k.seq == 4
    });
    let rt = Runtime::open(crate::degraded::opts(dir.path(), 1))
        .await
        .unwrap();
    let mut main = rt.download(job, Category::Main).unwrap();
    let mut got = Vec::new();
    let err = loop {
        match main.next() {
            Some(Ok(record)) => got.push(record),
            Some(Err(e)) => break e,
            None => panic!("the download of a rotted slice ended without an error"),
        }
    };
    assert_eq!(got, records(40), "slices 0 to 3, in order");
    let text = err.to_string();
    assert!(text.contains(&format!("offset {offset}")), "{text}");
    assert!(main.next().is_none(), "nothing after the error");
    drop(main);
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}

/// Records pushed as borrowed bytes (`push_bytes`), as owned ones (`push`)
/// and with their lines (`push_line`), mixed in one upload, of sizes that
/// grow and shrink from slice to slice (each slice's buffer is sized as
/// the previous one filled), come back byte for byte in input order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_pushed_borrowed_owned_or_with_lines_come_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("sieve", Arc::new(Sieve));
    let input: Vec<Vec<u8>> = (0..250usize)
        .map(|i| {
            let width = if (i / 10) % 2 == 0 {
                i * 7 % 301
            } else {
                i % 3
            };
            let mut r = format!("{i:03}").into_bytes();
            r.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, width));
            r
        })
        .collect();
    let job = rt.submit(sliced("sieve", 10)).await.unwrap();
    let mut up = rt.upload(job).await.unwrap();
    for (i, r) in input.iter().enumerate() {
        match i % 3 {
            0 => up.push_bytes(r).await.unwrap(),
            1 => up.push(r.clone()).await.unwrap(),
            _ => up.push_line(r.clone(), i as u64 + 1).await.unwrap(),
        }
    }
    up.finish().await.unwrap();
    let s = rt.wait(job).await.unwrap();
    assert_eq!((s.records_in, s.slices_done), (250, 25), "{s:?}");
    assert_eq!(download(&rt, job, Category::Main), input);
}
