//! booster-tools: the `booster` command, as a library so `booster serve`,
//! the bench harness and tests reuse its formats and built-in kinds.
//!
//! - [`formats`]: lines / CSV / JSON Lines, `.gz` / `.zst`, `-` for stdio.
//! - [`kinds`]: `copy`, `exec`, `validate-customers` (and the simple `noop`);
//!   [`kinds::register_builtin`] registers them on a runtime.
//! - [`commands`]: every subcommand; [`commands::dispatch`] runs one.
//! - [`demo`]: `booster demo`, the tour.
//!
//! ```no_run
//! use booster_tools::formats::{open_source, Format, Item, DEFAULT_MAX_RECORD_BYTES};
//! let mut input =
//!     open_source("customers.csv.gz".as_ref(), Format::Csv, DEFAULT_MAX_RECORD_BYTES).unwrap();
//! println!("columns: {:?}", input.header.as_ref().map(|h| &h.columns));
//! let mut batch = Vec::new();
//! input.records.next_batch(100, &mut batch).unwrap();
//! for item in batch {
//!     if let Item::Rejected { line, message, .. } = item {
//!         eprintln!("line {line}: {message}");
//!     }
//! }
//! ```

/// `println!` that ends the process quietly when stdout's reader went
/// away (see [`exit::out`]). Every line the command prints goes through it.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::exit::out(format_args!($($arg)*))
    };
}

pub mod cli;
pub mod commands;
pub mod demo;
pub mod dirmon;
pub mod exit;
pub mod fleet;
pub mod formats;
pub mod huge_pages;
pub mod kinds;
pub mod progress;
pub mod pump;
pub mod remote;
pub mod report;
pub mod secret_file;
pub mod serve;
