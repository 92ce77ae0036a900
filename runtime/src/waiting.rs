//! Why a job that could run does not: a registered handler declined it
//! (`RecordHandler::refuses` / `SimpleHandler::refuses`, e.g. `exec` with a
//! command this process does not allow), no handler for its kind is
//! registered in this process, its upload has not finished, or its kind is
//! outside its processing window (`window.rs`), or a failed slice waits
//! for its automatic retry. A declined
//! job stays out of the ready queue, so it never blocks the jobs behind it;
//! `JobStatus::waiting_reason` says why it waits.

use std::sync::Arc;

use crate::state::State;
use crate::table::{Job, UploadState};
use crate::{JobContext, JobState};

/// A handler's `refuses`, kept with its kind's configuration.
pub type Refusal = Arc<dyn Fn(&JobContext<'_>) -> Option<String> + Send + Sync>;

impl State {
    /// Why this process's handler declines `job`, if it does.
    pub fn refusal_of(&self, job: &Job) -> Option<String> {
        let refuses = self.book.kinds.get(&job.kind)?.refuses.as_ref()?;
        refuses(&JobContext {
            id: job.id,
            kind: &job.kind,
            properties: &job.properties,
            categories: job.sliced().map_or(&[], |s| &s.categories),
            source: None,
        })
    }

    /// Asks the (newly registered) handler of `kind` about every job of
    /// that kind that has not ended, and re-files each.
    pub fn reconsider(&mut self, kind: &str) {
        let Some(kind_id) = self.book.kind_ids.id(kind) else {
            return;
        };
        let mut ids: Vec<_> = self
            .book
            .active
            .iter()
            .filter(|(_, e)| e.kind_id == kind_id)
            .map(|(id, _)| *id)
            .collect();
        // Ascending: rows a checkpoint let go are read back a page at a time.
        ids.sort_unstable();
        for id in ids {
            // A job whose row cannot be read now stays filed as it was.
            match self.make_resident(id) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    self.table.surface_read_error(&e);
                    continue;
                }
            }
            let job = &self.table[&id];
            let refused = self.refusal_of(job);
            self.book.set_refused(id, refused);
            self.book.refile(&self.table[&id]);
        }
    }

    /// What `JobStatus::waiting_reason` shows: None unless the job is
    /// queued or running and something here keeps it from running.
    pub fn waiting_reason(&self, job: &Job) -> Option<String> {
        if let Some(reason) = self.waiting_for(job) {
            return Some(reason);
        }
        if !matches!(job.state, JobState::Queued | JobState::Running) {
            return None;
        }
        if let Some(reason) = self.book.refused.get(&job.id) {
            return Some(reason.to_string());
        }
        if let Some(s) = job.sliced() {
            if crate::dirmon::holds(job) {
                return Some("a dirmon job: it runs once its whole file is uploaded".into());
            }
            if s.upload == UploadState::Open && !self.book.uploaders.contains(&job.id) {
                return Some("waiting for its upload to finish".into());
            }
            let retrying = s
                .slices
                .detail
                .iter()
                .find_map(|(n, d)| Some((n, d.retry_at_ms?)));
            let live = self.book.sliced_live.get(&job.id);
            let idle = live.is_none_or(|a| a.queued.is_empty() && a.leased_slices == 0);
            if let (true, Some((n, at_ms))) = (idle, retrying) {
                let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at_ms as i64)
                    .unwrap_or_default();
                return Some(format!(
                    "slice {n} failed; the kind's retry policy runs it again at {}",
                    at.format("%Y-%m-%d %H:%M:%S UTC")
                ));
            }
        }
        let closed = self
            .book
            .active
            .get(&job.id)
            .is_some_and(|e| e.has(crate::scheduler::flag::WINDOW_CLOSED));
        if let Some(w) = job.window.filter(|_| closed) {
            return Some(w.job_closed_reason(self.book.clock.now_ms()));
        }
        let conf = self.book.kinds.get(&job.kind);
        let registered = conf.is_some_and(|k| k.handler.is_some());
        if let Some(w) = conf.and_then(|k| k.window()) {
            let now_ms = self.book.clock.now_ms();
            if registered && !w.is_open(now_ms) {
                return Some(w.closed_reason(&job.kind, now_ms));
            }
        }
        if let Some(max) = conf.and_then(|k| k.max_running()) {
            let running = self.book.running_of(&job.kind);
            if registered && job.state == JobState::Queued && running >= max {
                return Some(if max == 0 {
                    format!(
                        "kind {:?} is paused (its running-job limit is 0)",
                        &*job.kind
                    )
                } else {
                    format!(
                        "kind {:?} is at its limit of {max} running job(s)",
                        &*job.kind
                    )
                });
            }
        }
        // A node without threads: a remote process may run a kind that
        // has no handler here (a service's own).
        if registered || self.book.local_workers == 0 {
            if let Some(reason) = self.no_worker_can_run(job) {
                return Some(reason);
            }
        }
        if self.book.local_workers == 0 {
            return None;
        }
        (self.book.runs_workers && !registered).then(|| {
            format!(
                "no worker registered for kind {:?} in this process; run it where that kind is registered",
                &*job.kind
            )
        })
    }
}
