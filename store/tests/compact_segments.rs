//! Segment-by-segment compaction on real files: only segments past the
//! dead-share threshold are rewritten, kept ones keep their file and id,
//! the meta log restarts at the snapshot, tombstones keep older frames in
//! kept segments hidden, and the counters stay exact.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use booster_store::{Batch, CompactionPlan, SliceKey, Store, StoreOptions};

/// Keeps the slices not in `drop`; the snapshot is `meta`.
struct Plan {
    drop: BTreeSet<SliceKey>,
    meta: Vec<Vec<u8>>,
}

impl CompactionPlan for Plan {
    fn slice_is_live(&self, key: &SliceKey) -> bool {
        !self.drop.contains(key)
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        self.meta.clone()
    }
}

fn snapshot(meta: &[u8]) -> Plan {
    Plan {
        drop: BTreeSet::new(),
        meta: vec![meta.to_vec()],
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

fn opts() -> StoreOptions {
    StoreOptions {
        segment_size_bytes: 2048,
        ..StoreOptions::default()
    }
}

/// Every segment file's bytes, by file name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bseg"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// Keys 0..10 once (live), then key 100 overwritten `churn` times (dead
/// but for its last frame).
fn live_then_churn(store: &Store, churn: u64) {
    for v in 0..10 {
        store
            .append(Batch::new().slice(key(v), &records(v)))
            .unwrap();
    }
    for v in 0..churn {
        store
            .append(Batch::new().slice(key(100), &records(1000 + v)))
            .unwrap();
    }
}

fn all_slices(store: &Store) -> BTreeMap<SliceKey, Vec<Vec<u8>>> {
    store
        .slices(5, 0)
        .into_iter()
        .map(|info| (info.key, store.read_slice(&info.key).unwrap().unwrap()))
        .collect()
}

#[test]
fn a_segment_under_the_threshold_keeps_its_file_and_id_one_past_it_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    live_then_churn(&store, 30);
    let plan = snapshot(b"snap");
    // Seal the active segment so that its usage is judged like the others'.
    store.compact_segments(&plan, 2.0).unwrap();
    let usage = store.segment_usage(&plan).unwrap();
    let (victims, kept): (Vec<_>, Vec<_>) = usage.iter().partition(|u| u.dead_share() >= 0.5);
    assert!(!victims.is_empty() && !kept.is_empty(), "{usage:?}");
    let before_files = files(dir.path());
    let before = all_slices(&store);
    let report = store.compact_segments(&plan, 0.5).unwrap();
    assert_eq!(report.segments_rewritten, victims.len(), "{report:?}");
    let after_files = files(dir.path());
    for u in &kept {
        let name = format!("seg-{:016}.bseg", u.segment_id);
        assert_eq!(
            after_files.get(&name),
            before_files.get(&name),
            "kept segment {name} changed"
        );
    }
    let newest_old = usage.last().unwrap().segment_id;
    for u in &victims {
        let name = format!("seg-{:016}.bseg", u.segment_id);
        assert!(!after_files.contains_key(&name), "victim {name} remains");
    }
    let ids = store.segment_ids();
    assert!(
        ids.iter()
            .all(|id| kept.iter().any(|u| u.segment_id == *id) || *id > newest_old),
        "{ids:?}"
    );
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    assert_eq!(all_slices(&store), before);
    assert_eq!(store.meta_records().unwrap(), vec![b"snap".to_vec()]);
    drop(store);
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(all_slices(&store), before);
}

#[test]
fn no_segment_past_the_threshold_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    live_then_churn(&store, 0);
    store.compact_segments(&snapshot(b"s"), 2.0).unwrap();
    let before = files(dir.path());
    let report = store.compact_segments(&snapshot(b"s"), 0.5).unwrap();
    assert_eq!(report.segments_rewritten, 0, "{report:?}");
    assert_eq!(files(dir.path()), before);
}

#[test]
fn meta_replays_as_the_snapshot_then_later_records_while_kept_segments_hold_older_meta() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    // Meta frames beside live slices: their segments stay.
    for v in 0..10 {
        store
            .append(
                Batch::new()
                    .slice(key(v), &records(v))
                    .meta(format!("old-{v}").into_bytes()),
            )
            .unwrap();
    }
    for v in 0..30 {
        store
            .append(Batch::new().slice(key(100), &records(1000 + v)))
            .unwrap();
    }
    let report = store.compact_segments(&snapshot(b"snap"), 0.5).unwrap();
    assert!(report.segments_rewritten > 0, "{report:?}");
    // The segments of keys 0..10 and their meta frames are all live.
    assert!(
        report.segments_rewritten < report.segments_before,
        "some segment holding old meta frames is kept: {report:?}"
    );
    store.append(Batch::new().meta(b"later".to_vec())).unwrap();
    let want = vec![b"snap".to_vec(), b"later".to_vec()];
    assert_eq!(store.meta_records().unwrap(), want);
    drop(store);
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(store.meta_records().unwrap(), want);
}

#[test]
fn a_tombstone_in_a_victim_keeps_an_older_frame_in_a_kept_segment_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    // Keys 0..10 live in kept segments; key 3 is then deleted and key 4
    // dropped by the plan, both in the churned (victim) segments.
    live_then_churn(&store, 12);
    store.append(Batch::new().delete(key(3))).unwrap();
    store
        .append(Batch::new().slice(key(4), &records(44)))
        .unwrap();
    for v in 0..20 {
        store
            .append(Batch::new().slice(key(100), &records(2000 + v)))
            .unwrap();
    }
    let plan = Plan {
        drop: BTreeSet::from([key(4)]),
        meta: vec![b"snap".to_vec()],
    };
    let report = store.compact_segments(&plan, 0.5).unwrap();
    assert!(report.segments_rewritten > 0, "{report:?}");
    let check = |store: &Store| {
        assert_eq!(store.read_slice(&key(3)).unwrap(), None);
        assert_eq!(store.read_slice(&key(4)).unwrap(), None);
        assert_eq!(store.read_slice(&key(5)).unwrap(), Some(records(5)));
        let keys: Vec<u64> = store.slices(5, 0).iter().map(|i| i.key.seq).collect();
        assert_eq!(keys, vec![0, 1, 2, 5, 6, 7, 8, 9, 100]);
    };
    check(&store);
    drop(store);
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    check(&store);
}

#[test]
fn verify_is_clean_and_a_second_open_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    live_then_churn(&store, 30);
    store.append(Batch::new().delete(key(2))).unwrap();
    store.compact_segments(&snapshot(b"snap"), 0.5).unwrap();
    let report = store.verify();
    assert!(report.problems.is_empty(), "{report:?}");
    store.close().unwrap();
    let (store, recovery) = Store::open(dir.path(), opts()).unwrap();
    assert!(
        recovery.removed_incomplete_compaction.is_empty() && recovery.truncated.is_empty(),
        "{recovery:?}"
    );
    let first = (files(dir.path()), all_slices(&store));
    drop(store);
    let manifest = std::fs::read(dir.path().join("MANIFEST")).unwrap();
    let (store, _) = Store::open(dir.path(), opts()).unwrap();
    assert_eq!((files(dir.path()), all_slices(&store)), first);
    assert_eq!(
        std::fs::read(dir.path().join("MANIFEST")).unwrap(),
        manifest
    );
}

#[test]
fn the_counters_stay_exact_across_segment_compactions_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::open(dir.path(), opts()).unwrap();
    let keep_all = snapshot(b"snap");
    for round in 0..3 {
        live_then_churn(&store, 20 + round);
        store.append(Batch::new().delete(key(round))).unwrap();
        store
            .append(Batch::new().meta(format!("m{round}").into_bytes()))
            .unwrap();
        let report = store.compact_segments(&keep_all, 0.5).unwrap();
        assert!(report.segments_rewritten > 0, "round {round}: {report:?}");
        let stats = store.stats();
        // Live bytes as one walk over the keys counts them.
        let usage = store.segment_usage(&keep_all).unwrap();
        let live: u64 = usage.iter().map(|u| u.live_bytes).sum();
        assert_eq!(stats.live_bytes, live, "round {round}: {stats:?}");
        // Frames as verify counts them on disk.
        let verify = store.verify();
        assert!(verify.problems.is_empty(), "{verify:?}");
        assert_eq!(stats.frames, verify.frames, "round {round}: {stats:?}");
        drop(store);
        let (reopened, _) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(reopened.stats(), stats, "round {round}: reopen");
        store = reopened;
    }
    // A full compaction keeps exactly what the counters called live, but
    // the meta log (replaced by the same one-record snapshot) and the
    // tombstones (dropped).
    let before = store.stats();
    store.compact(&keep_all).unwrap();
    let after = store.stats();
    assert_eq!(after.dead_bytes, 0, "{after:?}");
    assert_eq!(
        after.slice_frames, 10,
        "keys 0..10 but 2, and 100: {after:?}"
    );
    assert!(after.live_bytes < before.live_bytes, "{before:?} {after:?}");
}

/// A compaction on a tight disk may give the reserve back
/// (`free_with_reserve`): once a compaction finishes, the store takes it
/// again where there is room, so a background compaction in a long-running
/// process does not leave it without one until the next open.
#[test]
fn a_finished_compaction_takes_the_reserve_again() {
    for full in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), opts()).unwrap();
        let reserve = dir.path().join("RESERVE");
        let bytes = StoreOptions::default().reserve_bytes;
        assert_eq!(std::fs::metadata(&reserve).unwrap().len(), bytes);
        live_then_churn(&store, 30);
        // As a compaction that found the disk short left it.
        std::fs::remove_file(&reserve).unwrap();
        match full {
            true => store.compact(&snapshot(b"m")).unwrap(),
            false => store.compact_segments(&snapshot(b"m"), 0.5).unwrap(),
        };
        assert_eq!(
            std::fs::metadata(&reserve).map(|m| m.len()).ok(),
            Some(bytes),
            "full compaction: {full}"
        );
    }
}
