//! Retention (issue 12, step 6; ARCHITECTURE.md, "4. Retention, destroy
//! and compaction"): every checkpoint files the rows that finished (or
//! were destroyed) since the one before under `EXPIRY` 32 + f, one frame
//! per checkpoint and minute, and sweeps the frames whose minute is past
//! its final state's retention period. The sweep removes a row only if
//! its state and minute still match the entry (a retried job's stale
//! entry is skipped), examining at most `SWEEP_MAX_ENTRIES` entries and
//! touching at most `SWEEP_MAX_PAGES` row pages per checkpoint (each read
//! once), so a long downtime drains over several. It reads the clock, which is
//! allowed: its result is written in the checkpoint's batch, never
//! derived again on replay.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use booster_store::SliceKey;

use super::keys::{self, EXPIRY_BASE, TABLE_OWNER};
use super::kinds::KindId;
use super::row::Row;
use super::view::{self, SweptRow};
use super::Job;
use crate::slice_store::SliceStore;
use crate::state::State;
use crate::{JobId, JobState, RuntimeError};

/// The most expiry entries one checkpoint's sweep examines (removed or
/// stale alike).
pub const SWEEP_MAX_ENTRIES: usize = 65_536;
/// The most row pages one checkpoint's sweep touches: each is read once
/// and rewritten by the checkpoint. 65 536 / 64: dense expiries are not
/// held back, rows scattered one per page are.
pub const SWEEP_MAX_PAGES: usize = 1_024;

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
    stored_slot(
        row.state,
        row.final_state,
        row.completed_us,
        row.destroyed_ms,
    )
}

/// `slot` of a stored row by its head (`row::head`).
pub fn slot_of_head(h: &super::row::Head) -> Option<Filing> {
    stored_slot(h.state, h.final_state, h.completed_us, h.destroyed_ms)
}

/// `slot` of a row by its stored state byte (a destroyed one's is its
/// final state) and times.
fn stored_slot(
    state: u8,
    final_state: u8,
    completed_us: Option<u64>,
    destroyed_ms: Option<u64>,
) -> Option<Filing> {
    let state = match destroyed_ms {
        Some(_) => final_state,
        None => state,
    };
    let state = *JobState::ALL.get(usize::from(state))?;
    slot(state, completed_us, destroyed_ms)
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
#[cfg_attr(test, derive(Debug))]
pub struct Filed(BTreeMap<Filing, Vec<JobId>>);

impl Filed {
    pub fn add(&mut self, slot: Filing, id: JobId) {
        self.0.entry(slot).or_default().push(id);
    }

    /// Adds every row `other` files.
    pub fn merge(&mut self, other: Filed) {
        for (slot, ids) in other.0 {
            self.0.entry(slot).or_default().extend(ids);
        }
    }

    /// One frame per (f, minute), one record per id, u64 LE. Key n is the
    /// checkpoint's `seq` (its low 24 bits), so frames of one minute from
    /// different checkpoints do not share a key, unless 2^24 checkpoints
    /// lie between them (a refile of old rows): a key `store` already
    /// holds is never written over (its rows would never expire), the
    /// frame takes the next n of its minute instead (`free_n`).
    pub fn frames(self, seq: u64, store: &dyn SliceStore) -> Vec<(SliceKey, Vec<[u8; 8]>)> {
        let n = (seq & 0xFF_FFFF) as u32;
        self.0
            .into_iter()
            .filter_map(|((f, minute), ids)| {
                let key = keys::expiry(f, minute, free_n(store, f, minute, n))?;
                Some((key, ids.iter().map(|id| id.to_le_bytes()).collect()))
            })
            .collect()
    }
}

/// `n` when the store holds no `EXPIRY` frame of `(f, minute)` under it,
/// else one past the highest n of that minute it holds. An index that
/// cannot be scanned answers `n`, as before this check; a minute whose
/// 2^24 keys are all taken cannot be reached (checkpoints are at least
/// `CHECKPOINT_MIN_GAP_MS` apart: about 1 200 frames a minute).
fn free_n(store: &dyn SliceStore, f: u8, minute: u64, n: u32) -> u32 {
    let stream = EXPIRY_BASE + u32::from(f);
    let Some(key) = keys::expiry(f, minute, n) else {
        return n;
    };
    let held = |seqs: (Bound<u64>, Bound<u64>), rev: bool| {
        store
            .scan(TABLE_OWNER, stream, seqs, rev, 1)
            .ok()
            .and_then(|items| items.first().map(|i| i.key.seq))
    };
    let exact = (Bound::Included(key.seq), Bound::Included(key.seq));
    if held(exact, false).is_none() {
        return n;
    }
    let minute_keys = (
        Bound::Included(minute << 24),
        Bound::Included((minute << 24) | 0xFF_FFFF),
    );
    match held(minute_keys, true) {
        Some(highest) if highest & 0xFF_FFFF < 0xFF_FFFF => (highest & 0xFF_FFFF) as u32 + 1,
        _ => n,
    }
}

/// A row the sweep removed: what puts it back, the state it was counted
/// in (None: a tombstone) and its kind id.
pub type Removed = (SweptRow, Option<JobState>, KindId);

/// Row pages one checkpoint refiles while an image from before step 6 is
/// refiled (`refile`).
pub const REFILE_PAGES: usize = 256;

/// One checkpoint's share of refiling an image from before step 6: the
/// finished rows it files, and the page to go on from (None: done).
pub struct Refile {
    pub filed: Filed,
    pub next: Option<u64>,
}

/// Files every finished or destroyed row of the next `max_pages` row
/// pages of `store` from page `from` by its stored filing (ARCHITECTURE.md,
/// "Refiling an image from before step 6"). A page that cannot be read is
/// passed over (its rows stay); an index that cannot be scanned is the
/// error, and the cursor stays for the next checkpoint.
pub fn refile(store: &dyn SliceStore, from: u64, max_pages: usize) -> Result<Refile, RuntimeError> {
    let mut filed = Filed::default();
    let next = super::image::each_stored_page(store, from, None, max_pages, |_, heads| {
        for h in heads.unwrap_or_default() {
            if let Some(at) = slot_of_head(h) {
                filed.add(at, h.id);
            }
        }
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(Refile { filed, next })
}

/// Where an open over an image goes on refiling (`Book::refile_from`): the
/// `REFILE` cursor when it is there; else page 0 when the checkpoint is
/// from `before_step_6` (8 counts). A cursor that cannot be read starts
/// again at page 0: a row filed twice is harmless.
pub fn refile_cursor(store: &dyn SliceStore, before_step_6: bool) -> Option<u64> {
    match store.read_slice(&keys::refile()) {
        Ok(Some(records)) => Some(
            records
                .first()
                .and_then(|r| <[u8; 8]>::try_from(r.as_slice()).ok())
                .map_or(0, u64::from_le_bytes),
        ),
        Ok(None) => before_step_6.then_some(0),
        Err(_) => Some(0),
    }
}

/// What a sweep writes into its checkpoint's batch: frames it finished
/// (deleted) and a frame it took only part of (put back with the rest).
#[derive(Default)]
pub struct Sweep {
    pub deletes: Vec<SliceKey>,
    pub puts: Vec<(SliceKey, Vec<Vec<u8>>)>,
    /// Rows removed, with the state each was counted in (None: a
    /// tombstone), to put back if the checkpoint is not written
    /// (`put_back`).
    pub removed: Vec<Removed>,
    /// Frames that could not be read or decoded, left in place.
    pub passed_over: usize,
}

/// One expiry frame the sweep takes entries from.
struct Frame {
    key: SliceKey,
    at: Filing,
    records: Vec<Vec<u8>>,
    ids: Vec<JobId>,
    /// How many of its entries, from the first, this sweep examines.
    take: usize,
    /// Of those, the ones that stay (their row could not be read, or a
    /// control holds it).
    kept: Vec<bool>,
}

/// What one sweep may still do: entries to examine (removed or stale
/// alike, so a mass retry's stale entries cost as much as rows) and row
/// pages to touch (each is read once here and rewritten by the
/// checkpoint, so rows scattered one per page cannot make one batch
/// rewrite thousands of pages).
struct Budget {
    entries_left: usize,
    pages: BTreeSet<u64>,
    max_pages: usize,
}

impl Budget {
    /// Counts the entry of `id` if it fits.
    fn admit(&mut self, id: JobId) -> bool {
        let page = keys::page_of(id).0;
        let new_page = !self.pages.contains(&page);
        if self.entries_left == 0 || (new_page && self.pages.len() >= self.max_pages) {
            return false;
        }
        self.entries_left -= 1;
        self.pages.insert(page);
        true
    }
}

/// Removes from `state`'s table the rows whose retention ran out by
/// `now_ms`, with their counts; returns what the checkpoint's batch must
/// write, and notes in the book when the next sweep is due. At most
/// `Book::sweep_max_entries` entries are examined and
/// `Book::sweep_max_pages` row pages touched, each read once whatever
/// number of its rows expire. Call under the state lock, before the batch
/// is built.
pub fn sweep(
    state: &mut State,
    store: &dyn SliceStore,
    now_ms: u64,
) -> Result<Sweep, RuntimeError> {
    let mut out = Sweep::default();
    let retention = state.book.retention;
    let mut budget = Budget {
        entries_left: state.book.sweep_max_entries,
        pages: BTreeSet::new(),
        max_pages: state.book.sweep_max_pages,
    };
    let mut frames = Vec::new();
    let mut next_due = u64::MAX;
    for f in 0..FINAL_STATES.len() as u8 {
        let due = take_frames(
            store,
            &retention,
            f,
            now_ms,
            &mut budget,
            &mut frames,
            &mut out,
        );
        next_due = next_due.min(due);
    }
    judge(state, store, &mut frames, &mut out);
    for frame in frames {
        let left: Vec<Vec<u8>> = (frame.records.iter().enumerate())
            .filter(|&(i, _)| i >= frame.take || frame.kept[i])
            .map(|(_, r)| r.clone())
            .collect();
        match left.len() {
            0 => out.deletes.push(frame.key),
            n if n < frame.records.len() => out.puts.push((frame.key, left)),
            _ => {}
        }
    }
    let b = &mut state.book;
    b.sweep_due_ms = next_due.min(b.finished_due_ms);
    b.finished_due_ms = u64::MAX;
    Ok(out)
}

/// Takes the due frames of stream f (ascending) into `frames` while
/// `budget` lasts, a frame it cannot take whole last; returns when the
/// stream is due again: the first frame not taken whole decides.
fn take_frames(
    store: &dyn SliceStore,
    retention: &crate::Retention,
    f: u8,
    now_ms: u64,
    budget: &mut Budget,
    frames: &mut Vec<Frame>,
    out: &mut Sweep,
) -> u64 {
    let stream = EXPIRY_BASE + u32::from(f);
    // Frames of the minutes whose end plus the period has passed (none
    // while the period is longer than the clock's time).
    let period = retention.period_ms(FINAL_STATES[usize::from(f)]);
    let due_minutes = now_ms.saturating_sub(period) / MINUTE_MS;
    let seqs = (
        Bound::Unbounded,
        Bound::Excluded(due_minutes.min(MAX_MINUTE) << 24),
    );
    // An index block that cannot be read leaves this stream for a sweep a
    // minute on: retention is housekeeping, and no checkpoint fails for it.
    let limit = budget.entries_left.max(1);
    let Ok(items) = store.scan(TABLE_OWNER, stream, seqs, false, limit) else {
        return now_ms.saturating_add(MINUTE_MS);
    };
    let mut after = Bound::Unbounded;
    for item in items {
        let minute = item.key.seq >> 24;
        debug_assert!(due_ms(retention, f, minute) <= now_ms);
        let (records, ids) = match read_ids(store, &item.key) {
            Ok(read) => read,
            // A frame that cannot be read or decoded stays where it is
            // (`verify` names rot) and is passed over: its rows stay, and
            // no checkpoint fails for it.
            Err(_) => {
                out.passed_over += 1;
                after = Bound::Excluded(item.key.seq);
                continue;
            }
        };
        let take = ids.iter().take_while(|&&id| budget.admit(id)).count();
        let whole = take == ids.len();
        frames.push(Frame {
            key: item.key,
            at: (f, minute),
            kept: vec![false; take],
            records,
            ids,
            take,
        });
        if !whole {
            break;
        }
        // A frame put back only with entries whose rows could not be
        // read is no reason to sweep again at once.
        after = Bound::Excluded(item.key.seq);
    }
    match store.scan(TABLE_OWNER, stream, (after, Bound::Unbounded), false, 1) {
        Ok(left) => left
            .first()
            .map_or(u64::MAX, |item| due_ms(retention, f, item.key.seq >> 24)),
        Err(_) => now_ms.saturating_add(MINUTE_MS),
    }
}

/// Decides every entry `frames` take, page by page: each row page that
/// holds one of their rows not in RAM is read once.
fn judge(state: &mut State, store: &dyn SliceStore, frames: &mut [Frame], out: &mut Sweep) {
    let mut by_page: BTreeMap<u64, Vec<(usize, usize)>> = BTreeMap::new();
    for (fi, frame) in frames.iter().enumerate() {
        for (ei, &id) in frame.ids[..frame.take].iter().enumerate() {
            by_page
                .entry(keys::page_of(id).0)
                .or_default()
                .push((fi, ei));
        }
    }
    for (page, entries) in by_page {
        let mut stored = None;
        for (fi, ei) in entries {
            let (id, at) = (frames[fi].ids[ei], frames[fi].at);
            let rows = || view::read_page(store, page);
            match expire(state, id, at, || stored.get_or_insert_with(rows).as_ref()) {
                Expired::Removed(row) => out.removed.push(row),
                Expired::Stale => {}
                Expired::Kept => frames[fi].kept[ei] = true,
            }
        }
    }
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

/// What became of one expiry entry.
enum Expired {
    /// Its row went, with its count.
    Removed(Removed),
    /// The row is no longer filed there (retried or destroyed since, or
    /// gone): the entry goes.
    Stale,
    /// The entry stays for a later sweep: its row could not be read (its
    /// page rotted; once the segment is restored the row still expires),
    /// a control holds it and is about to write a record about it, or a
    /// job still waits on it.
    Kept,
}

/// Removes job `id`'s row if it is still filed at `at` (else the entry is
/// stale: the job was retried, or destroyed, since), with its count. A
/// row not in RAM is looked up in its page's rows, `page` (read once by
/// the caller for all the entries of the page).
fn expire<'p>(
    state: &mut State,
    id: JobId,
    at: Filing,
    page: impl FnOnce() -> Result<&'p Option<Vec<Row>>, &'p RuntimeError>,
) -> Expired {
    // A job still waits on it: a reopen from a checkpoint without its row
    // would count it gone ("destroyed") where the live runtime counted it
    // completed, and fail the waiting job. It goes once nothing waits.
    if state.table.is_pinned(&id) || state.book.dependents.contains_key(&id) {
        return Expired::Kept;
    }
    if let Some(row) = state.table.in_ram(&id) {
        if row.and_then(slot_of) != Some(at) {
            return Expired::Stale;
        }
        let (job, swept) = state.table.take_swept(id).expect("the row in RAM");
        let live = (!job.is_destroyed()).then_some(job.state);
        uncount(state, live, job.kind_id);
        return Expired::Removed((swept, live, job.kind_id));
    }
    if !state.table.has_image() {
        return Expired::Stale;
    }
    let row = match page() {
        Ok(rows) => rows.iter().flatten().find(|r| r.id == id),
        Err(_) => return Expired::Kept,
    };
    let Some(row) = row.filter(|r| slot_of_row(r) == Some(at)) else {
        return Expired::Stale;
    };
    let (live, kind) = (row.job_state(), row.kind);
    let swept = state.table.forget_stored(id);
    uncount(state, live, kind);
    Expired::Removed((swept, live, kind))
}

/// A row of `state` (None: a tombstone) left the table: its count goes.
fn uncount(state: &mut State, live: Option<JobState>, kind: KindId) {
    state.book.count_kind(kind, live, false);
    match live {
        Some(s) => state.book.by_state[s.index()] -= 1,
        None => state.book.destroyed -= 1,
    }
}

/// The checkpoint that writes the removal of `removed` (a sweep's rows)
/// was not written (refused for want of room, failed, or not built): each
/// row is put back in the table with its count, unless its entry changed
/// since, so the live book stays the one a reopen rebuilds. The expiry
/// frames are the store's, untouched; the next sweep finds them again.
pub fn put_back(state: &mut State, removed: Vec<Removed>) {
    for (swept, live, kind) in removed {
        if state.table.put_back(swept) {
            state.book.count_kind(kind, live, true);
            match live {
                Some(s) => state.book.by_state[s.index()] += 1,
                None => state.book.destroyed += 1,
            }
        }
    }
}
