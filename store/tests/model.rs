//! A model test: random appends, reads, compactions, reopens and crashes on
//! the simulated file system, checked against a `BTreeMap`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

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
    Read {
        k: u64,
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
        3 => (0..8u64).prop_map(|k| Op::Read { k }),
        1 => any::<u8>().prop_map(|live_mask| Op::Compact { live_mask }),
        1 => Just(Op::Reopen),
        1 => (0..3u8).prop_map(|mode| Op::Crash { mode }),
    ]
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
                }
                Op::Reopen => {
                    drop(store);
                    store = open(&fs, &master);
                }
                Op::Crash { mode } => {
                    let mode = match mode {
                        0 => CrashMode::DropUnsynced,
                        1 => CrashMode::KeepUnsynced,
                        _ => CrashMode::TornUnsynced { seed: 7 },
                    };
                    let image = fs.crash_image(mode);
                    drop(store);
                    fs = image;
                    store = open(&fs, &master);
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
