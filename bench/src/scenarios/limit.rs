//! `limit`: the machine's ceiling for a sliced job's round trip: the zstd +
//! AES-256-GCM + CRC32 work of each phase (see `codec.rs`) on the same ~100 B
//! CSV records in the same slice size, on as many threads as Booster runs
//! that phase's codec work on (`phase_threads`), with nothing else: no store, no actors, no fsync, no per-record
//! decode, copy or encode, no allocation per slice (buffers are reused).
//! That is less work than Booster does for the same slices, so it is a true
//! ceiling; a run in which Booster beats it in a phase is marked invalid
//! (`compare::limit_validity`). Each phase is timed once per run: the parent
//! repeats `limit` and `sliced` alternately (A B A B) and takes medians.
//! Plus the rate at which this disk completes small append + fdatasync pairs.

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

/// Per-thread buffers, reused across slices.
struct Buffers {
    frame: Vec<u8>,
    scratch: Vec<u8>,
    payload: Vec<u8>,
}

/// records/s of each phase and of the whole round trip, on `ctx.workers` threads.
pub fn codec_ceiling(ctx: &Ctx, slice_size: usize) -> anyhow::Result<Vec<Measurement>> {
    let records_total = ctx.records(10_000_000, 1_000_000);
    let slices_total = records_total.div_ceil(slice_size as u64);
    let payloads: Vec<Vec<u8>> = (0..POOL_SLICES)
        .map(|i| {
            codec::encode_records(&crate::records::records(
                (i * slice_size) as u64,
                slice_size,
            ))
        })
        .collect();
    // The payload's record bytes, without the 4-byte length prefixes.
    let raw_bytes_per_slice: Vec<u64> = payloads
        .iter()
        .map(|p| (p.len() - 4 * slice_size) as u64)
        .collect();
    let raw_bytes_total: u64 = (0..slices_total)
        .map(|i| raw_bytes_per_slice[i as usize % POOL_SLICES])
        .sum();
    let record_bytes = raw_bytes_total as f64 / (slices_total * slice_size as u64) as f64;
    let mut setup = Codec::new(Some(KEY), Some(ctx.zstd_level));
    // A copy's output payload is its input payload: the same frames serve
    // as the input of process and of download.
    let frames: Vec<Vec<u8>> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| setup.seal(i as u64, slice_size as u32, p))
        .collect();
    let count = slice_size as u32;
    // Booster's codec threads: `--codec-threads`, or its default, the cores.
    let codec_threads = ctx.codec_threads.unwrap_or_else(crate::report::cores);
    let threads = phase_threads(ctx.workers, codec_threads);
    let level = ctx.zstd_level;
    let upload_s = on_all_threads(threads.upload, slices_total, level, |codec, b, i| {
        let n = codec.seal_into(i, count, &payloads[i as usize % POOL_SLICES], &mut b.frame);
        std::hint::black_box(&b.frame[..n]);
    });
    let process_s = on_all_threads(threads.process, slices_total, level, |codec, b, i| {
        let frame = &frames[i as usize % POOL_SLICES];
        codec
            .open_into(frame, &mut b.scratch, &mut b.payload)
            .expect("own frame opens");
        let n = codec.seal_into(i, count, &b.payload, &mut b.frame);
        std::hint::black_box(&b.frame[..n]);
    });
    let download_s = on_all_threads(threads.download, slices_total, level, |codec, b, i| {
        let frame = &frames[i as usize % POOL_SLICES];
        codec
            .open_into(frame, &mut b.scratch, &mut b.payload)
            .expect("own frame opens");
        std::hint::black_box(&b.payload);
    });
    let params = json!({
        "records": records_total,
        "slice_size": slice_size,
        "threads_upload": threads.upload,
        "threads_process": threads.process,
        "threads_download": threads.download,
        "zstd_level": level,
        "aes_gcm": true,
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

/// Threads per phase, one per thread Booster runs that phase's codec work
/// on, so on a shared machine the limit's share of the cores is not smaller
/// than Booster's: upload, the runtime's upload pool (one per core, at
/// least 2) and the store's writer (AES-GCM); process, the workers and the
/// writer; download, a download's reader threads (one per core, at least
/// 2: the runtime's `codec_threads`), or the workers where they are more
/// (the limit's count before downloads read ahead), plus one for the
/// thread iterating Booster's download (it makes each record's `Vec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseThreads {
    pub upload: usize,
    pub process: usize,
    pub download: usize,
}

pub fn phase_threads(workers: usize, codec_threads: usize) -> PhaseThreads {
    PhaseThreads {
        upload: codec_threads.max(2) + 1,
        process: workers.max(1) + 1,
        download: codec_threads.max(2).max(workers.max(1)) + 1,
    }
}

/// Runs `work(codec, buffers, slice_index)` for every index in 0..slices on
/// `threads` threads, each with its own codec and buffers; returns the wall
/// time in seconds.
fn on_all_threads<F>(threads: usize, slices: u64, zstd_level: i32, work: F) -> f64
where
    F: Fn(&mut Codec, &mut Buffers, u64) + Sync,
{
    let next = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut codec = Codec::new(Some(KEY), Some(zstd_level));
                let mut buffers = Buffers {
                    frame: Vec::new(),
                    scratch: Vec::new(),
                    payload: Vec::new(),
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= slices {
                        break;
                    }
                    work(&mut codec, &mut buffers, i);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_runs_no_fewer_threads_than_booster_in_any_phase() {
        let t = phase_threads(2, 2);
        // upload pool (2) + writer; workers (2) + writer; a download's
        // readers (2, one per core, at least 2) + the iterating thread.
        assert_eq!(t.upload, 3);
        assert_eq!(t.process, 3);
        assert_eq!(t.download, 3);
        assert_eq!(phase_threads(1, 1).download, 3);
        assert_eq!(phase_threads(4, 2).download, 5);
        assert_eq!(phase_threads(2, 8).download, 9);
    }
}
