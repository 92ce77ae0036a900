//! booster-runtime: jobs, sliced jobs, priority leases and output collection
//! on ractor actors over booster-store.
//!
//! API CONTRACT (skeleton). The runtime helper replaces every `todo!()` with
//! the real implementation, keeping these signatures (adding is fine;
//! changing needs the tools/bench/serve side to agree).
#![allow(dead_code, unused_variables)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use booster_store::{MasterKey, StoreStats, VerifyReport};
use serde::{Deserialize, Serialize};

pub type JobId = u64;

#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    pub data_dir: PathBuf,
    /// Worker threads. Default: available parallelism.
    pub workers: usize,
    pub master_key: Option<MasterKey>,
    /// Records per slice when a job does not say. Default 100.
    pub slice_size: usize,
    /// A lease not renewed by a heartbeat within this is expired. Default 30 s.
    pub lease_timeout: Duration,
    pub zstd_level: i32,
    /// false: open for inspection and control only (no workers run).
    pub start_workers: bool,
}

impl RuntimeOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> RuntimeOptions {
        todo!()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Scheduled,
    Queued,
    Running,
    Paused,
    Completed,
    Failed,
    Aborted,
}

/// Input is category `main` of the input; output has `main` and `errors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Input,
    Main,
    Errors,
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
}

impl JobSpec {
    pub fn simple(kind: &str, args: serde_json::Value) -> JobSpec {
        todo!()
    }
    pub fn sliced(kind: &str) -> JobSpec {
        todo!()
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
/// records_in = records_out + records_failed, where
/// records_failed = records_errors + records_in_failed_slices.
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
    pub upload_complete: bool,
    pub slices_total: u64,
    pub slices_queued: u64,
    pub slices_running: u64,
    pub slices_done: u64,
    pub slices_failed: u64,
    pub records_in: u64,
    /// Input records processed successfully.
    pub records_out: u64,
    pub records_errors: u64,
    pub records_in_failed_slices: u64,
    pub records_failed: u64,
    pub percent: f64,
    pub records_per_s: f64,
    pub eta_s: Option<f64>,
    pub leases: Vec<LeaseInfo>,
    pub errors: Vec<ErrorGroup>,
    pub failure_reason: Option<String>,
    /// Simple jobs: the handler's result.
    pub result: Option<serde_json::Value>,
    pub attempts: u32,
    pub properties: serde_json::Value,
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
}

/// Counters and latency percentiles (microseconds) for /metrics and bench.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Metrics {
    pub jobs_by_state: Vec<(JobState, u64)>,
    pub slices_processed: u64,
    pub records_processed: u64,
    pub lease_expiries: u64,
    pub commit_latency_us: Vec<(f64, u64)>,
    pub enqueue_to_start_us: Vec<(f64, u64)>,
    pub slice_processing_us: Vec<(f64, u64)>,
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
}

/// Per-record handler of a sliced job. Runs on a worker thread, never on tokio.
pub trait RecordHandler: Send + Sync + 'static {
    /// Appends this record's output records (zero or more) to `out`.
    fn process(
        &self,
        job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError>;
    /// Handles a whole slice. The default calls `process` per record (with
    /// panics caught per record); `exec` overrides it. Ok(outputs per record)
    /// or per-record errors are reported through `SliceOutcome`.
    fn process_slice(&self, job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        todo!()
    }
    fn before_batch(&self, job: &JobContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
    fn after_batch(&self, job: &JobContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// Result of processing one slice.
pub enum SliceOutcome {
    /// Output records for `main`, and (index in slice, message) per failed record.
    Done {
        output: Vec<Vec<u8>>,
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
}

/// Streams records into a sliced job, durably slice by slice.
pub struct Uploader {}

impl Uploader {
    pub async fn push(&mut self, record: Vec<u8>) -> Result<(), RuntimeError> {
        todo!()
    }
    /// Like push, remembering the record's source line for error reports.
    pub async fn push_line(&mut self, record: Vec<u8>, line: u64) -> Result<(), RuntimeError> {
        todo!()
    }
    /// A record the uploader itself could not parse (malformed CSV, bad
    /// JSON): counted in records_in and stored in `errors` with its line.
    pub async fn push_rejected(
        &mut self,
        raw: Vec<u8>,
        line: u64,
        message: String,
    ) -> Result<(), RuntimeError> {
        todo!()
    }
    /// Waits until every slice is durable and marks the upload complete.
    pub async fn finish(self) -> Result<JobStatus, RuntimeError> {
        todo!()
    }
    /// Marks the job failed with the reason (upload interrupted).
    pub async fn fail(self, reason: String) -> Result<(), RuntimeError> {
        todo!()
    }
}

/// Records of one category in input order, streamed slice by slice.
pub struct Download {}

impl Iterator for Download {
    type Item = Result<Vec<u8>, RuntimeError>;
    fn next(&mut self) -> Option<Self::Item> {
        todo!()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] booster_store::StoreError),
    #[error("job {0} not found; `booster jobs` lists the jobs")]
    NotFound(JobId),
    #[error("cannot {action} job {job}: it is {state:?}")]
    IllegalTransition {
        job: JobId,
        action: String,
        state: JobState,
    },
    #[error("priority {0} is out of range: use 1 (first) to 100 (last)")]
    BadPriority(i64),
    #[error("no handler registered for kind {0:?}")]
    UnknownKind(String),
    #[error("the runtime is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Invalid(String),
}

#[derive(Clone)]
pub struct Runtime {
    inner: Arc<()>,
}

impl Runtime {
    /// Opens the data directory, replays the store, starts the actors (and
    /// workers when `opts.start_workers`). Interrupted work resumes.
    pub async fn open(opts: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        todo!()
    }
    pub fn register_sliced(&self, kind: &str, handler: Arc<dyn RecordHandler>) {
        todo!()
    }
    pub fn register_simple(&self, kind: &str, handler: Arc<dyn SimpleHandler>) {
        todo!()
    }
    /// Durable enqueue. A sliced job is created waiting for its upload.
    pub async fn submit(&self, spec: JobSpec) -> Result<JobId, RuntimeError> {
        todo!()
    }
    /// Many jobs, one durable group commit.
    pub async fn submit_many(&self, specs: Vec<JobSpec>) -> Result<Vec<JobId>, RuntimeError> {
        todo!()
    }
    pub async fn upload(&self, job: JobId) -> Result<Uploader, RuntimeError> {
        todo!()
    }
    pub async fn job(&self, job: JobId) -> Result<JobStatus, RuntimeError> {
        todo!()
    }
    pub async fn jobs(&self, filter: JobFilter) -> Vec<JobStatus> {
        todo!()
    }
    pub async fn set_priority(&self, job: JobId, priority: i64) -> Result<(), RuntimeError> {
        todo!()
    }
    pub async fn set_max_workers(
        &self,
        job: JobId,
        max_workers: Option<u32>,
    ) -> Result<(), RuntimeError> {
        todo!()
    }
    pub async fn set_kind_limit(&self, kind: &str, max_running_jobs: Option<u32>) {
        todo!()
    }
    pub async fn pause(&self, job: JobId) -> Result<(), RuntimeError> {
        todo!()
    }
    pub async fn resume(&self, job: JobId) -> Result<(), RuntimeError> {
        todo!()
    }
    pub async fn abort(&self, job: JobId) -> Result<(), RuntimeError> {
        todo!()
    }
    /// Failed simple job: run again. Failed sliced job: re-run failed slices only.
    pub async fn retry(&self, job: JobId) -> Result<(), RuntimeError> {
        todo!()
    }
    pub async fn fail(&self, job: JobId, reason: String) -> Result<(), RuntimeError> {
        todo!()
    }
    pub async fn destroy(&self, job: JobId) -> Result<(), RuntimeError> {
        todo!()
    }
    /// Waits until the job is completed, failed or aborted.
    pub async fn wait(&self, job: JobId) -> Result<JobStatus, RuntimeError> {
        todo!()
    }
    /// Waits until nothing is runnable or running.
    pub async fn wait_idle(&self) {
        todo!()
    }
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<JobEvent> {
        todo!()
    }
    pub fn download(&self, job: JobId, category: Category) -> Result<Download, RuntimeError> {
        todo!()
    }
    pub async fn workers(&self) -> Vec<WorkerStatus> {
        todo!()
    }
    pub fn metrics(&self) -> Metrics {
        todo!()
    }
    pub fn store_stats(&self) -> StoreStats {
        todo!()
    }
    pub fn verify(&self) -> VerifyReport {
        todo!()
    }
    /// Reclaims destroyed jobs' slices and dead frames.
    pub async fn compact(&self) -> Result<booster_store::CompactionReport, RuntimeError> {
        todo!()
    }
    /// Stops taking leases, lets running slices finish (or hands their leases
    /// back after `grace`), flushes and closes the store.
    pub async fn shutdown(self, grace: Duration) -> Result<(), RuntimeError> {
        todo!()
    }
}
