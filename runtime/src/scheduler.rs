//! The scheduler's entry for each unfinished job (issue 12, step 2): what
//! leasing, fencing and the live indexes need, and nothing a restart must
//! keep. A job has an entry exactly while it is unfinished (scheduled,
//! queued, running, paused or waiting); the row in the table
//! (`table/view.rs`) holds its durable fields.
//!
//! An entry is fed from the row when the job becomes active (created,
//! restored, retried: `Book::activate`) and released from the entry alone
//! when it finishes (`Book::deactivate`): the running count of its kind,
//! its ready-queue place, its singleton key and cron run are found from the
//! entry and the indexes keyed by job id, never by reading the row.
//!
//! Every unfinished job has an 8-byte `Slot` in `Book::active` (16 bytes
//! with its key); a sliced one also has its `SlicedLive` (slice leases and
//! queued slices) in `Book::sliced_live`. A queued simple job costs its
//! slot and 8 bytes in its `IdQueue`, at most 64 bytes whatever the tables'
//! load: `queued_simple_job_costs_at_most_64_bytes` measures it.
//!
//! **Architecture invariant:** `Book::active` has an entry for a job iff its
//! row is unfinished, and the entry's state and priority are the row's;
//! `Book::sliced_live` has one iff that job is sliced.

use crate::state::{Book, LeaseWork};
use crate::table::kinds::KindId;
use crate::table::{Body, Job, RangeSet};
use crate::{JobId, JobState};

/// Where a job sits in the ready queue, if it has leasable work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadySlot {
    pub priority: u8,
    /// Running jobs stay leasable when their kind is at its running-job limit.
    pub running: bool,
}

/// Flag bits of a slot.
pub mod flag {
    /// The job is sliced (it has a `SlicedLive`).
    pub const SLICED: u8 = 1;
    /// A lease holds the (simple) job.
    pub const LEASED: u8 = 2;
    /// This process's handler declined the job (`refuses`; the reason is in
    /// `Book::refused`): it is not leased.
    pub const REFUSED: u8 = 4;
    /// A before or after hook lease of the (sliced) job is out.
    pub const HOOK_LEASED: u8 = 8;
    /// The job holds a singleton key (in `Book::singleton_keys`).
    pub const SINGLETON: u8 = 16;
    /// The job is a cron run (its cron entry's `run` may name it).
    pub const CRON_RUN: u8 = 32;
    /// A lease of this simple job expired: it is leased alone, so the job
    /// that hangs is told apart from those batched with it.
    pub const SUSPECT: u8 = 64;
    /// The job's own processing window (`Job::window`, in
    /// `Book::windowed`) was closed when the scheduler last looked: nothing
    /// of it is leased.
    pub const WINDOW_CLOSED: u8 = 128;
}

/// An unfinished job's scheduler entry: 8 bytes.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    pub kind_id: KindId,
    pub state: JobState,
    pub priority: u8,
    pub flags: u8,
    /// Where it is filed in the ready queue (`encode_filed`).
    filed: u8,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 8);

/// An unfinished sliced job's live slice marks; its slice map, counters
/// and error groups are in its row until step 3 moves them here.
#[derive(Clone, Debug, Default)]
pub struct SlicedLive {
    /// Slice leases out.
    pub leased_slices: u32,
    /// Slices waiting for a lease, in input order.
    pub queued: RangeSet,
}

/// 0: not filed; else the priority plus one (priorities are at most
/// 100), with the top bit for the running bucket.
fn encode_filed(slot: Option<ReadySlot>) -> u8 {
    slot.map_or(0, |s| {
        debug_assert!(s.priority < 0x7F);
        (s.priority + 1) | if s.running { 0x80 } else { 0 }
    })
}

fn decode_filed(b: u8) -> Option<ReadySlot> {
    (b != 0).then(|| ReadySlot {
        priority: (b & 0x7F) - 1,
        running: b & 0x80 != 0,
    })
}

impl Slot {
    /// The entry of `job` as it becomes active, with nothing filed or
    /// leased yet but the slices leases in `held` still hold (a commit on
    /// its way): its slot, and its slice marks if it is sliced.
    pub fn of(job: &Job, kind_id: KindId, held: &[u64]) -> (Slot, Option<SlicedLive>) {
        let mut flags = 0;
        if job.singleton.is_some() {
            flags |= flag::SINGLETON;
        }
        if job.cron.is_some() {
            flags |= flag::CRON_RUN;
        }
        let live = match &job.body {
            Body::Simple(b) => {
                if b.expiries > 0 {
                    flags |= flag::SUSPECT;
                }
                None
            }
            Body::Sliced(s) => {
                flags |= flag::SLICED;
                Some(SlicedLive {
                    leased_slices: held.len() as u32,
                    queued: s.queueable(held),
                })
            }
        };
        let slot = Slot {
            kind_id,
            state: job.state,
            priority: job.priority,
            flags,
            filed: 0,
        };
        (slot, live)
    }

    /// Any of `bits` is set.
    pub fn has(&self, bits: u8) -> bool {
        self.flags & bits != 0
    }

    pub fn set_flag(&mut self, bit: u8, on: bool) {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
    }

    pub fn filed(&self) -> Option<ReadySlot> {
        decode_filed(self.filed)
    }

    pub fn set_filed(&mut self, slot: Option<ReadySlot>) {
        self.filed = encode_filed(slot);
    }

    /// Has started processing (decides Running vs Queued on resume): a
    /// simple job a lease holds, a sliced job whose before hook ran or is
    /// out.
    pub fn has_started(&self, job: &Job) -> bool {
        match &job.body {
            Body::Sliced(s) => s.before_done || self.has(flag::HOOK_LEASED),
            Body::Simple(_) => self.has(flag::LEASED),
        }
    }

    /// Whether the dispatcher may lease work of this job now, ignoring
    /// per-kind limits (those are applied at lease time). `job` is its row
    /// (a sliced job's slice state is there until step 3), `live` its
    /// slice marks.
    pub fn ready_slot(&self, job: &Job, live: Option<&SlicedLive>) -> Option<ReadySlot> {
        if !matches!(self.state, JobState::Queued | JobState::Running)
            || self.has(flag::REFUSED | flag::WINDOW_CLOSED)
        {
            return None;
        }
        let leasable = match (&job.body, live) {
            (Body::Simple(_), _) => !self.has(flag::LEASED) && self.state == JobState::Queued,
            (Body::Sliced(s), Some(live)) => {
                if crate::dirmon::holds(job) || self.has(flag::HOOK_LEASED) {
                    // A dirmon job's file is not wholly in: nothing runs yet.
                    false
                } else if !s.before_done || s.after_ready(live.leased_slices) {
                    true
                } else {
                    !live.queued.is_empty()
                        && job
                            .max_workers
                            .is_none_or(|max| live.leased_slices < max.max(1))
                }
            }
            (Body::Sliced(_), None) => false,
        };
        leasable.then_some(ReadySlot {
            priority: self.priority,
            running: self.state == JobState::Running,
        })
    }
}

impl Book {
    /// `job` became unfinished (created, restored, retried): its entry,
    /// fed from the row, and the live indexes that follow it.
    pub(crate) fn activate(&mut self, job: &Job) {
        debug_assert!(!job.is_terminal());
        // `State::insert` interned the row's kind (ids start at 1).
        let kind_id = match job.kind_id {
            0 => self.kind_ids.intern(&job.kind),
            id => id,
        };
        // A retried sliced job may still have slice commits on their way.
        let held: Vec<u64> = match &job.body {
            Body::Sliced(_) => self
                .leases
                .values()
                .filter_map(|l| match l.work {
                    LeaseWork::Slice { job: j, slice } if j == job.id => Some(slice),
                    _ => None,
                })
                .collect(),
            Body::Simple(_) => Vec::new(),
        };
        let (mut slot, live) = Slot::of(job, kind_id, &held);
        if let Some(live) = live {
            self.sliced_live.insert(job.id, live);
        }
        if let Some(w) = job.window {
            // The log's time, not the clock's (apply reads none); the timer
            // judges it again against the clock at the next minute.
            slot.set_flag(flag::WINDOW_CLOSED, !w.is_open(self.log_ms));
            self.windowed.insert(job.id);
            // The record's time may be a minute behind the timer's last look.
            self.windows_minute = None;
        }
        if job.state == JobState::Running {
            *self.running_by_kind.entry(kind_id).or_default() += 1;
        }
        if let Some(key) = &job.singleton {
            self.singletons.insert(key.clone(), job.id);
            self.singleton_keys.insert(job.id, key.clone());
        }
        self.active.insert(job.id, slot);
    }

    /// Job `id` finished or went: its entry, its ready-queue place and what
    /// it held leave the scheduler, found from the entry alone.
    pub(crate) fn deactivate(&mut self, id: JobId) {
        let Some(mut entry) = self.active.remove(&id) else {
            return;
        };
        self.ready.remove(id, &mut entry);
        if entry.has(flag::SLICED) {
            self.sliced_live.remove(&id);
        }
        if entry.state == JobState::Running {
            if let Some(n) = self.running_by_kind.get_mut(&entry.kind_id) {
                *n -= 1;
            }
        }
        if entry.has(flag::SINGLETON) {
            if let Some(key) = self.singleton_keys.remove(&id) {
                if self.singletons.get(&key) == Some(&id) {
                    self.singletons.remove(&key);
                }
            }
        }
        if entry.has(flag::CRON_RUN) {
            // Cron entries are few; the run names its job.
            if let Some(c) = self.crons.values_mut().find(|c| c.run == Some(id)) {
                c.run = None;
            }
        }
        // Most jobs have none of these: an empty map is not even hashed.
        if !self.refused.is_empty() {
            self.refused.remove(&id);
        }
        if !self.accepted.is_empty() {
            self.accepted.remove(&id);
        }
        if !self.windowed.is_empty() {
            self.windowed.remove(&id);
        }
    }

    /// Moves `job`'s entry from `old` to its new state `job.state`.
    pub(crate) fn restate(&mut self, job: &Job, old: JobState) {
        let Some(entry) = self.active.get_mut(&job.id) else {
            return;
        };
        entry.state = job.state;
        let kind_id = entry.kind_id;
        if old == JobState::Running {
            if let Some(n) = self.running_by_kind.get_mut(&kind_id) {
                *n -= 1;
            }
        }
        if job.state == JobState::Running {
            *self.running_by_kind.entry(kind_id).or_default() += 1;
        }
    }

    /// Re-files `job` in the ready queue from its entry; true when it is
    /// leasable. A finished job has no entry and is not filed.
    pub fn refile(&mut self, job: &Job) -> bool {
        let Some(entry) = self.active.get_mut(&job.id) else {
            return false;
        };
        debug_assert_eq!(entry.state, job.state, "job {}", job.id);
        debug_assert_eq!(entry.priority, job.priority, "job {}", job.id);
        let live = if entry.has(flag::SLICED) {
            self.sliced_live.get(&job.id)
        } else {
            None
        };
        let want = entry.ready_slot(job, live);
        self.ready.refile(job.id, &job.kind, entry, want)
    }

    /// `job` has started processing (`Slot::has_started`); a finished
    /// job has not.
    pub fn has_started(&self, job: &Job) -> bool {
        self.active.get(&job.id).is_some_and(|e| e.has_started(job))
    }

    /// Records whether this process's handler declines unfinished job `id`.
    pub(crate) fn set_refused(&mut self, id: JobId, reason: Option<String>) {
        let Some(entry) = self.active.get_mut(&id) else {
            return;
        };
        entry.set_flag(flag::REFUSED, reason.is_some());
        match reason {
            Some(r) => {
                self.refused.insert(id, r.into());
            }
            None if !self.refused.is_empty() => {
                self.refused.remove(&id);
            }
            None => {}
        }
    }

    /// The live marks of unfinished sliced job `id`, if it is one.
    pub(crate) fn sliced_entry(&mut self, id: JobId) -> Option<&mut SlicedLive> {
        self.sliced_live.get_mut(&id)
    }

    /// The running jobs of kind `name`.
    pub fn running_of(&self, name: &str) -> u32 {
        self.kind_ids
            .id(name)
            .and_then(|id| self.running_by_kind.get(&id))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Meta;
    use crate::JobSpec;

    /// Bytes a `HashMap` of `len` entries of `entry_bytes` holds at
    /// `capacity`: hashbrown keeps a power of two of buckets, at most 7/8
    /// full, each with its entry and one control byte.
    fn map_bytes(capacity: usize, entry_bytes: usize) -> usize {
        let buckets = (capacity * 8).div_ceil(7).next_power_of_two();
        buckets * (entry_bytes + 1)
    }

    /// The scheduler's bytes for `n` queued simple jobs of one kind,
    /// counted from the containers' real capacities: the entries, the
    /// ready queue's ids and the sampled enqueue times.
    fn scheduler_bytes_per_job(n: u64) -> f64 {
        let mut st = crate::state_tests::state();
        let specs = vec![JobSpec::simple("k", serde_json::Value::Null); n as usize];
        st.apply(&Meta::Created {
            first_id: 1,
            at_ms: 1,
            specs,
        })
        .unwrap();
        let book = &st.book;
        assert_eq!(book.active.len() as u64, n);
        assert_eq!(book.by_state[JobState::Queued.index()], n);
        assert!(book.sliced_live.is_empty());
        let entries = map_bytes(book.active.capacity(), std::mem::size_of::<(JobId, Slot)>());
        let accepted = map_bytes(
            book.accepted.capacity(),
            std::mem::size_of::<(JobId, std::time::Instant)>(),
        );
        let total = entries + book.ready.id_bytes() + accepted;
        total as f64 / n as f64
    }

    /// The budget of issue 12: at most 64 bytes a queued simple job (10M
    /// queued jobs in well under 1 GB), at every load the tables can have:
    /// just before they double (7/8 full), just after (7/16 full), and
    /// between.
    #[test]
    fn queued_simple_job_costs_at_most_64_bytes() {
        // 114_688 = 7/8 of 2^17 buckets: the entry map doubles at the next job.
        for n in [100_000, 114_688, 114_689, 131_073, 160_000] {
            let per_job = scheduler_bytes_per_job(n);
            println!("{n} queued simple jobs: {per_job:.1} scheduler bytes a job");
            assert!(per_job <= 64.0, "{n} jobs: {per_job:.1} bytes a job");
        }
    }

    #[test]
    fn a_filed_place_survives_its_byte() {
        for priority in 0..=100u8 {
            for running in [false, true] {
                let slot = Some(ReadySlot { priority, running });
                assert_eq!(decode_filed(encode_filed(slot)), slot);
            }
        }
        assert_eq!(decode_filed(encode_filed(None)), None);
    }
}
