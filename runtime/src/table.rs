//! The job table's rows: what the runtime knows durably about one job,
//! rebuilt by replaying meta records, and written whole into compaction
//! snapshots through the meta log's own wire types (`meta::wire::Row`),
//! never by serializing these structs. Scheduling marks a restart resets
//! (where a job sits in the ready queue, its leases, a refusal) are not
//! here: they live in the job's scheduler entry (`scheduler.rs`), which
//! only unfinished jobs have. `TableView` (`table/view.rs`) holds the rows.

pub mod codec;
pub mod image;
// Nothing writes rows until checkpoints (issue 12, step 3); until then the
// conversion is exercised by its round-trip proptest.
#[allow(dead_code)]
pub mod convert;
pub mod expiry;
pub mod keys;
pub mod kind_index;
pub mod kinds;
pub mod page;
pub mod row;
pub mod slice_map;
pub mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use slice_map::{RangeSet, SliceMap, SliceState};
pub use view::TableView;

use crate::{ErrorGroup, JobId, JobState, RecordErrorSample};

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
    /// The job's own choice (`JobSpec::destroy_on_complete`); None: its
    /// kind's.
    pub destroy_on_complete: Option<bool>,
    /// Set on a destroyed row (a tombstone): when it was destroyed, by the
    /// record's time. `state` stays the state it was destroyed in; the
    /// body, args and properties are gone. Readers see no job
    /// (`TableView::get`), only `TableView::tombstone`.
    pub destroyed_ms: Option<u64>,
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
    /// Leases on this job that expired (`Meta::LeaseExpired`; see `LeasePolicy`).
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
    /// Hook leases that expired (`Meta::LeaseExpired`; see `LeasePolicy`).
    pub hook_expiries: u32,
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
            hook_expiries: 0,
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

    /// The after-batch hook may run: everything succeeded and nothing is
    /// out (`leased_slices`: the scheduler's count of slice leases).
    pub fn after_ready(&self, leased_slices: u32) -> bool {
        self.before_done
            && self.all_slices_finished()
            && self.slices_failed == 0
            && leased_slices == 0
    }

    /// The slices a scheduler entry queues when the job becomes active:
    /// every pending slice not waiting for its automatic retry, less those
    /// a lease still holds (`held`).
    pub fn queueable(&self, held: &[u64]) -> RangeSet {
        let map = &self.slices;
        map.pending()
            .filter(|k| map.queueable(*k) && !held.contains(k))
            .collect()
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

    /// Finished, or destroyed (a tombstone, whatever its state).
    pub fn is_terminal(&self) -> bool {
        self.state.is_finished() || self.destroyed_ms.is_some()
    }

    pub fn is_destroyed(&self) -> bool {
        self.destroyed_ms.is_some()
    }

    /// The job as a tombstone destroyed at `at_ms`: what `job show` needs
    /// to say "completed, then destroyed at T" (times, kind, description,
    /// failure reason), not its body, args or properties.
    pub fn into_destroyed(mut self, at_ms: u64) -> Job {
        self.destroy(at_ms);
        self
    }

    /// Makes the row a tombstone destroyed at `at_ms` (`into_destroyed`).
    pub fn destroy(&mut self, at_ms: u64) {
        static NULL: std::sync::OnceLock<Arc<serde_json::Value>> = std::sync::OnceLock::new();
        let null = NULL.get_or_init(|| Arc::new(serde_json::Value::Null));
        self.destroyed_ms = Some(at_ms);
        self.properties = null.clone();
        self.body = Body::Simple(SimpleBody {
            args: null.clone(),
            result: None,
            expiries: 0,
        });
    }
}
