//! The in-memory index: `SliceKey -> FrameLoc` and the meta records in commit
//! order, plus the byte counts behind `StoreStats`. Rebuilt on open from
//! seal footers (the checkpoint) and a scan of an unsealed last segment.

use std::collections::BTreeMap;

use crate::segment::frame::FrameHeader;
use crate::segment::FrameKind;
use crate::{CompactionPlan, SliceInfo, SliceKey, StoreStats};

/// Where a frame lives, and its header (enough to answer without reading it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameLoc {
    pub segment_id: u64,
    pub offset: u64,
    pub header: FrameHeader,
}

/// Where a meta frame lives: kept small, since a store may hold many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MetaLoc {
    pub segment_id: u64,
    pub offset: u64,
    pub stored_len: u32,
    pub record_count: u32,
}

#[derive(Default)]
pub(crate) struct Index {
    pub slices: BTreeMap<SliceKey, FrameLoc>,
    pub meta: Vec<MetaLoc>,
    /// Slices whose newest frame lies in a damaged range: (segment, offset).
    pub damaged: BTreeMap<SliceKey, (u64, u64)>,
    /// The store opened without a damaged range: (segment, offset) of the first.
    pub degraded: Option<(u64, u64)>,
    frames: u64,
    slice_frames: u64,
    meta_frames: u64,
    frame_bytes: u64,
    live_bytes: u64,
    raw_bytes: u64,
    stored_bytes: u64,
}

impl Index {
    /// Adds a durable data frame; a slice replaces any older one of its key.
    pub fn add(&mut self, loc: FrameLoc) {
        let h = &loc.header;
        let len = h.frame_len();
        self.frames += 1;
        self.frame_bytes += len;
        self.live_bytes += len;
        self.raw_bytes += u64::from(h.raw_len);
        self.stored_bytes += u64::from(h.stored_len);
        match h.kind {
            FrameKind::Slice => {
                self.slice_frames += 1;
                self.damaged.remove(&h.key);
                if let Some(old) = self.slices.insert(h.key, loc) {
                    self.live_bytes -= old.header.frame_len();
                }
            }
            FrameKind::Meta => {
                self.meta_frames += 1;
                self.meta.push(MetaLoc {
                    segment_id: loc.segment_id,
                    offset: loc.offset,
                    stored_len: h.stored_len,
                    record_count: h.record_count,
                });
            }
            FrameKind::SealFooter => {
                debug_assert!(false, "footers are not indexed");
            }
        }
    }

    /// The newest frame of `key` is damaged: an older one must not be read.
    pub fn mark_damaged(&mut self, key: SliceKey, segment_id: u64, offset: u64) {
        if let Some(old) = self.slices.remove(&key) {
            self.live_bytes -= old.header.frame_len();
        }
        self.damaged.insert(key, (segment_id, offset));
    }

    pub fn get(&self, key: &SliceKey) -> Option<FrameLoc> {
        self.slices.get(key).copied()
    }

    pub fn slices_of(&self, owner: u64, stream: u32) -> Vec<SliceInfo> {
        let lo = SliceKey {
            owner,
            stream,
            seq: 0,
        };
        let hi = SliceKey {
            owner,
            stream,
            seq: u64::MAX,
        };
        self.slices
            .range(lo..=hi)
            .map(|(key, loc)| SliceInfo {
                key: *key,
                record_count: loc.header.record_count,
                raw_len: loc.header.raw_len,
                stored_len: loc.header.stored_len,
            })
            .collect()
    }

    /// As [`Index::stats`], with the slices `plan` drops counted as dead:
    /// what a compaction with that plan would reclaim.
    pub fn stats_with(&self, segments: usize, plan: &dyn CompactionPlan) -> StoreStats {
        let dropped: u64 = self
            .slices
            .iter()
            .filter(|(key, _)| !plan.slice_is_live(key))
            .map(|(_, loc)| loc.header.frame_len())
            .sum();
        let mut stats = self.stats(segments);
        stats.live_bytes -= dropped;
        stats.dead_bytes += dropped;
        stats
    }

    pub fn stats(&self, segments: usize) -> StoreStats {
        StoreStats {
            segments,
            frames: self.frames,
            slice_frames: self.slice_frames,
            meta_frames: self.meta_frames,
            live_bytes: self.live_bytes,
            dead_bytes: self.frame_bytes - self.live_bytes,
            raw_bytes: self.raw_bytes,
            stored_bytes: self.stored_bytes,
        }
    }
}
