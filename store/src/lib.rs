//! booster-store: the append-only segment store under Booster.
//!
//! API CONTRACT (skeleton). The store helper replaces every `todo!()` with the
//! real implementation described in ARCHITECTURE.md, keeping these signatures
//! (adding to them is fine; changing them needs the runtime's agreement).
//!
//! ```no_run
//! use booster_store::{Batch, SliceKey, Store, StoreOptions};
//! let (store, _report) = Store::open("./data", StoreOptions::default()).unwrap();
//! let key = SliceKey { owner: 7, stream: 0, seq: 0 };
//! store.append(Batch::new().slice(key, &[b"a,b".as_slice(), b"c,d"]).meta(b"job 7 uploaded".to_vec())).unwrap();
//! let records = store.read_slice(&key).unwrap().unwrap();
//! assert_eq!(records.len(), 2);
//! ```
#![allow(dead_code, unused_variables)]

use std::path::{Path, PathBuf};

/// A 256-bit master key. Never printed (Debug is redacted).
#[derive(Clone)]
pub struct MasterKey(pub [u8; 32]);

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> MasterKey {
        todo!()
    }
    /// Reads a key file: 32 raw bytes or 64 hex characters (whitespace trimmed).
    pub fn from_file(path: &Path) -> Result<MasterKey, StoreError> {
        todo!()
    }
    /// 64 lower-case hex characters, for writing a key file.
    pub fn to_hex(&self) -> String {
        todo!()
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Seal the active segment once it passes this size. Default 64 MiB.
    pub segment_size_bytes: u64,
    /// zstd level for slices and meta records. Default 1.
    pub zstd_level: i32,
    /// When set, every frame is sealed with AES-256-GCM.
    pub master_key: Option<MasterKey>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_size_bytes: 64 << 20,
            zstd_level: 1,
            master_key: None,
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

/// Slices and meta records that become durable together or not at all.
#[derive(Default)]
pub struct Batch {
    // private: encoded entries
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }
    /// Adds a slice of records (each any bytes).
    pub fn slice<R: AsRef<[u8]>>(self, key: SliceKey, records: &[R]) -> Batch {
        todo!()
    }
    /// Adds a meta record: opaque bytes the runtime replays on open.
    pub fn meta(self, payload: Vec<u8>) -> Batch {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        todo!()
    }
}

/// Proof that a batch is durable.
#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    pub segment_id: u64,
    pub first_frame_seq: u64,
}

/// What recovery found and did on open.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    pub frames: u64,
    /// (segment id, offset truncated at, bytes dropped) for each torn tail.
    pub truncated: Vec<(u64, u64, u64)>,
    pub removed_incomplete_compaction: Vec<PathBuf>,
    pub open_ms: f64,
}

#[derive(Clone, Debug, Default)]
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

#[derive(Clone, Debug, Default)]
pub struct CompactionReport {
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub slices_kept: u64,
    pub slices_dropped: u64,
}

/// The caller's view of what survives compaction.
pub trait CompactionPlan {
    fn slice_is_live(&self, key: &SliceKey) -> bool;
    /// Meta records that replace every meta record in the store.
    fn meta_snapshot(&self) -> Vec<Vec<u8>>;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {dir} is locked by process {pid}; stop it or pass another --data")]
    Locked { dir: PathBuf, pid: String },
    #[error("wrong key for {dir}: the data was written with another key; pass the key file it was created with")]
    WrongKey { dir: PathBuf },
    #[error("{dir} holds encrypted data; pass --key-file")]
    KeyRequired { dir: PathBuf },
    #[error("corrupt frame in segment {segment_id} ({path}) at offset {offset}: {what}; run `booster verify`")]
    Corrupt {
        segment_id: u64,
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error(
        "the store refused writes after an earlier write or fsync failure; reopen it ({cause})"
    )]
    Poisoned { cause: String },
    #[error(
        "disk full while writing {path}: free space, then retry (nothing acknowledged was lost)"
    )]
    DiskFull { path: PathBuf },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

pub struct Store {
    // private
}

impl Store {
    /// Opens (creating if needed) the store in `dir`: takes the lock, recovers.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: StoreOptions,
    ) -> Result<(Store, RecoveryReport), StoreError> {
        todo!()
    }
    /// Appends a batch and blocks until it is durable (group commit).
    pub fn append(&self, batch: Batch) -> Result<Receipt, StoreError> {
        todo!()
    }
    /// Appends without blocking: `done` runs on the writer thread once the
    /// batch is durable (or failed). Compression has already happened on the
    /// caller's thread when this returns.
    pub fn append_with(
        &self,
        batch: Batch,
        done: Box<dyn FnOnce(Result<Receipt, StoreError>) + Send>,
    ) {
        todo!()
    }
    /// The records of a slice (decrypted, decompressed), or None.
    pub fn read_slice(&self, key: &SliceKey) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        todo!()
    }
    /// Index entries for one owner and stream, ordered by seq.
    pub fn slices(&self, owner: u64, stream: u32) -> Vec<SliceInfo> {
        todo!()
    }
    /// Every meta record in commit order (decrypted), for replay on open.
    pub fn meta_records(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        todo!()
    }
    pub fn compact(&self, plan: &dyn CompactionPlan) -> Result<CompactionReport, StoreError> {
        todo!()
    }
    pub fn verify(&self) -> VerifyReport {
        todo!()
    }
    pub fn stats(&self) -> StoreStats {
        todo!()
    }
    pub fn dir(&self) -> &Path {
        todo!()
    }
    /// Flushes and releases the lock.
    pub fn close(self) -> Result<(), StoreError> {
        todo!()
    }
}
