//! Uploads: records streamed into a sliced job, durable slice by slice.
//!
//! The `Uploader` cuts records into slices and hands each full slice to the
//! upload pool: a few OS threads that build the store batch (input slice,
//! rejected records, `Uploaded` meta record) and call `append_with`, so
//! compression runs on several cores at once. At most `INFLIGHT_BYTES` of
//! slices are on their way at a time (a semaphore counting bytes), however
//! many threads the pool has, which bounds memory. A slice is
//! runnable as soon as its commit is durable: processing starts before the
//! upload ends. A slice whose records came with irregular separators
//! (`push_separated`) also stores them, in the same batch
//! (`crate::separators`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use booster_store::{Batch, RecordsBuf, SliceKey};

use crate::slice_store::SliceStore;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::meta::{self, Meta, STREAM_INPUT, STREAM_REJECTS};
use crate::separators::{self, Separators, STREAM_SEPARATORS};
use crate::shared::{commit, write_one, Shared};
use crate::worker::{clip, error_record};
use crate::{ErrorGroup, JobId, JobStatus, RecordErrorSample, RuntimeError};

/// Bytes a record takes in a slice besides its own: its length prefix.
pub(crate) const RECORD_OVERHEAD: usize = 4;

/// The most bytes of slices (records, rejects, separators, as the
/// uploader counts them) one upload has on their way to the store: cut,
/// queued for the pool, compressing, or appended and not yet durable.
/// Enough to keep the pool busy and several group commits filled while
/// one syncs; it used to be a count of slices that grew with the pool's
/// threads (8 per thread, at least 64), so memory grew with the cores.
/// A slice larger than this goes alone: it waits until nothing else is
/// in flight, and takes the whole budget.
pub(crate) const INFLIGHT_BYTES: usize = 8 << 20;

/// The least a slice counts against `INFLIGHT_BYTES`, so slices of tiny
/// records cannot pile up by the thousand (each carries its meta record).
const MIN_SLICE_CHARGE_BYTES: usize = 16 << 10;

/// What a slice of `bytes` counts against `INFLIGHT_BYTES`: never more
/// than the whole budget, so a slice larger than it still goes through
/// (alone).
fn charge(bytes: usize) -> u32 {
    bytes.clamp(MIN_SLICE_CHARGE_BYTES, INFLIGHT_BYTES) as u32
}

/// One slice on its way to the store.
pub struct UploadSlice {
    shared: Arc<Shared>,
    store: Arc<dyn SliceStore>,
    job: JobId,
    slice: u64,
    records: RecordsBuf,
    rejects: Vec<Vec<u8>>,
    /// The separators frame's records; empty when the slice has none.
    separators: Vec<Vec<u8>>,
    meta: Meta,
    permit: OwnedSemaphorePermit,
    error: FailureCell,
}

/// The first slice of an upload that was not stored, and why: the store's
/// (or the apply's) own error, handed to the uploader's caller once as it
/// is, so a full disk reaches the user as `StoreError::DiskFull` (507 over
/// HTTP), never as an "invalid" string; as text after that.
pub(crate) struct UploadFailure {
    slice: u64,
    text: String,
    error: Option<RuntimeError>,
}

pub(crate) type FailureCell = Arc<Mutex<Option<UploadFailure>>>;

/// The default of `RuntimeOptions::codec_threads`: one per core, at
/// least 2 (the upload pool; a download's readers).
pub(crate) fn codec_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
}

/// Starts `threads` upload threads; they exit when the sender is dropped.
pub fn start_pool(threads: usize) -> Sender<UploadSlice> {
    let (tx, rx) = crossbeam_channel::unbounded::<UploadSlice>();
    for i in 0..threads {
        let rx: Receiver<UploadSlice> = rx.clone();
        let _ = std::thread::Builder::new()
            .name(format!("booster-upload-{i}"))
            .spawn(move || {
                for task in rx {
                    write_slice(task);
                }
            });
    }
    tx
}

fn write_slice(t: UploadSlice) {
    let key = |stream| SliceKey {
        owner: t.job,
        stream,
        seq: t.slice,
    };
    let mut batch = Batch::new().slice_records(key(STREAM_INPUT), t.records);
    if !t.rejects.is_empty() {
        batch = batch.slice(key(STREAM_REJECTS), &t.rejects);
    }
    if !t.separators.is_empty() {
        batch = batch.slice(key(STREAM_SEPARATORS), &t.separators);
    }
    let batch = batch.meta(meta::encode(&t.meta));
    let (permit, error, slice) = (t.permit, t.error, t.slice);
    commit(
        &t.shared,
        &t.store,
        batch,
        vec![t.meta],
        move |_, applied| {
            let failure = match applied {
                Ok(mut r) => r.pop().and_then(|r| r.err()),
                Err(e) => Some(RuntimeError::Store(e)),
            };
            if let Some(e) = failure {
                // The first slice not stored wins: a later slice can fail
                // earlier in time (appended after the store was poisoned,
                // it is refused at once on its own thread) with a vaguer
                // error than the one that stopped the store (a full disk).
                let mut cell = error.lock();
                let earlier = cell
                    .as_ref()
                    .is_some_and(|f| f.slice < slice || f.error.is_none());
                if !earlier {
                    *cell = Some(UploadFailure {
                        slice,
                        text: e.to_string(),
                        error: Some(e),
                    });
                }
            }
            drop(permit);
        },
    );
    drop(t.store);
    t.shared.upload_tasks.fetch_sub(1, Ordering::AcqRel);
}

/// Streams records into a sliced job, durably slice by slice.
pub struct Uploader {
    pub(crate) shared: Arc<Shared>,
    pub(crate) store: Arc<dyn SliceStore>,
    pub(crate) pool: Sender<UploadSlice>,
    pub(crate) job: JobId,
    pub(crate) slice_size: usize,
    /// A slice is cut early when its records reach this many bytes.
    pub(crate) max_slice_bytes: usize,
    pub(crate) next_slice: u64,
    /// 1-based number the next record gets (accepted or rejected).
    pub(crate) next_record: u64,
    /// Bytes that may still go in flight (`INFLIGHT_BYTES` at most).
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) error: FailureCell,
    pub(crate) finished: bool,
    pub(crate) buf: SliceBuffer,
}

#[derive(Default)]
pub(crate) struct SliceBuffer {
    /// Encoded as the slice's payload holds them: each record is copied
    /// once, here, and its `Vec` freed on the thread that made it.
    records: RecordsBuf,
    numbers: Vec<u64>,
    lines: Vec<Option<u64>>,
    /// Irregular separators, by index in `records`.
    separators: Vec<(u32, Separators)>,
    rejects: Vec<Vec<u8>>,
    reject_groups: Vec<ErrorGroup>,
    reject_count: u32,
    /// Bytes of `records` and `rejects`.
    bytes: usize,
}

impl SliceBuffer {
    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.reject_count == 0
    }
}

/// `Some(first)` when `xs` is `first, first + 1, ...`.
fn contiguous(xs: &[u64]) -> Option<u64> {
    let first = *xs.first()?;
    xs.iter()
        .enumerate()
        .all(|(i, x)| first.checked_add(i as u64) == Some(*x))
        .then_some(first)
}

impl Uploader {
    pub async fn push(&mut self, record: Vec<u8>) -> Result<(), RuntimeError> {
        self.push_bytes(&record).await
    }

    /// Like push, from borrowed bytes: the record is copied once, into its
    /// slice's payload, so a caller that holds records in its own buffer
    /// makes no `Vec` per record.
    pub async fn push_bytes(&mut self, record: &[u8]) -> Result<(), RuntimeError> {
        self.push_inner(record, None, Separators::default()).await
    }

    /// Like push, remembering the record's source line for error reports.
    pub async fn push_line(&mut self, record: Vec<u8>, line: u64) -> Result<(), RuntimeError> {
        self.push_inner(&record, Some(line), Separators::default())
            .await
    }

    /// Like push_line, with the bytes the input had around the record
    /// (`Separators`), stored with its slice when they are not regular and
    /// given back by `Runtime::download_separated`.
    pub async fn push_separated(
        &mut self,
        record: Vec<u8>,
        line: Option<u64>,
        separators: Separators,
    ) -> Result<(), RuntimeError> {
        self.push_inner(&record, line, separators).await
    }

    /// A record the uploader itself could not parse (malformed CSV, bad
    /// JSON): counted in records_in and stored in `errors` with its line.
    pub async fn push_rejected(
        &mut self,
        raw: Vec<u8>,
        line: u64,
        message: String,
    ) -> Result<(), RuntimeError> {
        // The message may come from a client (`PUT .../input?format=items`):
        // it is kept in error groups, meta records and every status, so it
        // is clipped like a record sample, never stored whole.
        let message = clip(message.as_bytes());
        let sample = RecordErrorSample {
            slice: self.next_slice,
            record_number: self.next_record,
            line: Some(line),
            record: clip(&raw),
            message: message.clone(),
        };
        self.next_record += 1;
        let entry = error_record(&sample, &raw);
        self.make_room(entry.len()).await?;
        self.buf.bytes += entry.len() + RECORD_OVERHEAD;
        self.buf.rejects.push(entry);
        self.buf.reject_count += 1;
        crate::table::merge_error_groups(
            &mut self.buf.reject_groups,
            &[ErrorGroup {
                message,
                count: 1,
                samples: vec![sample],
            }],
        );
        self.flush_if_full().await
    }

    async fn push_inner(
        &mut self,
        record: &[u8],
        line: Option<u64>,
        separators: Separators,
    ) -> Result<(), RuntimeError> {
        let len = record.len() + separators.len();
        self.make_room(len).await?;
        if !separators.is_regular() {
            let index =
                u32::try_from(self.buf.records.len()).expect("a slice holds far fewer records");
            self.buf.separators.push((index, separators));
        }
        self.buf.bytes += len + RECORD_OVERHEAD;
        self.buf.records.push(record);
        self.buf.numbers.push(self.next_record);
        self.buf.lines.push(line);
        self.next_record += 1;
        self.flush_if_full().await
    }

    /// Cuts the slice before a record of `len` bytes would take it past
    /// `max_slice_bytes` (a record alone in its slice may still pass it).
    async fn make_room(&mut self, len: usize) -> Result<(), RuntimeError> {
        if !self.buf.is_empty() && self.buf.bytes + len + RECORD_OVERHEAD > self.max_slice_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    /// Rejected records fill a slice like accepted ones, so a file of bad
    /// lines is stored slice by slice in bounded memory.
    async fn flush_if_full(&mut self) -> Result<(), RuntimeError> {
        if self.buf.records.len() + self.buf.reject_count as usize >= self.slice_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Why a slice of this upload was not stored, if one was not: the
    /// first time the error itself, after that its text.
    fn failure(&self) -> Option<RuntimeError> {
        let mut cell = self.error.lock();
        let failure = cell.as_mut()?;
        Some(failure.error.take().unwrap_or_else(|| {
            RuntimeError::Invalid(format!(
                "upload of job {} failed: slice {} was not stored: {}",
                self.job, failure.slice, failure.text
            ))
        }))
    }

    async fn flush(&mut self) -> Result<(), RuntimeError> {
        if self.error.lock().is_some() {
            // Every slice in flight reports first, so the failure handed
            // back is the first slice's (a full disk), not a later slice's
            // vaguer one that happened to arrive sooner (a poisoned store).
            return self.drain().await;
        }
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(charge(self.buf.bytes))
            .await
            .map_err(|_| RuntimeError::ShuttingDown)?;
        // The next slice's buffers are sized as this one's were filled, so
        // a steady stream copies each record once and never regrows them.
        let n = self.buf.records.len();
        let next = SliceBuffer {
            records: RecordsBuf::with_capacity(self.buf.bytes),
            numbers: Vec::with_capacity(n),
            lines: Vec::with_capacity(n),
            ..SliceBuffer::default()
        };
        let buf = std::mem::replace(&mut self.buf, next);
        let slice = self.next_slice;
        self.next_slice += 1;
        let first_record = buf.numbers.first().copied().unwrap_or(self.next_record);
        let numbers = match contiguous(&buf.numbers) {
            Some(_) => None,
            None if buf.numbers.is_empty() => None,
            None => Some(buf.numbers),
        };
        let known: Option<Vec<u64>> = buf.lines.iter().copied().collect();
        let (line_first, lines) = match known {
            Some(l) if l.is_empty() => (None, None),
            Some(l) => match contiguous(&l) {
                Some(first) => (Some(first), None),
                None => (None, Some(l)),
            },
            None => (None, None),
        };
        let separators = if buf.separators.is_empty() {
            Vec::new()
        } else {
            separators::encode(buf.records.len() as u32, &buf.separators)
        };
        let meta = Meta::Uploaded {
            job: self.job,
            slice,
            first_record,
            records: buf.records.len() as u32,
            rejects: buf.reject_count,
            line_first,
            lines,
            numbers,
            reject_errors: buf.reject_groups,
        };
        let task = UploadSlice {
            shared: self.shared.clone(),
            store: self.store.clone(),
            job: self.job,
            slice,
            records: buf.records,
            rejects: buf.rejects,
            separators,
            meta,
            permit,
            error: self.error.clone(),
        };
        // The queue is unbounded; the permits bound the bytes in flight.
        self.shared.upload_tasks.fetch_add(1, Ordering::AcqRel);
        self.pool.send(task).map_err(|e| {
            self.shared.upload_tasks.fetch_sub(1, Ordering::AcqRel);
            drop(e);
            RuntimeError::ShuttingDown
        })
    }

    /// Waits until every slice already handed over is durable.
    async fn drain(&mut self) -> Result<(), RuntimeError> {
        let all = self
            .permits
            .acquire_many(INFLIGHT_BYTES as u32)
            .await
            .map_err(|_| RuntimeError::ShuttingDown)?;
        drop(all);
        match self.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits until every slice is durable and marks the upload complete.
    ///
    /// The status is the job's as the `UploadComplete` record left it, or
    /// later: workers may have run its last slices, completed it and, where
    /// it is destroyed on complete, destroyed it since; then it is the
    /// state its tombstone keeps (`status::kept_status`), never "not found".
    pub async fn finish(mut self) -> Result<JobStatus, RuntimeError> {
        let result = self.finish_inner().await;
        if let Err(e) = &result {
            self.finished = true;
            let reason = format!("upload interrupted: {e}");
            let m = Meta::UploadFailed {
                job: self.job,
                reason,
                at_ms: Some(self.shared.clock.now_ms()),
            };
            let _ = write_one(&self.shared, &self.store, m).await;
        }
        result?;
        let st = self.shared.state.lock();
        crate::status::kept_status(&st, self.job)
    }

    /// Writes the last slice and `UploadComplete`; an error here is an
    /// upload that did not finish (`finish` marks the job failed).
    async fn finish_inner(&mut self) -> Result<(), RuntimeError> {
        if !self.buf.is_empty() {
            self.flush().await?;
        }
        self.drain().await?;
        self.finished = true;
        write_one(
            &self.shared,
            &self.store,
            Meta::UploadComplete {
                job: self.job,
                at_ms: Some(self.shared.clock.now_ms()),
            },
        )
        .await?;
        Ok(())
    }

    /// Marks the job failed with the reason (upload interrupted).
    pub async fn fail(mut self, reason: String) -> Result<(), RuntimeError> {
        self.finished = true;
        let _ = self.drain().await;
        write_one(
            &self.shared,
            &self.store,
            Meta::UploadFailed {
                job: self.job,
                reason: format!("upload interrupted: {reason}"),
                at_ms: Some(self.shared.clock.now_ms()),
            },
        )
        .await
    }
}

/// The reason of an upload whose `Uploader` was dropped unfinished.
pub(crate) const UPLOADER_DROPPED: &str =
    "upload interrupted: the uploader was dropped before finish";

impl Drop for Uploader {
    /// An uploader dropped before `finish` leaves its job failed, never
    /// silently partial.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (shared, store, job) = (self.shared.clone(), self.store.clone(), self.job);
        handle.spawn(async move {
            let m = Meta::UploadFailed {
                job,
                reason: UPLOADER_DROPPED.into(),
                at_ms: Some(shared.clock.now_ms()),
            };
            let _ = write_one(&shared, &store, m).await;
        });
    }
}

#[cfg(test)]
mod contiguous_tests {
    #[test]
    fn numbers_that_would_wrap_are_not_contiguous() {
        assert_eq!(super::contiguous(&[7, 8, 9]), Some(7));
        assert_eq!(super::contiguous(&[u64::MAX, 0]), None);
        assert_eq!(super::contiguous(&[u64::MAX]), Some(u64::MAX));
    }
}
