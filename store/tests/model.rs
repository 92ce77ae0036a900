//! A model test: random appends, deletes, checkpoints, reads, scans,
//! compactions, reopens and crashes on the simulated file system, checked
//! against a `BTreeMap`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, RangeBounds};

use booster_store::fs::sim::{CrashMode, SimFileLayer};
use booster_store::{Batch, MasterKey, SliceKey, Store, StoreOptions};
use common::{dir, key, read_state, Plan, State};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append {
        k: u64,
        version: u16,
        records: usize,
        meta: bool,
    },
    Delete {
        k: u64,
        meta: bool,
    },
    Checkpoint {
        version: u16,
        meta: bool,
    },
    Read {
        k: u64,
    },
    Scan {
        lo: Bound<u64>,
        hi: Bound<u64>,
        rev: bool,
        limit: usize,
    },
    Compact {
        live_mask: u8,
    },
    Reopen,
    Crash {
        mode: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..8u64, any::<u16>(), 0..30usize, any::<bool>())
            .prop_map(|(k, version, records, meta)| Op::Append { k, version, records, meta }),
        2 => (0..8u64, any::<bool>()).prop_map(|(k, meta)| Op::Delete { k, meta }),
        1 => (any::<u16>(), any::<bool>()).prop_map(|(version, meta)| Op::Checkpoint { version, meta }),
        3 => (0..8u64).prop_map(|k| Op::Read { k }),
        2 => (bound(), bound(), any::<bool>(), 0..6usize)
            .prop_map(|(lo, hi, rev, limit)| Op::Scan { lo, hi, rev, limit }),
        1 => any::<u8>().prop_map(|live_mask| Op::Compact { live_mask }),
        1 => Just(Op::Reopen),
        1 => (0..3u8).prop_map(|mode| Op::Crash { mode }),
    ]
}

fn bound() -> impl Strategy<Value = Bound<u64>> {
    prop_oneof![
        Just(Bound::Unbounded),
        (0..9u64).prop_map(Bound::Included),
        (0..9u64).prop_map(Bound::Excluded),
    ]
}

/// What `Store::scan` must return: the model's keys in the range.
fn model_scan(model: &State, range: (Bound<u64>, Bound<u64>), rev: bool, limit: usize) -> Vec<u64> {
    let seqs = model
        .slices
        .keys()
        .map(|k| k.seq)
        .filter(|s| range.contains(s));
    if rev {
        seqs.rev().take(limit).collect()
    } else {
        seqs.take(limit).collect()
    }
}

/// Live and dead bytes: the same after a reopen or a crash (every
/// acknowledged frame is back, and counted the same way).
fn bytes_of(store: &Store<SimFileLayer>) -> (u64, u64) {
    let stats = store.stats();
    (stats.live_bytes, stats.dead_bytes)
}

fn records_of(version: u16, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{version},{i},{}", "x".repeat(i % 7)).into_bytes())
        .collect()
}

fn opts(master: &MasterKey) -> StoreOptions {
    StoreOptions {
        segment_size_bytes: 1500,
        zstd_level: 3,
        master_key: Some(master.clone()),
        watermark_interval_ms: 0,
        reserve_bytes: 0,
    }
}

fn open(fs: &SimFileLayer, master: &MasterKey) -> Store<SimFileLayer> {
    Store::open_with(fs.clone(), dir(), opts(master))
        .expect("reopen")
        .0
}

proptest! {
    #![proptest_config(common::proptest_config("store_model", 48))]

    #[test]
    fn the_store_behaves_like_a_map(ops in prop::collection::vec(op(), 1..40)) {
        let master = MasterKey::generate();
        let mut fs = SimFileLayer::new();
        let mut store = open(&fs, &master);
        let mut model = State::default();
        for op in ops {
            match op {
                Op::Append { k, version, records, meta } => {
                    let recs = records_of(version, records);
                    let mut batch = Batch::new().slice(key(k), &recs);
                    if meta {
                        batch = batch.meta(version.to_le_bytes().to_vec());
                        model.meta.push(version.to_le_bytes().to_vec());
                    }
                    store.append(batch).unwrap();
                    model.slices.insert(key(k), recs);
                }
                Op::Delete { k, meta } => {
                    let mut batch = Batch::new().delete(key(k));
                    if meta {
                        batch = batch.meta(vec![k as u8]);
                        model.meta.push(vec![k as u8]);
                    }
                    store.append(batch).unwrap();
                    model.slices.remove(&key(k));
                }
                Op::Checkpoint { version, meta } => {
                    let checkpoint = format!("checkpoint {version}").into_bytes();
                    let mut batch = Batch::new();
                    model.meta = vec![checkpoint.clone()];
                    if meta {
                        // Added before the checkpoint, ordered after it.
                        batch = batch.meta(version.to_be_bytes().to_vec());
                        model.meta.push(version.to_be_bytes().to_vec());
                    }
                    store.append(batch.checkpoint(checkpoint)).unwrap();
                }
                Op::Scan { lo, hi, rev, limit } => {
                    let got: Vec<u64> = store.scan(9, 1, (lo, hi), rev, limit).iter().map(|i| i.key.seq).collect();
                    prop_assert_eq!(got, model_scan(&model, (lo, hi), rev, limit));
                }
                Op::Read { k } => {
                    prop_assert_eq!(store.read_slice(&key(k)).unwrap(), model.slices.get(&key(k)).cloned());
                }
                Op::Compact { live_mask } => {
                    let live: BTreeSet<SliceKey> =
                        (0..8).filter(|k| live_mask & (1 << k) != 0).map(key).collect();
                    let snapshot = vec![vec![live_mask]];
                    store.compact(&Plan { live: live.clone(), meta: snapshot.clone() }).unwrap();
                    model.slices.retain(|k, _| live.contains(k));
                    model.meta = snapshot;
                    prop_assert_eq!(store.stats().dead_bytes, 0);
                }
                Op::Reopen => {
                    let before = bytes_of(&store);
                    drop(store);
                    store = open(&fs, &master);
                    prop_assert_eq!(bytes_of(&store), before);
                }
                Op::Crash { mode } => {
                    let mode = match mode {
                        0 => CrashMode::DropUnsynced,
                        1 => CrashMode::KeepUnsynced,
                        _ => CrashMode::TornUnsynced { seed: 7 },
                    };
                    let before = bytes_of(&store);
                    let image = fs.crash_image(mode);
                    drop(store);
                    fs = image;
                    store = open(&fs, &master);
                    prop_assert_eq!(bytes_of(&store), before);
                }
            }
            prop_assert_eq!(&read_state(&store).unwrap(), &model);
        }
        let infos: BTreeMap<_, _> = store.slices(9, 1).into_iter().map(|i| (i.key, i.record_count)).collect();
        let expected: BTreeMap<_, _> = model.slices.iter().map(|(k, r)| (*k, r.len() as u32)).collect();
        prop_assert_eq!(infos, expected);
        prop_assert!(store.verify().problems.is_empty());
    }
}
