//! A job's status as callers see it (`JobStatus`): counts, progress,
//! leases, grouped errors and why it waits, built from the table under the
//! state lock.

use crate::clock::from_ms;
use crate::shared::Shared;
use crate::state::State;
use crate::table::{merge_error_groups, Body, Job, UploadState};
use crate::{ErrorGroup, JobFilter, JobId, JobState, JobStatus, LeaseInfo, RuntimeError};

pub fn percent(job: &Job) -> f64 {
    match &job.body {
        Body::Simple(_) => {
            if job.is_terminal() {
                100.0
            } else {
                0.0
            }
        }
        Body::Sliced(s) => {
            let total = s.slices.count() as f64;
            if job.state == JobState::Completed {
                100.0
            } else if total == 0.0 {
                0.0
            } else {
                let p = 100.0 * (s.slices_done + s.slices_failed) as f64 / total;
                if s.upload == UploadState::Complete {
                    p
                } else {
                    p.min(99.0)
                }
            }
        }
    }
}

pub fn build_status(st: &State, job: &Job) -> JobStatus {
    let touching = || st.book.leases.values().filter(|l| l.touches(job.id));
    // A job no record has started yet, but a lease holds: since its lease.
    let started_us = job
        .started_us
        .or_else(|| touching().map(|l| l.since_us).min());
    let leases = touching()
        .map(|l| LeaseInfo {
            worker: l.worker,
            job: job.id,
            slice: match l.work {
                crate::state::LeaseWork::Slice { slice, .. } => Some(slice),
                _ => None,
            },
            epoch: l.epoch,
            since: from_ms(l.since_ms),
            deadline: from_ms(l.deadline_ms),
        })
        .collect();
    let mut status = JobStatus {
        id: job.id,
        kind: job.kind.to_string(),
        description: job.description.clone(),
        state: job.state,
        priority: job.priority,
        max_workers: job.max_workers,
        created_at: from_ms(job.created_ms),
        started_at: started_us.map(crate::clock::from_us),
        completed_at: job.completed_us.map(crate::clock::from_us),
        run_at: job.run_at_ms.map(from_ms),
        expires_at: job.expires_at_ms.map(from_ms),
        simple: matches!(job.body, Body::Simple(_)),
        upload_complete: true,
        slices_total: 0,
        slices_queued: 0,
        slices_running: 0,
        slices_done: 0,
        slices_failed: 0,
        records_in: 0,
        records_out: 0,
        records_out_by_category: Default::default(),
        records_processed: 0,
        records_errors: 0,
        records_in_failed_slices: 0,
        records_failed: 0,
        percent: percent(job),
        records_per_s: 0.0,
        eta_s: None,
        leases,
        errors: Vec::new(),
        failure_reason: job.failure_reason.clone(),
        waiting_reason: st.waiting_reason(job),
        damage: st.damage_of(job),
        cron: job.cron,
        window: job.window,
        singleton: job.singleton.as_deref().map(str::to_string),
        after: job.after.clone(),
        on_dependency_failure: job.on_dependency_failure,
        result: None,
        attempts: job.attempts,
        properties: (*job.properties).clone(),
        allowed_actions: crate::transition::allowed_actions(
            job.state,
            matches!(job.body, Body::Simple(_)),
            st.book.lost.contains(&job.id),
        )
        .into_iter()
        .map(str::to_string)
        .collect(),
    };
    match &job.body {
        Body::Simple(b) => status.result = b.result.clone(),
        Body::Sliced(s) => {
            status.upload_complete = s.upload == UploadState::Complete;
            status.slices_total = s.slices.count();
            status.slices_running = st
                .book
                .sliced_live
                .get(&job.id)
                .map_or(0, |a| u64::from(a.leased_slices));
            status.slices_queued = s.slices_pending().saturating_sub(status.slices_running);
            status.slices_done = s.slices_done;
            status.slices_failed = s.slices_failed;
            status.records_in = s.records_in;
            status.records_out = s.written();
            status.records_out_by_category = s
                .categories
                .iter()
                .cloned()
                .zip(s.records_by_category.iter().copied())
                .collect();
            status.records_processed = s.records_out;
            status.records_errors = s.records_errors;
            status.records_in_failed_slices = s.records_in_failed_slices;
            status.records_failed = s.records_errors.saturating_add(s.records_in_failed_slices);
            let mut errors: Vec<ErrorGroup> = s.collected_errors.clone();
            for (message, sample) in s.failures.values() {
                merge_error_groups(
                    &mut errors,
                    &[ErrorGroup {
                        message: message.clone(),
                        count: 1,
                        samples: sample.iter().cloned().collect(),
                    }],
                );
            }
            status.errors = errors;
            if let Some(started_us) = job.started_us {
                let end_us = job.completed_us.unwrap_or_else(|| st.book.clock.now_us());
                let secs = (end_us.saturating_sub(started_us) as f64 / 1e6).max(0.001);
                status.records_per_s = s.records_out as f64 / secs;
                let left = s
                    .records_in
                    .saturating_sub(s.records_out.saturating_add(status.records_failed));
                // Only a job that is making progress has an ETA: not one
                // paused, or held by a closed window or a missing handler.
                if status.records_per_s > 0.0
                    && job.state == JobState::Running
                    && status.waiting_reason.is_none()
                {
                    status.eta_s = Some(left as f64 / status.records_per_s);
                }
            }
        }
    }
    status
}

pub fn filter_matches(filter: &JobFilter, j: &Job) -> bool {
    filter.state.is_none_or(|s| j.state == s)
        && filter.kind.as_deref().is_none_or(|k| &*j.kind == k)
        && filter
            .text
            .as_deref()
            .is_none_or(|t| j.description.contains(t) || j.kind.contains(t))
}

pub fn status_of(shared: &Shared, id: JobId) -> Result<JobStatus, RuntimeError> {
    let st = shared.state.lock();
    let job = st.job_row(id)?;
    Ok(build_status(&st, &job))
}

/// Job `id`'s status for a caller that waited on it (`Runtime::wait`, an
/// upload's `finish`): a job destroyed by the record that finished it
/// answers with the final state its tombstone keeps; a job destroyed
/// before it finished is `NotFound` saying so.
pub fn kept_status(st: &State, id: JobId) -> Result<JobStatus, RuntimeError> {
    if st.book.placed.contains(&id) {
        return Err(st.missing(id));
    }
    match st.table.row_or_tombstone(&id) {
        Some(j) if !j.is_destroyed() || j.state.is_finished() => Ok(build_status(st, &j)),
        _ => Err(st.missing(id)),
    }
}

impl State {
    /// One line per damaged range that held slices or records of `job`:
    /// where it is, what was wrong, which of the job's slices it took.
    pub fn damage_of(&self, job: &Job) -> Vec<String> {
        let mut lines = self.damage_now(job);
        // Rot an earlier process found when it read a slice: sealed frames
        // are checked only when read, so this open did not see it.
        for i in &self.book.incidents {
            if let crate::IncidentKind::Damaged {
                end,
                what,
                jobs,
                meta_lost: false,
                ..
            } = &i.kind
            {
                let listed = self
                    .book
                    .damage
                    .iter()
                    .any(|d| d.segment_id == i.segment && d.offset == i.offset);
                if jobs.contains(&job.id) && !listed {
                    lines.push(format!(
                        "segment {} ({}) offsets {}..{}: {what}",
                        i.segment, i.file, i.offset, end
                    ));
                }
            }
        }
        lines
    }

    fn damage_now(&self, job: &Job) -> Vec<String> {
        let lost = self.book.lost.contains(&job.id);
        let categories = job
            .sliced()
            .map(|s| s.categories.clone())
            .unwrap_or_else(|| std::sync::Arc::from(Vec::new()));
        self.book
            .damage
            .iter()
            .filter_map(|d| {
                let what = if lost && d.meta_lost {
                    "lost meta records (the job's created record among them, or in another \
                     such range)"
                        .to_string()
                } else if d.slices.iter().any(|k| k.owner == job.id) {
                    let slices: Vec<String> = d
                        .slices
                        .iter()
                        .filter(|k| k.owner == job.id)
                        .map(|k| format!("{} slice {}", stream_name(k.stream, &categories), k.seq))
                        .collect();
                    format!("lost {}", slices.join(", "))
                } else if d.meta_lost
                    && !crate::lost::is_row_page(d)
                    && self.unfinished_at_loss(job, d)
                {
                    "records of this job may be among them: it was not finished when the loss \
                     was found (slices whose commits went with them run again)"
                        .to_string()
                } else {
                    return None;
                };
                // Formatted only for a line shown (a listing asks every row).
                Some(format!("{}; {what}", crate::lost::describe_range(d)))
            })
            .collect()
    }

    /// Whether `job` was unfinished when damaged range `d` was first
    /// found: created by then, and not finished before. A range that lost
    /// meta records no frame names may have held any record of such a job
    /// (a slice commit, a simple job's outcome), and nothing in the job
    /// says so once it ran the work again (G7). When the range was first
    /// found is the first incident in the log that lost meta records and
    /// overlaps it (a later open may start the range elsewhere once the
    /// segment is no longer the last; rot a read found, which lost no meta
    /// records, is not that find). Created by then: an id below the
    /// book's next id the incident kept (ids only grow; no clock), or, in
    /// an incident written before it was kept, created at or before the
    /// incident's time. Not finished before: finished at or after the
    /// incident's time (the wall clock: a finish keeps no log position).
    /// Before any process logged the range: every unfinished job.
    fn unfinished_at_loss(&self, job: &Job, d: &booster_store::Damage) -> bool {
        let found = self.book.incidents.iter().find_map(|i| match &i.kind {
            crate::IncidentKind::Damaged {
                end,
                meta_lost: true,
                next_id,
                ..
            } if i.segment == d.segment_id
                && i.offset <= d.end.max(d.offset)
                && d.offset <= *end =>
            {
                Some((crate::clock::to_ms(i.at), *next_id))
            }
            _ => None,
        });
        match found {
            None => !job.is_terminal(),
            Some((at_ms, next_id)) => {
                let created = match next_id {
                    Some(next) => job.id < next,
                    None => job.created_ms <= at_ms,
                };
                created
                    && job
                        .completed_us
                        .is_none_or(|us| us >= crate::clock::ms_to_us(at_ms))
            }
        }
    }
}

/// What a slice stream holds, as `job show` says it: a category's
/// stream by the category's name.
pub(crate) fn stream_name(stream: u32, categories: &[String]) -> String {
    match stream {
        crate::meta::STREAM_INPUT => "input".into(),
        crate::meta::STREAM_MAIN => "output".into(),
        crate::meta::STREAM_ERRORS => "errors".into(),
        crate::meta::STREAM_REJECTS => "rejected-records".into(),
        crate::separators::STREAM_SEPARATORS => "separators".into(),
        s => crate::category::index_of_stream(s)
            .and_then(|n| categories.get(n))
            .map_or_else(|| format!("stream-{s}"), |name| format!("{name} output")),
    }
}
