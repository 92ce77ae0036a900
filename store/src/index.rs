//! The in-memory index: `SliceKey -> FrameLoc` and the meta records in commit
//! order, plus the byte counts behind `StoreStats`. Rebuilt on open from
//! seal footers (the checkpoint) and a scan of an unsealed last segment.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::segment::frame::{frame_len, FrameHeader};
use crate::segment::FrameKind;
use crate::{SliceInfo, SliceKey, StoreStats};

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
    /// The newest frame of every key, tombstones included (a tombstone
    /// stays until compaction drops every older frame of its key).
    slices: BTreeMap<SliceKey, FrameLoc>,
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
                if h.is_checkpoint() {
                    self.restart_meta_log();
                }
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

    /// A checkpoint starts the meta log: every meta frame before it is dead.
    /// Also called for a checkpoint lost in a damaged range, so the records
    /// it replaced are not replayed in its place.
    pub fn restart_meta_log(&mut self) {
        for old in self.meta.drain(..) {
            self.live_bytes -= frame_len(old.stored_len);
        }
    }

    /// The newest frame of `key` is damaged: an older one must not be read.
    pub fn mark_damaged(&mut self, key: SliceKey, segment_id: u64, offset: u64) {
        if let Some(old) = self.slices.remove(&key) {
            self.live_bytes -= old.header.frame_len();
        }
        self.damaged.insert(key, (segment_id, offset));
    }

    /// The newest frame of `key`, unless the key is deleted.
    pub fn get(&self, key: &SliceKey) -> Option<FrameLoc> {
        self.slices
            .get(key)
            .filter(|l| !l.header.is_tombstone())
            .copied()
    }

    /// The live keys of (owner, stream) with seq in `seqs`, ascending or
    /// (`rev`) descending, at most `limit`.
    pub fn scan(
        &self,
        owner: u64,
        stream: u32,
        seqs: (Bound<u64>, Bound<u64>),
        rev: bool,
        limit: usize,
    ) -> Vec<SliceInfo> {
        let Some(range) = key_range(owner, stream, seqs) else {
            return Vec::new();
        };
        let live = self
            .slices
            .range(range)
            .filter(|(_, loc)| !loc.header.is_tombstone())
            .map(|(key, loc)| slice_info(key, loc));
        if rev {
            live.rev().take(limit).collect()
        } else {
            live.take(limit).collect()
        }
    }

    /// The newest frame of every live key, in key order (compaction).
    pub fn live_slices(&self) -> impl Iterator<Item = &FrameLoc> + '_ {
        self.slices.values().filter(|l| !l.header.is_tombstone())
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

fn slice_info(key: &SliceKey, loc: &FrameLoc) -> SliceInfo {
    SliceInfo {
        key: *key,
        record_count: loc.header.record_count,
        raw_len: loc.header.raw_len,
        stored_len: loc.header.stored_len,
    }
}

/// The keys of (owner, stream) whose seq lies in `seqs`, as a key range;
/// None when no seq does (an empty or inverted range).
pub(crate) fn key_range(
    owner: u64,
    stream: u32,
    seqs: (Bound<u64>, Bound<u64>),
) -> Option<(Bound<SliceKey>, Bound<SliceKey>)> {
    let lo = match seqs.0 {
        Bound::Included(s) => s,
        Bound::Excluded(s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let hi = match seqs.1 {
        Bound::Included(s) => s,
        Bound::Excluded(s) => s.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    if lo > hi {
        return None;
    }
    let key = |seq| SliceKey { owner, stream, seq };
    Some((Bound::Included(key(lo)), Bound::Included(key(hi))))
}
