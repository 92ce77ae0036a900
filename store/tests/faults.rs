//! Torn tails at every byte, bit flips at every bit, frames moved between
//! segments: recovery and verify find every one, and never return wrong data.

mod common;

use booster_store::format::{scan_segment, FLAG_BATCH_END};
use booster_store::fs::sim::SimFileLayer;
use booster_store::{Batch, MasterKey, SliceKey, Store, StoreError, StoreOptions};
use common::{dir, key, read_state, records, State};

fn opts(master: &MasterKey) -> StoreOptions {
    StoreOptions {
        master_key: Some(master.clone()),
        // Deterministic: the watermark moves only at seal and close here.
        watermark_interval_ms: 0,
        reserve_bytes: 0,
        ..StoreOptions::default()
    }
}

/// A store of `batches` batches (slice + meta each) in one segment; returns
/// the disk, the segment's path and the state after each batch.
fn small_store(
    master: &MasterKey,
    batches: u64,
    close: bool,
) -> (SimFileLayer, std::path::PathBuf, Vec<State>) {
    let fs = SimFileLayer::new();
    let (store, _) = Store::open_with(fs.clone(), dir(), opts(master)).unwrap();
    let mut states = vec![State::default()];
    for v in 0..batches {
        store
            .append(
                Batch::new()
                    .slice(key(v), &records(v))
                    .meta(v.to_string().into_bytes()),
            )
            .unwrap();
        states.push(read_state(&store).unwrap());
    }
    if close {
        store.close().unwrap();
    } else {
        drop(store);
    }
    let segs: Vec<_> = fs
        .files(dir())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "bseg"))
        .collect();
    assert_eq!(segs.len(), 1);
    (fs, segs[0].clone(), states)
}

#[test]
fn truncating_the_last_segment_at_every_byte_recovers_exactly_the_earlier_batches() {
    let master = MasterKey::generate();
    let (fs, seg, states) = small_store(&master, 4, false);
    let bytes = fs.read_file(&seg).unwrap();
    let batch_ends: Vec<u64> = scan_segment(&bytes)
        .entries
        .iter()
        .filter(|e| e.header.flags & FLAG_BATCH_END != 0)
        .map(|e| e.offset + e.header.frame_len())
        .collect();
    assert_eq!(batch_ends.len(), 4);
    for cut in 0..=bytes.len() {
        let disk = fs.snapshot();
        disk.write_file(&seg, &bytes[..cut]);
        if cut < 128 {
            // The header was durable before the manifest listed the segment:
            // losing it is damage nothing names (an unknown loss), never a
            // torn tail; the store opens degraded and keeps the file.
            let (store, report) = Store::open_with(disk.clone(), dir(), opts(&master))
                .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert!(
                report.truncated.is_empty()
                    && report
                        .damaged
                        .iter()
                        .any(|d| d.segment_id == 1 && !d.identified),
                "cut at {cut}: {report:?}"
            );
            assert!(
                matches!(
                    store.read_slice(&key(0)),
                    Err(StoreError::Corrupt { segment_id: 1, .. })
                ),
                "cut at {cut}"
            );
            drop(store);
            assert_eq!(disk.read_file(&seg).unwrap(), &bytes[..cut], "cut at {cut}");
            continue;
        }
        let (store, report) = Store::open_with(disk.clone(), dir(), opts(&master))
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let whole = batch_ends.iter().filter(|end| **end <= cut as u64).count();
        assert_eq!(read_state(&store).unwrap(), states[whole], "cut at {cut}");
        let clean_cut = cut == 128 || batch_ends.contains(&(cut as u64));
        let torn = cut > 0 && !clean_cut;
        assert_eq!(
            !report.truncated.is_empty(),
            torn,
            "cut at {cut}: {report:?}"
        );
        drop(store);
        let (store, report) = Store::open_with(disk, dir(), opts(&master)).unwrap();
        assert!(
            report.truncated.is_empty(),
            "cut at {cut}: recovery is idempotent"
        );
        assert_eq!(
            read_state(&store).unwrap(),
            states[whole],
            "cut at {cut}, reopened"
        );
    }
}

/// Opens a copy of the store with `bytes` as its segment; true when the
/// damage was noticed (open failed, recovery truncated, verify or a read
/// reported it). Panics if wrong data is ever returned as good.
fn damage_is_detected(
    base: &SimFileLayer,
    master: &MasterKey,
    seg: &std::path::Path,
    bytes: &[u8],
    good: &State,
) -> bool {
    let disk = base.snapshot();
    disk.write_file(seg, bytes);
    let (store, report) = match Store::open_with(disk, dir(), opts(master)) {
        Err(_) => return true,
        Ok(opened) => opened,
    };
    let verify_found = !store.verify().problems.is_empty();
    match read_state(&store) {
        Ok(state) => {
            // Degraded open may drop a damaged frame in the middle: what is
            // left is the written records, in order, with some missing.
            let mut written = good.meta.iter();
            let dropped_only = state
                .slices
                .iter()
                .all(|(k, r)| good.slices.get(k) == Some(r))
                && state.meta.iter().all(|m| written.any(|w| w == m));
            assert!(dropped_only, "damaged bytes were returned as good data");
            !report.truncated.is_empty()
                || !report.damaged.is_empty()
                || verify_found
                || state != *good
        }
        Err(StoreError::Corrupt { .. }) => true,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn every_flipped_bit_of_a_sealed_segment_is_detected() {
    let master = MasterKey::generate();
    let (fs, seg, states) = small_store(&master, 2, true);
    let bytes = fs.read_file(&seg).unwrap();
    let good = states.last().unwrap();
    for bit in 0..bytes.len() * 8 {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            damage_is_detected(&fs, &master, &seg, &bad, good),
            "bit {bit} (byte {})",
            bit / 8
        );
    }
}

#[test]
fn every_flipped_byte_of_an_unsealed_segment_is_detected() {
    let master = MasterKey::generate();
    let (fs, seg, states) = small_store(&master, 2, false);
    let bytes = fs.read_file(&seg).unwrap();
    let good = states.last().unwrap();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x5a;
        assert!(
            damage_is_detected(&fs, &master, &seg, &bad, good),
            "byte {i}"
        );
    }
}

#[test]
fn a_frame_copied_into_another_segment_fails_authentication() {
    let master = MasterKey::generate();
    let (fs_a, seg, _) = small_store(&master, 1, true);
    let (fs_b, _, _) = small_store(&master, 1, true);
    let a = fs_a.read_file(&seg).unwrap();
    let mut b = fs_b.read_file(&seg).unwrap();
    // Same records and key, so the frames have the same length and header:
    // only the segment key (salt) tells them apart.
    let frame = &scan_segment(&a).entries[0];
    let range = frame.offset as usize..(frame.offset + frame.header.frame_len()) as usize;
    assert_ne!(a[range.clone()], b[range.clone()]);
    b[range.clone()].copy_from_slice(&a[range]);
    let disk = fs_b.snapshot();
    disk.write_file(&seg, &b);
    let (store, _) = Store::open_with(disk, dir(), opts(&master)).unwrap();
    let err = store.read_slice(&key(0)).unwrap_err();
    assert!(err.to_string().contains("authentication failed"), "{err}");
    let report = store.verify();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].offset, frame.offset);
}

#[test]
fn verify_names_the_segment_and_offset_of_a_damaged_frame() {
    let master = MasterKey::generate();
    let (fs, seg, _) = small_store(&master, 3, true);
    let mut bytes = fs.read_file(&seg).unwrap();
    let second = scan_segment(&bytes).entries[2];
    bytes[second.offset as usize + 60] ^= 1;
    let disk = fs.snapshot();
    disk.write_file(&seg, &bytes);
    let (store, _) = Store::open_with(disk, dir(), opts(&master)).unwrap();
    let report = store.verify();
    assert_eq!(report.frames, 6);
    assert_eq!(
        report.tags_checked, 5,
        "the damaged frame fails its CRC first"
    );
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].offset, second.offset);
    assert_eq!(report.problems[0].segment_id, 1);
    let slice = SliceKey { ..key(1) };
    assert!(matches!(
        store.read_slice(&slice),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn a_sealed_segment_is_indexed_from_its_footer_without_reading_frames() {
    let master = MasterKey::generate();
    let fs = SimFileLayer::new();
    let small = StoreOptions {
        segment_size_bytes: 256,
        ..opts(&master)
    };
    {
        let (store, _) = Store::open_with(fs.clone(), dir(), small.clone()).unwrap();
        store
            .append(Batch::new().slice(key(0), &records(0)))
            .unwrap();
        store
            .append(Batch::new().slice(key(1), &records(1)))
            .unwrap();
        store.close().unwrap();
    }
    let first = fs
        .files(dir())
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("1.bseg"))
        .unwrap();
    let mut bytes = fs.read_file(&first).unwrap();
    // Damage the payload only: a scan would see the bad CRC, the footer does not.
    bytes[128 + 60] ^= 0xff;
    fs.write_file(&first, &bytes);
    let (store, report) = Store::open_with(fs, dir(), small).unwrap();
    assert_eq!(report.frames, 2);
    assert!(matches!(
        store.read_slice(&key(0)),
        Err(StoreError::Corrupt { offset: 128, .. })
    ));
    assert_eq!(store.read_slice(&key(1)).unwrap().unwrap(), records(1));
    assert_eq!(store.verify().problems.len(), 1);
}
