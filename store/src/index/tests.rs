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

#[test]
fn keys_of_sealed_segments_are_not_held_in_ram() {
    let fs = SimFileLayer::new();
    let (store, _) = Store::open_with(fs.clone(), "/sim/d", opts()).unwrap();
    for b in 0..40u64 {
        let batch = (0..100u64).fold(Batch::new(), |batch, i| {
            let seq = b * 100 + i;
            batch.slice(key(seq), &[format!("row {seq}")])
        });
        store.append(batch).unwrap();
    }
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
