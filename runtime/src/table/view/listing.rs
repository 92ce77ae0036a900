//! Listing the table newest first from the index (issue 12, step 4):
//! `TableView::newest_rows` visits the rows below a cursor, a bounded
//! number of row pages per call, choosing the pages from the store's
//! index (the `STATE_INDEX` keys of the state asked for, the
//! `KIND_INDEX` keys of the kind, the pages both name for a kind and a
//! state, or the `ROW_PAGE` keys when any row will do) merged with the
//! overlay, and reading each chosen page once. It never scans from the oldest end, so
//! a page of the newest jobs costs the same at 20M rows as at 2K.
//!
//! **Architecture invariant:** a listing reads at most `pages` row pages
//! per call, so its caller can release the state lock between calls and
//! no listing holds it for a scan of the whole table.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};

use super::{page_masks, read_page, Pick, TableView};
use crate::table::keys::{
    self, KIND_INDEX_BASE, ROWS_PER_PAGE, ROW_PAGE, STATE_INDEX_BASE, TABLE_OWNER,
};
use crate::table::kinds::KindId;
use crate::table::row::STATE_DESTROYED;
use crate::table::Job;
use crate::{JobId, JobState, RuntimeError};

/// Which rows `newest_rows` gives: those in `state`, of kind id `kind`
/// (listed from the kind index: only when it is complete,
/// `Book::kind_refile` None), or both; any row when neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rows {
    pub state: Option<JobState>,
    pub kind: Option<KindId>,
}

impl From<Option<JobState>> for Rows {
    fn from(state: Option<JobState>) -> Rows {
        Rows { state, kind: None }
    }
}

/// The pages one index stream lists below a cursor: newest first, and
/// the lowest page the listing knows whole (below it the next call goes
/// on; None: the index has no more).
struct Listed {
    pages: Vec<u64>,
    floor: Option<u64>,
}

/// Where `newest_rows` left off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// The visitor broke: it knows where it stopped.
    Stopped,
    /// Rows may remain below this id: call again with it as `below`.
    Below(JobId),
    /// No row remains below the cursor.
    End,
}

impl TableView {
    /// Calls `f` with each job whose id is below `below`, newest first,
    /// until it breaks, visiting at most `pages` row pages of the image
    /// (rows only in RAM come free). `slots` counts every row slot it
    /// looks at, tombstones and rows of other states included: the work
    /// done, for a caller's budget. With `state`, only jobs in that state
    /// are given, and only pages the state's index (or the overlay) names
    /// are read. Tombstones are no jobs and are left out. A page the
    /// index names but that cannot be read gives its rows as lost (by its
    /// state masks). When the index cannot be scanned, the pages below the
    /// cursor are read one by one instead, and one that cannot be read is
    /// an error naming the index: whether it held rows is unknown, so none
    /// are made up and the listing never stops short silently.
    pub fn newest_rows(
        &self,
        rows: impl Into<Rows>,
        below: JobId,
        pages: usize,
        slots: &Cell<u64>,
        mut f: impl FnMut(Cow<'_, Job>) -> ControlFlow<()>,
    ) -> Result<Resume, RuntimeError> {
        let Rows { state, kind } = rows.into();
        let pages = pages.max(1);
        if below == 0 {
            return Ok(Resume::End);
        }
        let wanted = |j: &Job| {
            !j.is_destroyed()
                && state.is_none_or(|s| j.state == s)
                && kind.is_none_or(|k| j.kind_id == k)
        };
        // A stored row is shown by its stored state: when it cannot be
        // made a job, the lost job that stands for it (failed) is shown
        // where the row would have been.
        let wanted_row = |r: &crate::table::row::Row| {
            r.state != STATE_DESTROYED
                && state.is_none_or(|s| r.state == s.index() as u8)
                && kind.is_none_or(|k| r.kind == k)
        };
        let Some(store) = self.store() else {
            return Ok(self.newest_in_ram(below, pages, slots, &wanted, f));
        };
        let top = keys::page_of(below - 1).0;
        // One index stream, or two (a kind and a state) whose pages the
        // listing intersects: a page is read only where both name it.
        let streams: Vec<u32> = match (state, kind) {
            (None, None) => vec![ROW_PAGE],
            (Some(s), None) => vec![STATE_INDEX_BASE + s.index() as u32],
            (None, Some(k)) => vec![KIND_INDEX_BASE + k],
            (Some(s), Some(k)) => vec![KIND_INDEX_BASE + k, STATE_INDEX_BASE + s.index() as u32],
        };
        let mut listed = Vec::with_capacity(streams.len());
        // The index's error, when it could not say which pages hold rows:
        // then the next `pages` pages below the cursor are read in turn.
        let mut unlisted = None;
        for &stream in &streams {
            match list(&*store, stream, top, pages) {
                Ok(l) => listed.push(l),
                Err(e) => unlisted = Some(e),
            }
        }
        let (stored, floor): (Vec<u64>, Option<u64>) = match unlisted {
            Some(_) => {
                let lowest = top.saturating_sub(pages as u64 - 1);
                (
                    (lowest..=top).rev().collect(),
                    Some(lowest).filter(|&p| p > 0),
                )
            }
            None => {
                // Of two streams the sparser leads: the one whose pages
                // reach lower (the lower floor; None, its end, lowest).
                // Its pages are kept where the other names them too: by
                // the other's listing down to its floor, and below that
                // by a look at the other's key of the page itself (one
                // key, so the call's work stays bounded by the sparser
                // stream, not the denser; a look that fails keeps the
                // page: its rows are checked as they are read).
                let lead = (0..listed.len())
                    .min_by_key(|&i| listed[i].floor.map_or(0, |f| f + 1))
                    .expect("one stream at least");
                let mut pages = listed[lead].pages.clone();
                for (i, (other, &stream)) in listed.iter().zip(&streams).enumerate() {
                    if i == lead {
                        continue;
                    }
                    let known = other.floor.unwrap_or(0);
                    pages.retain(|&p| match p >= known {
                        true => other.pages.contains(&p),
                        false => has_key(&*store, stream, p),
                    });
                }
                (pages, listed[lead].floor)
            }
        };
        let more = floor.is_some();
        let mut floor = floor.unwrap_or(0);
        // The rows in RAM (every unfinished one) are looked at a bounded
        // number per call too: where that stopped, this call stops.
        let (in_ram, cut) = self.ram_pages(floor, below, pages, slots, &wanted);
        let more = more || cut.is_some();
        if let Some(page) = cut {
            floor = floor.max(page);
        }
        let mut in_ram = in_ram.into_iter().peekable();
        let mut stored = stored.into_iter().filter(|&p| p >= floor).peekable();
        let mut visited = 0;
        loop {
            let page = match (stored.peek(), in_ram.peek()) {
                (None, None) => break,
                (Some(&s), Some(&r)) => s.max(r),
                (Some(&s), None) => s,
                (None, Some(&r)) => r,
            };
            // Rows only in RAM count too, so a call's work stays bounded
            // however many rows changed since the checkpoint.
            if visited == pages {
                return Ok(Resume::Below((page + 1) * ROWS_PER_PAGE));
            }
            visited += 1;
            let read = stored.next_if_eq(&page).is_some();
            while in_ram.next_if_eq(&page).is_some() {}
            let rows = Rows { state, kind };
            let picks = self.page_picks(&*store, page, read, rows, unlisted.as_ref())?;
            for (id, pick) in picks.into_iter().rev() {
                if id >= below {
                    continue;
                }
                slots.set(slots.get() + 1);
                // A lost row was picked by the state's own mask: its
                // made-up state is not checked (G7: it shows, as lost).
                let shown = match &pick {
                    Pick::Lost(..) => Some(true),
                    Pick::Stored(row) => Some(wanted_row(row)),
                    Pick::Resident(_) | Pick::Gone => None,
                };
                let Some(job) = self.job_of_pick(&*store, pick) else {
                    continue;
                };
                if shown.unwrap_or_else(|| wanted(&job)) && f(job).is_break() {
                    return Ok(Resume::Stopped);
                }
            }
        }
        Ok(match more {
            true => Resume::Below(floor * ROWS_PER_PAGE),
            false => Resume::End,
        })
    }

    /// The pages, newest first, of the rows in RAM from page `floor` up
    /// to id `below` that `wanted` takes, looking at most `pages` pages'
    /// worth of rows; and the page where it stopped short, if it did
    /// (listed too, to be visited whole: its rows below are not known).
    fn ram_pages(
        &self,
        floor: u64,
        below: JobId,
        pages: usize,
        slots: &Cell<u64>,
        wanted: &dyn Fn(&Job) -> bool,
    ) -> (Vec<u64>, Option<u64>) {
        let budget = pages.saturating_mul(ROWS_PER_PAGE as usize);
        let mut found: Vec<u64> = Vec::new();
        let ram = self.overlay.range(floor * ROWS_PER_PAGE..below).rev();
        for (n, (id, e)) in ram.enumerate() {
            let page = keys::page_of(*id).0;
            if n == budget {
                if found.last() != Some(&page) {
                    found.push(page);
                }
                return (found, Some(page));
            }
            slots.set(slots.get() + 1);
            if e.row.as_deref().is_some_and(wanted) && found.last() != Some(&page) {
                found.push(page);
            }
        }
        (found, None)
    }

    /// `newest_rows` without an image: every row is in RAM; at most
    /// `pages` pages' worth of ids are looked at per call.
    fn newest_in_ram(
        &self,
        below: JobId,
        pages: usize,
        slots: &Cell<u64>,
        wanted: &dyn Fn(&Job) -> bool,
        mut f: impl FnMut(Cow<'_, Job>) -> ControlFlow<()>,
    ) -> Resume {
        let budget = pages.saturating_mul(ROWS_PER_PAGE as usize);
        for (n, (id, e)) in self.overlay.range(..below).rev().enumerate() {
            if n == budget {
                return Resume::Below(*id + 1);
            }
            slots.set(slots.get() + 1);
            let shown = e.row.as_deref().filter(|j| wanted(j));
            if shown.is_some_and(|j| f(Cow::Borrowed(j)).is_break()) {
                return Resume::Stopped;
            }
        }
        Resume::End
    }

    /// The rows of `page`, by id: the stored ones when `read`, the
    /// overlay's over them. When it cannot be read, its rows are lost
    /// ones: those its mask of `rows.state` names (of every state when
    /// None, tombstones left out; every slot when the masks cannot be read
    /// either), and of those, with `rows.kind`, only the slots its mask of
    /// that kind names (every slot when that mask cannot be read), so a
    /// kind listing shows no lost row of another kind.
    pub(super) fn page_picks<'a>(
        &'a self,
        store: &dyn crate::slice_store::SliceStore,
        page: u64,
        read: bool,
        rows_of: Rows,
        unlisted: Option<&booster_store::StoreError>,
    ) -> Result<BTreeMap<JobId, Pick<'a>>, RuntimeError> {
        let Rows { state, kind } = rows_of;
        let mut rows = BTreeMap::new();
        if read {
            match read_page(store, page) {
                Ok(read) => {
                    for row in read.unwrap_or_default() {
                        rows.insert(row.id, Pick::Stored(Box::new(row)));
                    }
                }
                Err(e) => match unlisted {
                    Some(index) => return Err(incomplete(index, page, &e)),
                    None => {
                        let slots = page_masks(store, page).map_or(u64::MAX, |m| match state {
                            Some(s) => m[s.index()],
                            None => m[..STATE_DESTROYED as usize].iter().fold(0, |a, b| a | b),
                        });
                        let slots = slots & kind.map_or(u64::MAX, |k| kind_mask(store, k, page));
                        let reason = crate::lost::page_reason(page, &e);
                        for slot in (0..ROWS_PER_PAGE).filter(|s| slots & (1 << s) != 0) {
                            let id = page * ROWS_PER_PAGE + slot;
                            if id > 0 {
                                rows.insert(id, Pick::Lost(id, reason.clone()));
                            }
                        }
                    }
                },
            }
        }
        let first = page * ROWS_PER_PAGE;
        for (id, e) in self.overlay.range(first..first + ROWS_PER_PAGE) {
            rows.insert(*id, e.row.as_deref().map_or(Pick::Gone, Pick::Resident));
        }
        Ok(rows)
    }

    /// The job a pick stands for; None for a row that went.
    pub(super) fn job_of_pick<'a>(
        &'a self,
        store: &dyn crate::slice_store::SliceStore,
        pick: Pick<'a>,
    ) -> Option<Cow<'a, Job>> {
        Some(match pick {
            Pick::Gone => return None,
            Pick::Resident(j) => Cow::Borrowed(j),
            Pick::Stored(row) => {
                let id = row.id;
                match self.job_of(store, *row) {
                    Ok(job) => Cow::Owned(job),
                    Err(e) => {
                        let reason = crate::lost::page_reason(keys::page_of(id).0, &e);
                        Cow::Owned(crate::lost::lost_job(id, 0, reason))
                    }
                }
            }
            Pick::Lost(id, reason) => Cow::Owned(crate::lost::lost_job(id, 0, reason)),
        })
    }
}

/// The pages index stream `stream` names at or below page `top`, newest
/// first: at most `pages`, and at most `pages` × 64 keys looked at,
/// deleted ones included (an index's keys are deleted as their masks
/// empty, and stay in the store's index until a compaction).
fn list(
    store: &dyn crate::slice_store::SliceStore,
    stream: u32,
    top: u64,
    pages: usize,
) -> Result<Listed, booster_store::StoreError> {
    let seqs = (Bound::Unbounded, Bound::Included(top));
    let max_keys = pages.saturating_mul(ROWS_PER_PAGE as usize);
    let scanned = store.scan_within(TABLE_OWNER, stream, seqs, true, pages, max_keys)?;
    let listed: Vec<u64> = scanned.slices.iter().map(|i| i.key.seq).collect();
    // Below the lowest page listed the next call goes on, unless the
    // index has no more: then every page the overlay adds is visited
    // now. Where the scan stopped at its bound of keys, pages above the
    // key it did not look at are known, and the call goes no lower.
    let full = listed.len() == pages && listed.last().is_some_and(|&p| p > 0);
    let mut floor = full.then(|| listed[pages - 1]);
    if let Some(seq) = scanned.resume {
        floor = Some(floor.unwrap_or(0).max(seq + 1));
    }
    Ok(Listed {
        pages: listed,
        floor,
    })
}

/// Whether index stream `stream` has a key for page `page` (true when
/// the index cannot say).
fn has_key(store: &dyn crate::slice_store::SliceStore, stream: u32, page: u64) -> bool {
    let seqs = (Bound::Included(page), Bound::Included(page));
    store
        .scan_within(TABLE_OWNER, stream, seqs, true, 1, 1)
        .map_or(true, |s| !s.slices.is_empty())
}

/// The error of a listing whose index and a page it then read both
/// failed: the listing is incomplete.
pub(super) fn incomplete(
    index: &booster_store::StoreError,
    page: u64,
    e: &RuntimeError,
) -> RuntimeError {
    let (first, last) = crate::lost::page_ids(page);
    RuntimeError::Corrupt(format!(
        "the job table's listing is incomplete: the store's index of its row pages cannot be \
         read ({index}), and row page {page} (job ids {first} to {last}) cannot be read either \
         ({e}); restore the damaged segment from a backup, or salvage what survived into a new \
         data directory (`booster salvage`)"
    ))
}

/// The stored mask of kind `kind` on page `page`: 0 when it has none,
/// every slot when it cannot be read or decoded.
fn kind_mask(store: &dyn crate::slice_store::SliceStore, kind: KindId, page: u64) -> u64 {
    let Some(key) = keys::kind_index(kind, page) else {
        return u64::MAX;
    };
    match store.read_slice(&key) {
        Ok(None) => 0,
        Ok(Some(records)) => (records.first())
            .and_then(|r| keys::decode_mask(r).ok())
            .unwrap_or(u64::MAX),
        Err(_) => u64::MAX,
    }
}
