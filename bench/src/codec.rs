//! The frame codec's work, done directly with the crates the store uses:
//! records -> `u32 length ++ bytes` payload -> zstd -> AES-256-GCM -> CRC32,
//! laid out like a store frame (ARCHITECTURE.md, "Frame"). This is what
//! `limit` runs on every core to find the codec ceiling, and what the
//! criterion benches time per slice. It is a model of the store's work, not
//! the store: no index, no files, no group commit.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

pub const FRAME_HEADER_BYTES: usize = 52;
const TAG_BYTES: usize = 16;
const FLAG_ZSTD: u8 = 1 << 1;
const FLAG_AES: u8 = 1 << 2;

/// Per-thread codec state: zstd contexts are reused, as a store writer would.
pub struct Codec {
    cipher: Option<Aes256Gcm>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    decompressor: zstd::bulk::Decompressor<'static>,
    segment_id: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    Crc,
    Tag,
    Zstd,
    Layout,
}

impl Codec {
    /// `key` None: no encryption. `zstd_level` None: no compression.
    pub fn new(key: Option<[u8; 32]>, zstd_level: Option<i32>) -> Codec {
        Codec {
            cipher: key.map(|k| Aes256Gcm::new(&k.into())),
            compressor: zstd_level
                .map(|level| zstd::bulk::Compressor::new(level).expect("zstd level is valid")),
            decompressor: zstd::bulk::Decompressor::new().expect("zstd context"),
            segment_id: 1,
        }
    }

    /// Seals a slice payload into a frame with sequence `seq`.
    pub fn seal(&mut self, seq: u64, count: u32, raw: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        let len = self.seal_into(seq, count, raw, &mut frame);
        frame.truncate(len);
        frame
    }

    /// Seals a slice payload into `buf[..returned length]`, compressing and
    /// encrypting in place: no copy of the payload beyond zstd's own output.
    /// `buf` only ever grows, so a buffer reused across slices costs no
    /// allocation or zero-filling once it is big enough.
    pub fn seal_into(&mut self, seq: u64, count: u32, raw: &[u8], buf: &mut Vec<u8>) -> usize {
        let bound = match self.compressor {
            Some(_) => zstd::zstd_safe::compress_bound(raw.len()),
            None => raw.len(),
        };
        let need = FRAME_HEADER_BYTES + bound + TAG_BYTES + 4;
        if buf.len() < need {
            buf.resize(need, 0);
        }
        let body = &mut buf[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + bound];
        let mut flags = 1u8; // batch end
        let body_len = match &mut self.compressor {
            Some(c) => {
                flags |= FLAG_ZSTD;
                c.compress_to_buffer(raw, body)
                    .expect("zstd output fits its bound")
            }
            None => {
                body[..raw.len()].copy_from_slice(raw);
                raw.len()
            }
        };
        let tag_bytes = if self.cipher.is_some() {
            flags |= FLAG_AES;
            TAG_BYTES
        } else {
            0
        };
        let stored_len = body_len + tag_bytes;
        write_header(
            &mut buf[..FRAME_HEADER_BYTES],
            flags,
            seq,
            count,
            raw.len(),
            stored_len,
        );
        let body_end = FRAME_HEADER_BYTES + body_len;
        if let Some(cipher) = &self.cipher {
            let aad = self.aad(&buf[..48]);
            let tag = cipher
                .encrypt_in_place_detached(
                    &nonce(seq),
                    &aad,
                    &mut buf[FRAME_HEADER_BYTES..body_end],
                )
                .expect("AES-GCM seal of a bounded buffer");
            buf[body_end..body_end + TAG_BYTES].copy_from_slice(&tag);
        }
        let crc_at = FRAME_HEADER_BYTES + stored_len;
        let crc = crc32fast::hash(&buf[..crc_at]);
        buf[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        crc_at + 4
    }

    /// Checks the CRC, opens and decompresses a frame; returns the payload.
    pub fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (mut scratch, mut payload) = (Vec::new(), Vec::new());
        self.open_into(frame, &mut scratch, &mut payload)?;
        Ok(payload)
    }

    /// Checks the CRC, then decrypts into `scratch` (the one copy: a stored
    /// frame is read-only) and decompresses into `payload`. Both buffers are
    /// reused across calls.
    pub fn open_into(
        &mut self,
        frame: &[u8],
        scratch: &mut Vec<u8>,
        payload: &mut Vec<u8>,
    ) -> Result<(), OpenError> {
        if frame.len() < FRAME_HEADER_BYTES + 4 {
            return Err(OpenError::Layout);
        }
        let (body, crc) = frame.split_at(frame.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().unwrap()) {
            return Err(OpenError::Crc);
        }
        let header = &body[..FRAME_HEADER_BYTES];
        let flags = header[5];
        let seq = u64::from_le_bytes(header[8..16].try_into().unwrap());
        let raw_len = u32::from_le_bytes(header[40..44].try_into().unwrap()) as usize;
        let stored = &body[FRAME_HEADER_BYTES..];
        let plain: &[u8] = if flags & FLAG_AES != 0 {
            let cipher = self.cipher.as_ref().ok_or(OpenError::Tag)?;
            if stored.len() < TAG_BYTES {
                return Err(OpenError::Layout);
            }
            let tag_at = stored.len() - TAG_BYTES;
            let tag = *Tag::from_slice(&stored[tag_at..]);
            scratch.clear();
            scratch.extend_from_slice(&stored[..tag_at]);
            let aad = self.aad(&header[..48]);
            cipher
                .decrypt_in_place_detached(&nonce(seq), &aad, scratch, &tag)
                .map_err(|_| OpenError::Tag)?;
            scratch
        } else {
            stored
        };
        payload.clear();
        if flags & FLAG_ZSTD != 0 {
            payload.reserve(raw_len);
            let n = self
                .decompressor
                .decompress_to_buffer(plain, payload)
                .map_err(|_| OpenError::Zstd)?;
            if n != raw_len {
                return Err(OpenError::Zstd);
            }
        } else {
            payload.extend_from_slice(plain);
        }
        Ok(())
    }

    fn aad(&self, header: &[u8]) -> [u8; 56] {
        let mut aad = [0u8; 56];
        aad[..8].copy_from_slice(&self.segment_id.to_le_bytes());
        aad[8..].copy_from_slice(header);
        aad
    }
}

/// The frame header (ARCHITECTURE.md, "Frame"), little-endian, with its own CRC.
fn write_header(
    out: &mut [u8],
    flags: u8,
    seq: u64,
    count: u32,
    raw_len: usize,
    stored_len: usize,
) {
    debug_assert_eq!(out.len(), FRAME_HEADER_BYTES);
    out[..4].copy_from_slice(b"BFRM");
    out[4] = 1;
    out[5] = flags;
    out[6..8].fill(0);
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    out[16..36].fill(0); // slice key
    out[36..40].copy_from_slice(&count.to_le_bytes());
    out[40..44].copy_from_slice(&(raw_len as u32).to_le_bytes());
    out[44..48].copy_from_slice(&(stored_len as u32).to_le_bytes());
    let header_crc = crc32fast::hash(&out[..48]);
    out[48..52].copy_from_slice(&header_crc.to_le_bytes());
}

fn nonce(seq: u64) -> Nonce<aes_gcm::aes::cipher::consts::U12> {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&seq.to_le_bytes());
    *Nonce::from_slice(&n)
}

/// Records as a slice payload: `u32 length (LE) ++ bytes` each.
pub fn encode_records<R: AsRef<[u8]>>(records: &[R]) -> Vec<u8> {
    let total: usize = records.iter().map(|r| 4 + r.as_ref().len()).sum();
    let mut out = Vec::with_capacity(total);
    for r in records {
        let r = r.as_ref();
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r);
    }
    out
}

/// The inverse of `encode_records`; None on a malformed payload.
pub fn decode_records(mut payload: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !payload.is_empty() {
        let len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        out.push(payload.get(4..4 + len)?.to_vec());
        payload = &payload[4 + len..];
    }
    Some(out)
}

/// One slice's full round trip as Booster does it for a `copy` job:
/// upload (encode, compress, seal), process (open, decompress, decode, copy,
/// encode, compress, seal), download (open, decompress, decode).
/// Returns the records downloaded.
pub fn round_trip(codec: &mut Codec, seq: u64, records: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let input = upload(codec, seq, records);
    let output = process_copy(codec, seq + 1, &input);
    download(codec, &output)
}

pub fn upload(codec: &mut Codec, seq: u64, records: &[Vec<u8>]) -> Vec<u8> {
    codec.seal(seq, records.len() as u32, &encode_records(records))
}

pub fn process_copy(codec: &mut Codec, seq: u64, frame: &[u8]) -> Vec<u8> {
    let records =
        decode_records(&codec.open(frame).expect("own frame opens")).expect("own payload decodes");
    let output: Vec<Vec<u8>> = records.to_vec();
    codec.seal(seq, output.len() as u32, &encode_records(&output))
}

pub fn download(codec: &mut Codec, frame: &[u8]) -> Vec<Vec<u8>> {
    decode_records(&codec.open(frame).expect("own frame opens")).expect("own payload decodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice() -> Vec<Vec<u8>> {
        crate::records::records(0, 1000)
    }

    #[test]
    fn round_trip_returns_the_records_with_and_without_codec() {
        for (key, level) in [(Some([7u8; 32]), Some(1)), (None, None)] {
            let mut codec = Codec::new(key, level);
            assert_eq!(round_trip(&mut codec, 0, &slice()), slice());
        }
    }

    #[test]
    fn compressed_encrypted_frame_is_smaller_and_hides_the_records() {
        let records = slice();
        let raw = encode_records(&records);
        let frame = Codec::new(Some([7u8; 32]), Some(1)).seal(0, 1000, &raw);
        assert!(
            frame.len() < raw.len() / 2,
            "{} vs {}",
            frame.len(),
            raw.len()
        );
        let needle = &records[3][..20];
        assert!(!frame.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn reused_buffers_seal_and_open_each_slice_alike() {
        let mut codec = Codec::new(Some([7u8; 32]), Some(1));
        let (mut frame, mut scratch, mut payload) = (Vec::new(), Vec::new(), Vec::new());
        for start in [0u64, 5000, 0] {
            let raw = encode_records(&crate::records::records(start, 1000));
            let n = codec.seal_into(start, 1000, &raw, &mut frame);
            assert_eq!(&frame[..n], &codec.seal(start, 1000, &raw)[..]);
            codec
                .open_into(&frame[..n], &mut scratch, &mut payload)
                .unwrap();
            assert_eq!(payload, raw);
        }
    }

    #[test]
    fn flipped_byte_is_found_by_the_crc() {
        let mut codec = Codec::new(Some([7u8; 32]), Some(1));
        let mut frame = codec.seal(0, 1000, &encode_records(&slice()));
        frame[FRAME_HEADER_BYTES + 3] ^= 1;
        assert_eq!(codec.open(&frame), Err(OpenError::Crc));
    }
}
