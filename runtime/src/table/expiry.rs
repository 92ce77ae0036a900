//! Retention (issue 12, step 6; ARCHITECTURE.md, "4. Retention, destroy
//! and compaction"): every checkpoint files the rows that finished (or
//! were destroyed) since the one before under `EXPIRY` 32 + f, one frame
//! per checkpoint and minute, and sweeps the frames whose minute is past
//! its final state's retention period. The sweep removes a row only if
//! its state and minute still match the entry (a retried job's stale
//! entry is skipped), and at most `SWEEP_MAX_ROWS` rows per checkpoint, so
//! a long downtime drains over several. It reads the clock, which is
//! allowed: its result is written in the checkpoint's batch, never
//! derived again on replay.

use std::collections::BTreeMap;
use std::ops::Bound;

use booster_store::SliceKey;

use super::keys::{self, EXPIRY_BASE, TABLE_OWNER};
use super::Job;
use crate::slice_store::SliceStore;
use crate::state::State;
use crate::{JobId, JobState, RuntimeError};

/// The most rows one checkpoint's sweep removes.
pub const SWEEP_MAX_ROWS: usize = 65_536;

const MINUTE_MS: u64 = 60_000;
/// The last minute an `EXPIRY` key can name (`keys::expiry`).
const MAX_MINUTE: u64 = (1 << 40) - 1;

/// The `EXPIRY` streams the sweep reads: f = 0 completed, 1 failed,
/// 2 aborted. A destroyed row is filed under the state it was destroyed
/// in (an unfinished one as aborted), at the minute it was destroyed, so
/// its tombstone stays as long as a job of that state would.
const FINAL_STATES: [JobState; 3] = [JobState::Completed, JobState::Failed, JobState::Aborted];

/// Where a row is filed for the sweep: (f, minute since the epoch).
pub type Filing = (u8, u64);

/// Where a row is filed for the sweep: (f, minute since the epoch) of
/// its finish or its destroy; None while it is unfinished, and for a lost
/// row (kept: it names damage).
pub fn slot(
    state: JobState,
    completed_us: Option<u64>,
    destroyed_ms: Option<u64>,
) -> Option<Filing> {
    let at_ms = match destroyed_ms {
        Some(at) => at,
        None if state.is_finished() => completed_us? / 1000,
        None => return None,
    };
    let f = match state {
        JobState::Completed => 0,
        JobState::Failed => 1,
        _ => 2,
    };
    Some((f, at_ms / MINUTE_MS))
}

/// `slot` of a stored row.
pub fn slot_of_row(row: &super::row::Row) -> Option<Filing> {
    let state = match row.destroyed_ms {
        Some(_) => row.final_state,
        None => row.state,
    };
    let state = *JobState::ALL.get(usize::from(state))?;
    slot(state, row.completed_us, row.destroyed_ms)
}

/// `slot` of a job in RAM.
pub fn slot_of(job: &Job) -> Option<Filing> {
    if &*job.kind == crate::lost::KIND {
        return None;
    }
    slot(job.state, job.completed_us, job.destroyed_ms)
}

/// When the rows filed at `(f, minute)` are due: the minute's end plus
/// the period of its state.
pub fn due_ms(retention: &crate::Retention, f: u8, minute: u64) -> u64 {
    let period = retention.period_ms(FINAL_STATES[usize::from(f)]);
    minute
        .saturating_add(1)
        .saturating_mul(MINUTE_MS)
        .saturating_add(period)
}

/// The rows a checkpoint files, by (f, minute).
#[derive(Default)]
pub struct Filed(BTreeMap<Filing, Vec<JobId>>);

impl Filed {
    pub fn add(&mut self, slot: Filing, id: JobId) {
        self.0.entry(slot).or_default().push(id);
    }

    /// One frame per (f, minute): key n is the checkpoint's `seq` (its low
    /// 24 bits), so frames of one minute from different checkpoints never
    /// share a key; one record per id, u64 LE.
    pub fn frames(self, seq: u64) -> Vec<(SliceKey, Vec<[u8; 8]>)> {
        let n = (seq & 0xFF_FFFF) as u32;
        self.0
            .into_iter()
            .filter_map(|((f, minute), ids)| {
                let key = keys::expiry(f, minute, n)?;
                Some((key, ids.iter().map(|id| id.to_le_bytes()).collect()))
            })
            .collect()
    }
}

/// What a sweep writes into its checkpoint's batch: frames it finished
/// (deleted) and a frame it took only part of (put back with the rest).
#[derive(Default)]
pub struct Sweep {
    pub deletes: Vec<SliceKey>,
    pub puts: Vec<(SliceKey, Vec<Vec<u8>>)>,
    /// Rows removed.
    pub removed: usize,
    /// Frames that could not be read or decoded, left in place.
    pub passed_over: usize,
}

/// Removes from `state`'s table the rows whose retention ran out by
/// `now_ms` (at most `Book::sweep_max_rows`, `SWEEP_MAX_ROWS`), with
/// their counts; returns what the checkpoint's batch must write, and
/// notes in the book when the next sweep is due. Call under the state
/// lock, before the batch is built.
pub fn sweep(
    state: &mut State,
    store: &dyn SliceStore,
    now_ms: u64,
) -> Result<Sweep, RuntimeError> {
    let mut out = Sweep::default();
    let retention = state.book.retention;
    let max_rows = state.book.sweep_max_rows;
    let mut next_due = u64::MAX;
    for f in 0..FINAL_STATES.len() as u8 {
        let stream = EXPIRY_BASE + u32::from(f);
        let mut after = Bound::Unbounded;
        // Frames of the minutes whose end plus the period has passed
        // (none while the period is longer than the clock's time).
        let period = retention.period_ms(FINAL_STATES[usize::from(f)]);
        let due_minutes = now_ms.saturating_sub(period) / MINUTE_MS;
        let seqs = (
            Bound::Unbounded,
            Bound::Excluded(due_minutes.min(MAX_MINUTE) << 24),
        );
        // An index block that cannot be read leaves this stream for a
        // sweep a minute on: retention is housekeeping, and no checkpoint
        // fails for it.
        let Ok(items) = store.scan(TABLE_OWNER, stream, seqs, false, max_rows) else {
            next_due = next_due.min(now_ms.saturating_add(MINUTE_MS));
            continue;
        };
        for item in items {
            let minute = item.key.seq >> 24;
            if out.removed >= max_rows {
                break;
            }
            debug_assert!(due_ms(&retention, f, minute) <= now_ms);
            let (records, ids) = match read_ids(store, &item.key) {
                Ok(read) => read,
                // A frame that cannot be read or decoded stays where it
                // is (`verify` names rot) and is passed over: its rows
                // stay, and no checkpoint fails for it.
                Err(_) => {
                    out.passed_over += 1;
                    after = Bound::Excluded(item.key.seq);
                    continue;
                }
            };
            let take = ids.len().min(max_rows - out.removed);
            for &id in &ids[..take] {
                if expire(state, id, (f, minute)) {
                    out.removed += 1;
                }
            }
            if take < records.len() {
                out.puts.push((item.key, records[take..].to_vec()));
                break;
            }
            out.deletes.push(item.key);
            after = Bound::Excluded(item.key.seq);
        }
        // The first frame left decides when this stream is due again.
        match store.scan(TABLE_OWNER, stream, (after, Bound::Unbounded), false, 1) {
            Ok(left) => {
                if let Some(item) = left.first() {
                    next_due = next_due.min(due_ms(&retention, f, item.key.seq >> 24));
                }
            }
            Err(_) => next_due = next_due.min(now_ms.saturating_add(MINUTE_MS)),
        }
    }
    let b = &mut state.book;
    b.sweep_due_ms = next_due.min(b.finished_due_ms);
    b.finished_due_ms = u64::MAX;
    Ok(out)
}

/// The records of expiry frame `key` and the ids they hold.
fn read_ids(
    store: &dyn SliceStore,
    key: &SliceKey,
) -> Result<(Vec<Vec<u8>>, Vec<JobId>), RuntimeError> {
    let records = store.read_slice(key)?.unwrap_or_default();
    let ids = records
        .iter()
        .map(|record| {
            let bytes: [u8; 8] = record.as_slice().try_into().map_err(|_| {
                RuntimeError::Corrupt(format!(
                    "the checkpoint's table: an expiry record is 8 bytes, not {}",
                    record.len()
                ))
            })?;
            Ok(u64::from_le_bytes(bytes))
        })
        .collect::<Result<_, RuntimeError>>()?;
    Ok((records, ids))
}

/// Removes job `id`'s row if it is still filed at `at` (else the entry is
/// stale: the job was retried, or destroyed, since), with its count.
fn expire(state: &mut State, id: JobId, at: Filing) -> bool {
    let filed = state.table.row_or_tombstone(&id).and_then(|j| slot_of(&j));
    if filed != Some(at) {
        return false;
    }
    let Some(job) = state.table.remove(&id) else {
        return false;
    };
    match job.is_destroyed() {
        true => state.book.destroyed -= 1,
        false => state.book.by_state[job.state.index()] -= 1,
    }
    true
}
