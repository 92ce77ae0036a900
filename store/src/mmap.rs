//! Memory maps of sealed segments. The only module with `unsafe`.

use std::fs::File;
use std::io;

/// The most a page fault maps at once: the kernel maps the pages around
/// the one touched too (fault-around) and a whole large folio of the page
/// cache, up to a PMD (2 MiB). Measured with `examples/index_bench`:
/// releasing only the bytes read left 50 MB of a 112 MB store mapped after
/// 100 000 random reads; releasing the aligned 2 MiB window leaves none.
const FAULT_WINDOW_BYTES: usize = 2 << 20;

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
        let Some(end) = offset.checked_add(len).filter(|end| *end <= map.len()) else {
            return;
        };
        if len == 0 {
            return;
        }
        // A fault maps more than the bytes read (FAULT_WINDOW_BYTES), so
        // release the whole aligned window around them: releasing only the
        // bytes read leaves their neighbours mapped, and random reads map
        // the whole file over time. The window is aligned in the address
        // space, not in the file.
        let base = map.as_ptr() as usize;
        let offset = (base + offset) / FAULT_WINDOW_BYTES * FAULT_WINDOW_BYTES;
        let offset = offset.saturating_sub(base);
        let end = (base + end)
            .checked_next_multiple_of(FAULT_WINDOW_BYTES)
            .map_or(end, |e| e - base)
            .min(map.len());
        let len = end - offset;
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
