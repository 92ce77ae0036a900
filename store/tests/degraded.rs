//! Degraded open (G11): a bad frame, or a segment whose footer is gone,
//! costs only what it held. The store opens, `RecoveryReport::damaged`
//! names each range with the slices it held and whether meta records were
//! lost, those slices fail to read, everything else reads.

use std::path::{Path, PathBuf};

use booster_store::format::{read_sealed_entries, FrameKind, FOOTER_TAIL_LEN};
use booster_store::{Batch, SliceKey, Store, StoreError, StoreOptions};

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 2,
        stream: 1,
        seq,
    }
}

fn records(v: u64) -> Vec<Vec<u8>> {
    (0..12)
        .map(|i| format!("{v},{i},item-{}", v * 12 + i).into_bytes())
        .collect()
}

fn opts() -> StoreOptions {
    StoreOptions {
        segment_size_bytes: 1024,
        watermark_interval_ms: 0,
        reserve_bytes: 0,
        ..StoreOptions::default()
    }
}

/// Appends one batch (slice + meta) for each of `vs`.
fn append_batches(store: &Store, vs: impl IntoIterator<Item = u64>) {
    for v in vs {
        store
            .append(
                Batch::new()
                    .slice(key(v), &records(v))
                    .meta(format!("meta {v}").into_bytes()),
            )
            .unwrap();
    }
}

/// A closed store of `n` batches (slice + meta each) over several segments.
fn store_of(dir: &Path, n: u64) -> Vec<PathBuf> {
    let (store, _) = Store::open(dir, opts()).unwrap();
    append_batches(&store, 0..n);
    store.close().unwrap();
    booster_store::format::segment_paths(dir).unwrap()
}

#[test]
fn a_rotted_meta_frame_and_footer_in_an_older_segment_cost_only_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    let segs = store_of(dir.path(), 12);
    assert!(segs.len() >= 3, "{segs:?}");
    let victim = &segs[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let entries = read_sealed_entries(&bytes).unwrap();
    let meta = entries
        .iter()
        .find(|e| e.header.kind == FrameKind::Meta)
        .copied()
        .unwrap();
    // The batch before this meta frame: its slice frame.
    let slice = entries
        .iter()
        .rev()
        .find(|e| e.offset < meta.offset && e.header.kind == FrameKind::Slice)
        .copied()
        .unwrap();
    bytes[meta.offset as usize + 53] ^= 0x10; // payload of the meta frame
    let footer_payload = bytes.len() - FOOTER_TAIL_LEN - 20;
    bytes[footer_payload] ^= 0x10; // the footer: recovery must scan
    std::fs::write(victim, &bytes).unwrap();

    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(report.damaged.len(), 2, "{report:?}");
    let lost = &report.damaged[0];
    assert_eq!(lost.segment_id, 1);
    assert_eq!(
        lost.offset, slice.offset,
        "from the start of the broken batch"
    );
    assert_eq!(lost.end, meta.offset + meta.header.frame_len());
    assert_eq!(lost.slices, vec![slice.header.key]);
    assert!(lost.meta_lost);
    let footer = &report.damaged[1];
    assert!(footer.slices.is_empty() && !footer.meta_lost, "{footer:?}");

    assert!(matches!(
        store.read_slice(&slice.header.key),
        Err(StoreError::Corrupt { segment_id: 1, .. })
    ));
    let lost_meta = format!("meta {}", slice.header.key.seq).into_bytes();
    let meta_records = store.meta_records().unwrap();
    assert_eq!(meta_records.len(), 11);
    assert!(!meta_records.contains(&lost_meta));
    for v in (0..12).filter(|v| *v != slice.header.key.seq) {
        assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
    }
    // New work goes on.
    store
        .append(Batch::new().slice(key(50), &records(50)))
        .unwrap();
    assert_eq!(store.read_slice(&key(50)).unwrap().unwrap(), records(50));
}

#[test]
fn a_frame_whose_header_is_unreadable_is_an_unknown_loss_and_keys_not_held_fail_to_read() {
    let dir = tempfile::tempdir().unwrap();
    let segs = store_of(dir.path(), 12);
    let victim = &segs[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let entries = read_sealed_entries(&bytes).unwrap();
    let second = entries[1];
    bytes[second.offset as usize + 20] ^= 0x01; // inside the frame header
    let footer_payload = bytes.len() - FOOTER_TAIL_LEN - 20;
    bytes[footer_payload] ^= 0x10;
    std::fs::write(victim, &bytes).unwrap();
    for _ in 0..2 {
        let (store, report) = Store::open(dir.path(), opts()).unwrap();
        let unknown: Vec<_> = report.damaged.iter().filter(|d| !d.identified).collect();
        assert_eq!(unknown.len(), 1, "{report:?}");
        assert_eq!(unknown[0].segment_id, 1);
        assert!(unknown[0].meta_lost);
        // The batch the unreadable frame belonged to is lost, and the next
        // one with it (where that batch ended cannot be known, and half a
        // batch never shows); a key the store no longer holds is not
        // "absent" but may have been lost.
        let lost: Vec<u64> = unknown[0].slices.iter().map(|k| k.seq).collect();
        assert_eq!(lost, vec![0, 1], "{:?}", unknown[0]);
        for v in 0..12 {
            match store.read_slice(&key(v)) {
                Ok(Some(r)) if !lost.contains(&v) => assert_eq!(r, records(v)),
                Err(StoreError::Corrupt { segment_id: 1, .. }) if lost.contains(&v) => {}
                other => panic!("slice {v}: {other:?}"),
            }
        }
        match store.read_slice(&key(999)) {
            Err(StoreError::Corrupt {
                segment_id: 1,
                what,
                ..
            }) => {
                assert!(what.contains("may have been"), "{what}")
            }
            other => panic!("never written, but unknowable: {other:?}"),
        }
        let meta = store.meta_records().unwrap();
        assert!(!meta.contains(&b"meta 0".to_vec()) && !meta.contains(&b"meta 1".to_vec()));
        assert_eq!(meta.len(), 10, "no half batch");
        store
            .append(Batch::new().slice(key(500 + segs.len() as u64), &records(5)))
            .unwrap();
        store.close().unwrap();
    }
}

#[test]
fn damage_past_the_watermark_of_the_last_segment_is_degraded_and_later_batches_stay() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || StoreOptions {
        segment_size_bytes: 1 << 20,
        ..opts()
    };
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    store
        .append(Batch::new().slice(key(0), &records(0)))
        .unwrap();
    store.record_watermark().unwrap();
    append_batches(&store, 1..6);
    drop(store); // a crash: the last segment stays unsealed
    let seg = dir.path().join("seg-0000000000000001.bseg");
    let mut bytes = std::fs::read(&seg).unwrap();
    let frames = booster_store::format::scan_segment(&bytes).entries;
    let victim = frames
        .iter()
        .find(|e| e.header.kind == FrameKind::Slice && e.header.key == key(2))
        .copied()
        .unwrap();
    bytes[victim.offset as usize + 60] ^= 0x08; // payload, past the watermark
    std::fs::write(&seg, &bytes).unwrap();

    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    let d = &report.damaged[0];
    assert!(d.identified && d.meta_lost, "{d:?}");
    assert_eq!(d.slices, vec![key(2)]);
    assert!(matches!(
        store.read_slice(&key(2)),
        Err(StoreError::Corrupt { .. })
    ));
    for v in [0, 1, 3, 4, 5] {
        assert_eq!(
            store.read_slice(&key(v)).unwrap().unwrap(),
            records(v),
            "slice {v}"
        );
    }
    assert!(report.truncated.is_empty(), "nothing is cut: {report:?}");
}

#[test]
fn a_rotted_header_of_the_newest_segment_costs_what_its_footer_names_or_is_an_unknown_loss() {
    // Sealed (a clean close): its footer names what it held.
    let dir = tempfile::tempdir().unwrap();
    let segs = store_of(dir.path(), 12);
    let newest = segs.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let held: Vec<SliceKey> = read_sealed_entries(&bytes)
        .unwrap()
        .iter()
        .filter(|e| e.header.kind == FrameKind::Slice)
        .map(|e| e.header.key)
        .collect();
    bytes[40] ^= 0x01;
    std::fs::write(newest, &bytes).unwrap();
    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert!(report.damaged[0].identified);
    assert_eq!(report.damaged[0].slices, held);
    assert_eq!(store.read_slice(&key(0)).unwrap().unwrap(), records(0));
    store
        .append(Batch::new().slice(key(90), &records(90)))
        .unwrap();
    store.close().unwrap();
    assert_eq!(std::fs::read(newest).unwrap(), bytes, "kept as it was");

    // Unsealed (a crash): nothing names what it held.
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    append_batches(&store, 0..12);
    drop(store);
    let segs = booster_store::format::segment_paths(dir.path()).unwrap();
    let newest = segs.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    bytes[40] ^= 0x01;
    std::fs::write(newest, &bytes).unwrap();
    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert!(!report.damaged[0].identified);
    assert_eq!(store.read_slice(&key(0)).unwrap().unwrap(), records(0));
    assert!(store.read_slice(&key(11)).is_err());
    store
        .append(Batch::new().slice(key(90), &records(90)))
        .unwrap();
    store.close().unwrap();
    assert_eq!(std::fs::read(newest).unwrap(), bytes, "kept as it was");
}

#[test]
fn damage_below_the_watermark_of_the_last_segment_is_degraded_too() {
    let dir = tempfile::tempdir().unwrap();
    let segs = store_of(dir.path(), 12);
    let last = segs.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    let entries = read_sealed_entries(&bytes).unwrap();
    let slice = entries
        .iter()
        .find(|e| e.header.kind == FrameKind::Slice)
        .copied()
        .unwrap();
    bytes[slice.offset as usize + 60] ^= 0x08;
    let footer_payload = bytes.len() - FOOTER_TAIL_LEN - 20;
    bytes[footer_payload] ^= 0x10;
    std::fs::write(last, &bytes).unwrap();
    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    assert!(
        report
            .damaged
            .iter()
            .any(|d| d.slices == vec![slice.header.key]),
        "{report:?}"
    );
    assert!(matches!(
        store.read_slice(&slice.header.key),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn a_rotted_meta_frame_in_a_sealed_segment_can_be_skipped_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let segs = store_of(dir.path(), 12);
    let victim = &segs[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let meta = read_sealed_entries(&bytes)
        .unwrap()
        .into_iter()
        .find(|e| e.header.kind == FrameKind::Meta)
        .unwrap();
    bytes[meta.offset as usize + 53] ^= 0x10;
    std::fs::write(victim, &bytes).unwrap();
    // The footer is intact: the store opens from it without reading frames.
    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    assert!(report.damaged.is_empty());
    assert!(matches!(
        store.meta_records(),
        Err(StoreError::Corrupt { offset, .. }) if offset == meta.offset
    ));
    let (records, damage) = store.meta_records_skipping_damage().unwrap();
    assert_eq!(records.len(), 11);
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!((damage[0].segment_id, damage[0].offset), (1, meta.offset));
    assert!(damage[0].meta_lost);
}

#[test]
fn a_rotted_header_of_an_older_segment_costs_only_what_its_footer_names() {
    let dir = tempfile::tempdir().unwrap();
    let segs = store_of(dir.path(), 12);
    assert!(segs.len() >= 3, "{segs:?}");
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    let held: Vec<SliceKey> = read_sealed_entries(&bytes)
        .unwrap()
        .iter()
        .filter(|e| e.header.kind == FrameKind::Slice)
        .map(|e| e.header.key)
        .collect();
    assert!(!held.is_empty());
    bytes[40] ^= 0x01; // the salt: the header CRC fails
    std::fs::write(&segs[0], &bytes).unwrap();
    for _ in 0..2 {
        let (store, report) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(report.damaged.len(), 1, "{report:?}");
        let d = &report.damaged[0];
        assert_eq!((d.segment_id, d.offset), (1, 0));
        assert_eq!(d.slices, held);
        assert!(d.meta_lost);
        for k in &held {
            assert!(matches!(
                store.read_slice(k),
                Err(StoreError::Corrupt { segment_id: 1, .. })
            ));
        }
        for v in (0..12).filter(|v| !held.contains(&key(*v))) {
            assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
        }
        assert_eq!(store.meta_records().unwrap().len(), 12 - held.len());
        let verify = store.verify();
        assert!(
            verify.problems.iter().any(|p| p.segment_id == 1),
            "{verify:?}"
        );
        store.close().unwrap();
        assert!(segs[0].exists(), "the damaged segment is kept");
    }
}

#[test]
fn a_checkpoint_lost_in_a_damaged_range_still_ends_the_meta_log_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    store.append(Batch::new().meta(b"before".to_vec())).unwrap();
    store
        .append(
            Batch::new()
                .checkpoint(b"cp".to_vec())
                .meta(b"with".to_vec()),
        )
        .unwrap();
    for v in 0..12 {
        store
            .append(
                Batch::new()
                    .slice(key(v), &records(v))
                    .meta(format!("after {v}").into_bytes()),
            )
            .unwrap();
    }
    store.close().unwrap();
    let first = dir.path().join("seg-0000000000000001.bseg");
    let mut bytes = std::fs::read(&first).unwrap();
    let checkpoint = read_sealed_entries(&bytes)
        .unwrap()
        .into_iter()
        .find(|e| e.header.is_checkpoint())
        .unwrap();
    bytes[checkpoint.offset as usize + 53] ^= 0x10; // its payload
    let footer_payload = bytes.len() - FOOTER_TAIL_LEN - 20;
    bytes[footer_payload] ^= 0x10; // the footer: recovery must scan
    std::fs::write(&first, &bytes).unwrap();

    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    assert!(report.damaged.iter().any(|d| d.meta_lost), "{report:?}");
    let records = store.meta_records().unwrap();
    let expected: Vec<Vec<u8>> = (0..12).map(|v| format!("after {v}").into_bytes()).collect();
    assert_eq!(records, expected, "nothing from before the lost checkpoint");
}

/// One flipped byte in the seal footer of an older segment loses nothing
/// (every frame is whole and is found by a scan): it is reported, and
/// compaction, which would otherwise wait forever for a restore, rewrites
/// it away.
#[test]
fn a_damaged_footer_over_whole_frames_is_reported_and_compacted_away() {
    let dir = tempfile::tempdir().unwrap();
    let segs = store_of(dir.path(), 12);
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&segs[0], &bytes).unwrap();
    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    let d = &report.damaged[0];
    assert!(d.slices.is_empty() && !d.meta_lost && d.identified, "{d:?}");
    for v in 0..12 {
        assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
    }
    struct KeepAll;
    impl booster_store::CompactionPlan for KeepAll {
        fn slice_is_live(&self, _: &SliceKey) -> bool {
            true
        }
        fn meta_snapshot(&self) -> Vec<Vec<u8>> {
            Vec::new()
        }
    }
    store.compact(&KeepAll).unwrap();
    store.close().unwrap();
    let (store, report) = Store::open(dir.path(), opts()).unwrap();
    assert!(report.damaged.is_empty(), "{report:?}");
    for v in 0..12 {
        assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
    }
}
