//! Exit codes, and which errors map to which.

use booster_runtime::RuntimeError;
use booster_store::StoreError;

/// Everything asked was done; every record was processed.
pub const OK: i32 = 0;
/// An error stopped the command (its message says what to do).
pub const ERROR: i32 = 1;
/// The command line was wrong (clap's code).
pub const USAGE: i32 = 2;
/// The job finished but records failed (counts printed, errors kept), or it failed.
pub const RECORDS_FAILED: i32 = 3;
/// `verify` (or opening the store) found corruption.
pub const CORRUPT: i32 = 4;
/// Interrupted (Ctrl-C / SIGTERM) before the job finished; `booster work` resumes it.
pub const INTERRUPTED: i32 = 130;

pub const HELP: &str = "\
Exit codes:
  0    done; every record processed
  1    error (the message says what to do)
  2    bad command line
  3    the job finished with failed records (or failed); see --errors / `booster job show`
  4    corruption found (`booster verify` lists segment and offset)
  130  interrupted by Ctrl-C; `booster work` picks the job up again

Environment: BOOSTER_DATA, BOOSTER_KEY_FILE, BOOSTER_SERVER, BOOSTER_TOKEN_FILE";

/// The exit code for an error that stopped the command.
pub fn code_for(error: &anyhow::Error) -> i32 {
    for cause in error.chain() {
        let store = cause.downcast_ref::<StoreError>().or_else(|| {
            match cause.downcast_ref::<RuntimeError>() {
                Some(RuntimeError::Store(e)) => Some(e),
                _ => None,
            }
        });
        if let Some(StoreError::Corrupt { .. }) = store {
            return CORRUPT;
        }
        // A meta record that cannot be right (an id or counter that would
        // wrap) is corruption of the store's contents, like a bad frame.
        if let Some(RuntimeError::Corrupt(_)) = cause.downcast_ref::<RuntimeError>() {
            return CORRUPT;
        }
        if let Some(Interrupted) = cause.downcast_ref::<Interrupted>() {
            return INTERRUPTED;
        }
    }
    ERROR
}

/// The command stopped because of Ctrl-C or SIGTERM.
#[derive(Debug, Clone, Copy)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_from_the_store_or_the_meta_log_exits_4() {
        let meta = anyhow::Error::new(RuntimeError::Corrupt("record 7: id wraps".into()))
            .context("opening the data directory");
        assert_eq!(code_for(&meta), CORRUPT);
        let frame = anyhow::Error::new(RuntimeError::Store(StoreError::Corrupt {
            segment_id: 1,
            path: "seg".into(),
            offset: 128,
            what: "bad crc".into(),
        }));
        assert_eq!(code_for(&frame), CORRUPT);
        let other = anyhow::Error::new(RuntimeError::Invalid("no".into()));
        assert_eq!(code_for(&other), ERROR);
    }
}
