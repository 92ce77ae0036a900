use crate::fs::sim::SimFileLayer;
use crate::{Batch, SliceKey, Store, StoreOptions};

fn opts() -> StoreOptions {
    StoreOptions {
        segment_size_bytes: 64 << 10,
        watermark_interval_ms: 0,
        reserve_bytes: 0,
        ..StoreOptions::default()
    }
}

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 3,
        stream: 0,
        seq,
    }
}

/// A store of 4,000 keys in 40 batches, over several sealed segments.
fn store_of_4000_keys(fs: &SimFileLayer) -> Store<SimFileLayer> {
    let (store, _) = Store::open_with(fs.clone(), "/sim/d", opts()).unwrap();
    for b in 0..40u64 {
        let batch = (0..100u64).fold(Batch::new(), |batch, i| {
            let seq = b * 100 + i;
            batch.slice(key(seq), &[format!("row {seq}")])
        });
        store.append(batch).unwrap();
    }
    store
}

#[test]
fn keys_of_sealed_segments_are_not_held_in_ram() {
    let fs = SimFileLayer::new();
    let store = store_of_4000_keys(&fs);
    assert!(store.segment_ids().len() > 3);
    let in_ram = store.keys_in_ram();
    assert!(in_ram < 4000 / 2, "{in_ram} of 4000 keys in RAM");
    store.close().unwrap();
    let (store, _) = Store::open_with(fs, "/sim/d", opts()).unwrap();
    assert_eq!(store.keys_in_ram(), 0, "every segment is sealed");
    assert_eq!(store.slices(3, 0).len(), 4000);
    for seq in [0, 127, 128, 1999, 3999] {
        let records = store.read_slice(&key(seq)).unwrap().unwrap();
        assert_eq!(records, vec![format!("row {seq}").into_bytes()]);
    }
}

/// Rewriting keys that sealed segments hold (a checkpoint's row pages, in
/// key order) reads each run block they fall in about once, at the append
/// and at the recovery of an unsealed tail, not once a key: each added
/// frame looks its key up in the runs before it to count what it replaces.
#[test]
fn frames_that_replace_sealed_keys_in_key_order_read_each_run_block_once() {
    let fs = SimFileLayer::new();
    let store = store_of_4000_keys(&fs);
    store.close().unwrap();
    let big = StoreOptions {
        segment_size_bytes: 64 << 20,
        ..opts()
    };
    let (store, _) = Store::open_with(fs.clone(), "/sim/d", big.clone()).unwrap();
    let before = store.run_block_reads();
    let rewrite = (0..4000u64).fold(Batch::new(), |batch, seq| {
        batch.slice(key(seq), &[format!("row {seq}, again")])
    });
    store.append(rewrite).unwrap();
    // 4,000 keys in runs of 128-entry blocks: about 32 blocks, a few more
    // where a run's blocks straddle a segment's keys.
    let reads = store.run_block_reads() - before;
    assert!(
        reads <= 100,
        "{reads} block reads for 4000 keys in key order"
    );
    // A crash before the new segment is sealed: recovery indexes its
    // frames one by one, as the append did.
    let image = fs.crash_image(crate::fs::sim::CrashMode::KeepUnsynced);
    drop(store);
    let (store, _) = Store::open_with(image, "/sim/d", big).unwrap();
    let reads = store.run_block_reads();
    assert!(reads <= 100, "{reads} block reads recovering 4000 keys");
    for seq in [0, 1999, 3999] {
        let records = store.read_slice(&key(seq)).unwrap().unwrap();
        assert_eq!(records, vec![format!("row {seq}, again").into_bytes()]);
    }
}
