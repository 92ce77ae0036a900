//! One row page of a checkpoint merged: the stored page's records with
//! changed rows merged in, and what each changed row writes beside the
//! page. A merge can take more changes after it was first built (a
//! pre-built page whose rows changed again before the seal: "3.4 The
//! checkpoint off the state lock", "Session 17's cuts"): a row merged
//! twice ends as if merged once in its newest state, because everything
//! a row adds is worked out against the stored page, never against the
//! merge so far.

use std::collections::{BTreeMap, HashMap};

use super::{Image, StoredPage, STATES};
use crate::table::kind_index::{self, KindMasks};
use crate::table::kinds::KindId;
use crate::table::{convert, expiry, keys, row, slice_map, Job};
use crate::JobId;

/// A row page being built (`build_page` in one go; a pre-built page in
/// two: `merge` at the pre-build, `merge` again and `finish` at the seal).
pub(super) struct PageMerge {
    page: u64,
    had_page: bool,
    /// Each row's record, state byte and kind id.
    slots: BTreeMap<JobId, (Vec<u8>, u8, KindId)>,
    /// The stored page's kind masks and state masks.
    old_kinds: KindMasks,
    old_masks: [u64; STATES],
    /// (a stub, sliced, where it is filed for the sweep) of each stored row.
    old: HashMap<JobId, (bool, bool, Option<expiry::Filing>)>,
    /// What each changed row writes and deletes beside the page, by id:
    /// a row merged again replaces its entry.
    writes: BTreeMap<JobId, RowWrites>,
}

/// What one changed row writes beside its page's record.
#[derive(Default)]
struct RowWrites {
    /// Where it is filed for the sweep, when not where the stored row was.
    filed: Option<expiry::Filing>,
    /// Its whole record (`ROW_LARGE`) when too long for the page.
    large: Option<Vec<u8>>,
    /// Its slice map, when sliced.
    map: Option<Vec<u8>>,
    /// The stored row's `ROW_LARGE` and slice map, which it no longer has.
    delete_large: bool,
    delete_map: bool,
}

impl PageMerge {
    /// Page `page` as the store holds it (None: none stored, the page is
    /// written whole), with nothing merged yet.
    pub(super) fn over(page: u64, stored: Option<StoredPage>) -> PageMerge {
        let mut merge = PageMerge {
            page,
            had_page: stored.is_some(),
            slots: BTreeMap::new(),
            old_kinds: KindMasks::new(),
            old_masks: [0; STATES],
            old: HashMap::new(),
            writes: BTreeMap::new(),
        };
        if let Some(StoredPage { heads, records }) = stored {
            merge.old_kinds = kind_index::masks_of(heads.iter().map(|h| (h.id, h.state, h.kind)));
            for (h, record) in heads.into_iter().zip(records) {
                let slot = keys::page_of(h.id).1;
                merge.old_masks[usize::from(h.state)] |= 1 << slot;
                let filed = expiry::slot_of_head(&h);
                merge.old.insert(h.id, (h.stub(), h.sliced(), filed));
                merge.slots.insert(h.id, (record, h.state, h.kind));
            }
        }
        merge
    }

    /// Merges `changes` (None: the row went) in, ascending id; a row
    /// merged before is replaced.
    pub(super) fn merge(&mut self, changes: &[(JobId, Option<&Job>)]) {
        for &(id, job) in changes {
            self.slots.remove(&id);
            let (was_stub, was_sliced, was_filed) = self.old.get(&id).copied().unwrap_or_default();
            let mut w = RowWrites::default();
            if let Some(job) = job {
                w.filed = expiry::slot_of(job).filter(|at| Some(*at) != was_filed);
                let (row, map) = convert::row_of(job);
                let (inline, whole) = row::encode_for_page(&row);
                w.large = whole;
                w.map = map.map(|m| slice_map::encode(&m));
                self.slots.insert(id, (inline, row.state, row.kind));
            }
            w.delete_large = was_stub && w.large.is_none();
            w.delete_map = was_sliced && w.map.is_none();
            self.writes.insert(id, w);
        }
    }

    /// The page's writes into `out`: each changed row's large row, slice
    /// map and deletes (ascending id), the kind and state masks that
    /// changed, and the page's record (or its delete, emptied).
    pub(super) fn finish(self, out: &mut Image) {
        let page = self.page;
        for (id, w) in self.writes {
            if let Some(at) = w.filed {
                out.filed.add(at, id);
            }
            if let Some(whole) = w.large {
                out.puts.push((keys::row_large(id), vec![whole]));
            }
            if let Some(map) = w.map {
                out.puts.push((keys::slice_map(id), vec![map]));
            }
            if w.delete_large {
                out.deletes.push(keys::row_large(id));
            }
            if w.delete_map {
                out.deletes.push(keys::slice_map(id));
            }
        }
        let mut masks = [0u64; STATES];
        for (id, (_, state, _)) in &self.slots {
            masks[usize::from(*state)] |= 1 << keys::page_of(*id).1;
        }
        let kinds = kind_index::masks_of(self.slots.iter().map(|(id, (_, s, k))| (*id, *s, *k)));
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
        if self.slots.is_empty() {
            if self.had_page {
                out.deletes.push(keys::row_page(page));
            }
        } else {
            let records = self.slots.into_values().map(|(r, _, _)| r).collect();
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

    /// Slice `slice` of 10 records uploaded into sliced job `job`: its
    /// slice map changes.
    fn uploaded(job: JobId, slice: u64) -> Meta {
        Meta::Uploaded {
            job,
            slice,
            first_record: slice * 10 + 1,
            records: 10,
            rejects: 0,
            line_first: None,
            lines: None,
            numbers: None,
            reject_errors: Vec::new(),
        }
    }

    /// 200 queued jobs in a checkpoint's image (150 and 160 sliced);
    /// jobs 20 and 21 failed with a long reason (stubs) in it; jobs 1 to
    /// 130 but 20 and 21 done since (30 with a large result), 20 queued
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
        l.apply(&finished((1..=19).chain(22..=130), &[30], &[]))
            .unwrap();
        l.apply(&control(20, Control::Retry)).unwrap();
        l.apply(&uploaded(150, 0)).unwrap();
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
    /// changed only since (job 21), a sliced row whose map changed only
    /// since (job 160), rows done and created since (131 to 140, 201 to
    /// 210). Page 1 is taken as pre-built, pages 0 and 2 are merged again
    /// without a read, page 3 (no snapshot row) is read.
    #[test]
    fn a_page_merged_again_over_its_prebuilt_merge_is_the_page_the_seal_alone_builds() {
        let (mut l, prebuilt) = snapshot_built();
        l.apply(&control(5, Control::Destroy)).unwrap();
        l.apply(&control(150, Control::Destroy)).unwrap();
        l.apply(&uploaded(160, 0)).unwrap();
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
