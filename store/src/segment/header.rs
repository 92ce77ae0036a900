//! The 128-byte segment header (layout in ARCHITECTURE.md).

use crate::FormatError;

pub const SEGMENT_MAGIC: [u8; 8] = *b"BSTRSEG\0";
pub const SEGMENT_HEADER_LEN: usize = 128;
pub const FORMAT_VERSION: u16 = 1;
const FLAG_ENCRYPTED: u16 = 1;
/// Written by a store that keeps a MANIFEST: without one, the manifest was lost.
const FLAG_MANIFESTED: u16 = 2;

/// Which compaction output a segment belongs to (all zero for ordinary segments).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionGroup {
    pub group_id: u64,
    pub member_index: u32,
    pub member_count: u32,
    /// Segments with an id below this are replaced once the group is complete.
    pub replaces_below: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment_id: u64,
    pub encrypted: bool,
    /// 0 when unencrypted.
    pub key_id: u64,
    pub salt: [u8; 32],
    pub group: CompactionGroup,
    /// Written by a store with a MANIFEST (false in stores from before it).
    pub manifested: bool,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let mut flags = if self.encrypted { FLAG_ENCRYPTED } else { 0 };
        if self.manifested {
            flags |= FLAG_MANIFESTED;
        }
        b[10..12].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.segment_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.key_id.to_le_bytes());
        b[32..64].copy_from_slice(&self.salt);
        b[64..72].copy_from_slice(&self.group.group_id.to_le_bytes());
        b[72..76].copy_from_slice(&self.group.member_index.to_le_bytes());
        b[76..80].copy_from_slice(&self.group.member_count.to_le_bytes());
        b[80..88].copy_from_slice(&self.group.replaces_below.to_le_bytes());
        let crc = crc32fast::hash(&b[..124]);
        b[124..128].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Decodes a segment header from the first 128 bytes of `bytes`.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, FormatError> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Err(FormatError::new(format!(
            "segment header needs {SEGMENT_HEADER_LEN} bytes, found {}",
            bytes.len()
        )));
    }
    let b = &bytes[..SEGMENT_HEADER_LEN];
    if b[0..8] != SEGMENT_MAGIC {
        return Err(FormatError::new("not a booster segment (bad magic)"));
    }
    if crc32fast::hash(&b[..124]) != u32_at(b, 124) {
        return Err(FormatError::new("segment header checksum mismatch"));
    }
    let version = u16_at(b, 8);
    if version != FORMAT_VERSION {
        return Err(FormatError::new(format!(
            "segment format version {version} is not supported (this build reads {FORMAT_VERSION})"
        )));
    }
    let flags = u16_at(b, 10);
    if flags & !(FLAG_ENCRYPTED | FLAG_MANIFESTED) != 0 {
        return Err(FormatError::new(format!(
            "unknown segment flags {flags:#x}"
        )));
    }
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&b[32..64]);
    let group = CompactionGroup {
        group_id: u64_at(b, 64),
        member_index: u32_at(b, 72),
        member_count: u32_at(b, 76),
        replaces_below: u64_at(b, 80),
    };
    if group.group_id != 0 && group.member_index >= group.member_count {
        return Err(FormatError::new("compaction member index out of range"));
    }
    Ok(SegmentHeader {
        segment_id: u64_at(b, 16),
        encrypted: flags & FLAG_ENCRYPTED != 0,
        key_id: u64_at(b, 24),
        salt,
        group,
        manifested: flags & FLAG_MANIFESTED != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentHeader {
        SegmentHeader {
            segment_id: 42,
            encrypted: true,
            key_id: 0x1122334455667788,
            salt: [9; 32],
            group: CompactionGroup {
                group_id: 5,
                member_index: 1,
                member_count: 3,
                replaces_below: 40,
            },
            manifested: true,
        }
    }

    #[test]
    fn header_round_trips() {
        assert_eq!(decode_segment_header(&sample().encode()).unwrap(), sample());
    }

    #[test]
    fn every_flipped_bit_in_the_header_is_rejected() {
        let good = sample().encode();
        for bit in 0..SEGMENT_HEADER_LEN * 8 {
            let mut bad = good;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_segment_header(&bad).is_err(), "bit {bit}");
        }
    }
}
