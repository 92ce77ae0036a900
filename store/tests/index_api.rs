//! Deletions (tombstones), range scans and meta checkpoints: what the
//! runtime's job table is built on.

mod common;

use std::collections::BTreeSet;
use std::ops::Bound;

use booster_store::fs::sim::SimFileLayer;
use booster_store::{Batch, MasterKey, SliceKey, Store, StoreError, StoreOptions};
use common::{dir, key, records, sim, Plan};

fn opts() -> StoreOptions {
    StoreOptions {
        segment_size_bytes: 2048,
        master_key: Some(MasterKey([7; 32])),
        watermark_interval_ms: 0,
        reserve_bytes: 0,
        ..StoreOptions::default()
    }
}

fn open(fs: &SimFileLayer) -> Store<SimFileLayer> {
    Store::open_with(fs.clone(), dir(), opts()).unwrap().0
}

fn reopen(fs: &SimFileLayer, store: Store<SimFileLayer>) -> Store<SimFileLayer> {
    store.close().unwrap();
    open(fs)
}

fn seqs(store: &Store<SimFileLayer>) -> Vec<u64> {
    store.slices(9, 1).iter().map(|i| i.key.seq).collect()
}

fn put(store: &Store<SimFileLayer>, k: u64, v: u64) {
    store
        .append(Batch::new().slice(key(k), &records(v)))
        .unwrap();
}

fn all_live(store: &Store<SimFileLayer>) -> Plan {
    Plan {
        live: store.slices(9, 1).iter().map(|i| i.key).collect(),
        meta: store.meta_records().unwrap(),
    }
}

#[test]
fn a_deleted_key_reads_none_and_listings_skip_it() {
    let fs = sim();
    let store = open(&fs);
    for k in 0..4 {
        put(&store, k, k);
    }
    store.append(Batch::new().delete(key(2))).unwrap();
    assert_eq!(store.read_slice(&key(2)).unwrap(), None);
    assert!(store.read_slice_records(&key(2)).unwrap().is_none());
    assert_eq!(seqs(&store), vec![0, 1, 3]);
    let scanned: Vec<u64> = store
        .scan(9, 1, .., true, 10)
        .iter()
        .map(|i| i.key.seq)
        .collect();
    assert_eq!(scanned, vec![3, 1, 0]);
    assert_eq!(store.read_slice(&key(1)).unwrap(), Some(records(1)));
}

#[test]
fn a_delete_survives_reopen_and_compaction() {
    let fs = sim();
    let mut store = open(&fs);
    for k in 0..6 {
        put(&store, k, k);
    }
    store
        .append(Batch::new().delete(key(1)).delete(key(4)))
        .unwrap();
    store = reopen(&fs, store);
    assert_eq!(seqs(&store), vec![0, 2, 3, 5]);
    assert_eq!(store.read_slice(&key(4)).unwrap(), None);
    let plan = all_live(&store);
    store.compact(&plan).unwrap();
    assert_eq!(seqs(&store), vec![0, 2, 3, 5]);
    assert_eq!(store.read_slice(&key(1)).unwrap(), None);
    store = reopen(&fs, store);
    assert_eq!(seqs(&store), vec![0, 2, 3, 5]);
    assert_eq!(store.read_slice(&key(4)).unwrap(), None);
    assert_eq!(
        store.stats().dead_bytes,
        0,
        "compaction dropped the tombstones"
    );
    assert!(store.verify().problems.is_empty());
}

#[test]
fn a_delete_makes_the_older_frame_dead_bytes() {
    let fs = sim();
    let mut store = open(&fs);
    put(&store, 0, 0);
    put(&store, 1, 1);
    let before = store.stats();
    assert_eq!(before.dead_bytes, 0);
    let old_len = u64::from(store.slices(9, 1)[0].stored_len) + 56;
    store.append(Batch::new().delete(key(0))).unwrap();
    let after = store.stats();
    assert_eq!(after.dead_bytes, old_len);
    let tombstone_len = after.live_bytes + after.dead_bytes - before.live_bytes;
    assert_eq!(
        after.live_bytes,
        before.live_bytes - old_len + tombstone_len
    );
    store = reopen(&fs, store);
    let reopened = store.stats();
    assert_eq!(
        (reopened.live_bytes, reopened.dead_bytes),
        (after.live_bytes, after.dead_bytes)
    );
}

#[test]
fn a_later_slice_revives_a_deleted_key() {
    let fs = sim();
    let mut store = open(&fs);
    put(&store, 3, 1);
    store.append(Batch::new().delete(key(3))).unwrap();
    put(&store, 3, 2);
    assert_eq!(store.read_slice(&key(3)).unwrap(), Some(records(2)));
    store = reopen(&fs, store);
    assert_eq!(store.read_slice(&key(3)).unwrap(), Some(records(2)));
    assert_eq!(seqs(&store), vec![3]);
}

#[test]
fn a_batch_applies_its_slices_and_deletes_in_order() {
    let fs = sim();
    let mut store = open(&fs);
    store
        .append(
            Batch::new()
                .slice(key(0), &records(0))
                .delete(key(0))
                .delete(key(1))
                .slice(key(1), &records(1)),
        )
        .unwrap();
    for _ in 0..2 {
        assert_eq!(store.read_slice(&key(0)).unwrap(), None);
        assert_eq!(store.read_slice(&key(1)).unwrap(), Some(records(1)));
        store = reopen(&fs, store);
    }
}

#[test]
fn deleting_a_key_that_holds_nothing_changes_nothing_visible() {
    let fs = sim();
    let store = open(&fs);
    put(&store, 0, 0);
    store.append(Batch::new().delete(key(7))).unwrap();
    assert_eq!(seqs(&store), vec![0]);
    assert_eq!(store.read_slice(&key(7)).unwrap(), None);
}

fn scan_seqs(
    store: &Store<SimFileLayer>,
    range: (Bound<u64>, Bound<u64>),
    rev: bool,
    limit: usize,
) -> Vec<u64> {
    store
        .scan(9, 1, range, rev, limit)
        .iter()
        .map(|i| i.key.seq)
        .collect()
}

#[test]
fn scan_pages_a_range_in_either_order_up_to_the_limit() {
    let fs = sim();
    let store = open(&fs);
    let mut batch = Batch::new();
    for k in [0, 5, 10, 15, 20, u64::MAX] {
        batch = batch.slice(key(k), &records(k % 100));
    }
    store.append(batch).unwrap();
    use Bound::{Excluded, Included, Unbounded};
    assert_eq!(
        scan_seqs(&store, (Unbounded, Unbounded), false, 3),
        vec![0, 5, 10]
    );
    assert_eq!(
        scan_seqs(&store, (Unbounded, Unbounded), true, 3),
        vec![u64::MAX, 20, 15]
    );
    // The next page after cursor 15, newest first.
    assert_eq!(
        scan_seqs(&store, (Unbounded, Excluded(15)), true, 2),
        vec![10, 5]
    );
    assert_eq!(
        scan_seqs(&store, (Excluded(5), Included(15)), false, 9),
        vec![10, 15]
    );
    assert_eq!(
        scan_seqs(&store, (Included(5), Excluded(15)), true, 9),
        vec![10, 5]
    );
    assert_eq!(
        scan_seqs(&store, (Excluded(u64::MAX), Unbounded), false, 9),
        Vec::<u64>::new()
    );
    assert_eq!(
        scan_seqs(&store, (Unbounded, Excluded(0)), true, 9),
        Vec::<u64>::new()
    );
    assert_eq!(
        scan_seqs(&store, (Included(12), Included(11)), false, 9),
        Vec::<u64>::new()
    );
    assert_eq!(
        scan_seqs(&store, (Unbounded, Unbounded), false, 0),
        Vec::<u64>::new()
    );
    // The RangeBounds forms.
    let seqs: Vec<u64> = store
        .scan(9, 1, 5..=15, false, 9)
        .iter()
        .map(|i| i.key.seq)
        .collect();
    assert_eq!(seqs, vec![5, 10, 15]);
    let seqs: Vec<u64> = store
        .scan(9, 1, ..10, true, 9)
        .iter()
        .map(|i| i.key.seq)
        .collect();
    assert_eq!(seqs, vec![5, 0]);
}

#[test]
fn scan_sees_only_its_owner_and_stream() {
    let fs = sim();
    let store = open(&fs);
    let other = |owner, stream, seq| SliceKey { owner, stream, seq };
    store
        .append(
            Batch::new()
                .slice(other(8, 1, 1), &records(1))
                .slice(other(9, 0, 2), &records(2))
                .slice(key(3), &records(3))
                .slice(other(9, 2, 4), &records(4))
                .slice(other(10, 1, 5), &records(5)),
        )
        .unwrap();
    assert_eq!(
        scan_seqs(&store, (Bound::Unbounded, Bound::Unbounded), false, 9),
        vec![3]
    );
    assert_eq!(
        scan_seqs(&store, (Bound::Unbounded, Bound::Unbounded), true, 9),
        vec![3]
    );
    let info = store.scan(9, 1, .., false, 1)[0];
    assert_eq!(info.record_count, records(3).len() as u32);
}

#[test]
fn a_checkpoint_starts_the_meta_log() {
    let fs = sim();
    let mut store = open(&fs);
    store.append(Batch::new().meta(b"a".to_vec())).unwrap();
    store
        .append(Batch::new().meta(b"b".to_vec()).checkpoint(b"cp1".to_vec()))
        .unwrap();
    store.append(Batch::new().meta(b"c".to_vec())).unwrap();
    let expected = vec![b"cp1".to_vec(), b"b".to_vec(), b"c".to_vec()];
    assert_eq!(store.meta_records().unwrap(), expected);
    store = reopen(&fs, store);
    assert_eq!(store.meta_records().unwrap(), expected);
    assert_eq!(store.meta_records_skipping_damage().unwrap().0, expected);
    store
        .append(
            Batch::new()
                .checkpoint(b"cp2".to_vec())
                .slice(key(0), &records(0)),
        )
        .unwrap();
    store.append(Batch::new().meta(b"d".to_vec())).unwrap();
    let expected = vec![b"cp2".to_vec(), b"d".to_vec()];
    assert_eq!(store.meta_records().unwrap(), expected);
    store = reopen(&fs, store);
    assert_eq!(store.meta_records().unwrap(), expected);
    assert_eq!(store.read_slice(&key(0)).unwrap(), Some(records(0)));
}

#[test]
fn meta_frames_before_a_checkpoint_are_dead_bytes() {
    let fs = sim();
    let mut store = open(&fs);
    store.append(Batch::new().meta(vec![1; 300])).unwrap();
    store.append(Batch::new().meta(vec![2; 300])).unwrap();
    let before = store.stats();
    assert_eq!(before.dead_bytes, 0);
    store
        .append(Batch::new().checkpoint(b"cp".to_vec()))
        .unwrap();
    let after = store.stats();
    let checkpoint_len = after.live_bytes + after.dead_bytes - before.live_bytes;
    assert_eq!(after.dead_bytes, before.live_bytes);
    assert_eq!(after.live_bytes, checkpoint_len);
    store = reopen(&fs, store);
    let reopened = store.stats();
    assert_eq!(
        (reopened.live_bytes, reopened.dead_bytes),
        (after.live_bytes, after.dead_bytes)
    );
}

#[test]
fn two_checkpoints_in_one_batch_are_refused_and_nothing_is_written() {
    let fs = sim();
    let store = open(&fs);
    let err = store
        .append(
            Batch::new()
                .checkpoint(b"x".to_vec())
                .slice(key(0), &records(0))
                .checkpoint(b"y".to_vec()),
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(m) if m.contains("at most one checkpoint")),
        "{err}"
    );
    assert_eq!(store.read_slice(&key(0)).unwrap(), None);
    assert!(store.meta_records().unwrap().is_empty());
    // The store still takes writes: bad input fails only itself.
    put(&store, 0, 0);
}

#[test]
fn compaction_keeps_deletes_and_the_plans_meta_snapshot() {
    let fs = sim();
    let store = open(&fs);
    for k in 0..3 {
        put(&store, k, k);
    }
    store
        .append(Batch::new().checkpoint(b"cp".to_vec()).delete(key(0)))
        .unwrap();
    let plan = Plan {
        live: BTreeSet::from([key(0), key(1)]),
        meta: vec![b"snapshot".to_vec()],
    };
    let report = store.compact(&plan).unwrap();
    assert_eq!((report.slices_kept, report.slices_dropped), (1, 1));
    assert_eq!(seqs(&store), vec![1]);
    assert_eq!(store.meta_records().unwrap(), vec![b"snapshot".to_vec()]);
}

/// Many keys per segment, so sorted runs span several index blocks: reads
/// and scans merge the runs, newest frame first, across block edges.
#[test]
fn reads_and_scans_agree_with_a_map_across_index_blocks_and_segments() {
    let fs = sim();
    let big = StoreOptions {
        segment_size_bytes: 256 << 10,
        ..opts()
    };
    let mut store = Store::open_with(fs.clone(), dir(), big.clone()).unwrap().0;
    let mut model = std::collections::BTreeMap::new();
    let row = |k: u64, v: u64| vec![format!("{k}:{v}").into_bytes()];
    for round in 0..3u64 {
        for chunk in 0..10u64 {
            let mut batch = Batch::new();
            for i in 0..100u64 {
                let k = (chunk * 100 + i) * 3;
                if round > 0 && k % (5 + round) == 0 {
                    batch = batch.delete(key(k));
                    model.remove(&k);
                } else if round == 0 || k % (4 + round) == 0 {
                    batch = batch.slice(key(k), &row(k, round));
                    model.insert(k, row(k, round));
                }
            }
            store.append(batch).unwrap();
        }
        store.close().unwrap();
        store = Store::open_with(fs.clone(), dir(), big.clone()).unwrap().0;
    }
    assert!(store.segment_ids().len() >= 3, "{:?}", store.segment_ids());
    for k in 0..3000 {
        assert_eq!(
            store.read_slice(&key(k)).unwrap(),
            model.get(&k).cloned(),
            "key {k}"
        );
    }
    for lo in [0, 1, 383, 384, 385, 1500, 2997, 2999] {
        for rev in [false, true] {
            let range = if rev {
                (Bound::Unbounded, Bound::Included(lo))
            } else {
                (Bound::Included(lo), Bound::Unbounded)
            };
            let expect: Vec<u64> = if rev {
                model
                    .range(..=lo)
                    .rev()
                    .map(|(k, _)| *k)
                    .take(200)
                    .collect()
            } else {
                model.range(lo..).map(|(k, _)| *k).take(200).collect()
            };
            assert_eq!(
                scan_seqs(&store, range, rev, 200),
                expect,
                "from {lo}, rev {rev}"
            );
        }
    }
    assert_eq!(seqs(&store), model.keys().copied().collect::<Vec<_>>());
}

/// Bit rot in a sorted run (open reads only the footer's summary, so it
/// opens) is found when the block is read, never served, and by `verify`.
#[test]
fn rot_in_a_sorted_run_is_found_when_its_block_is_read_and_by_verify() {
    use booster_store::format::read_sealed_footer;
    let tmp = tempfile::tempdir().unwrap();
    let plain = StoreOptions {
        master_key: None,
        ..opts()
    };
    let (store, _) = Store::open(tmp.path(), plain.clone()).unwrap();
    store
        .append(
            Batch::new()
                .slice(key(1), &records(1))
                .slice(key(2), &records(2)),
        )
        .unwrap();
    store.close().unwrap();
    let path = tmp.path().join("seg-0000000000000001.bseg");
    let mut bytes = std::fs::read(&path).unwrap();
    let sorted = read_sealed_footer(&bytes).unwrap().sorted.unwrap();
    // The first sorted entry's record count (header bytes 36..40).
    bytes[sorted.offset as usize + 8 + 36] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let report = Store::verify_dir(tmp.path(), None).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.segment_id == 1 && p.what.contains("checksum")),
        "{report:?}"
    );
    let (store, report) = Store::open(tmp.path(), plain).unwrap();
    assert!(
        report.truncated.is_empty() && report.damaged.is_empty(),
        "{report:?}"
    );
    for k in [1, 2] {
        let err = store.read_slice(&key(k)).unwrap_err();
        assert!(err.to_string().contains("index block checksum"), "{err}");
    }
    assert!(store.try_scan(9, 1, .., false, 10).is_err());
}

/// A slice with no records (a job-table page whose rows all left, an
/// output slice of a filter that kept nothing) is a value, not a delete:
/// it reads back empty, is listed and scanned, across reopen and
/// compaction alike.
#[test]
fn a_zero_record_slice_is_not_a_tombstone() {
    let fs = sim();
    let store = open(&fs);
    put(&store, 1, 3);
    store
        .append(Batch::new().slice(key(1), &[] as &[Vec<u8>]))
        .unwrap();
    let check = |store: &Store<SimFileLayer>| {
        assert_eq!(store.read_slice(&key(1)).unwrap(), Some(Vec::new()));
        assert_eq!(seqs(store), vec![1]);
        assert_eq!(store.scan(9, 1, .., false, 10).len(), 1);
    };
    check(&store);
    let store = reopen(&fs, store);
    check(&store);
    store.compact(&all_live(&store)).unwrap();
    check(&store);
    check(&reopen(&fs, store));
}

/// A scan over deleted keys stops after looking at its bound of keys,
/// deleted ones included, and says where to go on: a listing of a state
/// whose index keys were all deleted costs a bounded walk per call, not
/// one walk of every deleted key (until a compaction drops them).
#[test]
fn a_bounded_scan_counts_deleted_keys_and_says_where_to_go_on() {
    let fs = sim();
    let store = open(&fs);
    let mut batch = Batch::new();
    for k in 0..50 {
        batch = batch.slice(key(k), &records(k));
    }
    store.append(batch).unwrap();
    let mut batch = Batch::new();
    for k in 1..50 {
        batch = batch.delete(key(k));
    }
    store.append(batch).unwrap();
    let all: (Bound<u64>, Bound<u64>) = (Bound::Unbounded, Bound::Unbounded);
    let page = store.try_scan_within(9, 1, all, true, 10, 20).unwrap();
    assert!(page.slices.is_empty(), "{:?}", page.slices);
    assert_eq!((page.keys_examined, page.resume), (20, Some(29)));
    let below = (Bound::Unbounded, Bound::Included(29));
    let page = store.try_scan_within(9, 1, below, true, 10, 20).unwrap();
    assert_eq!((page.keys_examined, page.resume), (20, Some(9)));
    let below = (Bound::Unbounded, Bound::Included(9));
    let page = store.try_scan_within(9, 1, below, true, 10, 20).unwrap();
    let seqs: Vec<u64> = page.slices.iter().map(|i| i.key.seq).collect();
    assert_eq!((seqs, page.keys_examined, page.resume), (vec![0], 10, None));
}
