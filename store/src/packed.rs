//! `PackedSlice`: a slice's records as a frame's payload holds them
//! (`u32 length ++ bytes` each, zstd-compressed or not), not yet
//! encrypted. What the fleet's wire carries (ARCHITECTURE.md, "Wire
//! protocol 3"), so that zstd runs on the remote worker's cores, not the
//! node's: the node reads an input slice's body without decompressing it
//! (`Store::read_slice_packed`) and appends a worker's output body as it
//! came (`Batch::slice_packed`), after checking it.
//!
//! **Invariant:** a `PackedSlice` built from bytes someone else made
//! (`PackedSlice::checked`) is a body of the shape the store writes
//! itself (raw, or one standard zstd frame smaller than the records) and
//! decompresses to exactly `raw_len` bytes that hold exactly
//! `record_count` records, so the store never writes a frame it could not
//! read back, nor one larger than its records. It decodes to the same
//! records as the store's own frame would; its bytes may differ (another
//! level or zstd version).

use crate::codec::{compress_or_keep, decompress, MAX_BODY_BYTES};
use crate::records::{encode_records, SliceRecords};
use crate::segment::frame::MAX_PAYLOAD_BYTES;
use crate::FormatError;

/// The magic number a standard (not skippable, not legacy) zstd frame
/// starts with, little-endian.
const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// A slice's frame body before encryption; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedSlice {
    record_count: u32,
    raw_len: u32,
    zstd: bool,
    body: Vec<u8>,
}

impl PackedSlice {
    /// `records` encoded and compressed at `level` (kept raw when short or
    /// when zstd does not make them smaller, as the store's own frames).
    pub fn pack<R: AsRef<[u8]>>(records: &[R], level: i32) -> Result<PackedSlice, FormatError> {
        let record_count = u32::try_from(records.len())
            .map_err(|_| FormatError::new("a slice holds more than 2^32-1 records; split it"))?;
        let raw = encode_records(records);
        let raw_len = payload_len(raw.len())?;
        let (zstd, body) = compress_or_keep(raw, level)?;
        Ok(PackedSlice {
            record_count,
            raw_len,
            zstd,
            body,
        })
    }

    /// A body made elsewhere (a remote worker's), checked: `raw_len` at
    /// most `max_raw_bytes` (checked before anything is allocated from
    /// it, so a decompression bomb costs nothing), the body decompresses
    /// to exactly `raw_len` bytes and they hold exactly `record_count`
    /// records. Err says which does not hold.
    pub fn checked(
        body: Vec<u8>,
        raw_len: u32,
        record_count: u32,
        zstd: bool,
        max_raw_bytes: usize,
    ) -> Result<PackedSlice, FormatError> {
        let packed = PackedSlice {
            record_count,
            raw_len,
            zstd,
            body,
        };
        packed.check_shape()?;
        packed.unpack(max_raw_bytes)?;
        Ok(packed)
    }

    /// The body is one the store would write itself (`compress_or_keep`):
    /// raw, exactly `raw_len` bytes; zstd, one standard frame covering the
    /// whole body (no skippable, legacy or second frame, which the decoder
    /// would accept) and smaller than `raw_len`, else the store keeps raw
    /// bytes. So a stored body is never larger than its records.
    fn check_shape(&self) -> Result<(), FormatError> {
        let (len, raw_len) = (self.body.len(), self.raw_len as usize);
        if !self.zstd {
            return match len == raw_len {
                true => Ok(()),
                false => Err(FormatError::new(format!(
                    "the uncompressed body is {len} bytes, it says {raw_len}; send the records as encoded"
                ))),
            };
        }
        if len >= raw_len {
            return Err(FormatError::new(format!(
                "the zstd body is {len} bytes, not smaller than its {raw_len} bytes of records; send them uncompressed"
            )));
        }
        if !self.body.starts_with(&ZSTD_MAGIC.to_le_bytes()) {
            return Err(FormatError::new(
                "the zstd body does not start with a standard zstd frame (skippable or legacy frames are refused); pack it with PackedSlice::pack",
            ));
        }
        match zstd::zstd_safe::find_frame_compressed_size(&self.body) {
            Ok(n) if n == len => Ok(()),
            Ok(n) => Err(FormatError::new(format!(
                "the zstd body holds more than one frame (the first is {n} of {len} bytes); send one frame"
            ))),
            Err(code) => Err(FormatError::new(format!(
                "the zstd body is not one whole zstd frame: {}",
                zstd::zstd_safe::get_error_name(code)
            ))),
        }
    }

    /// A body from a peer whose bytes the store authenticated (the node's
    /// `Store::read_slice_packed`, sent to a worker): not checked for
    /// shape, since the store reads any body it holds; `unpack` it once,
    /// it checks what decoding needs (the bound, the length, the count).
    pub fn received(body: Vec<u8>, raw_len: u32, record_count: u32, zstd: bool) -> PackedSlice {
        PackedSlice {
            record_count,
            raw_len,
            zstd,
            body,
        }
    }

    /// The records, decompressed and checked as `checked` says.
    pub fn unpack(&self, max_raw_bytes: usize) -> Result<SliceRecords, FormatError> {
        let limit = max_raw_bytes.min(MAX_PAYLOAD_BYTES as usize);
        if self.raw_len as usize > limit {
            return Err(FormatError::new(format!(
                "the slice says it holds {} bytes of records, over the limit of {limit}",
                self.raw_len
            )));
        }
        // Each record takes at least its 4-byte length: a larger count is a
        // lie, refused before anything is built from it.
        if self.record_count as usize > self.raw_len as usize / 4 {
            return Err(FormatError::new(format!(
                "{} records do not fit in {} bytes",
                self.record_count, self.raw_len
            )));
        }
        let raw = match self.zstd {
            true => decompress(&self.body, self.raw_len)?,
            false => self.body.clone(),
        };
        if raw.len() != self.raw_len as usize {
            return Err(FormatError::new(format!(
                "the slice's records are {} bytes, it says {}",
                raw.len(),
                self.raw_len
            )));
        }
        SliceRecords::new(raw, self.record_count)
    }

    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    /// Bytes of the records as encoded (each with its 4-byte length),
    /// before compression.
    pub fn raw_len(&self) -> u32 {
        self.raw_len
    }

    pub fn is_zstd(&self) -> bool {
        self.zstd
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// A frame's checked, decrypted body as the store read it: trusted,
    /// since its tag and CRC were checked.
    pub(crate) fn of_frame(body: Vec<u8>, raw_len: u32, record_count: u32, zstd: bool) -> Self {
        PackedSlice {
            record_count,
            raw_len,
            zstd,
            body,
        }
    }
}

fn payload_len(len: usize) -> Result<u32, FormatError> {
    u32::try_from(len)
        .ok()
        .filter(|&n| n as usize <= MAX_BODY_BYTES)
        .ok_or_else(|| {
            FormatError::new(format!(
                "a frame of {len} bytes exceeds the 256 MiB cap; split the slice"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{i},some,csv,record,with,repeats").into_bytes())
            .collect()
    }

    #[test]
    fn a_packed_slice_unpacks_to_its_records() {
        let recs = records(500);
        let packed = PackedSlice::pack(&recs, 1).unwrap();
        assert!(packed.is_zstd());
        assert!(packed.body().len() < packed.raw_len() as usize);
        let back = PackedSlice::checked(
            packed.body().to_vec(),
            packed.raw_len(),
            packed.record_count(),
            true,
            1 << 20,
        )
        .unwrap();
        assert_eq!(back.unpack(1 << 20).unwrap().to_vecs(), recs);
        let short = PackedSlice::pack(&[b"x"], 1).unwrap();
        assert!(!short.is_zstd());
        assert_eq!(short.unpack(64).unwrap().to_vecs(), vec![b"x".to_vec()]);
    }

    #[test]
    fn a_body_that_is_not_zstd_is_refused() {
        let err = PackedSlice::checked(vec![7; 64], 1000, 1, true, 1 << 20).unwrap_err();
        assert!(
            err.0.contains("does not start with a standard zstd frame"),
            "{err}"
        );
    }

    #[test]
    fn a_body_that_decompresses_past_its_length_is_refused_at_its_length() {
        // A bomb: 64 MiB of zeros in a few KiB, claiming 64 KiB.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 1).unwrap();
        let err = PackedSlice::checked(bomb.clone(), 64 << 10, 1, true, 1 << 20).unwrap_err();
        assert!(err.0.contains("does not decode"), "{err}");
        // Claiming its true size is over the limit, refused before decoding.
        let err = PackedSlice::checked(bomb, 64 << 20, 1, true, 1 << 20).unwrap_err();
        assert!(err.0.contains("over the limit"), "{err}");
    }

    #[test]
    fn lengths_or_counts_that_do_not_cut_the_records_are_refused() {
        let packed = PackedSlice::pack(&records(100), 1).unwrap();
        let (raw_len, body) = (packed.raw_len(), packed.body().to_vec());
        for count in [99, 101, u32::MAX] {
            assert!(PackedSlice::checked(body.clone(), raw_len, count, true, 1 << 20).is_err());
        }
        assert!(PackedSlice::checked(body, raw_len - 1, 100, true, 1 << 20).is_err());
        let mut lying = encode_records(&[b"abc"]);
        lying[0] = 200; // a length past the end
        let n = lying.len() as u32;
        let err = PackedSlice::checked(lying, n, 1, false, 1 << 20).unwrap_err();
        assert!(err.0.contains("runs past"), "{err}");
    }

    /// A good slice's (raw_len, count, zstd body).
    fn good() -> (u32, u32, Vec<u8>) {
        let packed = PackedSlice::pack(&records(100), 1).unwrap();
        assert!(packed.is_zstd());
        (packed.raw_len(), packed.record_count(), packed.into_body())
    }

    fn refusal(body: Vec<u8>, raw_len: u32, count: u32, zstd: bool) -> String {
        PackedSlice::checked(body, raw_len, count, zstd, 1 << 20)
            .unwrap_err()
            .0
    }

    #[test]
    fn a_body_the_store_would_not_write_is_refused_though_it_decodes() {
        let (raw_len, count, body) = good();
        // Each of these decodes to the same records with zstd's one-shot
        // decoder; none is a body the store writes.
        let mut skippable = 0x184D_2A50u32.to_le_bytes().to_vec();
        skippable.extend_from_slice(&4u32.to_le_bytes());
        skippable.extend_from_slice(&[0; 4]);
        skippable.extend_from_slice(&body);
        let err = refusal(skippable, raw_len, count, true);
        assert!(
            err.contains("does not start with a standard zstd frame"),
            "{err}"
        );

        let half = (raw_len / 2) as usize;
        let raw = encode_records(&records(100));
        let mut two = zstd::bulk::compress(&raw[..half], 1).unwrap();
        two.extend(zstd::bulk::compress(&raw[half..], 1).unwrap());
        let err = refusal(two, raw_len, count, true);
        assert!(err.contains("more than one frame"), "{err}");

        let mut trailing = body.clone();
        trailing.extend_from_slice(&[0; 8]);
        let err = refusal(trailing, raw_len, count, true);
        assert!(err.contains("more than one frame"), "{err}");

        // A legacy (v0.7) frame's magic.
        let mut legacy = body.clone();
        legacy[..4].copy_from_slice(&0xFD2F_B527u32.to_le_bytes());
        let err = refusal(legacy, raw_len, count, true);
        assert!(
            err.contains("does not start with a standard zstd frame"),
            "{err}"
        );
    }

    #[test]
    fn a_received_body_is_unpacked_as_the_store_reads_it_whatever_its_shape() {
        // Two frames: the store reads such a body, so a worker does too.
        let recs = records(100);
        let raw = encode_records(&recs);
        let mut two = zstd::bulk::compress(&raw[..500], 1).unwrap();
        two.extend(zstd::bulk::compress(&raw[500..], 1).unwrap());
        let received = PackedSlice::received(two, raw.len() as u32, 100, true);
        assert_eq!(received.unpack(1 << 20).unwrap().to_vecs(), recs);
    }

    #[test]
    fn a_body_not_smaller_than_its_records_is_refused() {
        // zstd of incompressible bytes grows: the store keeps them raw.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let raw = encode_records(&[noise]);
        let body = zstd::bulk::compress(&raw, 1).unwrap();
        assert!(body.len() >= raw.len());
        let err = refusal(body, raw.len() as u32, 1, true);
        assert!(err.contains("not smaller than its"), "{err}");
        // Raw: exactly its records, no padding.
        let mut padded = raw.clone();
        padded.push(0);
        let err = refusal(padded, raw.len() as u32, 1, false);
        assert!(err.contains("uncompressed body is"), "{err}");
    }
}
