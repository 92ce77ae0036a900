//! booster-store: the append-only segment store under Booster.
//!
//! Slices (batches of records) and meta records are compressed with zstd,
//! sealed with AES-256-GCM under a per-segment key when a master key is set,
//! checksummed with CRC32, and appended to segment files by one writer thread
//! that group-commits (one write + one `fdatasync` per group). The byte
//! layout and the commit protocol are in ARCHITECTURE.md.
//!
//! ```no_run
//! use booster_store::{Batch, SliceKey, Store, StoreOptions};
//! let (store, _report) = Store::open("./data", StoreOptions::default()).unwrap();
//! let key = SliceKey { owner: 7, stream: 0, seq: 0 };
//! store.append(Batch::new().slice(key, &[b"a,b".as_slice(), b"c,d"]).meta(b"job 7 uploaded".to_vec())).unwrap();
//! let records = store.read_slice(&key).unwrap().unwrap();
//! assert_eq!(records.len(), 2);
//! ```

mod batch;
mod codec;
mod commit;
mod compact_segments;
mod compaction;
mod crypto;
mod engine;
mod error;
pub mod format;
pub mod fs;
mod index;
mod lock;
mod manifest;
mod mmap;
mod packed;
mod records;
mod reserve;
mod salvage_dir;
mod segment;
mod sequencer;
mod store;
mod verify;

use std::path::PathBuf;

pub use batch::Batch;
pub use crypto::MasterKey;
pub use error::{FormatError, StoreError};
pub use fs::{DirLock, FileLayer, OsFileLayer};
pub use packed::PackedSlice;
pub use records::{RecordsBuf, SliceRecords};
pub use salvage_dir::{SalvageReport, Unsaved};
pub use segment::SEGMENT_FRAMES_MAX;
pub use store::Store;

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Seal the active segment once it passes this size (or holds
    /// [`SEGMENT_FRAMES_MAX`] frames). Default 32 MiB: until it seals, its
    /// keys are indexed in RAM (about 270 bytes each, 440 a frame through
    /// the seal) and an open after a crash scans it whole.
    pub segment_size_bytes: u64,
    /// zstd level for slices and meta records. Default 1.
    pub zstd_level: i32,
    /// When set, every frame is sealed with AES-256-GCM.
    pub master_key: Option<MasterKey>,
    /// How often a background thread records the highest acknowledged
    /// position in the manifest (never on the commit path). 0 turns the
    /// periodic write off (it is still written at seal and at close).
    /// Default 1000.
    pub watermark_interval_ms: u64,
    /// Disk kept in reserve (a preallocated `RESERVE` file, taken at open
    /// while there is room) and released when a write finds the disk full,
    /// so that recovery, a destroy and a compaction can still run. 0 turns
    /// it off. Default 4 MiB.
    pub reserve_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_size_bytes: 32 << 20,
            zstd_level: 1,
            master_key: None,
            watermark_interval_ms: 1000,
            reserve_bytes: 4 << 20,
        }
    }
}

/// Address of a slice, chosen by the caller. Ordered (owner, stream, seq).
/// Appending a slice under a key that exists replaces it (the older frame
/// becomes dead bytes that compaction reclaims).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SliceKey {
    pub owner: u64,
    pub stream: u32,
    pub seq: u64,
}

/// What the index knows about a stored slice without decrypting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    pub key: SliceKey,
    pub record_count: u32,
    pub raw_len: u32,
    pub stored_len: u32,
}

/// One bounded scan (`Store::try_scan_within`): the live keys found, how
/// many keys it looked at (deleted ones included), and, when it stopped
/// at its bound of keys, the seq of the first key it did not look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    pub slices: Vec<SliceInfo>,
    pub keys_examined: usize,
    pub resume: Option<u64>,
}

/// Proof that a batch is durable.
#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    pub segment_id: u64,
    pub first_frame_seq: u64,
}

/// A range of a segment that recovery could not use (bit rot, a lost
/// footer): the store opened without it (degraded open). Reads of the
/// slices it held fail with `StoreError::Corrupt`; everything else reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub segment_id: u64,
    pub path: PathBuf,
    /// Where the unusable bytes start and end.
    pub offset: u64,
    pub end: u64,
    pub what: String,
    /// Slices whose frames lay in the range, where a frame header names them
    /// (a frame whose header is unreadable names nothing).
    pub slices: Vec<SliceKey>,
    /// Meta records were (or, behind an unreadable header, may have been) lost.
    pub meta_lost: bool,
    /// Every lost frame is named by its header (`slices`, `meta_lost`).
    /// False for an *unknown loss*: a missing segment file, a segment whose
    /// header and footer are both unreadable, a frame header that does not
    /// decode, or acknowledged batches cut off below the watermark. Then
    /// any key may have lost frames: a read of a key the store does not
    /// hold fails with `Corrupt` naming the first such range, instead of
    /// answering "absent" (see ARCHITECTURE.md, "Unknown loss").
    pub identified: bool,
}

/// What recovery found and did on open.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    pub frames: u64,
    /// (segment id, offset truncated at, bytes dropped) for each torn tail.
    pub truncated: Vec<(u64, u64, u64)>,
    pub removed_incomplete_compaction: Vec<PathBuf>,
    /// Damaged ranges the store opened without (never written over, so
    /// the next open finds them again until the segment is restored).
    pub damaged: Vec<Damage>,
    /// The disk was too full for recovery to write: the store opened
    /// read-only (reads work; writes fail until it is reopened with room).
    pub read_only: bool,
    /// Bytes held in the `RESERVE` file after open (0: none could be taken).
    pub reserve_bytes: u64,
    pub open_ms: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub segments: usize,
    pub frames: u64,
    pub slice_frames: u64,
    pub meta_frames: u64,
    pub live_bytes: u64,
    pub dead_bytes: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

#[derive(Clone, Debug)]
pub struct Problem {
    pub segment_id: u64,
    pub path: PathBuf,
    pub offset: u64,
    pub what: String,
}

#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub segments: usize,
    pub frames: u64,
    pub tags_checked: u64,
    pub problems: Vec<Problem>,
}

/// What the store holds in RAM, counted ([`Store::memory`]): the sizes
/// issue 12's soak samples beside the resident set, to tell which of them
/// follows the history (G10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Segments open (each a file handle and, once sealed, a map).
    pub segments: usize,
    /// Keys indexed in RAM maps: the active segment's, and those of
    /// old-format or damaged segments.
    pub keys_in_ram: usize,
    /// Blocks of sealed segments' sorted runs: one fence key and CRC each.
    pub run_blocks: usize,
    /// Meta frames listed (from the newest checkpoint on).
    pub meta_frames: usize,
    /// Keys marked damaged.
    pub damaged_keys: usize,
}

/// What one segment holds that a compaction with a plan would keep
/// ([`Store::segment_usage`]): what segment-by-segment compaction
/// (ARCHITECTURE.md, planned) chooses its victims by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentUsage {
    pub segment_id: u64,
    /// The segment file's bytes, its header and seal footer included.
    pub file_bytes: u64,
    /// The bytes of its frames: the file but its header and seal footer
    /// (0 for a segment that is not sealed, or whose footer cannot be
    /// located).
    pub frame_bytes: u64,
    /// Bytes of its frames that stay live: the newest frame of each key
    /// the plan keeps (a tombstone too, while it hides an older frame) and
    /// the meta frames from the newest checkpoint on.
    pub live_bytes: u64,
}

impl SegmentUsage {
    /// The share of its frame bytes a compaction would reclaim, 0.0 to
    /// 1.0 (the header and footer aside, so that a small segment is not
    /// taken for a dead one).
    pub fn dead_share(&self) -> f64 {
        if self.frame_bytes == 0 {
            return 0.0;
        }
        1.0 - self.live_bytes.min(self.frame_bytes) as f64 / self.frame_bytes as f64
    }
}

#[derive(Clone, Debug, Default)]
pub struct CompactionReport {
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub slices_kept: u64,
    pub slices_dropped: u64,
    /// Segments rewritten (every one in a full compaction; in a segment
    /// compaction the victims, 0 when none passed the threshold and
    /// nothing was written).
    pub segments_rewritten: usize,
}

/// The caller's view of what survives compaction.
pub trait CompactionPlan {
    fn slice_is_live(&self, key: &SliceKey) -> bool;
    /// Meta records that replace every meta record in the store.
    fn meta_snapshot(&self) -> Vec<Vec<u8>>;
}
