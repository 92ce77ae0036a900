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
/// Whoever read stdout closed it (`booster jobs | head -1`): 128 + SIGPIPE,
/// what a shell reports for a Unix tool the pipe ended. Nothing is printed.
pub const BROKEN_PIPE: i32 = 141;

pub const HELP: &str = "\
Exit codes:
  0    done; every record processed
  1    error (the message says what to do)
  2    bad command line
  3    the job finished with failed records (or failed); see --errors / `booster job show`
  4    corruption found (`booster verify` lists segment and offset)
  130  interrupted by Ctrl-C; `booster work` picks the job up again
  141  stdout was closed by its reader (`| head`); nothing else went wrong

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
        if cause.downcast_ref::<Usage>().is_some() {
            return USAGE;
        }
        if cause.downcast_ref::<BrokenPipe>().is_some() {
            return BROKEN_PIPE;
        }
    }
    ERROR
}

/// What to type next for an error from the libraries, whose messages say
/// what happened in their own terms: the flags and subcommands are the
/// command's to name. None: the message says it all.
pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    for cause in error.chain() {
        let runtime = cause.downcast_ref::<RuntimeError>();
        let store = cause.downcast_ref::<StoreError>().or(match runtime {
            Some(RuntimeError::Store(e)) => Some(e),
            _ => None,
        });
        let hint = match (store, runtime) {
            (Some(StoreError::Locked { .. }), _) => "stop it, or pass another --data",
            (Some(StoreError::KeyRequired { .. }), _) => {
                "pass --key-file (or set BOOSTER_KEY_FILE)"
            }
            (Some(StoreError::BadKeyFile { .. }), _) => {
                "create a key file with `booster keygen --out FILE`"
            }
            (Some(StoreError::Corrupt { .. }), _) | (_, Some(RuntimeError::Corrupt(_))) => {
                "run `booster verify`; `booster salvage --into NEW_DIR` copies what survived"
            }
            // A destroyed or removed job's message says what became of it.
            (_, Some(RuntimeError::NotFound(_, booster_runtime::Missing::Never))) => {
                "`booster jobs` lists the jobs"
            }
            _ => continue,
        };
        return Some(hint);
    }
    None
}

/// The error line `booster` prints: the message, then the hint if any.
pub fn error_line(error: &anyhow::Error) -> String {
    match hint(error) {
        Some(h) => format!("error: {error:#}; {h}"),
        None => format!("error: {error:#}"),
    }
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

/// A command line clap accepts but that cannot work (`--kind exec` without
/// `--cmd`, an unknown kind): exit 2, like clap's own refusals.
#[derive(Debug, Clone)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// An exit-2 error saying `text`.
pub fn usage(text: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(text.into()))
}

/// Stdout was closed by its reader: the command ends quietly.
#[derive(Debug, Clone, Copy)]
pub struct BrokenPipe;

impl std::fmt::Display for BrokenPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout closed by its reader")
    }
}

impl std::error::Error for BrokenPipe {}

/// Prints `text` and a newline on stdout. A reader that went away (`| head`)
/// ends the process quietly with [`BROKEN_PIPE`], as Unix tools do, instead
/// of the panic `println!` gives; what was acknowledged is durable already.
pub fn out(text: impl std::fmt::Display) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(BROKEN_PIPE);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(ERROR);
    }
}

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

    #[test]
    fn the_cli_adds_its_own_hints_to_library_errors() {
        let locked = anyhow::Error::new(RuntimeError::Store(StoreError::Locked {
            dir: "d".into(),
            pid: "9".into(),
        }))
        .context("opening d");
        let line = error_line(&locked);
        assert!(
            line.contains("locked by process 9") && line.ends_with("pass another --data"),
            "{line}"
        );
        let missing =
            anyhow::Error::new(RuntimeError::NotFound(4, booster_runtime::Missing::Never));
        assert!(error_line(&missing).ends_with("`booster jobs` lists the jobs"));
        let corrupt = anyhow::Error::new(RuntimeError::Corrupt("record 3".into()));
        assert!(error_line(&corrupt).contains("booster verify"));
        let bad_key = anyhow::Error::new(StoreError::BadKeyFile {
            path: "k.key".into(),
        })
        .context("reading key file k.key");
        let line = error_line(&bad_key);
        assert!(
            line.contains("64 hex characters") && line.ends_with("`booster keygen --out FILE`"),
            "{line}"
        );
        let plain = anyhow::Error::new(RuntimeError::Invalid("no".into()));
        assert_eq!(error_line(&plain), "error: no");
    }
}
