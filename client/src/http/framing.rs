//! The download's framing (`GET /api/jobs/{id}/output?framing=length`):
//! each record as a 4-byte little-endian length and its bytes, so a
//! record holding a newline (a quoted CSV field) comes back whole. With
//! `&separators=true` (`main` only; a server that knows it answers with
//! the header [`SEPARATORS_HEADER`]), each record is followed by its
//! `after` and then its `before`, each framed the same way,
//! [`NO_SEPARATOR`] as the length of a usual one. The server writes with
//! [`write_framed`] / [`write_separated`], the client reads with
//! [`FramedRecords`] / [`SeparatedRecords`]: one definition.

use std::io::{self, Read};

use booster_runtime::Separators;

/// The download framing of length-prefixed records.
pub const LENGTH_FRAMING: &str = "length";
/// The response header a server sets when it sends separators.
pub const SEPARATORS_HEADER: &str = "x-booster-separators";
/// The length that stands for a usual separator (`None`).
pub const NO_SEPARATOR: u32 = u32::MAX;

/// One record as the `length` framing sends it.
pub fn write_framed(record: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(record.len()).expect("records are capped far below 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(record);
}

/// One record and its separators as `framing=length&separators=true`
/// sends them.
pub fn write_separated(record: &[u8], separators: &Separators, out: &mut Vec<u8>) {
    write_framed(record, out);
    for side in [&separators.after, &separators.before] {
        match side {
            Some(bytes) => write_framed(bytes, out),
            None => out.extend_from_slice(&NO_SEPARATOR.to_le_bytes()),
        }
    }
}

/// The records and separators of a `framing=length&separators=true`
/// download.
pub struct SeparatedRecords<R> {
    framed: FramedRecords<R>,
}

impl<R: Read> SeparatedRecords<R> {
    pub fn new(reader: R) -> SeparatedRecords<R> {
        SeparatedRecords {
            framed: FramedRecords::new(reader),
        }
    }
}

impl<R: Read> Iterator for SeparatedRecords<R> {
    type Item = io::Result<(Vec<u8>, Separators)>;
    fn next(&mut self) -> Option<Self::Item> {
        let record = match self.framed.next()? {
            Ok(record) => record,
            Err(e) => return Some(Err(e)),
        };
        let mut side = || match self.framed.next_optional() {
            Some(result) => result,
            None => Err(broke_off()),
        };
        let after = match side() {
            Ok(after) => after,
            Err(e) => return Some(Err(e)),
        };
        Some(side().map(|before| (record, Separators { before, after })))
    }
}

/// The records of a `length`-framed download.
pub struct FramedRecords<R> {
    reader: R,
}

impl<R: Read> FramedRecords<R> {
    pub fn new(reader: R) -> FramedRecords<R> {
        FramedRecords { reader }
    }
}

impl<R: Read> Iterator for FramedRecords<R> {
    type Item = io::Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_optional()
            .map(|r| r.and_then(|bytes| bytes.ok_or_else(broke_off)))
    }
}

impl<R: Read> FramedRecords<R> {
    /// The next frame; `Ok(None)` for the length [`NO_SEPARATOR`].
    fn next_optional(&mut self) -> Option<io::Result<Option<Vec<u8>>>> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.reader.read(&mut len[got..]) {
                Ok(0) if got == 0 => return None,
                Ok(0) => return Some(Err(broke_off())),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(e)),
            }
        }
        // Read up to the length the frame claims, never allocate it up
        // front: a reply that is not framed (an older server) reads as a
        // huge length, then ends early, and says so.
        let len = u32::from_le_bytes(len);
        if len == NO_SEPARATOR {
            return Some(Ok(None));
        }
        let want = u64::from(len);
        let mut record = Vec::with_capacity(want.min(1 << 16) as usize);
        Some(
            (&mut self.reader)
                .take(want)
                .read_to_end(&mut record)
                .and_then(|n| {
                    if n as u64 == want {
                        Ok(Some(record))
                    } else {
                        Err(broke_off())
                    }
                }),
        )
    }
}

fn broke_off() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the download broke off inside a record; the output is incomplete, download again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply that is not framed (an older server's newline text) reads
    /// as a huge first length: an error once the reply ends, with the
    /// buffer grown only as bytes arrive.
    #[test]
    fn unframed_text_is_a_broken_off_download() {
        let text = b"abcd,1\nefgh,2\n".to_vec();
        let mut records = FramedRecords::new(std::io::Cursor::new(text));
        let err = records.next().expect("an item").unwrap_err();
        assert!(err.to_string().contains("broke off"), "{err}");
    }

    #[test]
    fn separated_records_come_back_with_their_separators_and_a_cut_is_an_error() {
        let sent = vec![
            (b"a\nb".to_vec(), Separators::default()),
            (
                Vec::new(),
                Separators {
                    before: Some(b"\n\n".to_vec()),
                    after: Some(Vec::new()),
                },
            ),
        ];
        let mut wire = Vec::new();
        let mut ends = Vec::new();
        for (record, separators) in &sent {
            write_separated(record, separators, &mut wire);
            ends.push(wire.len());
        }
        let back: Vec<(Vec<u8>, Separators)> = SeparatedRecords::new(wire.as_slice())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, sent);
        for cut in 1..wire.len() {
            let got: Vec<_> = SeparatedRecords::new(&wire[..cut]).collect();
            let broken = got.iter().any(Result::is_err);
            assert_eq!(broken, !ends.contains(&cut), "cut at {cut}: {got:?}");
        }
    }

    #[test]
    fn framed_records_come_back_whole_and_a_cut_is_an_error() {
        let mut wire = Vec::new();
        for r in [&b"a\nb"[..], b"", b"\xffc"] {
            write_framed(r, &mut wire);
        }
        let back: Vec<Vec<u8>> = FramedRecords::new(wire.as_slice())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, vec![b"a\nb".to_vec(), Vec::new(), b"\xffc".to_vec()]);
        let cut = &wire[..wire.len() - 1];
        assert!(FramedRecords::new(cut).any(|r| r.is_err()));
    }
}
