//! An entry's directories, held open for a pass. The allowlist is checked
//! on paths; what the pass then does (list, stat, rename, fsync, read) goes
//! through descriptors opened without following a symlink and checked to be
//! those paths. A directory renamed away or replaced by a symlink during
//! the pass (by a feeder who can write the archive's parent, say) is never
//! followed: the pass keeps working in the directories that were checked.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::take::INBOX;

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

pub struct Dirs {
    /// The watched directory.
    pub dir: OwnedFd,
    pub archive: OwnedFd,
    /// `ARCHIVE/.booster-inbox`.
    pub inbox: OwnedFd,
}

impl Dirs {
    /// Opens `dir`, `archive` (both as resolved and allowed when the entry
    /// was opened) and the inbox, or says why not.
    pub fn open(dir: &Path, archive: &Path) -> Result<Dirs, String> {
        let dir_fd = open_checked(dir, "directory")?;
        let archive_fd = open_checked(archive, "archive")?;
        let inbox = sub_dir(&archive_fd, INBOX).map_err(|e| {
            format!(
                "its inbox {} cannot be opened as a directory ({e}); is it a symlink? remove it, and the watcher makes it again",
                archive.join(INBOX).display()
            )
        })?;
        Ok(Dirs {
            dir: dir_fd,
            archive: archive_fd,
            inbox,
        })
    }

    /// A path to `name` in the watched directory through its descriptor
    /// (Linux's `/proc/self/fd`): it reaches the directory that was
    /// checked, whatever is renamed meanwhile, and keeps the file's name
    /// (its extension says its format and compression).
    pub fn in_dir(&self, name: &str) -> PathBuf {
        via(&self.dir, name)
    }

    /// As `in_dir`, in the inbox.
    pub fn in_inbox(&self, name: &str) -> PathBuf {
        via(&self.inbox, name)
    }
}

fn via(fd: &OwnedFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())).join(name)
}

/// Opens directory `path` without following a symlink at its end, and
/// checks that what was opened is `path` itself (no component moved or
/// replaced by a symlink since it was resolved).
fn open_checked(path: &Path, what: &str) -> Result<OwnedFd, String> {
    let moved = || {
        format!(
            "its {what} {} is no longer the directory that was allowed (moved, or replaced by a symlink); nothing is taken until it is",
            path.display()
        )
    };
    let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty()).map_err(|_| moved())?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| format!("its {what} {}: {e}", path.display()))?;
    if real != path {
        return Err(moved());
    }
    Ok(fd)
}

/// Directory `name` in `parent`, made (durably) if missing; a symlink or a
/// file there is an error, never followed.
pub fn sub_dir(parent: &OwnedFd, name: &str) -> std::io::Result<OwnedFd> {
    match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Err(Errno::NOENT) => {
            match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            rustix::fs::fsync(parent)?;
            Ok(rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?)
        }
        other => Ok(other?),
    }
}

/// What `name` in `dir` is, not following a symlink: None when absent.
pub fn kind_at(dir: &OwnedFd, name: &str) -> std::io::Result<Option<(FileType, u64, i64, i64)>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some((
            FileType::from_raw_mode(st.st_mode),
            st.st_size as u64,
            st.st_mtime,
            st.st_mtime_nsec as i64,
        ))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A plain file named `name` is in `dir`.
pub fn is_file_at(dir: &OwnedFd, name: &str) -> bool {
    matches!(kind_at(dir, name), Ok(Some((FileType::RegularFile, ..))))
}

/// Something named `name` is in `dir` (a symlink counts).
pub fn exists_at(dir: &OwnedFd, name: &str) -> bool {
    matches!(kind_at(dir, name), Ok(Some(_)))
}

/// `rename` from one held directory to another that never replaces what
/// is at the target.
pub fn rename_new(
    from_dir: &OwnedFd,
    from: &str,
    to_dir: &OwnedFd,
    to: &str,
) -> std::io::Result<()> {
    rustix::fs::renameat_with(
        from_dir,
        from,
        to_dir,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(std::io::Error::from)
}

/// Writes `text` to a new file `name` in `dir` (replacing an earlier one
/// of a retry), never through a symlink, durably.
pub fn write_at(dir: &OwnedFd, name: &str, text: &str) -> std::io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    file.sync_all()
}

pub fn fsync(dir: &OwnedFd) -> std::io::Result<()> {
    rustix::fs::fsync(dir).map_err(std::io::Error::from)
}

/// The lock file `held` is the inbox's `.lock` (same file, not one of an
/// inbox that was moved away).
pub fn holds_lock(dirs: &Dirs, held: Option<&std::fs::File>) -> bool {
    let Some(held) = held else {
        return false;
    };
    let (Ok(mine), Ok(there)) = (
        rustix::fs::fstat(held),
        rustix::fs::statat(&dirs.inbox, ".lock", AtFlags::SYMLINK_NOFOLLOW),
    ) else {
        return false;
    };
    (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)
}

/// Takes the inbox's lock (`.lock`, flock), as `lock_inbox` does at the
/// start: refused while another watcher holds it.
pub fn lock_at(dirs: &Dirs) -> Result<std::fs::File, String> {
    let fd = rustix::fs::openat(
        &dirs.inbox,
        ".lock",
        OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| format!("opening its inbox's .lock: {e}"))?;
    rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        "another dirmon watcher holds its inbox's .lock; give each entry its own archive"
            .to_string()
    })?;
    Ok(std::fs::File::from(fd))
}
