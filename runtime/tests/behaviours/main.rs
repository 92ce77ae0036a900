//! Behaviour tests of booster-runtime on a real store in a temp directory.
//! Each test names one behaviour; none asserts on wall-clock time.

mod categories;
mod checkpoint;
mod common;
mod compaction;
mod cpu_spin;
mod cron;
mod degraded;
mod dependencies;
mod dirmon;
mod downloads;
mod hostile_log;
mod kind_ids;
mod lease_expiry;
mod limits;
mod max_workers;
mod panics;
mod placement;
mod priority;
mod read_only;
mod record_errors;
mod recovery;
mod remote;
mod retry;
mod row_page_fixture;
mod separators;
mod singleton;
mod transitions;
mod waiting;
mod windows;
