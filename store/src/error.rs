//! The store's error type and the decoder error used by `format`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {dir} is locked by process {pid}; stop that process first, or use another data directory")]
    Locked { dir: PathBuf, pid: String },
    #[error("wrong key for {dir}: the data was written with another key; pass the key file it was created with")]
    WrongKey { dir: PathBuf },
    #[error("{dir} holds encrypted data; open it with the master key it was written with")]
    KeyRequired { dir: PathBuf },
    #[error("key file {path} must hold 32 raw bytes or 64 hex characters")]
    BadKeyFile { path: PathBuf },
    #[error("corruption in segment {segment_id} ({path}) at offset {offset}: {what}; verify the data directory to list every damaged range")]
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
    #[error("{what} needs about {needed_bytes} bytes free in {dir}, only {free_bytes} are; free space (or destroy jobs) and retry (nothing was changed)")]
    NoSpace {
        what: String,
        dir: PathBuf,
        needed_bytes: u64,
        free_bytes: u64,
    },
    #[error("the store was closed; open it again to write")]
    Closed,
    /// A write that failed before anything reached a file (no descriptor
    /// left to create the next segment): this request failed, the store did
    /// not (G9 poisons only after a failed write or sync).
    #[error("{context}: {source}; nothing was written and the store still takes writes: retry, or raise the open-file limit (ulimit -n)")]
    Unavailable {
        context: String,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// How the cause of a store poisoned by a full disk begins, whichever
/// write met the full disk first (a group, the watermark's manifest).
pub(crate) const DISK_FULL_CAUSE: &str = "disk full: ";

impl StoreError {
    /// The disk (or quota) was full: also a store poisoned because it was,
    /// so every write refused after it is classed alike (507 over HTTP),
    /// whichever write met the full disk first.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull { .. } | StoreError::NoSpace { .. } => true,
            StoreError::Io { source, .. } => crate::reserve::is_disk_full(source),
            StoreError::Poisoned { cause } => cause.starts_with(DISK_FULL_CAUSE),
            _ => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store is a library: its messages say what happened and what to
    /// do in its own terms; the command's flags and subcommands are the
    /// CLI's to add (`booster_tools::exit::hint`).
    #[test]
    fn messages_name_no_command_line_flags_or_subcommands() {
        let io = || std::io::Error::other("x");
        let all = [
            StoreError::Locked {
                dir: "d".into(),
                pid: "7".into(),
            },
            StoreError::WrongKey { dir: "d".into() },
            StoreError::KeyRequired { dir: "d".into() },
            StoreError::BadKeyFile { path: "k".into() },
            StoreError::Corrupt {
                segment_id: 1,
                path: "p".into(),
                offset: 2,
                what: "w".into(),
            },
            StoreError::Poisoned { cause: "c".into() },
            StoreError::DiskFull { path: "p".into() },
            StoreError::NoSpace {
                what: "w".into(),
                dir: "d".into(),
                needed_bytes: 1,
                free_bytes: 0,
            },
            StoreError::Closed,
            StoreError::Unavailable {
                context: "c".into(),
                source: io(),
            },
            StoreError::Io {
                context: "c".into(),
                source: io(),
            },
        ];
        for e in all {
            let text = e.to_string();
            assert!(!text.contains("--") && !text.contains("booster "), "{text}");
        }
    }
}

/// Why a decoder rejected bytes. Decoders never panic and never allocate from
/// an unchecked length; they return this instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

impl FormatError {
    pub(crate) fn new(what: impl Into<String>) -> FormatError {
        FormatError(what.into())
    }
}
