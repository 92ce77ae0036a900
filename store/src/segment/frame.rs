//! The frame: a 52-byte header with its own CRC, the payload, and a CRC over
//! both (layout in ARCHITECTURE.md). Scanning needs no key.

use crate::{FormatError, SliceKey};

pub const FRAME_MAGIC: [u8; 4] = *b"BFRM";
pub const FRAME_HEADER_LEN: usize = 52;
pub const FRAME_TRAILER_LEN: usize = 4;
/// Hard cap on any length field, checked before anything is allocated.
pub const MAX_PAYLOAD_BYTES: u32 = 256 << 20;

pub const FLAG_BATCH_END: u8 = 1;
pub const FLAG_ZSTD: u8 = 2;
pub const FLAG_AES_GCM: u8 = 4;
/// On a slice frame: the key is deleted (no records, raw length 0).
pub const FLAG_TOMBSTONE: u8 = 8;
/// On a meta frame: its first record is a checkpoint, and the meta log
/// starts here (every earlier meta frame is dead).
pub const FLAG_CHECKPOINT: u8 = 16;
const KNOWN_FLAGS: u8 =
    FLAG_BATCH_END | FLAG_ZSTD | FLAG_AES_GCM | FLAG_TOMBSTONE | FLAG_CHECKPOINT;
/// The flags that say what a frame means (kept when compaction copies it),
/// as opposed to how it is stored.
pub const MEANING_FLAGS: u8 = FLAG_TOMBSTONE | FLAG_CHECKPOINT;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    Slice = 1,
    Meta = 2,
    SealFooter = 3,
}

impl FrameKind {
    fn from_u8(v: u8) -> Option<FrameKind> {
        match v {
            1 => Some(FrameKind::Slice),
            2 => Some(FrameKind::Meta),
            3 => Some(FrameKind::SealFooter),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: FrameKind,
    pub flags: u8,
    /// Position in the segment (0, 1, 2, ...); also the GCM nonce.
    pub seq: u64,
    /// The slice's key; all zero for other kinds.
    pub key: SliceKey,
    pub record_count: u32,
    pub raw_len: u32,
    pub stored_len: u32,
}

impl FrameHeader {
    pub fn is_batch_end(&self) -> bool {
        self.flags & FLAG_BATCH_END != 0
    }

    /// A slice frame that deletes its key.
    pub fn is_tombstone(&self) -> bool {
        self.flags & FLAG_TOMBSTONE != 0
    }

    /// A meta frame that starts the meta log.
    pub fn is_checkpoint(&self) -> bool {
        self.flags & FLAG_CHECKPOINT != 0
    }

    /// Bytes of the whole frame on disk: header, payload, trailer.
    pub fn frame_len(&self) -> u64 {
        frame_len(self.stored_len)
    }

    /// Header bytes 0..48 (everything the header CRC covers).
    pub fn encode_body(&self) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[0..4].copy_from_slice(&FRAME_MAGIC);
        b[4] = self.kind as u8;
        b[5] = self.flags;
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.key.owner.to_le_bytes());
        b[24..28].copy_from_slice(&self.key.stream.to_le_bytes());
        b[28..36].copy_from_slice(&self.key.seq.to_le_bytes());
        b[36..40].copy_from_slice(&self.record_count.to_le_bytes());
        b[40..44].copy_from_slice(&self.raw_len.to_le_bytes());
        b[44..48].copy_from_slice(&self.stored_len.to_le_bytes());
        b
    }

    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        let body = self.encode_body();
        b[..48].copy_from_slice(&body);
        b[48..52].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
        b
    }
}

pub fn frame_len(stored_len: u32) -> u64 {
    (FRAME_HEADER_LEN + FRAME_TRAILER_LEN) as u64 + u64::from(stored_len)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Decodes header bytes 0..48 without a CRC check (used for footer entries,
/// which the footer frame's own CRC covers).
pub fn decode_frame_header_body(b: &[u8]) -> Result<FrameHeader, FormatError> {
    if b.len() < 48 {
        return Err(FormatError::new("frame header truncated"));
    }
    if b[0..4] != FRAME_MAGIC {
        return Err(FormatError::new("bad frame magic"));
    }
    let kind = FrameKind::from_u8(b[4])
        .ok_or_else(|| FormatError::new(format!("unknown frame kind {}", b[4])))?;
    let flags = b[5];
    if flags & !KNOWN_FLAGS != 0 || b[6] != 0 || b[7] != 0 {
        return Err(FormatError::new(format!("unknown frame flags {flags:#x}")));
    }
    let header = FrameHeader {
        kind,
        flags,
        seq: u64_at(b, 8),
        key: SliceKey {
            owner: u64_at(b, 16),
            stream: u32_at(b, 24),
            seq: u64_at(b, 28),
        },
        record_count: u32_at(b, 36),
        raw_len: u32_at(b, 40),
        stored_len: u32_at(b, 44),
    };
    if header.raw_len > MAX_PAYLOAD_BYTES || header.stored_len > MAX_PAYLOAD_BYTES {
        return Err(FormatError::new(format!(
            "frame length {} / {} exceeds the 256 MiB cap",
            header.raw_len, header.stored_len
        )));
    }
    if header.is_tombstone()
        && (header.kind != FrameKind::Slice || header.record_count != 0 || header.raw_len != 0)
    {
        return Err(FormatError::new(
            "a tombstone must be a slice frame without records",
        ));
    }
    if header.is_checkpoint() && (header.kind != FrameKind::Meta || header.record_count == 0) {
        return Err(FormatError::new(
            "a checkpoint must be a meta frame with at least one record",
        ));
    }
    if flags & FLAG_AES_GCM != 0 && (header.stored_len as usize) < crate::crypto::TAG_LEN {
        return Err(FormatError::new(format!(
            "encrypted frame of {} stored bytes is shorter than its tag",
            header.stored_len
        )));
    }
    Ok(header)
}

/// Decodes and checks a 52-byte frame header (magic, CRC, kind, flags, caps).
pub fn decode_frame_header(b: &[u8]) -> Result<FrameHeader, FormatError> {
    if b.len() < FRAME_HEADER_LEN {
        return Err(FormatError::new(format!(
            "frame header needs {FRAME_HEADER_LEN} bytes, found {}",
            b.len()
        )));
    }
    if b[0..4] != FRAME_MAGIC {
        return Err(FormatError::new("bad frame magic"));
    }
    if crc32fast::hash(&b[..48]) != u32_at(b, 48) {
        return Err(FormatError::new("frame header checksum mismatch"));
    }
    decode_frame_header_body(b)
}

/// Checks a whole frame at the start of `b` (header CRC, length within `b`,
/// trailer CRC) and returns its header. `b` may extend past the frame.
pub fn decode_frame(b: &[u8]) -> Result<FrameHeader, FormatError> {
    let header = decode_frame_header(b)?;
    let total = header.frame_len();
    if (b.len() as u64) < total {
        return Err(FormatError::new(format!(
            "frame of {total} bytes runs past the end ({} bytes left)",
            b.len()
        )));
    }
    // total <= 256 MiB + 56 fits in usize on every supported target.
    let total = total as usize;
    let body_end = total - FRAME_TRAILER_LEN;
    if crc32fast::hash(&b[..body_end]) != u32_at(b, body_end) {
        return Err(FormatError::new("frame checksum mismatch"));
    }
    Ok(header)
}

/// The payload bytes of a frame already checked by `decode_frame`.
pub fn frame_payload<'a>(b: &'a [u8], header: &FrameHeader) -> &'a [u8] {
    &b[FRAME_HEADER_LEN..FRAME_HEADER_LEN + header.stored_len as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FrameHeader {
        FrameHeader {
            kind: FrameKind::Slice,
            flags: FLAG_BATCH_END | FLAG_ZSTD,
            seq: 3,
            key: SliceKey {
                owner: 1,
                stream: 2,
                seq: 3,
            },
            record_count: 10,
            raw_len: 100,
            stored_len: 5,
        }
    }

    fn whole_frame() -> Vec<u8> {
        let mut b = sample().encode().to_vec();
        b.extend_from_slice(b"abcde");
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn frame_round_trips() {
        let b = whole_frame();
        assert_eq!(decode_frame(&b).unwrap(), sample());
        assert_eq!(frame_payload(&b, &sample()), b"abcde");
    }

    #[test]
    fn every_flipped_bit_in_a_frame_is_rejected() {
        let good = whole_frame();
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_frame(&bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn an_encrypted_frame_shorter_than_its_tag_is_rejected() {
        let short = FrameHeader {
            flags: FLAG_AES_GCM,
            stored_len: 15,
            ..sample()
        };
        let err = decode_frame_header(&short.encode()).unwrap_err();
        assert!(err.0.contains("shorter than its tag"), "{err}");
        let exact = FrameHeader {
            stored_len: 16,
            ..short
        };
        assert!(decode_frame_header(&exact.encode()).is_ok());
    }

    #[test]
    fn a_tombstone_flag_fits_only_a_slice_without_records() {
        let tombstone = FrameHeader {
            flags: FLAG_TOMBSTONE,
            record_count: 0,
            raw_len: 0,
            ..sample()
        };
        assert!(decode_frame_header(&tombstone.encode()).is_ok());
        for bad in [
            FrameHeader {
                record_count: 1,
                ..tombstone
            },
            FrameHeader {
                raw_len: 4,
                ..tombstone
            },
            FrameHeader {
                kind: FrameKind::Meta,
                ..tombstone
            },
        ] {
            let err = decode_frame_header(&bad.encode()).unwrap_err();
            assert!(err.0.contains("tombstone"), "{err}");
        }
    }

    #[test]
    fn a_checkpoint_flag_fits_only_a_meta_frame_with_records() {
        let checkpoint = FrameHeader {
            kind: FrameKind::Meta,
            flags: FLAG_CHECKPOINT,
            ..sample()
        };
        assert!(decode_frame_header(&checkpoint.encode()).is_ok());
        for bad in [
            FrameHeader {
                record_count: 0,
                ..checkpoint
            },
            FrameHeader {
                kind: FrameKind::Slice,
                ..checkpoint
            },
        ] {
            let err = decode_frame_header(&bad.encode()).unwrap_err();
            assert!(err.0.contains("checkpoint"), "{err}");
        }
    }

    #[test]
    fn every_truncation_is_rejected() {
        let good = whole_frame();
        for len in 0..good.len() {
            assert!(decode_frame(&good[..len]).is_err(), "len {len}");
        }
    }
}
