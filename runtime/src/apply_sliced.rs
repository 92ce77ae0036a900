//! How meta records change a sliced job: uploads, slice outcomes, hooks,
//! and the retry and settle rules. Part of `State::apply` (see `state.rs`):
//! deterministic, and every counter taken from a record is checked.

use std::sync::Arc;

use crate::meta::Meta;
use crate::state::Book;
use crate::table::slice_map::SlicePlace;
use crate::table::{merge_error_groups, Body, Job, SliceState, UploadState};
use crate::{JobId, JobState, RuntimeError};

/// `counter + n`, or corruption: counters come from meta records, and a
/// value that would wrap was never written by a run of the runtime.
fn add(counter: &mut u64, n: u64, job: JobId, what: &str) -> Result<(), RuntimeError> {
    *counter = counter
        .checked_add(n)
        .ok_or_else(|| RuntimeError::Corrupt(format!("job {job}: {what} would pass 2^64")))?;
    Ok(())
}

/// `counter - n`, or corruption (see `add`).
fn sub(counter: &mut u64, n: u64, job: JobId, what: &str) -> Result<(), RuntimeError> {
    *counter = counter
        .checked_sub(n)
        .ok_or_else(|| RuntimeError::Corrupt(format!("job {job}: {what} would go below 0")))?;
    Ok(())
}

pub(crate) fn apply_sliced(
    book: &mut Book,
    job: &mut Job,
    meta: &Meta,
) -> Result<(), RuntimeError> {
    let id = job.id;
    let Body::Sliced(s) = &mut job.body else {
        return Err(RuntimeError::Invalid(format!(
            "job {} is a simple job; only sliced jobs take uploads",
            job.id
        )));
    };
    match meta {
        Meta::Uploaded {
            slice,
            first_record,
            records,
            rejects,
            line_first,
            lines,
            numbers,
            reject_errors,
            ..
        } => {
            let place = SlicePlace {
                first_record: *first_record,
                records: *records,
                line_first: *line_first,
            };
            let fresh = s.upload == UploadState::Open
                && s.slices.upload(
                    *slice,
                    place,
                    lines.clone().map(Arc::new),
                    numbers.clone().map(Arc::new),
                );
            if !fresh {
                return Err(RuntimeError::Invalid(format!(
                    "job {}: upload is closed or slice {slice} exists",
                    job.id
                )));
            }
            if let Some(a) = book.sliced_entry(id) {
                a.queued.insert(*slice);
            }
            let (records, rejects) = (u64::from(*records), u64::from(*rejects));
            add(&mut s.records_in, records + rejects, id, "records_in")?;
            add(&mut s.records_rejected, rejects, id, "records_rejected")?;
            add(&mut s.records_errors, rejects, id, "records_errors")?;
            merge_error_groups(&mut s.collected_errors, reject_errors);
        }
        Meta::UploadComplete { .. } => {
            s.upload = UploadState::Complete;
            book.uploaders.remove(&id);
            book.emit(job, "upload_complete");
            settle(book, job, book.log_ms);
        }
        Meta::UploadFailed { reason, .. } => {
            // Written while the job's `UploadComplete` record was lost (a
            // segment missing or cut), then the segment was restored: the
            // upload did finish, and the restored log says so.
            if s.upload == UploadState::Complete {
                return Ok(());
            }
            s.upload = UploadState::Failed;
            book.uploaders.remove(&id);
            if !job.is_terminal() {
                job.failure_reason = Some(reason.clone());
                book.revoke_leases(job);
                book.set_state(job, JobState::Failed, book.log_ms);
            }
            return Ok(());
        }
        Meta::BeforeDone { at_ms, .. } => {
            s.before_done = true;
            // A sliced job starts when its before hook is done: a record,
            // so live and replay agree (never the hook's lease).
            job.started_us.get_or_insert(crate::clock::ms_to_us(*at_ms));
            if job.state == JobState::Queued {
                book.set_state(job, JobState::Running, *at_ms);
            }
        }
        Meta::SliceDone {
            slice,
            errors,
            error_groups,
            at_ms,
            written,
            written_by_category,
            ..
        } => {
            // Checked before anything changes: a record naming a category
            // the job never declared was not written by the runtime.
            let counted: Vec<(usize, u64)> = written_by_category
                .iter()
                .map(|(name, n)| Ok((category_index(&s.categories, name, id)?, *n)))
                .collect::<Result<_, RuntimeError>>()?;
            let Some(state) = s.slices.state(*slice) else {
                return Ok(());
            };
            let records = s.slices.place(*slice).map_or(0, |p| p.records);
            match state {
                SliceState::Done => return Ok(()),
                SliceState::Failed => {
                    sub(&mut s.slices_failed, 1, id, "slices_failed")?;
                    let n = u64::from(records);
                    sub(
                        &mut s.records_in_failed_slices,
                        n,
                        id,
                        "records_in_failed_slices",
                    )?;
                    s.failures.remove(slice);
                }
                SliceState::Pending => {}
            }
            s.slices.set_state(*slice, SliceState::Done);
            s.slices.with_detail(*slice, |d| {
                d.retry_at_ms = None;
                d.errors = *errors;
            });
            add(&mut s.slices_done, 1, id, "slices_done")?;
            let out = u64::from(records.saturating_sub(*errors));
            add(&mut s.records_out, out, id, "records_out")?;
            if let Some(total) = s.records_written.as_mut() {
                add(total, written.unwrap_or(out), id, "records_written")?;
            }
            add(
                &mut s.records_errors,
                u64::from(*errors),
                id,
                "records_errors",
            )?;
            for (i, n) in counted {
                add(&mut s.records_by_category[i], n, id, "records_by_category")?;
            }
            if let Some(a) = book.sliced_entry(id) {
                a.queued.remove(*slice);
            }
            merge_error_groups(&mut s.collected_errors, error_groups);
            book.emit(job, "slice_done");
            settle(book, job, *at_ms);
        }
        Meta::SliceFailed {
            slice,
            at_ms,
            message,
            sample,
            retry_at_ms,
            ..
        } => {
            if s.slices.state(*slice) != Some(SliceState::Pending) {
                return Ok(());
            }
            if let Some(at) = *retry_at_ms {
                // The kind's retry policy: the slice stays pending, out of
                // the queue until `release_scheduled` finds it due.
                s.slices.with_detail(*slice, |d| {
                    d.retries = d.retries.saturating_add(1);
                    d.retry_at_ms = Some(at);
                });
                if let Some(a) = book.sliced_entry(id) {
                    a.queued.remove(*slice);
                }
                book.slice_retries.insert((at, id, *slice));
                book.emit(job, "slice_retry_scheduled");
                return Ok(());
            }
            s.slices.set_state(*slice, SliceState::Failed);
            add(&mut s.slices_failed, 1, id, "slices_failed")?;
            let n = u64::from(s.slices.place(*slice).map_or(0, |p| p.records));
            add(
                &mut s.records_in_failed_slices,
                n,
                id,
                "records_in_failed_slices",
            )?;
            if let Some(a) = book.sliced_entry(id) {
                a.queued.remove(*slice);
            }
            s.failures.insert(*slice, (message.clone(), sample.clone()));
            book.emit(job, "slice_failed");
            settle(book, job, *at_ms);
        }
        Meta::AfterDone { at_ms, .. } => {
            let finished = s.all_slices_finished() && s.slices_failed == 0;
            if !job.is_terminal() && finished {
                book.set_state(job, JobState::Completed, *at_ms);
            }
        }
        _ => unreachable!("not a sliced-job record"),
    }
    Ok(())
}

/// Where `name` is in the job's category list; a name it lacks was not
/// written by the runtime.
fn category_index(categories: &[String], name: &str, job: JobId) -> Result<usize, RuntimeError> {
    categories.iter().position(|c| c == name).ok_or_else(|| {
        RuntimeError::Corrupt(format!(
            "job {job}: slice_done names category {name:?}, which the job does not have"
        ))
    })
}

/// A running sliced job whose slices are all finished and some failed, fails.
pub(crate) fn settle(book: &mut Book, job: &mut Job, at_ms: u64) {
    let Body::Sliced(s) = &job.body else {
        return;
    };
    if job.state == JobState::Running && s.all_slices_finished() && s.slices_failed > 0 {
        let reason = format!(
            "{} of {} slices failed; `retry` runs only those again",
            s.slices_failed,
            s.slices.count()
        );
        job.failure_reason = Some(reason);
        book.set_state(job, JobState::Failed, at_ms);
    }
}

/// A failed job runs again. It is finished, so it has no scheduler entry:
/// `set_state` makes one from the row, which queues every pending slice.
pub(crate) fn retry(book: &mut Book, job: &mut Job, at_ms: u64) -> Result<(), RuntimeError> {
    debug_assert!(job.is_terminal());
    job.failure_reason = None;
    let next = match &mut job.body {
        Body::Simple(b) => {
            b.expiries = 0;
            job.run_at_ms = None;
            JobState::Queued
        }
        Body::Sliced(s) => {
            if s.upload == UploadState::Failed {
                return Err(RuntimeError::Invalid(format!(
                    "job {} cannot be retried: its upload never finished; submit the job again and upload the file",
                    job.id
                )));
            }
            let failed: Vec<u64> = s.slices.failed.iter().collect();
            for n in failed {
                s.slices.set_state(n, SliceState::Pending);
                s.slices.with_detail(n, |d| {
                    d.panics = 0;
                    d.expiries = 0;
                    d.retries = 0;
                });
            }
            s.slices_failed = 0;
            s.hook_expiries = 0;
            s.records_in_failed_slices = 0;
            s.failures.clear();
            if s.before_done {
                JobState::Running
            } else {
                JobState::Queued
            }
        }
    };
    book.set_state(job, next, at_ms);
    Ok(())
}
