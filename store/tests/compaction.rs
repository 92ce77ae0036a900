//! Compaction on real files: live slices survive byte-identical, dead ones
//! and old meta records go, keys rotate, and the result survives reopen.

use std::collections::BTreeSet;
use std::path::Path;

use booster_store::format::decode_segment_header;
use booster_store::{Batch, CompactionPlan, MasterKey, SliceKey, Store, StoreOptions};

struct KeepEven;

impl CompactionPlan for KeepEven {
    fn slice_is_live(&self, key: &SliceKey) -> bool {
        key.seq & 1 == 0
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        vec![b"snapshot".to_vec()]
    }
}

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 5,
        stream: 0,
        seq,
    }
}

fn records(v: u64) -> Vec<Vec<u8>> {
    (0..40)
        .map(|i| format!("{v},{i},name-{i},{}", v * 1000 + i).into_bytes())
        .collect()
}

fn salts(dir: &Path) -> BTreeSet<[u8; 32]> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bseg"))
        .map(|p| {
            decode_segment_header(&std::fs::read(p).unwrap())
                .unwrap()
                .salt
        })
        .collect()
}

#[test]
fn compaction_keeps_live_slices_drops_dead_ones_and_replaces_meta() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        segment_size_bytes: 2048,
        master_key: Some(MasterKey::generate()),
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), opts.clone()).unwrap();
    for v in 0..20 {
        store
            .append(
                Batch::new()
                    .slice(key(v % 10), &records(v))
                    .meta(vec![v as u8]),
            )
            .unwrap();
    }
    let before = store.stats();
    assert!(before.dead_bytes > 0);
    let old_salts = salts(dir.path());
    let report = store.compact(&KeepEven).unwrap();
    assert_eq!((report.slices_kept, report.slices_dropped), (5, 5));
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    let after = store.stats();
    assert_eq!(after.dead_bytes, 0, "{after:?}");
    assert_eq!(after.slice_frames, 5);
    let check = |store: &Store| {
        for seq in 0..10 {
            let got = store.read_slice(&key(seq)).unwrap();
            if seq % 2 == 0 {
                assert_eq!(got.unwrap(), records(seq + 10), "slice {seq}");
            } else {
                assert_eq!(got, None, "slice {seq}");
            }
        }
        assert_eq!(store.meta_records().unwrap(), vec![b"snapshot".to_vec()]);
    };
    check(&store);
    store.append(Batch::new().meta(b"after".to_vec())).unwrap();
    assert!(store.verify().problems.is_empty());
    store.close().unwrap();

    let new_salts = salts(dir.path());
    assert!(
        old_salts.is_disjoint(&new_salts),
        "compaction output uses fresh salts (new keys)"
    );
    let (store, report) = Store::open(dir.path(), opts).unwrap();
    assert!(report.truncated.is_empty());
    for seq in (0..10).step_by(2) {
        assert_eq!(
            store.read_slice(&key(seq)).unwrap().unwrap(),
            records(seq + 10)
        );
    }
    assert_eq!(
        store.meta_records().unwrap(),
        vec![b"snapshot".to_vec(), b"after".to_vec()]
    );
}

#[test]
fn compacting_an_empty_store_leaves_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    struct Nothing;
    impl CompactionPlan for Nothing {
        fn slice_is_live(&self, _: &SliceKey) -> bool {
            false
        }
        fn meta_snapshot(&self) -> Vec<Vec<u8>> {
            Vec::new()
        }
    }
    store.compact(&Nothing).unwrap();
    assert!(store.meta_records().unwrap().is_empty());
    drop(store);
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.stats().frames, 0);
}

#[test]
fn readers_holding_old_segments_survive_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    for v in 0..10 {
        store
            .append(Batch::new().slice(key(v), &records(v)))
            .unwrap();
    }
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            for _ in 0..200 {
                for v in (0..10).step_by(2) {
                    assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
                }
            }
        });
        for _ in 0..5 {
            store.compact(&KeepEven).unwrap();
        }
        reader.join().unwrap();
    });
}

#[test]
fn a_rotted_compaction_member_header_is_damage_not_an_incomplete_group() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        segment_size_bytes: 1024,
        ..StoreOptions::default()
    };
    {
        let (store, _) = Store::open(dir.path(), opts.clone()).unwrap();
        for v in 0..10 {
            store
                .append(Batch::new().slice(key(v), &records(v)))
                .unwrap();
        }
        store.compact(&KeepEven).unwrap();
        store.close().unwrap();
    }
    let members: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bseg"))
        .collect();
    assert!(
        members.len() >= 2,
        "the group needs two members: {members:?}"
    );
    // The newest member: an older one with a rotted header would be damage
    // the store opens without (degraded open), named by its footer.
    let mut members = members;
    members.sort();
    let victim = members.last().unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[70] ^= 1; // inside the compaction group fields
    std::fs::write(victim, &bytes).unwrap();
    // Its seal footer names what it held: damage, not an incomplete group
    // whose members open would delete.
    let (store, report) = Store::open(dir.path(), opts).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    let d = &report.damaged[0];
    assert!(&d.path == victim && d.offset == 0 && d.identified, "{d:?}");
    for v in (0..10).filter(|v| v % 2 == 0) {
        match store.read_slice(&key(v)) {
            Ok(Some(r)) => assert_eq!(r, records(v)),
            Err(_) => assert!(d.slices.contains(&key(v)), "slice {v}"),
            Ok(None) => panic!("slice {v} vanished"),
        }
    }
    drop(store);
    let after = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "bseg")
        })
        .count();
    assert_eq!(after, members.len(), "no member was deleted");
}

#[test]
fn a_lost_member_of_a_published_group_is_damage_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        segment_size_bytes: 1024,
        ..StoreOptions::default()
    };
    {
        let (store, _) = Store::open(dir.path(), opts.clone()).unwrap();
        for v in 0..10 {
            store
                .append(Batch::new().slice(key(v), &records(v)))
                .unwrap();
        }
        store.compact(&KeepEven).unwrap();
        store.close().unwrap();
    }
    let mut members: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bseg"))
        .collect();
    members.sort();
    assert!(
        members.len() >= 2,
        "the group needs two members: {members:?}"
    );
    std::fs::remove_file(&members[1]).unwrap();
    let (_store, report) = Store::open(dir.path(), opts).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    let d = &report.damaged[0];
    assert_eq!(d.path, members[1], "the report names the missing file");
    assert!(
        d.what.contains("segment file is missing") && !d.identified,
        "{d:?}"
    );
    assert!(members[0].exists(), "the remaining member was kept");
}

/// A kill in compaction's unlink phase leaves the replaced segments behind;
/// open deletes them, but only once the segments that replaced them loaded
/// whole. A damaged replacement keeps them: they may be the only intact
/// copy of what it held.
#[test]
fn replaced_segments_are_kept_while_a_replacement_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        segment_size_bytes: 1024,
        reserve_bytes: 0,
        ..StoreOptions::default()
    };
    let bseg = |d: &Path| -> BTreeSet<std::path::PathBuf> {
        booster_store::format::segment_paths(d)
            .unwrap()
            .into_iter()
            .collect()
    };
    {
        let (store, _) = Store::open(dir.path(), opts.clone()).unwrap();
        for v in 0..10 {
            store
                .append(Batch::new().slice(key(v), &records(v)))
                .unwrap();
        }
        store.close().unwrap();
    }
    let old: Vec<(std::path::PathBuf, Vec<u8>)> = bseg(dir.path())
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    {
        let (store, _) = Store::open(dir.path(), opts.clone()).unwrap();
        store.compact(&KeepEven).unwrap();
        store.close().unwrap();
    }
    let outputs = bseg(dir.path());
    // The unlink phase "did not finish": the old segments are back.
    for (p, b) in &old {
        std::fs::write(p, b).unwrap();
    }
    let victim = outputs.iter().next().unwrap().clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[0] ^= 0xff; // header magic
    let n = bytes.len();
    bytes[n - 5] ^= 0xff; // and the footer: nothing names what it held
    std::fs::write(&victim, &bytes).unwrap();

    for _ in 0..2 {
        let (_store, report) = Store::open(dir.path(), opts.clone()).unwrap();
        assert!(
            report.damaged.iter().any(|d| d.path == victim),
            "{report:?}"
        );
        drop(_store);
        for (p, _) in &old {
            assert!(p.exists(), "{} was deleted", p.display());
        }
    }
    // Restored, the replacement loads whole and the old copies go.
    let mut fixed = bytes;
    fixed[0] ^= 0xff;
    fixed[n - 5] ^= 0xff;
    std::fs::write(&victim, &fixed).unwrap();
    let (store, report) = Store::open(dir.path(), opts).unwrap();
    assert!(report.damaged.is_empty(), "{report:?}");
    drop(store);
    for (p, _) in &old {
        assert!(!p.exists() || outputs.contains(p), "{} kept", p.display());
    }
}

/// Keeps every slice.
struct KeepAll;

impl CompactionPlan for KeepAll {
    fn slice_is_live(&self, _: &SliceKey) -> bool {
        true
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

#[test]
fn segment_usage_names_where_the_dead_bytes_are() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        segment_size_bytes: 2048,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), opts).unwrap();
    // Ten keys, then every key again: the first round is all dead.
    for v in 0..20 {
        store
            .append(Batch::new().slice(key(v % 10), &records(v)))
            .unwrap();
    }
    store.append(Batch::new().meta(b"m".to_vec())).unwrap();
    let all = store.segment_usage(&KeepAll).unwrap();
    assert!(all.len() > 2, "{all:?}");
    for usage in &all {
        let file = dir
            .path()
            .join(format!("seg-{:016}.bseg", usage.segment_id));
        let on_disk = std::fs::metadata(&file).map(|m| m.len());
        assert_eq!(on_disk.ok(), Some(usage.file_bytes), "{usage:?}");
    }
    assert_eq!(
        (all[0].live_bytes, all[0].dead_share()),
        (0, 1.0),
        "the first segment holds only rewritten keys: {all:?}"
    );
    assert!(all.last().unwrap().live_bytes > 0, "{all:?}");
    let live =
        |usage: &[booster_store::SegmentUsage]| -> u64 { usage.iter().map(|u| u.live_bytes).sum() };
    assert_eq!(live(&all), store.stats().live_bytes);
    // What a plan drops is dead where it lies, as `stats_with` counts it.
    let even = store.segment_usage(&KeepEven).unwrap();
    assert_eq!(live(&even), store.stats_with(&KeepEven).unwrap().live_bytes);
    assert!(live(&even) < live(&all));
}
