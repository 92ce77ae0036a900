//! The disk reserve: a preallocated file (`RESERVE`) taken at open while
//! there is room and deleted the moment a write finds the disk full, so
//! that recovery, a destroy and a compaction still find space to run.

use std::io;
use std::path::Path;

use crate::fs::{FileHandle, FileLayer};

pub(crate) const RESERVE_FILE_NAME: &str = "RESERVE";

/// Makes sure the reserve holds `bytes`, unless that would leave less than
/// as much again free (then it stays as it is: a nearly full disk is not
/// made fuller). Returns the reserve's size afterwards.
pub(crate) fn ensure_reserve<F: FileLayer>(fs: &F, dir: &Path, bytes: u64) -> io::Result<u64> {
    let path = dir.join(RESERVE_FILE_NAME);
    let have = match fs.open(&path) {
        Ok(file) => file.len()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    if bytes == 0 || have >= bytes {
        return Ok(have);
    }
    if fs.free_bytes(dir)? < bytes.saturating_mul(2) {
        return Ok(have);
    }
    let file = match fs.open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let file = fs.create_new(&path)?;
            fs.sync_dir(dir)?;
            file
        }
        Err(e) => return Err(e),
    };
    file.allocate(bytes)?;
    file.sync_data()?;
    Ok(bytes)
}

/// Deletes the reserve; true when there was one to delete.
pub(crate) fn release_reserve<F: FileLayer>(fs: &F, dir: &Path) -> bool {
    fs.remove(&dir.join(RESERVE_FILE_NAME)).is_ok()
}

/// True for an I/O error that means the disk (or quota) is full.
pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(libc::ENOSPC)
        || e.raw_os_error() == Some(libc::EDQUOT)
}
