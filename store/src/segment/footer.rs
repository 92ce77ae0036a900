//! The seal footer: the last frame of a sealed segment, listing every frame
//! (offset + header), so reopening indexes a sealed segment without a scan.
//! Its payload ends with the footer's own offset, so the footer is found
//! from the last 12 bytes of the file.

use super::frame::{
    decode_frame, decode_frame_header_body, frame_payload, FrameHeader, FrameKind,
    FRAME_HEADER_LEN, FRAME_TRAILER_LEN, MAX_PAYLOAD_BYTES,
};
use super::header::SEGMENT_HEADER_LEN;
use crate::{FormatError, SliceKey};

/// Bytes per footer entry: frame offset (u64) ++ frame header bytes 0..48.
pub const FOOTER_ENTRY_LEN: usize = 56;
/// The bytes at the end of a sealed segment that locate the footer:
/// footer offset (u64, end of the footer payload) ++ the footer's trailer CRC.
pub const FOOTER_TAIL_LEN: usize = 8 + FRAME_TRAILER_LEN;

/// One data frame of a segment, as the index sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FooterEntry {
    pub offset: u64,
    pub header: FrameHeader,
}

/// Encodes the whole footer frame (header, payload, trailer) for a segment
/// whose next frame sequence is `seq` and whose footer starts at `offset`.
pub fn encode_footer(entries: &[FooterEntry], seq: u64, offset: u64) -> Vec<u8> {
    let payload_len = entries.len() * FOOTER_ENTRY_LEN + 8;
    let header = FrameHeader {
        kind: FrameKind::SealFooter,
        flags: 0,
        seq,
        key: SliceKey {
            owner: 0,
            stream: 0,
            seq: 0,
        },
        record_count: entries.len() as u32,
        raw_len: payload_len as u32,
        stored_len: payload_len as u32,
    };
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload_len + FRAME_TRAILER_LEN);
    out.extend_from_slice(&header.encode());
    for e in entries {
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.header.encode_body());
    }
    out.extend_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads the footer offset out of a sealed segment's last 12 bytes.
pub fn footer_offset_from_tail(tail: &[u8]) -> Result<u64, FormatError> {
    if tail.len() != FOOTER_TAIL_LEN {
        return Err(FormatError::new("footer tail must be 12 bytes"));
    }
    Ok(u64::from_le_bytes(tail[..8].try_into().expect("8 bytes")))
}

/// Decodes a footer frame: `bytes` runs from `footer_offset` to the end of
/// the segment. Checks that every entry lies inside the segment, in order.
pub fn decode_footer(bytes: &[u8], footer_offset: u64) -> Result<Vec<FooterEntry>, FormatError> {
    let header = decode_frame(bytes)?;
    if header.kind != FrameKind::SealFooter {
        return Err(FormatError::new("last frame is not a seal footer"));
    }
    if header.frame_len() != bytes.len() as u64 {
        return Err(FormatError::new("seal footer does not end the segment"));
    }
    let payload = frame_payload(bytes, &header);
    let count = header.record_count as usize;
    let expected_len = count
        .checked_mul(FOOTER_ENTRY_LEN)
        .and_then(|n| n.checked_add(8));
    if header.stored_len > MAX_PAYLOAD_BYTES || expected_len != Some(payload.len()) {
        return Err(FormatError::new(
            "seal footer length does not match its entry count",
        ));
    }
    if header.seq != count as u64 {
        return Err(FormatError::new(
            "seal footer sequence does not match its entry count",
        ));
    }
    let stated = u64::from_le_bytes(payload[payload.len() - 8..].try_into().expect("8 bytes"));
    if stated != footer_offset {
        return Err(FormatError::new(
            "seal footer offset does not match its position",
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut next_offset = SEGMENT_HEADER_LEN as u64;
    for (i, raw) in payload[..count * FOOTER_ENTRY_LEN]
        .chunks_exact(FOOTER_ENTRY_LEN)
        .enumerate()
    {
        let offset = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
        let h = decode_frame_header_body(&raw[8..])?;
        let fits = offset
            .checked_add(h.frame_len())
            .is_some_and(|end| end <= footer_offset);
        if offset != next_offset || !fits || h.seq != i as u64 || h.kind == FrameKind::SealFooter {
            return Err(FormatError::new(format!(
                "seal footer entry {i} is inconsistent"
            )));
        }
        next_offset = offset + h.frame_len();
        entries.push(FooterEntry { offset, header: h });
    }
    if next_offset != footer_offset {
        return Err(FormatError::new(
            "seal footer entries do not cover the segment",
        ));
    }
    Ok(entries)
}
