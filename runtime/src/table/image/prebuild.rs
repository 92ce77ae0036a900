//! A checkpoint's row pages built from a snapshot of the changed rows,
//! off the state lock and the append gate (ARCHITECTURE.md, "3.4 The
//! checkpoint off the state lock"); the seal (`touched_pages`) takes each
//! page still current as it is and builds the others again.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{keys, read_stored, PageMerge};
use crate::slice_store::SliceStore;
use crate::state::State;
use crate::table::Job;
use crate::JobId;

/// The changed rows of the table, shared under the state lock with the
/// table's generation sealed, for `prebuild` to build their pages from
/// without it (ARCHITECTURE.md, "3.4 The checkpoint off the state lock").
pub struct RowSnapshot {
    sealed: u64,
    /// The rows as the overlay holds them, shared (`Arc`), not copied: a
    /// row changed while the snapshot holds it is copied by the change
    /// (`TableView::resident_mut`), so these stay as they were at the
    /// seal. Copying each `Job` (about 370 bytes, boxed) under the state
    /// lock was 4.5 % of a 1M burn-down's CPU and dropping the copies
    /// 0.6 % more (perf, ARCHITECTURE.md "Session 17's cuts").
    rows: Vec<(JobId, Option<Arc<Job>>)>,
}

/// Row pages built from a `RowSnapshot`: what the seal takes as it is for
/// each page whose changed rows are still those of the snapshot, and
/// merges the rows changed since into for a page where they are more.
pub struct Prebuilt {
    /// The table's generation sealed at the snapshot: a row changed
    /// since has a newer one.
    pub(super) sealed: u64,
    pub(super) pages: BTreeMap<u64, PrebuiltPage>,
}

pub(super) struct PrebuiltPage {
    /// The changed rows it merged, ascending.
    pub(super) ids: Vec<JobId>,
    /// The stored page with those rows merged in, not yet finished: the
    /// seal may merge more.
    pub(super) merge: PageMerge,
}

impl Prebuilt {
    /// Row pages built.
    pub fn pages(&self) -> u64 {
        self.pages.len() as u64
    }
}

impl RowSnapshot {
    /// The changed rows of `state`, None when a pre-build could not be
    /// taken as it is: no image yet (the whole table is written), a page
    /// known unreadable (the seal names it), or a checkpoint sealed and
    /// not answered (the pages it writes are not in the store yet, and
    /// if it fails, rows it swept are put back with their old generation).
    /// Seals the table's generation: rows changed from now on get a newer
    /// one.
    pub fn take(state: &mut State) -> Option<RowSnapshot> {
        let table = &state.table;
        let writes = state.book.runs_workers && !state.book.store_read_only;
        if !writes
            || state.book.poisoned.is_some()
            || !table.has_image()
            || table.first_unreadable().is_some()
            || state.book.checkpoints.in_flight > 0
        {
            return None;
        }
        let mut rows = Vec::with_capacity(table.changed());
        rows.extend(table.dirty().map(|(id, j, _)| (id, j.cloned())));
        let sealed = state.table.seal();
        Some(RowSnapshot { sealed, rows })
    }

    /// Changed row `id` as the snapshot holds it (None: not changed, or
    /// gone).
    #[cfg(test)]
    pub fn row(&self, id: JobId) -> Option<&Job> {
        let at = self.rows.binary_search_by_key(&id, |r| r.0).ok()?;
        self.rows[at].1.as_deref()
    }

    /// Reads, merges and encodes the touched pages over the stored ones.
    /// A page that cannot be read is left out: the seal reads it again
    /// and names it.
    pub fn build(self, store: &dyn SliceStore) -> Prebuilt {
        let mut by_page: BTreeMap<u64, Vec<(JobId, Option<&Job>)>> = BTreeMap::new();
        for (id, job) in &self.rows {
            by_page
                .entry(keys::page_of(*id).0)
                .or_default()
                .push((*id, job.as_deref()));
        }
        let mut pages = BTreeMap::new();
        for (page, changes) in by_page {
            let Ok(stored) = read_stored(store, page) else {
                continue;
            };
            let mut merge = PageMerge::over(page, stored);
            merge.merge(&changes);
            let ids = changes.iter().map(|c| c.0).collect();
            pages.insert(page, PrebuiltPage { ids, merge });
        }
        Prebuilt {
            sealed: self.sealed,
            pages,
        }
    }
}
