//! The kind index (`KIND_INDEX`, streams 65 536 + k; ARCHITECTURE.md,
//! "The kind index as built"): per row page and kind id k, one record, the
//! u64 LE mask of the page's slots whose row has kind k. Destroyed rows
//! (tombstones) are in no kind mask: a tombstone is no job, and no
//! listing shows one. Like the state masks, a page's kind masks are
//! recomputed from its merged rows whenever a checkpoint writes the page,
//! and put or deleted only where they changed.
//!
//! An image written before the kind index has no kind masks. Its
//! `KIND_REFILE` record (absent there: from page 0 to one past the last
//! stored page at the open) says which row pages may lack them; each
//! checkpoint writes the masks of the next `expiry::REFILE_PAGES` stored
//! pages of that range (`refile`) and moves the cursor on in the same
//! batch, until it reaches the end and says `KIND_INDEX_COMPLETE`. Pages
//! from the end up were written whole by this code, so a stream of new
//! jobs cannot keep the refile from ending. A page of the range that a
//! checkpoint rewrites before the refile reaches it has the masks that
//! changed put and those that emptied deleted, like any page: the refile
//! writes the rest. Until then a kind filter reads rows, as before.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use booster_store::SliceKey;

use super::keys::{self, KIND_INDEX_COMPLETE};
use super::kinds::KindId;
use super::row::STATE_DESTROYED;
use crate::id_hash::NumMap;
use crate::meta::Checkpoint;
use crate::slice_store::SliceStore;
use crate::{JobId, JobState, RuntimeError};

/// A page's kind masks, by kind id; a kind with no row there has none.
pub type KindMasks = BTreeMap<KindId, u64>;

/// The kind masks of a page's rows, given as (id, state byte, kind id).
pub fn masks_of(rows: impl IntoIterator<Item = (JobId, u8, KindId)>) -> KindMasks {
    let mut masks = KindMasks::new();
    for (id, state, kind) in rows {
        if state != STATE_DESTROYED {
            *masks.entry(kind).or_default() |= 1 << keys::page_of(id).1;
        }
    }
    masks
}

/// Writes into `puts` and `deletes` what takes page `page`'s stored kind
/// masks `old` (from its stored rows) to `new`: a mask that changed is
/// put, one that emptied deleted (a delete of a key never written, on a
/// page not refiled yet, changes nothing).
pub fn changes(
    page: u64,
    old: &KindMasks,
    new: &KindMasks,
    puts: &mut Vec<(SliceKey, Vec<Vec<u8>>)>,
    deletes: &mut Vec<SliceKey>,
) {
    for (&kind, &mask) in new {
        if old.get(&kind) != Some(&mask) {
            if let Some(key) = keys::kind_index(kind, page) {
                puts.push((key, vec![keys::encode_mask(mask)]));
            }
        }
    }
    for &kind in old.keys().filter(|k| !new.contains_key(k)) {
        if let Some(key) = keys::kind_index(kind, page) {
            deletes.push(key);
        }
    }
}

/// Whether page `page`'s kind masks are all written, by the refile
/// (`Book::kind_refile`; None: every page's are).
#[cfg(test)]
pub fn indexed(refile: Option<KindCursor>, page: u64) -> bool {
    refile.is_none_or(|c| page < c.from || page >= c.end)
}

/// The kind refile's range: the row pages from `from` up to `end`
/// (exclusive) may lack their kind masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindCursor {
    pub from: u64,
    pub end: u64,
}

/// Where an open over the image of checkpoint `seq` goes on writing kind
/// masks (`Book::kind_refile`): None when the `KIND_REFILE` record says
/// complete; its range when it holds one; from page 0 to one past the
/// last stored page when it is absent (an image from before the kind
/// index), cannot be read or decoded (rewriting a page's masks from its
/// rows is harmless), or is stamped with another checkpoint than `seq`:
/// every checkpoint of this code rewrites the record with its own seq,
/// so another stamp means a binary from before the kind index wrote a
/// later checkpoint (a downgrade), whose pages may lack their masks.
/// An index that cannot be scanned is the error.
pub fn cursor(store: &dyn SliceStore, seq: u64) -> Result<Option<KindCursor>, RuntimeError> {
    let stored = match store.read_slice(&keys::kind_refile()) {
        Ok(Some(records)) => records
            .first()
            .and_then(|r| <[u8; 24]>::try_from(r.as_slice()).ok()),
        Ok(None) | Err(_) => None,
    };
    let word =
        |b: &[u8; 24], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    if let Some(b) = stored.filter(|b| word(b, 16) == seq) {
        return Ok(match word(&b, 0) {
            KIND_INDEX_COMPLETE => None,
            from => Some(KindCursor {
                from,
                end: word(&b, 8),
            }),
        });
    }
    let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    let last = store.scan(keys::TABLE_OWNER, keys::ROW_PAGE, all, true, 1)?;
    let end = last.first().map_or(0, |i| i.key.seq + 1);
    Ok(Some(KindCursor { from: 0, end }))
}

/// The `KIND_REFILE` record checkpoint `seq` writes for the range left,
/// `next` (None: complete): `from` u64 LE ++ `end` u64 LE ++ `seq` u64
/// LE, `from` = `KIND_INDEX_COMPLETE` once complete.
pub fn cursor_record(next: Option<KindCursor>, seq: u64) -> [u8; 24] {
    let (from, end) = next.map_or((KIND_INDEX_COMPLETE, 0), |c| (c.from, c.end));
    let mut b = [0; 24];
    b[..8].copy_from_slice(&from.to_le_bytes());
    b[8..16].copy_from_slice(&end.to_le_bytes());
    b[16..].copy_from_slice(&seq.to_le_bytes());
    b
}

/// One checkpoint's share of writing the kind masks of an image from
/// before the kind index: the masks, and the range left (None: done).
pub struct KindRefile {
    pub puts: Vec<(SliceKey, Vec<Vec<u8>>)>,
    pub next: Option<KindCursor>,
}

/// The kind masks of the next `max_pages` stored row pages of range `at`,
/// from their stored rows. The checkpoint puts them before the
/// pages it rewrites, so a page it also rewrites ends with its new masks.
/// A page that cannot be read ends the step there: the range left starts
/// at it, so the next checkpoint tries it again and the index is never
/// complete past a page whose masks were not written. An index that
/// cannot be scanned is the error, and the cursor stays.
pub fn refile(
    store: &dyn SliceStore,
    at: KindCursor,
    max_pages: usize,
) -> Result<KindRefile, RuntimeError> {
    let mut puts = Vec::new();
    let next =
        super::image::each_stored_page(store, at.from, Some(at.end), max_pages, |page, heads| {
            let Some(heads) = heads else {
                return ControlFlow::Break(());
            };
            let new = masks_of(heads.iter().map(|h| (h.id, h.state, h.kind)));
            changes(page, &KindMasks::new(), &new, &mut puts, &mut Vec::new());
            ControlFlow::Continue(())
        })?;
    let next = next.map(|from| KindCursor { from, end: at.end });
    Ok(KindRefile { puts, next })
}

/// The counts by kind of checkpoint `c`'s finished and destroyed rows,
/// which stay in the store (the unfinished ones are counted again as they
/// are restored); None for a checkpoint that did not count kinds.
pub fn finished_counts(c: &Checkpoint) -> Result<Option<NumMap<KindId, [u64; 9]>>, String> {
    let Some(by_kind) = &c.kind_counts else {
        return Ok(None);
    };
    let mut out = NumMap::default();
    for (kind, counts) in by_kind {
        let mut kept = [0u64; 9];
        if counts.len() != kept.len() {
            return Err(format!(
                "checkpoint {} counts {} states of kind {kind}, not {}",
                c.seq,
                counts.len(),
                kept.len()
            ));
        }
        for (i, n) in counts.iter().enumerate() {
            let finished = JobState::ALL.get(i).is_none_or(|s| s.is_finished());
            if finished {
                kept[i] = *n;
            }
        }
        out.insert(*kind, kept);
    }
    Ok(Some(out))
}

/// Where checkpoint `c`'s counts by kind disagree with its counts by
/// state (the sum over kinds, state by state) or, in the unfinished
/// states, with `restored`, the rows the open read, by kind and stored
/// state (a page that could not be read counts none); None when they
/// agree, or when `c` did not count kinds.
pub fn counts_disagree(c: &Checkpoint, restored: &NumMap<KindId, [u64; 9]>) -> Option<String> {
    let by_kind = c.kind_counts.as_ref()?;
    for (i, &total) in c.counts.iter().enumerate() {
        // Checked: a hostile or rotted record can pass u64::MAX.
        let mut counts = by_kind.iter().filter_map(|(_, n)| n.get(i));
        let sum = counts.try_fold(0u64, |sum, n| sum.checked_add(*n));
        if sum != Some(total) {
            let sum = sum.map_or("more than u64::MAX".into(), |s| s.to_string());
            return Some(format!(
                "its counts by kind sum to {sum} jobs of state {i}, its counts by state to {total}"
            ));
        }
    }
    let unfinished = JobState::ALL.iter().filter(|s| !s.is_finished());
    for i in unfinished.map(|s| s.index()) {
        let recorded = by_kind
            .iter()
            .map(|(k, n)| (*k, n.get(i).copied().unwrap_or(0)));
        let read = restored.iter().map(|(k, n)| (*k, n[i]));
        let nonzero = |kv: &(KindId, u64)| kv.1 != 0;
        let recorded: BTreeMap<_, _> = recorded.filter(nonzero).collect();
        let read: BTreeMap<_, _> = read.filter(nonzero).collect();
        if recorded != read {
            return Some(format!(
                "it counts {recorded:?} jobs of state {i} by kind, its rows {read:?}"
            ));
        }
    }
    None
}

/// Where the kind masks in `store` disagree with its row pages, for
/// tests: a page the cursor `from` says is indexed whose rows of a kind
/// in `kinds` have no mask, or another one; and any mask key, of any
/// page, that is not exactly the slots of its kind's rows there (a stale
/// key of a kind that left).
#[cfg(test)]
pub(crate) fn mismatches(
    store: &dyn SliceStore,
    kinds: &[KindId],
    from: Option<KindCursor>,
) -> Vec<String> {
    use std::ops::Bound;
    let all = || (Bound::Unbounded, Bound::Unbounded);
    let pages = store.scan(keys::TABLE_OWNER, keys::ROW_PAGE, all(), false, usize::MAX);
    let mut want = BTreeMap::new();
    for item in pages.expect("the row pages' index") {
        let page = item.key.seq;
        let stored = super::image::read_stored(store, page).expect("a row page");
        let heads = stored.expect("a listed page").heads;
        for (kind, mask) in masks_of(heads.iter().map(|h| (h.id, h.state, h.kind))) {
            want.insert((kind, page), mask);
        }
    }
    let mut got = BTreeMap::new();
    for &kind in kinds {
        let stream = keys::KIND_INDEX_BASE + kind;
        for item in store
            .scan(keys::TABLE_OWNER, stream, all(), false, usize::MAX)
            .unwrap()
        {
            let records = store.read_slice(&item.key).unwrap().expect("a listed mask");
            got.insert(
                (kind, item.key.seq),
                keys::decode_mask(&records[0]).unwrap(),
            );
        }
    }
    let mut out = Vec::new();
    for (&(kind, page), &mask) in &want {
        if indexed(from, page) && got.get(&(kind, page)) != Some(&mask) {
            out.push(format!(
                "page {page} kind {kind}: {mask:#x} wanted, {:?} stored",
                got.get(&(kind, page))
            ));
        }
    }
    for (&(kind, page), &mask) in &got {
        if want.get(&(kind, page)) != Some(&mask) {
            out.push(format!(
                "page {page} kind {kind}: {mask:#x} stored, {:?} held",
                want.get(&(kind, page))
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_leave_tombstones_out_and_changes_write_only_what_moved() {
        let masks = masks_of([
            (64, 0, 1),
            (65, 5, 2),
            (66, STATE_DESTROYED, 2),
            (127, 4, 1),
        ]);
        assert_eq!(masks, KindMasks::from([(1, 1 | 1 << 63), (2, 1 << 1)]));
        let (mut puts, mut deletes) = (Vec::new(), Vec::new());
        let old = KindMasks::from([(1, 1 | 1 << 63), (3, 4)]);
        changes(1, &old, &masks, &mut puts, &mut deletes);
        let put: Vec<_> = puts.iter().map(|(k, _)| k.stream).collect();
        assert_eq!(put, vec![keys::KIND_INDEX_BASE + 2], "kind 1 did not move");
        let deleted: Vec<_> = deletes.iter().map(|k| (k.stream, k.seq)).collect();
        assert_eq!(deleted, vec![(keys::KIND_INDEX_BASE + 3, 1)]);
    }
}
