//! Scanning a segment frame by frame without the key (recovery, verify),
//! and reading a sealed segment's frame list from its footer.

use super::footer::{
    decode_sealed_footer, footer_offset_from_tail, FooterEntry, SealedFooter, FOOTER_TAIL_LEN,
};
use super::frame::{decode_frame, FrameKind, FRAME_MAGIC};
use super::header::SEGMENT_HEADER_LEN;
use crate::FormatError;

/// What a frame-by-frame scan of one segment found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// Frames up to and including the last *batch end*.
    pub entries: Vec<FooterEntry>,
    /// End of the last complete batch; bytes after it are a tail to drop.
    pub valid_end: u64,
    /// The first frame that did not decode, and why.
    pub problem: Option<(u64, String)>,
    /// A valid frame starts somewhere after `problem`: corruption, not a torn tail.
    pub good_frame_after_problem: Option<u64>,
}

/// Scans `bytes` (a whole segment, header included) frame by frame, without
/// the key. Stops at the first frame that does not decode or is out of
/// sequence. Never panics on hostile bytes.
pub fn scan_segment(bytes: &[u8]) -> SegmentScan {
    scan_from(bytes, SEGMENT_HEADER_LEN as u64, 0)
}

/// `scan_segment` from the frame at `start`, expected to carry sequence `seq`.
pub(crate) fn scan_from(bytes: &[u8], start: u64, seq: u64) -> SegmentScan {
    let mut scan = SegmentScan {
        entries: Vec::new(),
        valid_end: start.min(bytes.len() as u64),
        problem: None,
        good_frame_after_problem: None,
    };
    let mut kept = 0;
    let mut offset = start;
    let mut seq = seq;
    while offset < bytes.len() as u64 {
        let here = &bytes[offset as usize..];
        match decode_frame(here) {
            Ok(h) if h.kind == FrameKind::SealFooter => {
                scan.problem = Some((
                    offset,
                    "seal footer does not decode as the segment end".into(),
                ));
                break;
            }
            Ok(h) if h.seq != seq => {
                scan.problem = Some((
                    offset,
                    format!("frame sequence {} where {seq} was expected", h.seq),
                ));
                break;
            }
            Ok(h) => {
                scan.entries.push(FooterEntry { offset, header: h });
                offset += h.frame_len();
                // A sequence at u64::MAX cannot be followed: the next frame
                // is then out of sequence, never a wrap.
                seq = seq.saturating_add(1);
                if h.is_batch_end() {
                    kept = scan.entries.len();
                    scan.valid_end = offset;
                }
            }
            Err(e) => {
                scan.problem = Some((offset, e.0));
                break;
            }
        }
    }
    scan.entries.truncate(kept);
    if let Some((at, _)) = &scan.problem {
        scan.good_frame_after_problem = find_frame_after(bytes, *at + 1);
    }
    scan
}

/// The offset of the first whole, valid frame starting at or after `from`.
pub(crate) fn find_frame_after(bytes: &[u8], from: u64) -> Option<u64> {
    let mut at = usize::try_from(from).ok()?;
    while at + FRAME_MAGIC.len() <= bytes.len() {
        let rel = bytes[at..]
            .windows(FRAME_MAGIC.len())
            .position(|w| w == FRAME_MAGIC)?;
        at += rel;
        if decode_frame(&bytes[at..]).is_ok() {
            return Some(at as u64);
        }
        at += 1;
    }
    None
}

/// The frames of a sealed segment from its footer, or why not.
pub fn read_sealed_entries(bytes: &[u8]) -> Result<Vec<FooterEntry>, FormatError> {
    read_sealed_footer(bytes).map(|f| f.entries)
}

/// A sealed segment's whole footer (with a version-2 sorted run), or why not.
pub fn read_sealed_footer(bytes: &[u8]) -> Result<SealedFooter, FormatError> {
    let min = SEGMENT_HEADER_LEN + FOOTER_TAIL_LEN;
    if bytes.len() < min {
        return Err(FormatError::new("segment too short to hold a seal footer"));
    }
    let offset = footer_offset_from_tail(&bytes[bytes.len() - FOOTER_TAIL_LEN..])?;
    if offset < SEGMENT_HEADER_LEN as u64 || offset >= bytes.len() as u64 {
        return Err(FormatError::new("seal footer offset out of range"));
    }
    decode_sealed_footer(&bytes[offset as usize..], offset)
}
