//! `MemoryCensus`: the sizes of what the runtime and its store hold in RAM,
//! counted on demand (`Runtime::memory_census`). A diagnostic: issue 12's
//! soak samples it beside the resident set, so a structure that follows the
//! history rather than the work in progress (G10) shows by name.

use booster_store::StoreMemory;

use crate::state::State;

/// Entries (not bytes) of each in-RAM structure that can hold one per job,
/// and the store's index sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryCensus {
    /// Overlay entries (rows and gone-markers) of the job table.
    pub overlay_entries: usize,
    /// Of them, rows (unfinished, changed since the image, or pinned).
    pub overlay_rows: usize,
    pub pins: usize,
    /// The scheduler's entries: unfinished jobs, and their capacity.
    pub active: usize,
    pub active_capacity: usize,
    pub sliced_live: usize,
    /// Bytes the ready queue holds for ids (capacity).
    pub ready_id_bytes: usize,
    pub leases: usize,
    pub accepted: usize,
    pub refused: usize,
    pub waiters: usize,
    pub dependents: usize,
    pub waits: usize,
    pub scheduled: usize,
    pub expiring: usize,
    pub slice_retries: usize,
    pub lost: usize,
    pub store: StoreMemory,
}

impl MemoryCensus {
    pub(crate) fn take(st: &State, store: StoreMemory) -> MemoryCensus {
        let book = &st.book;
        let (overlay_entries, overlay_rows) = st.table.overlay_sizes();
        MemoryCensus {
            overlay_entries,
            overlay_rows,
            pins: st.table.pinned(),
            active: book.active.len(),
            active_capacity: book.active.capacity(),
            sliced_live: book.sliced_live.len(),
            ready_id_bytes: book.ready.id_bytes(),
            leases: book.leases.len(),
            accepted: book.accepted.len(),
            refused: book.refused.len(),
            waiters: book.waiters.len(),
            dependents: book.dependents.len(),
            waits: book.waits.len(),
            scheduled: book.scheduled.len(),
            expiring: book.expiring.len(),
            slice_retries: book.slice_retries.len(),
            lost: book.lost.len(),
            store,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::table::view::TableView;

    fn finished_row(id: u64) -> crate::table::Job {
        let mut job = crate::bench_support::simple_job(id, "noop", 50).job;
        job.state = crate::JobState::Completed;
        job
    }

    /// The census's count of the overlay's rows is kept as rows come and
    /// go (it no longer walks the overlay under the state lock), and
    /// agrees with the rows there after each way in and out (the
    /// retention sweep's, and its undoing, included).
    #[test]
    fn the_overlay_s_row_count_follows_inserts_removals_and_checkpoints() {
        let mut view = TableView::default();
        let agree = |view: &TableView, rows: usize| {
            assert_eq!(view.overlay_sizes().1, rows);
            assert_eq!(view.values().count(), rows);
        };
        for id in 1..=5 {
            view.insert(finished_row(id));
        }
        view.insert(finished_row(3));
        agree(&view, 5);
        view.remove(&2);
        agree(&view, 4);
        view.take_resident(4);
        agree(&view, 3);
        let (_, swept) = view.take_swept(5).unwrap();
        agree(&view, 2);
        assert!(view.put_back(swept));
        agree(&view, 3);
        let sealed = view.seal();
        view.insert(finished_row(6));
        // No store behind the image: nothing here reads a page.
        let store = std::sync::Weak::<booster_store::Store>::new();
        view.written_through(sealed, store);
        agree(&view, 1);
        assert_eq!(view.overlay_sizes(), (1, 1), "only row 6 is newer");
    }
}
