//! Writing segments: creating one (header, fsync, directory fsync),
//! appending a group of frames (one write, one fdatasync), sealing (footer).

use std::io;
use std::path::Path;
use std::sync::Arc;

use super::footer::{encode_sorted_footer, sorted_run, Counters, FooterEntry, FOOTER_TAIL_LEN};
use super::header::{CompactionGroup, SegmentHeader, SEGMENT_HEADER_LEN};
use super::reader::Segment;
use super::{segment_file_name, temp_file_name};
use crate::fs::{FileHandle, FileLayer};
use crate::MasterKey;

/// The segment frames are appended to, with what the writer must remember.
pub(crate) struct ActiveSegment<F: FileLayer> {
    pub segment: Arc<Segment<F>>,
    /// Next frame sequence (= next nonce).
    pub next_seq: u64,
    /// Where the next frame goes.
    pub end_offset: u64,
    /// Every data frame so far: the seal footer's directory.
    pub entries: Vec<FooterEntry>,
}

/// A sealed segment's key-sorted run: where it starts, and its entries.
pub(crate) struct SealedRun {
    pub offset: u64,
    pub run: Vec<FooterEntry>,
}

/// Writes a seal footer at `at` in two steps, each synced: everything but
/// its last 12 bytes, then those (footer offset, trailer CRC). Open trusts
/// a version-3 footer from its tail and summary alone, so the tail must
/// never reach the disk before the rest (write-back may reorder the pages
/// of one write).
pub(crate) fn write_footer<H: FileHandle>(file: &H, footer: &[u8], at: u64) -> io::Result<()> {
    let body = footer.len() - FOOTER_TAIL_LEN;
    file.write_all_at(&footer[..body], at)?;
    file.sync_data()?;
    file.write_all_at(&footer[body..], at + body as u64)?;
    file.sync_data()
}

pub(crate) fn random_salt() -> io::Result<[u8; 32]> {
    let mut salt = [0u8; 32];
    getrandom::getrandom(&mut salt).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(salt)
}

/// Creates a segment file with a fresh salt and a durable header. Ordinary
/// segments get their final name and a directory fsync; compaction output
/// (`group` set) is created as `*.tmp` and published later by rename.
pub(crate) fn create_segment<F: FileLayer>(
    fs: &F,
    dir: &Path,
    id: u64,
    key: Option<&MasterKey>,
    group: CompactionGroup,
) -> io::Result<ActiveSegment<F>> {
    create_segment_with_salt(fs, dir, id, key, group, random_salt()?)
}

/// `create_segment` with the salt chosen when the segment was planned
/// (`sequencer.rs`: its batches are sealed under the key it gives).
pub(crate) fn create_segment_with_salt<F: FileLayer>(
    fs: &F,
    dir: &Path,
    id: u64,
    key: Option<&MasterKey>,
    group: CompactionGroup,
    salt: [u8; 32],
) -> io::Result<ActiveSegment<F>> {
    let header = SegmentHeader {
        segment_id: id,
        encrypted: key.is_some(),
        key_id: key.map_or(0, MasterKey::key_id),
        salt,
        group,
        manifested: true,
    };
    let is_temp = group.group_id != 0;
    let name = if is_temp {
        temp_file_name(id)
    } else {
        segment_file_name(id)
    };
    let path = dir.join(name);
    let file = fs.create_new(&path)?;
    file.write_all_at(&header.encode(), 0)?;
    file.sync_data()?;
    if !is_temp {
        fs.sync_dir(dir)?;
    }
    let cipher = key.map(|k| k.segment_cipher(&salt, id));
    let segment = Segment::new(fs.clone(), path, header, cipher, file);
    Ok(ActiveSegment {
        segment: Arc::new(segment),
        next_seq: 0,
        end_offset: SEGMENT_HEADER_LEN as u64,
        entries: Vec::new(),
    })
}

impl<F: FileLayer> ActiveSegment<F> {
    /// One write and one fdatasync for a whole group of encoded frames.
    /// On error the caller must poison the store: what reached the disk is
    /// unknown.
    pub fn write_group(&mut self, bytes: &[u8]) -> io::Result<()> {
        let file = self.segment.file();
        file.write_all_at(bytes, self.end_offset)?;
        file.sync_data()?;
        self.end_offset += bytes.len() as u64;
        Ok(())
    }

    /// Appends without syncing (compaction output, synced by `seal`).
    pub fn write_unsynced(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.segment.file().write_all_at(bytes, self.end_offset)?;
        self.end_offset += bytes.len() as u64;
        Ok(())
    }

    /// Appends the seal footer (version 2: with the key-sorted run and the
    /// store's `counters` as of this seal) and syncs. The segment is never
    /// written again; reads switch to a memory map. Returns the sealed run
    /// for the index.
    pub fn seal(&mut self, counters: &Counters) -> io::Result<SealedRun> {
        let run = sorted_run(&self.entries);
        let (footer, offset) = encode_sorted_footer(
            &self.entries,
            &run,
            counters,
            self.next_seq,
            self.end_offset,
        );
        write_footer(self.segment.file(), &footer, self.end_offset)?;
        self.end_offset += footer.len() as u64;
        self.segment.mark_sealed()?;
        Ok(SealedRun { offset, run })
    }
}
