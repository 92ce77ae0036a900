//! The priority heap of runnable jobs, per kind (by kind id) and bucket:
//! a `BTreeMap` from priority to an `IdQueue` of job ids. Job ids grow in
//! submission order and an `IdQueue` gives its smallest id first, so the
//! first entry of a bucket is the most urgent job, ties by submission
//! order (G5). A job is in at most one queue, and its scheduler entry
//! (`scheduler.rs`) remembers which; every change to a job re-files it
//! (`Book::refile`), so a priority change takes effect at the very next
//! lease. A queued job costs 8 bytes here (its id in a `VecDeque`).
//!
//! Two buckets per kind: jobs already running stay leasable when the kind is
//! at its running-job limit, queued ones wait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::scheduler::{ReadySlot, Slot};
use crate::table::kinds::KindId;
use crate::JobId;

mod id_queue;
pub use id_queue::IdQueue;

/// One bucket: priority -> ids; a priority with no ids has no entry.
#[derive(Default)]
struct Bucket(BTreeMap<u8, IdQueue>);

impl Bucket {
    fn insert(&mut self, priority: u8, id: JobId) {
        self.0.entry(priority).or_default().push(id);
    }

    fn remove(&mut self, priority: u8, id: JobId) {
        if let Some(q) = self.0.get_mut(&priority) {
            q.remove(id);
            if q.is_empty() {
                self.0.remove(&priority);
            }
        }
    }

    fn first(&self, take: &impl Fn(JobId) -> bool) -> Option<(u8, JobId)> {
        self.0
            .iter()
            .find_map(|(&p, q)| Some((p, q.first_where(take)?)))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

struct KindSets {
    /// The kind's name, for the gate (`State::gate` reads the kind's conf).
    name: Arc<str>,
    running: Bucket,
    queued: Bucket,
}

impl KindSets {
    fn set(&mut self, running: bool) -> &mut Bucket {
        if running {
            &mut self.running
        } else {
            &mut self.queued
        }
    }
}

/// What the lease picker needs to know about a kind.
pub struct KindGate {
    /// A handler is registered and the kind's processing window is open
    /// (jobs of other kinds wait).
    pub runnable: bool,
    /// Queued jobs of this kind may start (under the running-job limit).
    pub may_start: bool,
}

#[derive(Default)]
pub struct ReadyQueue {
    kinds: HashMap<KindId, KindSets>,
}

impl ReadyQueue {
    /// Files job `id` (of kind `kind`, whose scheduler entry is `entry`)
    /// where `want` says, or nowhere; returns true when it is leasable.
    pub fn refile(
        &mut self,
        id: JobId,
        kind: &Arc<str>,
        entry: &mut Slot,
        want: Option<ReadySlot>,
    ) -> bool {
        if want == entry.filed() {
            return want.is_some();
        }
        self.remove(id, entry);
        if let Some(new) = want {
            self.kinds
                .entry(entry.kind_id)
                .or_insert_with(|| KindSets {
                    name: kind.clone(),
                    running: Bucket::default(),
                    queued: Bucket::default(),
                })
                .set(new.running)
                .insert(new.priority, id);
        }
        entry.set_filed(want);
        want.is_some()
    }

    /// Takes job `id` out of the queue it is filed in, if any.
    pub fn remove(&mut self, id: JobId, entry: &mut Slot) {
        if let Some(old) = entry.filed() {
            entry.set_filed(None);
            if let Some(sets) = self.kinds.get_mut(&entry.kind_id) {
                sets.set(old.running).remove(old.priority, id);
            }
        }
    }

    /// Bytes the queue's id storage holds (capacity, not length), for the
    /// per-job memory test and the memory census.
    pub fn id_bytes(&self) -> usize {
        self.kinds
            .values()
            .flat_map(|k| k.running.0.values().chain(k.queued.0.values()))
            .map(IdQueue::capacity_bytes)
            .sum()
    }

    /// The most urgent leasable job over all kinds that `gate` lets through.
    pub fn first(&self, gate: impl Fn(KindId, &str) -> KindGate) -> Option<(u8, JobId)> {
        self.first_where(gate, |_| true)
    }

    /// `first`, skipping the jobs `take` refuses. Each refused job at the
    /// head of a queue costs a step of the walk, so `take` is for jobs
    /// that are rare at the head (a remote slot skips jobs with `after`).
    pub fn first_where(
        &self,
        gate: impl Fn(KindId, &str) -> KindGate,
        take: impl Fn(JobId) -> bool,
    ) -> Option<(u8, JobId)> {
        let mut best: Option<(u8, JobId)> = None;
        for (&kind, sets) in &self.kinds {
            let g = gate(kind, &sets.name);
            if !g.runnable {
                continue;
            }
            let mut consider = |c: Option<(u8, JobId)>| {
                if let Some(c) = c {
                    if best.is_none_or(|b| c < b) {
                        best = Some(c);
                    }
                }
            };
            consider(sets.running.first(&take));
            if g.may_start {
                consider(sets.queued.first(&take));
            }
        }
        best
    }

    /// Leasable jobs of runnable kinds exist (ignoring running-job limits).
    /// Work a worker could lease now: running jobs of a runnable kind,
    /// and queued ones of a kind that may start another (a kind at its
    /// running-job limit, or paused at 0, holds its queued jobs back).
    pub fn has_work(&self, gate: impl Fn(KindId, &str) -> KindGate) -> bool {
        self.kinds.iter().any(|(&kind, sets)| {
            let g = gate(kind, &sets.name);
            g.runnable && (!sets.running.is_empty() || (g.may_start && !sets.queued.is_empty()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_support::{refile, simple_job, QueuedJob};
    use crate::JobState;

    // One constructor for a queued simple job, shared with the heap benchmark.
    fn job(id: JobId, priority: u8, kind: &str) -> QueuedJob {
        simple_job(id, kind, priority)
    }

    fn open(_: KindId, _: &str) -> KindGate {
        KindGate {
            runnable: true,
            may_start: true,
        }
    }

    #[test]
    fn lowest_priority_number_comes_first_then_submission_order() {
        let mut q = ReadyQueue::default();
        let mut jobs = vec![job(1, 50, "a"), job(2, 10, "b"), job(3, 10, "a")];
        for j in &mut jobs {
            refile(&mut q, j);
        }
        assert_eq!(q.first(open), Some((10, 2)));
    }

    #[test]
    fn priority_change_refiles_the_job() {
        let mut q = ReadyQueue::default();
        let mut a = job(1, 50, "a");
        let mut b = job(2, 50, "a");
        refile(&mut q, &mut a);
        refile(&mut q, &mut b);
        assert_eq!(q.first(open), Some((50, 1)));
        b.job.priority = 1;
        refile(&mut q, &mut b);
        assert_eq!(q.first(open), Some((1, 2)));
    }

    #[test]
    fn kind_at_its_limit_only_offers_running_jobs() {
        let mut q = ReadyQueue::default();
        let mut queued = job(1, 1, "a");
        refile(&mut q, &mut queued);
        let at_limit = |_: KindId, _: &str| KindGate {
            runnable: true,
            may_start: false,
        };
        assert_eq!(q.first(at_limit), None);
        let unregistered = |_: KindId, _: &str| KindGate {
            runnable: false,
            may_start: true,
        };
        assert_eq!(q.first(unregistered), None);
    }

    #[test]
    fn paused_job_leaves_the_queue() {
        let mut q = ReadyQueue::default();
        let mut a = job(1, 50, "a");
        refile(&mut q, &mut a);
        a.job.state = JobState::Paused;
        assert!(!refile(&mut q, &mut a));
        assert_eq!(q.first(open), None);
    }
}
