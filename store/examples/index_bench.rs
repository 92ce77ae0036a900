//! The on-disk index at scale: appends N small keyed rows (one frame each,
//! in batches of 1000; about 1% of each batch replaces an older row and 1%
//! deletes one), then measures lookups and pages of a scan, reopens, and
//! measures again. Prints peak RSS (VmHWM). Run the phases in separate
//! processes to see each one's peak (`/usr/bin/time -v` reports the same):
//!
//! `cargo run --release -p booster-store --example index_bench [rows] [dir] [segment_mib] [all|write|read]`
//!
//! Default 20 000 000 rows into `target/index-bench-data` (removed first),
//! 64 MiB segments, no key.

use std::path::PathBuf;
use std::time::Instant;

use booster_store::{Batch, SliceKey, Store, StoreOptions};

const BATCH_ROWS: u64 = 1000;

/// splitmix64: a fixed, replayable sequence of keys to touch.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn key(id: u64) -> SliceKey {
    SliceKey {
        owner: 1,
        stream: 0,
        seq: id,
    }
}

fn row(id: u64, version: u64) -> String {
    format!("job {id} v{version} kind=noop state=completed at=1764400000")
}

/// Peak resident set of this process so far (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Batches in flight at once, as a producer that waits for its acks keeps.
const IN_FLIGHT: u64 = 16;

fn write_rows(store: &Store, rows: u64, rng: &mut Rng) -> (u64, u64) {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut batches = 0;
    let mut acked = 0;
    let (mut replaced, mut deleted) = (0, 0);
    let mut next_id = 0;
    while next_id < rows {
        let mut batch = Batch::new();
        let end = (next_id + BATCH_ROWS).min(rows);
        for id in next_id..end {
            batch = batch.slice(key(id), &[row(id, 0)]);
        }
        if next_id > 0 {
            for _ in 0..BATCH_ROWS / 100 {
                let id = rng.below(next_id);
                batch = batch.slice(key(id), &[row(id, 1)]);
                replaced += 1;
            }
            for _ in 0..BATCH_ROWS / 100 {
                batch = batch.delete(key(rng.below(next_id)));
                deleted += 1;
            }
        }
        next_id = end;
        let tx = tx.clone();
        store.append_with(batch, Box::new(move |r| tx.send(r.is_ok()).expect("send")));
        batches += 1;
        while batches - acked > IN_FLIGHT {
            assert!(rx.recv().expect("ack"), "an append failed");
            acked += 1;
        }
    }
    assert!(
        (acked..batches).all(|_| rx.recv().expect("ack")),
        "an append failed"
    );
    (replaced, deleted)
}

/// Microseconds per lookup of `n` random keys, and how many were found.
fn lookups(store: &Store, rows: u64, n: u64, rng: &mut Rng) -> (f64, u64) {
    let started = Instant::now();
    let mut found = 0;
    for _ in 0..n {
        if store
            .read_slice_records(&key(rng.below(rows)))
            .expect("read")
            .is_some()
        {
            found += 1;
        }
    }
    (started.elapsed().as_secs_f64() * 1e6 / n as f64, found)
}

/// Milliseconds per page of the newest 100 rows below a random cursor.
fn pages(store: &Store, rows: u64, n: u64, rng: &mut Rng) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        let cursor = rng.below(rows) + 100;
        let page = store.scan(1, 0, ..cursor, true, 100);
        assert!(page.len() >= 90, "a page of {} rows", page.len());
    }
    started.elapsed().as_secs_f64() * 1e3 / n as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args.get(1).map_or(20_000_000, |a| a.parse().expect("rows"));
    let dir: PathBuf = args
        .get(2)
        .map_or_else(|| PathBuf::from("target/index-bench-data"), PathBuf::from);
    let segment_mib: u64 = args.get(3).map_or(64, |a| a.parse().expect("segment MiB"));
    let phase = args.get(4).map_or("all", String::as_str);
    let opts = StoreOptions {
        segment_size_bytes: segment_mib << 20,
        ..StoreOptions::default()
    };
    let mut rng = Rng(42);
    if phase != "read" {
        let _ = std::fs::remove_dir_all(&dir);
        let (store, _) = Store::open(&dir, opts.clone()).expect("open");
        let started = Instant::now();
        let (replaced, deleted) = write_rows(&store, rows, &mut rng);
        let write_s = started.elapsed().as_secs_f64();
        let stats = store.stats();
        let (us, found) = lookups(&store, rows, 100_000, &mut rng);
        let page_ms = pages(&store, rows, 1000, &mut rng);
        println!(
            "write: {rows} rows (+{replaced} replaced, {deleted} deleted) in {write_s:.1} s ({:.0} rows/s): {} segments, {:.0} MB live, {:.0} MB dead; lookup {us:.1} us ({found} of 100000 found), page of 100 newest {page_ms:.2} ms; peak RSS {:.0} MB",
            rows as f64 / write_s,
            stats.segments,
            stats.live_bytes as f64 / 1e6,
            stats.dead_bytes as f64 / 1e6,
            peak_rss_mb()
        );
        store.close().expect("close");
    }
    if phase != "write" {
        let (store, report) = Store::open(&dir, opts).expect("reopen");
        let open_rss = peak_rss_mb();
        let (us, found) = lookups(&store, rows, 100_000, &mut rng);
        let page_ms = pages(&store, rows, 1000, &mut rng);
        let stats = store.stats();
        println!(
            "read: open {:.0} ms ({} frames, peak RSS {open_rss:.0} MB), {:.0} MB live, {:.0} MB dead; lookup {us:.1} us ({found} of 100000 found), page of 100 newest {page_ms:.2} ms; peak RSS {:.0} MB",
            report.open_ms,
            report.frames,
            stats.live_bytes as f64 / 1e6,
            stats.dead_bytes as f64 / 1e6,
            peak_rss_mb()
        );
    }
}
