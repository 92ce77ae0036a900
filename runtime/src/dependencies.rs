//! Dependent jobs (issue 14): a job whose `after` jobs have not all
//! completed waits (`JobState::Waiting`) and is never leased. `apply`
//! decides it from the states the log gave its dependencies, so live and
//! replay agree (ARCHITECTURE.md, "Dependent jobs"):
//!
//! | dependencies                                 | fail   | abort   | run    |
//! |----------------------------------------------|--------|---------|--------|
//! | all completed                                | runs   | runs    | runs   |
//! | one failed, aborted or gone (see below)      | failed | aborted | waits  |
//! | all finished, some not completed             | failed | aborted | runs   |
//! | some unfinished, none failed                 | waits  | waits   | waits  |

//!
//! "Gone" is destroyed before it completed (a tombstone of a job that
//! completed counts as completed) or removed after its retention.
//!
//! The book keeps what each waiting job's dependencies are now
//! (`DependencyWait`: how many are unfinished, which did not complete),
//! set when the job enters the table (its dependencies' rows read then:
//! pinned by the submit live, read from the store at replay or reopen)
//! and moved as each dependency changes (`Book::dependency_moved`), so
//! settling a job reads no row on the commit thread, whatever its number
//! of dependencies.

use crate::state::{Book, State};
use crate::table::Job;
use crate::{DependencyFailure, JobId, JobState};

/// Unfinished dependencies, and those that did not complete with what
/// each became (`DependencyWait::summary`).
#[cfg(test)]
pub type WaitSummary = (u32, Vec<(JobId, &'static str)>);

/// What a waiting job's dependencies are now.
#[derive(Debug, Default)]
pub struct DependencyWait {
    /// Dependencies not finished (one per entry of `after`).
    unfinished: u32,
    /// Dependencies that finished without completing, or went: (id, what
    /// it became), oldest first.
    broken: Vec<(JobId, Broke)>,
}

/// What a dependency that did not complete became. Typed, so that telling
/// a gone dependency (`has_gone`) never hangs on the words a reason says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Broke {
    /// Finished without completing (failed, aborted).
    Ended(JobState),
    /// Not in the table, or destroyed before it completed.
    Gone,
    /// Its `created` record was lost.
    Lost,
}

impl Broke {
    /// The reason a job that stops on it is given.
    fn as_str(self) -> &'static str {
        match self {
            Broke::Ended(s) => s.as_str(),
            Broke::Gone => "destroyed",
            Broke::Lost => "lost",
        }
    }
}

/// What a dependency in `state` (None: it went) counts as for a job that
/// waits on it.
enum Counts {
    Unfinished,
    Completed,
    Broken(Broke),
}

fn counts(state: Option<JobState>) -> Counts {
    match state {
        None => Counts::Broken(Broke::Gone),
        Some(JobState::Completed) => Counts::Completed,
        Some(s) if s.is_finished() => Counts::Broken(Broke::Ended(s)),
        Some(_) => Counts::Unfinished,
    }
}

impl DependencyWait {
    fn add(&mut self, dep: JobId, c: Counts) {
        match c {
            Counts::Unfinished => self.unfinished += 1,
            Counts::Completed => {}
            Counts::Broken(what) => self.broken.push((dep, what)),
        }
    }

    /// Unfinished dependencies, and those that did not complete, sorted
    /// (the model test's comparison of a live and a rebuilt book).
    #[cfg(test)]
    pub fn summary(&self) -> WaitSummary {
        let mut broken: Vec<_> = (self.broken.iter())
            .map(|&(dep, what)| (dep, what.as_str()))
            .collect();
        broken.sort_unstable();
        (self.unfinished, broken)
    }

    /// A dependency counts as gone: not in the table, or destroyed before
    /// it completed.
    fn has_gone(&self) -> bool {
        self.broken.iter().any(|&(_, what)| what == Broke::Gone)
    }

    fn take(&mut self, dep: JobId, c: Counts) {
        match c {
            Counts::Unfinished => self.unfinished = self.unfinished.saturating_sub(1),
            Counts::Completed => {}
            Counts::Broken(_) => {
                if let Some(i) = self.broken.iter().position(|(d, _)| *d == dep) {
                    self.broken.remove(i);
                }
            }
        }
    }
}

/// What a waiting job's dependencies say now.
enum Verdict {
    Run,
    /// A dependency did not complete: (its id, what it became).
    Stop(JobId, &'static str),
}

impl Book {
    /// Dependency `dep` went from `was` to `now` (None: not in the table):
    /// the jobs waiting on it count it anew, and are settled once `apply`
    /// is done when it finished or went.
    pub(crate) fn dependency_moved(
        &mut self,
        dep: JobId,
        was: Option<JobState>,
        now: Option<JobState>,
    ) {
        let Some(waiting) = self.dependents.get(&dep) else {
            return;
        };
        let lost = now.is_some() && self.lost.contains(&dep);
        for id in waiting {
            if let Some(w) = self.waits.get_mut(id) {
                w.take(dep, counts(was));
                w.add(
                    dep,
                    if lost {
                        Counts::Broken(Broke::Lost)
                    } else {
                        counts(now)
                    },
                );
            }
        }
        if now.is_none_or(JobState::is_finished) {
            self.finished.push(dep);
        }
    }

    /// Waiting job `job` waits no more (settled, paused, aborted, gone):
    /// it leaves its dependencies' lists and its counts go.
    pub(crate) fn stop_waiting(&mut self, job: &Job) {
        for dep in &job.after {
            if let Some(list) = self.dependents.get_mut(dep) {
                #[cfg(test)]
                {
                    self.dependents_scanned += list.len() as u64;
                }
                list.retain(|&w| w != job.id);
                if list.is_empty() {
                    self.dependents.remove(dep);
                }
            }
        }
        self.waits.remove(&job.id);
    }
}

impl State {
    /// What `job`'s dependencies are now, read from their rows: when it
    /// enters the table waiting. A dependency whose row cannot be read
    /// counts as unfinished, never broken: its page is noted as damage
    /// (`TableView::unreadable`: the open names it, meta lost, and no
    /// checkpoint cuts the log), so restoring the segment and reopening
    /// decides the job as it was decided live. Counting it lost instead
    /// failed a job that may have completed live.
    ///
    /// The rows that left RAM are read a page at a time, their states
    /// only (`TableView::states_noting`): a batch's on-complete job with
    /// a million finished dependencies costs their pages, not a million
    /// whole rows, at every open.
    pub(crate) fn dependency_wait(&mut self, job: &Job) -> DependencyWait {
        let mut wait = DependencyWait::default();
        let states = self.table.states_noting(&job.after);
        for (&dep, state) in job.after.iter().zip(states) {
            let c = match state {
                Err(()) => Counts::Unfinished,
                // Its `created` record was lost: lost, never "destroyed".
                Ok(Some(r)) if r.lost => Counts::Broken(Broke::Lost),
                // A tombstone counts as what it was destroyed as: a job
                // that completed before it was destroyed still did.
                Ok(Some(r)) if r.destroyed => match r.state {
                    JobState::Completed => Counts::Completed,
                    _ => counts(None),
                },
                Ok(r) => counts(r.map(|r| r.state)),
            };
            wait.add(dep, c);
        }
        wait
    }

    /// The verdict on waiting job `id`'s dependencies, None while it must
    /// wait: from the book, never from their rows.
    fn dependency_verdict(&self, id: JobId, policy: DependencyFailure) -> Option<Verdict> {
        let wait = self.book.waits.get(&id)?;
        match (wait.broken.first(), policy) {
            (Some(&(dep, what)), DependencyFailure::Fail | DependencyFailure::Abort) => {
                Some(Verdict::Stop(dep, what.as_str()))
            }
            _ if wait.unfinished > 0 => None,
            _ => Some(Verdict::Run),
        }
    }

    /// Settles waiting job `id` as its `created` record enters it, unless
    /// this replay may find lost jobs (`Book::settle_later`) and a
    /// dependency is not in the table: that one may be a job whose own
    /// `created` record was lost, known only once the whole log is read,
    /// so the job waits for `settle_after_replay`.
    pub(crate) fn settle_entering(&mut self, id: JobId) {
        let gone = self
            .book
            .waits
            .get(&id)
            .is_some_and(DependencyWait::has_gone);
        match self.book.settle_later.as_mut() {
            Some(later) if gone => {
                later.insert(id);
            }
            _ => self.settle_waiting(id),
        }
    }

    /// The end of a replay that deferred settles (`settle_entering`), once
    /// the lost rows are in (a lost dependency counts "lost" then, by
    /// `Book::dependency_moved`): settles each deferred job, and those
    /// waiting on it in turn. Nothing when none was deferred.
    pub(crate) fn settle_after_replay(&mut self) {
        let Some(later) = self.book.settle_later.take() else {
            return;
        };
        for id in later {
            self.settle_waiting(id);
        }
        self.settle_dependents();
    }

    /// Moves waiting job `id` on if its dependencies allow: queued (or
    /// scheduled at its `run_at`), failed or aborted. At the log's time.
    /// A job deferred to the end of replay (`settle_entering`) waits.
    pub(crate) fn settle_waiting(&mut self, id: JobId) {
        if (self.book.settle_later.as_ref()).is_some_and(|later| later.contains(&id)) {
            return;
        }
        let Some(job) = self
            .table
            .resident(&id)
            .filter(|j| j.state == JobState::Waiting)
        else {
            return;
        };
        let Some(verdict) = self.dependency_verdict(id, job.on_dependency_failure) else {
            return;
        };
        let at_ms = self.book.log_ms;
        let job = self.table.get_mut(&id).expect("looked up above");
        match verdict {
            Verdict::Run => {
                let next = if job.run_at_ms.is_some_and(|t| t > at_ms) {
                    JobState::Scheduled
                } else {
                    JobState::Queued
                };
                self.book.set_state(job, next, at_ms);
            }
            Verdict::Stop(dep, what) => {
                let (state, verb) = match job.on_dependency_failure {
                    DependencyFailure::Abort => (JobState::Aborted, "aborted"),
                    _ => (JobState::Failed, "failed"),
                };
                job.failure_reason = Some(format!(
                    "{verb}: job {dep}, which it runs after, was {what} (--on-dependency-failure {})",
                    if state == JobState::Aborted { "abort" } else { "fail" }
                ));
                self.book.set_state(job, state, at_ms);
            }
        }
        self.book.refile(job);
    }

    /// Settles every job waiting on a job that finished or went while the
    /// last record was applied, and on those in turn.
    ///
    /// The dependency's list is taken out while its jobs settle, so each
    /// one that stops waiting finds no list of it to scan
    /// (`Book::stop_waiting`), and those still waiting go back in one
    /// pass: linear in the jobs fanned out from one dependency (it was
    /// quadratic: 100 000 jobs after one setup job scanned 5e9 entries on
    /// the commit thread).
    pub(crate) fn settle_dependents(&mut self) {
        while let Some(done) = self.book.finished.pop() {
            let Some(waiting) = self.book.dependents.remove(&done) else {
                continue;
            };
            for &id in &waiting {
                self.settle_waiting(id);
            }
            #[cfg(test)]
            {
                self.book.dependents_scanned += waiting.len() as u64;
            }
            let waits = &self.book.waits;
            let still: Vec<JobId> = waiting
                .into_iter()
                .filter(|id| waits.contains_key(id))
                .collect();
            if !still.is_empty() {
                self.book.dependents.entry(done).or_default().extend(still);
            }
        }
    }

    /// Why a waiting job waits: the dependencies not completed yet.
    pub(crate) fn waiting_for(&self, job: &Job) -> Option<String> {
        if job.state != JobState::Waiting {
            return None;
        }
        let open: Vec<String> = job
            .after
            .iter()
            .filter(|d| self.table.get(d).is_some_and(|j| !j.state.is_finished()))
            .map(|d| d.to_string())
            .collect();
        Some(format!(
            "waiting for job {} to complete",
            if open.is_empty() {
                "its dependencies".to_string()
            } else {
                open.join(", ")
            }
        ))
    }
}

#[cfg(test)]
mod tests {

    use crate::meta::{Meta, SimpleOutcome};
    use crate::state::Book;
    use crate::{DependencyFailure, JobSpec, JobState};

    fn created(first_id: u64, spec: JobSpec) -> Meta {
        Meta::Created {
            first_id,
            at_ms: 1,
            specs: vec![spec],
        }
    }

    fn done(job: u64) -> Meta {
        Meta::SimpleDone {
            at_ms: 2,
            at_us: None,
            outcomes: vec![SimpleOutcome {
                job,
                started_us: 1,
                result: Ok(None),
                retry_at_ms: None,
            }],
        }
    }

    /// A waiting job in a checkpoint waits again after a reopen from it,
    /// and its dependency's completion, applied after, queues it.
    #[test]
    fn a_checkpoint_keeps_a_waiting_job_waiting_until_its_dependency_completes() {
        let mut logged = crate::logged_tests::Logged::new(crate::state_tests::state());
        let spec = JobSpec::simple("k", serde_json::Value::Null);
        logged.apply(&created(1, spec.clone())).unwrap();
        let after = spec.with_after(&[1], DependencyFailure::Fail);
        logged.apply(&created(2, after)).unwrap();
        assert_eq!(logged.st.table[&2].state, JobState::Waiting);
        logged.checkpoint();
        logged.reopen(Book::new(4, 1000, 100));
        assert_eq!(logged.st.table[&2].state, JobState::Waiting);
        logged.apply(&done(1)).unwrap();
        assert_eq!(logged.st.table[&2].state, JobState::Queued);
    }

    /// A dependency whose row cannot be read when a job that waits on it
    /// enters the table (its page rotted; replay of the job's `created`)
    /// counts as unfinished, never broken: the open names its page as
    /// damage that refuses checkpoints, and the job's own outcome, logged
    /// after, still applies. Before, the dependency counted as lost, the
    /// job failed "job 1 was lost" (its outcome then skipped), and the
    /// next checkpoint made that permanent.
    #[test]
    fn a_dependency_whose_row_cannot_be_read_at_reopen_never_fails_the_job_waiting_on_it() {
        let mut logged = crate::logged_tests::Logged::new(crate::state_tests::state());
        let spec = JobSpec::simple("k", serde_json::Value::Null);
        logged.apply(&created(1, spec.clone())).unwrap();
        logged.apply(&done(1)).unwrap();
        logged.checkpoint();
        let after = spec.with_after(&[1], DependencyFailure::Fail);
        logged.apply(&created(2, after)).unwrap();
        assert_eq!(logged.st.table[&2].state, JobState::Queued);
        logged.apply(&done(2)).unwrap();
        logged.fail_reads_of(crate::table::keys::row_page(0));
        let damage = logged.reopen_damaged(Book::new(4, 1000, 100));
        let w = logged
            .st
            .table
            .resident(&2)
            .expect("replayed into RAM")
            .clone();
        assert_eq!(w.state, JobState::Completed, "{:?}", w.failure_reason);
        assert!(
            damage
                .iter()
                .any(|d| d.meta_lost && d.what.contains("row page 0")),
            "{damage:?}"
        );
        let blocker = logged.st.checkpoint_blocker().unwrap_or_default();
        assert!(blocker.contains("paused"), "{blocker}");
    }

    /// A job waiting on many finished dependencies whose rows left RAM
    /// reads each of their pages once when its `created` record replays
    /// (their states, from the page), never one whole row per dependency:
    /// 200 dependencies (150 finished, 50 queued: their rows too leave
    /// RAM at the open) over 4 pages cost at most 4 reads at reopen
    /// (before: 150 page decodes).
    #[test]
    fn a_reopen_reads_a_waiting_jobs_dependencies_a_page_at_a_time() {
        let mut logged = crate::logged_tests::Logged::new(crate::state_tests::state());
        let spec = JobSpec::simple("k", serde_json::Value::Null);
        let deps: Vec<u64> = (1..=200).collect();
        let m = Meta::Created {
            first_id: 1,
            at_ms: 1,
            specs: vec![spec.clone(); deps.len()],
        };
        logged.apply(&m).unwrap();
        for &id in &deps[..150] {
            logged.apply(&done(id)).unwrap();
        }
        logged.checkpoint();
        let reads = logged.reads();
        logged.reopen(Book::new(4, 1000, 100));
        let without = logged.reads() - reads;
        let after = spec.with_after(&deps, DependencyFailure::Fail);
        logged.apply(&created(201, after)).unwrap();
        assert_eq!(logged.st.table[&201].state, JobState::Waiting);
        let reads = logged.reads();
        logged.reopen(Book::new(4, 1000, 100));
        assert_eq!(logged.st.table[&201].state, JobState::Waiting);
        let with = logged.reads() - reads;
        assert!(
            with - without <= 4,
            "{} reads for the dependencies' 4 pages",
            with - without
        );
    }

    /// Jobs fanned out from one dependency settle in linear time when it
    /// completes: 50 000 waiters scan about as many list entries (before,
    /// each settled job scanned the dependency's whole list to leave it:
    /// 1.25e9 steps under the state lock).
    #[test]
    fn jobs_fanned_out_from_one_dependency_settle_in_linear_steps() {
        let mut st = crate::state_tests::state();
        let spec = JobSpec::simple("k", serde_json::Value::Null);
        st.apply(&created(1, spec.clone())).unwrap();
        let fanned = 50_000u64;
        let after = spec.with_after(&[1], DependencyFailure::Fail);
        let m = Meta::Created {
            first_id: 2,
            at_ms: 1,
            specs: vec![after; fanned as usize],
        };
        st.apply(&m).unwrap();
        st.apply(&done(1)).unwrap();
        let queued = (2..2 + fanned)
            .filter(|id| st.table[id].state == JobState::Queued)
            .count();
        assert_eq!(queued as u64, fanned);
        assert!(
            st.book.dependents_scanned <= 2 * fanned,
            "{} list entries scanned",
            st.book.dependents_scanned
        );
        assert!(st.book.dependents.is_empty() && st.book.waits.is_empty());
    }

    /// A job waiting on many dependencies, across a checkpoint and a
    /// reopen: it waits until the last completes, then is queued; and
    /// settling it reads no row from the store (before, each completion
    /// read every finished dependency's row again: quadratic page reads
    /// on the commit thread).
    #[test]
    fn a_job_waiting_on_many_dependencies_settles_from_the_book_across_a_reopen() {
        let mut logged = crate::logged_tests::Logged::new(crate::state_tests::state());
        let spec = JobSpec::simple("k", serde_json::Value::Null);
        let deps: Vec<u64> = (1..=100).collect();
        for &id in &deps {
            logged.apply(&created(id, spec.clone())).unwrap();
        }
        let after = spec.with_after(&deps, DependencyFailure::Fail);
        logged.apply(&created(101, after)).unwrap();
        for &id in &deps[..60] {
            logged.apply(&done(id)).unwrap();
        }
        logged.checkpoint();
        logged.reopen(Book::new(4, 1000, 100));
        assert_eq!(logged.st.table[&101].state, JobState::Waiting);
        // Leased before they finish: their queued rows, which left RAM at
        // the open, are read back first, as a lease reads them.
        for id in &deps[60..] {
            logged.st.table.load(id).unwrap();
        }
        let reads = logged.reads();
        for &id in &deps[60..99] {
            logged.apply(&done(id)).unwrap();
            assert_eq!(logged.st.table[&101].state, JobState::Waiting);
        }
        logged.apply(&done(100)).unwrap();
        assert_eq!(logged.st.table[&101].state, JobState::Queued);
        assert_eq!(logged.reads(), reads, "settling read rows from the store");
        // The log replays to the same.
        logged.checkpoint();
        logged.reopen(Book::new(4, 1000, 100));
        let row = logged.st.table.get(&101).expect("its row, from its page");
        assert_eq!(row.state, JobState::Queued);
    }
}
