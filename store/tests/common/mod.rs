//! Shared helpers for the store's fault tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use booster_store::fs::sim::SimFileLayer;
use booster_store::{CompactionPlan, FileLayer, SliceKey, Store, StoreError};

pub const DIR: &str = "/sim/data";

pub fn dir() -> &'static Path {
    Path::new(DIR)
}

pub fn key(k: u64) -> SliceKey {
    SliceKey {
        owner: 9,
        stream: 1,
        seq: k,
    }
}

/// The records of version `v` (distinct per version, CSV-like).
pub fn records(v: u64) -> Vec<Vec<u8>> {
    (0..5)
        .map(|i| format!("{v},{i},acct-{},{}.{:02}", v * 31 + i, v * 7, i).into_bytes())
        .collect()
}

/// What the store holds: slices by key and meta records in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub slices: BTreeMap<SliceKey, Vec<Vec<u8>>>,
    pub meta: Vec<Vec<u8>>,
}

/// Reads the whole visible state of a store (keys under owner 9, stream 1).
pub fn read_state<F: FileLayer>(store: &Store<F>) -> Result<State, StoreError> {
    let mut state = State::default();
    for info in store.slices(9, 1) {
        let records = store.read_slice(&info.key)?.expect("indexed slice reads");
        state.slices.insert(info.key, records);
    }
    state.meta = store.meta_records()?;
    Ok(state)
}

pub struct Plan {
    pub live: BTreeSet<SliceKey>,
    pub meta: Vec<Vec<u8>>,
}

impl CompactionPlan for Plan {
    fn slice_is_live(&self, key: &SliceKey) -> bool {
        self.live.contains(key)
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        self.meta.clone()
    }
}

/// A fresh simulated disk.
pub fn sim() -> SimFileLayer {
    SimFileLayer::new()
}

/// A proptest configuration seeded from `BOOSTER_SEED` (else the clock),
/// printing the seed so a failing run can be replayed. The same rule as
/// `booster_tests::rng::proptest_config`, which this crate cannot depend on
/// (booster-tests depends on the store).
pub fn proptest_config(test: &str, cases: u32) -> proptest::test_runner::Config {
    let seed = match std::env::var("BOOSTER_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("BOOSTER_SEED={s:?} is not a u64")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    eprintln!("{test}: seed {seed} (replay with BOOSTER_SEED={seed})");
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..proptest::test_runner::Config::default()
    }
}
