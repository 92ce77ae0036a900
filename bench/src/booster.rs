//! Opening a Booster runtime the way every scenario does.

use std::path::Path;

use booster_runtime::{MasterKey, Runtime, RuntimeOptions};

use crate::scenarios::Ctx;

/// Fixed so a child process and its parent (recovery) open the same data.
pub const BENCH_KEY: [u8; 32] = [0x42; 32];
/// What every Booster figure's acknowledgements cost (G1).
pub const DURABILITY: &str = "fdatasync per group commit";

/// The store settings a Booster figure was taken with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecMode {
    /// zstd and AES-256-GCM: the production setting.
    On,
    /// No encryption. zstd stays on: the store has no switch to turn
    /// compression off (it stores a frame raw only when zstd does not shrink it).
    Off,
}

impl CodecMode {
    pub fn name(self) -> &'static str {
        match self {
            CodecMode::On => "zstd+aes",
            CodecMode::Off => "zstd_no_aes",
        }
    }
}

pub fn options(ctx: &Ctx, dir: &Path, codec: CodecMode, workers: usize) -> RuntimeOptions {
    let mut opts = RuntimeOptions::new(dir);
    opts.workers = workers;
    opts.slice_size = ctx.slice_size;
    opts.start_workers = true;
    opts.zstd_level = ctx.zstd_level;
    if let Some(threads) = ctx.codec_threads {
        opts.codec_threads = threads;
    }
    if let Some(b) = ctx.max_lease_batch {
        opts.max_lease_batch = b;
    }
    if ctx.no_checkpoints {
        opts.auto_checkpoint = false;
    }
    opts.auto_compact = !ctx.no_auto_compact;
    if let Some(mb) = ctx.auto_compact_min_dead_mb {
        opts.auto_compact_min_dead_bytes = mb << 20;
    }
    opts.master_key = match codec {
        CodecMode::On => Some(MasterKey(BENCH_KEY)),
        CodecMode::Off => None,
    };
    opts
}

pub async fn open(
    ctx: &Ctx,
    dir: &Path,
    codec: CodecMode,
    workers: usize,
) -> anyhow::Result<Runtime> {
    let rt = Runtime::open(options(ctx, dir, codec, workers)).await?;
    crate::handlers::register_all(&rt);
    Ok(rt)
}

/// A multi-threaded tokio runtime for the harness's own async calls. Two
/// threads: the handlers run on Booster's worker threads, not here.
pub fn tokio() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Records cycled over by uploads: generated once, so the upload phase
/// times Booster rather than the generator, and memory stays small.
pub struct RecordPool {
    records: Vec<Vec<u8>>,
    pub mean_bytes: f64,
}

impl RecordPool {
    pub const LEN: usize = 65_536;

    pub fn new() -> RecordPool {
        let records = crate::records::records(0, Self::LEN);
        let total: usize = records.iter().map(Vec::len).sum();
        RecordPool {
            mean_bytes: total as f64 / Self::LEN as f64,
            records,
        }
    }
    pub fn get(&self, n: u64) -> &[u8] {
        &self.records[n as usize % Self::LEN]
    }
    /// Bytes of records 0..n.
    pub fn bytes(&self, n: u64) -> u64 {
        let full = n / Self::LEN as u64;
        let per_pool: u64 = self.records.iter().map(|r| r.len() as u64).sum();
        let rest: u64 = (0..n % Self::LEN as u64)
            .map(|i| self.get(i).len() as u64)
            .sum();
        full * per_pool + rest
    }
}

impl Default for RecordPool {
    fn default() -> Self {
        RecordPool::new()
    }
}
