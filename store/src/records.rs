//! The record encoding inside a frame payload: `count` records, each
//! `u32 length ++ bytes`. `SliceRecords` holds a checked payload and hands
//! out records without an allocation per record.

use crate::FormatError;

/// Encodes records as `u32 length ++ bytes` each.
pub(crate) fn encode_records<R: AsRef<[u8]>>(records: &[R]) -> Vec<u8> {
    let total: usize = records.iter().map(|r| 4 + r.as_ref().len()).sum();
    let mut out = Vec::with_capacity(total);
    for r in records {
        push_record(&mut out, r.as_ref());
    }
    out
}

/// Appends one record, `u32 length ++ bytes`. A record of 4 GiB or more
/// gets a length that cannot be right, but no payload holds it anyway:
/// the frame's bound (`MAX_PAYLOAD_BYTES`, 256 MiB) refuses the batch.
fn push_record(out: &mut Vec<u8>, record: &[u8]) {
    out.extend_from_slice(&(record.len() as u32).to_le_bytes());
    out.extend_from_slice(record);
}

/// A slice's records encoded as its payload holds them, built one record
/// at a time (`Batch::slice_records` takes it whole). A producer that
/// cuts a stream into slices copies each record once, into one buffer per
/// slice, instead of keeping a `Vec` per record for the store to encode
/// later on another thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordsBuf {
    raw: Vec<u8>,
    count: usize,
}

impl RecordsBuf {
    /// Room for `bytes` of encoded records (each record's length + 4).
    pub fn with_capacity(bytes: usize) -> RecordsBuf {
        RecordsBuf {
            raw: Vec::with_capacity(bytes),
            count: 0,
        }
    }

    pub fn push(&mut self, record: &[u8]) {
        push_record(&mut self.raw, record);
        self.count += 1;
    }

    /// Records pushed.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded payload and its record count.
    pub(crate) fn into_parts(self) -> (Vec<u8>, usize) {
        (self.raw, self.count)
    }
}

/// The records of one slice, decrypted and decompressed, in one buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceRecords {
    raw: Vec<u8>,
    count: u32,
}

impl SliceRecords {
    /// Checks that `raw` holds exactly `count` records.
    pub fn new(raw: Vec<u8>, count: u32) -> Result<SliceRecords, FormatError> {
        let mut rest: &[u8] = &raw;
        for i in 0..count {
            if rest.len() < 4 {
                return Err(FormatError::new(format!("record {i} length truncated")));
            }
            let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            rest = &rest[4..];
            if len > rest.len() {
                return Err(FormatError::new(format!("record {i} runs past the slice")));
            }
            rest = &rest[len..];
        }
        if !rest.is_empty() {
            return Err(FormatError::new("bytes left over after the last record"));
        }
        Ok(SliceRecords { raw, count })
    }

    /// `records` in one buffer, as a frame's payload holds them.
    pub fn from_records<R: AsRef<[u8]>>(records: &[R]) -> SliceRecords {
        SliceRecords {
            raw: encode_records(records),
            count: u32::try_from(records.len()).expect("a slice holds far fewer records"),
        }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The records in order, borrowed from the buffer.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut rest: &[u8] = &self.raw;
        (0..self.count).map(move |_| {
            // `new` checked every length, so these slices are in bounds.
            let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let record = &rest[4..4 + len];
            rest = &rest[4 + len..];
            record
        })
    }

    /// One `Vec` per record.
    pub fn to_vecs(&self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }
}

/// Decodes `count` records; every length is checked against what is left.
pub fn decode_records(raw: &[u8], count: u32) -> Result<Vec<Vec<u8>>, FormatError> {
    // Each record takes at least 4 bytes, so a larger count is a lie; checked
    // before anything is allocated from it.
    if count as usize > raw.len() / 4 {
        return Err(FormatError::new(format!(
            "record count {count} does not fit in {} bytes",
            raw.len()
        )));
    }
    Ok(SliceRecords::new(raw.to_vec(), count)?.to_vecs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_buf_encodes_as_the_store_does() {
        let recs: Vec<&[u8]> = vec![b"a,b", b"", b"ccc"];
        let mut buf = RecordsBuf::with_capacity(0);
        for r in &recs {
            buf.push(r);
        }
        assert_eq!(buf.len(), 3);
        let (raw, count) = buf.into_parts();
        assert_eq!(count, 3);
        assert_eq!(raw, encode_records(&recs));
    }

    #[test]
    fn records_round_trip() {
        let recs: Vec<&[u8]> = vec![b"a,b", b"", b"ccc"];
        let raw = encode_records(&recs);
        let back = decode_records(&raw, 3).unwrap();
        assert_eq!(back, vec![b"a,b".to_vec(), vec![], b"ccc".to_vec()]);
        let borrowed = SliceRecords::new(raw, 3).unwrap();
        assert_eq!(borrowed.iter().collect::<Vec<_>>(), recs);
    }

    #[test]
    fn a_lying_record_count_is_rejected_before_allocating() {
        let raw = encode_records(&[b"x"]);
        assert!(decode_records(&raw, u32::MAX).is_err());
        assert!(decode_records(&raw, 2).is_err());
        assert!(decode_records(&raw, 0).is_err());
        assert!(SliceRecords::new(raw, u32::MAX).is_err());
    }
}
