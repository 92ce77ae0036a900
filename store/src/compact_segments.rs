//! Segment-by-segment compaction: rewrite only the segments whose dead
//! share passes a threshold (the victims), keep the rest as they are, and
//! publish by manifest. Its cost follows what it reclaims, not the whole
//! store. Protocol in ARCHITECTURE.md, "Segment-by-segment compaction".

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::commit::WriterState;
use crate::compaction::Item;
use crate::engine::Engine;
use crate::fs::FileLayer;
use crate::segment::footer::{footer_offset_from_tail, Counters, FOOTER_TAIL_LEN};
use crate::segment::frame::{frame_len, FrameHeader, FrameKind};
use crate::segment::header::SEGMENT_HEADER_LEN;
use crate::segment::reader::Segment;
use crate::segment::scan::read_sealed_entries;
use crate::{Batch, CompactionPlan, CompactionReport, SegmentUsage, SliceKey, StoreError};

/// What the walk over the live keys found in the victims.
#[derive(Default)]
struct VictimFrames {
    /// Newest frames the output keeps: the plan's live slices, and the
    /// tombstones that still hide an older frame in a kept segment.
    copies: Vec<Item>,
    /// Keys the plan drops whose older frame a kept segment holds: the
    /// output gets a tombstone for each.
    deletes: Vec<SliceKey>,
    /// Bytes of the victims' frames the counters call live (the newest of
    /// each key, tombstones and dropped slices included).
    live_bytes: u64,
    kept: u64,
    dropped: u64,
}

/// Takes `h`'s frame out of `c`, the store-wide counters.
fn uncount(c: &mut Counters, h: &FrameHeader) {
    c.frames -= 1;
    c.frame_bytes -= h.frame_len();
    c.raw_bytes -= u64::from(h.raw_len);
    c.stored_bytes -= u64::from(h.stored_len);
    match h.kind {
        FrameKind::Meta => c.meta_frames -= 1,
        _ => c.slice_frames -= 1,
    }
}

/// The bytes of a sealed segment's frames: from its header to its seal
/// footer, located by the file's last bytes; 0 when it has none.
fn frame_bytes<F: FileLayer>(segment: &Segment<F>) -> u64 {
    let len = segment.len_bytes();
    let Some(at) = len.checked_sub(FOOTER_TAIL_LEN as u64) else {
        return 0;
    };
    let footer = match segment.read(at, FOOTER_TAIL_LEN as u64) {
        Ok(tail) => footer_offset_from_tail(&tail).ok(),
        Err(_) => None,
    };
    segment.release(at, FOOTER_TAIL_LEN as u64);
    match footer {
        Some(offset) if offset <= at => offset.saturating_sub(SEGMENT_HEADER_LEN as u64),
        _ => 0,
    }
}

impl<F: FileLayer> Engine<F> {
    pub(crate) fn compact_segments(
        &self,
        plan: &dyn CompactionPlan,
        min_dead_share: f64,
    ) -> Result<CompactionReport, StoreError> {
        // As `compact`: the writer lock keeps appends out until the swap.
        let mut w = self.writer.lock();
        self.sequencer.pause(w.next_segment_id);
        let result = self.compact_segments_locked(&mut w, plan, min_dead_share);
        self.sequencer.resume(w.next_segment_id);
        result
    }

    fn compact_segments_locked(
        &self,
        w: &mut WriterState<F>,
        plan: &dyn CompactionPlan,
        min_dead_share: f64,
    ) -> Result<CompactionReport, StoreError> {
        self.refuse_degraded()?;
        let meta = self.meta_items(plan, true)?;
        if meta.is_empty() {
            // Without a checkpoint in the output, the meta frames of kept
            // segments from before the store's checkpoint would replay
            // again: only a full compaction removes every one of them.
            drop(meta);
            return self.compact_locked(w, plan);
        }
        self.seal_active(w)?;
        let old: BTreeMap<u64, Arc<Segment<F>>> = self.segments.read().clone();
        let mut report = CompactionReport {
            segments_before: old.len(),
            bytes_before: old.values().map(|s| s.len_bytes()).sum(),
            ..CompactionReport::default()
        };
        let (victims, victim_frames) = self.choose_victims(&old, plan, min_dead_share)?;
        if victims.is_empty() {
            report.segments_after = report.segments_before;
            report.bytes_after = report.bytes_before;
            return Ok(report);
        }
        let found = self.victim_frames(plan, &victims)?;
        report.slices_kept = found.kept;
        report.slices_dropped = found.dropped;
        report.segments_rewritten = victims.len();

        // The counters of what stays: the victims' frames leave, and the
        // meta log's frames die (the snapshot's checkpoint replaces them).
        let mut base = self.index.read().counters();
        for h in &victim_frames {
            uncount(&mut base, h);
        }
        let log_meta_bytes: u64 = (self.index.read().meta.iter())
            .map(|m| frame_len(m.stored_len))
            .sum();
        base.live_bytes -= found.live_bytes + log_meta_bytes;

        let mut items = meta;
        items.extend(found.copies);
        let tombstones = (found.deletes.into_iter())
            .fold(Batch::new(), Batch::delete)
            .prepare(self.opts.zstd_level)?;
        items.extend(tombstones.into_iter().map(Item::Prepared));
        let keep: BTreeSet<u64> = (old.keys().copied())
            .filter(|id| !victims.contains(id))
            .collect();
        let published = self.write_and_publish(w, items, &keep, base)?;

        let mut index = self.index.write();
        let mut segments = self.segments.write();
        index.remove_sources(&victims);
        for id in &victims {
            if let Some(segment) = segments.remove(id) {
                segment.retire();
            }
        }
        for (segment, entries, sorted) in published {
            // The first meta frame is a checkpoint: the old log restarts.
            index.add_sealed(&segment, &entries, Some(&sorted));
            segments.insert(segment.id, segment);
        }
        debug_assert!(index.meta.iter().all(|m| !keep.contains(&m.segment_id)));
        report.segments_after = segments.len();
        report.bytes_after = segments.values().map(|s| s.len_bytes()).sum();
        Ok(report)
    }

    /// Each segment's file, frame and live bytes under `plan`, in id order
    /// (`Store::segment_usage`): one walk over the live keys, and the last
    /// bytes of each file, which locate its seal footer.
    pub(crate) fn segment_usage(
        &self,
        plan: &dyn CompactionPlan,
    ) -> Result<Vec<SegmentUsage>, StoreError> {
        // Index, then segments: compaction's swap takes them in this order.
        let index = self.index.read();
        let live = index.live_bytes_by_segment(plan)?;
        let segments = self.segments.read();
        Ok(segments
            .values()
            .map(|s| SegmentUsage {
                segment_id: s.id,
                file_bytes: s.len_bytes(),
                frame_bytes: frame_bytes(s),
                live_bytes: live.get(&s.id).copied().unwrap_or(0),
            })
            .collect())
    }

    /// The sealed segments at or past `min_dead_share`, and every frame of
    /// theirs (from their seal footers; a segment whose footer cannot be
    /// read is kept as it is).
    fn choose_victims(
        &self,
        segments: &BTreeMap<u64, Arc<Segment<F>>>,
        plan: &dyn CompactionPlan,
        min_dead_share: f64,
    ) -> Result<(BTreeSet<u64>, Vec<FrameHeader>), StoreError> {
        let mut victims = BTreeSet::new();
        let mut frames = Vec::new();
        for usage in self.segment_usage(plan)? {
            if usage.dead_share() < min_dead_share {
                continue;
            }
            let Some(segment) = segments.get(&usage.segment_id) else {
                continue;
            };
            let len = segment.len_bytes();
            let entries = match segment.read(0, len) {
                Ok(bytes) => read_sealed_entries(&bytes).ok(),
                Err(_) => None,
            };
            segment.release(0, len);
            if let Some(entries) = entries {
                victims.insert(segment.id);
                frames.extend(entries.into_iter().map(|e| e.header));
            }
        }
        Ok((victims, frames))
    }

    /// One walk over the live keys: the victims' newest frames, what to
    /// copy, and which keys need a tombstone.
    fn victim_frames(
        &self,
        plan: &dyn CompactionPlan,
        victims: &BTreeSet<u64>,
    ) -> Result<VictimFrames, StoreError> {
        let index = self.index.read();
        let mut found = VictimFrames::default();
        let mut first_error = None;
        index.merge_all(|loc| {
            if !victims.contains(&loc.segment_id) || index.hidden(&loc) {
                return true;
            }
            found.live_bytes += loc.header.frame_len();
            let key = loc.header.key;
            let keeps = !loc.header.is_tombstone() && plan.slice_is_live(&key);
            if keeps {
                found.kept += 1;
                found.copies.push(Item::Copy(loc));
                return true;
            }
            if !loc.header.is_tombstone() {
                found.dropped += 1;
            }
            // An older frame in a kept segment would come back without a
            // tombstone above it.
            match index.held_outside(&key, victims) {
                Ok(false) => {}
                Ok(true) if loc.header.is_tombstone() => found.copies.push(Item::Copy(loc)),
                Ok(true) => found.deletes.push(key),
                Err(e) => {
                    first_error = Some(e);
                    return false;
                }
            }
            true
        })?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }
}
