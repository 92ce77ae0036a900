//! The meta log's wire types, version 1: the exact shape of every record on
//! disk (format byte `J`, then the JSON of [`Record`]). They are their own
//! types, converted to and from the runtime's records (`Meta`), so renaming
//! a field of the public `JobSpec` or of an internal row (`Job`) can never
//! change the format. Rules for changing them:
//!
//! - A new optional field (`#[serde(default)]`, skipped when None) may be
//!   added: old records decode without it, and the reader says what its
//!   absence means (as `at_ms` of `upload_complete`).
//! - Anything else (a rename, a removed field, a new meaning) is a new
//!   format byte with its own module beside this one; `J` records keep
//!   decoding through this one forever (tests/fixtures/jobs-v1).
//!
//! `meta::tests::every_record_type_keeps_its_v1_spelling` pins the spelling.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::JobId;

/// `From<&Meta> for Record` and `From<Record> for Meta`, and the same for
/// every part.
mod convert;
pub(crate) use convert::{failures_from_json, failures_to_json, groups_from_json, groups_to_json};

#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    Created {
        first_id: JobId,
        at_ms: u64,
        specs: Vec<Spec>,
    },
    Uploaded {
        job: JobId,
        slice: u64,
        first_record: u64,
        records: u32,
        rejects: u32,
        line_first: Option<u64>,
        lines: Option<Vec<u64>>,
        numbers: Option<Vec<u64>>,
        reject_errors: Vec<Group>,
    },
    UploadComplete {
        job: JobId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<u64>,
    },
    UploadFailed {
        job: JobId,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<u64>,
    },
    BeforeDone {
        job: JobId,
        at_ms: u64,
    },
    SliceDone {
        job: JobId,
        slice: u64,
        at_ms: u64,
        errors: u32,
        error_groups: Vec<Group>,
        /// Records the handler wrote to `main`; absent in records from
        /// before it was counted (then: the records processed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        written: Option<u64>,
        /// Records written to each of the job's own categories, by name;
        /// absent when none (and in records from before categories).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        written_by_category: BTreeMap<String, u64>,
    },
    SliceFailed {
        job: JobId,
        slice: u64,
        at_ms: u64,
        message: String,
        sample: Option<Sample>,
        /// Added 2026-11-29 (sliced auto-retry); absent: the slice failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at_ms: Option<u64>,
    },
    AfterDone {
        job: JobId,
        at_ms: u64,
    },
    HookFailed {
        job: JobId,
        at_ms: u64,
        message: String,
    },
    SimpleDone {
        at_ms: u64,
        /// `at_ms` in microseconds; absent before 2026-11-29.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_us: Option<u64>,
        outcomes: Vec<Outcome>,
    },
    Control {
        job: JobId,
        at_ms: u64,
        action: Action,
    },
    Priority {
        job: JobId,
        priority: u8,
    },
    MaxWorkers {
        job: JobId,
        max_workers: Option<u32>,
    },
    Restore {
        job: Box<Row>,
    },
    NextId {
        next: JobId,
    },
    /// Added 2026-11-29 (issue 12, step 3); older logs have none and
    /// replay whole.
    Checkpoint {
        table_version: u32,
        seq: u64,
        next_id: JobId,
        generation: u64,
        log_ms: u64,
        counts: Vec<u64>,
        /// Added 2026-11-30 (the kind index); older checkpoints have none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind_counts: Option<Vec<(u32, Vec<u64>)>>,
        records: u32,
    },
    /// Added 2026-11-29; older logs have none (generation 0).
    Opened {
        generation: u64,
        at_ms: u64,
    },
    /// Added 2026-11-29; older logs have none (expiry counts started at 0
    /// in every process).
    LeaseExpired {
        at_ms: u64,
        work: ExpiredWork,
    },
    /// Added 2026-11-29; older logs have none.
    Recovered {
        at_ms: u64,
        incidents: Vec<IncidentV1>,
    },
    /// Added 2026-11-29; older logs have none (settings lived in code).
    KindSettings {
        kind: String,
        at_ms: u64,
        settings: Option<KindSettingsV1>,
    },
    /// Added 2026-11-29 (kind ids, issue 12); older logs have none: each
    /// kind gets its id at its first `created` or `restore`, in log order.
    KindId {
        id: u32,
        name: String,
    },
    /// Added 2026-11-29; older logs have none (no cron entries).
    Cron {
        cron: u64,
        at_ms: u64,
        change: Box<CronChangeV1>,
    },
    /// Added 2026-11-29; older logs have none (no dirmon entries).
    Dirmon {
        dirmon: u64,
        at_ms: u64,
        change: Box<DirmonChangeV1>,
    },
    /// Added 2026-11-30 (retention, issue 12 step 6); older logs have
    /// none (the defaults: 7, 7 and 30 days).
    Retention {
        at_ms: u64,
        completed_ms: u64,
        aborted_ms: u64,
        failed_ms: u64,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirmonChangeV1 {
    Define {
        pattern: String,
        archive: String,
        settle_ms: u64,
        options: Vec<String>,
        /// Written by compaction snapshots; absent: false.
        #[serde(default, skip_serializing_if = "is_false")]
        paused: bool,
    },
    Pause,
    Resume,
    Remove,
    Taken {
        file: String,
        job: u64,
    },
    Archived {
        file: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CronChangeV1 {
    Define {
        expr: String,
        tz: Option<String>,
        spec: Box<Spec>,
        /// Written by compaction snapshots; absent: false.
        #[serde(default, skip_serializing_if = "is_false")]
        paused: bool,
        /// Written by compaction snapshots; absent: no run yet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_tick_ms: Option<u64>,
    },
    Pause,
    Resume,
    Remove,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The cron entry and tick a job is the run of.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub struct CronRunV1 {
    id: u64,
    tick_ms: u64,
}

#[derive(Serialize, Deserialize)]
pub struct KindSettingsV1 {
    max_running: Option<u32>,
    retry: RetryV1,
    lease: Option<LeaseV1>,
    /// Added 2026-11-29 (processing windows); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<WindowV1>,
    /// Added 2026-11-30 (retention); absent: false.
    #[serde(default, skip_serializing_if = "is_false")]
    destroy_on_complete: bool,
}

/// A processing window as logged: minutes after local midnight and an IANA
/// zone. A zone this build does not know fails the decode (the record is
/// never read as "no window").
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(try_from = "WindowFieldsV1", into = "WindowFieldsV1")]
pub struct WindowV1(pub crate::ProcessingWindow);

#[derive(Serialize, Deserialize)]
struct WindowFieldsV1 {
    start_min: u16,
    end_min: u16,
    tz: String,
}

impl From<WindowV1> for WindowFieldsV1 {
    fn from(WindowV1(w): WindowV1) -> WindowFieldsV1 {
        WindowFieldsV1 {
            start_min: w.start_min(),
            end_min: w.end_min(),
            tz: w.tz_name().to_string(),
        }
    }
}

impl TryFrom<WindowFieldsV1> for WindowV1 {
    type Error = String;
    fn try_from(f: WindowFieldsV1) -> Result<WindowV1, String> {
        crate::ProcessingWindow::new(f.start_min, f.end_min, Some(&f.tz))
            .map(WindowV1)
            .map_err(|e| e.to_string())
    }
}

#[derive(Serialize, Deserialize)]
struct RetryV1 {
    max_retries: u32,
    backoff_base_ms: u64,
    /// Added 2026-11-29; absent: 0.
    #[serde(default, skip_serializing_if = "is_zero_u8")]
    jitter_percent: u8,
}

fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize)]
struct LeaseV1 {
    max_expiries: u32,
    timeout_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiredWork {
    Slice { job: JobId, slice: u64 },
    Hook { job: JobId },
    Simple { jobs: Vec<JobId> },
}

/// One thing recovery did or found: a torn tail it cut (`bytes`), or a
/// damaged range it opened without (`end`, `what`, `jobs`, `meta_lost`,
/// `next_id`).
#[derive(Serialize, Deserialize)]
pub struct IncidentV1 {
    segment: u64,
    file: String,
    offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    torn_tail_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    damaged: Option<DamagedV1>,
}

#[derive(Serialize, Deserialize)]
struct DamagedV1 {
    end: u64,
    what: String,
    jobs: Vec<JobId>,
    meta_lost: bool,
    /// Absent in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_id: Option<JobId>,
}

/// `JobSpec` as v1 wrote it (serde's spelling of its fields in 2026-11).
#[derive(Serialize, Deserialize)]
pub struct Spec {
    kind: String,
    shape: Shape,
    priority: u8,
    description: String,
    max_workers: Option<u32>,
    run_at: Option<Time>,
    expires_at: Option<Time>,
    properties: Value,
    /// Sliced jobs' own output categories; absent when none (and in
    /// records from before categories).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    categories: Vec<String>,
    /// Added 2026-11-29; absent: not a singleton.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    singleton: Option<String>,
    /// Added 2026-11-29; absent: not a cron run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron: Option<CronRunV1>,
    /// Added 2026-11-29; absent: no dependencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    after: Vec<JobId>,
    /// Added 2026-11-29; absent: fail.
    #[serde(default, skip_serializing_if = "is_fail")]
    on_dependency_failure: crate::DependencyFailure,
    /// Added 2026-11-29 (a job's own processing window); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<WindowV1>,
    /// Added 2026-11-30 (retention, issue 12 step 6); absent: as the kind
    /// says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    destroy_on_complete: Option<bool>,
}

fn is_fail(p: &crate::DependencyFailure) -> bool {
    *p == crate::DependencyFailure::Fail
}

#[derive(Serialize, Deserialize)]
enum Shape {
    Simple {
        args: Value,
    },
    Sliced {
        slice_size: Option<usize>,
        collect_errors: bool,
    },
}

/// serde's spelling of a `SystemTime`.
#[derive(Serialize, Deserialize)]
struct Time {
    secs_since_epoch: u64,
    nanos_since_epoch: u32,
}

#[derive(Serialize, Deserialize)]
pub struct Group {
    message: String,
    count: u64,
    samples: Vec<Sample>,
}

#[derive(Serialize, Deserialize)]
pub struct Sample {
    slice: u64,
    record_number: u64,
    line: Option<u64>,
    record: String,
    message: String,
}

#[derive(Serialize, Deserialize)]
pub struct Outcome {
    job: JobId,
    started_ms: u64,
    result: Result<Option<Value>, String>,
    retry_at_ms: Option<u64>,
    /// `started_ms` in microseconds; absent before 2026-11-29.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_us: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Pause,
    Resume,
    Abort,
    Retry,
    Fail { reason: String },
    Destroy,
    Expire,
}

/// A whole job row, as compaction snapshots hold it.
#[derive(Serialize, Deserialize)]
pub struct Row {
    id: JobId,
    kind: String,
    description: String,
    priority: u8,
    max_workers: Option<u32>,
    run_at_ms: Option<u64>,
    expires_at_ms: Option<u64>,
    created_ms: u64,
    started_ms: Option<u64>,
    completed_ms: Option<u64>,
    state: RowState,
    properties: Value,
    failure_reason: Option<String>,
    attempts: u32,
    body: RowBody,
    /// Added 2026-11-29; absent: not a singleton.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    singleton: Option<String>,
    /// `started_ms` and `completed_ms` in microseconds; absent before
    /// 2026-11-29.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completed_us: Option<u64>,
    /// Added 2026-11-29; absent: not a cron run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cron: Option<CronRunV1>,
    /// Added 2026-11-29; absent: no dependencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    after: Vec<JobId>,
    /// Added 2026-11-29; absent: fail.
    #[serde(default, skip_serializing_if = "is_fail")]
    on_dependency_failure: crate::DependencyFailure,
    /// Added 2026-11-29 (a job's own processing window); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<WindowV1>,
    /// Added 2026-11-30 (retention); absent: as the kind says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    destroy_on_complete: Option<bool>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RowState {
    Scheduled,
    Queued,
    Running,
    Paused,
    Completed,
    Failed,
    Aborted,
    /// Added 2026-11-29.
    Waiting,
}

#[derive(Serialize, Deserialize)]
enum RowBody {
    Simple {
        args: Value,
        result: Option<Value>,
        /// Lease expiries (added 2026-11-29; absent: none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expiries: Option<u32>,
    },
    Sliced(Box<Sliced>),
}

#[derive(Serialize, Deserialize)]
struct Sliced {
    slice_size: u32,
    collect_errors: bool,
    upload: Upload,
    before_done: bool,
    slices: Vec<(u64, Slice)>,
    records_in: u64,
    records_rejected: u64,
    records_out: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    records_written: Option<u64>,
    records_errors: u64,
    records_in_failed_slices: u64,
    /// The job's own categories in their order, each with the records
    /// written to it; absent when none (and in snapshots from before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    categories: Vec<(String, u64)>,
    slices_done: u64,
    slices_failed: u64,
    collected_errors: Vec<Group>,
    failures: Vec<(u64, (String, Option<Sample>))>,
    /// Lease expiries of its hooks (added 2026-11-29; absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hook_expiries: Option<u32>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
enum Upload {
    Open,
    Complete,
    Failed,
}

#[derive(Serialize, Deserialize)]
struct Slice {
    first_record: u64,
    records: u32,
    line_first: Option<u64>,
    lines: Option<Vec<u64>>,
    numbers: Option<Vec<u64>>,
    state: SliceStateV1,
    errors: u32,
    /// Lease expiries (added 2026-11-29; absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiries: Option<u32>,
    /// Automatic retries so far (added 2026-11-29; absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retries: Option<u32>,
    /// When a pending slice's automatic retry is due (added 2026-11-29;
    /// absent: it is queued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_at_ms: Option<u64>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename = "SliceState")]
enum SliceStateV1 {
    Pending,
    Done,
    Failed,
}
