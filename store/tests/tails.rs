//! Tails (G1, G7): a truncation below the recorded watermark is lost
//! acknowledged data, named with segment and offsets, never a torn tail;
//! a torn tail above it is cut and reported; verify writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use booster_store::format::{decode_manifest, MANIFEST_FILE_NAME};
use booster_store::{Batch, Damage, RecoveryReport, SliceKey, Store, StoreError, StoreOptions};

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 8,
        stream: 0,
        seq,
    }
}

fn records(v: u64) -> Vec<Vec<u8>> {
    (0..10)
        .map(|i| format!("{v},{i},row-{}", v * 10 + i).into_bytes())
        .collect()
}

fn opts() -> StoreOptions {
    StoreOptions {
        watermark_interval_ms: 0,
        ..StoreOptions::default()
    }
}

/// A closed store of `n` batches in one segment; returns that segment.
fn closed_store(dir: &Path, n: u64) -> PathBuf {
    let (store, _) = Store::open(dir, opts()).unwrap();
    for v in 0..n {
        store
            .append(
                Batch::new()
                    .slice(key(v), &records(v))
                    .meta(format!("done {v}").into_bytes()),
            )
            .unwrap();
    }
    store.close().unwrap();
    dir.join("seg-0000000000000001.bseg")
}

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn close_records_the_end_of_the_last_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let seg = closed_store(dir.path(), 5);
    let manifest = std::fs::read(dir.path().join(MANIFEST_FILE_NAME)).unwrap();
    let watermark = decode_manifest(&manifest).unwrap().watermark;
    assert_eq!(watermark.segment_id, 1);
    let sealed_len = std::fs::metadata(&seg).unwrap().len();
    assert!(
        watermark.offset > 128 && watermark.offset < sealed_len,
        "{watermark:?} in a segment of {sealed_len} bytes"
    );
}

#[test]
fn a_truncation_below_the_watermark_is_lost_acknowledged_data_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let seg = closed_store(dir.path(), 5);
    let bytes = std::fs::read(&seg).unwrap();
    // Inside the acknowledged frames (the seal footer after them is larger
    // than they are since it carries the sorted run).
    let manifest = std::fs::read(dir.path().join(MANIFEST_FILE_NAME)).unwrap();
    let acked_end = decode_manifest(&manifest).unwrap().watermark.offset as usize;
    let cut = acked_end * 6 / 10;
    std::fs::write(&seg, &bytes[..cut]).unwrap();
    let before = files(dir.path());

    let report = Store::verify_dir(dir.path(), None).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.segment_id == 1 && p.what.contains("acknowledged data lost")),
        "{report:?}"
    );
    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    let lost = expect_lost(&report, cut as u64, acked_end as u64);
    assert!(lost.meta_lost && !lost.identified);
    assert!(report.truncated.is_empty(), "nothing is cut: {report:?}");
    // Batches before the cut read; the others may have been lost.
    let whole = (0..5)
        .filter(|v| store.read_slice(&key(*v)).is_ok())
        .count();
    assert!(whole < 5, "the cut took acknowledged batches");
    for v in whole as u64..5 {
        assert!(matches!(
            store.read_slice(&key(v)),
            Err(StoreError::Corrupt { segment_id: 1, .. })
        ));
    }
    store
        .append(Batch::new().slice(key(60), &records(60)))
        .unwrap();
    store.close().unwrap();
    let segment_bytes = |files: BTreeMap<PathBuf, Vec<u8>>| files.get(&seg).cloned();
    assert_eq!(
        segment_bytes(files(dir.path())),
        segment_bytes(before),
        "neither verify nor open cut or sealed the damaged segment"
    );
    // The next open, with the watermark now in a newer segment, still names it.
    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    assert!(
        report
            .damaged
            .iter()
            .any(|d| d.segment_id == 1 && !d.identified),
        "{report:?}"
    );
    assert_eq!(store.read_slice(&key(60)).unwrap().unwrap(), records(60));
}

/// The one range an open reports as acknowledged data lost.
fn expect_lost(report: &RecoveryReport, from: u64, acked_end: u64) -> Damage {
    let lost: Vec<&Damage> = report
        .damaged
        .iter()
        .filter(|d| d.what.contains("acknowledged data lost"))
        .collect();
    assert_eq!(lost.len(), 1, "{report:?}");
    let d = lost[0].clone();
    assert_eq!(d.segment_id, 1);
    assert!(d.offset <= from && d.end >= acked_end, "{d:?}");
    d
}

#[test]
fn garbage_after_the_watermark_is_cut_and_reported_with_segment_offset_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let seg = closed_store(dir.path(), 3);
    let watermark = decode_manifest(&std::fs::read(dir.path().join(MANIFEST_FILE_NAME)).unwrap())
        .unwrap()
        .watermark;
    let mut bytes = std::fs::read(&seg).unwrap();
    let len = bytes.len() as u64;
    bytes.extend_from_slice(&[0u8; 40]);
    std::fs::write(&seg, &bytes).unwrap();

    let before = files(dir.path());
    let report = Store::verify_dir(dir.path(), None).unwrap();
    assert!(!report.problems.is_empty(), "verify names the tail");
    assert_eq!(files(dir.path()), before, "verify wrote nothing");

    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(
        report.truncated,
        vec![(1, watermark.offset, len + 40 - watermark.offset)],
        "the seal footer and the garbage, from the end of the last batch"
    );
    for v in 0..3 {
        assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
    }
}

#[test]
fn a_watermark_recorded_while_running_separates_lost_data_from_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("seg-0000000000000001.bseg");
    {
        let (store, _) = Store::open(dir.path(), opts()).unwrap();
        for v in 0..5 {
            store
                .append(Batch::new().slice(key(v), &records(v)))
                .unwrap();
        }
        store.record_watermark().unwrap();
        store
            .append(Batch::new().slice(key(5), &records(5)))
            .unwrap();
        // Dropped without close, as in a crash: the segment stays unsealed.
    }
    let watermark = decode_manifest(&std::fs::read(dir.path().join(MANIFEST_FILE_NAME)).unwrap())
        .unwrap()
        .watermark;
    let bytes = std::fs::read(&seg).unwrap();
    assert!(watermark.segment_id == 1 && watermark.offset < bytes.len() as u64);

    // Cut inside the batch acknowledged after the watermark: a torn tail.
    let above = tempfile::tempdir().unwrap();
    for (path, content) in files(dir.path()) {
        std::fs::write(above.path().join(path.file_name().unwrap()), content).unwrap();
    }
    let cut = (watermark.offset as usize + bytes.len()) / 2;
    std::fs::write(above.path().join(seg.file_name().unwrap()), &bytes[..cut]).unwrap();
    let (store, report) = Store::open(above.path(), opts()).unwrap();
    assert_eq!(
        report.truncated,
        vec![(1, watermark.offset, cut as u64 - watermark.offset)]
    );
    assert_eq!(store.slices(8, 0).len(), 5);
    drop(store);

    // Cut below it: acknowledged batches are gone, and open says so.
    std::fs::write(&seg, &bytes[..watermark.offset as usize - 10]).unwrap();
    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    expect_lost(&report, watermark.offset - 10, watermark.offset);
    assert_eq!(store.read_slice(&key(0)).unwrap().unwrap(), records(0));
}
