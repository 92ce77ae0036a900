//! One row page of a checkpoint merged: the stored page's records with
//! changed rows merged in, and what each changed row writes beside the
//! page. A merge can take more changes after it was first built (a
//! pre-built page whose rows changed again before the seal: "3.4 The
//! checkpoint off the state lock", "Session 17's cuts"): a row merged
//! twice ends as if merged once in its newest state, because everything
//! a row adds is worked out against the stored page, never against the
//! merge so far.

use super::{Image, StoredPage, STATES};
use crate::table::kind_index::{self, KindMasks};
use crate::table::kinds::KindId;
use crate::table::{convert, expiry, keys, row, slice_map, Job};
use crate::JobId;

/// The rows a page holds, each at its slot (`keys::page_of(id).1`).
const SLOTS: usize = keys::ROWS_PER_PAGE as usize;

/// A row page being built (`build_page` in one go; a pre-built page in
/// two: `merge` at the pre-build, `merge` again and `finish` at the seal).
/// A checkpoint keeps up to a thousand pre-built pages until its seal, so
/// a merge is kept compact: fixed slots, the stored rows' facts as
/// bitmasks, sorted vectors (14.4 KB a page of 64 changed rows with
/// their records, where maps and trees took 29.2 KB:
/// `prebuild_tests::a_prebuilt_page_is_held_in_at_most_16_kb`).
pub(super) struct PageMerge {
    page: u64,
    had_page: bool,
    /// Each slot's row.
    slots: Box<[Option<Slot>; SLOTS]>,
    /// The stored page's kind masks and state masks.
    old_kinds: KindMasks,
    old_masks: [u64; STATES],
    /// The stored rows that are stubs (a `ROW_LARGE` beside the page) and
    /// that are sliced (a slice map beside it), by slot.
    old_stubs: u64,
    old_sliced: u64,
    /// Where each stored row filed for the sweep is filed, by ascending id.
    old_filed: Vec<(JobId, expiry::Filing)>,
    /// What each changed row writes and deletes beside the page, by
    /// ascending id (a row that writes nothing beside it has no entry): a
    /// row merged again replaces its entry.
    writes: Vec<(JobId, RowWrites)>,
}

/// A row's record, state byte and kind id.
struct Slot {
    record: Vec<u8>,
    state: u8,
    kind: KindId,
}

/// What one changed row writes beside its page's record.
#[derive(Default)]
struct RowWrites {
    /// Where it is filed for the sweep, when not where the stored row was.
    filed: Option<expiry::Filing>,
    /// The stored row's `ROW_LARGE` and slice map, which it no longer has.
    delete_large: bool,
    delete_map: bool,
    /// Its whole record and slice map, when it has either (rare, so
    /// boxed together).
    beside: Option<Box<Beside>>,
}

/// A changed row's records kept beside its page.
struct Beside {
    /// Its whole record (`ROW_LARGE`) when too long for the page.
    large: Option<Vec<u8>>,
    /// Its slice map, when sliced.
    map: Option<Vec<u8>>,
}

impl RowWrites {
    fn is_empty(&self) -> bool {
        self.filed.is_none() && !self.delete_large && !self.delete_map && self.beside.is_none()
    }
}

impl PageMerge {
    /// Page `page` as the store holds it (None: none stored, the page is
    /// written whole), with nothing merged yet.
    pub(super) fn over(page: u64, stored: Option<StoredPage>) -> PageMerge {
        let mut merge = PageMerge {
            page,
            had_page: stored.is_some(),
            slots: Box::new(std::array::from_fn(|_| None)),
            old_kinds: KindMasks::new(),
            old_masks: [0; STATES],
            old_stubs: 0,
            old_sliced: 0,
            old_filed: Vec::new(),
            writes: Vec::new(),
        };
        if let Some(StoredPage { heads, records }) = stored {
            merge.old_kinds = kind_index::masks_of(heads.iter().map(|h| (h.id, h.state, h.kind)));
            for (h, record) in heads.into_iter().zip(records) {
                let (in_page, slot) = keys::page_of(h.id);
                debug_assert_eq!(in_page, page, "row {} stored in page {page}", h.id);
                let bit = 1u64 << slot;
                merge.old_masks[usize::from(h.state)] |= bit;
                if h.stub() {
                    merge.old_stubs |= bit;
                }
                if h.sliced() {
                    merge.old_sliced |= bit;
                }
                if let Some(at) = expiry::slot_of_head(&h) {
                    merge.old_filed.push((h.id, at));
                }
                merge.slots[usize::from(slot)] = Some(Slot {
                    record,
                    state: h.state,
                    kind: h.kind,
                });
            }
            merge.old_filed.sort_unstable_by_key(|(id, _)| *id);
        }
        merge
    }

    /// Merges `changes` (None: the row went) in, ascending id; a row
    /// merged before is replaced.
    pub(super) fn merge(&mut self, changes: &[(JobId, Option<&Job>)]) {
        for &(id, job) in changes {
            let (in_page, slot) = keys::page_of(id);
            debug_assert_eq!(
                in_page, self.page,
                "row {id} merged into page {}",
                self.page
            );
            let bit = 1u64 << slot;
            self.slots[usize::from(slot)] = None;
            let was_filed = self
                .old_filed
                .binary_search_by_key(&id, |(id, _)| *id)
                .ok()
                .map(|i| self.old_filed[i].1);
            let mut w = RowWrites::default();
            let (mut large, mut map) = (None, None);
            if let Some(job) = job {
                w.filed = expiry::slot_of(job).filter(|at| Some(*at) != was_filed);
                let (row, slice_map) = convert::row_of(job);
                let (inline, whole) = row::encode_for_page(&row);
                large = whole;
                map = slice_map.map(|m| slice_map::encode(&m));
                self.slots[usize::from(slot)] = Some(Slot {
                    record: inline,
                    state: row.state,
                    kind: row.kind,
                });
            }
            w.delete_large = self.old_stubs & bit != 0 && large.is_none();
            w.delete_map = self.old_sliced & bit != 0 && map.is_none();
            if large.is_some() || map.is_some() {
                w.beside = Some(Box::new(Beside { large, map }));
            }
            match (
                self.writes.binary_search_by_key(&id, |(id, _)| *id),
                w.is_empty(),
            ) {
                (Ok(i), false) => self.writes[i].1 = w,
                (Ok(i), true) => {
                    self.writes.remove(i);
                }
                (Err(i), false) => self.writes.insert(i, (id, w)),
                (Err(_), true) => {}
            }
        }
    }

    /// The rows the page holds after the merge, ascending id.
    fn rows(&self) -> impl Iterator<Item = (JobId, &Slot)> {
        let first = self.page * keys::ROWS_PER_PAGE;
        (first..)
            .zip(self.slots.iter())
            .filter_map(|(id, slot)| slot.as_ref().map(|s| (id, s)))
    }

    /// The page's writes into `out`: each changed row's large row, slice
    /// map and deletes (ascending id), the kind and state masks that
    /// changed, and the page's record (or its delete, emptied).
    pub(super) fn finish(mut self, out: &mut Image) {
        let page = self.page;
        for (id, w) in std::mem::take(&mut self.writes) {
            if let Some(at) = w.filed {
                out.filed.add(at, id);
            }
            if let Some(beside) = w.beside {
                if let Some(whole) = beside.large {
                    out.puts.push((keys::row_large(id), vec![whole]));
                }
                if let Some(map) = beside.map {
                    out.puts.push((keys::slice_map(id), vec![map]));
                }
            }
            if w.delete_large {
                out.deletes.push(keys::row_large(id));
            }
            if w.delete_map {
                out.deletes.push(keys::slice_map(id));
            }
        }
        let mut masks = [0u64; STATES];
        for (id, slot) in self.rows() {
            masks[usize::from(slot.state)] |= 1 << keys::page_of(id).1;
        }
        let kinds = kind_index::masks_of(self.rows().map(|(id, s)| (id, s.state, s.kind)));
        kind_index::changes(
            page,
            &self.old_kinds,
            &kinds,
            &mut out.puts,
            &mut out.deletes,
        );
        for (s, (&new, &was)) in masks.iter().zip(&self.old_masks).enumerate() {
            let key = keys::state_index(s as u8, page).expect("a row state byte");
            if new != 0 && new != was {
                out.puts.push((key, vec![keys::encode_mask(new)]));
            } else if new == 0 && was != 0 {
                out.deletes.push(key);
            }
        }
        let records: Vec<Vec<u8>> = self.slots.into_iter().flatten().map(|s| s.record).collect();
        if records.is_empty() {
            if self.had_page {
                out.deletes.push(keys::row_page(page));
            }
        } else {
            out.puts.push((keys::row_page(page), records));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::{all_among, touched_pages, Image, Prebuilt, RowSnapshot};
    use crate::logged_tests::Logged;
    use crate::meta::{Control, Meta};
    use crate::prebuild_tests::created;
    use crate::retention_tests::book;
    use crate::state::State;
    use crate::state_tests::uploaded;
    use crate::{JobId, JobSpec};
    use booster_store::SliceKey;

    /// Jobs `ids` finished: completed with a small result, but `large`
    /// (past `MAX_INLINE_ROW`, so its page holds a stub) and `failed`
    /// (failed with a reason that long).
    fn finished(ids: impl Iterator<Item = JobId>, large: &[JobId], failed: &[JobId]) -> Meta {
        let long = "x".repeat(2 * crate::table::row::MAX_INLINE_ROW);
        crate::prebuild_tests::finished(ids, |job| -> Result<Option<Value>, String> {
            match (large.contains(&job), failed.contains(&job)) {
                (_, true) => Err(long.clone()),
                (true, _) => Ok(Some(json!(long))),
                _ => Ok(Some(json!(job))),
            }
        })
    }

    fn control(job: JobId, action: Control) -> Meta {
        Meta::Control {
            job,
            at_ms: 3,
            action,
        }
    }

    /// An image's writes in the order the batch takes them.
    fn writes(image: Image) -> String {
        format!("{:?}\n{:?}\n{:?}", image.puts, image.deletes, image.filed)
    }

    /// Jobs 1 to 200 created queued: simple, but `SLICED` (each with a
    /// slice map).
    fn created_with_sliced() -> Meta {
        let spec = |id| match SLICED.contains(&id) {
            true => JobSpec::sliced("s"),
            false => JobSpec::simple("k", Value::Null),
        };
        Meta::Created {
            first_id: 1,
            at_ms: 1,
            specs: (1..=200).map(spec).collect(),
        }
    }

    /// Jobs 150 and 160 (page 2) are sliced.
    const SLICED: [JobId; 2] = [150, 160];

    /// 200 queued jobs in a checkpoint's image (150 and 160 sliced);
    /// jobs 20 and 21 failed with a long reason (stubs) in it; jobs 1 to
    /// 130 but 20 and 21 done since (30 with a large result, 40 failed
    /// with a long reason), 20 queued
    /// again and a slice uploaded into 150; then the snapshot and its
    /// pages (0 to 2) built.
    fn snapshot_built() -> (Logged, Prebuilt) {
        let mut st = State::new(book());
        st.book.live = true;
        let mut l = Logged::new(st);
        l.apply(&created_with_sliced()).unwrap();
        l.apply(&finished([20, 21].into_iter(), &[], &[20, 21]))
            .unwrap();
        l.checkpoint();
        l.apply(&finished((1..=19).chain(22..=130), &[30], &[40]))
            .unwrap();
        l.apply(&control(20, Control::Retry)).unwrap();
        l.apply(&uploaded(150, 0, 10)).unwrap();
        let snapshot = RowSnapshot::take(&mut l.st).expect("a snapshot over an image");
        let prebuilt = snapshot.build(&*l.store);
        assert_eq!(prebuilt.pages(), 3, "pages 0 to 2");
        (l, prebuilt)
    }

    /// The replay invariant over pre-built pages: pages built at the seal
    /// over their pre-built merge write byte for byte what the seal alone
    /// builds over the stored pages, for rows merged twice (job 20: a
    /// stored stub queued again in the snapshot, completed since; job 30:
    /// a large row in the snapshot, destroyed since; sliced job 150: its
    /// slice map changed in the snapshot, destroyed since, the map
    /// deleted), rows destroyed since (job 5), rows of a stored stub
    /// changed only since (job 21), a row that writes nothing beside its
    /// page any more (job 40: failed with a long reason in the snapshot,
    /// queued again since), a sliced row whose map changed only
    /// since (job 160), rows done and created since (131 to 140, 201 to
    /// 210). Page 1 is taken as pre-built, pages 0 and 2 are merged again
    /// without a read, page 3 (no snapshot row) is read.
    #[test]
    fn a_page_merged_again_over_its_prebuilt_merge_is_the_page_the_seal_alone_builds() {
        let (mut l, prebuilt) = snapshot_built();
        l.apply(&control(5, Control::Destroy)).unwrap();
        l.apply(&control(150, Control::Destroy)).unwrap();
        l.apply(&control(40, Control::Retry)).unwrap();
        l.apply(&uploaded(160, 0, 10)).unwrap();
        l.apply(&finished([20].into_iter(), &[], &[])).unwrap();
        l.apply(&control(21, Control::Retry)).unwrap();
        l.apply(&control(30, Control::Destroy)).unwrap();
        l.apply(&finished(131..=140, &[], &[])).unwrap();
        l.apply(&created(201, 10)).unwrap();

        let reads = l.page_reads();
        let over = touched_pages(&l.st, &*l.store, Some(prebuilt)).expect("the pages");
        assert_eq!(l.page_reads() - reads, 1, "only page 3 is read");
        assert_eq!((over.pages, over.pages_read), (3, 1));
        let alone = touched_pages(&l.st, &*l.store, None).expect("the pages");
        assert_eq!((alone.pages, alone.pages_read), (4, 4));
        let map_keys =
            |keys: &[SliceKey]| SLICED.map(|id| keys.contains(&crate::table::keys::slice_map(id)));
        let put: Vec<SliceKey> = over.puts.iter().map(|(k, _)| *k).collect();
        assert_eq!(map_keys(&put), [false, true], "160's new map");
        assert_eq!(map_keys(&over.deletes), [true, false], "150's map deleted");
        assert_eq!(writes(over), writes(alone));
    }

    /// A row of a pre-built page that left the overlay before the seal
    /// (`State::drop_placed` takes it out: job 70, done in the snapshot)
    /// cannot be taken out of the merge again: its page is read and built
    /// again, and the seal writes what it writes with no pre-built page,
    /// the stored row kept. Pages 0 and 2 (no change since) are taken as
    /// pre-built.
    #[test]
    fn a_prebuilt_page_whose_row_left_the_overlay_is_read_again() {
        let (mut l, prebuilt) = snapshot_built();
        assert!(l.st.table.take_resident(70).is_some(), "a changed row");

        let reads = l.page_reads();
        let over = touched_pages(&l.st, &*l.store, Some(prebuilt)).expect("the pages");
        let over_reads = l.page_reads() - reads;
        let over_pages = (over.pages, over.pages_read);
        let alone = touched_pages(&l.st, &*l.store, None).expect("the pages");
        assert_eq!((alone.pages, alone.pages_read), (3, 3));
        assert_eq!(writes(over), writes(alone));
        assert_eq!(over_reads, 1, "page 1 is read again");
        assert_eq!(over_pages, (1, 1));
    }

    /// `all_among` over ascending ids: every one must be found.
    #[test]
    fn all_among_finds_every_id_or_says_false() {
        let among = |ids: &[JobId], of: &[JobId]| all_among(ids, of.iter().copied());
        assert!(among(&[], &[]));
        assert!(among(&[], &[1, 2]));
        assert!(!among(&[1], &[]));
        assert!(!among(&[1, 5], &[2, 3, 5]), "the first missing");
        assert!(!among(&[1, 5], &[1, 3, 4]), "the last missing");
        assert!(!among(&[1, 5], &[1, 3, 6]), "the last passed over");
        assert!(among(&[2, 5, 9], &[1, 2, 3, 5, 7, 9, 11]), "interleaved");
        assert!(!among(&[2, 6, 9], &[1, 2, 3, 5, 7, 9, 11]), "one between");
        assert!(among(&[2, 5, 9], &[2, 5, 9]));
    }
}
