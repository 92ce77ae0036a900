//! booster-runtime: jobs, sliced jobs, priority leases and output collection
//! on ractor actors over booster-store.
//!
//! A [`Runtime`] opens a data directory, replays the job table from the
//! store's meta records and runs registered handlers on dedicated worker
//! threads, in one global priority order.
//!
//! ```no_run
//! use std::sync::Arc;
//! use booster_runtime::*;
//! # async fn demo() -> Result<(), RuntimeError> {
//! struct Upper;
//! impl RecordHandler for Upper {
//!     fn process(&self, _job: &JobContext<'_>, record: &[u8], out: &mut Vec<Vec<u8>>)
//!         -> Result<(), HandlerError> {
//!         out.push(record.to_ascii_uppercase());
//!         Ok(())
//!     }
//! }
//! let rt = Runtime::open(RuntimeOptions::new("./data")).await?;
//! rt.register_sliced("upper", Arc::new(Upper));
//! let job = rt.submit(JobSpec::sliced("upper")).await?;
//! let mut up = rt.upload(job).await?;
//! up.push(b"hello".to_vec()).await?;
//! up.finish().await?;
//! rt.wait(job).await?;
//! for record in rt.download(job, Category::Main)? {
//!     println!("{}", String::from_utf8_lossy(&record?));
//! }
//! rt.shutdown(std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

// The unit tests count what a structure holds (`booster_tests::alloc::held_bytes`).
#[cfg(test)]
#[global_allocator]
static TEST_ALLOC: booster_tests::alloc::PeakAlloc = booster_tests::alloc::PeakAlloc;

mod actors;
mod apply_sliced;
#[doc(hidden)]
pub mod bench_support;
#[cfg(test)]
mod book_model_tests;
mod category;
mod census;
mod checkpoints;
mod clock;
#[cfg(test)]
mod commit_handoff_tests;
mod compaction;
mod cron;
mod dependencies;
mod dirmon;
mod dispatch;
mod download;
#[cfg(test)]
mod epoch_tests;
mod handler;
mod id_hash;
mod job_state;
#[cfg(test)]
mod kind_index_tests;
#[cfg(test)]
mod lease_args_tests;
mod listing;
#[cfg(test)]
mod logged_tests;
mod lost;
mod meta;
mod metrics;
mod placement;
#[cfg(test)]
mod prebuild_tests;
mod read_ahead;
mod ready;
mod recovered;
mod remote;
#[cfg(test)]
mod retention_tests;
mod runtime;
mod scheduler;
mod separators;
mod shared;
mod slice_store;
mod snapshot;
#[doc(hidden)]
pub mod start_trace;
mod state;
#[cfg(test)]
mod state_tests;
mod status;
mod table;
#[cfg(test)]
mod table_model_tests;
/// The job table's on-disk codecs (rows, pages, slice maps, keys): public
/// for the decoder tests and tools that read a data directory, not a
/// stable API.
#[doc(hidden)]
pub mod table_format {
    pub use crate::table::{keys, page, row, slice_map};
}
mod transition;
mod upload;
#[cfg(test)]
mod upload_budget_tests;
#[cfg(test)]
mod urgent_hold_tests;
mod waiting;
mod window;
mod worker;

pub use category::{
    CategoryName, Output, CATEGORY_STREAM_BASE, MAX_CATEGORIES, MAX_CATEGORY_NAME_BYTES,
};
pub use census::MemoryCensus;
pub use clock::{Clock, ManualClock, SystemClock};
pub use compaction::{AUTO_COMPACT_MIN_DEAD_BYTES, MIN_DEAD_SHARE};
pub use dirmon::{
    upload_was_cut, DirmonId, DirmonSpec, DirmonView,
    DEFAULT_SETTLE_MS as DIRMON_DEFAULT_SETTLE_MS, PROPERTY as DIRMON_PROPERTY,
};
pub use download::{DependencyOutputs, Download, OutputChunk, OutputCursor, SeparatedDownload};
pub use handler::{heartbeat, lease_ended, LeaseProgress};
pub use job_state::{JobState, UnknownState};
pub use remote::{
    CommitAnswer, PackedResult, RemoteAllow, RemoteError, RemoteHello, RemoteHook, RemoteJoined,
    RemoteLease, RemoteOutcome, RemoteSession, RemoteSimpleJob, RemoteSlice, RemoteTask,
    RemoteWork, SimpleResult, SliceResult, WorkerProcess, MAX_REMOTE_THREADS,
};
pub use separators::Separators;
pub use upload::Uploader;
pub use window::ProcessingWindow;

pub use booster_store::{
    MasterKey, PackedSlice, SliceRecords, StoreMemory, StoreStats, VerifyReport,
};
use serde::{Deserialize, Serialize};

pub type JobId = u64;

#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    pub data_dir: PathBuf,
    /// Worker threads. Default: available parallelism. 0: none; a fleet
    /// node whose work remote workers lease (`Runtime::remote_join`).
    pub workers: usize,
    pub master_key: Option<MasterKey>,
    /// Records per slice when a job does not say. Default 100.
    pub slice_size: usize,
    /// The most records per slice a job may ask for: `submit` and `upload`
    /// refuse more, naming the cap. Default 100 000.
    pub max_slice_records: usize,
    /// The most bytes one slice may hold: the uploader starts a new slice
    /// before its input passes it, and a slice whose output (records plus
    /// `errors`) passes it fails alone with a message naming the cap; so
    /// does a simple job whose result (as JSON) passes it.
    /// Default 64 MiB (the store refuses frames over 256 MiB).
    pub max_slice_bytes: usize,
    /// A lease not renewed by a heartbeat within this is expired. Default 30 s.
    pub lease_timeout: Duration,
    /// When work whose lease keeps expiring gives up, for kinds without
    /// their own (`Runtime::set_lease_policy`). Default: after 3 expiries, no
    /// time limit.
    pub lease_policy: LeasePolicy,
    /// The most simple jobs one lease carries. The dispatcher sizes a batch
    /// to about 1 ms of the kind's measured run time, up to this; 1 gives
    /// every simple job a lease of its own (no batching; 0 counts as 1).
    /// Default 1000.
    pub max_lease_batch: usize,
    /// A submit whose jobs all have this priority or a higher one (a lower
    /// number) commits its `Created` record in the store's next group,
    /// ahead of the slice commits queued behind the group being written
    /// (`Batch::urgent`), so an urgent job does not wait behind a big
    /// job's backlog to exist. 0 turns the lane off. Default 10.
    pub urgent_priority: u8,
    /// A reserved lane, opt in: this many worker slots (of `workers`) take
    /// only jobs of priority `reserved_priority` or higher (a lower number),
    /// so such a job starts as soon as it exists whatever else runs, at the
    /// cost of those slots idling when there is none. Must leave at least
    /// one worker for everything else. Default 0 (no lane).
    pub reserved_workers: usize,
    /// The lowest priority the reserved lane takes. Default 10.
    pub reserved_priority: u8,
    pub zstd_level: i32,
    /// Threads the codec work (zstd, AES-GCM, CRC) of uploads and
    /// downloads runs on: the upload pool's threads, and the reader
    /// threads of a download that reads ahead (fewer than 2: a download
    /// reads on its own thread). What an upload holds in flight does not
    /// grow with it: at most 8 MiB of slices (`upload::INFLIGHT_BYTES`). Default:
    /// the cores present, at least 2; 0 counts as 1.
    pub codec_threads: usize,
    /// false: open for inspection and control only (no workers run).
    pub start_workers: bool,
    /// The timer takes checkpoints by itself (a second after rows changed,
    /// or when many did) and shutdown takes a last one, in a process that
    /// runs work and may write (a read-only open never takes one, whatever
    /// this says). Default true: finished jobs' rows then leave RAM within
    /// a second (G10). Off, every row stays in RAM until
    /// `Runtime::checkpoint` (which works either way) or a compaction.
    pub auto_checkpoint: bool,
    /// The timer compacts by itself (segment by segment, a checkpoint
    /// first, as `Runtime::compact`) when the store's dead bytes pass
    /// max(`auto_compact_min_dead_bytes`, half the store), in a process
    /// that runs work and may write (never on a read-only open). Default
    /// true; `work`/`run`/`serve --no-auto-compact` turn it off.
    pub auto_compact: bool,
    /// The fewest dead bytes a background compaction waits for. Default
    /// 1 GiB (`AUTO_COMPACT_MIN_DEAD_BYTES`); tests set it small.
    pub auto_compact_min_dead_bytes: u64,
    /// The retention periods to store at open when they differ from the
    /// stored ones (a process that runs work writes a `retention`
    /// record). None: keep what is stored (the defaults,
    /// `Retention::default`, when nothing is).
    pub retention: Option<Retention>,
    /// Where the runtime reads the time of day. Default: `SystemClock`;
    /// tests use a `ManualClock` and move it.
    pub clock: Arc<dyn Clock>,
    /// A kind or text filter reads about this many rows per
    /// `Runtime::jobs_page` call (give or take a chunk of row pages),
    /// then answers what it found with the cursor to go on from. Default
    /// `JobQuery::MAX_SCANNED_ROWS` (100 000).
    pub listing_rows_per_call: u64,
}

impl RuntimeOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> RuntimeOptions {
        RuntimeOptions {
            data_dir: data_dir.into(),
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            master_key: None,
            slice_size: 100,
            max_slice_records: 100_000,
            max_slice_bytes: 64 << 20,
            lease_timeout: Duration::from_secs(30),
            lease_policy: LeasePolicy::default(),
            max_lease_batch: crate::dispatch::SIMPLE_BATCH_MAX,
            urgent_priority: 10,
            reserved_workers: 0,
            reserved_priority: 10,
            zstd_level: 1,
            codec_threads: crate::upload::codec_threads(),
            start_workers: true,
            auto_checkpoint: true,
            auto_compact: true,
            auto_compact_min_dead_bytes: AUTO_COMPACT_MIN_DEAD_BYTES,
            retention: None,
            clock: Arc::new(SystemClock),
            listing_rows_per_call: JobQuery::MAX_SCANNED_ROWS,
        }
    }
}

/// Input is category `main` of the input; output has `main`, `errors` and
/// the categories the job declared (`JobSpec::with_categories`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Input,
    Main,
    Errors,
    /// One of the job's own categories.
    Named(CategoryName),
}

impl Category {
    /// `input`, `main`, `errors` or a category's name.
    pub fn parse(name: &str) -> Result<Category, RuntimeError> {
        match name {
            "input" => Ok(Category::Input),
            "main" => Ok(Category::Main),
            "errors" => Ok(Category::Errors),
            other => CategoryName::new(other).map(Category::Named),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Category::Input => "input",
            Category::Main => "main",
            Category::Errors => "errors",
            Category::Named(n) => n.as_str(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum JobShape {
    /// Arguments in, an optional result out.
    Simple { args: serde_json::Value },
    /// Records uploaded after `submit`, processed per record.
    Sliced {
        /// None: the runtime's default slice size.
        slice_size: Option<usize>,
        /// true: a failing record goes to `errors` and its slice completes.
        collect_errors: bool,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobSpec {
    pub kind: String,
    pub shape: JobShape,
    /// 1..=100, 1 runs first. Default 50.
    pub priority: u8,
    pub description: String,
    /// Sliced jobs: how many slices may run at once. None: no limit.
    pub max_workers: Option<u32>,
    pub run_at: Option<SystemTime>,
    pub expires_at: Option<SystemTime>,
    /// Free-form settings the handler reads (exec's command, CSV header, ...).
    pub properties: serde_json::Value,
    /// Sliced jobs: output categories beyond `main` and `errors`, fixed
    /// when the job is created (see `with_categories`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// At most one unfinished job (scheduled, queued, running or paused)
    /// holds this key: a submit while another does is refused, naming it
    /// (see `with_singleton`). None: not a singleton.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singleton: Option<String>,
    /// Set by the runtime on the runs of a cron entry (`Runtime::add_cron`):
    /// the entry and the tick this run is for. `submit` refuses a spec
    /// that sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronRun>,
    /// Jobs that must complete before this one runs: until then it is
    /// `waiting` (see `with_after`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<JobId>,
    /// What happens when a job in `after` fails, is aborted or destroyed.
    #[serde(default)]
    pub on_dependency_failure: DependencyFailure,
    /// The job starts work only inside this window of the day (beside its
    /// kind's, if the kind has one): outside it no new lease of it starts
    /// and its running slices finish (see `with_window`). None: any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<ProcessingWindow>,
    /// Some(true): destroyed by the record that completes it (its
    /// tombstone stays for the retention period); Some(false): kept
    /// whatever its kind says; None: as its kind says
    /// (`KindSettings::destroy_on_complete`, off by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy_on_complete: Option<bool>,
}

/// What a dependent job does when a job it waits for fails, is aborted or
/// is destroyed before completing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyFailure {
    /// It fails too, naming the dependency (the default).
    #[default]
    Fail,
    /// It is aborted.
    Abort,
    /// It runs anyway, once every dependency has finished.
    Run,
}

impl std::str::FromStr for DependencyFailure {
    type Err = String;
    fn from_str(s: &str) -> Result<DependencyFailure, String> {
        match s {
            "fail" => Ok(DependencyFailure::Fail),
            "abort" => Ok(DependencyFailure::Abort),
            "run" => Ok(DependencyFailure::Run),
            _ => Err(format!(
                "{s:?} is no dependency-failure policy; use fail, abort or run"
            )),
        }
    }
}

/// The cron entry and tick a job is the run of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRun {
    pub cron: CronId,
    /// The tick, in milliseconds since the Unix epoch.
    pub tick_ms: u64,
}

/// A cron entry's id (`Runtime::add_cron`); never reused.
pub type CronId = u64;

/// A cron entry: every tick of `expr` in `tz`, one run of `job` (a
/// simple job) with a new id; the next run is made once the last one has
/// finished. See `Runtime::add_cron`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CronSpec {
    /// A standard 5-field cron expression (`*/5 * * * *`), or 6 fields
    /// with seconds first (`*/10 * * * * *`).
    pub expr: String,
    /// An IANA time zone (`Europe/Berlin`) the expression is read in.
    /// None: UTC.
    pub tz: Option<String>,
    /// The template of every run (`JobSpec::simple`).
    pub job: JobSpec,
}

/// A cron entry as it stands (`Runtime::crons`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronView {
    pub id: CronId,
    pub expr: String,
    pub tz: Option<String>,
    pub kind: String,
    pub description: String,
    pub paused: bool,
    /// The tick of the latest run (ms since the epoch), if any ran.
    pub last_tick_ms: Option<u64>,
    /// The tick the next run is for (ms since the epoch): the first one
    /// after the last run's (a catch-up run takes the latest passed one).
    pub next_tick_ms: Option<u64>,
    /// The run that has not finished yet, if any: the next waits for it.
    pub running: Option<JobId>,
    /// The runs' own processing window (the template's `JobSpec::window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<ProcessingWindow>,
}

impl JobSpec {
    pub fn simple(kind: &str, args: serde_json::Value) -> JobSpec {
        JobSpec {
            kind: kind.to_string(),
            shape: JobShape::Simple { args },
            priority: 50,
            description: String::new(),
            max_workers: None,
            run_at: None,
            expires_at: None,
            properties: serde_json::Value::Null,
            categories: Vec::new(),
            singleton: None,
            cron: None,
            after: Vec::new(),
            on_dependency_failure: DependencyFailure::Fail,
            window: None,
            destroy_on_complete: None,
        }
    }
    pub fn sliced(kind: &str) -> JobSpec {
        JobSpec {
            kind: kind.to_string(),
            shape: JobShape::Sliced {
                slice_size: None,
                collect_errors: false,
            },
            priority: 50,
            description: String::new(),
            max_workers: None,
            run_at: None,
            expires_at: None,
            properties: serde_json::Value::Null,
            categories: Vec::new(),
            singleton: None,
            cron: None,
            after: Vec::new(),
            on_dependency_failure: DependencyFailure::Fail,
            window: None,
            destroy_on_complete: None,
        }
    }
    /// A singleton: while a job with this key has not finished, submitting
    /// another with it is refused (checked atomically with the submit).
    /// Rocket Job's singleton is the kind: pass the kind's name.
    pub fn with_singleton(mut self, key: &str) -> JobSpec {
        self.singleton = Some(key.to_string());
        self
    }
    /// Runs only once every job in `jobs` has completed; until then the
    /// job is `waiting`. `policy` says what happens if one fails instead.
    pub fn with_after(mut self, jobs: &[JobId], policy: DependencyFailure) -> JobSpec {
        self.after = jobs.to_vec();
        self.on_dependency_failure = policy;
        self
    }
    /// Runs only inside `window` (`ProcessingWindow::parse("22:00-06:00",
    /// Some("Europe/Berlin"))`): outside it no new lease of the job
    /// starts, and slices already running finish.
    pub fn with_window(mut self, window: ProcessingWindow) -> JobSpec {
        self.window = Some(window);
        self
    }
    /// Sets the priority (1 first .. 100 last).
    pub fn with_priority(mut self, priority: u8) -> JobSpec {
        self.priority = priority;
        self
    }
    /// Sliced jobs: collect failing records into `errors` instead of failing the slice.
    pub fn with_collect_errors(mut self, collect_errors: bool) -> JobSpec {
        if let JobShape::Sliced {
            collect_errors: c, ..
        } = &mut self.shape
        {
            *c = collect_errors;
        }
        self
    }
    /// Sliced jobs: output categories beyond `main` and `errors` that the
    /// handler may emit to (`Output::emit`), each downloaded on its own
    /// (`Category::Named`). Names are 1 to 32 characters of a-z, 0-9, `_`
    /// and `-`, not `main`, `errors` or `input`; `submit` refuses others.
    pub fn with_categories<S: AsRef<str>>(mut self, names: &[S]) -> JobSpec {
        self.categories = names.iter().map(|n| n.as_ref().to_string()).collect();
        self
    }
    /// Sliced jobs: records per slice.
    pub fn with_slice_size(mut self, records: usize) -> JobSpec {
        if let JobShape::Sliced { slice_size, .. } = &mut self.shape {
            *slice_size = Some(records);
        }
        self
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub worker: usize,
    pub job: JobId,
    /// None for a lease on simple jobs.
    pub slice: Option<u64>,
    pub epoch: u64,
    pub since: SystemTime,
    pub deadline: SystemTime,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordErrorSample {
    pub slice: u64,
    /// 1-based number of the record in upload order.
    pub record_number: u64,
    /// The source line, where the uploader gave one.
    pub line: Option<u64>,
    pub record: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorGroup {
    pub message: String,
    pub count: u64,
    pub samples: Vec<RecordErrorSample>,
}

/// Counts reconcile once a job is done:
/// Something recovery did to the data directory's files, or found damaged
/// in them, on one open (G7), kept in the meta log so it outlives the
/// stderr line: `Runtime::incidents`, `booster incidents`, `GET
/// /api/incidents`. A damaged range is logged once, by the first process
/// that runs work after it was found (it stays until the segment is
/// restored); a torn tail by the open that cut it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub at: SystemTime,
    pub segment: u64,
    /// The segment's file name in the data directory.
    pub file: String,
    pub offset: u64,
    pub kind: IncidentKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// A write that was never acknowledged, cut at `offset`.
    TornTail { bytes: u64 },
    /// Bytes `offset..end` could not be read (`what`); `jobs` are those
    /// whose slices (or, with `meta_lost`, whose records) they held.
    /// `next_id`: the id the book would hand out next when it was logged
    /// (ids only grow, so the jobs created by then are those below it);
    /// None in records written before it was kept.
    Damaged {
        end: u64,
        what: String,
        jobs: Vec<JobId>,
        meta_lost: bool,
        next_id: Option<JobId>,
    },
}

/// records_in = records_processed + records_failed, where
/// records_failed = records_errors + records_in_failed_slices.
/// `records_out` is what the handlers wrote, which a filter or a splitter
/// makes differ from `records_processed`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: JobId,
    pub kind: String,
    pub description: String,
    pub state: JobState,
    pub priority: u8,
    pub max_workers: Option<u32>,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub completed_at: Option<SystemTime>,
    pub run_at: Option<SystemTime>,
    pub expires_at: Option<SystemTime>,
    /// A simple job: it has no slices or records, and its handler's
    /// outcome is `result`.
    #[serde(default)]
    pub simple: bool,
    pub upload_complete: bool,
    pub slices_total: u64,
    pub slices_queued: u64,
    pub slices_running: u64,
    pub slices_done: u64,
    pub slices_failed: u64,
    pub records_in: u64,
    /// Records the handlers wrote to the output (`main`).
    pub records_out: u64,
    /// Records the handlers wrote to each of the job's own categories
    /// (every declared category, 0 until written to).
    #[serde(default)]
    pub records_out_by_category: BTreeMap<String, u64>,
    /// Input records processed successfully.
    #[serde(default)]
    pub records_processed: u64,
    pub records_errors: u64,
    pub records_in_failed_slices: u64,
    pub records_failed: u64,
    pub percent: f64,
    pub records_per_s: f64,
    pub eta_s: Option<f64>,
    pub leases: Vec<LeaseInfo>,
    pub errors: Vec<ErrorGroup>,
    pub failure_reason: Option<String>,
    /// Why a queued or running job is not running here: its handler
    /// declined it (`refuses`), no handler for its kind is registered in
    /// this process, its upload has not finished, or its own or its kind's
    /// processing window is closed (naming the next opening). None otherwise.
    #[serde(default)]
    pub waiting_reason: Option<String>,
    /// Damaged store ranges that held this job's slices (segment, offsets,
    /// what was lost), found when the store opened degraded. Empty when its
    /// data is intact. `booster verify` names the same ranges.
    #[serde(default)]
    pub damage: Vec<String>,
    /// The cron entry and tick this job is the run of.
    pub cron: Option<CronRun>,
    /// The job's own processing window (`JobSpec::window`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<ProcessingWindow>,
    /// The singleton key the job holds while unfinished (`JobSpec::singleton`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singleton: Option<String>,
    /// Jobs that must complete before this one runs (`JobSpec::after`),
    /// and what it does if one does not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<JobId>,
    #[serde(default)]
    pub on_dependency_failure: DependencyFailure,
    /// Simple jobs: the handler's result.
    pub result: Option<serde_json::Value>,
    pub attempts: u32,
    pub properties: serde_json::Value,
    /// The control actions allowed now ("pause", "resume", "abort",
    /// "retry", "fail", "destroy"), from the state machine's table
    /// (`transition.rs`), so a client never guesses what will be refused.
    #[serde(default)]
    pub allowed_actions: Vec<String>,
}

/// One newest-first page asked of `Runtime::jobs_page`: the newest
/// `limit` jobs matching `filter` with an id below `before` (all ids when
/// None).
#[derive(Clone, Debug)]
pub struct JobQuery {
    pub filter: JobFilter,
    pub before: Option<JobId>,
    pub limit: usize,
}

impl JobQuery {
    /// The page size when the caller names none.
    pub const DEFAULT_LIMIT: usize = 100;
    /// The largest page the API and the CLI ask for.
    pub const MAX_LIMIT: usize = 1000;
    /// A kind or text filter reads at most this many rows per call, then
    /// answers what it found with the `next_before` to go on from.
    pub const MAX_SCANNED_ROWS: u64 = 100_000;

    /// The newest `DEFAULT_LIMIT` jobs matching `filter`.
    pub fn newest(filter: JobFilter) -> JobQuery {
        JobQuery {
            filter,
            before: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// One page of `Runtime::jobs_page`: jobs in id order (the page is the
/// newest below its cursor), how many match the filter in all, and the
/// `before` of the next (older) page.
#[derive(Clone, Debug, Default)]
pub struct JobsPage {
    pub jobs: Vec<JobStatus>,
    /// Exact for a state filter or none (the book's counts); None with a
    /// kind or text filter, which would need a read of every row.
    pub total: Option<u64>,
    /// None on the last page. With a kind or text filter the page may hold
    /// fewer than `limit` jobs and still have one: the call stopped after
    /// `JobQuery::MAX_SCANNED_ROWS` rows.
    pub next_before: Option<JobId>,
    /// Row slots the call looked at: matching or not, tombstones
    /// included (the work a kind or text filter's budget counts).
    pub scanned_rows: u64,
}

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// Substring of description or kind.
    pub text: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobEvent {
    pub job: JobId,
    pub state: JobState,
    pub slices_done: u64,
    pub slices_total: u64,
    pub records_out: u64,
    pub percent: f64,
    /// e.g. "created", "upload_complete", "slice_done", "state", "priority".
    pub what: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub worker: usize,
    pub lease: Option<LeaseInfo>,
    pub slices_done: u64,
    pub restarts: u32,
    /// A remote worker process's thread: where it runs and when the node
    /// last heard from it. None: a thread of this process.
    #[serde(default)]
    pub remote: Option<RemoteWorkerInfo>,
}

/// The remote process a worker slot belongs to (`Runtime::remote_join`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteWorkerInfo {
    pub worker: u64,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub kinds: Vec<String>,
    pub joined: SystemTime,
    pub last_seen: SystemTime,
}

/// Counters and latency percentiles (microseconds) for /metrics and bench.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Metrics {
    pub jobs_by_state: Vec<(JobState, u64)>,
    pub slices_processed: u64,
    pub records_processed: u64,
    pub lease_expiries: u64,
    /// Late commits rejected because their lease had expired or been revoked.
    pub commits_fenced: u64,
    /// Worker threads replaced after a panic or a hung handler.
    pub worker_restarts: u64,
    /// Jobs that completed, and that failed, since this process opened
    /// the store (not on replay).
    #[serde(default)]
    pub jobs_completed: u64,
    #[serde(default)]
    pub jobs_failed: u64,
    /// Records that ended in errors (rejected at upload, failed by the
    /// handler, or in a failed slice) since this process opened the store.
    #[serde(default)]
    pub records_failed: u64,
    /// Checkpoints this process tried and could not write (automatic or
    /// asked for).
    #[serde(default)]
    pub checkpoint_failures: u64,
    /// Why automatic checkpoints are failing or paused, while they are:
    /// finished rows stay in RAM and the meta log grows meanwhile
    /// (ARCHITECTURE.md, "3.3 Automatic checkpoints").
    #[serde(default)]
    pub checkpoints_paused: Option<String>,
    /// Background compaction is on (`RuntimeOptions::auto_compact`, in a
    /// process that runs work and may write).
    #[serde(default)]
    pub auto_compact: bool,
    /// Background compactions finished, and failed, since start.
    #[serde(default)]
    pub auto_compactions: u64,
    #[serde(default)]
    pub auto_compaction_failures: u64,
    /// Where the checkpoints this process wrote spent their time.
    #[serde(default)]
    pub checkpoint_times: CheckpointTimes,
    pub commit_latency_us: Vec<(f64, u64)>,
    pub enqueue_to_start_us: Vec<(f64, u64)>,
    pub slice_processing_us: Vec<(f64, u64)>,
}

/// Where automatic and asked-for checkpoints spent their time, summed
/// over the checkpoints this process enqueued (microseconds): what the
/// bench prints to say what a checkpoint costs the commits beside it
/// (ARCHITECTURE.md, "3.4 The checkpoint off the state lock").
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CheckpointTimes {
    /// Checkpoints enqueued.
    pub taken: u64,
    /// Building pages from a snapshot of the changed rows, holding
    /// neither the state lock nor the append gate.
    pub prebuild_us: u64,
    /// The append gate held exclusively (appends wait), from taking it to
    /// releasing it: the wait for commits in flight included.
    pub gate_us: u64,
    /// Of `gate_us`, waiting for the commits in flight to be applied.
    pub drain_us: u64,
    /// The state lock held by the checkpoint (applies, submits, leases
    /// wait), the snapshot's and the seal's together.
    pub lock_us: u64,
    /// Of `gate_us`, the store compressing and encrypting the batch on
    /// the checkpoint's thread (`Store::append_with`).
    pub enqueue_us: u64,
    /// Row pages built from the snapshot, and those built (again, or
    /// first) under the gate and lock.
    pub pages_prebuilt: u64,
    pub pages_sealed: u64,
    /// Of `pages_sealed`, those read from the store under the gate and
    /// lock; the others were merged over their pre-built page, only the
    /// rows changed since the snapshot merged again.
    #[serde(default)]
    pub pages_sealed_read: u64,
}

/// A record a handler could not process.
#[derive(Clone, Debug)]
pub struct HandlerError(pub String);

impl<E: std::fmt::Display> From<E> for HandlerError {
    fn from(e: E) -> Self {
        HandlerError(e.to_string())
    }
}

/// What a handler can see of its job.
pub struct JobContext<'a> {
    pub id: JobId,
    pub kind: &'a str,
    pub properties: &'a serde_json::Value,
    /// The job's own output categories (`JobSpec::with_categories`).
    pub categories: &'a [String],
    /// Where the outputs of the jobs this one ran after are read
    /// (`after_output`); None outside a worker (`JobContext::new`).
    pub(crate) source: Option<download::Dependencies<'a>>,
}

impl<'a> JobContext<'a> {
    /// A context outside any worker (a handler's own tests): it has no
    /// dependencies to read.
    pub fn new(
        id: JobId,
        kind: &'a str,
        properties: &'a serde_json::Value,
        categories: &'a [String],
    ) -> JobContext<'a> {
        JobContext {
            id,
            kind,
            properties,
            categories,
            source: None,
        }
    }

    /// A context whose job's dependencies are read through `outputs`: a
    /// handler that runs away from the node's store (a remote worker,
    /// `booster_client`) reads them as a node's own thread does.
    pub fn with_dependencies(mut self, outputs: &'a dyn DependencyOutputs) -> JobContext<'a> {
        self.source = Some(download::Dependencies::Elsewhere(outputs));
        self
    }

    /// The jobs this one ran after (`JobSpec::after`), in the order given.
    pub fn after(&self) -> Vec<JobId> {
        self.source.map_or_else(Vec::new, |s| s.after(self.id))
    }

    /// One category of dependency `dep`'s records, in input order, as
    /// `Runtime::download` gives them: how a job submitted with `after`
    /// reads what the jobs it waited for wrote. Only this job's own
    /// dependencies can be read. A dependency that failed (under
    /// `DependencyFailure::Run`) gives what it wrote; one destroyed since
    /// is `NotFound`.
    pub fn after_output(&self, dep: JobId, category: Category) -> Result<Download, RuntimeError> {
        let Some(source) = self.source else {
            return Err(RuntimeError::Invalid(
                "this context is not a running job's: it has no dependencies to read".into(),
            ));
        };
        if !source.after(self.id).contains(&dep) {
            return Err(RuntimeError::Invalid(format!(
                "job {} did not run after job {dep}; a handler reads only the jobs in its own `after`",
                self.id
            )));
        }
        source.open(self.id, dep, category)
    }
}

/// Per-record handler of a sliced job. Runs on a worker thread, never on tokio.
pub trait RecordHandler: Send + Sync + 'static {
    /// Appends this record's output records (zero or more) to `out`
    /// (`main`). Implement this, or `process_to` to write categories.
    fn process(
        &self,
        _job: &JobContext<'_>,
        _record: &[u8],
        _out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        Err(HandlerError(
            "this handler implements neither RecordHandler::process nor process_to".into(),
        ))
    }
    /// Writes this record's output to `main` (`out.push`) and to the job's
    /// categories (`out.emit("review", record)`). The default calls
    /// `process` with `main`.
    fn process_to(
        &self,
        job: &JobContext<'_>,
        record: &[u8],
        out: &mut Output,
    ) -> Result<(), HandlerError> {
        self.process(job, record, &mut out.main)
    }
    /// Handles a whole slice. The default calls `process` per record (with
    /// panics caught per record); `exec` overrides it. Ok(outputs per record)
    /// or per-record errors are reported through `SliceOutcome`.
    fn process_slice(&self, job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        handler::process_per_record(self, job, records)
    }
    fn before_batch(&self, _job: &JobContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
    fn after_batch(&self, _job: &JobContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
    /// Some(reason): this process declines to run `job` (e.g. a command
    /// its operator did not allow). The job is not leased here, never blocks
    /// the jobs behind it, and `JobStatus::waiting_reason` shows the reason.
    /// Asked when the job is created or restored and when the handler is
    /// registered, under the runtime's state lock: keep it cheap, and never
    /// call the runtime from it. Default: None (runs every job).
    fn refuses(&self, _job: &JobContext<'_>) -> Option<String> {
        None
    }
}

/// Result of processing one slice.
pub enum SliceOutcome {
    /// Output records for `main`, and (index in slice, message) per failed record.
    Done {
        output: Vec<Vec<u8>>,
        record_errors: Vec<(usize, String)>,
    },
    /// Output records for `main` and the job's categories (see `Output`),
    /// and (index in slice, message) per failed record.
    Categorized {
        output: Output,
        record_errors: Vec<(usize, String)>,
    },
    /// The whole slice failed (e.g. exec's command exited non-zero).
    Failed { message: String },
}

pub trait SimpleHandler: Send + Sync + 'static {
    fn perform(
        &self,
        job: &JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, HandlerError>;
    /// Some(reason): this process declines to run `job`; see
    /// `RecordHandler::refuses`. Default: None (runs every job).
    fn refuses(&self, _job: &JobContext<'_>) -> Option<String> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] booster_store::StoreError),
    /// No job by this id now; `Missing` says what became of it (a
    /// destroyed job's tombstone, an id whose row its retention removed,
    /// or an id no job ever had).
    #[error("job {0} {1}")]
    NotFound(JobId, Missing),
    /// A cron or dirmon entry that does not exist (the message names it
    /// and the command that lists them).
    #[error("{0}")]
    EntryNotFound(String),
    #[error("cannot {action} job {job}: it is {}", state.as_str())]
    IllegalTransition {
        job: JobId,
        action: String,
        state: JobState,
    },
    /// A singleton's key is held by an unfinished job (`JobSpec::singleton`).
    #[error("singleton {key:?} is held by job {job}, which has not finished; it must finish (or be aborted) first")]
    SingletonHeld { key: String, job: JobId },
    #[error("priority {0} is out of range: use 1 (first) to 100 (last)")]
    BadPriority(i64),
    #[error("no handler registered for kind {0:?}")]
    UnknownKind(String),
    #[error("the runtime is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Invalid(String),
    /// A meta record holds a value no run of the runtime writes (an id or a
    /// counter that would wrap): the log was damaged or tampered with.
    #[error("corrupt meta record: {0}; restore the data directory from a backup")]
    Corrupt(String),
}

/// Why no job answers to an id (`RuntimeError::NotFound`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// No job ever had it: it is at or above the next id (ids are never
    /// reused).
    Never,
    /// Destroyed at `at` while in `state`; its tombstone stays for the
    /// retention period of that state (`Retention::period_ms`).
    Destroyed { state: JobState, at: SystemTime },
    /// Below the next id with no row: removed after its retention period
    /// (or destroyed before tombstones were kept, or a cron run never made).
    Removed,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Never => write!(f, "not found: no job ever had this id"),
            Missing::Destroyed { state, at } => write!(
                f,
                "not found: it was {}, then destroyed at {}",
                state.as_str(),
                clock::rfc3339(*at)
            ),
            Missing::Removed => write!(f, "not found: it was removed after its retention period"),
        }
    }
}

/// How long finished jobs stay in the table, per final state, before the
/// retention sweep removes them (a destroyed job's tombstone stays as long
/// as a job of its state would). Stored: `Runtime::set_retention`,
/// `booster retention`, `PUT /api/settings/retention`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub completed_ms: u64,
    pub aborted_ms: u64,
    pub failed_ms: u64,
}

impl Default for Retention {
    /// Completed and aborted jobs 7 days, failed ones 30 days.
    fn default() -> Self {
        const DAY_MS: u64 = 24 * 3600 * 1000;
        Retention {
            completed_ms: 7 * DAY_MS,
            aborted_ms: 7 * DAY_MS,
            failed_ms: 30 * DAY_MS,
        }
    }
}

impl Retention {
    /// The period of a job that finished (or was destroyed) in `state`:
    /// an unfinished job that was destroyed counts as aborted.
    pub fn period_ms(&self, state: JobState) -> u64 {
        match state {
            JobState::Completed => self.completed_ms,
            JobState::Failed => self.failed_ms,
            _ => self.aborted_ms,
        }
    }
}

/// A kind's settings as stored (`Runtime::store_kind_settings`, `booster
/// kind`, `PUT /api/kinds/{kind}`): they outlive the process, and while
/// stored they win over what a process set in code (`set_kind_limit`,
/// `set_retry_policy`, `set_lease_policy`) for that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindSettings {
    /// At most this many jobs of the kind run at once; 0 pauses the kind
    /// (none starts); None: no limit.
    pub max_running: Option<u32>,
    pub retry: RetryPolicy,
    /// None: the runtime's default (`RuntimeOptions::lease_policy`).
    pub lease: Option<LeasePolicy>,
    /// The kind starts work only inside this window of the day (`window.rs`);
    /// None: at any time. Absent from older logs and API bodies: None.
    #[serde(default)]
    pub window: Option<ProcessingWindow>,
    /// A job of the kind that completes is destroyed by the record that
    /// completes it, unless the job says otherwise
    /// (`JobSpec::destroy_on_complete`). Absent from older logs and API
    /// bodies: false.
    #[serde(default)]
    pub destroy_on_complete: bool,
}

/// A kind's settings: what is stored, if anything, and what applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindView {
    pub kind: String,
    /// A handler for the kind is registered in this process.
    pub registered: bool,
    pub stored: Option<KindSettings>,
    /// What applies now: the stored settings, else this process's.
    pub effective: KindSettings,
}

/// Retry policy of a kind: how often a failed simple job, or a failed slice
/// of a sliced job, runs again automatically, and how long it waits
/// (doubling each attempt, plus a random share of up to `jitter_percent`
/// of the wait, so work that failed together does not retry together).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff_base_ms: u64,
    /// 0 to 100: each wait is longer by a random 0 to this share of it.
    /// Absent from older logs and API bodies: 0.
    #[serde(default)]
    pub jitter_percent: u8,
}

impl RetryPolicy {
    /// When work that failed after `retries` automatic retries runs again
    /// (the first wait `backoff_base_ms`, doubling, each longer by
    /// `draw` (0 to 1, a random draw: `random_draw()`) times
    /// `jitter_percent` of it), or None when the policy allows no more.
    /// The time is computed where the work failed and carried in the
    /// record, so replay never draws.
    pub fn retry_at_ms(&self, retries: u32, now_ms: u64, draw: f64) -> Option<u64> {
        (retries < self.max_retries).then(|| {
            let factor = 1u64 << retries.min(20);
            let wait = self.backoff_base_ms.saturating_mul(factor);
            let share = f64::from(self.jitter_percent.min(100)) / 100.0 * draw.clamp(0.0, 1.0);
            let jitter = (wait as f64 * share) as u64;
            now_ms.saturating_add(wait).saturating_add(jitter)
        })
    }
}

/// A uniform draw in [0, 1) for `RetryPolicy::retry_at_ms`, from the
/// operating system's random source.
pub fn random_draw() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        return 0.0;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 0,
            backoff_base_ms: 1000,
            jitter_percent: 0,
        }
    }
}

/// When a kind's work gives up on leases that keep expiring (G4: no hung
/// work). A slice (or a simple job, or a before/after hook) whose lease
/// expired `max_expiries` times fails with "hung: lease expired N times"
/// instead of being leased again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasePolicy {
    /// At least 1. Default 3.
    pub max_expiries: u32,
    /// Bounds one lease even while heartbeats arrive: past it the lease
    /// expires (and counts as one expiry). Default None: heartbeats keep a
    /// working handler alive for as long as it needs.
    pub timeout: Option<Duration>,
}

impl Default for LeasePolicy {
    fn default() -> Self {
        LeasePolicy {
            max_expiries: 3,
            timeout: None,
        }
    }
}

/// The embedding handle: cheap to clone; every clone drives the same runtime.
/// Dropping the last clone without `shutdown` stops the workers without
/// waiting for anything (like a crash: acknowledged work is safe, leased
/// slices run again on the next open).
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<runtime::Handle>,
}
