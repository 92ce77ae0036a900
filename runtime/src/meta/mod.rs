//! Meta records: the durable log of every job-state change the runtime must
//! not forget. The job table is a pure function of this log: replaying the
//! records in commit order (`State::apply`) rebuilds it exactly, live and on
//! open alike. Leases, epochs and "running" marks are not logged: after a
//! restart every unfinished slice is simply queued again.
//!
//! Encoding: one format byte (`J`, JSON v1) followed by the serde_json form
//! of the record's wire type ([`wire::Record`], its own types, never the
//! public `JobSpec` or the internal rows; the layout is in ARCHITECTURE.md).
//! JSON keeps the log inspectable; the hot records are batched (one
//! `SimpleDone` per lease of up to 1000 jobs, one `Created` per
//! `submit_many`), so its cost is per batch, not per job.
//!
//! Slice streams of a job (store `SliceKey { owner: job id, stream, seq: input slice }`):
//! input `0`, output `main` `1`, output `errors` `2`, records the uploader
//! rejected `3`, the job's own category `n` `16 + n` (4..=15 reserved).
//! Every output slice shares its input slice's seq, so
//! downloads come out in input order.

mod wire;
pub(crate) use wire::{failures_from_json, failures_to_json, groups_from_json, groups_to_json};

use std::collections::BTreeMap;

use crate::table::Job;
use crate::{ErrorGroup, Incident, JobId, JobSpec, RecordErrorSample, RuntimeError};

pub const STREAM_INPUT: u32 = 0;
pub const STREAM_MAIN: u32 = 1;
pub const STREAM_ERRORS: u32 = 2;
pub const STREAM_REJECTS: u32 = 3;
// 4 is `table::keys::STREAM_SLICE_INFO` (issue 12), 5 is
// `separators::STREAM_SEPARATORS`, 6..=15 are kept for the runtime's future
// use; a job's own categories start at 16 (`category::CATEGORY_STREAM_BASE`).

const FORMAT_JSON_V1: u8 = b'J';

/// A checkpoint record's fields (`Meta::Checkpoint`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The table's format: 1.
    pub table_version: u32,
    /// Checkpoints written in this data directory, this one included.
    pub seq: u64,
    pub next_id: JobId,
    /// The latest open generation (it replaces the `opened` records the
    /// checkpoint cuts off).
    pub generation: u64,
    /// The latest time logged before it (`Book::log_ms`).
    pub log_ms: u64,
    /// Rows by state (`JobState::index`), checked against the rows read.
    pub counts: Vec<u64>,
    /// Rows by kind id and state (as `counts`), when every row's kind was
    /// counted (`Book::kind_counts`); None in older records.
    pub kind_counts: Option<Vec<(u32, Vec<u64>)>>,
    /// The meta records that follow it in its batch; the rows come after.
    pub records: u32,
}

/// The table format checkpoints write.
pub const TABLE_VERSION: u32 = 1;

#[derive(Clone, Debug)]
pub enum Meta {
    /// Jobs `first_id, first_id + 1, ...` submitted together.
    Created {
        first_id: JobId,
        at_ms: u64,
        specs: Vec<JobSpec>,
    },
    /// Input slice `slice` of a sliced job is durable.
    Uploaded {
        job: JobId,
        slice: u64,
        /// 1-based number of the slice's first record in upload order.
        first_record: u64,
        records: u32,
        rejects: u32,
        line_first: Option<u64>,
        /// Source lines per record, only when they are not `line_first + i`.
        lines: Option<Vec<u64>>,
        /// Record numbers, only when they are not `first_record + i`
        /// (rejected records in between take numbers too).
        numbers: Option<Vec<u64>>,
        reject_errors: Vec<ErrorGroup>,
    },
    UploadComplete {
        job: JobId,
        /// None only in records written before the time was logged: replay
        /// then takes the latest time logged before it (`Book::log_ms`).
        at_ms: Option<u64>,
    },
    UploadFailed {
        job: JobId,
        reason: String,
        /// As `UploadComplete::at_ms`.
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
        /// Input records that failed (collect_errors mode) and went to `errors`.
        errors: u32,
        error_groups: Vec<ErrorGroup>,
        /// Records the handler wrote to `main` (a filter writes fewer than it
        /// read, a splitter more). Absent in logs from before it was
        /// counted: then it is taken as the records processed.
        written: Option<u64>,
        /// Records the handler wrote to each of the job's own categories,
        /// by name; categories it wrote nothing to are left out.
        written_by_category: BTreeMap<String, u64>,
    },
    SliceFailed {
        job: JobId,
        slice: u64,
        at_ms: u64,
        message: String,
        sample: Option<RecordErrorSample>,
        /// Some: the kind's retry policy runs the slice again at this time
        /// (the slice stays pending); None: the slice failed.
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
        /// The same instant in microseconds; None in records from before
        /// it was logged (then `at_ms` times 1000).
        at_us: Option<u64>,
        outcomes: Vec<SimpleOutcome>,
    },
    Control {
        job: JobId,
        at_ms: u64,
        action: Control,
    },
    Priority {
        job: JobId,
        priority: u8,
    },
    MaxWorkers {
        job: JobId,
        max_workers: Option<u32>,
    },
    /// A whole job, from a compaction snapshot.
    Restore {
        job: Box<Job>,
    },
    /// A checkpoint (issue 12, step 3): the first record of its batch
    /// (`Batch::checkpoint`), so the meta log starts at it. The batch holds
    /// `records` more meta records (what the log held besides the rows),
    /// then the table's pages; replay reads the rows after those records.
    Checkpoint(Box<Checkpoint>),
    /// The next job id, from a compaction snapshot (ids are never reused).
    NextId {
        next: JobId,
    },
    /// A process that runs work opened the store: its open generation, the
    /// high bits of every lease epoch it hands out (epochs are unique across
    /// restarts). Compaction snapshots keep the latest.
    Opened {
        generation: u64,
        at_ms: u64,
    },
    /// A lease on `work` expired (G4): counted against the work's
    /// `LeasePolicy::max_expiries` by `apply`, so a restart does not give a
    /// job that hangs every process a fresh count.
    LeaseExpired {
        at_ms: u64,
        work: Expired,
    },
    /// What recovery did to the files, or found damaged in them, on one
    /// open: the durable record of G7's "truncated and logged"
    /// (`Runtime::incidents`). Compaction snapshots keep every one.
    Recovered {
        at_ms: u64,
        incidents: Vec<Incident>,
    },
    /// A kind's stored settings (None: cleared; the process's own apply).
    KindSettings {
        kind: String,
        at_ms: u64,
        settings: Option<crate::KindSettings>,
    },
    /// Kind `name` has id `id` (`table/kinds.rs`): written in the batch
    /// of the first `created` record of a new kind, before it.
    KindId {
        id: crate::table::kinds::KindId,
        name: String,
    },
    /// A change to cron entry `cron` (`cron.rs`).
    Cron {
        cron: crate::CronId,
        at_ms: u64,
        change: CronChange,
    },
    /// A change to dirmon entry `dirmon` (`dirmon.rs`).
    Dirmon {
        dirmon: crate::DirmonId,
        at_ms: u64,
        change: DirmonChange,
    },
    /// The retention periods (`Runtime::set_retention`): the stored
    /// settings the sweep reads. Every checkpoint's batch holds one, so
    /// they outlive compaction.
    Retention {
        at_ms: u64,
        retention: crate::Retention,
    },
}

/// What a `Meta::Dirmon` record does to its entry.
#[derive(Clone, Debug)]
pub enum DirmonChange {
    /// A new entry; a compaction snapshot also gives its `paused` flag.
    Define {
        spec: Box<crate::DirmonSpec>,
        paused: bool,
    },
    Pause,
    Resume,
    Remove,
    /// Compaction snapshots: inbox file `file` was taken as job `job` and
    /// is not archived yet (live, the job's `created` record says so).
    Taken {
        file: String,
        job: crate::JobId,
    },
    /// Inbox file `file` is in the archive: the watcher is done with it.
    Archived {
        file: String,
    },
}

/// What a `Meta::Cron` record does to its entry.
#[derive(Clone, Debug)]
pub enum CronChange {
    /// A new entry; a compaction snapshot also gives its `paused` flag and
    /// the tick of its latest run.
    Define {
        expr: String,
        tz: Option<String>,
        spec: Box<JobSpec>,
        paused: bool,
        last_tick_ms: Option<u64>,
    },
    Pause,
    Resume,
    Remove,
}

/// The work of an expired lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expired {
    Slice {
        job: JobId,
        slice: u64,
    },
    /// A sliced job's `before_batch` or `after_batch` hook.
    Hook {
        job: JobId,
    },
    /// A batch of simple jobs.
    Simple {
        jobs: Vec<JobId>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Abort,
    Retry,
    Fail {
        reason: String,
    },
    Destroy,
    /// Not started before `expires_at`.
    Expire,
}

impl Control {
    pub fn verb(&self) -> &'static str {
        match self {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Abort => "abort",
            Control::Retry => "retry",
            Control::Fail { .. } => "fail",
            Control::Destroy => "destroy",
            Control::Expire => "expire",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimpleOutcome {
    pub job: JobId,
    /// Microseconds since the epoch.
    pub started_us: u64,
    pub result: Result<Option<serde_json::Value>, String>,
    /// Set when a failed job runs again automatically (retry policy).
    pub retry_at_ms: Option<u64>,
}

impl Meta {
    /// The time the record carries, if any. Replay never reads the clock:
    /// a record without one happens at the latest time logged before it.
    pub fn at_ms(&self) -> Option<u64> {
        match self {
            Meta::Created { at_ms, .. }
            | Meta::BeforeDone { at_ms, .. }
            | Meta::SliceDone { at_ms, .. }
            | Meta::SliceFailed { at_ms, .. }
            | Meta::AfterDone { at_ms, .. }
            | Meta::HookFailed { at_ms, .. }
            | Meta::SimpleDone { at_ms, .. }
            | Meta::Control { at_ms, .. }
            | Meta::Opened { at_ms, .. }
            | Meta::LeaseExpired { at_ms, .. }
            | Meta::Recovered { at_ms, .. }
            | Meta::KindSettings { at_ms, .. }
            | Meta::Cron { at_ms, .. }
            | Meta::Dirmon { at_ms, .. }
            | Meta::Retention { at_ms, .. } => Some(*at_ms),
            Meta::UploadComplete { at_ms, .. } | Meta::UploadFailed { at_ms, .. } => *at_ms,
            Meta::Uploaded { .. }
            | Meta::Priority { .. }
            | Meta::MaxWorkers { .. }
            | Meta::Restore { .. }
            | Meta::KindId { .. }
            | Meta::Checkpoint(_)
            | Meta::NextId { .. } => None,
        }
    }
}

impl Meta {
    /// The one job a record of a single job is about (an upload, a slice
    /// commit, a hook, a control, a priority or worker change); None for
    /// the others (batches of jobs, snapshots, settings, incidents).
    pub fn single_job(&self) -> Option<JobId> {
        match self {
            Meta::Uploaded { job, .. }
            | Meta::UploadComplete { job, .. }
            | Meta::UploadFailed { job, .. }
            | Meta::BeforeDone { job, .. }
            | Meta::SliceDone { job, .. }
            | Meta::SliceFailed { job, .. }
            | Meta::AfterDone { job, .. }
            | Meta::HookFailed { job, .. }
            | Meta::Control { job, .. }
            | Meta::Priority { job, .. }
            | Meta::MaxWorkers { job, .. } => Some(*job),
            _ => None,
        }
    }
}

pub fn encode(meta: &Meta) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(FORMAT_JSON_V1);
    serde_json::to_writer(&mut out, &wire::Record::from(meta))
        .expect("meta records always serialize");
    out
}

pub fn decode(bytes: &[u8]) -> Result<Meta, RuntimeError> {
    match bytes.split_first() {
        Some((&FORMAT_JSON_V1, body)) => serde_json::from_slice(body).map(|r: wire::Record| Meta::from(r)).map_err(|e| {
            RuntimeError::Invalid(format!(
                "undecodable meta record ({e}); the data directory was written by an incompatible version"
            ))
        }),
        _ => Err(RuntimeError::Invalid(
            "meta record of unknown format; the data directory was written by an incompatible version"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_through_its_encoding() {
        let meta = Meta::SliceFailed {
            job: 7,
            slice: 3,
            at_ms: 99,
            message: "bad".into(),
            sample: Some(RecordErrorSample {
                slice: 3,
                record_number: 301,
                line: Some(302),
                record: "a,b".into(),
                message: "bad".into(),
            }),
            retry_at_ms: Some(1_099),
        };
        let bytes = encode(&meta);
        assert_eq!(bytes[0], b'J');
        let back = decode(&bytes).unwrap();
        assert_eq!(encode(&back), bytes);
    }

    /// Records as the runtime of 2026-11 wrote them (the meta log of
    /// tests/fixtures/jobs-v1, then one of each record type it lacks): the
    /// wire types read each and write it back byte for byte, so the v1
    /// spelling cannot drift with the runtime's own types.
    #[test]
    fn every_record_type_keeps_its_v1_spelling() {
        let records = include_str!("v1_records.txt");
        let mut types = std::collections::BTreeSet::new();
        for line in records.lines() {
            let meta = decode(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(String::from_utf8(encode(&meta)).unwrap(), line);
            types.insert(line.split('"').nth(3).unwrap().to_string());
        }
        assert_eq!(types.len(), 24, "every record type: {types:?}");
    }

    /// A record is read by its type first (the fast path); one whose type
    /// comes later (no writer of this format makes one, but JSON allows
    /// it) reads the same, the slow way.
    #[test]
    fn a_record_whose_type_is_not_its_first_field_reads_the_same() {
        for line in include_str!("v1_records.txt").lines() {
            let rest = line.strip_prefix(r#"J{"t":""#).expect("the type first");
            let (tag, fields) = rest.split_once("\",").expect("a type and fields");
            let fields = fields.strip_suffix('}').expect("an object");
            let moved = format!(r#"J{{{fields},"t":"{tag}"}}"#);
            let meta = decode(moved.as_bytes()).unwrap_or_else(|e| panic!("{moved}: {e}"));
            assert_eq!(String::from_utf8(encode(&meta)).unwrap(), line);
        }
    }

    /// What a record without a readable type says, either way it is read.
    #[test]
    fn a_record_of_no_known_type_is_refused_naming_why() {
        for (bytes, why) in [
            (
                &br#"J{"t":"shredded","job":1}"#[..],
                "unknown variant `shredded`",
            ),
            (
                br#"J{"job":1,"t":"shredded"}"#,
                "unknown variant `shredded`",
            ),
            (br#"J{"job":1}"#, "missing field `t`"),
            (br#"J{}"#, "missing field `t`"),
            (br#"J{"job":1,"t":7}"#, "not a string"),
            (
                br#"J{"job":1,"job":2,"t":"next_id"}"#,
                "duplicate field `job`",
            ),
            (br#"J{"t":"next_id"}"#, "missing field `next`"),
            (br#"J[1]"#, "a meta record"),
        ] {
            let err = decode(bytes).unwrap_err().to_string();
            assert!(
                err.contains(why),
                "{}: {err}",
                String::from_utf8_lossy(bytes)
            );
            assert!(err.contains("incompatible version"), "{err}");
        }
    }

    /// Categories are optional v1 fields: written only when a job has them,
    /// and read back whole.
    #[test]
    fn category_fields_round_trip_and_are_left_out_when_empty() {
        let done = Meta::SliceDone {
            job: 1,
            slice: 0,
            at_ms: 5,
            errors: 0,
            error_groups: Vec::new(),
            written: Some(2),
            written_by_category: [("review".to_string(), 3)].into(),
        };
        let bytes = encode(&done);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(r#""written_by_category":{"review":3}"#),
            "{text}"
        );
        assert_eq!(encode(&decode(&bytes).unwrap()), bytes);
        let created = Meta::Created {
            first_id: 1,
            at_ms: 5,
            specs: vec![
                JobSpec::sliced("k").with_categories(&["valid", "review"]),
                JobSpec::sliced("k"),
            ],
        };
        let bytes = encode(&created);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.matches("categories").count(), 1, "{text}");
        let Meta::Created { specs, .. } = decode(&bytes).unwrap() else {
            panic!("a created record");
        };
        assert_eq!(specs[0].categories, ["valid", "review"]);
        assert!(specs[1].categories.is_empty());
    }

    #[test]
    fn simple_done_keeps_its_microseconds_through_the_log() {
        let meta = Meta::SimpleDone {
            at_ms: 8_000,
            at_us: Some(8_000_123),
            outcomes: vec![SimpleOutcome {
                job: 2,
                started_us: 7_999_456,
                result: Ok(None),
                retry_at_ms: None,
            }],
        };
        let back = decode(&encode(&meta)).unwrap();
        let Meta::SimpleDone {
            at_ms,
            at_us,
            outcomes,
        } = back
        else {
            panic!("simple_done expected")
        };
        assert_eq!((at_ms, at_us), (8_000, Some(8_000_123)));
        assert_eq!(outcomes[0].started_us, 7_999_456);
    }

    #[test]
    fn simple_done_of_before_microseconds_reads_its_milliseconds() {
        let old = br#"J{"t":"simple_done","at_ms":8,"outcomes":[{"job":2,"started_ms":7,"result":{"Ok":null},"retry_at_ms":null}]}"#;
        let Meta::SimpleDone {
            at_us, outcomes, ..
        } = decode(old).unwrap()
        else {
            panic!("simple_done expected")
        };
        assert_eq!(at_us, None);
        assert_eq!(outcomes[0].started_us, 7_000);
    }

    #[test]
    fn unknown_format_byte_is_a_clear_error() {
        let err = decode(b"X{}").unwrap_err().to_string();
        assert!(err.contains("incompatible version"), "{err}");
    }
}
