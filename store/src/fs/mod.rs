//! The file layer: every byte the store reads or writes goes through
//! [`FileLayer`], so tests can run the store on a simulated file system that
//! crashes at any I/O step.

mod os;
#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub use os::{DirLock, OsFileLayer};

use std::io;
use std::path::Path;

/// An open file with positional I/O.
#[allow(clippy::len_without_is_empty)]
pub trait FileHandle: Send + Sync + 'static {
    /// Fills `buf` from `offset`; an error if the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: the written bytes survive power loss once this returns Ok.
    fn sync_data(&self) -> io::Result<()>;
    /// Reserves `len` bytes of disk for the file (its size becomes `len`).
    /// The default only sets the size (a sparse file reserves nothing).
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// What the store needs from a file system.
pub trait FileLayer: Clone + Send + Sync + 'static {
    type File: FileHandle;
    /// A read-only view of a whole sealed file.
    type Map: std::ops::Deref<Target = [u8]> + Send + Sync + 'static;
    /// Held while the data directory is locked; dropping it unlocks.
    type Lock: Send + Sync + 'static;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new empty file for reading and writing; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// fsync of a directory: creates, renames and removes in it become durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Maps a file that is never written again.
    fn map(&self, file: &Self::File) -> io::Result<Self::Map>;
    /// Hints that `offset..offset + len` of a map was read and may leave
    /// memory (it is read again from the file if needed).
    fn release(&self, _map: &Self::Map, _offset: usize, _len: usize) {}
    /// Takes the lock at `path` and writes `holder` into it; `Ok(Err(text))`
    /// when another process holds it, with what that process wrote.
    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<Result<Self::Lock, String>>;
    /// Bytes an unprivileged writer may still use on `dir`'s file system.
    fn free_bytes(&self, _dir: &Path) -> io::Result<u64> {
        Ok(u64::MAX)
    }
}
