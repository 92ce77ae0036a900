//! The table image a checkpoint writes, and the rows an open reads back
//! from it (issue 12, step 3.1; ARCHITECTURE.md, "Step 3, increment by
//! increment"). The image is the whole table: every row in its 64-row page
//! (`ROW_PAGE`), a row too long for a page whole in `ROW_LARGE`, and every
//! sliced job's slice map (`SLICE_MAP`). It is written in one batch with
//! its checkpoint record, so after any crash the store holds the image and
//! the record, or neither.

use std::collections::BTreeSet;
use std::ops::Bound;

use booster_store::{Batch, SliceKey};

use super::keys::{self, ROW_LARGE, ROW_PAGE, SLICE_MAP, TABLE_OWNER};
use super::kinds::KindIds;
use super::row::{self, RowBody};
use super::{convert, page, slice_map, Job, TableView};
use crate::meta::{self, Checkpoint, Meta};
use crate::slice_store::SliceStore;
use crate::state::State;
use crate::RuntimeError;

/// Every key of (`TABLE_OWNER`, `stream`), ascending.
fn all_keys(store: &dyn SliceStore, stream: u32) -> Vec<SliceKey> {
    let all = (Bound::Unbounded, Bound::Unbounded);
    store
        .scan(TABLE_OWNER, stream, all, false, usize::MAX)
        .into_iter()
        .map(|i| i.key)
        .collect()
}

/// A keyed slice of the image: its key and its records.
type Keyed = (SliceKey, Vec<Vec<u8>>);

/// The table's keyed slices, ascending by job id.
fn image(table: &TableView) -> Result<Vec<Keyed>, RuntimeError> {
    let mut out = Vec::new();
    let mut rows = Vec::new();
    let mut page_now = None;
    for job in table.values() {
        let (page, _) = keys::page_of(job.id);
        if page_now != Some(page) {
            flush(page_now, &mut rows, &mut out)?;
            page_now = Some(page);
        }
        let (row, map) = convert::row_of(job);
        if let Some(map) = map {
            out.push((keys::slice_map(job.id), vec![slice_map::encode(&map)]));
        }
        rows.push(row);
    }
    flush(page_now, &mut rows, &mut out)?;
    Ok(out)
}

fn flush(
    page: Option<u64>,
    rows: &mut Vec<row::Row>,
    out: &mut Vec<Keyed>,
) -> Result<(), RuntimeError> {
    let Some(page) = page else {
        return Ok(());
    };
    let encoded = page::encode(rows).map_err(RuntimeError::Corrupt)?;
    out.push((keys::row_page(page), encoded.records));
    for (id, whole) in encoded.large {
        out.push((keys::row_large(id), vec![whole]));
    }
    rows.clear();
    Ok(())
}

/// The checkpoint record for `state`, which `records` records follow.
pub fn checkpoint_record(state: &State, records: usize) -> Meta {
    Meta::Checkpoint(Box::new(Checkpoint {
        table_version: meta::TABLE_VERSION,
        seq: state.book.checkpoint_seq + 1,
        next_id: state.book.next_id,
        generation: state.book.generation,
        log_ms: state.book.log_ms,
        counts: state.book.by_state.to_vec(),
        records: records as u32,
    }))
}

/// The checkpoint batch for `state`: the checkpoint record, the records
/// the log holds besides the rows (`snapshot::records_besides_rows`), the
/// image, and a delete of each key in `written` (the table's keys in the
/// store now) that the image no longer has. Call with no commit in flight
/// (the append gate held), so it covers every durable record.
/// Returns the batch and its checkpoint record.
pub fn checkpoint_batch(
    state: &State,
    written: &[SliceKey],
) -> Result<(Batch, Meta), RuntimeError> {
    let records = crate::snapshot::records_besides_rows(state);
    let record = checkpoint_record(state, records.len());
    let mut batch = Batch::new().checkpoint(meta::encode(&record));
    for r in records {
        batch = batch.meta(r);
    }
    let image = image(&state.table)?;
    let kept: BTreeSet<SliceKey> = image.iter().map(|(k, _)| *k).collect();
    for (key, records) in &image {
        batch = batch.slice(*key, records);
    }
    for key in written.iter().filter(|k| !kept.contains(k)) {
        batch = batch.delete(*key);
    }
    Ok((batch, record))
}

/// The keys of the table image in `store` (what the next checkpoint
/// replaces).
pub fn written_keys(store: &dyn SliceStore) -> Vec<SliceKey> {
    [ROW_PAGE, ROW_LARGE, SLICE_MAP]
        .into_iter()
        .flat_map(|stream| all_keys(store, stream))
        .collect()
}

/// Every row of the image in `store`, ascending by id, as jobs with no
/// live marks (what a `restore` record holds). A page, large row or slice
/// map that is missing or does not decode is corruption, named.
pub fn read_rows(store: &dyn SliceStore, kinds: &KindIds) -> Result<Vec<Job>, RuntimeError> {
    let corrupt = |what: String| RuntimeError::Corrupt(format!("the checkpoint's table: {what}"));
    let read = |key: SliceKey| -> Result<Vec<Vec<u8>>, RuntimeError> {
        store
            .read_slice(&key)?
            .ok_or_else(|| corrupt(format!("{key:?} is missing")))
    };
    let one = |key: SliceKey| -> Result<Vec<u8>, RuntimeError> {
        let mut records = read(key)?;
        match (records.pop(), records.is_empty()) {
            (Some(r), true) => Ok(r),
            _ => Err(corrupt(format!("{key:?} does not hold one record"))),
        }
    };
    let mut jobs = Vec::new();
    for key in all_keys(store, ROW_PAGE) {
        let page = key.seq;
        let records = read(key)?;
        for row in page::decode(page, &records).map_err(corrupt)? {
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
            let kind = kinds.name(row.kind).cloned().ok_or_else(|| {
                corrupt(format!(
                    "row {} names kind id {}, which no kind_id record gave",
                    row.id, row.kind
                ))
            })?;
            jobs.push(convert::job_of(row, map, kind).map_err(corrupt)?);
        }
    }
    Ok(jobs)
}

/// Puts the rows of checkpoint `c`'s image into `state`, each as a
/// `restore` record would (a running job without a lease is queued, its
/// pending slices queued); then the state's counts must be the
/// checkpoint's.
pub fn restore_rows(
    store: &dyn SliceStore,
    state: &mut State,
    c: &Checkpoint,
    mut lost: Option<&mut crate::lost::LostCreated>,
) -> Result<(), RuntimeError> {
    for job in read_rows(store, &state.book.kind_ids)? {
        let m = Meta::Restore { job: Box::new(job) };
        if let Some(lost) = lost.as_deref_mut() {
            lost.note(&m, state);
        }
        state.apply(&m)?;
    }
    if state.book.by_state[..] != c.counts[..] {
        return Err(RuntimeError::Corrupt(format!(
            "checkpoint {} counts {:?} jobs by state, its table holds {:?}",
            c.seq, c.counts, state.book.by_state
        )));
    }
    Ok(())
}
