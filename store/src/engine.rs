//! The state shared by the `Store` handle and its writer thread: segments,
//! index, poison flag, and the read paths.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::codec::open_frame;
use crate::commit::WriterState;
use crate::fs::FileLayer;
use crate::index::{FrameLoc, Index};
use crate::segment::reader::Segment;
use crate::{SliceKey, StoreError, StoreOptions};

pub(crate) struct Engine<F: FileLayer> {
    pub fs: F,
    pub dir: PathBuf,
    pub opts: StoreOptions,
    pub segments: RwLock<BTreeMap<u64, Arc<Segment<F>>>>,
    pub index: RwLock<Index>,
    /// Set after a failed write or sync (G9); the cause, for the error.
    pub poisoned: Mutex<Option<String>>,
    pub writer: Mutex<WriterState<F>>,
}

impl<F: FileLayer> Engine<F> {
    pub fn poison_error(&self) -> Option<StoreError> {
        self.poisoned
            .lock()
            .as_ref()
            .map(|cause| StoreError::Poisoned {
                cause: cause.clone(),
            })
    }

    pub fn segment(&self, id: u64) -> Option<Arc<Segment<F>>> {
        self.segments.read().get(&id).cloned()
    }

    /// The slice's frame location and raw payload. Retries when compaction
    /// swapped the segments between the index lookup and the read.
    pub fn read_slice_raw(
        &self,
        key: &SliceKey,
    ) -> Result<Option<(FrameLoc, Vec<u8>)>, StoreError> {
        loop {
            let Some(loc) = self.index.read().get(key) else {
                return Ok(None);
            };
            if let Some(raw) = self.read_frame(&loc)? {
                return Ok(Some((loc, raw)));
            }
        }
    }

    /// Every meta record's raw payload in commit order.
    pub fn read_meta(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        'retry: loop {
            let locs = self.index.read().meta.clone();
            let mut out = Vec::with_capacity(locs.len());
            for loc in &locs {
                match self.read_frame(loc)? {
                    Some(raw) => out.push(raw),
                    None => continue 'retry,
                }
            }
            return Ok(out);
        }
    }

    /// Reads, checks, decrypts and decompresses the frame at `loc`; None when
    /// its segment was compacted away meanwhile.
    fn read_frame(&self, loc: &FrameLoc) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(segment) = self.segment(loc.segment_id) else {
            return Ok(None);
        };
        let corrupt = |what: String| StoreError::Corrupt {
            segment_id: segment.id,
            path: segment.path.clone(),
            offset: loc.offset,
            what,
        };
        let bytes = segment
            .read(loc.offset, loc.header.frame_len())
            .map_err(|e| corrupt(format!("frame unreadable: {e}")))?;
        let (header, raw) =
            open_frame(&bytes, segment.id, segment.cipher.as_ref()).map_err(|e| corrupt(e.0))?;
        if header != loc.header {
            return Err(corrupt("frame header differs from the index".into()));
        }
        Ok(Some(raw))
    }
}
