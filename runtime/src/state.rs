//! The runtime's in-memory state behind one mutex (`Shared::state`): the
//! job table (`TableView`, the durable rows) and the scheduler (`Book`:
//! the entries of unfinished jobs, the ready queue, leases and the
//! bookkeeping around them; `scheduler.rs`).
//!
//! `State::apply` is the only way a durable fact enters the table. It runs
//! after the meta record is durable (live, on the store's commit thread, in
//! commit order) and during replay on open, so both paths give the same
//! table. It must stay deterministic: it never reads the clock. Every record
//! carries its time (a record written before it did takes `Book::log_ms`,
//! the latest time logged before it); the Scheduled/Queued choice compares
//! `run_at` with the record's time, and `release_scheduled` (the timer, and
//! once after replay) queues a job whose time has come.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::{broadcast, oneshot};

use crate::apply_sliced::{apply_sliced, retry, settle};
use crate::id_hash::{IdMap, NumMap};
use crate::meta::{Control, Meta, SimpleOutcome};
use crate::metrics::MetricsState;
use crate::ready::ReadyQueue;
use crate::scheduler::{flag, SlicedLive, Slot};
use crate::table::kinds::KindId;
use crate::table::{Body, Job, SimpleBody, SliceState, SlicedBody, TableView};
use crate::transition;
use crate::{JobEvent, JobId, JobShape, JobState, LeasePolicy, RetryPolicy, RuntimeError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerShape {
    Simple,
    Sliced,
}

pub struct KindConf {
    pub handler: Option<HandlerShape>,
    pub max_running: Option<u32>,
    pub retry: RetryPolicy,
    /// Moving average of one simple job's run time: sizes the next batch lease.
    pub avg_job_us: f64,
    /// None: the runtime's default (`RuntimeOptions::lease_policy`).
    pub lease: Option<LeasePolicy>,
    /// The registered handler's `refuses` (see `waiting.rs`).
    pub refuses: Option<crate::waiting::Refusal>,
    /// The kind's stored settings (`Meta::KindSettings`): while set, they
    /// win over `max_running`, `retry` and `lease`, which this process set.
    pub stored: Option<crate::KindSettings>,
}

impl KindConf {
    /// The running-job limit that applies.
    pub fn max_running(&self) -> Option<u32> {
        self.stored.map_or(self.max_running, |s| s.max_running)
    }
    pub fn retry(&self) -> RetryPolicy {
        self.stored.map_or(self.retry, |s| s.retry)
    }
    /// None: the runtime's default.
    pub fn lease(&self) -> Option<LeasePolicy> {
        self.stored.map_or(self.lease, |s| s.lease)
    }
    /// Only stored settings carry a window: a process sets none in code.
    pub fn window(&self) -> Option<crate::ProcessingWindow> {
        self.stored.and_then(|s| s.window)
    }
}

impl Default for KindConf {
    fn default() -> Self {
        KindConf {
            handler: None,
            max_running: None,
            retry: RetryPolicy::default(),
            avg_job_us: 0.0,
            lease: None,
            refuses: None,
            stored: None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum LeaseWork {
    /// A batch of simple jobs, run one after another.
    Simple(Vec<JobId>),
    Slice {
        job: JobId,
        slice: u64,
    },
    Before {
        job: JobId,
    },
    After {
        job: JobId,
    },
}

pub struct Lease {
    pub epoch: u64,
    pub worker: usize,
    pub since_ms: u64,
    /// `since_ms` to the microsecond: the `started_at` a job's status
    /// shows while no record has started it (a lease is no record).
    pub since_us: u64,
    pub deadline_ms: u64,
    /// The kind's bound on one lease, heartbeats or not (`LeasePolicy::timeout`).
    pub timeout_ms: Option<u64>,
    /// The commit is on its way to the store: the lease can no longer expire.
    pub committing: bool,
    /// Last heartbeat (ms), written by the worker thread.
    pub progress_ms: Arc<AtomicU64>,
    pub work: LeaseWork,
    /// Told how the lease's commit ended when the lease ends
    /// (`end_commit`; dropped, which reads as "not committed", when it
    /// ends any other way): a remote worker's commit is answered only then.
    pub on_end: Option<oneshot::Sender<crate::dispatch::CommitEnd>>,
}

impl LeaseWork {
    /// A commit claiming `claim` may end a lease holding `self`: the same
    /// slice or hook of the same job, or simple jobs all in the claimed
    /// batch (a revoked job leaves the lease's batch, not the worker's).
    pub fn claimed_by(&self, claim: &LeaseWork) -> bool {
        match (self, claim) {
            (LeaseWork::Simple(held), LeaseWork::Simple(claimed)) => {
                // A commit claims the batch it was given, in its order, and
                // a revoked job leaves the held batch keeping the order:
                // one walk of both, where a search of the claim for each
                // held job was quadratic (2.6 % of a 1M burn-down's CPU at
                // a thousand jobs a lease). Any other order (a remote
                // worker's) is looked up in a sorted copy.
                let mut rest = claimed.iter();
                held.iter().all(|j| rest.any(|c| c == j)) || {
                    let mut sorted = claimed.clone();
                    sorted.sort_unstable();
                    held.iter().all(|j| sorted.binary_search(j).is_ok())
                }
            }
            (a, b) => a.same_target(b),
        }
    }

    fn same_target(&self, other: &LeaseWork) -> bool {
        match (self, other) {
            (LeaseWork::Slice { job, slice }, LeaseWork::Slice { job: j2, slice: s2 }) => {
                job == j2 && slice == s2
            }
            (LeaseWork::Before { job }, LeaseWork::Before { job: j2 })
            | (LeaseWork::After { job }, LeaseWork::After { job: j2 }) => job == j2,
            _ => false,
        }
    }
}

impl Lease {
    pub fn touches(&self, job: JobId) -> bool {
        match &self.work {
            LeaseWork::Simple(jobs) => jobs.contains(&job),
            LeaseWork::Slice { job: j, .. }
            | LeaseWork::Before { job: j }
            | LeaseWork::After { job: j } => *j == job,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct WorkerSlot {
    /// Bumped when the thread is replaced; an older thread exits when it sees it.
    pub generation: u64,
    pub lease: Option<u64>,
    /// A remote slot's leases taken before `lease` and perhaps still live
    /// (its thread leases one ahead while it works, and the one before
    /// may wait for its commit to arrive): with all live, the slot leases
    /// nothing more (`State::lease`, `REMOTE_LIVE_LEASES`).
    pub earlier: [Option<u64>; crate::dispatch::REMOTE_LIVE_LEASES - 1],
    pub slices_done: u64,
    pub restarts: u32,
    /// A thread of a remote worker process (`remote.rs`), not of this one.
    pub remote: Option<crate::remote::RemoteSlot>,
}

/// The scheduler: everything but the job table, so a `&mut Job` (a row)
/// and the bookkeeping can be borrowed at once.
pub struct Book {
    /// The entry of every unfinished job (`scheduler.rs`).
    pub active: IdMap<Slot>,
    /// The slice marks of every unfinished sliced job.
    pub sliced_live: IdMap<SlicedLive>,
    /// The ready queue over the entries.
    pub ready: ReadyQueue,
    /// Why this process's handler declines a job (entries flagged `REFUSED`).
    pub refused: IdMap<Arc<str>>,
    /// When this process accepted a job, for the enqueue-to-start
    /// histogram: one submitted job in `ACCEPTED_SAMPLE`, and every urgent one.
    pub accepted: IdMap<std::time::Instant>,
    /// Sliced jobs an `Uploader` of this process is writing into (until
    /// the upload completes or fails, or the job is destroyed).
    pub uploaders: HashSet<JobId>,
    /// The singleton key each unfinished job in `singletons` holds.
    pub singleton_keys: IdMap<Arc<str>>,
    pub kinds: HashMap<Arc<str>, KindConf>,
    /// Kind names and their ids (`table/kinds.rs`), as the log gave them.
    pub kind_ids: crate::table::kinds::KindIds,
    pub leases: NumMap<u64, Lease>,
    /// This process's lease epochs: `generation << EPOCH_COUNTER_BITS | n`.
    pub next_epoch: u64,
    /// The latest open generation in the log (`Meta::Opened`).
    pub generation: u64,
    /// Checkpoints written in this data directory (`Meta::Checkpoint`).
    pub checkpoint_seq: u64,
    /// When this process last took a checkpoint, by its clock.
    pub last_checkpoint_ms: u64,
    /// How its checkpoints fare: the backoff after a failure, and why
    /// they are paused (`checkpoints.rs`).
    pub checkpoints: crate::checkpoints::CheckpointHealth,
    /// Records applied live since the newest checkpoint was sealed, its
    /// own aside (`State::checkpoint_due`).
    pub records_since_checkpoint: u64,
    /// Their bytes as encoded (`State::count_meta_bytes`): what the rows
    /// they changed gained at most, arguments and results included.
    pub meta_bytes_since_checkpoint: u64,
    pub next_id: JobId,
    /// false while replaying: no events, no waiters, no fencing.
    pub live: bool,
    pub scheduled: BTreeSet<(u64, JobId)>,
    /// Slices waiting for an automatic retry (`SliceDetail::retry_at_ms`):
    /// (due, job, slice), released by `release_scheduled`.
    pub slice_retries: BTreeSet<(u64, JobId, u64)>,
    pub expiring: BTreeSet<(u64, JobId)>,
    pub running_by_kind: NumMap<KindId, u32>,
    /// Jobs by state; a destroyed row (a tombstone) counts in `destroyed`
    /// instead, until the retention sweep removes it.
    pub by_state: [u64; 8],
    pub destroyed: u64,
    /// `by_state` and `destroyed` (index 8) by kind id, kept with them;
    /// None when the open could not know every row's kind (an image whose
    /// checkpoint did not count kinds: one from before the kind index).
    /// A kind filter's `total` comes from it.
    pub kind_counts: Option<NumMap<KindId, [u64; 9]>>,
    /// Jobs that completed while a record was applied and say
    /// `destroy_on_complete` (they or their kind): `apply` destroys them
    /// before it returns.
    pub to_destroy: Vec<JobId>,
    /// Some kind's stored settings say `destroy_on_complete` (so a
    /// completion without a choice of its own looks its kind up).
    pub kinds_destroy: bool,
    /// The stored retention periods (`Meta::Retention`; the defaults
    /// until one is logged).
    pub retention: crate::Retention,
    /// When rows the store files for the sweep are next due (by the
    /// clock; 0: look at the next checkpoint), and the earliest due of the
    /// rows finished or destroyed since the last sweep (`table/expiry.rs`).
    pub sweep_due_ms: u64,
    pub finished_due_ms: u64,
    /// The most expiry entries one sweep examines, removed or stale
    /// (`expiry::SWEEP_MAX_ENTRIES`), and the most row pages it touches
    /// (`expiry::SWEEP_MAX_PAGES`); tests lower them.
    pub sweep_max_entries: usize,
    pub sweep_max_pages: usize,
    /// The first row page not yet filed for the sweep while an image
    /// from before step 6 is refiled (`expiry::refile`; None: nothing to
    /// refile), and how many pages a checkpoint refiles
    /// (`expiry::REFILE_PAGES`; tests lower it).
    pub refile_from: Option<u64>,
    pub refile_max_pages: usize,
    /// The row pages whose kind masks may not be written yet, while an
    /// image from before the kind index gets them (`table::kind_index`;
    /// None: every page's are, or there is no image yet, whose whole
    /// first write has them). A kind filter uses the kind index only
    /// when None. Refiled `refile_max_pages` pages a checkpoint.
    pub kind_refile: Option<crate::table::kind_index::KindCursor>,
    pub events: broadcast::Sender<JobEvent>,
    pub waiters: IdMap<Vec<oneshot::Sender<()>>>,
    /// Worker slots: this process's threads first (`local_workers` of
    /// them), then remote workers' threads (`remote.rs`).
    pub workers: Vec<WorkerSlot>,
    pub local_workers: usize,
    /// Remote worker processes and what their leases carry.
    pub fleet: crate::remote::Fleet,
    pub metrics: MetricsState,
    pub poisoned: Option<String>,
    pub draining: bool,
    pub stopping: bool,
    pub lease_timeout_ms: u64,
    pub default_slice_size: u32,
    /// For kinds without their own (`Runtime::set_lease_policy`).
    pub lease_policy: LeasePolicy,
    /// The most simple jobs one lease carries (`RuntimeOptions::max_lease_batch`).
    pub max_lease_batch: usize,
    /// The most bytes of arguments and properties (JSON) one simple lease
    /// of a remote slot carries, so it fits one message
    /// (`RuntimeOptions::max_slice_bytes`; at least one job).
    pub max_remote_batch_bytes: usize,
    /// Submits at this priority or above commit urgently (`RuntimeOptions::urgent_priority`).
    pub urgent_priority: u8,
    /// Jobs whose `Created` record was applied when its batch was placed
    /// and is not durable yet (`placement.rs`): leasable, hidden from
    /// every reader, dropped should the batch fail.
    pub placed: BTreeSet<JobId>,
    /// Urgent submits between their ids and their placement, and the
    /// workers holding for them (`placement::InFlight`).
    pub urgent_in_flight: crate::placement::InFlight,
    /// The last `reserved_workers` worker slots lease only jobs at
    /// `reserved_priority` or above (`RuntimeOptions::reserved_workers`).
    pub reserved_workers: usize,
    pub reserved_priority: u8,
    /// This process runs work (`RuntimeOptions::start_workers`). Without
    /// it, nothing is written but what an API call asks for: a read-only
    /// open (`jobs`, `verify`, `inspect`) changes nothing.
    pub runs_workers: bool,
    /// The timer and shutdown take checkpoints (`RuntimeOptions::auto_checkpoint`).
    pub auto_checkpoint: bool,
    /// Damaged ranges the store opened without (degraded open): shown on
    /// the jobs whose slices they held (`State::damage_of`).
    pub damage: Vec<booster_store::Damage>,
    /// Jobs whose `Created` record was lost with a damaged meta frame
    /// (`lost.rs`): failed rows that no control may run or destroy.
    pub lost: BTreeSet<JobId>,
    /// Singleton keys held by unfinished jobs (`JobSpec::singleton`).
    pub singletons: HashMap<Arc<str>, JobId>,
    /// Keys a submit has checked and is writing (`Runtime::submit_many`).
    pub singleton_pending: HashMap<String, JobId>,
    /// Live only: jobs created failed because their key was taken first
    /// (key, holder), for the submit that made them to report.
    pub singleton_lost_race: HashMap<JobId, (String, JobId)>,
    /// Every `Meta::Recovered` incident in the log, oldest first (a few per
    /// damaged open; kept whole by compaction).
    pub incidents: Vec<crate::Incident>,
    /// The store opened read-only (a full disk): nothing may be written.
    pub store_read_only: bool,
    /// The latest time a meta record carried (applied so far): the time of
    /// a record that carries none (written before it was logged), so
    /// replay never reads the clock.
    pub log_ms: u64,
    /// The runtime's clock (`RuntimeOptions::clock`), for the live paths
    /// that hold the state lock; `apply` never reads it.
    pub clock: Arc<dyn crate::Clock>,
    /// Cron entries by id (`cron.rs`), and the next id to hand out.
    pub crons: BTreeMap<crate::CronId, crate::cron::CronEntry>,
    pub next_cron: crate::CronId,
    /// Dirmon entries by id (`dirmon.rs`), and the next id to hand out.
    pub dirmons: crate::dirmon::Dirmons,
    /// Waiting jobs by the job they wait for, while they wait
    /// (`dependencies.rs`).
    pub dependents: IdMap<Vec<JobId>>,
    /// What each waiting job's dependencies are now, kept as they change,
    /// so settling one reads no row (`dependencies.rs`).
    pub waits: IdMap<crate::dependencies::DependencyWait>,
    /// Unfinished jobs with their own processing window (`Job::window`),
    /// and the minute (ms since the epoch / 60 000) the timer last judged
    /// them at: windows open and close on whole minutes.
    pub windowed: BTreeSet<JobId>,
    pub windows_minute: Option<u64>,
    /// Jobs that finished or went while a record was applied, whose
    /// dependents `apply` settles before it returns.
    pub finished: Vec<JobId>,
    /// Set while a replay may find jobs whose `created` record was lost
    /// (`replay_log`, when the open lost meta records): waiting jobs with
    /// a dependency not in the table, settled only once the lost rows are
    /// in (`State::settle_after_replay`), so they see such a dependency
    /// lost, never "destroyed" (Known fault 7).
    pub settle_later: Option<BTreeSet<JobId>>,
    /// Entries of `dependents` lists scanned (a test's step count).
    #[cfg(test)]
    pub dependents_scanned: u64,
}

/// Bits of a lease epoch that count leases within one open generation:
/// 2^44 leases per open (half a year at a million leases a second).
pub const EPOCH_COUNTER_BITS: u32 = 44;
/// The most open generations a data directory can have (2^20).
pub const MAX_GENERATION: u64 = (1 << (64 - EPOCH_COUNTER_BITS)) - 1;

/// One submitted job in this many has its enqueue-to-start time measured.
pub const ACCEPTED_SAMPLE: u64 = 64;

pub struct State {
    pub table: TableView,
    pub book: Book,
}

impl Book {
    pub fn new(workers: usize, lease_timeout_ms: u64, default_slice_size: u32) -> Book {
        Book {
            active: IdMap::default(),
            sliced_live: IdMap::default(),
            ready: ReadyQueue::default(),
            refused: IdMap::default(),
            accepted: IdMap::default(),
            uploaders: HashSet::new(),
            singleton_keys: IdMap::default(),
            kinds: HashMap::new(),
            kind_ids: Default::default(),
            leases: NumMap::default(),
            next_epoch: 1,
            generation: 0,
            checkpoint_seq: 0,
            last_checkpoint_ms: 0,
            checkpoints: Default::default(),
            records_since_checkpoint: 0,
            meta_bytes_since_checkpoint: 0,
            next_id: 1,
            live: false,
            scheduled: BTreeSet::new(),
            slice_retries: BTreeSet::new(),
            expiring: BTreeSet::new(),
            running_by_kind: NumMap::default(),
            by_state: [0; 8],
            destroyed: 0,
            kind_counts: Some(NumMap::default()),
            to_destroy: Vec::new(),
            kinds_destroy: false,
            retention: crate::Retention::default(),
            sweep_due_ms: 0,
            finished_due_ms: u64::MAX,
            sweep_max_entries: crate::table::expiry::SWEEP_MAX_ENTRIES,
            sweep_max_pages: crate::table::expiry::SWEEP_MAX_PAGES,
            refile_from: None,
            kind_refile: None,
            refile_max_pages: crate::table::expiry::REFILE_PAGES,
            events: broadcast::channel(4096).0,
            waiters: IdMap::default(),
            workers: vec![WorkerSlot::default(); workers],
            local_workers: workers,
            fleet: Default::default(),
            metrics: MetricsState::default(),
            poisoned: None,
            draining: false,
            stopping: false,
            lease_timeout_ms,
            default_slice_size,
            lease_policy: LeasePolicy::default(),
            max_lease_batch: crate::dispatch::SIMPLE_BATCH_MAX,
            max_remote_batch_bytes: usize::MAX,
            urgent_priority: 10,
            placed: BTreeSet::new(),
            urgent_in_flight: Default::default(),
            reserved_workers: 0,
            reserved_priority: 10,
            runs_workers: true,
            auto_checkpoint: true,
            damage: Vec::new(),
            lost: BTreeSet::new(),
            singletons: HashMap::new(),
            singleton_pending: HashMap::new(),
            singleton_lost_race: HashMap::new(),
            incidents: Vec::new(),
            store_read_only: false,
            log_ms: 0,
            clock: Arc::new(crate::SystemClock),
            crons: BTreeMap::new(),
            next_cron: 1,
            dirmons: Default::default(),
            dependents: IdMap::default(),
            waits: IdMap::default(),
            windowed: BTreeSet::new(),
            windows_minute: None,
            finished: Vec::new(),
            settle_later: None,
            #[cfg(test)]
            dependents_scanned: 0,
        }
    }

    /// Moves a job to `new`, keeping every index and counter in step: a
    /// job that finishes leaves the scheduler, one that is retried
    /// re-enters it.
    pub fn set_state(&mut self, job: &mut Job, new: JobState, at_ms: u64) {
        let old = job.state;
        if old == new {
            return;
        }
        self.by_state[old.index()] -= 1;
        self.by_state[new.index()] += 1;
        self.count_kind(job.kind_id, Some(old), false);
        self.count_kind(job.kind_id, Some(new), true);
        if old == JobState::Scheduled {
            self.scheduled.remove(&(job.run_at_ms.unwrap_or(0), job.id));
        }
        if new == JobState::Scheduled {
            self.scheduled.insert((job.run_at_ms.unwrap_or(0), job.id));
        }
        // Back in the queue unstarted (a lease ended unfinished, a resume):
        // its `expires_at` holds again, live as after a reopen
        // (`count_new`). Anywhere else (leased, paused, waiting, finished)
        // it cannot expire, and its timer goes: kept, it held RAM until
        // its time passed (G10), and a reopen rebuilt another set.
        if let Some(at) = job.expires_at_ms {
            if Book::can_expire(new, job) {
                self.expiring.insert((at, job.id));
            } else {
                self.expiring.remove(&(at, job.id));
            }
        }
        job.state = new;
        if self.live {
            match new {
                JobState::Completed => self.metrics.jobs_completed += 1,
                JobState::Failed => self.metrics.jobs_failed += 1,
                _ => {}
            }
        }
        if old == JobState::Waiting {
            self.stop_waiting(job);
        }
        self.dependency_moved(job.id, Some(old), Some(new));
        if new == JobState::Completed && self.destroys_on_complete(job) {
            self.to_destroy.push(job.id);
        }
        if job.is_terminal() {
            job.completed_us = Some(crate::clock::ms_to_us(at_ms));
            self.note_filed(job);
            self.fire_waiters(job.id);
            self.deactivate(job.id);
        } else {
            job.completed_us = None;
            if old.is_finished() {
                self.activate(job);
            } else {
                self.restate(job, old);
            }
        }
        self.emit(job, "state");
    }

    /// The unfinished job that holds singleton `key`, or the submit that is
    /// writing one.
    pub fn singleton_holder(&self, key: &str) -> Option<JobId> {
        self.singletons
            .get(key)
            .or_else(|| self.singleton_pending.get(key))
            .copied()
    }

    /// `job` finished or was destroyed: the next checkpoint files it for
    /// the sweep, which is due once its retention ran out.
    fn note_filed(&mut self, job: &Job) {
        if let Some((f, minute)) = crate::table::expiry::slot_of(job) {
            let due = crate::table::expiry::due_ms(&self.retention, f, minute);
            self.finished_due_ms = self.finished_due_ms.min(due);
        }
    }

    /// Whether `job` is destroyed when it completes: its own choice, else
    /// its kind's stored one (off by default).
    fn destroys_on_complete(&self, job: &Job) -> bool {
        job.destroy_on_complete.unwrap_or_else(|| {
            self.kinds_destroy
                && (self.kinds.get(&*job.kind))
                    .and_then(|k| k.stored)
                    .is_some_and(|s| s.destroy_on_complete)
        })
    }

    /// Whether `job` in `state` can expire (`JobSpec::expires_at`): only
    /// queued or scheduled, never started; `Book::expiring` holds a timer
    /// for exactly those jobs.
    fn can_expire(state: JobState, job: &Job) -> bool {
        matches!(state, JobState::Queued | JobState::Scheduled) && job.started_us.is_none()
    }

    /// A row enters the table (created, restored, lost): counted, and an
    /// unfinished one gets its scheduler entry and the indexes only the
    /// entering record feeds.
    fn count_new(&mut self, job: &Job) {
        self.by_state[job.state.index()] += 1;
        self.count_kind(job.kind_id, Some(job.state), true);
        // A row coming back (a restore replacing it) is its waiters' again.
        self.dependency_moved(job.id, None, Some(job.state));
        if job.is_terminal() {
            self.note_filed(job);
        } else {
            self.activate(job);
            if job.state == JobState::Waiting {
                for dep in &job.after {
                    self.dependents.entry(*dep).or_default().push(job.id);
                }
            }
            // An unfinished run holds its entry (a restored row re-links it).
            if let Some(run) = job.cron {
                if let Some(entry) = self.crons.get_mut(&run.cron) {
                    entry.run.get_or_insert(job.id);
                }
            }
            if job.state == JobState::Scheduled {
                self.scheduled.insert((job.run_at_ms.unwrap_or(0), job.id));
            }
            if let Some(at) = job
                .expires_at_ms
                .filter(|_| Book::can_expire(job.state, job))
            {
                self.expiring.insert((at, job.id));
            }
        }
        if job.id >= self.next_id {
            // `apply` refused an id with no successor (corruption).
            self.next_id = job.id.saturating_add(1);
        }
    }

    /// A row leaves the table (replaced by a restore, destroyed).
    pub(crate) fn count_gone(&mut self, job: &Job) {
        if job.is_destroyed() {
            self.destroyed -= 1;
            self.count_kind(job.kind_id, None, false);
            return;
        }
        self.by_state[job.state.index()] -= 1;
        self.count_kind(job.kind_id, Some(job.state), false);
        if job.state == JobState::Scheduled {
            self.scheduled.remove(&(job.run_at_ms.unwrap_or(0), job.id));
        }
        if let Some(at) = job.expires_at_ms {
            self.expiring.remove(&(at, job.id));
        }
        self.deactivate(job.id);
        self.uploaders.remove(&job.id);
        if job.state == JobState::Waiting {
            self.stop_waiting(job);
        }
        self.dependency_moved(job.id, Some(job.state), None);
    }

    /// A row of kind `kind` in `state` (None: a tombstone) is counted
    /// (`up`) or leaves the count (`kind_counts`).
    pub(crate) fn count_kind(&mut self, kind: KindId, state: Option<JobState>, up: bool) {
        let Some(counts) = self.kind_counts.as_mut() else {
            return;
        };
        let i = state.map_or(8, |s| s.index());
        let n = &mut counts.entry(kind).or_default()[i];
        if up {
            *n += 1;
        } else {
            debug_assert!(*n > 0, "kind {kind}'s count of state {i} below 0");
            *n = n.saturating_sub(1);
        }
    }

    /// A row becomes a tombstone: it leaves as a row that goes does, but a
    /// completed one still counts as completed for the jobs waiting on it
    /// (as `dependency_wait` reads its tombstone at a reopen).
    fn count_destroyed(&mut self, job: &Job) {
        self.count_gone(job);
        self.destroyed += 1;
        self.count_kind(job.kind_id, None, true);
        if job.state == JobState::Completed {
            self.dependency_moved(job.id, None, Some(JobState::Completed));
        }
    }

    /// Generation `g` was opened: leases from now on carry it in their
    /// epoch's high bits, so no epoch of an earlier open is ever handed out
    /// again (a commit from a lease of the previous process is fenced).
    fn open_generation(&mut self, g: u64) -> Result<(), RuntimeError> {
        if g > MAX_GENERATION {
            return Err(RuntimeError::Corrupt(format!(
                "open generation {g} is past the largest ({MAX_GENERATION})"
            )));
        }
        if g > self.generation {
            self.generation = g;
            self.next_epoch = (g << EPOCH_COUNTER_BITS) | 1;
        }
        Ok(())
    }

    /// The lease policy of `kind`.
    pub fn lease_policy(&self, kind: &str) -> LeasePolicy {
        self.kinds
            .get(kind)
            .and_then(|k| k.lease())
            .unwrap_or(self.lease_policy)
    }

    pub fn fire_waiters(&mut self, job: JobId) {
        if let Some(ws) = self.waiters.remove(&job) {
            for w in ws {
                let _ = w.send(());
            }
        }
    }

    pub fn emit(&self, job: &Job, what: &str) {
        if !self.live || self.events.receiver_count() == 0 {
            return;
        }
        // Not durable yet: its `created` event comes when it is.
        if self.placed.contains(&job.id) {
            return;
        }
        let (done, total, out) = match job.sliced() {
            Some(s) => (s.slices_done, s.slices.count(), s.written()),
            None => (u64::from(job.is_terminal()), 1, 0),
        };
        let _ = self.events.send(JobEvent {
            job: job.id,
            state: job.state,
            slices_done: done,
            slices_total: total,
            records_out: out,
            percent: crate::status::percent(job),
            what: what.to_string(),
        });
    }

    /// Revokes every lease on `job` (it was aborted, failed or destroyed):
    /// their late commits are fenced.
    pub(crate) fn revoke_leases(&mut self, job: &Job) {
        if !self.live {
            return;
        }
        let mut gone = Vec::new();
        for lease in self.leases.values_mut() {
            if lease.committing || !lease.touches(job.id) {
                continue;
            }
            match &mut lease.work {
                LeaseWork::Simple(jobs) => {
                    jobs.retain(|j| *j != job.id);
                    if jobs.is_empty() {
                        gone.push(lease.epoch);
                    }
                }
                _ => gone.push(lease.epoch),
            }
        }
        for epoch in gone {
            if let Some(lease) = self.leases.remove(&epoch) {
                lease.progress_ms.store(
                    crate::handler::LEASE_ENDED,
                    std::sync::atomic::Ordering::Relaxed,
                );
                if let Some(slot) = self.workers.get_mut(lease.worker) {
                    if slot.lease == Some(epoch) {
                        slot.lease = None;
                    }
                }
            }
        }
        // Leases already committing stay: their slices are not queued again
        // (their commit decides them).
        let committing: Vec<u64> = self
            .leases
            .values()
            .filter_map(|l| match l.work {
                LeaseWork::Slice { job: j, slice } if j == job.id => Some(slice),
                _ => None,
            })
            .collect();
        let Some(entry) = self.active.get_mut(&job.id) else {
            return;
        };
        entry.set_flag(flag::LEASED | flag::HOOK_LEASED, false);
        if let (Some(a), Some(s)) = (self.sliced_live.get_mut(&job.id), job.sliced()) {
            a.leased_slices = committing.len() as u32;
            a.queued = s.queueable(&committing);
        }
    }
}

/// Most jobs carry null arguments or properties: they share one allocation.
fn shared_value(v: &serde_json::Value) -> Arc<serde_json::Value> {
    static NULL: std::sync::OnceLock<Arc<serde_json::Value>> = std::sync::OnceLock::new();
    if v.is_null() {
        NULL.get_or_init(|| Arc::new(serde_json::Value::Null))
            .clone()
    } else {
        Arc::new(v.clone())
    }
}

fn illegal(job: &Job, action: &str) -> RuntimeError {
    RuntimeError::IllegalTransition {
        job: job.id,
        action: action.to_string(),
        state: job.state,
    }
}

impl State {
    pub fn new(book: Book) -> State {
        State {
            table: TableView::default(),
            book,
        }
    }

    /// Counts `bytes` of durable meta records about to be applied live
    /// toward the next checkpoint's byte trigger (`checkpoint_due`).
    pub fn count_meta_bytes(&mut self, bytes: u64) {
        if self.book.live {
            self.book.meta_bytes_since_checkpoint += bytes;
        }
    }

    /// Applies one durable meta record. Refusals (a transition that became
    /// illegal while its record was being written) change nothing.
    pub fn apply(&mut self, meta: &Meta) -> Result<(), RuntimeError> {
        if let Some(at_ms) = meta.at_ms() {
            self.book.log_ms = self.book.log_ms.max(at_ms);
        }
        if self.book.live && !matches!(meta, Meta::Checkpoint(_)) {
            self.book.records_since_checkpoint += 1;
        }
        let applied = match meta {
            // Applied when placed: now durable, it only shows.
            Meta::Created {
                first_id, specs, ..
            } if self.book.placed.contains(first_id) => {
                self.confirm_placed(*first_id, specs.len() as u64);
                Ok(())
            }
            _ => self.apply_record(meta),
        };
        self.settle_dependents();
        let at_ms = meta.at_ms().unwrap_or(self.book.log_ms);
        self.destroy_completed(at_ms);
        applied
    }

    /// Destroys the jobs that completed in the record just applied and
    /// say `destroy_on_complete` (the job's choice, else its kind's), at
    /// the record's time: the record that completes a job destroys it, so
    /// replay agrees without a record of its own. After their dependents
    /// were settled, which read them completed.
    fn destroy_completed(&mut self, at_ms: u64) {
        if self.book.to_destroy.is_empty() {
            return;
        }
        for id in std::mem::take(&mut self.book.to_destroy) {
            let Some(job) = self.table.get_mut(&id) else {
                continue;
            };
            if job.state == JobState::Completed {
                self.book.by_state[JobState::Completed.index()] -= 1;
                self.book.destroyed += 1;
                self.book
                    .count_kind(job.kind_id, Some(JobState::Completed), false);
                self.book.count_kind(job.kind_id, None, true);
                job.destroy(at_ms);
                self.book.note_filed(job);
                self.book.emit(job, "destroyed");
            }
        }
    }

    /// Why job `id` is not in the table: its tombstone, else whether the
    /// id was ever handed out.
    pub fn missing(&self, id: JobId) -> RuntimeError {
        let why = match self.table.tombstone(&id) {
            // Its creation is not durable yet (`Book::placed`).
            None if self.book.placed.contains(&id) => crate::Missing::Never,
            Some((state, at_ms)) => crate::Missing::Destroyed {
                state,
                at: crate::clock::from_ms(at_ms),
            },
            None if id > 0 && id < self.book.next_id => crate::Missing::Removed,
            None => crate::Missing::Never,
        };
        RuntimeError::NotFound(id, why)
    }

    /// Job `id`'s row, or `NotFound` saying why there is none.
    pub fn job_row(&self, id: JobId) -> Result<std::borrow::Cow<'_, Job>, RuntimeError> {
        if self.book.placed.contains(&id) {
            return Err(self.missing(id));
        }
        self.table.get(&id).ok_or_else(|| self.missing(id))
    }

    /// `job_row` for a control to check: a row that cannot be read is an
    /// error naming the damage, never the lost row `job_row` gives (whose
    /// state a refusal would blame).
    pub fn job_row_checked(&self, id: JobId) -> Result<std::borrow::Cow<'_, Job>, RuntimeError> {
        if self.book.placed.contains(&id) {
            return Err(self.missing(id));
        }
        let row = self.table.get_checked(&id)?;
        row.filter(|j| !j.is_destroyed())
            .ok_or_else(|| self.missing(id))
    }

    pub(crate) fn apply_record(&mut self, meta: &Meta) -> Result<(), RuntimeError> {
        match meta {
            Meta::Created {
                first_id,
                at_ms,
                specs,
            } => {
                // The next id after the last job must exist too.
                let n = specs.len() as u64;
                if !crate::table::keys::ids_fit(*first_id, n) {
                    return Err(RuntimeError::Corrupt(format!(
                        "created: {n} job ids from {first_id} reach the ids the runtime reserves"
                    )));
                }
                for spec in specs {
                    crate::category::check_categories(&spec.categories).map_err(|e| {
                        RuntimeError::Corrupt(format!("created: job of kind {:?}: {e}", spec.kind))
                    })?;
                }
                for (i, spec) in specs.iter().enumerate() {
                    let id = first_id + i as u64;
                    if let Some(run) = spec.cron {
                        // Exactly one run per tick: a run the entry does
                        // not take is not created; its id stays spent.
                        if !self.cron_takes(run) {
                            self.book.next_id = self.book.next_id.max(id + 1);
                            continue;
                        }
                        let entry = self.book.crons.get_mut(&run.cron);
                        entry.expect("cron_takes found it").last_tick_ms = Some(run.tick_ms);
                    }
                    let mut job = self.new_job(id, *at_ms, spec);
                    // The log decides a race the submit's check could not
                    // see (a retry that took the key first): the later job
                    // is created failed, live and on replay alike.
                    let held = job
                        .singleton
                        .as_ref()
                        .and_then(|k| self.book.singletons.get(k));
                    if let (Some(key), Some(&holder)) = (&job.singleton, held) {
                        job.failure_reason = Some(format!(
                            "singleton {key:?} was held by job {holder} when this job was created"
                        ));
                        job.state = JobState::Failed;
                        job.completed_us = Some(crate::clock::ms_to_us(*at_ms));
                        if self.book.live {
                            let lost = (key.to_string(), holder);
                            self.book.singleton_lost_race.insert(job.id, lost);
                        }
                    }
                    let waits = job.state == JobState::Waiting;
                    self.book.dirmons.note_created(spec, id);
                    self.insert(job, "created");
                    if waits {
                        self.settle_entering(id);
                    }
                }
                Ok(())
            }
            Meta::Restore { job } => self.restore((**job).clone()),
            Meta::NextId { next } => {
                if *next > crate::table::keys::RESERVED_OWNER_BASE {
                    return Err(RuntimeError::Corrupt(format!(
                        "next_id {next} is past the ids the runtime reserves"
                    )));
                }
                self.book.next_id = self.book.next_id.max(*next);
                Ok(())
            }
            Meta::Opened { generation, .. } => self.book.open_generation(*generation),
            Meta::Checkpoint(c) => self.apply_checkpoint(c),
            Meta::Retention { retention, .. } => {
                self.book.retention = *retention;
                // A shorter period may make rows due now.
                self.book.sweep_due_ms = 0;
                Ok(())
            }
            Meta::KindId { id, name } => {
                self.book.kind_ids.apply(*id, name)?;
                if let Some(id) = self.book.kind_ids.id(name) {
                    let name = self.book.kind_ids.name(id).cloned().expect("interned");
                    self.table.know_kind(id, &name);
                }
                Ok(())
            }
            Meta::LeaseExpired { work, .. } => {
                self.count_expiry(work);
                Ok(())
            }
            Meta::Recovered { incidents, .. } => {
                self.book.incidents.extend(incidents.iter().cloned());
                Ok(())
            }
            Meta::KindSettings { kind, settings, .. } => {
                let key: Arc<str> = match self.book.kinds.get_key_value(kind.as_str()) {
                    Some((k, _)) => k.clone(),
                    None => Arc::from(kind.as_str()),
                };
                self.book.kinds.entry(key).or_default().stored = *settings;
                self.book.kinds_destroy = (self.book.kinds.values())
                    .any(|k| k.stored.is_some_and(|s| s.destroy_on_complete));
                Ok(())
            }
            Meta::SimpleDone {
                at_ms,
                at_us,
                outcomes,
            } => {
                for o in outcomes {
                    if !self.apply_simple_outcome(*at_ms, o) {
                        continue;
                    }
                    // The record's own microseconds, where it has them.
                    if let (Some(us), Some(job)) = (at_us, self.table.resident_mut(&o.job)) {
                        if job.is_terminal() {
                            job.completed_us = Some(*us);
                        }
                    }
                }
                Ok(())
            }
            Meta::Control { job, at_ms, action } => self.apply_control(*job, *at_ms, action),
            Meta::Cron {
                cron,
                at_ms,
                change,
            } => self.apply_cron(*cron, *at_ms, change),
            Meta::Dirmon {
                dirmon,
                at_ms,
                change,
            } => self.apply_dirmon(*dirmon, *at_ms, change),
            _ => self.apply_to_job(meta),
        }
    }

    /// A checkpoint's counters; its rows are read from its pages by the
    /// open (`table/image.rs`), after the records of its batch.
    fn apply_checkpoint(&mut self, c: &crate::meta::Checkpoint) -> Result<(), RuntimeError> {
        if c.table_version != crate::meta::TABLE_VERSION {
            return Err(RuntimeError::Corrupt(format!(
                "checkpoint {} is of table format {}, which this version does not read; \
                 open the data directory with the version that wrote it",
                c.seq, c.table_version
            )));
        }
        if c.next_id > crate::table::keys::RESERVED_OWNER_BASE {
            return Err(RuntimeError::Corrupt(format!(
                "checkpoint {}: next_id {} is past the ids the runtime reserves",
                c.seq, c.next_id
            )));
        }
        self.book.open_generation(c.generation)?;
        self.book.next_id = self.book.next_id.max(c.next_id);
        self.book.log_ms = self.book.log_ms.max(c.log_ms);
        self.book.checkpoint_seq = self.book.checkpoint_seq.max(c.seq);
        Ok(())
    }

    /// One more expiry of `work`'s lease, for work still unfinished.
    fn count_expiry(&mut self, work: &crate::meta::Expired) {
        use crate::meta::Expired;
        let (table, active) = (&mut self.table, &self.book.active);
        let mut bump = |id: JobId, f: &mut dyn FnMut(&mut Body)| {
            if let Some(job) = table.unfinished_mut(&id, active.contains_key(&id)) {
                f(&mut job.body);
            }
        };
        match work {
            Expired::Slice { job, slice } => bump(*job, &mut |b| {
                if let Body::Sliced(s) = b {
                    if s.slices.state(*slice).is_some() {
                        s.slices
                            .with_detail(*slice, |d| d.expiries = d.expiries.saturating_add(1));
                    }
                }
            }),
            Expired::Hook { job } => bump(*job, &mut |b| {
                if let Body::Sliced(s) = b {
                    s.hook_expiries = s.hook_expiries.saturating_add(1);
                }
            }),
            Expired::Simple { jobs } => {
                for &id in jobs {
                    bump(id, &mut |b| {
                        if let Body::Simple(s) = b {
                            s.expiries = s.expiries.saturating_add(1);
                        }
                    });
                }
                for id in jobs {
                    if let Some(slot) = self.book.active.get_mut(id) {
                        slot.set_flag(flag::SUSPECT, true);
                    }
                }
            }
        }
    }

    /// A failed row for job `id`, whose `Created` record was lost: its
    /// kind, spec and times are unknown, `reason` says where it went. Its
    /// times are when the loss was first logged (a `Recovered` incident
    /// that lost meta records), else the latest time in the log, so they
    /// do not move with every open.
    pub fn insert_lost(&mut self, id: JobId, reason: &str) {
        let found = self.book.incidents.iter().filter_map(|i| match i.kind {
            crate::IncidentKind::Damaged {
                meta_lost: true, ..
            } => Some(crate::clock::to_ms(i.at)),
            _ => None,
        });
        let at_ms = found.min().unwrap_or(self.book.log_ms);
        self.insert_lost_row(crate::lost::lost_job(id, at_ms, reason.to_string()));
    }

    /// Puts `job`, a lost row (`lost::lost_job`), in the table: no
    /// control may run or destroy it.
    pub fn insert_lost_row(&mut self, job: Job) {
        let id = job.id;
        self.book.lost.insert(id);
        self.insert(job, "lost");
    }

    /// Reads job `id`'s row back into RAM where a checkpoint let it go
    /// (`TableView::load`; issue 12 step 5): true when it is in RAM now
    /// (or there is no such row and no slot). False when its page is
    /// damaged (`lost::is_damage`), or holds no row for a job the
    /// scheduler has a slot for (the page's key gone, or the image): the
    /// job is then a lost row naming the page (failed, out of the
    /// scheduler), as an open over that page makes it, never skipped, left
    /// queued or a panic, and the page is noted so no checkpoint cuts the
    /// log (`TableView::note_unreadable`). Err for any other read error
    /// (EIO, EMFILE, a failed map): nothing changed, the job stays queued.
    pub(crate) fn make_resident(&mut self, id: JobId) -> Result<bool, crate::RuntimeError> {
        let page = crate::table::keys::page_of(id).0;
        let e = match self.table.load(&id) {
            Err(e) if !crate::lost::is_damage(&e) => return Err(e),
            Err(e) => e,
            Ok(true) => return Ok(true),
            Ok(false) if !self.book.active.contains_key(&id) => return Ok(true),
            Ok(false) => crate::RuntimeError::Corrupt(format!(
                "the checkpoint's table: row missing from page {page} (job {id})"
            )),
        };
        let reason = crate::lost::page_reason(page, &e);
        self.table.note_unreadable(page, e);
        if let Some((state, kind)) = (self.book.active.get(&id)).map(|s| (s.state, s.kind_id)) {
            self.book.by_state[state.index()] -= 1;
            self.book.count_kind(kind, Some(state), false);
            self.book.deactivate(id);
            self.book.dependency_moved(id, Some(state), None);
        }
        let at_ms = self.book.log_ms;
        self.insert_lost_row(crate::lost::lost_job(id, at_ms, reason));
        Ok(false)
    }

    fn new_job(&mut self, id: JobId, at_ms: u64, spec: &crate::JobSpec) -> Job {
        let kind: Arc<str> = match self.book.kinds.get_key_value(spec.kind.as_str()) {
            Some((k, _)) => k.clone(),
            None => Arc::from(spec.kind.as_str()),
        };
        let run_at_ms = spec.run_at.map(crate::clock::to_ms);
        let body = match &spec.shape {
            JobShape::Simple { args } => Body::Simple(SimpleBody {
                args: shared_value(args),
                result: None,
                expiries: 0,
            }),
            JobShape::Sliced {
                slice_size,
                collect_errors,
            } => Body::Sliced(Box::new(
                SlicedBody::new(
                    slice_size
                        .map(|s| s.clamp(1, u32::MAX as usize) as u32)
                        .unwrap_or(self.book.default_slice_size),
                    *collect_errors,
                )
                .with_categories(spec.categories.clone()),
            )),
        };
        // The record's time, not the clock's: replay gives the table the
        // live process had; the timer releases a job whose time has come.
        let scheduled = run_at_ms.is_some_and(|t| t > at_ms);
        Job {
            id,
            kind,
            kind_id: 0,
            description: spec.description.clone(),
            priority: spec.priority.clamp(1, 100),
            max_workers: spec.max_workers,
            run_at_ms,
            expires_at_ms: spec.expires_at.map(crate::clock::to_ms),
            created_ms: at_ms,
            started_us: None,
            completed_us: None,
            state: if !spec.after.is_empty() {
                JobState::Waiting
            } else if scheduled {
                JobState::Scheduled
            } else {
                JobState::Queued
            },
            properties: shared_value(&spec.properties),
            failure_reason: None,
            attempts: 0,
            body,
            singleton: spec.singleton.as_deref().map(Arc::from),
            cron: spec.cron,
            after: spec.after.clone(),
            on_dependency_failure: spec.on_dependency_failure,
            window: spec.window,
            destroy_on_complete: spec.destroy_on_complete,
            destroyed_ms: None,
        }
    }

    /// `apply` of a `restore` record of `job`, the row handed over rather
    /// than copied (the open, `image::restore_rows`: one row at a time,
    /// millions of them).
    pub(crate) fn apply_restore(&mut self, job: Job) -> Result<(), RuntimeError> {
        if self.book.live {
            self.book.records_since_checkpoint += 1;
        }
        let applied = self.restore(job);
        self.settle_dependents();
        self.destroy_completed(self.book.log_ms);
        applied
    }

    /// A row as a `restore` record (or the open, `image::restore_rows`,
    /// which hands it over rather than have it copied) puts it: a running
    /// job with no ran before hook is queued again, since no lease
    /// survives a restart.
    fn restore(&mut self, mut job: Job) -> Result<(), RuntimeError> {
        if !crate::table::keys::ids_fit(job.id, 1) {
            return Err(RuntimeError::Corrupt(format!(
                "restore: job id {} is one the runtime reserves",
                job.id
            )));
        }
        if let Some(s) = job.sliced() {
            crate::category::check_categories(&s.categories)
                .map_err(|e| RuntimeError::Corrupt(format!("restore: job {}: {e}", job.id)))?;
        }
        let mut started = false;
        if let Body::Sliced(s) = &job.body {
            let map = &s.slices;
            for (k, d) in &map.detail {
                if let (Some(SliceState::Pending), Some(at)) = (map.state(*k), d.retry_at_ms) {
                    self.book.slice_retries.insert((at, job.id, *k));
                }
            }
            // No lease survives a restart: only a ran before hook
            // keeps a sliced job running.
            started = s.before_done;
        }
        let requeued = job.state == JobState::Running && !started;
        if requeued {
            job.state = JobState::Queued;
        }
        let id = job.id;
        self.insert(job, "restored");
        if requeued {
            // Not the row the image holds: written at the next checkpoint.
            self.table.get_mut(&id);
        }
        Ok(())
    }

    fn insert(&mut self, mut job: Job, what: &str) {
        if let Some(old) = self.table.take_resident(job.id) {
            self.book.count_gone(&old);
        }
        job.kind_id = self.book.kind_ids.intern(&job.kind);
        self.table.know_kind(job.kind_id, &job.kind);
        self.book.count_new(&job);
        if job.state == JobState::Waiting {
            let wait = self.dependency_wait(&job);
            self.book.waits.insert(job.id, wait);
        }
        if self.book.active.contains_key(&job.id) {
            let refused = self.refusal_of(&job);
            self.book.set_refused(job.id, refused);
            let urgent = job.priority <= self.book.urgent_priority;
            if self.book.live
                && what == "created"
                && (urgent || job.id.is_multiple_of(ACCEPTED_SAMPLE))
            {
                self.book.accepted.insert(job.id, std::time::Instant::now());
            }
        }
        self.book.refile(&job);
        self.book.emit(&job, what);
        self.table.insert(job);
    }

    /// Applies a simple job's outcome; false when it did nothing (the job
    /// had finished, or is not a simple job).
    fn apply_simple_outcome(&mut self, at_ms: u64, o: &SimpleOutcome) -> bool {
        let active = self.book.active.contains_key(&o.job);
        let Some(job) = self.table.unfinished_mut(&o.job, active) else {
            return false;
        };
        let Body::Simple(body) = &mut job.body else {
            return false;
        };
        job.started_us.get_or_insert(o.started_us);
        job.attempts = job.attempts.saturating_add(1);
        match &o.result {
            Ok(v) => {
                body.result = v.clone();
                job.failure_reason = None;
                self.book.set_state(job, JobState::Completed, at_ms);
            }
            Err(message) => {
                job.failure_reason = Some(message.clone());
                match o.retry_at_ms {
                    Some(at) if job.state != JobState::Paused => {
                        job.run_at_ms = Some(at);
                        self.book.set_state(job, JobState::Scheduled, at_ms);
                    }
                    _ => self.book.set_state(job, JobState::Failed, at_ms),
                }
            }
        }
        self.book.refile(job);
        true
    }

    fn apply_control(
        &mut self,
        id: JobId,
        at_ms: u64,
        action: &Control,
    ) -> Result<(), RuntimeError> {
        let Some(job) = self.table.get_mut(&id) else {
            return Err(self.missing(id));
        };
        let simple = matches!(job.body, Body::Simple(_));
        if !transition::allowed(action, job.state, simple) {
            return Err(illegal(job, action.verb()));
        }
        let book = &mut self.book;
        match action {
            Control::Pause => book.set_state(job, JobState::Paused, at_ms),
            Control::Resume => {
                let next = if job.run_at_ms.is_some_and(|t| t > at_ms) {
                    JobState::Scheduled
                } else if book.has_started(job) {
                    JobState::Running
                } else {
                    JobState::Queued
                };
                book.set_state(job, next, at_ms);
                settle(book, job, at_ms);
            }
            Control::Abort => {
                book.revoke_leases(job);
                book.set_state(job, JobState::Aborted, at_ms);
            }
            Control::Fail { reason } => {
                book.revoke_leases(job);
                job.failure_reason = Some(reason.clone());
                book.set_state(job, JobState::Failed, at_ms);
            }
            Control::Retry => {
                let held = job.singleton.as_ref().and_then(|k| book.singletons.get(k));
                if let (Some(key), Some(&holder)) = (&job.singleton, held) {
                    if holder != job.id {
                        return Err(RuntimeError::SingletonHeld {
                            key: key.to_string(),
                            job: holder,
                        });
                    }
                }
                retry(book, job, at_ms)?
            }
            Control::Expire => {
                if job.started_us.is_some() {
                    return Err(illegal(job, "expire"));
                }
                job.failure_reason = Some(format!(
                    "expired: its expires_at ({} ms since the epoch) passed before a run of it \
                     finished",
                    job.expires_at_ms.unwrap_or(0)
                ));
                book.set_state(job, JobState::Aborted, at_ms);
                book.emit(job, "expired");
            }
            Control::Destroy => {
                // The row stays as a tombstone for the retention period.
                book.revoke_leases(job);
                book.count_destroyed(job);
                job.destroy(at_ms);
                book.note_filed(job);
                book.fire_waiters(id);
                book.emit(job, "destroyed");
                return Ok(());
            }
        }
        self.book.refile(job);
        Ok(())
    }

    fn apply_to_job(&mut self, meta: &Meta) -> Result<(), RuntimeError> {
        let id = meta
            .single_job()
            .expect("apply hands on only records of one job");
        // Records that change only an unfinished job: one without a slot
        // has finished (or gone), and is not read to be refused.
        let unfinished_only = match meta {
            Meta::Priority { .. } => Some("change the priority of"),
            Meta::MaxWorkers { .. } => Some("change max_workers of"),
            Meta::HookFailed { .. } => Some(""),
            _ => None,
        };
        if let Some(verb) = unfinished_only.filter(|_| !self.book.active.contains_key(&id)) {
            return match verb {
                "" => Ok(()),
                verb => Err(RuntimeError::Invalid(format!(
                    "cannot {verb} job {id}: it has finished (or is gone)"
                ))),
            };
        }
        let Some(job) = self.table.get_mut(&id) else {
            return Err(self.missing(id));
        };
        let book = &mut self.book;
        match meta {
            Meta::Priority { priority, .. } => {
                if job.is_terminal() {
                    return Err(illegal(job, "change the priority of"));
                }
                job.priority = (*priority).clamp(1, 100);
                if let Some(entry) = book.active.get_mut(&id) {
                    entry.priority = job.priority;
                }
                book.emit(job, "priority");
            }
            Meta::MaxWorkers { max_workers, .. } => {
                if job.is_terminal() {
                    return Err(illegal(job, "change max_workers of"));
                }
                job.max_workers = *max_workers;
            }
            Meta::HookFailed { at_ms, message, .. } => {
                if !job.is_terminal() {
                    job.failure_reason = Some(message.clone());
                    book.revoke_leases(job);
                    book.set_state(job, JobState::Failed, *at_ms);
                }
            }
            _ => {
                let failed = |job: &Job| {
                    job.sliced().map_or(0, |s| {
                        s.records_errors.saturating_add(s.records_in_failed_slices)
                    })
                };
                let before = failed(job);
                apply_sliced(book, job, meta)?;
                if book.live {
                    book.metrics.records_failed += failed(job).saturating_sub(before);
                }
            }
        }
        book.refile(job);
        Ok(())
    }
}
