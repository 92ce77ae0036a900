//! The one frame codec: records -> payload bytes -> zstd (caller's thread)
//! -> AES-256-GCM with the segment key (writer thread) -> CRC32; and back.

use std::borrow::Cow;
use std::cell::RefCell;

use crate::crypto::{SegmentCipher, TAG_LEN};
use crate::segment::frame::{
    decode_frame, frame_payload, FrameHeader, FLAG_AES_GCM, FLAG_ZSTD, FRAME_HEADER_LEN,
    MAX_PAYLOAD_BYTES, MEANING_FLAGS,
};
use crate::segment::header::SegmentHeader;
use crate::segment::FrameKind;
use crate::{FormatError, MasterKey, SliceKey};

pub(crate) use crate::records::{decode_records, encode_records};

/// A frame body ready for the writer: compressed, not yet encrypted.
pub(crate) struct PreparedFrame {
    pub kind: FrameKind,
    pub key: SliceKey,
    pub record_count: u32,
    pub raw_len: u32,
    pub zstd: bool,
    /// `FLAG_TOMBSTONE` / `FLAG_CHECKPOINT`: what the frame means.
    pub marks: u8,
    pub body: Vec<u8>,
}

/// A thread's zstd context for one level, and its scratch output buffer.
type CompressorSlot = (i32, zstd::bulk::Compressor<'static>, Vec<u8>);

thread_local! {
    static COMPRESSOR: RefCell<Option<CompressorSlot>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Payloads shorter than this are stored uncompressed: zstd cannot win much
/// on them and would cost more CPU than the rest of the frame.
const MIN_COMPRESS_BYTES: usize = 128;

/// The most bytes a frame's body may hold before its AEAD tag.
pub(crate) const MAX_BODY_BYTES: usize = MAX_PAYLOAD_BYTES as usize - TAG_LEN;

/// Compresses one frame body on the caller's thread. Stores it raw when it
/// is short or zstd does not make it smaller.
pub(crate) fn prepare(
    kind: FrameKind,
    key: SliceKey,
    record_count: u32,
    raw: Vec<u8>,
    level: i32,
) -> Result<PreparedFrame, FormatError> {
    if raw.len() > MAX_BODY_BYTES {
        return Err(FormatError::new(format!(
            "a frame of {} bytes exceeds the 256 MiB cap; split the slice",
            raw.len()
        )));
    }
    let raw_len = raw.len() as u32;
    let (zstd, body) = compress_or_keep(raw, level)?;
    Ok(PreparedFrame {
        kind,
        key,
        record_count,
        raw_len,
        zstd,
        marks: 0,
        body,
    })
}

/// `(true, zstd of raw)`, or `(false, raw)` when it is short or zstd does
/// not make it smaller: a frame body as the store writes it.
pub(crate) fn compress_or_keep(raw: Vec<u8>, level: i32) -> Result<(bool, Vec<u8>), FormatError> {
    let compressed = match raw.len() < MIN_COMPRESS_BYTES {
        true => None,
        false => compress(&raw, level)?,
    };
    Ok(match compressed {
        Some(body) => (true, body),
        None => (false, raw),
    })
}

/// zstd into a reused scratch buffer, copied out at its exact size (so a
/// queued body holds its compressed size, not the worst-case bound); None
/// when compression does not make the payload smaller.
fn compress(raw: &[u8], level: i32) -> Result<Option<Vec<u8>>, FormatError> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _, _)| *l) != Some(level) {
            let c = zstd::bulk::Compressor::new(level)
                .map_err(|e| FormatError::new(format!("zstd level {level}: {e}")))?;
            *slot = Some((level, c, Vec::new()));
        }
        let (_, c, scratch) = slot.as_mut().expect("just set");
        scratch.clear();
        scratch.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        c.compress_to_buffer(raw, scratch)
            .map_err(|e| FormatError::new(format!("zstd: {e}")))?;
        let smaller = scratch.len() < raw.len();
        let body = smaller.then(|| scratch.to_vec());
        if scratch.capacity() > 4 << 20 {
            *scratch = Vec::new();
        }
        Ok(body)
    })
}

/// Appends one whole frame (header, sealed payload, trailer) to `out`.
pub(crate) fn encode_frame_into(
    out: &mut Vec<u8>,
    segment_id: u64,
    cipher: Option<&SegmentCipher>,
    seq: u64,
    batch_end_flag: u8,
    frame: &PreparedFrame,
) -> FrameHeader {
    let tag_len = if cipher.is_some() { TAG_LEN } else { 0 };
    debug_assert_eq!(frame.marks & !MEANING_FLAGS, 0);
    let mut flags = batch_end_flag | frame.marks;
    if frame.zstd {
        flags |= FLAG_ZSTD;
    }
    if cipher.is_some() {
        flags |= FLAG_AES_GCM;
    }
    let header = FrameHeader {
        kind: frame.kind,
        flags,
        seq,
        key: frame.key,
        record_count: frame.record_count,
        raw_len: frame.raw_len,
        stored_len: (frame.body.len() + tag_len) as u32,
    };
    let start = out.len();
    let header_bytes = header.encode();
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(&frame.body);
    if let Some(cipher) = cipher {
        let aad = associated_data(segment_id, &header_bytes);
        let payload_start = start + FRAME_HEADER_LEN;
        let tag = cipher.seal(seq, &aad, &mut out[payload_start..]);
        out.extend_from_slice(&tag);
    }
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!((out.len() - start) as u64, header.frame_len());
    header
}

/// GCM associated data: segment id ++ frame header bytes 0..48.
fn associated_data(segment_id: u64, header_bytes: &[u8]) -> [u8; 56] {
    let mut aad = [0u8; 56];
    aad[..8].copy_from_slice(&segment_id.to_le_bytes());
    aad[8..].copy_from_slice(&header_bytes[..48]);
    aad
}

/// Checks a whole frame of the segment with `segment` header and returns its
/// header and raw (decrypted, decompressed) payload. Never panics on hostile
/// bytes. `key` is needed for encrypted frames.
pub fn decode_frame_payload(
    bytes: &[u8],
    segment: &SegmentHeader,
    key: Option<&MasterKey>,
) -> Result<(FrameHeader, Vec<u8>), FormatError> {
    let cipher = key
        .filter(|_| segment.encrypted)
        .map(|k| k.segment_cipher(&segment.salt, segment.segment_id));
    open_frame(bytes, segment.segment_id, cipher.as_ref())
}

/// `decode_frame_payload` with the segment key already derived.
pub(crate) fn open_frame(
    bytes: &[u8],
    segment_id: u64,
    cipher: Option<&SegmentCipher>,
) -> Result<(FrameHeader, Vec<u8>), FormatError> {
    let (header, body) = open_frame_body(bytes, segment_id, cipher)?;
    let raw = if header.flags & FLAG_ZSTD != 0 {
        decompress(&body, header.raw_len)?
    } else {
        body.into_owned()
    };
    if raw.len() != header.raw_len as usize {
        return Err(FormatError::new(format!(
            "payload is {} bytes, header says {}",
            raw.len(),
            header.raw_len
        )));
    }
    Ok((header, raw))
}

/// Checks a whole frame and authenticates and decrypts its payload, leaving
/// it compressed (compaction re-encrypts it as is).
pub(crate) fn open_frame_body<'a>(
    bytes: &'a [u8],
    segment_id: u64,
    cipher: Option<&SegmentCipher>,
) -> Result<(FrameHeader, Cow<'a, [u8]>), FormatError> {
    let header = decode_frame(bytes)?;
    let payload = frame_payload(bytes, &header);
    if header.flags & FLAG_AES_GCM == 0 {
        // An encrypted segment holds only encrypted frames: a plaintext one
        // was put there by someone without the key (G11).
        if cipher.is_some() {
            return Err(FormatError::new(
                "plaintext frame in an encrypted segment: tampering",
            ));
        }
        return Ok((header, Cow::Borrowed(payload)));
    }
    let cipher = cipher.ok_or_else(|| FormatError::new("encrypted frame but no key"))?;
    if payload.len() < TAG_LEN {
        return Err(FormatError::new("encrypted payload shorter than its tag"));
    }
    let (ct, tag) = payload.split_at(payload.len() - TAG_LEN);
    let mut plain = ct.to_vec();
    let aad = associated_data(segment_id, &bytes[..48]);
    if !cipher.open(header.seq, &aad, &mut plain, tag) {
        return Err(FormatError::new(
            "authentication failed (wrong key, or the frame was altered or moved)",
        ));
    }
    Ok((header, Cow::Owned(plain)))
}

/// A checked frame's body as a frame to write again (compaction).
pub(crate) fn reseal(header: &FrameHeader, body: Vec<u8>) -> PreparedFrame {
    PreparedFrame {
        kind: header.kind,
        key: header.key,
        record_count: header.record_count,
        raw_len: header.raw_len,
        zstd: header.flags & FLAG_ZSTD != 0,
        marks: header.flags & MEANING_FLAGS,
        body,
    }
}

/// zstd of `body` into at most `raw_len` bytes: a body that would grow past
/// it is an error, never a larger allocation. Callers bound `raw_len`
/// (the header decoder: 256 MiB; `PackedSlice::unpack`: its limit).
pub(crate) fn decompress(body: &[u8], raw_len: u32) -> Result<Vec<u8>, FormatError> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| FormatError::new(format!("zstd: {e}")))?,
            );
        }
        let d = slot.as_mut().expect("just set");
        d.decompress(body, raw_len as usize)
            .map_err(|e| FormatError::new(format!("zstd payload does not decode: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::frame::FLAG_BATCH_END;

    fn frame(cipher: Option<&SegmentCipher>) -> Vec<u8> {
        let prepared = prepare(
            FrameKind::Meta,
            SliceKey {
                owner: 0,
                stream: 0,
                seq: 0,
            },
            1,
            encode_records(&[b"created job 9"]),
            1,
        )
        .unwrap();
        let mut out = Vec::new();
        encode_frame_into(&mut out, 4, cipher, 0, FLAG_BATCH_END, &prepared);
        out
    }

    #[test]
    fn a_plaintext_frame_read_with_the_segment_key_is_rejected() {
        let cipher = MasterKey([8; 32]).segment_cipher(&[1; 32], 4);
        let plain = frame(None);
        assert!(open_frame(&plain, 4, None).is_ok());
        let err = open_frame(&plain, 4, Some(&cipher)).unwrap_err();
        assert!(err.0.contains("plaintext frame"), "{err}");
        let sealed = frame(Some(&cipher));
        assert!(open_frame(&sealed, 4, Some(&cipher)).is_ok());
    }
}
