//! The index: where the newest frame of every key lies, the meta frames
//! from the newest checkpoint on, and the counters behind `StoreStats`.
//!
//! One source per segment, newest wins: a sealed segment with a version-2
//! footer is a `SortedRun` read from disk on demand (in RAM only its block
//! fences); the active segment, a segment sealed with a version-1 footer
//! and a damaged segment (scanned, never sealed) are in-RAM maps. So RAM
//! follows the active segment and the old-format data, not the keys in
//! sealed segments. Rebuilt on open from seal footers and a scan of an
//! unsealed last segment; the counters come from the newest version-2
//! footer (the store's counters at that seal), then count what follows.

mod run;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use run::RunIter;
pub(crate) use run::{BlockCache, SortedRun};

use crate::fs::FileLayer;
use crate::segment::footer::{Counters, FooterEntry, SortedSection};
use crate::segment::frame::{frame_len, FrameHeader};
use crate::segment::reader::Segment;
use crate::segment::summary::FooterSummary;
use crate::segment::FrameKind;
use crate::{CompactionPlan, ScanPage, SliceInfo, SliceKey, StoreError, StoreStats};

/// Where a frame lives, and its header (enough to answer without reading it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameLoc {
    pub segment_id: u64,
    pub offset: u64,
    pub header: FrameHeader,
}

impl FrameLoc {
    fn position(&self) -> (u64, u64) {
        (self.segment_id, self.offset)
    }
}

/// Where a meta frame lives: kept small, since a store may hold many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MetaLoc {
    pub segment_id: u64,
    pub offset: u64,
    pub stored_len: u32,
    pub record_count: u32,
}

/// The frames of one segment, by key (the newest per key in that segment).
enum Source<F: FileLayer> {
    Map(BTreeMap<SliceKey, FrameLoc>),
    Run(SortedRun<F>),
}

/// What a key resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Its newest frame (a tombstone when the key is deleted).
    Found(FrameLoc),
    Absent,
    /// Its newest frame lay in a damaged range: (segment, offset).
    Damaged(u64, u64),
    /// No frame of it is held, and the store lost frames it cannot name
    /// (an unknown loss, first at (segment, offset)): it may have been there.
    MaybeLost(u64, u64),
}

pub(crate) struct Index<F: FileLayer> {
    sources: BTreeMap<u64, Source<F>>,
    /// Meta frames from the newest checkpoint on, in commit order.
    pub meta: Vec<MetaLoc>,
    /// Keys with a frame in a damaged range: (segment, offset) of the range.
    /// A frame of the key after that position makes the key whole again.
    damaged: BTreeMap<SliceKey, (u64, u64)>,
    /// The store opened without a damaged range: (segment, offset) of the first.
    pub degraded: Option<(u64, u64)>,
    /// The first range whose frames cannot be named (an unknown loss):
    /// a key with no frame may have lost it there.
    unknown_loss: Option<(u64, u64)>,
    counters: Counters,
    /// Run blocks the index's own lookups read last (`kill_visible`).
    blocks: BlockCache,
}

impl<F: FileLayer> Index<F> {
    pub fn new() -> Index<F> {
        Index {
            sources: BTreeMap::new(),
            meta: Vec::new(),
            damaged: BTreeMap::new(),
            degraded: None,
            unknown_loss: None,
            counters: Counters::default(),
            blocks: BlockCache::default(),
        }
    }

    /// Adds a durable data frame; a slice replaces any older one of its key.
    pub fn add(&mut self, loc: FrameLoc) {
        let h = &loc.header;
        let len = h.frame_len();
        let c = &mut self.counters;
        c.frames += 1;
        c.frame_bytes += len;
        c.live_bytes += len;
        c.raw_bytes += u64::from(h.raw_len);
        c.stored_bytes += u64::from(h.stored_len);
        match h.kind {
            FrameKind::Slice => {
                c.slice_frames += 1;
                self.kill_visible(&h.key);
                let source = self
                    .sources
                    .entry(loc.segment_id)
                    .or_insert_with(|| Source::Map(BTreeMap::new()));
                match source {
                    Source::Map(map) => {
                        map.insert(h.key, loc);
                    }
                    Source::Run(_) => debug_assert!(false, "a frame added to a sealed segment"),
                }
            }
            FrameKind::Meta => {
                c.meta_frames += 1;
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

    /// The frame a read of `key` would return now stops being live.
    fn kill_visible(&mut self, key: &SliceKey) {
        // A run block that fails to read was checked when the footer was;
        // the only cost of missing it here is a live-byte count too high.
        // Through the block cache: frames are added in log order, and a
        // batch's keys (a checkpoint's row pages) come in key order.
        let newest = newest_in(&self.sources, key, Some(&mut self.blocks));
        if let Ok(Lookup::Found(old)) = newest.map(|n| self.resolve(key, n)) {
            self.counters.live_bytes -= old.header.frame_len();
        }
    }

    /// A checkpoint starts the meta log: every meta frame before it is dead.
    /// Also called for a checkpoint lost in a damaged range, so the records
    /// it replaced are not replayed in its place.
    pub fn restart_meta_log(&mut self) {
        for old in self.meta.drain(..) {
            self.counters.live_bytes -= frame_len(old.stored_len);
        }
    }

    /// The newest frame of `key` is damaged: an older one must not be read.
    pub fn mark_damaged(&mut self, key: SliceKey, segment_id: u64, offset: u64) {
        self.kill_visible(&key);
        self.damaged.insert(key, (segment_id, offset));
    }

    /// Frames that cannot be named were lost at (segment, offset): from now
    /// on a key without a frame reads as `MaybeLost`, never as absent.
    pub fn mark_unknown_loss(&mut self, segment_id: u64, offset: u64) {
        let at = (segment_id, offset);
        if self.unknown_loss.is_none_or(|first| at < first) {
            self.unknown_loss = Some(at);
        }
    }

    /// Indexes a sealed segment from its footer: a version-2 footer as its
    /// sorted run (and the store's counters at that seal), a version-1
    /// footer frame by frame into a map, as before.
    pub fn add_sealed(
        &mut self,
        segment: &Arc<Segment<F>>,
        entries: &[FooterEntry],
        sorted: Option<&SortedSection>,
    ) {
        let Some(sorted) = sorted else {
            for e in entries {
                self.add(FrameLoc {
                    segment_id: segment.id,
                    offset: e.offset,
                    header: e.header,
                });
            }
            return;
        };
        for e in entries.iter().filter(|e| e.header.kind == FrameKind::Meta) {
            self.add(FrameLoc {
                segment_id: segment.id,
                offset: e.offset,
                header: e.header,
            });
        }
        self.install_run(segment, sorted.offset, &sorted.entries);
        self.counters = sorted.counters;
    }

    /// Indexes a sealed segment from its footer summary (version 3): its
    /// meta frames, its sorted run by fences, and the store's counters at
    /// that seal. Nothing else of the footer is read.
    pub fn add_summary(&mut self, segment: &Arc<Segment<F>>, summary: FooterSummary) {
        for m in &summary.metas {
            if m.checkpoint {
                // Not counted here: the summary's counters replace them.
                self.meta.clear();
            }
            self.meta.push(MetaLoc {
                segment_id: segment.id,
                offset: m.offset,
                stored_len: m.stored_len,
                record_count: m.record_count,
            });
        }
        let run = SortedRun::from_fences(
            Arc::clone(segment),
            summary.run_offset,
            summary.run_count,
            summary.fences,
            summary.block_crcs,
            summary.last,
        );
        match run {
            Some(run) => {
                self.sources.insert(segment.id, Source::Run(run));
            }
            None => {
                self.sources.remove(&segment.id);
                self.blocks.forget(segment.id);
            }
        }
        self.counters = summary.counters;
    }

    /// The segment was sealed with the sorted run `run` at `offset`: its
    /// keys leave RAM.
    pub fn install_run(&mut self, segment: &Arc<Segment<F>>, offset: u64, run: &[FooterEntry]) {
        match SortedRun::new(Arc::clone(segment), offset, run) {
            Some(run) => {
                self.sources.insert(segment.id, Source::Run(run));
            }
            None => {
                self.sources.remove(&segment.id);
                self.blocks.forget(segment.id);
            }
        }
    }

    /// True when a segment outside `skip` holds a frame of `key` (one
    /// lookup per segment): a frame that would come back if the newest one,
    /// in a segment of `skip`, just vanished.
    pub fn held_outside(&self, key: &SliceKey, skip: &BTreeSet<u64>) -> Result<bool, StoreError> {
        for (id, source) in &self.sources {
            if skip.contains(id) {
                continue;
            }
            let found = match source {
                Source::Map(map) => map.contains_key(key),
                Source::Run(run) => run.lookup(key)?.is_some(),
            };
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Forgets the segments in `ids` (replaced by a segment compaction).
    pub fn remove_sources(&mut self, ids: &BTreeSet<u64>) {
        self.sources.retain(|id, _| !ids.contains(id));
        for id in ids {
            self.blocks.forget(*id);
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// What `key` resolves to, damage included.
    pub fn lookup(&self, key: &SliceKey) -> Result<Lookup, StoreError> {
        let newest = newest_in(&self.sources, key, None)?;
        Ok(self.resolve(key, newest))
    }

    /// What `key`, whose newest frame ignoring damage is `newest`,
    /// resolves to.
    fn resolve(&self, key: &SliceKey, newest: Option<FrameLoc>) -> Lookup {
        if let Some(&damage) = self.damaged.get(key) {
            if newest.is_none_or(|loc| loc.position() < damage) {
                return Lookup::Damaged(damage.0, damage.1);
            }
        }
        match (newest, self.unknown_loss) {
            (Some(loc), _) => Lookup::Found(loc),
            (None, Some((segment_id, offset))) => Lookup::MaybeLost(segment_id, offset),
            (None, None) => Lookup::Absent,
        }
    }

    /// Run blocks read from the files so far, over the runs indexed now.
    #[cfg(test)]
    pub fn run_block_reads(&self) -> u64 {
        self.sources
            .values()
            .map(|source| match source {
                Source::Run(run) => run.block_reads(),
                Source::Map(_) => 0,
            })
            .sum()
    }

    /// True when a damaged range hides `loc` (a newer frame was lost).
    pub(crate) fn hidden(&self, loc: &FrameLoc) -> bool {
        self.damaged
            .get(&loc.header.key)
            .is_some_and(|damage| loc.position() < *damage)
    }

    /// The newest frames of the keys in `lo..=hi` across every segment, in
    /// key order (descending with `rev`), while `emit` returns true.
    /// `merge` over every key, ascending.
    pub(crate) fn merge_all(&self, emit: impl FnMut(FrameLoc) -> bool) -> Result<(), StoreError> {
        let lo = SliceKey {
            owner: 0,
            stream: 0,
            seq: 0,
        };
        let hi = SliceKey {
            owner: u64::MAX,
            stream: u32::MAX,
            seq: u64::MAX,
        };
        self.merge(lo, hi, false, emit)
    }

    fn merge(
        &self,
        lo: SliceKey,
        hi: SliceKey,
        rev: bool,
        mut emit: impl FnMut(FrameLoc) -> bool,
    ) -> Result<(), StoreError> {
        type Cursor<'a> = Box<dyn Iterator<Item = Result<FrameLoc, StoreError>> + 'a>;
        let mut cursors: Vec<Cursor<'_>> = Vec::new();
        for source in self.sources.values() {
            let cursor: Cursor<'_> = match source {
                Source::Map(map) if rev => Box::new(map.range(lo..=hi).rev().map(|(_, l)| Ok(*l))),
                Source::Map(map) => Box::new(map.range(lo..=hi).map(|(_, l)| Ok(*l))),
                Source::Run(run) => Box::new(RunIter::new(run, lo, hi, rev)),
            };
            cursors.push(cursor);
        }
        let mut heads = cursors
            .iter_mut()
            .map(|c| c.next().transpose())
            .collect::<Result<Vec<_>, _>>()?;
        loop {
            let mut pick: Option<FrameLoc> = None;
            for head in heads.iter().flatten() {
                let better = match pick {
                    None => true,
                    Some(p) => {
                        let order = head.header.key.cmp(&p.header.key);
                        let order = if rev { order.reverse() } else { order };
                        order.is_lt() || (order.is_eq() && head.position() > p.position())
                    }
                };
                if better {
                    pick = Some(*head);
                }
            }
            let Some(pick) = pick else {
                return Ok(());
            };
            for (head, cursor) in heads.iter_mut().zip(cursors.iter_mut()) {
                if head.is_some_and(|h| h.header.key == pick.header.key) {
                    *head = cursor.next().transpose()?;
                }
            }
            if !emit(pick) {
                return Ok(());
            }
        }
    }

    /// The live keys of (owner, stream) with seq in `seqs`, ascending or
    /// (`rev`) descending, at most `limit`, looking at most at `max_keys`
    /// keys, deleted ones included (they are skipped, but each costs a
    /// merge step until a compaction drops it): where it stopped short, `resume` is the seq of the first
    /// key it did not look at.
    pub fn scan_within(
        &self,
        owner: u64,
        stream: u32,
        seqs: (Bound<u64>, Bound<u64>),
        rev: bool,
        limit: usize,
        max_keys: usize,
    ) -> Result<ScanPage, StoreError> {
        let mut out = ScanPage::default();
        let Some((lo, hi)) = key_range(owner, stream, seqs) else {
            return Ok(out);
        };
        if limit == 0 {
            return Ok(out);
        }
        self.merge(lo, hi, rev, |loc| {
            if out.keys_examined == max_keys {
                out.resume = Some(loc.header.key.seq);
                return false;
            }
            out.keys_examined += 1;
            if !loc.header.is_tombstone() && !self.hidden(&loc) {
                out.slices.push(slice_info(&loc));
            }
            out.slices.len() < limit
        })?;
        Ok(out)
    }

    /// The newest frame of every live key, in key order (compaction).
    pub fn live_slices(&self) -> Result<Vec<FrameLoc>, StoreError> {
        let mut out = Vec::new();
        self.merge_all(|loc| {
            if !loc.header.is_tombstone() && !self.hidden(&loc) {
                out.push(loc);
            }
            true
        })?;
        Ok(out)
    }

    /// As [`Index::stats`], with the slices `plan` drops counted as dead:
    /// what a compaction with that plan would reclaim. Walks every live key
    /// (block by block for sealed segments, as compaction does).
    pub fn stats_with(
        &self,
        segments: usize,
        plan: &dyn CompactionPlan,
    ) -> Result<StoreStats, StoreError> {
        let mut dropped = 0u64;
        self.merge_all(|loc| {
            if !loc.header.is_tombstone()
                && !self.hidden(&loc)
                && !plan.slice_is_live(&loc.header.key)
            {
                dropped += loc.header.frame_len();
            }
            true
        })?;
        let mut stats = self.stats(segments);
        stats.live_bytes = stats.live_bytes.saturating_sub(dropped);
        stats.dead_bytes += dropped;
        Ok(stats)
    }

    /// Per segment id, the bytes of its frames that stay live under `plan`
    /// (see [`crate::SegmentUsage`]); one walk over the live keys, as
    /// [`Index::stats_with`] does.
    pub fn live_bytes_by_segment(
        &self,
        plan: &dyn CompactionPlan,
    ) -> Result<BTreeMap<u64, u64>, StoreError> {
        let mut live: BTreeMap<u64, u64> = BTreeMap::new();
        self.merge_all(|loc| {
            if !self.hidden(&loc)
                && (loc.header.is_tombstone() || plan.slice_is_live(&loc.header.key))
            {
                *live.entry(loc.segment_id).or_default() += loc.header.frame_len();
            }
            true
        })?;
        for m in &self.meta {
            *live.entry(m.segment_id).or_default() += frame_len(m.stored_len);
        }
        Ok(live)
    }

    pub fn stats(&self, segments: usize) -> StoreStats {
        let c = &self.counters;
        StoreStats {
            segments,
            frames: c.frames,
            slice_frames: c.slice_frames,
            meta_frames: c.meta_frames,
            live_bytes: c.live_bytes,
            dead_bytes: c.frame_bytes - c.live_bytes,
            raw_bytes: c.raw_bytes,
            stored_bytes: c.stored_bytes,
        }
    }

    /// What the index holds in RAM, counted (`Store::memory`).
    pub fn memory(&self, segments: usize) -> crate::StoreMemory {
        let run_blocks = self
            .sources
            .values()
            .map(|s| match s {
                Source::Map(_) => 0,
                Source::Run(run) => run.blocks(),
            })
            .sum();
        crate::StoreMemory {
            segments,
            keys_in_ram: self.keys_in_ram(),
            run_blocks,
            meta_frames: self.meta.len(),
            damaged_keys: self.damaged.len(),
        }
    }

    /// Keys held in RAM maps (the active segment, old-format and damaged
    /// segments): what the index costs in memory beyond the fences.
    pub fn keys_in_ram(&self) -> usize {
        self.sources
            .values()
            .map(|s| match s {
                Source::Map(map) => map.len(),
                Source::Run(_) => 0,
            })
            .sum()
    }
}

fn slice_info(loc: &FrameLoc) -> SliceInfo {
    SliceInfo {
        key: loc.header.key,
        record_count: loc.header.record_count,
        raw_len: loc.header.raw_len,
        stored_len: loc.header.stored_len,
    }
}

/// The keys of (owner, stream) whose seq lies in `seqs`, as an inclusive
/// key range; None when no seq does (an empty or inverted range).
pub(crate) fn key_range(
    owner: u64,
    stream: u32,
    seqs: (Bound<u64>, Bound<u64>),
) -> Option<(SliceKey, SliceKey)> {
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
    Some((key(lo), key(hi)))
}

/// The newest frame of `key` in `sources` (newest segment first), ignoring
/// damage; run blocks through `cache` when given.
fn newest_in<F: FileLayer>(
    sources: &BTreeMap<u64, Source<F>>,
    key: &SliceKey,
    mut cache: Option<&mut BlockCache>,
) -> Result<Option<FrameLoc>, StoreError> {
    for source in sources.values().rev() {
        let found = match source {
            Source::Map(map) => map.get(key).copied(),
            Source::Run(run) => run.lookup_in(key, cache.as_deref_mut())?,
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}
