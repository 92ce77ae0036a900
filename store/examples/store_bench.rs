//! Store throughput next to the raw codec, in one run.
//!
//! `cargo run --release -p booster-store --example store_bench [records] [threads] [dir]`
//!
//! Appends ~100-byte CSV-like records in slices of 1000 with zstd level 1 and
//! AES-256-GCM (group commit, every acknowledgement fsynced), reopens, reads
//! every slice back (mmap, decrypt, decompress), and measures the raw zstd +
//! AES-GCM work on the same slices with the same thread count. Prints MB/s of
//! record bytes and the store / raw ratios.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use booster_store::{Batch, MasterKey, SliceKey, Store, StoreOptions};

const RECORDS_PER_SLICE: usize = 1000;

fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// ~100-byte CSV lines: id, names, email, city, amount, date, status.
fn make_slices(records: usize) -> Vec<Vec<Vec<u8>>> {
    const FIRST: [&str; 8] = [
        "Ada", "Brian", "Chen", "Dora", "Emil", "Fatima", "Goran", "Hana",
    ];
    const LAST: [&str; 8] = [
        "Lovelace",
        "Kernighan",
        "Wei",
        "Explorer",
        "Zola",
        "Haddad",
        "Ivanov",
        "Sato",
    ];
    const CITY: [&str; 6] = ["Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Lima"];
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut slices = Vec::new();
    let mut id = 0u64;
    while (slices.len() * RECORDS_PER_SLICE) < records {
        let slice = (0..RECORDS_PER_SLICE)
            .map(|_| {
                id += 1;
                let r = next(&mut rng);
                let (f, l, c) = (FIRST[(r % 8) as usize], LAST[(r >> 8) as usize % 8], CITY[(r >> 16) as usize % 6]);
                format!(
                    "{id},{f},{l},{}.{}{}@example.com,{c},+49-30-{:07},{}.{:02},2026-{:02}-{:02},{}",
                    f.to_lowercase(),
                    l.to_lowercase(),
                    r % 997,
                    (r >> 24) % 10_000_000,
                    (r >> 20) % 100_000,
                    (r >> 40) % 100,
                    (r >> 48) % 12 + 1,
                    (r >> 52) % 28 + 1,
                    if r & 1 == 0 { "active" } else { "closed" }
                )
                .into_bytes()
            })
            .collect();
        slices.push(slice);
    }
    slices
}

fn raw_bytes(slices: &[Vec<Vec<u8>>]) -> u64 {
    slices.iter().flatten().map(|r| r.len() as u64).sum()
}

fn encode(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r);
    }
    out
}

/// Runs `work(i)` for i in 0..n over `threads` threads; returns seconds.
fn parallel(n: usize, threads: usize, work: &(dyn Fn(usize) + Sync)) -> f64 {
    let next_item = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next_item.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    break;
                }
                work(i);
            });
        }
    });
    start.elapsed().as_secs_f64()
}

thread_local! {
    static CCTX: std::cell::RefCell<zstd::bulk::Compressor<'static>> =
        std::cell::RefCell::new(zstd::bulk::Compressor::new(1).unwrap());
    static DCTX: std::cell::RefCell<zstd::bulk::Decompressor<'static>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new().unwrap());
}

struct Raw {
    encode_s: f64,
    decode_s: f64,
}

/// The raw codec on the same slices: records -> zstd -> AES-GCM, and back.
fn raw_codec(slices: &[Vec<Vec<u8>>], threads: usize) -> Raw {
    let aead = Aes256Gcm::new(GenericArray::from_slice(&[7u8; 32]));
    let sealed: Vec<Mutex<(Vec<u8>, [u8; 16])>> = (0..slices.len())
        .map(|_| Mutex::new((Vec::new(), [0; 16])))
        .collect();
    let encode_s = parallel(slices.len(), threads, &|i| {
        let raw = encode(&slices[i]);
        let mut body = CCTX.with(|c| c.borrow_mut().compress(&raw).unwrap());
        let nonce = (i as u64).to_le_bytes();
        let mut n12 = [0u8; 12];
        n12[..8].copy_from_slice(&nonce);
        let tag = aead
            .encrypt_in_place_detached(GenericArray::from_slice(&n12), b"aad", &mut body)
            .unwrap();
        let crc = crc32fast::hash(&body);
        std::hint::black_box(crc);
        *sealed[i].lock().unwrap() = (body, tag.into());
    });
    let decode_s = parallel(slices.len(), threads, &|i| {
        let (body, tag) = sealed[i].lock().unwrap().clone();
        let mut plain = body;
        std::hint::black_box(crc32fast::hash(&plain));
        let mut n12 = [0u8; 12];
        n12[..8].copy_from_slice(&(i as u64).to_le_bytes());
        aead.decrypt_in_place_detached(
            GenericArray::from_slice(&n12),
            b"aad",
            &mut plain,
            GenericArray::from_slice(&tag),
        )
        .unwrap();
        let raw = DCTX.with(|d| d.borrow_mut().decompress(&plain, 1 << 20).unwrap());
        std::hint::black_box(raw);
    });
    Raw { encode_s, decode_s }
}

/// Single-thread cost of each codec stage, for reading the ratios.
fn breakdown(slices: &[Vec<Vec<u8>>]) -> (f64, f64) {
    let raws: Vec<Vec<u8>> = slices.iter().map(|s| encode(s)).collect();
    let start = Instant::now();
    let compressed: Vec<Vec<u8>> = raws
        .iter()
        .map(|r| CCTX.with(|c| c.borrow_mut().compress(r).unwrap()))
        .collect();
    let zstd_s = start.elapsed().as_secs_f64();
    let aead = Aes256Gcm::new(GenericArray::from_slice(&[7u8; 32]));
    let start = Instant::now();
    for (i, mut body) in compressed.into_iter().enumerate() {
        let mut n12 = [0u8; 12];
        n12[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let tag = aead
            .encrypt_in_place_detached(GenericArray::from_slice(&n12), b"aad", &mut body)
            .unwrap();
        std::hint::black_box((body, tag));
    }
    (zstd_s, start.elapsed().as_secs_f64())
}

fn key(i: usize) -> SliceKey {
    SliceKey {
        owner: 1,
        stream: 0,
        seq: i as u64,
    }
}

/// Appends every slice through group commit, `window` batches in flight per
/// producer (64 in this bench: ~6 MB of raw records, enough to cover an fsync).
fn store_append(store: &Store, slices: &[Vec<Vec<u8>>], threads: usize, window: usize) -> f64 {
    parallel_producers(slices.len(), threads, &|range: std::ops::Range<usize>| {
        let inflight = Arc::new((Mutex::new(0usize), Condvar::new()));
        for i in range {
            {
                let (lock, cv) = &*inflight;
                let mut n = lock.lock().unwrap();
                while *n >= window {
                    n = cv.wait(n).unwrap();
                }
                *n += 1;
            }
            let done = Arc::clone(&inflight);
            store.append_with(
                Batch::new().slice(key(i), &slices[i]),
                Box::new(move |r| {
                    r.expect("append failed");
                    let (lock, cv) = &*done;
                    *lock.lock().unwrap() -= 1;
                    cv.notify_all();
                }),
            );
        }
        let (lock, cv) = &*inflight;
        let mut n = lock.lock().unwrap();
        while *n > 0 {
            n = cv.wait(n).unwrap();
        }
    })
}

/// Durable batches of one small meta record each (the simple-jobs path).
fn small_meta_batches(dir: &std::path::Path, opts: &StoreOptions, n: usize, threads: usize) -> f64 {
    let dir = dir.with_extension("meta");
    let _ = std::fs::remove_dir_all(&dir);
    let (store, _) = Store::open(&dir, opts.clone()).expect("open store");
    let window = 4096;
    let s = parallel_producers(n, threads, &|range: std::ops::Range<usize>| {
        let inflight = Arc::new((Mutex::new(0usize), Condvar::new()));
        for i in range {
            {
                let (lock, cv) = &*inflight;
                let mut k = lock.lock().unwrap();
                while *k >= window {
                    k = cv.wait(k).unwrap();
                }
                *k += 1;
            }
            let done = Arc::clone(&inflight);
            let record =
                format!("{{\"t\":\"enqueued\",\"job\":{i},\"kind\":\"noop\",\"prio\":50}}");
            store.append_with(
                Batch::new().meta(record.into_bytes()),
                Box::new(move |r| {
                    r.expect("append failed");
                    let (lock, cv) = &*done;
                    *lock.lock().unwrap() -= 1;
                    cv.notify_all();
                }),
            );
        }
        let (lock, cv) = &*inflight;
        let mut k = lock.lock().unwrap();
        while *k > 0 {
            k = cv.wait(k).unwrap();
        }
    });
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    s
}

fn parallel_producers(
    n: usize,
    threads: usize,
    work: &(dyn Fn(std::ops::Range<usize>) + Sync),
) -> f64 {
    let per = n.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let range = (t * per).min(n)..((t + 1) * per).min(n);
            s.spawn(move || work(range));
        }
    });
    start.elapsed().as_secs_f64()
}

/// A line of /proc/self/status (VmRSS, VmHWM), Linux only.
fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "n/a".into())
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: usize = args.get(1).map_or(300_000, |a| a.parse().expect("records"));
    let threads: usize = args.get(2).map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        |a| a.parse().expect("threads"),
    );
    let dir: PathBuf = args
        .get(3)
        .map_or_else(|| PathBuf::from("target/store-bench-data"), PathBuf::from);
    let _ = std::fs::remove_dir_all(&dir);

    let slices = make_slices(records);
    let bytes = raw_bytes(&slices);
    println!(
        "store_bench: {} records in {} slices of {RECORDS_PER_SLICE} ({:.1} MB of records, {:.0} B/record), {threads} threads, data in {}",
        slices.len() * RECORDS_PER_SLICE,
        slices.len(),
        bytes as f64 / 1e6,
        bytes as f64 / (slices.len() * RECORDS_PER_SLICE) as f64,
        dir.display()
    );

    // Each figure is the best of three runs, raw and store interleaved, so
    // noise from other processes on the machine hits both alike.
    let opts = StoreOptions {
        master_key: Some(MasterKey::generate()),
        ..StoreOptions::default()
    };
    raw_codec(&slices[..slices.len().min(20)], threads);
    let (mut raw_enc_s, mut raw_dec_s) = (f64::MAX, f64::MAX);
    let (mut append_s, mut blocking_s, mut read_s) = (f64::MAX, f64::MAX, f64::MAX);
    let mut read_borrowed_s = f64::MAX;
    let mut stats = Default::default();
    let mut open_ms = 0.0;
    for _ in 0..3 {
        let raw = raw_codec(&slices, threads);
        raw_enc_s = raw_enc_s.min(raw.encode_s);
        raw_dec_s = raw_dec_s.min(raw.decode_s);

        let _ = std::fs::remove_dir_all(&dir);
        let (store, _) = Store::open(&dir, opts.clone()).expect("open store");
        append_s = append_s.min(store_append(&store, &slices, threads, 64));
        stats = store.stats();
        store.close().expect("close");

        let (store, report) = Store::open(&dir, opts.clone()).expect("reopen store");
        open_ms = report.open_ms;
        read_s = read_s.min(parallel(slices.len(), threads, &|i| {
            let recs = store.read_slice(&key(i)).expect("read").expect("present");
            assert_eq!(recs.len(), RECORDS_PER_SLICE);
            std::hint::black_box(recs);
        }));
        read_borrowed_s = read_borrowed_s.min(parallel(slices.len(), threads, &|i| {
            let recs = store
                .read_slice_records(&key(i))
                .expect("read")
                .expect("present");
            assert_eq!(recs.iter().count(), RECORDS_PER_SLICE);
            std::hint::black_box(recs);
        }));
        drop(store);

        let dir2 = dir.with_extension("blocking");
        let _ = std::fs::remove_dir_all(&dir2);
        let (store, _) = Store::open(&dir2, opts.clone()).expect("open store");
        let n = slices.len().min(100);
        let s = parallel_producers(n, threads, &|range| {
            for i in range {
                store
                    .append(Batch::new().slice(key(i), &slices[i]))
                    .expect("append");
            }
        });
        drop(store);
        let _ = std::fs::remove_dir_all(&dir2);
        blocking_s = blocking_s.min(s * slices.len() as f64 / n as f64);
    }
    let stats: booster_store::StoreStats = stats;
    let raw = Raw {
        encode_s: raw_enc_s,
        decode_s: raw_dec_s,
    };

    let (zstd_s, aes_s) = breakdown(&slices);
    println!(
        "one thread: zstd-1 compress {:.1} MB/s, AES-256-GCM seal {:.1} MB/s (of the compressed bytes, per raw MB)",
        mb_s(bytes, zstd_s),
        mb_s(bytes, aes_s)
    );
    let (raw_enc, raw_dec) = (mb_s(bytes, raw.encode_s), mb_s(bytes, raw.decode_s));
    let (app, blk, rd) = (
        mb_s(bytes, append_s),
        mb_s(bytes, blocking_s),
        mb_s(bytes, read_s),
    );
    println!(
        "compression ratio: {:.2} (raw {} B, stored {} B), {} segments, reopen {:.1} ms",
        stats.raw_bytes as f64 / stats.stored_bytes as f64,
        stats.raw_bytes,
        stats.stored_bytes,
        stats.segments,
        open_ms
    );
    println!("raw codec encode (zstd-1 + AES-256-GCM + CRC): {raw_enc:8.1} MB/s");
    println!(
        "store append (group commit, fsync, pipelined): {app:8.1} MB/s  = {:5.1}% of raw",
        100.0 * app / raw_enc
    );
    println!(
        "store append (blocking append per slice):       {blk:8.1} MB/s  = {:5.1}% of raw",
        100.0 * blk / raw_enc
    );
    println!("raw codec decode (CRC + AES-256-GCM + zstd):    {raw_dec:8.1} MB/s");
    println!(
        "store read (mmap, decrypt, decompress, split):  {rd:8.1} MB/s  = {:5.1}% of raw",
        100.0 * rd / raw_dec
    );
    let rb = mb_s(bytes, read_borrowed_s);
    println!(
        "store read_slice_records (no Vec per record): {rb:8.1} MB/s  = {:5.1}% of raw",
        100.0 * rb / raw_dec
    );
    println!(
        "records/s: append {:.0}, read {:.0}",
        (slices.len() * RECORDS_PER_SLICE) as f64 / append_s,
        (slices.len() * RECORDS_PER_SLICE) as f64 / read_s
    );
    let metas = 200_000;
    let meta_s = small_meta_batches(&dir, &opts, metas, threads);
    println!(
        "meta-only batches (one ~60 B record each, durable): {:.0} batches/s",
        metas as f64 / meta_s
    );
    println!(
        "memory: RSS now {}, peak {} (the test data itself is {:.0} MB)",
        proc_status("VmRSS:"),
        proc_status("VmHWM:"),
        bytes as f64 / 1e6 * 1.3
    );
    let _ = std::fs::remove_dir_all(&dir);
}
