//! The disk reserve: a preallocated file (`RESERVE`) taken at open while
//! there is room and deleted the moment a write finds the disk full, so
//! that recovery, a destroy and a compaction still find space to run.

use std::io;
use std::path::Path;

use crate::batch::Room;
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

/// Headroom beside `bytes` of new files or frames: a segment's header and
/// seal footer, the manifest (about 100 bytes a segment), and the file
/// system's blocks.
pub(crate) fn with_headroom(bytes: u64) -> u64 {
    bytes.saturating_add(bytes / 16 + (64 << 10))
}

/// The free space a batch of `batch_bytes` on disk that waits for room
/// (`Batch::needs_room`) must find, with `queued_bytes` queued ahead of
/// it and a seal of `seal_bytes` to come: room for those and for itself,
/// and, beside commits, as much again for the commits after it, so that
/// it never takes the last of the disk they need.
pub(crate) fn room_needed(batch_bytes: u64, seal_bytes: u64, queued_bytes: u64, room: Room) -> u64 {
    let bytes = match room {
        Room::BesideCommits => batch_bytes.saturating_mul(2),
        Room::BeforeCompaction => batch_bytes,
    };
    with_headroom(bytes.saturating_add(seal_bytes)).saturating_add(queued_bytes)
}

/// The free space in `dir` for a write that needs `needed_bytes` and may
/// take the reserve: when short, the reserve is given back first (it
/// exists for this; it is taken again at the next open with room to
/// spare).
pub(crate) fn free_with_reserve<F: FileLayer>(
    fs: &F,
    dir: &Path,
    needed_bytes: u64,
) -> io::Result<u64> {
    let free_bytes = fs.free_bytes(dir)?;
    if free_bytes < needed_bytes && release_reserve(fs, dir) {
        return fs.free_bytes(dir);
    }
    Ok(free_bytes)
}

/// True for an I/O error that means the disk (or quota) is full.
pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(libc::ENOSPC)
        || e.raw_os_error() == Some(libc::EDQUOT)
}
