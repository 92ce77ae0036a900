//! CSV records with their exact source bytes.
//!
//! The `csv` crate finds record boundaries (quoted commas, quotes and
//! newlines); a tee under its reader keeps the bytes it consumed, so each
//! record is stored as it was written and `download` gives the file back
//! byte for byte (line endings normalised to `\n`). A record whose field
//! count differs from the header's is rejected with its line number.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use super::input::{Item, RecordSource};

/// The header row: its raw line (written back on download) and column names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvHeader {
    pub raw: String,
    pub columns: Vec<String>,
}

#[derive(Default)]
struct TeeBuffer {
    bytes: Vec<u8>,
    /// Offset in the stream of `bytes[0]`.
    base_offset: u64,
}

impl TeeBuffer {
    /// Bytes `[start, end)` of the stream; forgets everything before `end`.
    fn take(&mut self, start: u64, end: u64) -> Vec<u8> {
        let from = (start.max(self.base_offset) - self.base_offset) as usize;
        let to = (end - self.base_offset) as usize;
        let raw = self.bytes[from..to].to_vec();
        self.bytes.drain(..to);
        self.base_offset = end;
        raw
    }
}

struct Tee<R> {
    inner: R,
    buffer: Arc<Mutex<TeeBuffer>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut tee = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        tee.bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

pub struct CsvSource<R> {
    reader: csv::Reader<Tee<R>>,
    buffer: Arc<Mutex<TeeBuffer>>,
    record: csv::ByteRecord,
    columns: usize,
}

impl<R: Read + Send> CsvSource<R> {
    pub fn new(inner: R) -> CsvSource<R> {
        let buffer = Arc::new(Mutex::new(TeeBuffer::default()));
        let tee = Tee {
            inner,
            buffer: buffer.clone(),
        };
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(tee);
        CsvSource {
            reader,
            buffer,
            record: csv::ByteRecord::new(),
            columns: 0,
        }
    }

    /// Reads the first record as the header. None for an empty input.
    pub fn read_header(&mut self) -> io::Result<Option<CsvHeader>> {
        let Some((raw, _line)) = self.read_raw()? else {
            return Ok(None);
        };
        let raw = String::from_utf8(raw).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, "the CSV header is not UTF-8")
        })?;
        let columns: Vec<String> = self
            .record
            .iter()
            .map(|c| String::from_utf8_lossy(c).trim().to_string())
            .collect();
        self.columns = columns.len();
        Ok(Some(CsvHeader { raw, columns }))
    }

    /// The next record's raw bytes (terminator removed) and starting line.
    fn read_raw(&mut self) -> io::Result<Option<(Vec<u8>, u64)>> {
        let more = self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(csv_to_io)?;
        if !more {
            return Ok(None);
        }
        let start = self.record.position().map_or(0, |p| p.byte());
        let end = self.reader.position().byte();
        let mut raw = self
            .buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(start, end);
        // The reader's record position can sit before the blank lines and
        // the `\n` of a `\r\n` that precede the record: no record starts
        // with a line break (a quoted one starts with `"`), so drop them and
        // count them as lines.
        let leading = raw
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        let skipped_lines = raw[..leading].iter().filter(|b| **b == b'\n').count() as u64;
        raw.drain(..leading);
        while matches!(raw.last(), Some(b'\n' | b'\r')) {
            raw.pop();
        }
        let line = self.record.position().map_or(0, |p| p.line()) + skipped_lines;
        Ok(Some((raw, line)))
    }
}

fn csv_to_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}")),
    }
}

impl<R: Read + Send> RecordSource for CsvSource<R> {
    fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> io::Result<()> {
        while out.len() < max {
            let Some((raw, line)) = self.read_raw()? else {
                break;
            };
            let fields = self.record.len();
            if fields == self.columns {
                out.push(Item::Record { bytes: raw, line });
            } else {
                out.push(Item::Rejected {
                    raw,
                    line,
                    message: format!(
                        "malformed CSV: {fields} fields where the header has {}",
                        self.columns
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &[u8]) -> (Option<CsvHeader>, Vec<Item>) {
        let mut src = CsvSource::new(text);
        let header = src.read_header().unwrap();
        let mut items = Vec::new();
        loop {
            let mut batch = Vec::new();
            src.next_batch(2, &mut batch).unwrap();
            if batch.is_empty() {
                return (header, items);
            }
            items.extend(batch);
        }
    }

    fn record(bytes: &str, line: u64) -> Item {
        Item::Record {
            bytes: bytes.as_bytes().to_vec(),
            line,
        }
    }

    #[test]
    fn quoted_fields_keep_their_exact_bytes() {
        let text = b"id,name\n1,\"Smith, \"\"Jr\"\"\"\n2,\"two\nlines\"\n3,plain\n";
        let (header, items) = read_all(text);
        let header = header.unwrap();
        assert_eq!(header.raw, "id,name");
        assert_eq!(header.columns, vec!["id", "name"]);
        assert_eq!(
            items,
            vec![
                record("1,\"Smith, \"\"Jr\"\"\"", 2),
                record("2,\"two\nlines\"", 3),
                record("3,plain", 5),
            ]
        );
    }

    #[test]
    fn wrong_field_count_is_rejected_with_its_line() {
        let (_, items) = read_all(b"a,b\n1,2\n1,2,3\n4,5\n");
        assert_eq!(items[0], record("1,2", 2));
        assert!(
            matches!(&items[1], Item::Rejected { raw, line: 3, message } if raw == b"1,2,3" && message.contains("3 fields")),
            "{:?}",
            items[1]
        );
        assert_eq!(items[2], record("4,5", 4));
    }

    #[test]
    fn crlf_and_blank_lines_keep_line_numbers() {
        let (header, items) = read_all(b"a,b\r\n1,2\r\n\r\n3,4\r\n");
        assert_eq!(header.unwrap().raw, "a,b");
        assert_eq!(items, vec![record("1,2", 2), record("3,4", 4)]);
    }

    #[test]
    fn last_record_without_newline_is_read() {
        let (_, items) = read_all(b"a\nx\ny");
        assert_eq!(items, vec![record("x", 2), record("y", 3)]);
    }

    #[test]
    fn empty_input_has_no_header() {
        let (header, items) = read_all(b"");
        assert!(header.is_none());
        assert!(items.is_empty());
    }
}
