//! The scenarios, one module each, and what they share.

pub mod fleet;
pub mod jobs;
pub mod limit;
pub mod peers;
pub mod priority;
pub mod priority_trace;
pub mod recovery;
pub mod scaling;
pub mod sliced;
pub mod soak;

use std::path::PathBuf;

/// Settings every scenario reads, from the command line.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub quick: bool,
    pub workers: usize,
    /// `RuntimeOptions::codec_threads`; None: the runtime's default (the
    /// cores, at least 2).
    pub codec_threads: Option<usize>,
    /// Scratch space for data directories; on the file system being measured.
    pub dir: PathBuf,
    /// Overrides the scenario's record count.
    pub records: Option<u64>,
    /// Overrides the scenario's job count.
    pub jobs: Option<u64>,
    pub slice_size: usize,
    pub zstd_level: i32,
    /// Only the headline variant of a scenario (used by `scaling`).
    pub lean: bool,
    /// `jobs`: CPU each job spins, in us (0: no-op jobs).
    pub spin_us: u64,
    /// `jobs`: the most simple jobs one lease carries
    /// (`RuntimeOptions::max_lease_batch`); None: the runtime's default.
    pub max_lease_batch: Option<usize>,
    /// Automatic checkpoints off (`RuntimeOptions::auto_checkpoint`), to
    /// measure what they cost: the runtime's default is on.
    pub no_checkpoints: bool,
    /// Background compaction off (`RuntimeOptions::auto_compact`).
    pub no_auto_compact: bool,
    /// Dead bytes past which background compaction runs, in MiB
    /// (`RuntimeOptions::auto_compact_min_dead_bytes`); None: the
    /// runtime's default (1 GiB).
    pub auto_compact_min_dead_mb: Option<u64>,
    /// `jobs`: only enqueue, and measure the RSS of the queued jobs.
    pub enqueue_only: bool,
    /// Alternating repetitions per comparison (`compare::repetitions`).
    pub repetitions: usize,
    /// Sidekiq processes and threads for `peers`; both given: no sweep.
    pub sidekiq_processes: Option<usize>,
    pub sidekiq_concurrency: Option<usize>,
}

impl Ctx {
    pub fn records(&self, full: u64, quick: u64) -> u64 {
        self.records
            .unwrap_or(if self.quick { quick } else { full })
    }
    pub fn jobs(&self, full: u64, quick: u64) -> u64 {
        self.jobs.unwrap_or(if self.quick { quick } else { full })
    }
}
