//! Memory maps of sealed segments. The only module with `unsafe`.

use std::fs::File;
use std::io;

/// A read-only map of a whole sealed segment file.
pub struct SegmentMap {
    // None for an empty file, which cannot be mapped.
    map: Option<memmap2::Mmap>,
}

impl SegmentMap {
    pub(crate) fn new(file: &File) -> io::Result<SegmentMap> {
        if file.metadata()?.len() == 0 {
            return Ok(SegmentMap { map: None });
        }
        // SAFETY: the store maps only sealed segments, which are never
        // written, truncated or renamed over while the store runs; the data
        // directory lock keeps other booster processes out; and a segment is
        // unlinked only after the last `Arc<Segment>` (and so this map) is
        // dropped. A process outside booster modifying the file is outside
        // the model (it would be bit rot, which the CRCs and tags report).
        let map = unsafe { memmap2::Mmap::map(file)? };
        Ok(SegmentMap { map: Some(map) })
    }
}

impl SegmentMap {
    /// Drops the pages of `offset..offset + len` from this process's
    /// resident set (they stay in the page cache), so reading a large store
    /// through maps does not grow RSS. Best effort.
    pub(crate) fn release(&self, offset: usize, len: usize) {
        let Some(map) = &self.map else { return };
        if len == 0 || offset.checked_add(len).is_none_or(|end| end > map.len()) {
            return;
        }
        // SAFETY: the map is read-only and shared (PROT_READ, MAP_SHARED) over
        // a sealed file that is never modified while mapped. MADV_DONTNEED on
        // such pages only unmaps them from the page tables: the next access
        // faults in the same bytes from the page cache or the file, so any
        // live borrow of these bytes keeps reading the same values.
        let _ =
            unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
    }
}

impl std::ops::Deref for SegmentMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
