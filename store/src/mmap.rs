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

impl std::ops::Deref for SegmentMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
