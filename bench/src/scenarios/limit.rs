//! `limit`: the machine's ceiling for a sliced job's round trip. The same
//! zstd + AES-256-GCM + CRC32 work Booster does per slice (see `codec.rs`),
//! on the same ~100 B CSV records in the same slice size, on every worker
//! thread at once with nothing else (no store, no actors, no fsync); plus the
//! rate at which this disk completes small append + fdatasync pairs.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::codec::{self, Codec};
use crate::report::Measurement;
use crate::scenarios::Ctx;
use crate::stats::Latencies;

/// Distinct slices generated up front and cycled over, so memory stays small
/// for any record count (each slice is compressed on its own, so cycling does
/// not make compression easier).
const POOL_SLICES: usize = 64;
const KEY: [u8; 32] = [0x42; 32];

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let mut out = codec_ceiling(ctx, ctx.slice_size)?;
    out.extend(fdatasync_rate(ctx)?);
    Ok(out)
}

/// records/s of each phase and of the whole round trip, on `ctx.workers` threads.
pub fn codec_ceiling(ctx: &Ctx, slice_size: usize) -> anyhow::Result<Vec<Measurement>> {
    let records_total = ctx.records(10_000_000, 1_000_000);
    let slices_total = records_total.div_ceil(slice_size as u64);
    let pool: Vec<Vec<Vec<u8>>> = (0..POOL_SLICES)
        .map(|i| crate::records::records((i * slice_size) as u64, slice_size))
        .collect();
    let raw_bytes_per_slice: Vec<usize> =
        pool.iter().map(|s| s.iter().map(Vec::len).sum()).collect();
    let raw_bytes_total: u64 = (0..slices_total)
        .map(|i| raw_bytes_per_slice[i as usize % POOL_SLICES] as u64)
        .sum();
    let record_bytes = raw_bytes_total as f64 / (slices_total * slice_size as u64) as f64;
    let mut setup = Codec::new(Some(KEY), Some(ctx.zstd_level));
    let input_frames: Vec<Vec<u8>> = pool
        .iter()
        .enumerate()
        .map(|(i, s)| codec::upload(&mut setup, i as u64, s))
        .collect();
    let output_frames: Vec<Vec<u8>> = input_frames
        .iter()
        .enumerate()
        .map(|(i, f)| codec::process_copy(&mut setup, (POOL_SLICES + i) as u64, f))
        .collect();
    let threads = ctx.workers;
    let level = ctx.zstd_level;
    let upload_s = on_all_threads(
        threads,
        slices_total,
        |codec, i| {
            std::hint::black_box(codec::upload(codec, i, &pool[i as usize % POOL_SLICES]));
        },
        level,
    );
    let process_s = on_all_threads(
        threads,
        slices_total,
        |codec, i| {
            std::hint::black_box(codec::process_copy(
                codec,
                i,
                &input_frames[i as usize % POOL_SLICES],
            ));
        },
        level,
    );
    let download_s = on_all_threads(
        threads,
        slices_total,
        |codec, i| {
            std::hint::black_box(codec::download(
                codec,
                &output_frames[i as usize % POOL_SLICES],
            ));
        },
        level,
    );
    let params = json!({
        "records": records_total,
        "slice_size": slice_size,
        "threads": threads,
        "zstd_level": level,
        "aes_gcm": true,
        "repeats_fastest_of": REPEATS,
    });
    let m = |metric: &str, seconds: f64| {
        let n = records_total as f64;
        [
            Measurement::new(
                "limit",
                &format!("{metric}_records_per_s"),
                n / seconds,
                "records/s",
            ),
            Measurement::new(
                "limit",
                &format!("{metric}_mb_per_s"),
                raw_bytes_total as f64 / seconds / 1e6,
                "MB/s",
            ),
        ]
        .map(|x| {
            x.durability("none (codec only)")
                .record_size(record_bytes)
                .params(params.clone())
        })
    };
    let mut out = Vec::new();
    out.extend(m("upload", upload_s));
    out.extend(m("process", process_s));
    out.extend(m("download", download_s));
    out.extend(m("end_to_end", upload_s + process_s + download_s));
    Ok(out)
}

/// Times each phase this many times and keeps the fastest: a ceiling is the
/// best the machine did, not an average over moments it was busy elsewhere.
const REPEATS: usize = 3;

/// Runs `work(codec, slice_index)` for every index in 0..slices on `threads`
/// threads, each with its own codec, `REPEATS` times; returns the fastest
/// wall time in seconds.
fn on_all_threads<F>(threads: usize, slices: u64, work: F, zstd_level: i32) -> f64
where
    F: Fn(&mut Codec, u64) + Sync,
{
    (0..REPEATS)
        .map(|_| once_on_all_threads(threads, slices, &work, zstd_level))
        .fold(f64::INFINITY, f64::min)
}

fn once_on_all_threads<F>(threads: usize, slices: u64, work: &F, zstd_level: i32) -> f64
where
    F: Fn(&mut Codec, u64) + Sync,
{
    let next = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut codec = Codec::new(Some(KEY), Some(zstd_level));
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= slices {
                        break;
                    }
                    work(&mut codec, i);
                }
            });
        }
    });
    started.elapsed().as_secs_f64()
}

/// Small appends, each followed by fdatasync, in a temp dir on the data
/// directory's file system: the most durable group commits per second this
/// disk allows, whatever the group size.
pub fn fdatasync_rate(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    std::fs::create_dir_all(&ctx.dir)
        .with_context(|| format!("creating {}; pass --dir elsewhere", ctx.dir.display()))?;
    let tmp = tempfile::tempdir_in(&ctx.dir)?;
    let path = tmp.path().join("fsync-probe");
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    let max_syncs = if ctx.quick { 500 } else { 5_000 };
    let max_time = Duration::from_secs(if ctx.quick { 1 } else { 3 });
    let mut lat = Latencies::new();
    let record = [b'x'; 128];
    let started = Instant::now();
    let mut syncs = 0u64;
    while syncs < max_syncs && started.elapsed() < max_time {
        let t = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        lat.record(t.elapsed());
        syncs += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let params = json!({ "append_bytes": record.len(), "syncs": syncs, "dir": ctx.dir.display().to_string() });
    let m = |metric: &str, v: f64, unit: &str| {
        Measurement::new("limit", metric, v, unit)
            .durability("fdatasync")
            .params(params.clone())
    };
    Ok(vec![
        m("fdatasync_per_s", syncs as f64 / seconds, "syncs/s"),
        m("fdatasync_p50", lat.percentile_us(50.0), "us"),
        m("fdatasync_p99", lat.percentile_us(99.0), "us"),
    ])
}
