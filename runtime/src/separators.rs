//! What an input had between its records, kept so a 1:1 output can be
//! written back byte for byte (ARCHITECTURE.md, `src/separators.rs`).
//!
//! The runtime does not know what a separator means (the tools' formats
//! decide: a terminator, blank lines); it stores the ones a reader calls
//! irregular beside their input slice, in the same batch, and gives them
//! back with the `main` output when the output slice is 1:1 with it.
//!
//! Frame (stream [`STREAM_SEPARATORS`], one per input slice that has any):
//! record 0 is the slice's accepted records, `u32` LE; every later record
//! is one separator: `u32` LE index of its record in the slice, `u8` side
//! (0 before, 1 after), then its bytes.

/// Stream of a job's separators, keyed by input slice seq.
pub const STREAM_SEPARATORS: u32 = 5;

/// The bytes around a record that belong to no record. `None` is "the
/// job's usual line ending" (what nearly every record has): not stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Separators {
    /// Only on an input's first record: the bytes before it that no record
    /// holds (blank lines after a CSV header).
    pub before: Option<Vec<u8>>,
    /// The exact bytes after the record up to the next one or the end of
    /// the input (its terminator, blank lines; empty for a last line
    /// without a terminator).
    pub after: Option<Vec<u8>>,
}

impl Separators {
    /// Nothing to store: both sides are the job's usual.
    pub fn is_regular(&self) -> bool {
        self.before.is_none() && self.after.is_none()
    }

    /// Bytes held, for the slice's size budget.
    pub(crate) fn len(&self) -> usize {
        self.before.as_ref().map_or(0, Vec::len) + self.after.as_ref().map_or(0, Vec::len)
    }
}

const BEFORE: u8 = 0;
const AFTER: u8 = 1;

/// The frame's records for a slice of `records` accepted records whose
/// irregular separators are `entries` (index in the slice, ascending).
pub(crate) fn encode(records: u32, entries: &[(u32, Separators)]) -> Vec<Vec<u8>> {
    let mut out = vec![records.to_le_bytes().to_vec()];
    for (index, seps) in entries {
        debug_assert!(*index < records, "a separator belongs to a record");
        for (side, bytes) in [(BEFORE, &seps.before), (AFTER, &seps.after)] {
            if let Some(bytes) = bytes {
                let mut r = Vec::with_capacity(5 + bytes.len());
                r.extend_from_slice(&index.to_le_bytes());
                r.push(side);
                r.extend_from_slice(bytes);
                out.push(r);
            }
        }
    }
    out
}

/// A slice's separators as stored: its record count and, in record order,
/// the records that have any.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SliceSeparators {
    pub records: u32,
    pub entries: Vec<(u32, Separators)>,
}

/// Decodes a frame [`encode`] wrote; hostile bytes are an error saying
/// what is wrong with them, never a panic.
pub(crate) fn decode(records: &[Vec<u8>]) -> Result<SliceSeparators, String> {
    let bad = |why: &str| format!("the frame {why}");
    let (head, rest) = records.split_first().ok_or_else(|| bad("is empty"))?;
    let count: [u8; 4] = head
        .as_slice()
        .try_into()
        .map_err(|_| bad("has no record count"))?;
    let mut out = SliceSeparators {
        records: u32::from_le_bytes(count),
        entries: Vec::new(),
    };
    for r in rest {
        if r.len() < 5 {
            return Err(bad("holds a record shorter than its index and side"));
        }
        let index = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        if index >= out.records {
            return Err(bad("names a record past the slice's count"));
        }
        let bytes = r[5..].to_vec();
        if out.entries.last().is_none_or(|(i, _)| *i != index) {
            if out.entries.last().is_some_and(|(i, _)| *i > index) {
                return Err(bad("is out of record order"));
            }
            out.entries.push((index, Separators::default()));
        }
        let seps = &mut out.entries.last_mut().expect("pushed above").1;
        match r[4] {
            BEFORE => seps.before = Some(bytes),
            AFTER => seps.after = Some(bytes),
            _ => return Err(bad("has an unknown side")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seps(before: Option<&[u8]>, after: Option<&[u8]>) -> Separators {
        Separators {
            before: before.map(<[u8]>::to_vec),
            after: after.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn separators_survive_their_frame() {
        let entries = vec![
            (0, seps(Some(b"\n\n"), None)),
            (3, seps(None, Some(b"\r\n\r\n"))),
            (9, seps(Some(b""), Some(b""))),
        ];
        let frame = encode(10, &entries);
        assert_eq!(
            decode(&frame).unwrap(),
            SliceSeparators {
                records: 10,
                entries
            }
        );
    }

    #[test]
    fn hostile_separator_frames_are_errors() {
        let ok = encode(2, &[(1, seps(None, Some(b"\n\n")))]);
        for frame in [
            vec![],
            vec![vec![1, 0]],
            vec![ok[0].clone(), vec![1, 0, 0]],
            vec![ok[0].clone(), vec![2, 0, 0, 0, 1]],
            vec![ok[0].clone(), vec![1, 0, 0, 0, 7]],
            vec![ok[0].clone(), ok[1].clone(), vec![0, 0, 0, 0, 1]],
        ] {
            assert!(decode(&frame).is_err(), "{frame:?}");
        }
    }
}
