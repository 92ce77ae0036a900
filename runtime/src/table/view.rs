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
//! **Architecture invariant:** every unfinished row is in the overlay, so
//! the scheduler never reads the store for one.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::{Arc, Weak};

use super::keys::{self, ROWS_PER_PAGE, ROW_PAGE, TABLE_OWNER};
use super::kinds::KindId;
use super::row::Row;
use crate::slice_store::SliceStore;
use crate::table::Job;
use crate::{JobId, RuntimeError};

struct Entry {
    /// None: the row went (destroyed) since the image was written.
    row: Option<Job>,
    /// The dirty generation that last changed it; at most `written` for a
    /// row as the image holds it.
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
    /// Kind names by id, to make jobs of stored rows (the book's
    /// `KindIds`, mirrored by `State`).
    kinds: HashMap<KindId, Arc<str>>,
    /// Rows inserted now are as the image holds them (an open restoring
    /// the checkpoint's rows).
    pub loading: bool,
}

impl Default for TableView {
    fn default() -> Self {
        TableView {
            overlay: BTreeMap::new(),
            generation: 1,
            written: 0,
            image: None,
            pins: HashMap::new(),
            kinds: HashMap::new(),
            loading: false,
        }
    }
}

fn corrupt(what: String) -> RuntimeError {
    RuntimeError::Corrupt(format!("the checkpoint's table: {what}"))
}

impl TableView {
    /// Job `id`'s row: from the overlay, else read from the image.
    pub fn get(&self, id: &JobId) -> Option<Cow<'_, Job>> {
        match self.overlay.get(id) {
            Some(e) => e.row.as_ref().map(Cow::Borrowed),
            None => self.fetch(*id).ok().flatten().map(Cow::Owned),
        }
    }

    /// Job `id`'s row if it is in RAM (every unfinished row is).
    pub fn resident(&self, id: &JobId) -> Option<&Job> {
        self.overlay.get(id).and_then(|e| e.row.as_ref())
    }

    /// Job `id`'s row to change: read into the overlay first when it is
    /// only in the image (replay; live, a pin put it there), and marked
    /// changed.
    pub fn get_mut(&mut self, id: &JobId) -> Option<&mut Job> {
        if !self.overlay.contains_key(id) {
            let job = self.fetch(*id).ok().flatten()?;
            let generation = self.written;
            self.overlay.insert(
                *id,
                Entry {
                    row: Some(job),
                    generation,
                },
            );
        }
        let generation = self.generation;
        let e = self.overlay.get_mut(id)?;
        e.row.as_ref()?;
        e.generation = generation;
        e.row.as_mut()
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
            row: Some(job),
            generation,
        };
        self.overlay.insert(id, e).and_then(|e| e.row)
    }

    /// Takes job `id`'s row out of RAM to be replaced (a restore).
    pub fn take_resident(&mut self, id: JobId) -> Option<Job> {
        self.overlay.remove(&id).and_then(|e| e.row)
    }

    /// Takes job `id`'s row out of the table (read from the image when
    /// it is not in RAM).
    pub fn remove(&mut self, id: &JobId) -> Option<Job> {
        let old = match self.overlay.remove(id) {
            Some(e) => e.row,
            None => self.fetch(*id).ok().flatten(),
        };
        if old.is_some() && self.image.is_some() {
            let e = Entry {
                row: None,
                generation: self.generation,
            };
            self.overlay.insert(*id, e);
        }
        old
    }

    /// Every row in RAM, ascending id: the whole table while there is no
    /// image; else the unfinished rows and those changed or pinned since
    /// the newest checkpoint (`scan` reads them all).
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Job> {
        self.overlay.values().filter_map(|e| e.row.as_ref())
    }

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
    /// thread. False when there is no such row.
    pub fn pin(&mut self, id: JobId) -> bool {
        if !self.overlay.contains_key(&id) {
            let Some(job) = self.fetch(id).ok().flatten() else {
                return false;
            };
            let generation = self.written;
            self.overlay.insert(
                id,
                Entry {
                    row: Some(job),
                    generation,
                },
            );
        }
        *self.pins.entry(id).or_default() += 1;
        true
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
    }

    /// A checkpoint is taken now: rows changed from here on are not in
    /// it. Returns its generation.
    pub fn seal(&mut self) -> u64 {
        let sealed = self.generation;
        self.generation += 1;
        sealed
    }

    /// The checkpoint sealed at `sealed` is durable in `store`: the
    /// finished rows it wrote leave RAM (pinned ones stay until unpinned;
    /// they are clean now).
    pub fn written_through(&mut self, sealed: u64, store: Weak<dyn SliceStore>) {
        self.written = self.written.max(sealed);
        self.image = Some(store);
        let pins = &self.pins;
        self.overlay.retain(|id, e| {
            e.generation > sealed
                || pins.contains_key(id)
                || e.row.as_ref().is_some_and(|j| !j.is_terminal())
        });
    }

    /// The rows changed since the image was written (None: the row
    /// went), ascending id.
    pub fn dirty(&self) -> impl Iterator<Item = (JobId, Option<&Job>)> {
        let written = self.written;
        self.overlay
            .iter()
            .filter(move |(_, e)| e.generation > written)
            .map(|(id, e)| (*id, e.row.as_ref()))
    }

    fn store(&self) -> Option<Arc<dyn SliceStore>> {
        self.image.as_ref().and_then(Weak::upgrade)
    }

    /// Job `id`'s row as the image holds it.
    fn fetch(&self, id: JobId) -> Result<Option<Job>, RuntimeError> {
        let Some(store) = self.store() else {
            return Ok(None);
        };
        let (page, _) = keys::page_of(id);
        let Some(rows) = read_page(&*store, page)? else {
            return Ok(None);
        };
        match rows.into_iter().find(|r| r.id == id) {
            Some(row) => self.job_of(&*store, row).map(Some),
            None => Ok(None),
        }
    }

    fn job_of(&self, store: &dyn SliceStore, row: Row) -> Result<Job, RuntimeError> {
        super::image::whole_job(store, row, &|k| self.kinds.get(&k).cloned())
    }

    /// Calls `f` with every row, ascending id (descending with `rev`),
    /// the overlay's over the image's, until it breaks. Reads every page
    /// of the image: listing pages through the index in step 4.
    pub fn scan(
        &self,
        rev: bool,
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
        let mut pages: BTreeSet<u64> = store
            .scan(TABLE_OWNER, ROW_PAGE, all, false, usize::MAX)
            .into_iter()
            .map(|i| i.key.seq)
            .collect();
        let stored = pages.clone();
        pages.extend(self.overlay.keys().map(|id| keys::page_of(*id).0));
        let ordered: Box<dyn Iterator<Item = &u64>> = match rev {
            false => Box::new(pages.iter()),
            true => Box::new(pages.iter().rev()),
        };
        for &page in ordered {
            let mut rows: BTreeMap<JobId, Pick<'_>> = BTreeMap::new();
            if stored.contains(&page) {
                for row in read_page(&*store, page)?.unwrap_or_default() {
                    rows.insert(row.id, Pick::Stored(Box::new(row)));
                }
            }
            let first = page * ROWS_PER_PAGE;
            for (id, e) in self.overlay.range(first..first + ROWS_PER_PAGE) {
                rows.insert(*id, e.row.as_ref().map_or(Pick::Gone, Pick::Resident));
            }
            let picks: Box<dyn Iterator<Item = Pick<'_>>> = match rev {
                false => Box::new(rows.into_values()),
                true => Box::new(rows.into_values().rev()),
            };
            for pick in picks {
                let job = match pick {
                    Pick::Gone => continue,
                    Pick::Resident(j) => Cow::Borrowed(j),
                    Pick::Stored(row) => Cow::Owned(self.job_of(&*store, *row)?),
                };
                if f(job).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// One row of a page in `scan`'s merge: the overlay's wins.
enum Pick<'a> {
    Resident(&'a Job),
    Gone,
    Stored(Box<Row>),
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
