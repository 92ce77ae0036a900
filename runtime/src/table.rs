//! The job table's rows: what the runtime knows about one job. Fields marked
//! "live" are scheduling marks a restart resets; the rest is durable: rebuilt
//! by replaying meta records, and written whole into compaction snapshots
//! through the meta log's own wire types (`meta::wire::Row`), never by
//! serializing these structs.

pub mod codec;
// Nothing writes rows until checkpoints (issue 12, step 3); until then the
// conversion is exercised by its round-trip proptest.
#[allow(dead_code)]
pub mod convert;
pub mod keys;
pub mod kinds;
pub mod page;
pub mod row;
pub mod slice_map;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use slice_map::{RangeSet, SliceMap, SliceState};

use crate::{ErrorGroup, JobId, JobState, RecordErrorSample};

/// Where a job sits in the ready queue, if it has leasable work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadySlot {
    pub priority: u8,
    /// Running jobs stay leasable when their kind is at its running-job limit.
    pub running: bool,
}

#[derive(Clone, Debug)]
pub struct Job {
    pub id: JobId,
    pub kind: Arc<str>,
    /// `kind`'s id (`kinds.rs`); set when the job enters the table
    /// (`State::insert`).
    pub kind_id: kinds::KindId,
    pub description: String,
    pub priority: u8,
    pub max_workers: Option<u32>,
    pub run_at_ms: Option<u64>,
    pub expires_at_ms: Option<u64>,
    pub created_ms: u64,
    /// Microseconds since the epoch (`clock::now_us`); from records that
    /// carry only milliseconds, those times 1000.
    pub started_us: Option<u64>,
    pub completed_us: Option<u64>,
    pub state: JobState,
    pub properties: Arc<serde_json::Value>,
    pub failure_reason: Option<String>,
    pub attempts: u32,
    pub body: Body,
    /// The singleton key this job holds while unfinished (`JobSpec::singleton`).
    pub singleton: Option<Arc<str>>,
    /// The cron entry and tick this job is the run of.
    pub cron: Option<crate::CronRun>,
    /// Jobs that must complete first (`JobSpec::after`), and what happens
    /// if one does not.
    pub after: Vec<JobId>,
    pub on_dependency_failure: crate::DependencyFailure,
    /// The job's own processing window (`JobSpec::window`).
    pub window: Option<crate::ProcessingWindow>,
    /// Live: `window` is closed at the latest time the scheduler looked
    /// (`State::insert` at the log's time, then the timer each minute):
    /// nothing of the job is leased.
    pub window_closed: bool,
    /// Live: where the job sits in the ready queue.
    pub ready: Option<ReadySlot>,
    /// Live: when this process accepted the job (for enqueue-to-start latency).
    pub accepted: Option<std::time::Instant>,
    /// Live: this process's handler declined the job (`refuses`): it is not leased.
    pub refused: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Body {
    Simple(SimpleBody),
    Sliced(Box<SlicedBody>),
}

#[derive(Clone, Debug)]
pub struct SimpleBody {
    pub args: Arc<serde_json::Value>,
    pub result: Option<serde_json::Value>,
    /// Live: a lease holds the job.
    pub leased: bool,
    /// Leases on this job that expired (live only; see `LeasePolicy`).
    pub expiries: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadState {
    Open,
    Complete,
    Failed,
}

#[derive(Clone, Debug)]
pub struct SlicedBody {
    pub slice_size: u32,
    pub collect_errors: bool,
    pub upload: UploadState,
    pub before_done: bool,
    /// Which slices were uploaded, done or failed (range sets), where
    /// their records sit (runs), and detail only for the slices that have
    /// any (`table/slice_map.rs`): a million regular slices are a few
    /// ranges, not a million entries.
    pub slices: SliceMap,
    pub records_in: u64,
    pub records_rejected: u64,
    /// Input records processed without error.
    pub records_out: u64,
    /// Records the handler wrote to `main`; None for a job restored from a
    /// snapshot taken before it was counted (then `records_out`).
    pub records_written: Option<u64>,
    pub records_errors: u64,
    pub records_in_failed_slices: u64,
    /// The job's own output categories (category `n` is stream 16 + n),
    /// fixed when it was created.
    pub categories: Arc<[String]>,
    /// Records the handler wrote to each category, index for index.
    pub records_by_category: Vec<u64>,
    pub slices_done: u64,
    pub slices_failed: u64,
    /// Record errors kept in `errors` (collect_errors and uploader rejects), grouped.
    pub collected_errors: Vec<ErrorGroup>,
    /// Why each failed slice failed.
    pub failures: BTreeMap<u64, (String, Option<RecordErrorSample>)>,
    /// Live: slices waiting for a lease, in input order.
    pub queued: RangeSet,
    /// Live: slice leases out.
    pub leased_slices: u32,
    /// Live: a before/after hook lease is out.
    pub hook_leased: bool,
    /// Hook leases that expired (live only; see `LeasePolicy`).
    pub hook_expiries: u32,
    /// Live: an `Uploader` of this process is writing into the job.
    pub uploader_active: bool,
}

impl SlicedBody {
    /// Records the handler wrote to `main` (`JobStatus::records_out`).
    pub fn written(&self) -> u64 {
        self.records_written.unwrap_or(self.records_out)
    }

    pub fn new(slice_size: u32, collect_errors: bool) -> SlicedBody {
        SlicedBody {
            slice_size,
            collect_errors,
            upload: UploadState::Open,
            before_done: false,
            slices: SliceMap::default(),
            records_in: 0,
            records_rejected: 0,
            records_out: 0,
            records_written: Some(0),
            records_errors: 0,
            records_in_failed_slices: 0,
            categories: Arc::from(Vec::new()),
            records_by_category: Vec::new(),
            slices_done: 0,
            slices_failed: 0,
            collected_errors: Vec::new(),
            failures: BTreeMap::new(),
            queued: RangeSet::default(),
            leased_slices: 0,
            hook_leased: false,
            hook_expiries: 0,
            uploader_active: false,
        }
    }

    /// Sets the job's categories (at creation or restore), each at 0 records.
    pub fn with_categories(mut self, names: Vec<String>) -> SlicedBody {
        self.records_by_category = vec![0; names.len()];
        self.categories = Arc::from(names);
        self
    }

    pub fn slices_pending(&self) -> u64 {
        self.slices
            .count()
            .saturating_sub(self.slices_done.saturating_add(self.slices_failed))
    }

    /// Every uploaded slice is finished and no more will come.
    pub fn all_slices_finished(&self) -> bool {
        self.upload == UploadState::Complete && self.slices_pending() == 0
    }

    /// The after-batch hook may run: everything succeeded and nothing is out.
    pub fn after_ready(&self) -> bool {
        self.before_done
            && self.all_slices_finished()
            && self.slices_failed == 0
            && self.leased_slices == 0
    }
}

/// Keeps at most this many distinct messages and samples per message.
const MAX_ERROR_GROUPS: usize = 50;
const MAX_SAMPLES: usize = 3;

/// Adds `groups` into `into`, merging by message.
pub fn merge_error_groups(into: &mut Vec<ErrorGroup>, groups: &[ErrorGroup]) {
    for g in groups {
        if let Some(existing) = into.iter_mut().find(|e| e.message == g.message) {
            existing.count = existing.count.saturating_add(g.count);
            for s in &g.samples {
                if existing.samples.len() < MAX_SAMPLES {
                    existing.samples.push(s.clone());
                }
            }
        } else if into.len() < MAX_ERROR_GROUPS {
            let mut g = g.clone();
            g.samples.truncate(MAX_SAMPLES);
            into.push(g);
        } else if let Some(other) = into.iter_mut().find(|e| e.message == "(other errors)") {
            other.count = other.count.saturating_add(g.count);
        } else {
            into.push(ErrorGroup {
                message: "(other errors)".into(),
                count: g.count,
                samples: Vec::new(),
            });
        }
    }
}

impl Job {
    pub fn sliced(&self) -> Option<&SlicedBody> {
        match &self.body {
            Body::Sliced(s) => Some(s),
            Body::Simple(_) => None,
        }
    }

    pub fn sliced_mut(&mut self) -> Option<&mut SlicedBody> {
        match &mut self.body {
            Body::Sliced(s) => Some(s),
            Body::Simple(_) => None,
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.state.is_finished()
    }

    /// Has started processing (decides Running vs Queued on resume/retry).
    pub fn has_started(&self) -> bool {
        match &self.body {
            Body::Simple(s) => s.leased,
            Body::Sliced(s) => s.before_done || s.hook_leased,
        }
    }

    /// Whether the dispatcher may lease work of this job now, ignoring
    /// per-kind limits (those are applied at lease time).
    pub fn ready_slot(&self) -> Option<ReadySlot> {
        if !matches!(self.state, JobState::Queued | JobState::Running)
            || self.refused.is_some()
            || self.window_closed
        {
            return None;
        }
        if crate::dirmon::holds(self) {
            // Its file is not wholly in: nothing of it runs yet.
            return None;
        }
        let leasable = match &self.body {
            Body::Simple(s) => !s.leased && self.state == JobState::Queued,
            Body::Sliced(s) => {
                if s.hook_leased {
                    false
                } else if !s.before_done || s.after_ready() {
                    true
                } else {
                    !s.queued.is_empty()
                        && self
                            .max_workers
                            .is_none_or(|max| s.leased_slices < max.max(1))
                }
            }
        };
        leasable.then_some(ReadySlot {
            priority: self.priority,
            running: self.state == JobState::Running,
        })
    }
}
