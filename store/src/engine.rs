//! The state shared by the `Store` handle and its writer thread: segments,
//! index, poison flag, and the read paths.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::batch::Room;
use crate::codec::{decode_records, open_frame, open_frame_body, PreparedFrame};
use crate::commit::{QueueBudget, WriterState};
use crate::crypto::SegmentCipher;
use crate::fs::FileLayer;
use crate::index::{FrameLoc, Index, Lookup};
use crate::manifest::{write_manifest, Manifest, Watermark, MANIFEST_FILE_NAME};
use crate::reserve::{free_with_reserve, room_needed};
use crate::segment::footer::seal_footer_bound;
use crate::segment::frame::{frame_len, FrameHeader, FrameKind};
use crate::segment::reader::Segment;
use crate::segment::segment_file_name;
use crate::{Damage, FormatError, MasterKey, SliceKey, StoreError, StoreOptions};

pub(crate) struct Engine<F: FileLayer> {
    pub fs: F,
    pub dir: PathBuf,
    pub opts: StoreOptions,
    pub segments: RwLock<BTreeMap<u64, Arc<Segment<F>>>>,
    pub index: RwLock<Index<F>>,
    /// Set after a failed write or sync (G9); the cause, for the error.
    pub poisoned: Mutex<Option<String>>,
    pub writer: Mutex<WriterState<F>>,
    pub budget: QueueBudget,
    pub sequencer: crate::sequencer::Sequencer,
    /// The manifest as on disk; its lock orders manifest writes (taken
    /// after `writer` when both are held).
    pub manifest: Mutex<Manifest>,
    /// End of the last acknowledged batch (advanced after its fsync).
    pub acked: Mutex<Watermark>,
    /// Frames in the active segment (0: none), whose seal footer a batch
    /// that waits for room makes room for (`room_for`).
    pub active_frames: AtomicUsize,
}

impl<F: FileLayer> Engine<F> {
    /// Rewrites the manifest with `change` applied and the current
    /// watermark. On error the caller poisons the store (G9).
    pub fn publish_manifest(&self, change: impl FnOnce(&mut Manifest)) -> std::io::Result<()> {
        let mut current = self.manifest.lock();
        let mut next = current.clone();
        change(&mut next);
        let acked = *self.acked.lock();
        if next.lists(acked.segment_id) {
            next.watermark = acked;
        } else if !next.lists(next.watermark.segment_id) {
            next.watermark = Watermark::default();
        }
        let key = self.opts.master_key.as_ref();
        next.key_id = key.map_or(0, MasterKey::key_id);
        if next.same_content(&current) {
            return Ok(());
        }
        next.generation = current.generation.wrapping_add(1);
        write_manifest(&self.fs, &self.dir, &next, key)?;
        *current = next;
        Ok(())
    }

    /// Records the watermark when it moved (the periodic writer, close).
    pub fn record_watermark(&self) -> Result<(), StoreError> {
        if let Some(e) = self.poison_error() {
            return Err(e);
        }
        self.publish_manifest(|_| {}).map_err(|e| {
            let cause = format!(
                "{}writing {}: {e}",
                if crate::reserve::is_disk_full(&e) {
                    crate::error::DISK_FULL_CAUSE
                } else {
                    ""
                },
                self.dir.join(MANIFEST_FILE_NAME).display()
            );
            self.poisoned.lock().get_or_insert(cause.clone());
            StoreError::Poisoned { cause }
        })
    }

    /// Refuses `frames` (a batch that waits for room, `Batch::needs_room`,
    /// named `what`) with `NoSpace` when the disk lacks the room
    /// `reserve::room_needed` asks for, before anything of it is placed;
    /// the batch a compaction starts with may take the reserve first.
    /// Free space that cannot be read refuses nothing: the write then
    /// finds out, as any other's does.
    pub fn room_for(
        &self,
        what: String,
        room: Room,
        frames: &[PreparedFrame],
    ) -> Result<(), StoreError> {
        let tag = if self.opts.master_key.is_some() {
            crate::crypto::TAG_LEN as u32
        } else {
            0
        };
        let batch_bytes: u64 = frames
            .iter()
            .map(|f| frame_len(f.body.len() as u32 + tag))
            .sum();
        // The seal the batch may trigger (a group that crosses the
        // segment's size seals it) or that closing will: the footer of
        // every frame in the active segment, the queued ones (at most one
        // per smallest frame's bytes) and the batch's own, however few
        // bytes the batch is (a 32 MiB segment of small frames seals
        // with over 10 MB).
        let queued_bytes = self.budget.queued() as u64;
        let seal_frames = self.active_frames.load(Ordering::Acquire)
            + (queued_bytes / frame_len(0)) as usize
            + frames.len();
        let seal_bytes = seal_footer_bound(seal_frames);
        let needed_bytes = room_needed(batch_bytes, seal_bytes, queued_bytes, room);
        let free_bytes = match room {
            Room::BesideCommits => self.fs.free_bytes(&self.dir),
            Room::BeforeCompaction => free_with_reserve(&self.fs, &self.dir, needed_bytes),
        };
        match free_bytes {
            Ok(free_bytes) if free_bytes < needed_bytes => Err(StoreError::NoSpace {
                what,
                dir: self.dir.clone(),
                needed_bytes,
                free_bytes,
            }),
            _ => Ok(()),
        }
    }

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
        self.read_slice_with(key, open_frame)
    }

    /// The slice's frame location and body authenticated and decrypted,
    /// still compressed (what the fleet's wire carries).
    pub fn read_slice_body(
        &self,
        key: &SliceKey,
    ) -> Result<Option<(FrameLoc, Vec<u8>)>, StoreError> {
        self.read_slice_with(key, |bytes, id, cipher| {
            open_frame_body(bytes, id, cipher).map(|(h, body)| (h, body.into_owned()))
        })
    }

    /// `read_slice_raw` with the frame opened by `open`.
    fn read_slice_with(
        &self,
        key: &SliceKey,
        open: impl Fn(&[u8], u64, Option<&SegmentCipher>) -> Result<(FrameHeader, Vec<u8>), FormatError>,
    ) -> Result<Option<(FrameLoc, Vec<u8>)>, StoreError> {
        loop {
            let found = self.index.read().lookup(key)?;
            let loc = match found {
                Lookup::Found(loc) if !loc.header.is_tombstone() => loc,
                Lookup::Found(_) | Lookup::Absent => return Ok(None),
                Lookup::Damaged(segment_id, offset) => {
                    return Err(StoreError::Corrupt {
                        segment_id,
                        path: self.dir.join(segment_file_name(segment_id)),
                        offset,
                        what: format!(
                            "slice {key:?} lay in a damaged range the store opened without; restore the segment from a backup"
                        ),
                    })
                }
                Lookup::MaybeLost(segment_id, offset) => {
                    return Err(StoreError::Corrupt {
                        segment_id,
                        path: self.dir.join(segment_file_name(segment_id)),
                        offset,
                        what: format!(
                            "slice {key:?} is not in the store, which lost frames it cannot name there: it may have been among them; restore the segment from a backup"
                        ),
                    })
                }
            };
            let expected = |h: &FrameHeader| *h == loc.header;
            let read = self.read_frame_with(
                loc.segment_id,
                loc.offset,
                loc.header.stored_len,
                expected,
                &open,
            )?;
            if let Some(raw) = read {
                return Ok(Some((loc, raw)));
            }
        }
    }

    /// Every meta record in commit order.
    pub fn read_meta(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read_meta_with(false).map(|(records, _)| records)
    }

    /// Every meta record in commit order; with `skip_damaged`, a meta frame
    /// that fails its checks is left out and returned as a `Damage` instead
    /// of failing the whole read.
    pub fn read_meta_with(
        &self,
        skip_damaged: bool,
    ) -> Result<(Vec<Vec<u8>>, Vec<Damage>), StoreError> {
        'retry: loop {
            let locs = self.index.read().meta.clone();
            let mut out = Vec::new();
            let mut damaged = Vec::new();
            for loc in &locs {
                let expected = |h: &FrameHeader| {
                    h.kind == FrameKind::Meta && h.record_count == loc.record_count
                };
                let records = self
                    .read_frame(loc.segment_id, loc.offset, loc.stored_len, expected)
                    .and_then(|raw| {
                        raw.map(|raw| {
                            decode_records(&raw, loc.record_count).map_err(|e| {
                                StoreError::Corrupt {
                                    segment_id: loc.segment_id,
                                    path: self.dir.join(segment_file_name(loc.segment_id)),
                                    offset: loc.offset,
                                    what: e.0,
                                }
                            })
                        })
                        .transpose()
                    });
                match records {
                    Ok(Some(records)) => out.extend(records),
                    Ok(None) => continue 'retry,
                    Err(StoreError::Corrupt {
                        segment_id,
                        path,
                        offset,
                        what,
                    }) if skip_damaged => damaged.push(Damage {
                        segment_id,
                        path,
                        offset,
                        end: offset.saturating_add(frame_len(loc.stored_len)),
                        what,
                        slices: Vec::new(),
                        meta_lost: true,
                        identified: true,
                    }),
                    Err(e) => return Err(e),
                }
            }
            return Ok((out, damaged));
        }
    }

    /// Reads, checks, decrypts and decompresses one frame; None when its
    /// segment was compacted away meanwhile. `expected` checks the header
    /// against the index.
    fn read_frame(
        &self,
        segment_id: u64,
        offset: u64,
        stored_len: u32,
        expected: impl Fn(&FrameHeader) -> bool,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_frame_with(segment_id, offset, stored_len, expected, &open_frame)
    }

    /// `read_frame` with the frame opened by `open` (decompressed or not).
    fn read_frame_with(
        &self,
        segment_id: u64,
        offset: u64,
        stored_len: u32,
        expected: impl Fn(&FrameHeader) -> bool,
        open: &impl Fn(
            &[u8],
            u64,
            Option<&SegmentCipher>,
        ) -> Result<(FrameHeader, Vec<u8>), FormatError>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(segment) = self.segment(segment_id) else {
            return Ok(None);
        };
        let corrupt = |what: String| StoreError::Corrupt {
            segment_id: segment.id,
            path: segment.path.clone(),
            offset,
            what,
        };
        let bytes = segment
            .read(offset, frame_len(stored_len))
            .map_err(|e| corrupt(format!("frame unreadable: {e}")))?;
        let opened = open(&bytes, segment.id, segment.cipher.as_ref());
        drop(bytes);
        segment.release(offset, frame_len(stored_len));
        let (header, raw) = opened.map_err(|e| corrupt(e.0))?;
        if !expected(&header) {
            return Err(corrupt("frame header differs from the index".into()));
        }
        Ok(Some(raw))
    }
}
