//! `FaultyFs`: the real file system (through `OsFileLayer`) with injected
//! failures, so the store can be driven into a failed `fdatasync` or a torn,
//! failed write at a chosen moment of a real workload.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use booster_store::fs::{FileHandle, FileLayer};
use booster_store::OsFileLayer;

/// Which operation fails. Counts start at 1 and cover every file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// The k-th `sync_data` returns EIO (the bytes may or may not be on disk).
    SyncNumber(u64),
    /// The k-th `write_all_at` writes the first half of its bytes, then EIO.
    WriteNumber(u64),
}

#[derive(Default)]
struct Counters {
    syncs: AtomicU64,
    writes: AtomicU64,
    /// Encoded `Fault`: 0 none, (1, k) sync, (2, k) write.
    kind: AtomicU64,
    at: AtomicU64,
    injected: AtomicU64,
}

/// Real files; one chosen operation fails.
#[derive(Clone, Default)]
pub struct FaultyFs {
    counters: Arc<Counters>,
}

impl FaultyFs {
    pub fn new() -> FaultyFs {
        FaultyFs::default()
    }

    /// Arms a fault counted from now on (counters restart at 0).
    pub fn arm(&self, fault: Fault) {
        let c = &self.counters;
        c.syncs.store(0, Ordering::SeqCst);
        c.writes.store(0, Ordering::SeqCst);
        let (kind, at) = match fault {
            Fault::None => (0, 0),
            Fault::SyncNumber(k) => (1, k),
            Fault::WriteNumber(k) => (2, k),
        };
        c.at.store(at, Ordering::SeqCst);
        c.kind.store(kind, Ordering::SeqCst);
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.counters.injected.load(Ordering::SeqCst)
    }

    fn should_fail(&self, kind: u64, counter: &AtomicU64) -> bool {
        let c = &self.counters;
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let hit = c.kind.load(Ordering::SeqCst) == kind && c.at.load(Ordering::SeqCst) == n;
        if hit {
            c.injected.fetch_add(1, Ordering::SeqCst);
        }
        hit
    }
}

pub struct FaultyFile {
    inner: std::fs::File,
    fs: FaultyFs,
}

impl FileHandle for FaultyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileHandle::read_exact_at(&self.inner, buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.fs.should_fail(2, &self.fs.counters.writes) {
            let half = buf.len() / 2;
            FileHandle::write_all_at(&self.inner, &buf[..half], offset)?;
            return Err(io::Error::other(
                "injected write failure after a short write",
            ));
        }
        FileHandle::write_all_at(&self.inner, buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        FileHandle::len(&self.inner)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        FileHandle::set_len(&self.inner, len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.fs.should_fail(1, &self.fs.counters.syncs) {
            return Err(io::Error::other("injected fdatasync failure"));
        }
        FileHandle::sync_data(&self.inner)
    }
}

impl FileLayer for FaultyFs {
    type File = FaultyFile;
    type Map = <OsFileLayer as FileLayer>::Map;
    type Lock = <OsFileLayer as FileLayer>::Lock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        OsFileLayer.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        OsFileLayer.list(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<FaultyFile> {
        Ok(FaultyFile {
            inner: OsFileLayer.create_new(path)?,
            fs: self.clone(),
        })
    }
    fn open(&self, path: &Path) -> io::Result<FaultyFile> {
        Ok(FaultyFile {
            inner: OsFileLayer.open(path)?,
            fs: self.clone(),
        })
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsFileLayer.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        OsFileLayer.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        OsFileLayer.sync_dir(dir)
    }
    fn map(&self, file: &FaultyFile) -> io::Result<Self::Map> {
        OsFileLayer.map(&file.inner)
    }
    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<Result<Self::Lock, String>> {
        OsFileLayer.try_lock(path, holder)
    }
}
