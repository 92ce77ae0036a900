//! Segments: append-only files of frames. One concern per file: the header,
//! the frame, the seal footer, writing the active segment, reading any
//! segment, and recovery on open.

pub(crate) mod accounting;
pub mod footer;
pub mod frame;
pub mod header;
pub(crate) mod reader;
pub(crate) mod recovery;
pub(crate) mod salvage;
pub(crate) mod scan;
pub mod summary;
pub(crate) mod writer;

pub use frame::FrameKind;

/// The largest segment id a file name can carry (16 decimal digits). Ids
/// grow by one per segment, so reaching it means a file lies.
pub const MAX_SEGMENT_ID: u64 = 9_999_999_999_999_999;

/// A segment seals at this many frames even below its size: until it
/// seals, each frame costs the writer's footer directory and the index's
/// map about 250 bytes, and the seal's sorted run and footer about 150
/// more, so a count, not the bytes, bounds that memory (at about 60-byte
/// frames, 32 MiB held 550,000 of them; the soak's frames, about 160 bytes
/// on average, fill 32 MiB at about 210,000).
pub const SEGMENT_FRAMES_MAX: u64 = 200_000;

/// Whether a segment that ends at `end_offset` after `frames` frames is
/// full: the one rule the sequencer plans by, the writer seals by and
/// compaction splits by.
pub(crate) fn segment_is_full(end_offset: u64, frames: u64, segment_size_bytes: u64) -> bool {
    end_offset >= segment_size_bytes || frames >= SEGMENT_FRAMES_MAX
}

/// `seg-0000000000000042.bseg`
pub fn segment_file_name(id: u64) -> String {
    format!("seg-{id:016}.bseg")
}

/// Compaction output before it is published.
pub(crate) fn temp_file_name(id: u64) -> String {
    format!("seg-{id:016}.bseg.tmp")
}

/// The id in a segment file name, or None for any other file.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".bseg")?;
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
