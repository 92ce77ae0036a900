//! A sealed segment's key-sorted run, read from disk on demand: in RAM only
//! the first key of each block (the fences) and the last key. A lookup
//! reads one block (128 entries of 56 bytes) with pread, so RSS does not
//! grow with the keys read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::fs::{FileHandle, FileLayer};
use crate::index::FrameLoc;
use crate::segment::footer::{decode_entry, FooterEntry, FOOTER_ENTRY_LEN};
use crate::segment::reader::Segment;
use crate::segment::summary::{block_crcs_of, fences_of, RUN_BLOCK_ENTRIES};
use crate::{SliceKey, StoreError};

/// Entries per block: one read of 7 KiB per lookup, and one fence (24
/// bytes of RAM) per 128 keys.
const BLOCK_ENTRIES: usize = RUN_BLOCK_ENTRIES;

pub(crate) struct SortedRun<F: FileLayer> {
    segment: Arc<Segment<F>>,
    /// Segment offset of the first sorted entry.
    offset: u64,
    count: u64,
    /// The first key of every block.
    fences: Vec<SliceKey>,
    /// The CRC32 of every block, checked at each read: rot in a run is
    /// found when the block is read, never served.
    block_crcs: Vec<u32>,
    last: SliceKey,
    /// Blocks read from the file so far (each read is a `pread` and a
    /// CRC): what a [`BlockCache`] saves is counted here.
    block_reads: AtomicU64,
}

/// The last blocks of sorted runs read, verified, for lookups that come in
/// key order: the index's own lookups as frames are added, at recovery of
/// an unsealed tail (every slice frame there, often a checkpoint's row
/// pages in page order, looks up its key in the runs before it) and at
/// each append. Without it each such lookup read and checked a block of
/// every run whose key range held the key: 95% of a reopen of a 20M-job
/// store (ARCHITECTURE.md, "Recovery reads each run block once").
/// Sealed segments never change; a segment's blocks are forgotten when
/// it leaves the index.
#[derive(Default)]
pub(crate) struct BlockCache {
    /// (segment, block, its bytes), the most recently used last.
    blocks: Vec<(u64, usize, Vec<u8>)>,
}

impl BlockCache {
    /// Blocks kept: one each for the runs a lookup passes through.
    const BLOCKS: usize = 32;

    /// Forgets the blocks of `segment_id`.
    pub fn forget(&mut self, segment_id: u64) {
        self.blocks.retain(|(id, _, _)| *id != segment_id);
    }
}

/// The key of a raw entry (offset ++ header bytes 0..48) without decoding it.
fn key_at(raw: &[u8]) -> SliceKey {
    let u64_at = |i: usize| u64::from_le_bytes(raw[i..i + 8].try_into().expect("8 bytes"));
    SliceKey {
        owner: u64_at(24),
        stream: u32::from_le_bytes(raw[32..36].try_into().expect("4 bytes")),
        seq: u64_at(36),
    }
}

impl<F: FileLayer> SortedRun<F> {
    /// The run of `entries` (ascending by key, checked by the footer
    /// decoder or built by the seal), stored at `offset` in `segment`.
    /// None when the segment holds no slice.
    pub fn new(
        segment: Arc<Segment<F>>,
        offset: u64,
        entries: &[FooterEntry],
    ) -> Option<SortedRun<F>> {
        let last = entries.last()?.header.key;
        let count = entries.len() as u64;
        let fences = fences_of(entries);
        SortedRun::from_fences(segment, offset, count, fences, block_crcs_of(entries), last)
    }

    /// The run of `count` entries at `offset` from its fences and last key
    /// (a footer summary). None when it is empty.
    pub fn from_fences(
        segment: Arc<Segment<F>>,
        offset: u64,
        count: u64,
        fences: Vec<SliceKey>,
        block_crcs: Vec<u32>,
        last: SliceKey,
    ) -> Option<SortedRun<F>> {
        if count == 0 || fences.is_empty() || block_crcs.len() != fences.len() {
            return None;
        }
        Some(SortedRun {
            segment,
            offset,
            count,
            fences,
            block_crcs,
            last,
            block_reads: AtomicU64::new(0),
        })
    }

    /// Blocks read from the file so far.
    #[cfg(test)]
    pub fn block_reads(&self) -> u64 {
        self.block_reads.load(Ordering::Relaxed)
    }

    pub fn first(&self) -> SliceKey {
        self.fences[0]
    }

    pub fn last(&self) -> SliceKey {
        self.last
    }

    pub fn blocks(&self) -> usize {
        self.fences.len()
    }

    /// The block that would hold `key` (the last whose fence is <= key).
    pub fn block_of(&self, key: &SliceKey) -> usize {
        self.fences.partition_point(|f| f <= key).saturating_sub(1)
    }

    fn corrupt(&self, at: u64, what: String) -> StoreError {
        StoreError::Corrupt {
            segment_id: self.segment.id,
            path: self.segment.path.clone(),
            offset: at,
            what,
        }
    }

    /// Block `b`'s bytes, read and checked against its CRC; nothing of it
    /// stays mapped.
    fn read_block(&self, b: usize) -> Result<Vec<u8>, StoreError> {
        let first = (b * BLOCK_ENTRIES) as u64;
        let n = (self.count - first).min(BLOCK_ENTRIES as u64);
        let at = self.offset + first * FOOTER_ENTRY_LEN as u64;
        let len = n * FOOTER_ENTRY_LEN as u64;
        self.block_reads.fetch_add(1, Ordering::Relaxed);
        // pread, not the map: a block read leaves nothing mapped, so RSS
        // does not grow with the blocks read (the page cache keeps them).
        let mut bytes = vec![0u8; len as usize];
        self.segment
            .file()
            .read_exact_at(&mut bytes, at)
            .map_err(|e| self.corrupt(at, format!("index block unreadable: {e}")))?;
        if crc32fast::hash(&bytes) != self.block_crcs[b] {
            return Err(self.corrupt(at, "index block checksum mismatch".into()));
        }
        Ok(bytes)
    }

    /// The entry of `key` in `bytes`, one block of this run.
    fn find(&self, bytes: &[u8], key: &SliceKey) -> Result<Option<FrameLoc>, StoreError> {
        let entries: Vec<&[u8]> = bytes.chunks_exact(FOOTER_ENTRY_LEN).collect();
        let Ok(i) = entries.binary_search_by(|raw| key_at(raw).cmp(key)) else {
            return Ok(None);
        };
        let e = decode_entry(entries[i]).map_err(|e| self.corrupt(self.offset, e.0))?;
        Ok(Some(self.loc(e)))
    }

    fn loc(&self, e: FooterEntry) -> FrameLoc {
        FrameLoc {
            segment_id: self.segment.id,
            offset: e.offset,
            header: e.header,
        }
    }

    /// The newest frame of `key` in this segment (a tombstone included).
    pub fn lookup(&self, key: &SliceKey) -> Result<Option<FrameLoc>, StoreError> {
        self.lookup_in(key, None)
    }

    /// [`SortedRun::lookup`], reading its block through `cache` when given.
    pub fn lookup_in(
        &self,
        key: &SliceKey,
        cache: Option<&mut BlockCache>,
    ) -> Result<Option<FrameLoc>, StoreError> {
        if *key < self.first() || *key > self.last {
            return Ok(None);
        }
        let b = self.block_of(key);
        let Some(cache) = cache else {
            return self.find(&self.read_block(b)?, key);
        };
        let id = self.segment.id;
        let at = cache
            .blocks
            .iter()
            .position(|(s, blk, _)| *s == id && *blk == b);
        let entry = match at {
            Some(i) => cache.blocks.remove(i),
            None => {
                if cache.blocks.len() == BlockCache::BLOCKS {
                    cache.blocks.remove(0);
                }
                (id, b, self.read_block(b)?)
            }
        };
        cache.blocks.push(entry);
        let (_, _, bytes) = cache.blocks.last().expect("just pushed");
        self.find(bytes, key)
    }

    /// Every entry of block `b`, in key order.
    pub fn block(&self, b: usize) -> Result<Vec<FrameLoc>, StoreError> {
        self.read_block(b)?
            .chunks_exact(FOOTER_ENTRY_LEN)
            .map(|raw| {
                decode_entry(raw)
                    .map(|e| self.loc(e))
                    .map_err(|e| self.corrupt(self.offset, e.0))
            })
            .collect()
    }
}

/// The entries of one run with keys in `lo..=hi`, ascending or (`rev`)
/// descending, read a block at a time.
pub(crate) struct RunIter<'a, F: FileLayer> {
    run: &'a SortedRun<F>,
    lo: SliceKey,
    hi: SliceKey,
    rev: bool,
    /// The next block to read; None when done.
    next_block: Option<usize>,
    buffer: std::vec::IntoIter<FrameLoc>,
    done: bool,
}

impl<'a, F: FileLayer> RunIter<'a, F> {
    pub fn new(run: &'a SortedRun<F>, lo: SliceKey, hi: SliceKey, rev: bool) -> RunIter<'a, F> {
        let overlaps = lo <= run.last() && hi >= run.first() && lo <= hi;
        let start = if rev {
            run.block_of(&hi)
        } else {
            run.block_of(&lo)
        };
        RunIter {
            run,
            lo,
            hi,
            rev,
            next_block: overlaps.then_some(start),
            buffer: Vec::new().into_iter(),
            done: !overlaps,
        }
    }

    fn refill(&mut self) -> Result<bool, StoreError> {
        let Some(b) = self.next_block else {
            return Ok(false);
        };
        let mut block = self.run.block(b)?;
        if self.rev {
            block.reverse();
            self.next_block = b.checked_sub(1);
        } else {
            self.next_block = (b + 1 < self.run.blocks()).then_some(b + 1);
        }
        self.buffer = block.into_iter();
        Ok(true)
    }
}

impl<F: FileLayer> Iterator for RunIter<'_, F> {
    type Item = Result<FrameLoc, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let Some(loc) = self.buffer.next() else {
                match self.refill() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            };
            let key = loc.header.key;
            let (before, after) = if self.rev {
                (key > self.hi, key < self.lo)
            } else {
                (key < self.lo, key > self.hi)
            };
            if after {
                break;
            }
            if !before {
                return Some(Ok(loc));
            }
        }
        self.done = true;
        None
    }
}
