//! The dispatcher: hands out leases in global priority order, applies the
//! per-job `max_workers` and per-kind running-job limits, fences commits of
//! leases that expired or were revoked, and expires leases whose heartbeat
//! stopped. All of it runs under the state mutex, called directly by worker
//! threads (a lease costs a lock, not a message round trip).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::meta::{Expired, Meta, SimpleOutcome};
use crate::ready::KindGate;
use crate::scheduler::flag;
use crate::state::{Lease, LeaseWork, State};
use crate::table::kinds::KindId;
use crate::table::{Body, SliceState};
use crate::{JobId, JobState, LeasePolicy, RetryPolicy};

/// What a worker thread runs: copied out of the table so the handler runs
/// without the lock.
pub struct Task {
    pub epoch: u64,
    pub progress_ms: Arc<AtomicU64>,
    pub work: TaskWork,
}

impl Task {
    /// The work this task names, as its commit claims it (`begin_commit`).
    pub fn claim(&self) -> LeaseWork {
        match &self.work {
            TaskWork::Simple(items) => LeaseWork::Simple(items.iter().map(|i| i.job).collect()),
            TaskWork::Slice(item) => item.claim(),
            TaskWork::Before(item) => LeaseWork::Before { job: item.job },
            TaskWork::After(item) => LeaseWork::After { job: item.job },
        }
    }

    /// The (first) job it runs.
    pub fn first_job(&self) -> JobId {
        match &self.work {
            TaskWork::Simple(items) => items.first().map_or(0, |i| i.job),
            TaskWork::Slice(item) => item.job,
            TaskWork::Before(item) | TaskWork::After(item) => item.job,
        }
    }
}

impl SliceItem {
    pub fn claim(&self) -> LeaseWork {
        LeaseWork::Slice {
            job: self.job,
            slice: self.slice,
        }
    }
}

pub enum TaskWork {
    Simple(Vec<SimpleItem>),
    Slice(SliceItem),
    Before(HookItem),
    After(HookItem),
}

pub struct SimpleItem {
    pub job: JobId,
    pub kind: Arc<str>,
    pub args: Arc<serde_json::Value>,
    pub properties: Arc<serde_json::Value>,
    pub attempts: u32,
    pub retry: RetryPolicy,
}

pub struct SliceItem {
    pub job: JobId,
    pub kind: Arc<str>,
    pub properties: Arc<serde_json::Value>,
    pub categories: Arc<[String]>,
    pub slice: u64,
    pub first_record: u64,
    pub line_first: Option<u64>,
    pub lines: Option<Arc<Vec<u64>>>,
    pub numbers: Option<Arc<Vec<u64>>>,
    pub collect_errors: bool,
    /// The slice's automatic retries so far, and the kind's policy.
    pub retries: u32,
    pub retry: RetryPolicy,
}

pub struct HookItem {
    pub job: JobId,
    pub kind: Arc<str>,
    pub properties: Arc<serde_json::Value>,
    pub categories: Arc<[String]>,
}

/// Work due from the timers.
#[derive(Default)]
pub struct TickOutcome {
    /// Worker slots whose thread hung past its deadline: start a new thread.
    pub replace_workers: Vec<usize>,
    /// Jobs not started before `expires_at`.
    pub expire: Vec<JobId>,
    /// Leases that expired: write their records, one batch each.
    pub expired: Vec<ExpiredLease>,
}

/// An expired lease's records: `Meta::LeaseExpired` (the count is durable),
/// then, when the work expired `max_expiries` times, the record that fails
/// it. The lease is held (a late commit of the hung handler is fenced)
/// until they are durable, then released: its work is leased again only
/// once the new count is applied, so work that shared a lease with a hung
/// job is known as suspect (`expiries > 0`) and leased alone.
pub struct ExpiredLease {
    pub epoch: u64,
    pub records: Vec<Meta>,
}

/// How a lease's commit ended (`State::end_commit`): what a remote
/// worker's commit is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitEnd {
    /// The records the commit made of its outcome are durable.
    Durable,
    /// Durable, but not the outcome as given: the node could not store it
    /// (over the slice cap, refused by the store, its input unreadable)
    /// and a failure record, saying why, is durable in its place.
    /// `partial`: only some of a simple batch's results were replaced (over
    /// the cap), the rest are durable as given; false when none of the
    /// outcome is (the store refused the whole batch, a slice).
    Replaced { why: String, partial: bool },
    /// Nothing was written: the work runs again.
    NotDurable,
}

/// The live (not committing) leases a remote worker thread may hold: the
/// one it runs, the one it asked for ahead, and the one it finished whose
/// commit is still on its way. A thread sends a commit and asks for the
/// next lease at once; with two, that ask waited for the commit to arrive
/// and be made durable (an fsync), and a thread on short slices idled
/// for it at every slice (`fleet` bench: remote 0.16 of local).
pub const REMOTE_LIVE_LEASES: usize = 3;

/// Longest a batch of simple jobs should take, so a priority-1 job waits at
/// most about this long for a worker that is busy with small jobs.
const SIMPLE_BATCH_BUDGET_US: f64 = 1000.0;

/// At most this many queued jobs one lease call makes lost rows (a row
/// page's worth; `State::resident_for_lease`).
const MAX_LOST_PER_LEASE: u64 = crate::table::keys::ROWS_PER_PAGE;

/// The most simple jobs one lease carries unless
/// `RuntimeOptions::max_lease_batch` says fewer.
pub const SIMPLE_BATCH_MAX: usize = 1000;

impl State {
    /// What the lease picker may take of `kind` now. A kind outside its
    /// processing window starts nothing, not even the next slice of a
    /// running job: the window is read against the clock here, at lease
    /// time, and the timer's tick wakes the workers when it opens.
    fn gate(&self, kind_id: KindId, kind: &str) -> KindGate {
        self.gate_as(kind_id, kind, false)
    }

    /// `gate`; `runs_elsewhere`: the slot's remote process runs `kind`
    /// with its own handler, so none need be registered here (a
    /// service's own kinds); a configured window or limit still applies.
    fn gate_as(&self, kind_id: KindId, kind: &str, runs_elsewhere: bool) -> KindGate {
        let unconfigured = KindGate {
            runnable: true,
            may_start: true,
        };
        match self.book.kinds.get(kind) {
            None if runs_elsewhere => unconfigured,
            Some(k)
                if (k.handler.is_some() || runs_elsewhere)
                    && k.window()
                        .is_none_or(|w| w.is_open(self.book.clock.now_ms())) =>
            {
                KindGate {
                    runnable: true,
                    may_start: k.max_running().is_none_or(|max| {
                        self.book
                            .running_by_kind
                            .get(&kind_id)
                            .copied()
                            .unwrap_or(0)
                            < max
                    }),
                }
            }
            _ => KindGate {
                runnable: false,
                may_start: false,
            },
        }
    }

    /// Leasing is possible at all (not draining, not poisoned).
    pub fn accepting_leases(&self) -> bool {
        !self.book.draining && !self.book.stopping && self.book.poisoned.is_none()
    }

    /// The most urgent job `worker` may lease: a slot of the reserved lane
    /// takes only jobs at the lane's priority or above.
    ///
    /// A remote slot takes only the kinds its process runs, only jobs its
    /// allow lists pass (`exec`: its own `--exec-allow`), and a job with
    /// `after` dependencies only if its process reads their output
    /// (`RemoteSlot::takes`; an older worker would run it without it,
    /// silently wrong). The reserved lane is made of this process's own
    /// slots. `max_priority`: no job of a larger number is taken (a
    /// worker whose commits queue full takes only urgent jobs:
    /// `State::lease_urgent`).
    fn first_for(&self, worker: usize, max_priority: u8) -> Option<(u8, JobId)> {
        let remote = self
            .book
            .workers
            .get(worker)
            .and_then(|s| s.remote.as_ref());
        let gate = |id, k: &str| match remote {
            Some(r) if !r.runs(k) => KindGate {
                runnable: false,
                may_start: false,
            },
            Some(_) => self.gate_as(id, k, true),
            None => self.gate(id, k),
        };
        let first = match remote {
            None => self.book.ready.first(gate),
            Some(r) => self.book.ready.first_where(gate, |id| {
                self.table.get(&id).is_none_or(|j| r.takes(&j))
                    && self.book.fleet.declined(r.group, id).is_none()
            }),
        }?;
        let local = self.book.local_workers;
        let lane = local - self.book.reserved_workers.min(local);
        let ceiling = if worker >= lane && worker < local {
            max_priority.min(self.book.reserved_priority)
        } else {
            max_priority
        };
        (first.0 <= ceiling).then_some(first)
    }

    /// The leases of slot `worker` that are live (not committing): the
    /// most a remote slot holds is `REMOTE_LIVE_LEASES`.
    fn live_leases_of(&self, worker: usize) -> Vec<u64> {
        let Some(slot) = self.book.workers.get(worker) else {
            return Vec::new();
        };
        let live = |e: &u64| self.book.leases.get(e).is_some_and(|l| !l.committing);
        std::iter::once(slot.lease)
            .chain(slot.earlier)
            .flatten()
            .filter(live)
            .collect()
    }

    /// Slot `worker` may take another lease: a local thread holds one at
    /// a time by itself; a remote one is bounded here, since the node
    /// cannot trust it to (a thread runs one lease and asks for the next:
    /// two live leases, any number committing). A remote process that
    /// asked for more would hoard the queue behind a private backlog, and
    /// a priority-1 job would wait for it (G5).
    fn has_room(&self, worker: usize) -> bool {
        let remote = self
            .book
            .workers
            .get(worker)
            .is_some_and(|s| s.remote.is_some());
        !remote || self.live_leases_of(worker).len() < REMOTE_LIVE_LEASES
    }

    /// The next lease for `worker`, or None when nothing is leasable.
    pub fn lease(&mut self, worker: usize, now_ms: u64) -> Option<Task> {
        self.lease_at_most(worker, now_ms, u8::MAX)
    }

    /// The next lease for `worker` of an urgent job (priority
    /// `urgent_priority` or above, the urgent lane's rule), or None: what
    /// a worker whose commit thread is behind may take ("The freed
    /// worker's commit", ARCHITECTURE.md).
    pub fn lease_urgent(&mut self, worker: usize, now_ms: u64) -> Option<Task> {
        self.lease_at_most(worker, now_ms, self.book.urgent_priority)
    }

    /// Whether every job of `specs`, once applied, could be leased at
    /// `now_ms` as far as the jobs themselves go: leasing is on, no
    /// `run_at` later than now, its own window and its kind's open, its
    /// kind has a handler here and room under its `max_running`. Only
    /// such an urgent submit is announced to the freed workers
    /// (`placement::InFlight`): holding for one `lease_urgent` would
    /// refuse would only keep them from other work.
    pub(crate) fn leasable_now(&self, specs: &[crate::JobSpec], now_ms: u64) -> bool {
        self.accepting_leases()
            && specs.iter().all(|s| {
                s.run_at.is_none_or(|t| crate::clock::to_ms(t) <= now_ms)
                    && s.window.is_none_or(|w| w.is_open(now_ms))
                    && s.after.is_empty()
                    && self.book.kind_ids.id(&s.kind).is_some_and(|id| {
                        let gate = self.gate(id, &s.kind);
                        gate.runnable && gate.may_start
                    })
            })
    }

    /// The next lease for `worker` of a job at `max_priority` or above.
    fn lease_at_most(&mut self, worker: usize, now_ms: u64, max_priority: u8) -> Option<Task> {
        if !self.accepting_leases() {
            return None;
        }
        // A job's own window is judged here too, not only by the timer: a
        // worker that finishes a slice just after the window's end must
        // not take the next one before the timer's tick.
        self.judge_job_windows(now_ms);
        if !self.has_room(worker) {
            return None;
        }
        // A queued row a checkpoint let go is read back from its page; one
        // whose page is damaged is made lost, and the next is tried.
        let mut lost = 0;
        let id = loop {
            let (_, id) = self.first_for(worker, max_priority)?;
            if self.resident_for_lease(id, &mut lost)? {
                break id;
            }
        };
        // The row gives the kind's name, the args and the properties (read
        // back under the state lock: not yet by the worker thread).
        // At least 1 ms: the wire carries the bound in whole milliseconds
        // with 0 for none, so a bound under 1 ms (one set in code; a
        // stored one is refused) would end the lease here while a remote
        // worker read it as no bound.
        let timeout_ms = self
            .book
            .lease_policy(&self.table[&id].kind)
            .timeout
            .map(|t| (t.as_millis() as u64).max(1));
        let progress_ms = Arc::new(AtomicU64::new(now_ms));
        let epoch = self.book.next_epoch;
        self.book.next_epoch += 1;
        debug_assert_ne!(
            self.book.next_epoch & ((1 << crate::state::EPOCH_COUNTER_BITS) - 1),
            0,
            "2^44 leases in one open: the next would carry the next generation"
        );
        let sliced = self
            .book
            .active
            .get(&id)
            .is_some_and(|e| e.has(flag::SLICED));
        let (work, task) = if !sliced {
            let items = self.lease_simple_batch(worker, id, now_ms, max_priority, &mut lost);
            let ids = items.iter().map(|i| i.job).collect();
            (LeaseWork::Simple(ids), TaskWork::Simple(items))
        } else {
            self.lease_sliced(id, now_ms)
        };
        let mut deadline_ms = now_ms + self.book.lease_timeout_ms;
        if let Some(t) = timeout_ms {
            deadline_ms = deadline_ms.min(now_ms.saturating_add(t));
        }
        self.book.leases.insert(
            epoch,
            Lease {
                epoch,
                worker,
                since_ms: now_ms,
                since_us: self.book.clock.now_us(),
                deadline_ms,
                timeout_ms,
                committing: false,
                progress_ms: progress_ms.clone(),
                work,
                on_end: None,
            },
        );
        let live = self.live_leases_of(worker);
        if let Some(slot) = self.book.workers.get_mut(worker) {
            let mut live = live.into_iter();
            slot.earlier = std::array::from_fn(|_| live.next());
            slot.lease = Some(epoch);
        }
        Some(Task {
            epoch,
            progress_ms,
            work: task,
        })
    }

    /// `make_resident` for a lease: Some(true) when job `id`'s row is in
    /// RAM, Some(false) when it was made a lost row (counted in `lost`),
    /// None when this lease must end: a passing read error (logged once;
    /// the job stays queued and the worker's next lease reads it again),
    /// or `MAX_LOST_PER_LEASE` rows made lost already, so a store whose
    /// pages all rot does not walk the whole queue under the state lock in
    /// one call (the next call goes on).
    fn resident_for_lease(&mut self, id: JobId, lost: &mut u64) -> Option<bool> {
        if *lost >= MAX_LOST_PER_LEASE {
            return None;
        }
        match self.make_resident(id) {
            Ok(true) => Some(true),
            Ok(false) => {
                *lost += 1;
                Some(false)
            }
            Err(e) => {
                self.table.surface_read_error(&e);
                None
            }
        }
    }

    fn lease_simple_batch(
        &mut self,
        worker: usize,
        first: JobId,
        now_ms: u64,
        max_priority: u8,
        lost: &mut u64,
    ) -> Vec<crate::dispatch::SimpleItem> {
        let kind = self.table[&first].kind.clone();
        let avg_us = self.book.kinds.get(&kind).map_or(0.0, |k| k.avg_job_us);
        let suspect = |st: &State, id: JobId| {
            st.book
                .active
                .get(&id)
                .is_some_and(|e| e.has(flag::SUSPECT))
        };
        let max = if avg_us <= 0.0 || suspect(self, first) {
            1
        } else {
            ((SIMPLE_BATCH_BUDGET_US / avg_us) as usize).clamp(1, self.book.max_lease_batch.max(1))
        };
        // A remote slot's batch travels as one message: cut to fit.
        let remote = self
            .book
            .workers
            .get(worker)
            .is_some_and(|w| w.remote.is_some());
        let budget_bytes = remote.then_some(self.book.max_remote_batch_bytes);
        let mut used_bytes = 0;
        let mut items = Vec::new();
        let mut next = Some(first);
        while let Some(id) = next {
            match self.resident_for_lease(id, lost) {
                Some(true) => {}
                Some(false) => {
                    next = self.first_for(worker, max_priority).map(|(_, id)| id);
                    continue;
                }
                None => break,
            }
            if let Some(budget) = budget_bytes {
                let bytes = self.table.get(&id).map_or(0, |j| json_bytes(&j));
                if !items.is_empty() && used_bytes + bytes > budget {
                    break;
                }
                used_bytes += bytes;
            }
            // The next most urgent job may be sliced: it takes a lease of
            // its own. A job whose lease expired runs alone, so the one
            // that hangs is told apart from the jobs batched with it.
            let alone = if items.is_empty() {
                flag::SLICED
            } else {
                flag::SLICED | flag::SUSPECT
            };
            let entry = self.book.active.get_mut(&id);
            let Some(slot) = entry.filter(|s| !s.has(alone)) else {
                break;
            };
            slot.flags |= flag::LEASED;
            // Made resident above.
            let job = self
                .table
                .resident_mut(&id)
                .expect("ready jobs are in the table");
            let Body::Simple(body) = &job.body else {
                unreachable!("an entry without SLICED has a simple row")
            };
            let retry = self
                .book
                .kinds
                .get(&job.kind)
                .map(|k| k.retry())
                .unwrap_or_default();
            items.push(SimpleItem {
                job: id,
                kind: job.kind.clone(),
                args: body.args.clone(),
                properties: job.properties.clone(),
                attempts: job.attempts,
                retry,
            });
            if let Some(t) = self.book.accepted.remove(&id) {
                self.book.metrics.record_enqueue_to_start(t.elapsed());
            }
            // Running, but not started in the row: a lease is no record
            // (`started_us` comes with its outcome; `JobStatus::started_at`
            // shows the lease's start meanwhile), so a checkpoint writes
            // the row as a replay of the log has it.
            self.book.set_state(job, JobState::Running, now_ms);
            self.book.refile(job);
            if items.len() >= max {
                break;
            }
            next = self.first_for(worker, max_priority).map(|(_, id)| id);
        }
        items
    }

    fn lease_sliced(&mut self, id: JobId, now_ms: u64) -> (LeaseWork, TaskWork) {
        let job = self
            .table
            .get_mut(&id)
            .expect("ready jobs are in the table");
        let Body::Sliced(s) = &job.body else {
            unreachable!("checked by the caller")
        };
        let slot = self
            .book
            .active
            .get_mut(&id)
            .expect("a ready job has an entry");
        let a = self
            .book
            .sliced_live
            .get_mut(&id)
            .expect("a ready sliced job has its slice marks");
        let hook = HookItem {
            job: id,
            kind: job.kind.clone(),
            properties: job.properties.clone(),
            categories: s.categories.clone(),
        };
        let out = if !s.before_done {
            slot.flags |= flag::HOOK_LEASED;
            if let Some(t) = self.book.accepted.remove(&id) {
                self.book.metrics.record_enqueue_to_start(t.elapsed());
            }
            (LeaseWork::Before { job: id }, TaskWork::Before(hook))
        } else if s.after_ready(a.leased_slices) {
            slot.flags |= flag::HOOK_LEASED;
            (LeaseWork::After { job: id }, TaskWork::After(hook))
        } else {
            let slice = a
                .queued
                .pop_first()
                .expect("ready sliced jobs have queued slices");
            a.leased_slices += 1;
            debug_assert!(s.slices.queueable(slice));
            let place = s
                .slices
                .place(slice)
                .expect("an uploaded slice has a place");
            let e = s.slices.detail(slice);
            let item = SliceItem {
                job: id,
                kind: job.kind.clone(),
                properties: job.properties.clone(),
                categories: s.categories.clone(),
                slice,
                first_record: place.first_record,
                line_first: place.line_first,
                lines: e.lines,
                numbers: e.numbers,
                collect_errors: s.collect_errors,
                retries: e.retries,
                retry: self
                    .book
                    .kinds
                    .get(&job.kind)
                    .map(|k| k.retry())
                    .unwrap_or_default(),
            };
            (LeaseWork::Slice { job: id, slice }, TaskWork::Slice(item))
        };
        if job.state == JobState::Queued {
            self.book.set_state(job, JobState::Running, now_ms);
        }
        self.book.refile(job);
        out
    }

    /// A worker is about to commit lease `epoch` for `claim`, the work it
    /// was given. None: the lease expired or was revoked, or it holds other
    /// work (a lease is matched by epoch and work together, never by epoch
    /// alone), and the commit must be dropped (fenced). Some: the lease can
    /// no longer expire; it ends when the commit is durable (`release`).
    pub fn begin_commit(&mut self, epoch: u64, claim: &LeaseWork) -> Option<LeaseWork> {
        let held = self
            .book
            .leases
            .get(&epoch)
            .map(|l| l.work.claimed_by(claim));
        let Some(work) = held
            .unwrap_or(false)
            .then(|| self.hold_for_commit(epoch))
            .flatten()
        else {
            self.book.metrics.commits_fenced += 1;
            return None;
        };
        if matches!(work, LeaseWork::Slice { .. }) {
            let worker = self.book.leases[&epoch].worker;
            if let Some(slot) = self.book.workers.get_mut(worker) {
                slot.slices_done += 1;
            }
        }
        Some(work)
    }

    /// Marks lease `epoch` committing (it can no longer expire or be
    /// committed by anyone else) and frees its worker slot.
    fn hold_for_commit(&mut self, epoch: u64) -> Option<LeaseWork> {
        let lease = self.book.leases.get_mut(&epoch)?;
        if lease.committing {
            return None;
        }
        lease.committing = true;
        if let Some(slot) = self.book.workers.get_mut(lease.worker) {
            if slot.lease == Some(epoch) {
                slot.lease = None;
            }
        }
        Some(lease.work.clone())
    }

    /// Ends lease `epoch` whose commit is settled: `end` says what reached
    /// the store (a remote worker's commit is answered by it), then
    /// `release`.
    pub fn end_commit(&mut self, epoch: u64, end: CommitEnd) {
        if let Some(tx) = self
            .book
            .leases
            .get_mut(&epoch)
            .and_then(|l| l.on_end.take())
        {
            let _ = tx.send(end);
        }
        self.release(epoch);
    }

    /// Ends a lease; work it did not finish goes back to the queue at once.
    pub fn release(&mut self, epoch: u64) {
        let Some(lease) = self.book.leases.remove(&epoch) else {
            return;
        };
        lease
            .progress_ms
            .store(crate::handler::LEASE_ENDED, Ordering::Relaxed);
        if let Some(slot) = self.book.workers.get_mut(lease.worker) {
            if slot.lease == Some(epoch) {
                slot.lease = None;
            }
        }
        let now = self.book.clock.now_ms();
        match lease.work {
            LeaseWork::Simple(ids) => self.requeue_simple(&ids, now),
            LeaseWork::Slice { job, slice } => {
                let Some(job) = self.table.resident(&job) else {
                    return;
                };
                if let (Some(a), Some(s)) = (self.book.sliced_entry(job.id), job.sliced()) {
                    a.leased_slices = a.leased_slices.saturating_sub(1);
                    // A slice whose commit scheduled its retry waits for it.
                    if s.slices.queueable(slice) {
                        a.queued.insert(slice);
                    }
                }
                self.book.refile(job);
            }
            LeaseWork::Before { job } | LeaseWork::After { job } => {
                let Some(job) = self.table.get_mut(&job) else {
                    return;
                };
                let mut back_to_queued = false;
                if let (Some(slot), Some(s)) = (self.book.active.get_mut(&job.id), job.sliced()) {
                    slot.set_flag(flag::HOOK_LEASED, false);
                    back_to_queued = !s.before_done;
                }
                if back_to_queued && job.state == JobState::Running {
                    self.book.set_state(job, JobState::Queued, now);
                }
                self.book.refile(job);
            }
        }
    }

    /// Simple jobs whose lease ended without a result are queued again.
    fn requeue_simple(&mut self, ids: &[JobId], now_ms: u64) {
        for id in ids {
            let Some(job) = self.table.get_mut(id) else {
                continue;
            };
            if let Some(entry) = self.book.active.get_mut(id) {
                entry.set_flag(flag::LEASED, false);
            }
            if job.state == JobState::Running {
                self.book.set_state(job, JobState::Queued, now_ms);
            }
            self.book.refile(job);
        }
    }

    /// An expiry of lease `epoch`: its `LeaseExpired` record (`apply`
    /// counts it), then the record that fails the work if this expiry is
    /// its `max_expiries`th. The lease is held until they are durable.
    fn expire_lease(&mut self, epoch: u64, now_ms: u64) -> ExpiredLease {
        let records = self.expiry_records(epoch, now_ms);
        if let Some(lease) = self.book.leases.get(&epoch) {
            // Over for its holder at once: `lease_ended()` tells the handler.
            lease
                .progress_ms
                .store(crate::handler::LEASE_ENDED, Ordering::Relaxed);
        }
        self.hold_for_commit(epoch);
        ExpiredLease { epoch, records }
    }

    fn expiry_records(&self, epoch: u64, now_ms: u64) -> Vec<Meta> {
        let Some(lease) = self.book.leases.get(&epoch) else {
            return Vec::new();
        };
        let (work, since_ms) = (lease.work.clone(), lease.since_ms);
        let expired = match &work {
            LeaseWork::Slice { job, slice } => Expired::Slice {
                job: *job,
                slice: *slice,
            },
            LeaseWork::Before { job } | LeaseWork::After { job } => Expired::Hook { job: *job },
            LeaseWork::Simple(ids) => Expired::Simple { jobs: ids.clone() },
        };
        let mut records = vec![Meta::LeaseExpired {
            at_ms: now_ms,
            work: expired,
        }];
        let fails = match work {
            LeaseWork::Slice { job, slice } => self.slice_expiry(job, slice, now_ms),
            LeaseWork::Before { job } => self.hook_expiry(job, "before_batch", now_ms),
            LeaseWork::After { job } => self.hook_expiry(job, "after_batch", now_ms),
            LeaseWork::Simple(ids) => self.expire_simple(&ids, since_ms, now_ms),
        };
        records.extend(fails);
        records
    }

    /// The record that fails a slice whose lease expired once too often.
    fn slice_expiry(&self, job: JobId, slice: u64, now_ms: u64) -> Option<Meta> {
        let j = self.table.get(&job)?;
        let policy = self.book.lease_policy(&j.kind);
        let map = &j.sliced()?.slices;
        map.state(slice)?;
        let n = map.detail.get(&slice).map_or(0, |d| d.expiries) + 1;
        (n >= policy.max_expiries.max(1)).then(|| Meta::SliceFailed {
            job,
            slice,
            at_ms: now_ms,
            message: hung(n, &policy),
            sample: None,
            retry_at_ms: None,
        })
    }

    /// The record that fails a hook whose lease expired once too often.
    fn hook_expiry(&self, job: JobId, hook: &str, now_ms: u64) -> Option<Meta> {
        let j = self.table.get(&job)?;
        let policy = self.book.lease_policy(&j.kind);
        let n = j.sliced()?.hook_expiries + 1;
        (n >= policy.max_expiries.max(1)).then(|| Meta::HookFailed {
            job,
            at_ms: now_ms,
            message: format!("{hook} {}", hung(n, &policy)),
        })
    }

    /// `expire_lease` for a batch of simple jobs: the outcome that fails
    /// those that expired too often (the others are queued again when the
    /// lease is released).
    fn expire_simple(&self, ids: &[JobId], since_ms: u64, now_ms: u64) -> Option<Meta> {
        let mut gone = Vec::new();
        for &id in ids {
            let Some(job) = self.table.get(&id) else {
                continue;
            };
            let policy = self.book.lease_policy(&job.kind);
            if let Body::Simple(b) = &job.body {
                let n = b.expiries + 1;
                if n >= policy.max_expiries.max(1) {
                    gone.push(SimpleOutcome {
                        job: id,
                        started_us: crate::clock::ms_to_us(since_ms),
                        result: Err(hung(n, &policy)),
                        retry_at_ms: None,
                    });
                }
            }
        }
        if gone.is_empty() {
            return None;
        }
        Some(Meta::SimpleDone {
            at_ms: now_ms,
            at_us: None,
            outcomes: gone,
        })
    }

    /// The handler panicked outside per-record isolation. Returns how often
    /// this lease's slice has panicked so far; the caller releases the lease
    /// or, past the limit, fails the slice.
    pub fn note_panic(&mut self, epoch: u64) -> u32 {
        let mut panics = 0;
        if let Some(Lease {
            work: LeaseWork::Slice { job, slice },
            ..
        }) = self.book.leases.get(&epoch)
        {
            if let Some(Body::Sliced(s)) = self.table.get_mut(job).map(|j| &mut j.body) {
                if s.slices.state(*slice).is_some() {
                    panics = s.slices.with_detail(*slice, |d| {
                        d.panics += 1;
                        d.panics
                    });
                }
            }
        }
        panics
    }

    /// Learns how long one simple job of `kind` takes (sizes later batches).
    pub fn observe_simple(&mut self, kind: &str, jobs: usize, elapsed_us: f64) {
        if let Some(k) = self.book.kinds.get_mut(kind) {
            let per_job = elapsed_us / jobs.max(1) as f64;
            k.avg_job_us = if k.avg_job_us <= 0.0 {
                per_job
            } else {
                0.8 * k.avg_job_us + 0.2 * per_job
            };
        }
    }

    /// Timer work: expire leases past their deadline (heartbeats extend it),
    /// release scheduled jobs, and report jobs past `expires_at`.
    pub fn tick(&mut self, now_ms: u64) -> TickOutcome {
        let mut out = TickOutcome::default();
        let timeout = self.book.lease_timeout_ms;
        let mut expired = Vec::new();
        let placed = &self.book.placed;
        for lease in self.book.leases.values_mut() {
            // A lease on a job whose creation is not durable yet does not
            // expire: its records would name the job ("Start at placement").
            let on_placed = matches!(&lease.work,
                LeaseWork::Simple(ids) if ids.iter().any(|id| placed.contains(id)));
            if lease.committing || on_placed {
                continue;
            }
            let progress = lease.progress_ms.load(Ordering::Relaxed);
            lease.deadline_ms = lease.deadline_ms.max(progress + timeout);
            if let Some(t) = lease.timeout_ms {
                lease.deadline_ms = lease.deadline_ms.min(lease.since_ms.saturating_add(t));
            }
            if now_ms > lease.deadline_ms {
                expired.push((lease.epoch, lease.worker));
            }
        }
        for (epoch, worker) in expired {
            self.book.metrics.lease_expiries += 1;
            out.expired.push(self.expire_lease(epoch, now_ms));
            // A remote slot has no thread here to replace: its process
            // learns the lease ended from its heartbeat or its commit.
            let local = self.book.local_workers;
            if let Some(slot) = self.book.workers.get_mut(worker).filter(|_| worker < local) {
                slot.generation += 1;
                slot.restarts += 1;
                self.book.metrics.worker_restarts += 1;
                out.replace_workers.push(worker);
            }
        }
        self.release_scheduled(now_ms);
        crate::remote::forget_silent(&mut self.book, now_ms);
        // Expiring a job is a write: a read-only process leaves it to the next
        // process that runs work.
        while let Some(&(at, id)) = self.book.expiring.first() {
            // A placed job's expiry waits for its creation to be durable.
            if at > now_ms || !self.book.runs_workers || self.book.placed.contains(&id) {
                break;
            }
            self.book.expiring.pop_first();
            // Only an unfinished job expires, and every unfinished row is
            // in RAM: a finished one's page is not read for it.
            if let Some(job) = self.table.resident(&id) {
                if matches!(job.state, JobState::Queued | JobState::Scheduled)
                    && job.started_us.is_none()
                {
                    out.expire.push(id);
                }
            }
        }
        out
    }

    /// Scheduled jobs whose `run_at` has come are queued (or running
    /// again): a timer's work, also done once after replay, so a job whose
    /// time came while no process ran is never listed as scheduled.
    pub fn release_scheduled(&mut self, now_ms: u64) {
        self.release_slice_retries(now_ms);
        self.judge_job_windows(now_ms);
        while let Some(&(at, id)) = self.book.scheduled.first() {
            if at > now_ms {
                break;
            }
            self.book.scheduled.pop_first();
            if let Some(job) = self.table.get_mut(&id) {
                if job.state == JobState::Scheduled && job.run_at_ms.unwrap_or(0) <= now_ms {
                    let next = if self.book.has_started(job) {
                        JobState::Running
                    } else {
                        JobState::Queued
                    };
                    self.book.set_state(job, next, now_ms);
                    self.book.refile(job);
                }
            }
        }
    }

    /// Jobs with their own processing window are judged against the clock
    /// once a minute (windows open and close on whole minutes, and once
    /// after replay): a job whose window closed leases nothing more (its
    /// running slices finish), one whose window opened is queued again.
    pub fn judge_job_windows(&mut self, now_ms: u64) {
        let minute = now_ms / 60_000;
        if self.book.windows_minute == Some(minute) {
            return;
        }
        self.book.windows_minute = Some(minute);
        let book = &mut self.book;
        for &id in &book.windowed {
            let (Some(job), Some(slot)) = (self.table.resident(&id), book.active.get_mut(&id))
            else {
                continue;
            };
            let closed = job.window.is_some_and(|w| !w.is_open(now_ms));
            if closed != slot.has(flag::WINDOW_CLOSED) {
                slot.set_flag(flag::WINDOW_CLOSED, closed);
                let want = slot.ready_slot(job, book.sliced_live.get(&id));
                book.ready.refile(id, &job.kind, slot, want);
            }
        }
    }

    /// Slices whose automatic retry is due go back to their job's queue.
    fn release_slice_retries(&mut self, now_ms: u64) {
        while let Some(&(at, id, slice)) = self.book.slice_retries.first() {
            if at > now_ms {
                break;
            }
            self.book.slice_retries.pop_first();
            let Some(job) = self.table.get_mut(&id) else {
                continue;
            };
            if let Body::Sliced(s) = &mut job.body {
                let due = s.slices.state(slice) == Some(SliceState::Pending)
                    && s.slices.detail.get(&slice).and_then(|d| d.retry_at_ms) == Some(at);
                if !due {
                    continue;
                }
                s.slices.with_detail(slice, |d| d.retry_at_ms = None);
                if let Some(a) = self.book.sliced_entry(id) {
                    a.queued.insert(slice);
                }
            }
            self.book.refile(job);
        }
    }

    /// Nothing is leased to anyone, and nothing ready is for slot
    /// `worker`: a remote worker's `--until-idle` may stop. Work only
    /// other slots may take is theirs (this node's own threads, or other
    /// workers'); while any lease is held, its work may come back.
    pub fn is_idle_for(&self, worker: usize) -> bool {
        self.book.leases.is_empty() && self.first_for(worker, u8::MAX).is_none()
    }

    /// Nothing is leased or leasable for a registered kind (a queued job
    /// that its kind's limit holds back is not leasable).
    pub fn is_idle(&self) -> bool {
        self.book.leases.is_empty() && !self.book.ready.has_work(|id, k| self.gate(id, k))
    }
}

/// The bytes a simple job's arguments and properties take as JSON: what
/// a remote worker's lease carries of it.
fn json_bytes(job: &crate::table::Job) -> usize {
    let args = match &job.body {
        Body::Simple(b) => serde_json::to_vec(&*b.args).map_or(0, |v| v.len()),
        Body::Sliced(_) => 0,
    };
    args + serde_json::to_vec(&*job.properties).map_or(0, |v| v.len())
}

/// Why work that kept its lease expiring failed.
fn hung(expiries: u32, policy: &LeasePolicy) -> String {
    let limit = match policy.timeout {
        Some(t) => format!(
            "each lease ended by missing heartbeats or the kind's {} ms limit",
            t.as_millis()
        ),
        None => "each time the handler stopped sending heartbeats".to_string(),
    };
    let times = if expiries == 1 { "time" } else { "times" };
    format!("hung: lease expired {expiries} {times} ({limit}); `retry` runs it again")
}
