//! `Store::salvage` (issue 10): every verifiable batch of a damaged
//! directory goes into a fresh store, whole batches only, in commit order;
//! what could not be saved is named; the damaged directory is not touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use booster_store::format::segment_paths;
use booster_store::format::{read_sealed_entries, FrameKind};
use booster_store::{Batch, MasterKey, SliceKey, Store, StoreError, StoreOptions};

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 3,
        stream: 1,
        seq,
    }
}

fn records(v: u64) -> Vec<Vec<u8>> {
    (0..12)
        .map(|i| format!("{v},{i},item-{}", v * 12 + i).into_bytes())
        .collect()
}

fn opts(master_key: Option<MasterKey>) -> StoreOptions {
    StoreOptions {
        segment_size_bytes: 1024,
        watermark_interval_ms: 0,
        reserve_bytes: 0,
        master_key,
        ..StoreOptions::default()
    }
}

/// A closed store of `n` batches (slice + meta each) over several segments;
/// slice 0 is written twice, so the newer version must win in the copy.
fn store_of(dir: &Path, n: u64, master_key: Option<MasterKey>) -> Vec<PathBuf> {
    let (store, _) = Store::open(dir, opts(master_key)).unwrap();
    store
        .append(Batch::new().slice(key(0), &[b"old".as_slice()]))
        .unwrap();
    for v in 0..n {
        store
            .append(
                Batch::new()
                    .slice(key(v), &records(v))
                    .meta(format!("meta {v}").into_bytes()),
            )
            .unwrap();
    }
    store.close().unwrap();
    segment_paths(dir).unwrap()
}

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// Slices and meta of a salvaged store, which must open and verify clean.
fn contents(
    dir: &Path,
    master_key: Option<MasterKey>,
) -> (BTreeMap<u64, Vec<Vec<u8>>>, Vec<String>) {
    let (store, report) = Store::open(dir, opts(master_key)).unwrap();
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
    assert!(report.truncated.is_empty(), "{:?}", report.truncated);
    let verify = store.verify();
    assert!(verify.problems.is_empty(), "{:?}", verify.problems);
    let slices = store
        .slices(3, 1)
        .into_iter()
        .map(|i| (i.key.seq, store.read_slice(&i.key).unwrap().unwrap()))
        .collect();
    let meta = store
        .meta_records()
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m).unwrap())
        .collect();
    (slices, meta)
}

#[test]
fn a_clean_store_is_copied_whole_with_the_newest_version_of_each_slice() {
    let src = tempfile::tempdir().unwrap();
    store_of(src.path(), 10, None);
    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("new");
    let report = Store::salvage(src.path(), &out, None).unwrap();
    assert!(report.complete(), "{:?}", report.unsaved);
    assert_eq!(report.batches_copied, 11);
    let (slices, meta) = contents(&out, None);
    assert_eq!(slices.len(), 10);
    for v in 0..10 {
        assert_eq!(slices[&v], records(v), "slice {v}");
    }
    let want: Vec<String> = (0..10).map(|v| format!("meta {v}")).collect();
    assert_eq!(meta, want);
}

#[test]
fn a_rotted_slice_frame_loses_only_its_batch_and_is_named() {
    let src = tempfile::tempdir().unwrap();
    let segs = store_of(src.path(), 12, None);
    assert!(segs.len() >= 3, "{segs:?}");
    let victim = &segs[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let entries = read_sealed_entries(&bytes).unwrap();
    let slice = entries
        .iter()
        .find(|e| e.header.kind == FrameKind::Slice)
        .copied()
        .unwrap();
    bytes[slice.offset as usize + 60] ^= 0x08; // in the payload
    std::fs::write(victim, &bytes).unwrap();
    let before = files(src.path());

    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("new");
    let report = Store::salvage(src.path(), &out, None).unwrap();
    assert_eq!(files(src.path()), before, "salvage wrote to the source");
    assert!(!report.complete());
    assert_eq!(report.unsaved.len(), 1, "{:?}", report.unsaved);
    let lost = &report.unsaved[0];
    assert_eq!(lost.slices, vec![slice.header.key]);
    assert!(lost.meta_lost, "the batch's meta record went with it");
    assert_eq!(lost.offset, slice.offset);

    let (slices, meta) = contents(&out, None);
    let v = slice.header.key.seq;
    assert!(
        !meta.contains(&format!("meta {v}")),
        "half a batch was copied"
    );
    for w in (0..12).filter(|w| *w != v) {
        assert_eq!(slices[&w], records(w), "slice {w}");
        assert!(meta.contains(&format!("meta {w}")));
    }
    assert_eq!(meta.len(), 11);
}

/// Slices a sealed segment holds, from its footer.
fn held_by(segment: &Path) -> Vec<SliceKey> {
    read_sealed_entries(&std::fs::read(segment).unwrap())
        .unwrap()
        .iter()
        .filter(|e| e.header.kind == FrameKind::Slice)
        .map(|e| e.header.key)
        .collect()
}

#[test]
fn a_rotted_header_of_an_encrypted_segment_loses_that_segment_and_keeps_the_rest() {
    let master = || Some(MasterKey([7; 32]));
    let src = tempfile::tempdir().unwrap();
    let segs = store_of(src.path(), 12, master());
    let victim = &segs[0];
    let held = held_by(victim);
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[2] ^= 0xff; // the header's magic: its salt cannot be trusted
    std::fs::write(victim, &bytes).unwrap();

    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("new");
    let report = Store::salvage(src.path(), &out, master().as_ref()).unwrap();
    assert!(report
        .unsaved
        .iter()
        .any(|u| u.offset == 0 && u.what.contains("segment header")));
    let (slices, _) = contents(&out, master());
    // The slices held there are gone (no older frame of them lies in a
    // later segment); every other slice is there, intact.
    for v in 0..12 {
        if held.contains(&key(v)) {
            assert!(!slices.contains_key(&v), "slice {v} came back");
        } else {
            assert_eq!(slices[&v], records(v), "slice {v}");
        }
    }
}

/// Without a key every frame is plaintext and carries its own CRC: a
/// rotted segment header costs nothing its frames held.
#[test]
fn a_rotted_header_of_a_plaintext_segment_costs_none_of_its_frames() {
    let src = tempfile::tempdir().unwrap();
    let segs = store_of(src.path(), 12, None);
    let victim = &segs[0];
    assert!(!held_by(victim).is_empty());
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[2] ^= 0xff;
    std::fs::write(victim, &bytes).unwrap();

    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("new");
    let report = Store::salvage(src.path(), &out, None).unwrap();
    assert!(!report.complete(), "the damage is named");
    assert!(
        report
            .unsaved
            .iter()
            .all(|u| u.slices.is_empty() && !u.meta_lost),
        "{:?}",
        report.unsaved
    );
    let (slices, meta) = contents(&out, None);
    for v in 0..12 {
        assert_eq!(slices[&v], records(v), "slice {v}");
    }
    assert_eq!(meta.len(), 12);
}

#[test]
fn a_missing_segment_is_named_and_every_other_segment_is_copied() {
    let src = tempfile::tempdir().unwrap();
    let segs = store_of(src.path(), 12, Some(MasterKey([9; 32])));
    assert!(segs.len() >= 3, "{segs:?}");
    let victim = &segs[1];
    let held: Vec<u64> = read_sealed_entries(&std::fs::read(victim).unwrap())
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e.header.kind == FrameKind::Slice)
                .map(|e| e.header.key.seq)
                .collect()
        })
        .unwrap();
    assert!(!held.is_empty());
    std::fs::remove_file(victim).unwrap();
    let before = files(src.path());

    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("new");
    let report = Store::salvage(src.path(), &out, Some(&MasterKey([9; 32]))).unwrap();
    assert_eq!(files(src.path()), before, "salvage wrote to the source");
    assert!(!report.complete());
    assert!(
        report
            .problems
            .iter()
            .any(|p| &p.path == victim && p.what.contains("missing")),
        "{:?}",
        report.problems
    );
    let (slices, meta) = contents(&out, Some(MasterKey([9; 32])));
    for v in 0..12 {
        if held.contains(&v) {
            assert!(!slices.contains_key(&v), "slice {v} came from nowhere");
        } else {
            assert_eq!(slices[&v], records(v), "slice {v}");
            assert!(meta.contains(&format!("meta {v}")), "meta {v}");
        }
    }
    assert_eq!(meta.len(), 12 - held.len());
}

#[test]
fn a_torn_tail_is_named_and_everything_before_it_is_copied() {
    let src = tempfile::tempdir().unwrap();
    let segs = store_of(src.path(), 6, None);
    let last = segs.last().unwrap();
    let bytes = std::fs::read(last).unwrap();
    // Cut into the last segment's last meta frame (and so its footer).
    let last_meta = read_sealed_entries(&bytes)
        .unwrap()
        .into_iter()
        .rfind(|e| e.header.kind == FrameKind::Meta)
        .unwrap();
    std::fs::write(last, &bytes[..last_meta.offset as usize + 20]).unwrap();

    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("new");
    let report = Store::salvage(src.path(), &out, None).unwrap();
    assert!(!report.complete());
    let (slices, meta) = contents(&out, None);
    assert!(meta.len() < 6 && !meta.is_empty(), "{meta:?}");
    for m in &meta {
        let v: u64 = m.trim_start_matches("meta ").parse().unwrap();
        assert_eq!(slices[&v], records(v));
    }
}

#[test]
fn an_encrypted_store_is_salvaged_under_its_key_and_refused_without_it() {
    let k = MasterKey::generate();
    let src = tempfile::tempdir().unwrap();
    store_of(src.path(), 5, Some(k.clone()));

    let dst = tempfile::tempdir().unwrap();
    let without = dst.path().join("without");
    let report = Store::salvage(src.path(), &without, None);
    match report {
        Err(StoreError::WrongKey { .. }) => {}
        Ok(r) => assert!(
            r.unsaved.iter().all(|u| u.what.contains("key")) && !r.unsaved.is_empty(),
            "{:?}",
            r.unsaved
        ),
        Err(e) => panic!("unexpected {e}"),
    }

    let with = dst.path().join("with");
    let report = Store::salvage(src.path(), &with, Some(&k)).unwrap();
    assert!(report.complete(), "{:?}", report.unsaved);
    let (slices, _) = contents(&with, Some(k));
    assert_eq!(slices.len(), 5);
    assert_eq!(slices[&4], records(4));
}

#[test]
fn salvage_refuses_a_destination_that_is_not_empty_or_is_the_source() {
    let src = tempfile::tempdir().unwrap();
    store_of(src.path(), 2, None);
    let dst = tempfile::tempdir().unwrap();
    std::fs::write(dst.path().join("something"), b"x").unwrap();
    let e = Store::salvage(src.path(), dst.path(), None).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    let e = Store::salvage(src.path(), src.path(), None).unwrap_err();
    assert!(
        e.to_string().contains("not empty") || e.to_string().contains("another directory"),
        "{e}"
    );
}

#[test]
fn a_segment_that_a_compaction_replaced_is_not_copied_again() {
    let src = tempfile::tempdir().unwrap();
    let segs = store_of(src.path(), 8, None);
    let old = std::fs::read(&segs[0]).unwrap();
    {
        let (store, _) = Store::open(src.path(), opts(None)).unwrap();
        let live: std::collections::BTreeSet<SliceKey> = (0..8).map(key).collect();
        let plan = Plan {
            live,
            meta: vec![b"snapshot".to_vec()],
        };
        store.compact(&plan).unwrap();
        store.close().unwrap();
    }
    // A crash in the unlink phase leaves a replaced segment behind.
    std::fs::write(&segs[0], &old).unwrap();

    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("new");
    let report = Store::salvage(src.path(), &out, None).unwrap();
    assert!(report.unsaved.is_empty(), "{:?}", report.unsaved);
    let (slices, meta) = contents(&out, None);
    assert_eq!(meta, vec!["snapshot".to_string()]);
    for v in 0..8 {
        assert_eq!(slices[&v], records(v), "slice {v}");
    }
}

struct Plan {
    live: std::collections::BTreeSet<SliceKey>,
    meta: Vec<Vec<u8>>,
}

impl booster_store::CompactionPlan for Plan {
    fn slice_is_live(&self, key: &SliceKey) -> bool {
        self.live.contains(key)
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        self.meta.clone()
    }
}

#[test]
fn tombstones_and_checkpoints_are_copied_as_what_they_are() {
    let src = tempfile::tempdir().unwrap();
    store_of(src.path(), 6, None);
    {
        let (store, _) = Store::open(src.path(), opts(None)).unwrap();
        store
            .append(
                Batch::new()
                    .delete(key(2))
                    .checkpoint(b"checkpoint".to_vec())
                    .meta(b"after".to_vec()),
            )
            .unwrap();
        store.close().unwrap();
    }
    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("new");
    let report = Store::salvage(src.path(), &out, None).unwrap();
    assert!(report.complete(), "{:?}", report.unsaved);
    let (slices, meta) = contents(&out, None);
    assert!(!slices.contains_key(&2), "the deleted slice came back");
    assert_eq!(slices.len(), 5);
    assert_eq!(meta, vec!["checkpoint".to_string(), "after".to_string()]);
}

/// A checkpoint written after a batch the copy loses summarises that
/// batch (its image says the lost commit happened): the copy leaves the
/// checkpoint's batch out whole, so its log starts at the checkpoint
/// before the loss, over that checkpoint's image, and the lost commit is
/// simply not done there (ARCHITECTURE.md, "Salvage").
#[test]
fn a_checkpoint_after_a_lost_batch_is_left_out_so_the_copy_replays_from_before_it() {
    let image = SliceKey {
        owner: u64::MAX,
        stream: 0,
        seq: 0,
    };
    let src = tempfile::tempdir().unwrap();
    {
        let (store, _) = Store::open(src.path(), opts(None)).unwrap();
        let checkpoint = |n: u64| {
            Batch::new()
                .checkpoint(format!("checkpoint {n}").into_bytes())
                .meta(format!("besides {n}").into_bytes())
                .slice(image, &[format!("image {n}").into_bytes()])
        };
        store.append(checkpoint(1)).unwrap();
        for v in 0..12 {
            store
                .append(
                    Batch::new()
                        .slice(key(v), &records(v))
                        .meta(format!("meta {v}").into_bytes()),
                )
                .unwrap();
        }
        store.append(checkpoint(2)).unwrap();
        store.append(Batch::new().meta(b"after".to_vec())).unwrap();
        store.close().unwrap();
    }
    // Rot batch 3's slice (in a sealed segment, before checkpoint 2).
    let (victim, offset) = segment_paths(src.path())
        .unwrap()
        .into_iter()
        .find_map(|p| {
            let entries = read_sealed_entries(&std::fs::read(&p).unwrap()).ok()?;
            let e = entries.iter().find(|e| e.header.key == key(3))?;
            Some((p.clone(), e.offset))
        })
        .expect("batch 3 is in a sealed segment");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[offset as usize + 60] ^= 0x08;
    std::fs::write(&victim, &bytes).unwrap();

    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("new");
    let report = Store::salvage(src.path(), &out, None).unwrap();
    assert_eq!(report.unsaved.len(), 2, "{:?}", report.unsaved);
    assert!(
        report.unsaved[1].what.contains("checkpoint"),
        "the checkpoint left out is named: {:?}",
        report.unsaved[1]
    );
    let (store, _) = Store::open(&out, opts(None)).unwrap();
    let meta: Vec<String> = store
        .meta_records()
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m).unwrap())
        .collect();
    let mut want = vec!["checkpoint 1".to_string(), "besides 1".into()];
    want.extend((0..12).filter(|v| *v != 3).map(|v| format!("meta {v}")));
    want.push("after".into());
    assert_eq!(meta, want);
    assert_eq!(
        store.read_slice(&image).unwrap(),
        Some(vec![b"image 1".to_vec()]),
        "the image of the checkpoint the log starts at"
    );
}
