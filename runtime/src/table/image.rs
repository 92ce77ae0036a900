//! The table image a checkpoint writes, and the rows an open reads back
//! from it (issue 12, step 3.1; ARCHITECTURE.md, "Step 3, increment by
//! increment"). The image is the whole table: every row in its 64-row page
//! (`ROW_PAGE`), a row too long for a page whole in `ROW_LARGE`, and every
//! sliced job's slice map (`SLICE_MAP`). It is written in one batch with
//! its checkpoint record, so after any crash the store holds the image and
//! the record, or neither.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, ControlFlow};
use std::sync::Arc;

use booster_store::{Batch, SliceKey};

use super::keys::{self, ROW_LARGE, ROW_PAGE, SLICE_MAP, STATE_INDEX_BASE, TABLE_OWNER};
use super::kind_index;
use super::kinds::KindId;
use super::row::{self, Row, RowBody, STATE_DESTROYED};
use super::{convert, expiry, page, slice_map, Job};
use crate::meta::{self, Checkpoint, Meta};
use crate::slice_store::SliceStore;
use crate::state::State;
use crate::{JobId, JobState, RuntimeError};

mod merge;
mod prebuild;
use merge::PageMerge;
pub use prebuild::{Prebuilt, RowSnapshot};

/// Every key of (`TABLE_OWNER`, `stream`), ascending; an index that
/// cannot be read is an error (a scan that came back short would drop
/// rows from an open, or leave stale keys in a migrated image).
fn all_keys(store: &dyn SliceStore, stream: u32) -> Result<Vec<SliceKey>, RuntimeError> {
    let all = (Bound::Unbounded, Bound::Unbounded);
    Ok(store
        .scan(TABLE_OWNER, stream, all, false, usize::MAX)?
        .into_iter()
        .map(|i| i.key)
        .collect())
}

/// A keyed slice of the image: its key and its records.
type Keyed = (SliceKey, Vec<Vec<u8>>);

/// The state index streams: one per row state byte (`STATE_DESTROYED`
/// included).
const STATES: usize = STATE_DESTROYED as usize + 1;

/// The row states whose rows an open reads back: the unfinished ones
/// (scheduled, queued, running, paused, waiting).
pub const ACTIVE_STATES: [JobState; 5] = [
    JobState::Scheduled,
    JobState::Queued,
    JobState::Running,
    JobState::Paused,
    JobState::Waiting,
];

/// What a checkpoint writes and deletes.
#[derive(Default)]
struct Image {
    puts: Vec<Keyed>,
    deletes: Vec<SliceKey>,
    /// The rows that finished or were destroyed since the stored page
    /// (`expiry.rs`).
    filed: expiry::Filed,
    /// Row pages built here (not taken pre-built as they were).
    pages: u64,
    /// Of `pages`, those read from the store here (the others were
    /// merged over their pre-built page).
    pages_read: u64,
}

/// A page as the store holds it: its rows' heads (`row::head`) and their
/// records, which a merge carries over as bytes.
pub(super) struct StoredPage {
    pub(super) heads: Vec<row::Head>,
    records: Vec<Vec<u8>>,
}

impl StoredPage {
    pub(super) fn heads(&self) -> &[row::Head] {
        &self.heads
    }
}

pub(super) fn read_stored(
    store: &dyn SliceStore,
    page: u64,
) -> Result<Option<StoredPage>, RuntimeError> {
    let Some(records) = store.read_slice(&keys::row_page(page))? else {
        return Ok(None);
    };
    let heads = page::heads(page, &records).map_err(corrupt)?;
    Ok(Some(StoredPage { heads, records }))
}

/// Calls `f` with the heads of each of the next `max_pages` stored row
/// pages from page `from` up to `end` (exclusive; None: no end),
/// ascending, or with None for a page that cannot be read; and says the
/// page to go on from (None: no page is left before `end`): the walk both
/// refiles (`expiry::refile`, `kind_index::refile`) share. Where `f`
/// breaks (at a page it must not pass over), the walk stops and goes on
/// from that page. An index that cannot be scanned is the error.
pub(super) fn each_stored_page(
    store: &dyn SliceStore,
    from: u64,
    end: Option<u64>,
    max_pages: usize,
    mut f: impl FnMut(u64, Option<&[row::Head]>) -> ControlFlow<()>,
) -> Result<Option<u64>, RuntimeError> {
    let seqs = (
        Bound::Included(from),
        end.map_or(Bound::Unbounded, Bound::Excluded),
    );
    let pages = store.scan(TABLE_OWNER, ROW_PAGE, seqs, false, max_pages + 1)?;
    for item in pages.iter().take(max_pages) {
        let stored = read_stored(store, item.key.seq).ok().flatten();
        if f(item.key.seq, stored.as_ref().map(|s| &s.heads[..])).is_break() {
            return Ok(Some(item.key.seq));
        }
    }
    Ok(pages.get(max_pages).map(|item| item.key.seq))
}

/// Page `page` built: the stored page (None: written whole) with
/// `changes` (None: the row went) merged in (`merge::PageMerge`).
fn build_page(
    page: u64,
    stored: Option<StoredPage>,
    changes: &[(JobId, Option<&Job>)],
    out: &mut Image,
) {
    out.pages += 1;
    let mut merge = PageMerge::over(page, stored);
    merge.merge(changes);
    merge.finish(out);
}

/// The whole table, every page written afresh, and a delete of every key
/// of the store's image (`written_keys`) it no longer has: the first
/// checkpoint over a log without an image (the migration).
fn whole_image(state: &State, store: &dyn SliceStore) -> Result<Image, RuntimeError> {
    let mut out = Image::default();
    let mut by_page: BTreeMap<u64, Vec<(JobId, Option<&Job>)>> = BTreeMap::new();
    for job in state.table.values() {
        by_page
            .entry(keys::page_of(job.id).0)
            .or_default()
            .push((job.id, Some(job)));
    }
    for (page, changes) in by_page {
        build_page(page, None, &changes, &mut out);
    }
    let kept: BTreeSet<SliceKey> = out.puts.iter().map(|(k, _)| *k).collect();
    let kinds: Vec<KindId> = state.book.kind_ids.iter().map(|(k, _)| k).collect();
    out.deletes = written_keys(store, &kinds)?
        .into_iter()
        .filter(|k| !kept.contains(k))
        .collect();
    Ok(out)
}

/// Why a checkpoint batch could not be built.
#[derive(Debug)]
pub enum Unbuilt {
    /// Stored page `.0`, which rows changed since merge into, cannot be
    /// read (Known fault 5): checkpoints pause while it cannot.
    Page(u64, RuntimeError),
    Other(RuntimeError),
}

impl From<RuntimeError> for Unbuilt {
    fn from(e: RuntimeError) -> Self {
        Unbuilt::Other(e)
    }
}

/// The pages the rows changed since the image was written touch,
/// rebuilt over the stored pages; a page of `prebuilt` still current is
/// taken as it was built, and one whose rows changed again since is
/// built over its pre-built merge, the rows changed since merged again
/// (ARCHITECTURE.md, "3.4 The checkpoint off the state lock" and
/// "Session 17's cuts").
fn touched_pages(
    state: &State,
    store: &dyn SliceStore,
    prebuilt: Option<Prebuilt>,
) -> Result<Image, Unbuilt> {
    let mut out = Image::default();
    let mut by_page: BTreeMap<u64, Vec<(JobId, Option<&Job>)>> = BTreeMap::new();
    // The rows changed since the snapshot, by page (all, when a
    // checkpoint was sealed since: the stored pages it read may be gone).
    // The generation check is defensive: no snapshot is taken while a
    // sealed checkpoint is unanswered (`CheckpointHealth::in_flight`),
    // and a checkpoint answered since cleans the snapshot's rows
    // (`written_through`), so they are no longer among the changes.
    let (sealed, mut pre) = match prebuilt {
        Some(p) if state.table.generation() == p.sealed + 1 => (p.sealed, p.pages),
        _ => (0, BTreeMap::new()),
    };
    let mut since: BTreeMap<u64, Vec<(JobId, Option<&Job>)>> = BTreeMap::new();
    for (id, job, generation) in state.table.dirty() {
        let page = keys::page_of(id).0;
        let change = (id, job.map(|j| &**j));
        if generation > sealed {
            since.entry(page).or_default().push(change);
        }
        by_page.entry(page).or_default().push(change);
    }
    for (page, changes) in by_page {
        // A pre-built page serves while every row it merged is still
        // changed (one that left the overlay would have to be unmerged):
        // its other rows changed since, and are merged again over it.
        let pre = pre
            .remove(&page)
            .filter(|p| all_among(&p.ids, changes.iter().map(|c| c.0)));
        match (pre, since.get(&page)) {
            (Some(p), None) => p.merge.finish(&mut out),
            (Some(mut p), Some(again)) => {
                out.pages += 1;
                p.merge.merge(again);
                p.merge.finish(&mut out);
            }
            (None, _) => {
                let stored = read_stored(store, page).map_err(|e| Unbuilt::Page(page, e))?;
                out.pages_read += 1;
                build_page(page, stored, &changes, &mut out);
            }
        }
    }
    Ok(out)
}

/// Whether every id of `ids` (ascending) is among `of` (ascending).
fn all_among(ids: &[JobId], of: impl Iterator<Item = JobId>) -> bool {
    let mut of = of.peekable();
    ids.iter().all(|id| {
        while of.next_if(|o| o < id).is_some() {}
        of.next_if_eq(id).is_some()
    })
}

/// The rows by state (`JobState::index`), then the tombstones (index 8,
/// `STATE_DESTROYED`): a checkpoint's `counts`.
fn counts_of(state: &State) -> Vec<u64> {
    let mut counts = state.book.by_state.to_vec();
    counts.push(state.book.destroyed);
    counts
}

/// The checkpoint record for `state`, number `seq`, which `records`
/// records follow.
pub fn checkpoint_record(state: &State, seq: u64, records: usize) -> Meta {
    Meta::Checkpoint(Box::new(Checkpoint {
        table_version: meta::TABLE_VERSION,
        seq,
        next_id: state.book.next_id,
        generation: state.book.generation,
        log_ms: state.book.log_ms,
        counts: counts_of(state),
        kind_counts: state.book.kind_counts.as_ref().map(|by_kind| {
            let mut all: Vec<(u32, Vec<u64>)> =
                by_kind.iter().map(|(k, c)| (*k, c.to_vec())).collect();
            all.sort_unstable_by_key(|(k, _)| *k);
            all
        }),
        records: records as u32,
    }))
}

/// The meta records that start the log at checkpoint `seq`: its record
/// and what the log holds besides the rows (`snapshot::records_besides_rows`).
pub fn checkpoint_records(state: &State, seq: u64) -> (Meta, Vec<Vec<u8>>) {
    let records = crate::snapshot::records_besides_rows(state);
    (checkpoint_record(state, seq, records.len()), records)
}

/// What `checkpoint_batch` builds.
pub struct CheckpointBatch {
    pub batch: Batch,
    pub record: Meta,
    /// The batch's meta records as encoded, the checkpoint first.
    pub log: Vec<Vec<u8>>,
    /// Row pages built for it (not taken pre-built as they were), and
    /// of those, the ones read from the store.
    pub pages: u64,
    pub pages_read: u64,
}

/// The checkpoint batch for `state`: the checkpoint record, the records
/// the log holds besides the rows, and the pages that changed since the
/// store's image was written (every page, and deletes of the keys the
/// image no longer has, when there is no image yet). Call with no commit
/// in flight (the append gate held), so it covers every durable record,
/// and seal the table's generation under the same lock.
/// The batch's meta records are the log a compaction right after it
/// starts with.
/// `kind_masks` (`kind_index::refile`) go before the pages, so a page
/// the batch rewrites ends with the masks of its new rows.
pub fn checkpoint_batch(
    state: &State,
    store: &dyn SliceStore,
    refiled: Option<expiry::Filed>,
    kind_masks: Vec<Keyed>,
    prebuilt: Option<Prebuilt>,
) -> Result<CheckpointBatch, Unbuilt> {
    let (record, records) = checkpoint_records(state, state.book.checkpoint_seq + 1);
    let mut log = vec![meta::encode(&record)];
    log.extend(records);
    // A checkpoint can wait: on a disk without room for it, it is refused
    // unwritten (Known fault 8: its write met the full disk and poisoned
    // the store where small commits still fit), and backs off.
    let mut batch = Batch::new()
        .checkpoint(log[0].clone())
        .needs_room("a checkpoint of the job table");
    for r in &log[1..] {
        batch = batch.meta(r.clone());
    }
    let mut image = match state.table.has_image() {
        true => touched_pages(state, store, prebuilt)?,
        false => whole_image(state, store)?,
    };
    if let Some(refiled) = refiled {
        image.filed.merge(refiled);
    }
    image.puts.splice(0..0, kind_masks);
    for (key, records) in &image.puts {
        batch = batch.slice(*key, records);
    }
    for (key, records) in image.filed.frames(state.book.checkpoint_seq + 1, store) {
        batch = batch.slice(key, &records);
    }
    for key in image.deletes {
        batch = batch.delete(key);
    }
    Ok(CheckpointBatch {
        batch,
        record,
        log,
        pages: image.pages,
        pages_read: image.pages_read,
    })
}

/// A checkpoint batch built by `swept_checkpoint_batch`.
pub struct SweptCheckpoint {
    pub batch: Batch,
    pub record: Meta,
    /// The batch's meta records as encoded (`checkpoint_batch`).
    pub log: Vec<Vec<u8>>,
    /// Where refiling goes on once the batch is durable
    /// (`Book::refile_from`, `kind_refile`): the cursors move only
    /// then (`State::checkpoint_answered`), so a batch the store refuses
    /// leaves them where they were and no page of an older image is
    /// skipped.
    pub refile_next: RefileNext,
    /// The rows the sweep removed (RAM holds their removal): put back if
    /// the batch is not written (`expiry::put_back`).
    pub removed: Vec<expiry::Removed>,
    /// Row pages built for it under the state lock, and of those, the
    /// ones read from the store.
    pub pages: u64,
    pub pages_read: u64,
}

/// Where the two refiles of an older image go on once a checkpoint is
/// durable (None: done, or nothing to refile).
#[derive(Clone, Copy, Debug, Default)]
pub struct RefileNext {
    /// The first row page not yet filed for the sweep (`Book::refile_from`).
    pub expiry: Option<u64>,
    /// The row pages whose kind masks may be missing
    /// (`Book::kind_refile`).
    pub kinds: Option<kind_index::KindCursor>,
}

/// `checkpoint_batch` after the retention sweep (`expiry::sweep`, by
/// `now_ms`): the rows it removed are gone from the pages, and the
/// expiry frames it finished are deleted, in the same batch.
pub fn swept_checkpoint_batch(
    state: &mut State,
    store: &dyn SliceStore,
    now_ms: u64,
    prebuilt: Option<Prebuilt>,
) -> Result<SweptCheckpoint, Unbuilt> {
    let swept = expiry::sweep(state, store, now_ms)?;
    // An image from before step 6: the next pages' finished rows are
    // filed too, and the cursor moves on in the same batch. (Without an
    // image the whole image this writes files every finished row.)
    let (image, max_pages) = (state.table.has_image(), state.book.refile_max_pages);
    let (refile, next) = refile_step(state.book.refile_from, image, |from| {
        expiry::refile(store, from, max_pages).map(|r| (r.filed, r.next))
    });
    // Likewise an image from before the kind index: the next pages' kind
    // masks are written, and its cursor moves on. A whole image writes
    // every mask: the index is complete.
    let (kind_masks, kinds_next) = refile_step(state.book.kind_refile, image, |at| {
        kind_index::refile(store, at, max_pages).map(|r| (r.puts, r.next))
    });
    let (refiled, kind_masks) = (refile, kind_masks.unwrap_or_default());
    let built = match checkpoint_batch(state, store, refiled, kind_masks, prebuilt) {
        Ok(built) => built,
        Err(e) => {
            expiry::put_back(state, swept.removed);
            return Err(e);
        }
    };
    let CheckpointBatch {
        mut batch,
        record,
        log,
        pages,
        pages_read,
    } = built;
    if state.book.refile_from.is_some() {
        batch = match next {
            Some(page) => batch.slice(keys::refile(), &[page.to_le_bytes()]),
            None => batch.delete(keys::refile()),
        };
    }
    // Rewritten by every checkpoint, stamped with its seq: an open trusts
    // only the stamp of the checkpoint it reads (`kind_index::cursor`).
    let cursor = kind_index::cursor_record(kinds_next, state.book.checkpoint_seq + 1);
    batch = batch.slice(keys::kind_refile(), &[cursor]);
    for (key, records) in &swept.puts {
        batch = batch.slice(*key, records);
    }
    for key in swept.deletes {
        batch = batch.delete(key);
    }
    Ok(SweptCheckpoint {
        batch,
        record,
        log,
        // Without a refile under way, `next` is None too.
        refile_next: RefileNext {
            expiry: next,
            kinds: kinds_next,
        },
        removed: swept.removed,
        pages,
        pages_read,
    })
}

/// One checkpoint's step of a refile of an older image from `cursor`
/// (`step`: what it writes and the cursor after), and where the refile
/// stands once the checkpoint is durable: moved on; where it was when the
/// step failed (an index that cannot be scanned: the next checkpoint
/// tries again); done without an `image` (the whole image this
/// checkpoint writes needs no refile).
fn refile_step<C: Copy, W>(
    cursor: Option<C>,
    image: bool,
    step: impl FnOnce(C) -> Result<(W, Option<C>), RuntimeError>,
) -> (Option<W>, Option<C>) {
    match cursor.filter(|_| image).map(step) {
        Some(Ok((written, next))) => (Some(written), next),
        Some(Err(_)) => (None, cursor),
        None => (None, None),
    }
}

/// The keys of the table image in `store` (what a whole image replaces),
/// the kind masks of the kinds `kinds` included: the store's index is
/// scanned stream by stream, and kind ids are never dropped (every
/// checkpoint lists them), so no kind stream is missed.
pub fn written_keys(
    store: &dyn SliceStore,
    kinds: &[KindId],
) -> Result<Vec<SliceKey>, RuntimeError> {
    let masks = (0..STATES as u32).map(|s| STATE_INDEX_BASE + s);
    let kind_masks = kinds
        .iter()
        .filter_map(|&k| keys::kind_index(k, 0).map(|key| key.stream));
    let mut keys = Vec::new();
    let streams = [ROW_PAGE, ROW_LARGE, SLICE_MAP].into_iter().chain(masks);
    for stream in streams.chain(kind_masks) {
        keys.extend(all_keys(store, stream)?);
    }
    Ok(keys)
}

fn corrupt(what: String) -> RuntimeError {
    RuntimeError::Corrupt(format!("the checkpoint's table: {what}"))
}

/// The job stored row `row` holds (its `ROW_LARGE` row when the page holds
/// a stub, its slice map when sliced), with the kind named by `kinds`. A
/// missing or undecodable part is corruption, named.
pub fn whole_job(
    store: &dyn SliceStore,
    row: Row,
    kinds: &dyn Fn(KindId) -> Option<Arc<str>>,
) -> Result<Job, RuntimeError> {
    let one = |key: SliceKey| -> Result<Vec<u8>, RuntimeError> {
        let mut records = store
            .read_slice(&key)?
            .ok_or_else(|| corrupt(format!("{key:?} is missing")))?;
        match (records.pop(), records.is_empty()) {
            (Some(r), true) => Ok(r),
            _ => Err(corrupt(format!("{key:?} does not hold one record"))),
        }
    };
    let page = keys::page_of(row.id).0;
    let row = match row.body {
        RowBody::Stub { .. } => {
            row::decode(&one(keys::row_large(row.id))?, page).map_err(corrupt)?
        }
        _ => row,
    };
    let map = match row.body {
        RowBody::Sliced(_) => Some(
            slice_map::decode(&one(keys::slice_map(row.id))?)
                .map_err(|e| corrupt(format!("slice map of job {}: {e}", row.id)))?,
        ),
        _ => None,
    };
    let kind = kinds(row.kind).ok_or_else(|| {
        corrupt(format!(
            "row {} names kind id {}, which no kind_id record gave",
            row.id, row.kind
        ))
    })?;
    convert::job_of(row, map, kind).map_err(corrupt)
}

/// Pages with, per active state, the mask of their slots in it.
type ActivePages = BTreeMap<u64, Vec<(JobState, u64)>>;

/// The pages holding rows in the active states, each with the slots of
/// those rows by state (a mask that cannot be read counts as every slot,
/// `u64::MAX`: the page's rows say their states), from the state index;
/// None when the image has no state index (written before step 3.2: every
/// row is read then).
fn active_pages(store: &dyn SliceStore) -> Result<Option<ActivePages>, RuntimeError> {
    let mut pages = ActivePages::new();
    for s in ACTIVE_STATES {
        for key in all_keys(store, STATE_INDEX_BASE + s.index() as u32)? {
            let mask = match store.read_slice(&key) {
                Ok(Some(records)) if records.len() == 1 => {
                    keys::decode_mask(&records[0]).unwrap_or(u64::MAX)
                }
                _ => u64::MAX,
            };
            pages.entry(key.seq).or_default().push((s, mask));
        }
    }
    let mut indexed = !pages.is_empty();
    for s in 0..STATES as u32 {
        indexed = indexed || !all_keys(store, STATE_INDEX_BASE + s)?.is_empty();
    }
    if indexed || all_keys(store, ROW_PAGE)?.is_empty() {
        return Ok(Some(pages));
    }
    Ok(None)
}

/// The damage a page that cannot be read is, for the recovery report: its
/// place when the store named one, its id range, and that its rows (table
/// records) are lost.
pub(crate) fn page_damage(page: u64, e: &RuntimeError) -> booster_store::Damage {
    let (first, last) = crate::lost::page_ids(page);
    let (segment_id, path, offset, what) = match e {
        RuntimeError::Store(booster_store::StoreError::Corrupt {
            segment_id,
            path,
            offset,
            what,
        }) => (*segment_id, path.clone(), *offset, what.clone()),
        other => (0, "(the job table)".into(), 0, other.to_string()),
    };
    booster_store::Damage {
        segment_id,
        path,
        offset,
        end: offset,
        what: format!(
            "{what}: row page {page} of the checkpoint's table (job ids {first} to {last}); \
             its rows are lost"
        ),
        slices: vec![keys::row_page(page)],
        meta_lost: true,
        identified: true,
    }
}

/// Puts the rows of checkpoint `c`'s image that the scheduler needs (the
/// unfinished ones, by the state index) into `state`, each as a `restore`
/// record would (a running job without a lease is queued, its pending
/// slices queued), and takes the finished rows' counts from the
/// checkpoint: they stay in the store, read when asked for. The counts of
/// the rows read must be the checkpoint's. An image without a state index
/// (step 3.1's) is read whole into RAM, and the next checkpoint writes it
/// again with one.
pub fn restore_rows(
    store: &Arc<dyn SliceStore>,
    state: &mut State,
    c: &Checkpoint,
    mut lost: Option<&mut crate::lost::LostCreated>,
) -> Result<Vec<booster_store::Damage>, RuntimeError> {
    // Checkpoints before step 6 count no tombstones.
    let states = JobState::ALL.len();
    if c.counts.len() != states && c.counts.len() != states + 1 {
        return Err(corrupt(format!(
            "checkpoint {} counts {} states, not {} (and the destroyed)",
            c.seq,
            c.counts.len(),
            states
        )));
    }
    let active = active_pages(&**store)?;
    let whole = active.is_none();
    let pages: Vec<(u64, Vec<(JobState, u64)>)> = match active {
        Some(pages) => pages.into_iter().collect(),
        None => all_keys(&**store, ROW_PAGE)?
            .into_iter()
            .map(|k| (k.seq, Vec::new()))
            .collect(),
    };
    if !whole {
        state.table.open_image(Arc::downgrade(store));
        state.table.loading = true;
        state.book.refile_from = expiry::refile_cursor(&**store, c.counts.len() == states);
        state.book.kind_refile = kind_index::cursor(&**store, c.seq)?;
        state.book.kind_counts = kind_index::finished_counts(c).map_err(corrupt)?;
    }
    let mut counts = [0u64; 8];
    // The unfinished rows read, by kind and stored state.
    let mut kinds_read: crate::id_hash::NumMap<KindId, [u64; 9]> = Default::default();
    let mut damage = Vec::new();
    let restored = (|| -> Result<(), RuntimeError> {
        for (page, masks) in pages {
            let mask = match whole {
                true => u64::MAX,
                false => masks.iter().fold(0, |m, (_, s)| m | s),
            };
            // Every mask read: the page's rows must be exactly those.
            let exact = !whole && masks.iter().all(|(_, m)| *m != u64::MAX);
            let rows = match super::view::read_page(&**store, page) {
                Ok(Some(rows)) => rows,
                Ok(None) => {
                    return Err(corrupt(format!(
                        "page {page}, which the state index names, is missing"
                    )))
                }
                // Degraded: the rows the masks name are lost, named.
                Err(e) if !whole => {
                    lose_page(state, page, &masks, &e, &mut counts);
                    damage.push(page_damage(page, &e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut found = 0u64;
            for row in rows {
                let slot = keys::page_of(row.id).1;
                if mask & (1 << slot) == 0 {
                    continue;
                }
                let s = row.job_state().ok_or_else(|| {
                    corrupt(format!(
                        "row {} is destroyed, yet indexed as unfinished",
                        row.id
                    ))
                })?;
                if !whole && !ACTIVE_STATES.contains(&s) {
                    if exact {
                        return Err(corrupt(format!(
                            "row {} is {}, yet indexed as unfinished",
                            row.id,
                            s.as_str()
                        )));
                    }
                    continue;
                }
                found |= 1 << slot;
                counts[s.index()] += 1;
                kinds_read.entry(row.kind).or_default()[s.index()] += 1;
                let kinds = |k| state.book.kind_ids.name(k).cloned();
                let job = whole_job(&**store, row, &kinds)?;
                if let Some(lost) = lost.as_deref_mut() {
                    lost.note_restored(job.id);
                }
                state.apply_restore(job)?;
            }
            if exact && found != mask {
                return Err(corrupt(format!(
                    "page {page} lacks rows its state index names (slots {:#x})",
                    mask & !found
                )));
            }
            if !whole {
                // Readable again from their page (`TableView::load`).
                state.table.let_go_of_restored_page(page);
            }
        }
        Ok(())
    })();
    state.table.loading = false;
    restored?;
    let checked: Vec<usize> = match whole {
        true => (0..counts.len()).collect(),
        false => ACTIVE_STATES.iter().map(|s| s.index()).collect(),
    };
    if checked.iter().any(|&s| counts[s] != c.counts[s]) {
        return Err(RuntimeError::Corrupt(format!(
            "checkpoint {} counts {:?} jobs by state, its table holds {:?}",
            c.seq, c.counts, counts
        )));
    }
    if !whole {
        for s in JobState::ALL.iter().filter(|s| s.is_finished()) {
            state.book.by_state[s.index()] += c.counts[s.index()];
        }
        state.book.destroyed += c.counts.get(states).copied().unwrap_or(0);
        let kept = state.book.kind_counts.is_some();
        if let Some(why) = kind_index::counts_disagree(c, &kinds_read).filter(|_| kept) {
            // A miscount is not carried into every later checkpoint: the
            // totals of a kind filter are counted from rows instead.
            eprintln!(
                "booster: checkpoint {}'s counts by kind are not kept ({why}); \
                 a kind filter's total is counted from its rows",
                c.seq
            );
            state.book.kind_counts = None;
        }
    }
    Ok(damage)
}

/// The unfinished rows page `page` held by its masks are lost: each is a
/// lost row (failed, naming the damage), counted in its indexed state for
/// the checkpoint's counts.
fn lose_page(
    state: &mut State,
    page: u64,
    masks: &[(JobState, u64)],
    e: &RuntimeError,
    counts: &mut [u64; 8],
) {
    let reason = crate::lost::page_reason(page, e);
    let mut slots = 0u64;
    for (s, mask) in masks {
        // A mask that cannot be read names no slot it can count.
        if *mask != u64::MAX {
            counts[s.index()] += u64::from(mask.count_ones());
            slots |= mask;
        }
    }
    state.table.loading = false;
    for slot in (0..keys::ROWS_PER_PAGE).filter(|s| slots & (1 << s) != 0) {
        let id = page * keys::ROWS_PER_PAGE + slot;
        let at_ms = state.book.log_ms;
        state.insert_lost_row(crate::lost::lost_job(id, at_ms, reason.clone()));
    }
    state.table.loading = true;
}
