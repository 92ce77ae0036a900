//! Reopen time of a store holding 10M records in slices of 1000.
//!
//! `cargo run --release -p booster-store --example reopen_bench [slices] [dir]`
//!
//! Writes the slices (short records, so the run is quick: reopen time depends
//! on the number of frames, not their size), then reopens after a clean close
//! and after a drop without close (the last segment is then scanned, as after
//! a kill -9).

use std::path::PathBuf;

use booster_store::{Batch, MasterKey, SliceKey, Store, StoreOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let slices: u64 = args.get(1).map_or(10_000, |a| a.parse().expect("slices"));
    let dir: PathBuf = args
        .get(2)
        .map_or_else(|| PathBuf::from("target/reopen-bench-data"), PathBuf::from);
    let _ = std::fs::remove_dir_all(&dir);
    let opts = StoreOptions {
        master_key: Some(MasterKey::generate()),
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(&dir, opts.clone()).expect("open");
    let (tx, rx) = std::sync::mpsc::channel();
    for s in 0..slices {
        let records: Vec<String> = (0..1000).map(|i| format!("{s},{i}")).collect();
        let key = SliceKey {
            owner: s / 100,
            stream: 0,
            seq: s % 100,
        };
        let tx = tx.clone();
        store.append_with(
            Batch::new()
                .slice(key, &records)
                .meta(format!("slice {s} uploaded").into_bytes()),
            Box::new(move |r| tx.send(r.is_ok()).expect("send")),
        );
    }
    assert!((0..slices).all(|_| rx.recv().expect("ack")));
    let stats = store.stats();
    store.close().expect("close");
    let (store, report) = Store::open(&dir, opts.clone()).expect("reopen");
    println!(
        "{} records in {slices} slices, {} segments, {:.1} MB stored: reopen after close {:.1} ms ({} frames indexed)",
        slices * 1000,
        stats.segments,
        stats.stored_bytes as f64 / 1e6,
        report.open_ms,
        report.frames
    );
    // One more batch into a fresh segment, then stop without close: the
    // next open scans that segment (as after kill -9).
    store
        .append(Batch::new().meta(b"unsealed".to_vec()))
        .expect("append");
    drop(store);
    let (_store, report) = Store::open(&dir, opts).expect("reopen");
    println!(
        "reopen after drop without close: {:.1} ms ({} frames)",
        report.open_ms, report.frames
    );
    let _ = std::fs::remove_dir_all(&dir);
}
