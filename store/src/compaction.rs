//! Compaction: copy the live slices and the caller's meta snapshot into new
//! segments (fresh salts: this is also key rotation) and publish them as one
//! group: write `*.tmp`, fsync each, rename all, fsync the directory, then
//! retire the old segments. Recovery treats an incomplete group as never
//! written and a complete one as replacing every older segment.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::codec::{encode_frame_into, open_frame_body, reseal, PreparedFrame};
use crate::commit::WriterState;
use crate::crypto::TAG_LEN;
use crate::engine::Engine;
use crate::fs::FileLayer;
use crate::index::{FrameLoc, Index};
use crate::segment::footer::{Counters, FooterEntry, SortedSection, FOOTER_ENTRY_LEN};
use crate::segment::frame::FrameHeader;
use crate::segment::frame::{frame_len, FLAG_AES_GCM, FLAG_BATCH_END};
use crate::segment::header::{CompactionGroup, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::segment::reader::Segment;
use crate::segment::writer::create_segment;
use crate::segment::FrameKind;
use crate::segment::{segment_file_name, temp_file_name, MAX_SEGMENT_ID};
use crate::{Batch, CompactionPlan, CompactionReport, StoreError};

/// Output is written in chunks of this size, so memory stays flat.
const WRITE_CHUNK_BYTES: usize = 4 << 20;

/// A member written as `*.tmp`: its id, header, frames, and its sorted
/// run with the counters as of its seal.
type Written = (u64, SegmentHeader, Vec<FooterEntry>, SortedSection);

/// One frame of compaction output.
pub(crate) enum Item {
    /// A frame made now: the meta snapshot, or a tombstone.
    Prepared(PreparedFrame),
    /// A live frame copied from an old segment.
    Copy(FrameLoc),
}

/// Members written and opened, with their frames and sorted runs.
pub(crate) type Published<F> = Vec<(Arc<Segment<F>>, Vec<FooterEntry>, SortedSection)>;

/// Meta records per output frame are capped at this many raw bytes.
const META_FRAME_BYTES: usize = 1 << 20;

/// Splits the meta snapshot into runs of about `META_FRAME_BYTES`.
fn chunk_meta(records: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    let mut chunks: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut size = usize::MAX;
    for r in records {
        if size.saturating_add(r.len()) > META_FRAME_BYTES {
            chunks.push(Vec::new());
            size = 0;
        }
        size += r.len() + 4;
        chunks.last_mut().expect("pushed above").push(r);
    }
    chunks
}

/// Counts a frame compaction wrote (every one of them is live).
fn count_live(c: &mut Counters, h: &FrameHeader) {
    let len = h.frame_len();
    c.frames += 1;
    c.frame_bytes += len;
    c.live_bytes += len;
    c.raw_bytes += u64::from(h.raw_len);
    c.stored_bytes += u64::from(h.stored_len);
    match h.kind {
        FrameKind::Meta => c.meta_frames += 1,
        _ => c.slice_frames += 1,
    }
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::io(context, e)
}

impl<F: FileLayer> Engine<F> {
    pub(crate) fn compact(
        &self,
        plan: &dyn CompactionPlan,
    ) -> Result<CompactionReport, StoreError> {
        // Holding the writer lock keeps appends out until the swap is done,
        // and nothing is placed meanwhile: no place may survive in the
        // segment sealed here, and the output ids come before the next plan.
        let mut w = self.writer.lock();
        self.sequencer.pause(w.next_segment_id);
        let result = self.compact_locked(&mut w, plan);
        self.sequencer.resume(w.next_segment_id);
        result
    }

    pub(crate) fn compact_locked(
        &self,
        w: &mut WriterState<F>,
        plan: &dyn CompactionPlan,
    ) -> Result<CompactionReport, StoreError> {
        self.refuse_degraded()?;
        self.seal_active(w)?;
        let old: Vec<Arc<Segment<F>>> = self.segments.read().values().cloned().collect();
        let mut report = CompactionReport {
            segments_before: old.len(),
            bytes_before: old.iter().map(|s| s.len_bytes()).sum(),
            ..CompactionReport::default()
        };
        let mut items = self.meta_items(plan, false)?;
        // Tombstones are dropped: no older frame of their key survives.
        let live = self.index.read().live_slices()?;
        for loc in live {
            if plan.slice_is_live(&loc.header.key) {
                report.slices_kept += 1;
                items.push(Item::Copy(loc));
            } else {
                report.slices_dropped += 1;
            }
        }
        let published = self.write_and_publish(w, items, &BTreeSet::new(), Counters::default())?;
        let mut index = Index::new();
        let mut segments = BTreeMap::new();
        for (segment, entries, sorted) in published {
            index.add_sealed(&segment, &entries, Some(&sorted));
            segments.insert(segment.id, segment);
        }
        report.segments_after = segments.len();
        report.segments_rewritten = report.segments_before;
        report.bytes_after = segments.values().map(|s| s.len_bytes()).sum();
        let mut index_guard = self.index.write();
        let mut segments_guard = self.segments.write();
        for segment in segments_guard.values() {
            segment.retire();
        }
        *segments_guard = segments;
        *index_guard = index;
        Ok(report)
    }

    /// Compaction drops the damaged frames and with them the record that
    /// they were lost: a store opened without a damaged range refuses.
    pub(crate) fn refuse_degraded(&self) -> Result<(), StoreError> {
        match self.index.read().degraded {
            Some((segment_id, offset)) => Err(StoreError::Corrupt {
                segment_id,
                path: self.dir.join(segment_file_name(segment_id)),
                offset,
                what: "the store opened without a damaged range; restore the segment before compacting".into(),
            }),
            None => Ok(()),
        }
    }

    /// The plan's meta snapshot as frames of about `META_FRAME_BYTES`;
    /// with `checkpoint`, the first one flagged as a checkpoint, so that
    /// it restarts the meta log past every older meta frame.
    pub(crate) fn meta_items(
        &self,
        plan: &dyn CompactionPlan,
        checkpoint: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        for (i, chunk) in chunk_meta(plan.meta_snapshot()).into_iter().enumerate() {
            let mut records = chunk.into_iter();
            let batch = match records.next() {
                Some(first) if checkpoint && i == 0 => Batch::new().checkpoint(first),
                Some(first) => Batch::new().meta(first),
                None => Batch::new(),
            };
            let frames = records
                .fold(batch, Batch::meta)
                .prepare(self.opts.zstd_level)?;
            items.extend(frames.into_iter().map(Item::Prepared));
        }
        Ok(items)
    }

    /// Writes `items` as new segments from the next id on, their counters
    /// counting on from `base`, and publishes them with the segments in
    /// `keep` (the commit point); returns them opened. A failure before
    /// the commit point removes the output and poisons nothing; one after
    /// it poisons (G9).
    pub(crate) fn write_and_publish(
        &self,
        w: &mut WriterState<F>,
        items: Vec<Item>,
        keep: &BTreeSet<u64>,
        base: Counters,
    ) -> Result<Published<F>, StoreError> {
        let (members, needed_bytes) = self.split_into_members(items);
        self.check_free_space(needed_bytes)?;
        let bound = w.next_segment_id;
        if bound.saturating_add(members.len() as u64) > MAX_SEGMENT_ID + 1 {
            return Err(StoreError::Invalid(format!(
                "no segment ids are left after {MAX_SEGMENT_ID} for the compaction output"
            )));
        }
        // Reserve the output ids even if this attempt fails, so a later
        // segment never collides with a leftover member.
        w.next_segment_id = bound + members.len() as u64;
        let count = members.len() as u64;
        let written = match self.write_members(members, bound, base) {
            Ok(written) => written,
            Err(e) => {
                // Nothing is published yet: removing the output undoes it
                // all, and no file the store relies on was written.
                for id in bound..bound + count {
                    let _ = self.fs.remove(&self.dir.join(temp_file_name(id)));
                }
                return Err(match e {
                    StoreError::Io { source, .. } if crate::reserve::is_disk_full(&source) => {
                        StoreError::DiskFull {
                            path: self.dir.clone(),
                        }
                    }
                    e => e,
                });
            }
        };
        self.publish(written, bound, keep).inspect_err(|e| {
            // A failed rename or manifest write leaves the disk unknown (G9).
            self.poisoned.lock().get_or_insert_with(|| e.to_string());
        })
    }

    /// Refuses to start when the output would not fit on the disk.
    fn check_free_space(&self, needed_bytes: u64) -> Result<(), StoreError> {
        let needed_bytes = crate::reserve::with_headroom(needed_bytes);
        // The reserve exists so that a compaction can make room on a full
        // disk.
        let free_bytes =
            crate::reserve::free_with_reserve(&self.fs, &self.dir, needed_bytes).map_err(
                io_err(format!("reading the free space of {}", self.dir.display())),
            )?;
        if free_bytes < needed_bytes {
            return Err(StoreError::NoSpace {
                what: "compaction".into(),
                dir: self.dir.clone(),
                needed_bytes,
                free_bytes,
            });
        }
        Ok(())
    }

    /// Greedy split into output segments of about `segment_size_bytes`
    /// and at most `SEGMENT_FRAMES_MAX` frames;
    /// also returns the bytes the output will take on disk.
    fn split_into_members(&self, items: Vec<Item>) -> (Vec<Vec<Item>>, u64) {
        let tag = if self.opts.master_key.is_some() {
            TAG_LEN as u32
        } else {
            0
        };
        let mut members: Vec<Vec<Item>> = vec![Vec::new()];
        let mut size = 0u64;
        let mut total_bytes = 0u64;
        for item in items {
            let len = match &item {
                Item::Prepared(f) => frame_len(f.body.len() as u32 + tag),
                Item::Copy(loc) => {
                    let old_tag = if loc.header.flags & FLAG_AES_GCM != 0 {
                        TAG_LEN as u32
                    } else {
                        0
                    };
                    // stored_len >= the tag for an encrypted frame (decoder-checked).
                    frame_len(loc.header.stored_len.saturating_sub(old_tag) + tag)
                }
            };
            let frames = members.last().map_or(0, Vec::len) as u64;
            if size > 0
                && (size + len > self.opts.segment_size_bytes
                    || frames >= crate::segment::SEGMENT_FRAMES_MAX)
            {
                members.push(Vec::new());
                size = 0;
            }
            size += len;
            total_bytes += len + FOOTER_ENTRY_LEN as u64;
            members.last_mut().expect("never empty").push(item);
        }
        // Per member: the header and the rest of the seal footer.
        total_bytes += members.len() as u64 * (SEGMENT_HEADER_LEN as u64 + 64);
        (members, total_bytes)
    }

    /// Writes and syncs every member as `*.tmp`; nothing is published.
    fn write_members(
        &self,
        members: Vec<Vec<Item>>,
        bound: u64,
        base: Counters,
    ) -> Result<Vec<Written>, StoreError> {
        let mut group_id = [0u8; 8];
        getrandom::getrandom(&mut group_id)
            .map_err(|e| StoreError::Invalid(format!("random source failed: {e}")))?;
        let group_id = u64::from_le_bytes(group_id) | 1;
        let count = members.len() as u32;
        let mut written = Vec::with_capacity(members.len());
        // Every frame written is live: the counters count on from what
        // stays of the store (nothing, in a full compaction).
        let mut counters = base;
        for (i, items) in members.into_iter().enumerate() {
            let group = CompactionGroup {
                group_id,
                member_index: i as u32,
                member_count: count,
                replaces_below: bound,
            };
            let id = bound + i as u64;
            let mut out = create_segment(
                &self.fs,
                &self.dir,
                id,
                self.opts.master_key.as_ref(),
                group,
            )
            .map_err(io_err(format!("creating compaction output {id}")))?;
            let ctx = format!("writing {}", out.segment.path.display());
            let mut buf = Vec::new();
            for item in items {
                let frame = match item {
                    Item::Prepared(f) => f,
                    Item::Copy(loc) => self.read_frame_body(&loc)?,
                };
                let offset = out.end_offset + buf.len() as u64;
                let header = encode_frame_into(
                    &mut buf,
                    id,
                    out.segment.cipher.as_ref(),
                    out.next_seq,
                    FLAG_BATCH_END,
                    &frame,
                );
                out.next_seq += 1;
                out.entries.push(FooterEntry { offset, header });
                count_live(&mut counters, &header);
                if buf.len() >= WRITE_CHUNK_BYTES {
                    out.write_unsynced(&buf).map_err(io_err(ctx.clone()))?;
                    buf.clear();
                }
            }
            out.write_unsynced(&buf).map_err(io_err(ctx.clone()))?;
            let sealed = out.seal(&counters).map_err(io_err(ctx))?;
            let sorted = SortedSection {
                offset: sealed.offset,
                entries: sealed.run,
                counters,
            };
            written.push((id, out.segment.header, out.entries, sorted));
        }
        Ok(written)
    }

    /// Renames every member into place and lists them in the manifest with
    /// the segments in `keep` (the commit point); returns them sealed and
    /// opened, with their frames.
    fn publish(
        &self,
        written: Vec<Written>,
        bound: u64,
        keep: &BTreeSet<u64>,
    ) -> Result<Published<F>, StoreError> {
        for (id, _, _, _) in &written {
            let from = self.dir.join(temp_file_name(*id));
            let to = self.dir.join(segment_file_name(*id));
            self.fs
                .rename(&from, &to)
                .map_err(io_err(format!("publishing {}", to.display())))?;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(io_err(format!("syncing {}", self.dir.display())))?;
        // The commit point: the manifest names the members instead of the
        // old segments. Before it, recovery deletes the members as an
        // unpublished group; after it, the old segments as replaced.
        // Members have the highest ids: the list stays ascending.
        let ids: Vec<u64> = (keep.iter().copied())
            .chain(written.iter().map(|(id, _, _, _)| *id))
            .collect();
        self.publish_manifest(|m| {
            m.segments = ids;
            m.plaintext.retain(|id| keep.contains(id));
            m.compacted_below = bound;
        })
        .map_err(io_err(format!(
            "publishing the compaction in {}",
            self.dir.join(crate::manifest::MANIFEST_FILE_NAME).display()
        )))?;
        let mut published = Vec::with_capacity(written.len());
        for (id, header, entries, sorted) in written {
            let path = self.dir.join(segment_file_name(id));
            let file = self
                .fs
                .open(&path)
                .map_err(io_err(format!("opening {}", path.display())))?;
            let cipher = self
                .opts
                .master_key
                .as_ref()
                .map(|k| k.segment_cipher(&header.salt, id));
            let segment = Segment::new(self.fs.clone(), path, header, cipher, file);
            segment
                .mark_sealed()
                .map_err(io_err(format!("mapping segment {id}")))?;
            published.push((Arc::new(segment), entries, sorted));
        }
        Ok(published)
    }

    /// A live frame, authenticated and decrypted but still compressed.
    fn read_frame_body(&self, loc: &FrameLoc) -> Result<PreparedFrame, StoreError> {
        let segment = self
            .segment(loc.segment_id)
            .ok_or_else(|| StoreError::Invalid(format!("segment {} is missing", loc.segment_id)))?;
        let corrupt = |what: String| StoreError::Corrupt {
            segment_id: segment.id,
            path: segment.path.clone(),
            offset: loc.offset,
            what,
        };
        let bytes = segment
            .read(loc.offset, loc.header.frame_len())
            .map_err(|e| corrupt(format!("frame unreadable: {e}")))?;
        let opened = open_frame_body(&bytes, segment.id, segment.cipher.as_ref())
            .map(|(header, body)| reseal(&header, body.into_owned()));
        drop(bytes);
        segment.release(loc.offset, loc.header.frame_len());
        opened.map_err(|e| corrupt(e.0))
    }
}
