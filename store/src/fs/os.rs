//! Real files: positional I/O, `fdatasync`, directory fsync, `flock`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{FileHandle, FileLayer};
use crate::mmap::SegmentMap;

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFileLayer;

/// The `flock` on a data directory's `LOCK` file, released explicitly on drop.
///
/// Why not just close the file: `flock` belongs to the open file
/// description, and a child process forked by any other thread of this
/// process holds a copy of that description until it execs (the descriptor
/// is close-on-exec, but the copy exists between fork and exec). Closing our
/// descriptor in that window would leave the lock held by the child, and a
/// store reopened at once would be refused as "locked by" this very process.
/// `LOCK_UN` removes the lock from the description itself, whoever else
/// holds a copy.
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Nothing useful can be done if unlocking fails: closing the file
        // (right after this) releases the lock in every case but the
        // fork window described above.
        let _ = self.file.unlock();
    }
}

impl FileHandle for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        rustix::fs::fallocate(self, rustix::fs::FallocateFlags::empty(), 0, len)?;
        Ok(())
    }
}

impl FileLayer for OsFileLayer {
    type File = File;
    type Map = SegmentMap;
    type Lock = DirLock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }
    fn open(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn map(&self, file: &File) -> io::Result<SegmentMap> {
        SegmentMap::new(file)
    }
    fn release(&self, map: &SegmentMap, offset: usize, len: usize) {
        map.release(offset, len);
    }
    fn free_bytes(&self, dir: &Path) -> io::Result<u64> {
        let st = rustix::fs::statvfs(dir)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }
    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<Result<DirLock, String>> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {
                // Only for the "locked by" message: on a full disk the lock
                // is held all the same. Overwrite, then cut, so the file's
                // block is never freed and needed again.
                if FileExt::write_all_at(&file, holder.as_bytes(), 0).is_ok() {
                    let _ = file.set_len(holder.len() as u64);
                }
                Ok(Ok(DirLock { file }))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let text = text.trim().to_string();
                Ok(Err(if text.is_empty() {
                    "unknown".into()
                } else {
                    text
                }))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}
