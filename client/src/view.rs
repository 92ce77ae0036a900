//! The JSON shapes of the HTTP API, defined once: the server
//! (`booster serve`) builds them from the runtime's types and the JSON
//! client ([`crate::http`]) reads them back, so the two cannot disagree.
//! Times are milliseconds since the Unix epoch, states lower-case as in
//! the CLI.

use std::time::{SystemTime, UNIX_EPOCH};

use booster_runtime::{
    CronRun, ErrorGroup, JobEvent, JobState, JobStatus, LeaseInfo, WorkerStatus,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobView {
    pub id: u64,
    pub kind: String,
    pub description: String,
    pub state: JobState,
    pub priority: u8,
    /// null: no limit.
    pub max_workers: Option<u32>,
    pub created_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub completed_at_ms: Option<u64>,
    pub run_at_ms: Option<u64>,
    pub expires_at_ms: Option<u64>,
    /// A simple job: no slices or records; its outcome is `result`.
    #[serde(default)]
    pub simple: bool,
    pub upload_complete: bool,
    pub slices_total: u64,
    pub slices_queued: u64,
    pub slices_running: u64,
    pub slices_done: u64,
    pub slices_failed: u64,
    pub records_in: u64,
    /// Records the handlers wrote to the output.
    pub records_out: u64,
    /// Records the handlers wrote to each of the job's own categories
    /// (`GET /api/jobs/{id}/output?category=NAME`).
    #[serde(default)]
    pub records_out_by_category: std::collections::BTreeMap<String, u64>,
    /// Input records processed without error: records_in = records_processed
    /// + records_failed once the job is done.
    #[serde(default)]
    pub records_processed: u64,
    pub records_errors: u64,
    pub records_in_failed_slices: u64,
    pub records_failed: u64,
    pub percent: f64,
    pub records_per_s: f64,
    pub eta_s: Option<f64>,
    pub leases: Vec<LeaseView>,
    pub errors: Vec<ErrorGroup>,
    pub failure_reason: Option<String>,
    /// Why a queued or running job is not running (see `JobStatus`).
    #[serde(default)]
    pub waiting_reason: Option<String>,
    /// Damaged store ranges that held this job's slices (see `JobStatus`).
    #[serde(default)]
    pub damage: Vec<String>,
    /// The cron entry and tick (ms) this job is the run of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronRun>,
    /// The job's own processing window, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<booster_runtime::ProcessingWindow>,
    /// The singleton key the job holds while unfinished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singleton: Option<String>,
    /// Jobs that must complete first, and the policy if one does not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<u64>,
    #[serde(default)]
    pub on_dependency_failure: booster_runtime::DependencyFailure,
    pub result: Option<serde_json::Value>,
    pub attempts: u32,
    pub properties: serde_json::Value,
    /// The control actions allowed now (see `JobStatus::allowed_actions`).
    #[serde(default)]
    pub allowed_actions: Vec<String>,
    /// What `job show` prints about where the job came from: input file,
    /// format, command (the server's `report::job_origin`), as label/value pairs.
    #[serde(default)]
    pub details: Vec<Detail>,
    /// What can be downloaded, one entry per category (`downloads_of`).
    #[serde(default)]
    pub downloads: Vec<DownloadLink>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Detail {
    pub label: String,
    pub value: String,
}

/// One downloadable category of a job's records.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DownloadLink {
    pub category: String,
    pub label: String,
    pub href: String,
    /// How many records it holds (what the counts say).
    pub records: u64,
}

/// A job with slices has records to download, one link per category:
/// the output (`main`), each of the job's own categories (named at
/// creation; their names are `[a-z0-9_-]`, safe in a query), then the
/// errors. A simple job (no slices) has a result instead.
fn downloads_of(s: &JobStatus) -> Vec<DownloadLink> {
    if s.slices_total == 0 {
        return Vec::new();
    }
    let link = |category: &str, label: String, records: u64| DownloadLink {
        category: category.to_string(),
        label,
        href: format!("/api/jobs/{}/output?category={category}", s.id),
        records,
    };
    std::iter::once(link("main", "Output".to_string(), s.records_out))
        .chain(
            s.records_out_by_category
                .iter()
                .map(|(name, n)| link(name, name.clone(), *n)),
        )
        .chain(std::iter::once(link(
            "errors",
            "Errors".to_string(),
            s.records_failed,
        )))
        .collect()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseView {
    pub worker: usize,
    pub job: u64,
    pub slice: Option<u64>,
    pub epoch: u64,
    pub since_ms: u64,
    pub deadline_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerView {
    pub worker: usize,
    pub lease: Option<LeaseView>,
    pub slices_done: u64,
    pub restarts: u32,
    /// Where the worker runs: its host, process and `booster` version.
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub version: String,
}

/// A process working on the node's jobs (`GET /api/workers`'s
/// `processes`): the node itself when it runs worker threads (`worker`
/// null), and every remote worker process.
pub type ProcessView = booster_runtime::WorkerProcess;

/// `GET /api/jobs`'s answer: one page in id order, where the next
/// (older) one starts, and how many match (null with a kind or text
/// filter).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobsPageView {
    pub jobs: Vec<JobView>,
    pub next_before: Option<u64>,
    pub total: Option<u64>,
}

/// One event of `GET /api/events` (an SSE `job` event's data), or the
/// job as it is now (`what: "current"`, `"poll"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobEventView {
    pub job: u64,
    pub state: JobState,
    pub slices_done: u64,
    pub slices_total: u64,
    pub records_out: u64,
    pub percent: f64,
    /// e.g. "created", "upload_complete", "slice_done", "state", "priority".
    pub what: String,
}

impl JobEventView {
    /// The job as it is now, as an event that says `what`.
    pub fn of_status(s: &JobStatus, what: &str) -> JobEventView {
        JobEventView::from(&JobEvent {
            job: s.id,
            state: s.state,
            slices_done: s.slices_done,
            slices_total: s.slices_total,
            records_out: s.records_out,
            percent: s.percent,
            what: what.to_string(),
        })
    }
}

impl From<&JobEvent> for JobEventView {
    fn from(ev: &JobEvent) -> JobEventView {
        JobEventView {
            job: ev.job,
            state: ev.state,
            slices_done: ev.slices_done,
            slices_total: ev.slices_total,
            records_out: ev.records_out,
            percent: finite_or_zero(ev.percent),
            what: ev.what.clone(),
        }
    }
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl From<&LeaseInfo> for LeaseView {
    fn from(l: &LeaseInfo) -> LeaseView {
        LeaseView {
            worker: l.worker,
            job: l.job,
            slice: l.slice,
            epoch: l.epoch,
            since_ms: unix_ms(l.since),
            deadline_ms: unix_ms(l.deadline),
        }
    }
}

impl From<&WorkerStatus> for WorkerView {
    fn from(w: &WorkerStatus) -> WorkerView {
        WorkerView {
            worker: w.worker,
            lease: w.lease.as_ref().map(LeaseView::from),
            slices_done: w.slices_done,
            restarts: w.restarts,
            // A local worker is a thread of this process; a remote one
            // says where it runs when it joins.
            host: w
                .remote
                .as_ref()
                .map_or_else(crate::worker::this_host, |r| r.host.clone()),
            pid: w.remote.as_ref().map_or(std::process::id(), |r| r.pid),
            version: w
                .remote
                .as_ref()
                .map_or_else(|| crate::VERSION.to_string(), |r| r.version.clone()),
        }
    }
}

impl JobView {
    /// The API's view of `s`; `details` are what the server says about
    /// where the job came from (`Detail`).
    pub fn with_details(s: JobStatus, details: Vec<Detail>) -> JobView {
        let downloads = downloads_of(&s);
        JobView {
            id: s.id,
            kind: s.kind,
            description: s.description,
            state: s.state,
            priority: s.priority,
            max_workers: s.max_workers,
            created_at_ms: unix_ms(s.created_at),
            started_at_ms: s.started_at.map(unix_ms),
            completed_at_ms: s.completed_at.map(unix_ms),
            run_at_ms: s.run_at.map(unix_ms),
            expires_at_ms: s.expires_at.map(unix_ms),
            simple: s.simple,
            upload_complete: s.upload_complete,
            slices_total: s.slices_total,
            slices_queued: s.slices_queued,
            slices_running: s.slices_running,
            slices_done: s.slices_done,
            slices_failed: s.slices_failed,
            records_in: s.records_in,
            records_out: s.records_out,
            records_out_by_category: s.records_out_by_category,
            records_processed: s.records_processed,
            records_errors: s.records_errors,
            records_in_failed_slices: s.records_in_failed_slices,
            records_failed: s.records_failed,
            percent: finite_or_zero(s.percent),
            records_per_s: finite_or_zero(s.records_per_s),
            eta_s: s.eta_s.filter(|e| e.is_finite()),
            leases: s.leases.iter().map(LeaseView::from).collect(),
            errors: s.errors,
            failure_reason: s.failure_reason,
            waiting_reason: s.waiting_reason,
            damage: s.damage,
            cron: s.cron,
            window: s.window,
            singleton: s.singleton,
            after: s.after,
            on_dependency_failure: s.on_dependency_failure,
            result: s.result,
            attempts: s.attempts,
            properties: s.properties,
            allowed_actions: s.allowed_actions,
            details,
            downloads,
        }
    }
}

impl From<JobView> for JobStatus {
    /// Back to the runtime's type, so the remote CLI prints a job with the
    /// same code (`crate::report`) as the local one.
    fn from(v: JobView) -> JobStatus {
        JobStatus {
            id: v.id,
            kind: v.kind,
            description: v.description,
            state: v.state,
            priority: v.priority,
            max_workers: v.max_workers,
            created_at: from_unix_ms(v.created_at_ms),
            started_at: v.started_at_ms.map(from_unix_ms),
            completed_at: v.completed_at_ms.map(from_unix_ms),
            run_at: v.run_at_ms.map(from_unix_ms),
            expires_at: v.expires_at_ms.map(from_unix_ms),
            simple: v.simple,
            upload_complete: v.upload_complete,
            slices_total: v.slices_total,
            slices_queued: v.slices_queued,
            slices_running: v.slices_running,
            slices_done: v.slices_done,
            slices_failed: v.slices_failed,
            records_in: v.records_in,
            records_out: v.records_out,
            records_out_by_category: v.records_out_by_category,
            records_processed: v.records_processed,
            records_errors: v.records_errors,
            records_in_failed_slices: v.records_in_failed_slices,
            records_failed: v.records_failed,
            percent: v.percent,
            records_per_s: v.records_per_s,
            eta_s: v.eta_s,
            leases: v.leases.iter().map(LeaseInfo::from).collect(),
            errors: v.errors,
            failure_reason: v.failure_reason,
            waiting_reason: v.waiting_reason,
            damage: v.damage,
            cron: v.cron,
            window: v.window,
            singleton: v.singleton,
            after: v.after,
            on_dependency_failure: v.on_dependency_failure,
            result: v.result,
            attempts: v.attempts,
            properties: v.properties,
            allowed_actions: v.allowed_actions,
        }
    }
}

impl From<&LeaseView> for LeaseInfo {
    fn from(l: &LeaseView) -> LeaseInfo {
        LeaseInfo {
            worker: l.worker,
            job: l.job,
            slice: l.slice,
            epoch: l.epoch,
            since: from_unix_ms(l.since_ms),
            deadline: from_unix_ms(l.deadline_ms),
        }
    }
}

pub fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

/// serde_json refuses NaN and infinities; a fresh job's rate can be either.
fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}
