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

/// A record as it is on disk: `{"t": TYPE, FIELDS...}`, the type first
/// (as serde writes an internally tagged enum). Each type's fields are a
/// struct of [`rec`], so [`Record`]'s own `Deserialize` reads the type and
/// then the fields straight from the JSON, without first buffering the
/// whole record in serde's `Content` as a derived internally tagged enum
/// does (that buffering was about a third of a reopen's CPU). A record
/// whose type is not its first field (no writer of this format makes one)
/// is read the slow way, through a `serde_json::Value`.
macro_rules! records {
    ($($(#[$doc:meta])* $name:ident => $tag:literal,)*) => {
        #[derive(Serialize)]
        #[serde(tag = "t")]
        pub enum Record {
            $($(#[$doc])* #[serde(rename = $tag)] $name(rec::$name),)*
        }

        /// Every record type's name, as an unknown one's error lists them.
        const TYPES: &[&str] = &[$($tag),*];

        /// The record of type `tag` whose fields `fields` holds.
        fn record_of<'de, D: serde::Deserializer<'de>>(
            tag: &str,
            fields: D,
        ) -> Result<Record, D::Error> {
            match tag {
                $($tag => rec::$name::deserialize(fields).map(Record::$name),)*
                other => Err(serde::de::Error::unknown_variant(other, TYPES)),
            }
        }
    };
}

records! {
    Created => "created",
    Uploaded => "uploaded",
    UploadComplete => "upload_complete",
    UploadFailed => "upload_failed",
    BeforeDone => "before_done",
    SliceDone => "slice_done",
    SliceFailed => "slice_failed",
    AfterDone => "after_done",
    HookFailed => "hook_failed",
    SimpleDone => "simple_done",
    Control => "control",
    Priority => "priority",
    MaxWorkers => "max_workers",
    Restore => "restore",
    NextId => "next_id",
    /// Added 2026-11-29 (issue 12, step 3); older logs have none and
    /// replay whole.
    Checkpoint => "checkpoint",
    /// Added 2026-11-29; older logs have none (generation 0).
    Opened => "opened",
    /// Added 2026-11-29; older logs have none (expiry counts started at 0
    /// in every process).
    LeaseExpired => "lease_expired",
    /// Added 2026-11-29; older logs have none.
    Recovered => "recovered",
    /// Added 2026-11-29; older logs have none (settings lived in code).
    KindSettings => "kind_settings",
    /// Added 2026-11-29 (kind ids, issue 12); older logs have none: each
    /// kind gets its id at its first `created` or `restore`, in log order.
    KindId => "kind_id",
    /// Added 2026-11-29; older logs have none (no cron entries).
    Cron => "cron",
    /// Added 2026-11-29; older logs have none (no dirmon entries).
    Dirmon => "dirmon",
    /// Added 2026-11-30 (retention, issue 12 step 6); older logs have
    /// none (the defaults: 7, 7 and 30 days).
    Retention => "retention",
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        d.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> serde::de::Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a meta record: a JSON object whose \"t\" names its type")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        use serde::de::Error;
        let Some(first) = map.next_key::<String>()? else {
            return Err(A::Error::missing_field("t"));
        };
        if first == "t" {
            let tag: String = map.next_value()?;
            return record_of(&tag, serde::de::value::MapAccessDeserializer::new(map));
        }
        let mut fields = serde_json::Map::new();
        fields.insert(first, map.next_value()?);
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            if fields.insert(key.clone(), value).is_some() {
                return Err(A::Error::custom(format_args!("duplicate field `{key}`")));
            }
        }
        let tag = match fields.remove("t") {
            Some(Value::String(tag)) => tag,
            Some(other) => {
                return Err(A::Error::custom(format_args!(
                    "the record type \"t\" is {other}, not a string"
                )))
            }
            None => return Err(A::Error::missing_field("t")),
        };
        record_of(&tag, Value::Object(fields)).map_err(A::Error::custom)
    }
}

/// The fields of each [`Record`] type, one struct a type.
pub mod rec {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub struct Created {
        pub first_id: JobId,
        pub at_ms: u64,
        pub specs: Vec<Spec>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Uploaded {
        pub job: JobId,
        pub slice: u64,
        pub first_record: u64,
        pub records: u32,
        pub rejects: u32,
        pub line_first: Option<u64>,
        pub lines: Option<Vec<u64>>,
        pub numbers: Option<Vec<u64>>,
        pub reject_errors: Vec<Group>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct UploadComplete {
        pub job: JobId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub at_ms: Option<u64>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct UploadFailed {
        pub job: JobId,
        pub reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub at_ms: Option<u64>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct BeforeDone {
        pub job: JobId,
        pub at_ms: u64,
    }

    #[derive(Serialize, Deserialize)]
    pub struct SliceDone {
        pub job: JobId,
        pub slice: u64,
        pub at_ms: u64,
        pub errors: u32,
        pub error_groups: Vec<Group>,
        /// Records the handler wrote to `main`; absent in records from
        /// before it was counted (then: the records processed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub written: Option<u64>,
        /// Records written to each of the job's own categories, by name;
        /// absent when none (and in records from before categories).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub written_by_category: BTreeMap<String, u64>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct SliceFailed {
        pub job: JobId,
        pub slice: u64,
        pub at_ms: u64,
        pub message: String,
        pub sample: Option<Sample>,
        /// Added 2026-11-29 (sliced auto-retry); absent: the slice failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retry_at_ms: Option<u64>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct AfterDone {
        pub job: JobId,
        pub at_ms: u64,
    }

    #[derive(Serialize, Deserialize)]
    pub struct HookFailed {
        pub job: JobId,
        pub at_ms: u64,
        pub message: String,
    }

    #[derive(Serialize, Deserialize)]
    pub struct SimpleDone {
        pub at_ms: u64,
        /// `at_ms` in microseconds; absent before 2026-11-29.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub at_us: Option<u64>,
        pub outcomes: Vec<Outcome>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Control {
        pub job: JobId,
        pub at_ms: u64,
        pub action: Action,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Priority {
        pub job: JobId,
        pub priority: u8,
    }

    #[derive(Serialize, Deserialize)]
    pub struct MaxWorkers {
        pub job: JobId,
        pub max_workers: Option<u32>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Restore {
        pub job: Box<Row>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct NextId {
        pub next: JobId,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Checkpoint {
        pub table_version: u32,
        pub seq: u64,
        pub next_id: JobId,
        pub generation: u64,
        pub log_ms: u64,
        pub counts: Vec<u64>,
        /// Added 2026-11-30 (the kind index); older checkpoints have none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kind_counts: Option<Vec<(u32, Vec<u64>)>>,
        pub records: u32,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Opened {
        pub generation: u64,
        pub at_ms: u64,
    }

    #[derive(Serialize, Deserialize)]
    pub struct LeaseExpired {
        pub at_ms: u64,
        pub work: ExpiredWork,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Recovered {
        pub at_ms: u64,
        pub incidents: Vec<IncidentV1>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct KindSettings {
        pub kind: String,
        pub at_ms: u64,
        pub settings: Option<KindSettingsV1>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct KindId {
        pub id: u32,
        pub name: String,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Cron {
        pub cron: u64,
        pub at_ms: u64,
        pub change: Box<CronChangeV1>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Dirmon {
        pub dirmon: u64,
        pub at_ms: u64,
        pub change: Box<DirmonChangeV1>,
    }

    #[derive(Serialize, Deserialize)]
    pub struct Retention {
        pub at_ms: u64,
        pub completed_ms: u64,
        pub aborted_ms: u64,
        pub failed_ms: u64,
    }
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
