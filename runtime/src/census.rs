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
