//! A segment as readers see it: sealed ones through a memory map, the active
//! one by positional reads.

use std::borrow::Cow;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use super::header::SegmentHeader;
use crate::crypto::SegmentCipher;
use crate::fs::{FileHandle, FileLayer};

pub(crate) struct Segment<F: FileLayer> {
    pub id: u64,
    pub path: PathBuf,
    pub header: SegmentHeader,
    pub cipher: Option<SegmentCipher>,
    file: F::File,
    map: OnceLock<F::Map>,
    fs: F,
    remove_on_drop: AtomicBool,
}

impl<F: FileLayer> Segment<F> {
    pub fn new(
        fs: F,
        path: PathBuf,
        header: SegmentHeader,
        cipher: Option<SegmentCipher>,
        file: F::File,
    ) -> Segment<F> {
        Segment {
            id: header.segment_id,
            path,
            header,
            cipher,
            file,
            map: OnceLock::new(),
            fs,
            remove_on_drop: AtomicBool::new(false),
        }
    }

    pub fn file(&self) -> &F::File {
        &self.file
    }

    /// Switches reads to a memory map. Called once the segment is sealed and
    /// will never be written again.
    pub fn mark_sealed(&self) -> io::Result<()> {
        if self.map.get().is_none() {
            let map = self.fs.map(&self.file)?;
            let _ = self.map.set(map);
        }
        Ok(())
    }

    /// Uses a map the caller already made of this (sealed) segment's file.
    pub fn set_map(&self, map: F::Map) {
        let _ = self.map.set(map);
    }

    /// Bytes of the segment: from the map when sealed, else a positional read.
    pub fn read(&self, offset: u64, len: u64) -> io::Result<Cow<'_, [u8]>> {
        let short = || io::Error::new(io::ErrorKind::UnexpectedEof, "read past the segment end");
        if let Some(map) = self.map.get() {
            let end = offset.checked_add(len).ok_or_else(short)?;
            if end > map.len() as u64 {
                return Err(short());
            }
            return Ok(Cow::Borrowed(&map[offset as usize..end as usize]));
        }
        let len = usize::try_from(len).map_err(|_| short())?;
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(Cow::Owned(buf))
    }

    /// Lets the pages of a range just read leave memory (sealed segments).
    pub fn release(&self, offset: u64, len: u64) {
        if let (Some(map), Ok(offset), Ok(len)) = (
            self.map.get(),
            usize::try_from(offset),
            usize::try_from(len),
        ) {
            self.fs.release(map, offset, len);
        }
    }

    /// The file's size in bytes (0 when it cannot be read).
    pub fn len_bytes(&self) -> u64 {
        match self.map.get() {
            Some(map) => map.len() as u64,
            None => self.file.len().unwrap_or(0),
        }
    }

    /// The segment is unlinked when its last reader drops it.
    pub fn retire(&self) {
        self.remove_on_drop.store(true, Ordering::SeqCst);
    }
}

impl<F: FileLayer> Drop for Segment<F> {
    fn drop(&mut self) {
        if self.remove_on_drop.load(Ordering::SeqCst) {
            // Best effort: recovery deletes a replaced segment again if this
            // removal is lost.
            let _ = self.fs.remove(&self.path);
        }
    }
}
