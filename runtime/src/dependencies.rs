//! Dependent jobs (issue 14): a job whose `after` jobs have not all
//! completed waits (`JobState::Waiting`) and is never leased. `apply`
//! decides it from the states the log gave its dependencies, so live and
//! replay agree (ARCHITECTURE.md, "Dependent jobs"):
//!
//! | dependencies                                 | fail   | abort   | run    |
//! |----------------------------------------------|--------|---------|--------|
//! | all completed                                | runs   | runs    | runs   |
//! | one failed, aborted or gone                  | failed | aborted | waits  |
//! | all finished, some not completed             | failed | aborted | runs   |
//! | some unfinished, none failed                 | waits  | waits   | waits  |

use crate::state::State;
use crate::table::Job;
use crate::{DependencyFailure, JobId, JobState};

/// What a waiting job's dependencies say now.
enum Verdict {
    Run,
    /// A dependency did not complete: (its id, what it became).
    Stop(JobId, &'static str),
}

impl State {
    /// The verdict on `job`'s dependencies, None while it must wait.
    fn dependency_verdict(&self, job: &Job) -> Option<Verdict> {
        let mut unfinished = false;
        let mut broken = None;
        for dep in &job.after {
            match self.table.get(dep).map(|j| j.state) {
                Some(JobState::Completed) => {}
                Some(s) if s.is_finished() => {
                    broken.get_or_insert((*dep, s.as_str()));
                }
                Some(_) => unfinished = true,
                None => {
                    broken.get_or_insert((*dep, "destroyed"));
                }
            }
        }
        match (broken, job.on_dependency_failure) {
            (Some((dep, what)), DependencyFailure::Fail | DependencyFailure::Abort) => {
                Some(Verdict::Stop(dep, what))
            }
            _ if unfinished => None,
            _ => Some(Verdict::Run),
        }
    }

    /// Moves waiting job `id` on if its dependencies allow: queued (or
    /// scheduled at its `run_at`), failed or aborted. At the log's time.
    pub(crate) fn settle_waiting(&mut self, id: JobId) {
        let Some(job) = self.table.get(&id).filter(|j| j.state == JobState::Waiting) else {
            return;
        };
        let Some(verdict) = self.dependency_verdict(&job) else {
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
    pub(crate) fn settle_dependents(&mut self) {
        while let Some(done) = self.book.finished.pop() {
            for id in self.book.dependents.remove(&done).unwrap_or_default() {
                self.settle_waiting(id);
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
}
