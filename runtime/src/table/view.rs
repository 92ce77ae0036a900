//! `TableView`: the job table's durable rows as `apply` and the readers
//! (status, listing, download, snapshots) see them: the overlay (rows in
//! RAM) over the image the newest durable checkpoint wrote into the store
//! (issue 12, step 3.2; ARCHITECTURE.md, "Step 3, increment by
//! increment").
//!
//! The overlay holds every unfinished row, every row changed since the
//! newest durable checkpoint (each with the dirty generation that last
//! touched it, or a `None` for a row that went), and the rows a control
//! pinned before writing its record. Once a checkpoint is durable the
//! finished rows it wrote leave RAM (`written_through`); a lookup that
//! misses the overlay reads the row's page from the store
//! (`get`, an owned row). Without an image (a log with no checkpoint, or
//! one before the first checkpoint of this process is durable) every row
//! is in the overlay, as before step 3.
//!
//! **Architecture invariant:** the table holds only durable facts: a
//! restart rebuilds it exactly by replay. Scheduling marks live in the
//! scheduler (`scheduler.rs`), keyed by the same job ids.
//!
//! **Architecture invariant:** every unfinished row is in the overlay but
//! a plain queued simple one a durable checkpoint wrote (`leaves_ram`,
//! issue 12 step 5): the scheduler's slot says what scheduling needs of
//! it, and a lease (or a record that changes it) reads it back from its
//! page (`load`), a lease batch each page once (`page_cache`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Weak};

use super::keys::{self, ROW_PAGE, TABLE_OWNER};
use super::kinds::KindId;
use super::row::Row;

mod listing;
use crate::slice_store::SliceStore;
use crate::table::Job;
use crate::{JobId, RuntimeError};
pub use listing::{Resume, Rows};

#[derive(Clone)]
struct Entry {
    /// None: the row went (destroyed) since the image was written. On the
    /// heap: the tree's nodes then hold 16 bytes an entry, not a whole
    /// `Job` (about 370 bytes) at the fill a B-tree leaves, which cost
    /// about 800 bytes a row waiting for its checkpoint (issue 12's soak).
    /// Shared, not boxed: a checkpoint's snapshot (`RowSnapshot::take`)
    /// shares the changed rows under the state lock instead of copying
    /// each, and a row changed while the snapshot holds it is copied then
    /// (`resident_mut`, `Arc::make_mut`), so the snapshot keeps the row as
    /// it was.
    row: Option<Arc<Job>>,
    /// The dirty generation that last changed it; at most `written` for a
    /// row as the image holds it.
    generation: u64,
}

/// A row the retention sweep took out of the table, as RAM held it
/// (`TableView::put_back`).
pub struct SweptRow {
    id: JobId,
    /// Its entry in RAM before (None: only the image held it).
    before: Option<Entry>,
    /// The generation its removal was made in.
    generation: u64,
}

pub struct TableView {
    overlay: BTreeMap<JobId, Entry>,
    /// The generation rows changed now get.
    generation: u64,
    /// Rows of this generation or older are in the store's image.
    written: u64,
    /// The store holding the image rows are read from; None while every
    /// row is in the overlay. Weak: the store's commit thread applies
    /// records to the state, so the state must not keep the store alive.
    image: Option<Weak<dyn SliceStore>>,
    /// Rows a control or a submit holds in RAM until its record applied.
    pins: HashMap<JobId, u32>,
    /// Entries changed since the image was written (generation above
    /// `written`): what a checkpoint writes, and one of its triggers.
    changed: usize,
    /// Overlay entries that hold a row (not a gone-marker), kept as
    /// entries come and go (`put`, `take`) so the census does not walk
    /// the overlay under the state lock.
    rows: usize,
    /// Kind names by id, to make jobs of stored rows (the book's
    /// `KindIds`, mirrored by `State`).
    kinds: HashMap<KindId, Arc<str>>,
    /// Rows inserted now are as the image holds them (an open restoring
    /// the checkpoint's rows).
    pub loading: bool,
    /// Pages a row was to be changed from but could not be read, with the
    /// first error: the record about it did not apply, so the open names
    /// them as damage (`take_unreadable`) and no checkpoint cuts the log
    /// while any is known. A read error is never "no such row" (G7).
    /// Also the pages a checkpoint could not merge changed rows into
    /// (`note_unreadable`): checkpoints pause while any is known.
    unreadable: BTreeMap<u64, RuntimeError>,
    /// The rows of the page a row was last read from (`fetch`): a lease
    /// batch of consecutive ids (`load`), or a remote slot's look at the
    /// jobs it may take, reads each page once. Only rows not in RAM are
    /// read, and those are as the image holds them until a checkpoint
    /// writes the image anew (`written_through` empties it). A mutex,
    /// not a cell: readers hold `&self` (the state lock is theirs).
    page_cache: std::sync::Mutex<Option<CachedPage>>,
    /// The last passing error reading a row back that was logged
    /// (`surface_read_error`), so a lease retried every 100 ms logs it once.
    read_error: Option<String>,
}

impl Default for TableView {
    fn default() -> Self {
        TableView {
            overlay: BTreeMap::new(),
            generation: 1,
            written: 0,
            image: None,
            pins: HashMap::new(),
            changed: 0,
            rows: 0,
            kinds: HashMap::new(),
            loading: false,
            unreadable: BTreeMap::new(),
            page_cache: std::sync::Mutex::new(None),
            read_error: None,
        }
    }
}

/// What a dependency check needs of a row (`TableView::states_noting`).
#[derive(Clone, Copy, Debug)]
pub struct RowState {
    /// Its state; a tombstone's, the state it was destroyed in.
    pub state: crate::JobState,
    /// A lost row (`lost::KIND`: its `created` record was lost).
    pub lost: bool,
    /// A tombstone (destroyed, kept for the retention period).
    pub destroyed: bool,
}

fn corrupt(what: String) -> RuntimeError {
    RuntimeError::Corrupt(format!("the checkpoint's table: {what}"))
}

impl TableView {
    /// Job `id`'s row: from the overlay, else read from the image. A row
    /// the image cannot give back (its page, large row or slice map is
    /// damaged) is a lost row naming the damage (`lost::lost_job`), never
    /// "no such job" (G7).
    /// A destroyed row is no job: see `tombstone`.
    pub fn get(&self, id: &JobId) -> Option<Cow<'_, Job>> {
        self.row_or_tombstone(id).filter(|j| !j.is_destroyed())
    }

    /// Job `id`'s row, a destroyed one (a tombstone) included.
    pub fn row_or_tombstone(&self, id: &JobId) -> Option<Cow<'_, Job>> {
        match self.overlay.get(id) {
            Some(e) => e.row.as_deref().map(Cow::Borrowed),
            None => self.read(*id).map(Cow::Owned),
        }
    }

    /// Job `id`'s entry in RAM: Some(row), Some(None) for a row that went
    /// since the image was written, None when only the image can say.
    pub fn in_ram(&self, id: &JobId) -> Option<Option<&Job>> {
        self.overlay.get(id).map(|e| e.row.as_deref())
    }

    /// Overlay entries, and of them rows (`MemoryCensus`), counted as
    /// they change.
    pub fn overlay_sizes(&self) -> (usize, usize) {
        (self.overlay.len(), self.rows)
    }

    /// Puts `e` in the overlay (the one way in), keeping `rows`.
    fn put(&mut self, id: JobId, e: Entry) -> Option<Entry> {
        self.rows += usize::from(e.row.is_some());
        let old = self.overlay.insert(id, e);
        self.rows -= usize::from(old.as_ref().is_some_and(|o| o.row.is_some()));
        old
    }

    /// Takes job `id`'s entry out of the overlay (the one way out but
    /// `written_through`'s), keeping `rows`.
    fn take(&mut self, id: &JobId) -> Option<Entry> {
        let old = self.overlay.remove(id);
        self.rows -= usize::from(old.as_ref().is_some_and(|o| o.row.is_some()));
        old
    }

    /// Rows a control or a submit holds (`MemoryCensus`).
    pub fn pinned(&self) -> usize {
        self.pins.len()
    }

    /// Whether a control or a submit holds job `id`'s row (`pin`).
    pub fn is_pinned(&self, id: &JobId) -> bool {
        self.pins.contains_key(id)
    }

    /// Takes job `id`'s row, which only the image holds (not in RAM), out
    /// of the table without reading it: the caller read its page. For
    /// the retention sweep: `put_back` undoes it.
    pub fn forget_stored(&mut self, id: JobId) -> SweptRow {
        debug_assert!(!self.overlay.contains_key(&id), "job {id} is in RAM");
        debug_assert!(self.image.is_some(), "no image holds job {id}");
        let e = Entry {
            row: None,
            generation: self.generation,
        };
        self.put(id, e);
        self.changed += 1;
        SweptRow {
            id,
            before: None,
            generation: self.generation,
        }
    }

    /// Takes job `id`'s row, which RAM holds, out of the table, for the
    /// retention sweep: `put_back` undoes it.
    pub fn take_swept(&mut self, id: JobId) -> Option<(Job, SweptRow)> {
        let before = self.overlay.get(&id)?.clone();
        let job = self.remove(&id)?;
        let swept = SweptRow {
            id,
            before: Some(before),
            generation: self.generation,
        };
        Some((job, swept))
    }

    /// Puts a row the retention sweep took out (`forget_stored`,
    /// `take_swept`) back as it was, when the checkpoint that writes its
    /// removal was not written: the live table is then the one a reopen
    /// rebuilds. False (nothing done) when the row's entry changed since.
    pub fn put_back(&mut self, swept: SweptRow) -> bool {
        let removal_stands = match self.overlay.get(&swept.id) {
            Some(e) => e.row.is_none() && e.generation == swept.generation,
            // Removed from RAM without a trace (there was no image).
            None => true,
        };
        if !removal_stands {
            return false;
        }
        let generation = swept.before.as_ref().map(|e| e.generation);
        let old = match swept.before {
            Some(e) => self.put(swept.id, e),
            None => self.take(&swept.id),
        };
        self.count_change(old.as_ref(), generation);
        true
    }

    /// Job `id`'s row (a tombstone included) for a control to check: None
    /// when there is no such row; an error naming the damage when its row
    /// cannot be read (never the lost row `get` gives, whose state would
    /// be blamed instead).
    pub fn get_checked(&self, id: &JobId) -> Result<Option<Cow<'_, Job>>, RuntimeError> {
        match self.overlay.get(id) {
            Some(e) => Ok(e.row.as_deref().map(Cow::Borrowed)),
            None => match self.fetch(*id) {
                Ok(row) => Ok(row.map(Cow::Owned)),
                Err(e) => Err(RuntimeError::Corrupt(crate::lost::page_reason(
                    keys::page_of(*id).0,
                    &e,
                ))),
            },
        }
    }

    /// The state job `id` was destroyed in and when (ms), while its
    /// tombstone is kept (the retention period).
    pub fn tombstone(&self, id: &JobId) -> Option<(crate::JobState, u64)> {
        let row = self.row_or_tombstone(id)?;
        row.destroyed_ms.map(|at| (row.state, at))
    }

    /// `fetch`, with a row it cannot read given as lost: when its page is
    /// unreadable, for a slot the page's state masks name (all of them
    /// when the masks cannot be read either).
    fn read(&self, id: JobId) -> Option<Job> {
        let e = match self.fetch(id) {
            Ok(row) => return row,
            Err(e) => e,
        };
        let store = self.store()?;
        let (page, slot) = keys::page_of(id);
        let named = match read_page(&*store, page) {
            Ok(_) => true,
            Err(_) => page_slots(&*store, page).is_none_or(|m| m & (1 << slot) != 0),
        };
        named.then(|| crate::lost::lost_job(id, 0, crate::lost::page_reason(page, &e)))
    }

    /// Job `id`'s row if it is in RAM (every unfinished row is, but a
    /// queued one a checkpoint let go: `leaves_ram`).
    pub fn resident(&self, id: &JobId) -> Option<&Job> {
        self.overlay.get(id).and_then(|e| e.row.as_deref())
    }

    /// Job `id`'s row to change: read into the overlay first when it is
    /// only in the image (replay; live, a pin put it there), and marked
    /// changed.
    /// A destroyed row is no job: None.
    pub fn get_mut(&mut self, id: &JobId) -> Option<&mut Job> {
        if let Err(e) = self.load(id) {
            self.note_unreadable(keys::page_of(*id).0, e);
            return None;
        }
        self.resident_mut(id)
    }

    /// `get_mut` of a row RAM holds (a lease's, just made resident; an
    /// outcome's, just applied): None, reading nothing, when RAM holds
    /// none. One search of the overlay where `get_mut` makes two: the
    /// overlay's searches were a tenth of a burn-down's CPU (perf).
    pub fn resident_mut(&mut self, id: &JobId) -> Option<&mut Job> {
        let (generation, written) = (self.generation, self.written);
        let e = self.overlay.get_mut(id)?;
        e.row.as_deref().filter(|j| !j.is_destroyed())?;
        if e.generation <= written {
            self.changed += 1;
        }
        e.generation = generation;
        e.row.as_mut().map(Arc::make_mut)
    }

    /// Reads job `id`'s row back into RAM (unchanged, as the image holds
    /// it) when only the image holds it: Ok(whether RAM holds a row for
    /// it now), also when there is no such row; Err naming nothing but
    /// the read's error when its page cannot be read. Rows of the page
    /// last read come from `page_cache`, taken out of it, not copied.
    pub fn load(&mut self, id: &JobId) -> Result<bool, RuntimeError> {
        if let Some(e) = self.overlay.get(id) {
            return Ok(e.row.is_some());
        }
        let Some(store) = self.store() else {
            return Ok(false);
        };
        let cache = self.page_cache.get_mut().expect("page cache");
        let Some(row) = CachedPage::row(cache, &*store, *id, true)? else {
            return Ok(false);
        };
        let job = self.job_of(&*store, row)?;
        if job.is_destroyed() {
            return Ok(false);
        }
        let generation = self.written;
        self.put(
            *id,
            Entry {
                row: Some(Arc::new(job)),
                generation,
            },
        );
        Ok(true)
    }

    /// Job `id`'s row to change, only while it is unfinished (`active`:
    /// the scheduler has its slot). A row not in RAM is finished (or
    /// gone) unless `active` says so (a queued row a checkpoint wrote,
    /// `leaves_ram`): a record that does nothing to a finished job reads
    /// nothing for it, and leaves it out of RAM.
    pub fn unfinished_mut(&mut self, id: &JobId, active: bool) -> Option<&mut Job> {
        match self.resident(id) {
            Some(j) if !j.is_terminal() => self.resident_mut(id),
            None if active => self.get_mut(id),
            _ => None,
        }
    }

    pub fn contains_key(&self, id: &JobId) -> bool {
        self.get(id).is_some()
    }

    /// Puts `job`'s row, returning the row in RAM it replaces.
    pub fn insert(&mut self, job: Job) -> Option<Job> {
        let generation = if self.loading {
            self.written
        } else {
            self.generation
        };
        let id = job.id;
        let e = Entry {
            row: Some(Arc::new(job)),
            generation,
        };
        let old = self.put(id, e);
        self.count_change(old.as_ref(), Some(generation));
        old.and_then(|e| e.row).map(Arc::unwrap_or_clone)
    }

    /// Takes job `id`'s row out of RAM to be replaced (a restore).
    pub fn take_resident(&mut self, id: JobId) -> Option<Job> {
        let e = self.take(&id)?;
        if e.generation > self.written {
            self.changed -= 1;
        }
        e.row.map(Arc::unwrap_or_clone)
    }

    /// `old`, an entry replaced by one of `generation` (None: by none),
    /// and the count of changed entries.
    fn count_change(&mut self, old: Option<&Entry>, generation: Option<u64>) {
        let was = old.is_some_and(|e| e.generation > self.written);
        let is = generation.is_some_and(|g| g > self.written);
        match (was, is) {
            (false, true) => self.changed += 1,
            (true, false) => self.changed -= 1,
            _ => {}
        }
    }

    /// How many rows changed since the image was written.
    pub fn changed(&self) -> usize {
        self.changed
    }

    /// Takes job `id`'s row out of the table (read from the image when
    /// it is not in RAM).
    pub fn remove(&mut self, id: &JobId) -> Option<Job> {
        let was = self.take(id);
        let was_changed = was.as_ref().is_some_and(|e| e.generation > self.written);
        let old = match was {
            Some(e) => e.row.map(Arc::unwrap_or_clone),
            None => self.fetch_noting(*id),
        };
        if was_changed {
            self.changed -= 1;
        }
        if old.is_some() && self.image.is_some() {
            let e = Entry {
                row: None,
                generation: self.generation,
            };
            self.put(*id, e);
            self.changed += 1;
        }
        old
    }

    /// Every row in RAM, ascending id: the whole table while there is no
    /// image; else the unfinished rows and those changed or pinned since
    /// the newest checkpoint (`scan` reads them all).
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Job> {
        self.overlay.values().filter_map(|e| e.row.as_deref())
    }

    #[cfg(test)]
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &JobId> + '_ {
        self.overlay
            .iter()
            .filter(|(_, e)| e.row.is_some())
            .map(|(id, _)| id)
    }

    /// Kind `id` is named `name` (for the jobs of stored rows).
    pub fn know_kind(&mut self, id: KindId, name: &Arc<str>) {
        self.kinds.entry(id).or_insert_with(|| name.clone());
    }

    /// Holds job `id`'s row in RAM until `unpin`, so the record a control
    /// writes next applies without reading the store on the commit
    /// thread. False when there is no such row (or only its tombstone);
    /// an error naming the damage when its row cannot be read (the
    /// control is refused, no record is written).
    pub fn pin(&mut self, id: JobId) -> Result<bool, RuntimeError> {
        if self.resident(&id).is_some_and(Job::is_destroyed) {
            return Ok(false);
        }
        if !self.overlay.contains_key(&id) {
            let Some(job) = self.get_checked(&id)?.map(Cow::into_owned) else {
                return Ok(false);
            };
            if job.is_destroyed() {
                return Ok(false);
            }
            let generation = self.written;
            self.put(
                id,
                Entry {
                    row: Some(Arc::new(job)),
                    generation,
                },
            );
        }
        *self.pins.entry(id).or_default() += 1;
        Ok(true)
    }

    pub fn unpin(&mut self, id: JobId) {
        if let Some(n) = self.pins.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.pins.remove(&id);
            }
        }
    }

    /// Whether the store holds an image rows are read from.
    pub fn has_image(&self) -> bool {
        self.image.is_some()
    }

    /// The open found a checkpoint's image in `store`: rows missing from
    /// the overlay are read from it.
    pub fn open_image(&mut self, store: Weak<dyn SliceStore>) {
        self.image = Some(store);
        self.forget_page();
    }

    /// A checkpoint is taken now: rows changed from here on are not in
    /// it. Returns its generation.
    pub fn seal(&mut self) -> u64 {
        let sealed = self.generation;
        self.generation += 1;
        sealed
    }

    /// The checkpoint sealed at `sealed` is durable in `store`: the
    /// finished rows it wrote leave RAM, and so do the plain queued simple
    /// ones (`leaves_ram`); pinned ones stay until unpinned (they are
    /// clean now).
    pub fn written_through(&mut self, sealed: u64, store: Weak<dyn SliceStore>) {
        self.written = self.written.max(sealed);
        self.image = Some(store);
        // The image changed under the rows read from it.
        self.forget_page();
        self.let_go_of_written(sealed);
    }

    /// Lets the rows of page `page` an open restored from the image
    /// (`image::restore_rows`, page by page) go as a checkpoint would
    /// (`leaves_ram`): the image holds them as they are, so an open over
    /// many queued jobs never holds them all whole, neither while it reads
    /// them nor after, until a checkpoint that may never come. A row the
    /// restore changed (a running job queued again) is dirty and stays.
    pub fn let_go_of_restored_page(&mut self, page: u64) {
        let first = page * keys::ROWS_PER_PAGE;
        let last = first + (keys::ROWS_PER_PAGE - 1);
        let written = self.written;
        let going: Vec<JobId> = (self.overlay.range(first..=last))
            .filter(|(id, e)| {
                e.generation <= written
                    && !self.pins.contains_key(id)
                    && e.row.as_deref().is_some_and(leaves_ram)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in going {
            self.take(&id);
        }
    }

    /// Drops from RAM every row unchanged since generation `sealed` (the
    /// image holds it) that `leaves_ram` lets go and no pin holds.
    fn let_go_of_written(&mut self, sealed: u64) {
        let pins = &self.pins;
        let (mut changed, mut rows) = (0, 0);
        self.overlay.retain(|id, e| {
            changed += usize::from(e.generation > sealed);
            let keep = e.generation > sealed
                || pins.contains_key(id)
                || e.row.as_deref().is_some_and(|j| !leaves_ram(j));
            rows += usize::from(keep && e.row.is_some());
            keep
        });
        self.changed = changed;
        self.rows = rows;
    }

    /// The rows changed since the image was written (None: the row
    /// went), ascending id, each with the generation that last changed
    /// it (a checkpoint pre-built from a snapshot, sealed at generation
    /// G, builds again the pages of rows changed after G).
    pub fn dirty(&self) -> impl Iterator<Item = (JobId, Option<&Arc<Job>>, u64)> {
        let written = self.written;
        self.overlay
            .iter()
            .filter(move |(_, e)| e.generation > written)
            .map(|(id, e)| (*id, e.row.as_ref(), e.generation))
    }

    /// The generation rows changed now get (one more than the newest
    /// sealed).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The pages rows could not be read from to be changed (see
    /// `unreadable`), taken: the open names them as damage.
    pub fn take_unreadable(&mut self) -> BTreeMap<u64, RuntimeError> {
        std::mem::take(&mut self.unreadable)
    }

    /// Page `page` could not be read to merge changed rows into (`e`).
    pub fn note_unreadable(&mut self, page: u64, e: RuntimeError) {
        self.unreadable.entry(page).or_insert(e);
    }

    /// Logs `e`, a passing error reading a row back for a lease (the job
    /// stays queued; the next lease reads it again), once: the same error
    /// again is not logged.
    pub fn surface_read_error(&mut self, e: &RuntimeError) {
        let why = e.to_string();
        if self.read_error.as_deref() != Some(why.as_str()) {
            eprintln!(
                "booster: reading a queued job's row back failed, the next lease retries: {why}"
            );
            self.read_error = Some(why);
        }
    }

    /// A page a row could not be read from to be changed, if any.
    pub fn first_unreadable(&self) -> Option<(u64, &RuntimeError)> {
        self.unreadable.iter().next().map(|(p, e)| (*p, e))
    }

    /// The state of each row of `ids` (`RowState`; a tombstone's is the
    /// state it was destroyed in), None for no such row, reading each
    /// stored page once and only its rows' states (no large row or slice
    /// map), nothing kept in RAM. Err for a row whose page cannot be
    /// read: the page is noted (`unreadable`), as for a row to change.
    pub fn states_noting(&mut self, ids: &[JobId]) -> Vec<Result<Option<RowState>, ()>> {
        let mut pages: HashMap<u64, Option<Vec<Row>>> = HashMap::new();
        let store = self.store();
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(e) = self.overlay.get(&id) {
                out.push(Ok(e.row.as_deref().map(|j| RowState {
                    state: j.state,
                    lost: &*j.kind == crate::lost::KIND,
                    destroyed: j.is_destroyed(),
                })));
                continue;
            }
            let Some(store) = &store else {
                out.push(Ok(None));
                continue;
            };
            let page = keys::page_of(id).0;
            let rows = pages
                .entry(page)
                .or_insert_with(|| match read_page(&**store, page) {
                    Ok(rows) => Some(rows.unwrap_or_default()),
                    Err(e) => {
                        self.unreadable.entry(page).or_insert(e);
                        None
                    }
                });
            let Some(rows) = rows else {
                out.push(Err(()));
                continue;
            };
            let row = rows.iter().find(|r| r.id == id);
            out.push(Ok(row.and_then(|r| {
                let destroyed = r.destroyed_ms.is_some();
                let state = match destroyed {
                    true => crate::JobState::ALL
                        .get(usize::from(r.final_state))
                        .copied(),
                    false => r.job_state(),
                };
                Some(RowState {
                    state: state?,
                    lost: self
                        .kinds
                        .get(&r.kind)
                        .is_some_and(|k| &**k == crate::lost::KIND),
                    destroyed,
                })
            })));
        }
        out
    }

    /// `fetch`, noting a page that cannot be read (`unreadable`).
    fn fetch_noting(&mut self, id: JobId) -> Option<Job> {
        match self.fetch(id) {
            Ok(job) => job,
            Err(e) => {
                self.note_unreadable(keys::page_of(id).0, e);
                None
            }
        }
    }

    fn store(&self) -> Option<Arc<dyn SliceStore>> {
        self.image.as_ref().and_then(Weak::upgrade)
    }

    /// Job `id`'s row as the image holds it.
    fn fetch(&self, id: JobId) -> Result<Option<Job>, RuntimeError> {
        let Some(store) = self.store() else {
            return Ok(None);
        };
        let row = {
            let mut cache = self.page_cache.lock().expect("page cache");
            CachedPage::row(&mut cache, &*store, id, false)?
        };
        row.map(|row| self.job_of(&*store, row)).transpose()
    }

    /// Empties `page_cache`: the image changed.
    fn forget_page(&mut self) {
        *self.page_cache.get_mut().expect("page cache") = None;
    }

    fn job_of(&self, store: &dyn SliceStore, row: Row) -> Result<Job, RuntimeError> {
        super::image::whole_job(store, row, &|k| self.kinds.get(&k).cloned())
    }

    /// Calls `f` with every job, ascending id (descending with `rev`),
    /// the overlay's over the image's, until it breaks; tombstones
    /// (destroyed rows) are no jobs and are left out. Reads every page
    /// of the image, so only whole-table work uses it (compaction's
    /// liveness, a damaged open's check of the rows): a listing pages
    /// through `newest_rows`, a few pages per call. When the
    /// store's index cannot say which pages hold rows, every page of an id
    /// below `ids_below` is read, and one of those it cannot read is an
    /// error naming the index (whether it held rows is unknown: none are
    /// made up), so a listing never stops short silently. A listed page
    /// it cannot read gives its rows as lost, by its state masks.
    pub fn scan(
        &self,
        rev: bool,
        ids_below: JobId,
        mut f: impl FnMut(Cow<'_, Job>) -> ControlFlow<()>,
    ) -> Result<(), RuntimeError> {
        self.scan_rows(rev, ids_below, |j| match j.is_destroyed() {
            true => ControlFlow::Continue(()),
            false => f(j),
        })
    }

    /// The jobs whose slices are live (compaction's and `store_stats`'
    /// plan, `snapshot::live_jobs`): every row in RAM but a tombstone, and
    /// every stored row not in RAM that owns slices (sliced, or of kind
    /// `lost_kind`: a lost row's shape is unknown) and is no tombstone.
    /// Stored rows are read by their heads, never made whole: 20M
    /// finished simple jobs are 312K pages to read, not 20M rows to build
    /// under the state lock. Every slot of a stored page that cannot be
    /// read is live: no slice is dropped for a row that could not be seen.
    pub fn slice_owners(&self, lost_kind: Option<KindId>) -> Result<HashSet<JobId>, RuntimeError> {
        let in_ram = self
            .overlay
            .iter()
            .filter(|(_, e)| e.row.as_deref().is_some_and(|j| !j.is_destroyed()));
        let mut live: HashSet<JobId> = in_ram.map(|(id, _)| *id).collect();
        let Some(store) = self.store() else {
            return Ok(live);
        };
        let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
        for item in store.scan(TABLE_OWNER, ROW_PAGE, all, false, usize::MAX)? {
            let page = item.key.seq;
            let Ok(stored) = super::image::read_stored(&*store, page) else {
                let first = page * keys::ROWS_PER_PAGE;
                live.extend(first..first + keys::ROWS_PER_PAGE);
                continue;
            };
            for h in stored.iter().flat_map(|s| s.heads()) {
                let owns = h.sliced() || Some(h.kind) == lost_kind;
                let tombstone = h.state == super::row::STATE_DESTROYED;
                if owns && !tombstone && !self.overlay.contains_key(&h.id) {
                    live.insert(h.id);
                }
            }
        }
        Ok(live)
    }

    /// `scan`, tombstones included.
    fn scan_rows(
        &self,
        rev: bool,
        ids_below: JobId,
        mut f: impl FnMut(Cow<'_, Job>) -> ControlFlow<()>,
    ) -> Result<(), RuntimeError> {
        let Some(store) = self.store() else {
            let mut rows: Box<dyn Iterator<Item = &Job>> = match rev {
                false => Box::new(self.values()),
                true => Box::new(self.values().rev()),
            };
            let _ = rows.try_for_each(|j| f(Cow::Borrowed(j)));
            return Ok(());
        };
        let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
        // The index's error, when it could not say which pages exist.
        let mut unlisted = None;
        let mut pages: BTreeSet<u64> =
            match store.scan(TABLE_OWNER, ROW_PAGE, all, false, usize::MAX) {
                Ok(listed) => listed.into_iter().map(|i| i.key.seq).collect(),
                Err(e) => {
                    unlisted = Some(e);
                    (0..=keys::page_of(ids_below.saturating_sub(1)).0).collect()
                }
            };
        let stored = pages.clone();
        pages.extend(self.overlay.keys().map(|id| keys::page_of(*id).0));
        let ordered: Box<dyn Iterator<Item = &u64>> = match rev {
            false => Box::new(pages.iter()),
            true => Box::new(pages.iter().rev()),
        };
        for &page in ordered {
            let read = stored.contains(&page);
            let rows = self.page_picks(&*store, page, read, None.into(), unlisted.as_ref())?;
            let picks: Box<dyn Iterator<Item = Pick<'_>>> = match rev {
                false => Box::new(rows.into_values()),
                true => Box::new(rows.into_values().rev()),
            };
            for pick in picks {
                let Some(job) = self.job_of_pick(&*store, pick) else {
                    continue;
                };
                if f(job).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Whether `job`'s row leaves RAM once a checkpoint wrote it: a finished
/// row, and a queued simple one the timer and the scheduler need nothing
/// of but its slot (no expiry, no window of its own: those are judged
/// from the row). Running, leased, paused, scheduled, waiting and sliced
/// rows stay: the dispatcher, the tick and `apply` change them in RAM.
fn leaves_ram(job: &Job) -> bool {
    job.is_terminal()
        || (job.state == crate::JobState::Queued
            && matches!(job.body, super::Body::Simple(_))
            && job.expires_at_ms.is_none()
            && job.window.is_none())
}

/// The page a row was last read from (`TableView::page_cache`): its rows
/// by slot, and the slots `load` took out into the overlay since it was
/// read (not copied: a copy of each row read back was a share of a
/// lease's CPU).
pub(crate) struct CachedPage {
    page: u64,
    rows: Vec<Option<Row>>,
    taken: u64,
}

impl CachedPage {
    /// Job `id`'s row as the image holds it, from `cache` when it holds
    /// the row's page (read into it otherwise); taken out of it with
    /// `take`, copied without. A row taken before reads the page again
    /// (an empty slot is never taken).
    fn row(
        cache: &mut Option<CachedPage>,
        store: &dyn SliceStore,
        id: JobId,
        take: bool,
    ) -> Result<Option<Row>, RuntimeError> {
        let (page, slot) = keys::page_of(id);
        let bit = 1u64 << slot;
        let fresh = cache
            .as_ref()
            .is_none_or(|c| c.page != page || c.taken & bit != 0);
        if fresh {
            let mut rows: Vec<Option<Row>> = (0..keys::ROWS_PER_PAGE).map(|_| None).collect();
            for row in read_page(store, page)?.unwrap_or_default() {
                let at = keys::page_of(row.id).1 as usize;
                rows[at] = Some(row);
            }
            *cache = Some(CachedPage {
                page,
                rows,
                taken: 0,
            });
        }
        let c = cache.as_mut().expect("filled above");
        let row = &mut c.rows[slot as usize];
        Ok(match take {
            // An empty slot gives nothing, so it is not marked taken: a
            // later look at it need not read the page again.
            true if row.is_some() => {
                c.taken |= bit;
                row.take()
            }
            true => None,
            false => row.clone(),
        })
    }
}

/// One row of a page in `scan`'s merge: the overlay's wins.
enum Pick<'a> {
    Resident(&'a Job),
    Gone,
    Stored(Box<Row>),
    /// A row of a page that cannot be read, and why.
    Lost(JobId, String),
}

/// The slots of page `page` that hold a row, tombstones included, by its
/// state masks; None when a mask cannot be read.
pub fn page_slots(store: &dyn SliceStore, page: u64) -> Option<u64> {
    Some(page_masks(store, page)?.iter().fold(0, |all, m| all | m))
}

/// Page `page`'s state masks, by stored state (`JobState::index()`, then
/// `STATE_DESTROYED`); None when one cannot be read.
pub fn page_masks(store: &dyn SliceStore, page: u64) -> Option<[u64; 9]> {
    let mut masks = [0; 9];
    for (s, mask) in (0..=super::row::STATE_DESTROYED).zip(&mut masks) {
        let key = keys::state_index(s, page)?;
        if let Some(records) = store.read_slice(&key).ok()? {
            *mask = keys::decode_mask(records.first()?).ok()?;
        }
    }
    Some(masks)
}

/// The rows of page `page` in `store`, or None when it has none.
pub fn read_page(store: &dyn SliceStore, page: u64) -> Result<Option<Vec<Row>>, RuntimeError> {
    let Some(records) = store.read_slice(&keys::row_page(page))? else {
        return Ok(None);
    };
    super::page::decode(page, &records)
        .map(Some)
        .map_err(corrupt)
}

impl std::ops::Index<&JobId> for TableView {
    type Output = Job;

    fn index(&self, id: &JobId) -> &Job {
        self.resident(id).expect("no row in RAM for this job id")
    }
}
