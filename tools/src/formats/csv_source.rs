//! CSV records with their exact source bytes.
//!
//! The `csv` crate finds record boundaries (quoted commas, quotes and
//! newlines); a tee under its reader keeps the bytes it consumed, so each
//! record is stored as it was written, and the line breaks between records
//! (terminators, blank lines) are kept as their separators, so `download`
//! gives the file back byte for byte. A record whose field count differs
//! from the header's is rejected with its line number.
//!
//! A record may hold at most `max_record_bytes` (default
//! [`DEFAULT_MAX_RECORD_BYTES`]). A longer one, and a quote still open at the
//! end of the input, is an error naming the line where the record (and so
//! its quote) began; parsing resumes at the next line, from the bytes
//! already read, so one stray quote costs one line, never the rest of the
//! file. Memory stays within about one record.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use super::columns::RowPlan;
use super::input::{Item, RecordSource};
use super::separated::Separated;

/// The largest CSV record accepted by default.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;

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
    /// The last read of the input returned 0 bytes.
    at_eof: bool,
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

type Input = Box<dyn Read + Send>;

/// The bytes read by the csv reader, kept until a record takes them. Reading
/// fails once more than `limit` bytes are held: the record being read is
/// too long (the csv reader reads ahead at most one buffer, which `limit`
/// allows for).
struct Tee {
    inner: Input,
    buffer: Arc<Mutex<TeeBuffer>>,
    limit: usize,
}

/// The message of the error a [`Tee`] returns for a too-long record.
const TOO_LONG: &str = "a CSV record over the size limit";

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tee = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        if tee.bytes.len() > self.limit {
            return Err(io::Error::other(TOO_LONG));
        }
        let n = self.inner.read(buf)?;
        tee.bytes.extend_from_slice(&buf[..n]);
        tee.at_eof = n == 0 && !buf.is_empty();
        Ok(n)
    }
}

/// The csv reader's buffer: it reads ahead at most this much past the
/// record it is parsing, so the tee may hold the record plus this.
const READ_AHEAD_BYTES: usize = 8 * 1024;

fn csv_reader(
    inner: Input,
    buffer: Arc<Mutex<TeeBuffer>>,
    max_record_bytes: usize,
    delimiter: u8,
) -> csv::Reader<Tee> {
    let tee = Tee {
        inner,
        buffer,
        limit: max_record_bytes.saturating_add(READ_AHEAD_BYTES),
    };
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .buffer_capacity(READ_AHEAD_BYTES)
        .from_reader(tee)
}

pub struct CsvSource {
    reader: csv::Reader<Tee>,
    buffer: Arc<Mutex<TeeBuffer>>,
    record: csv::ByteRecord,
    columns: usize,
    max_record_bytes: usize,
    /// Lines before the current csv reader's line 1 (a new reader starts
    /// after each record that could not be read).
    line_offset: u64,
    /// The line (in the current reader's count) where the tee's bytes begin.
    base_line: u64,
    delimiter: u8,
    /// The column rules' checks and projection for each row.
    plan: RowPlan,
    /// The line breaks around each record, as its separators.
    separated: Separated,
    ended: bool,
    /// The blank lines before the header.
    header_lead: Vec<u8>,
    /// The line breaks after the record just read (reused: no allocation
    /// per record).
    trail: Vec<u8>,
}

/// What reading one record gave.
enum Raw {
    /// A record's bytes, its first line, and the line breaks before it
    /// that the reader took with it (those after it: `CsvSource::trail`).
    Record {
        raw: Vec<u8>,
        line: u64,
        lead: Vec<u8>,
    },
    /// Too long or unterminated: what is kept of it, its first line, why.
    Bad(Vec<u8>, u64, String),
}

impl CsvSource {
    #[cfg(test)]
    pub fn new(inner: impl Read + Send + 'static, max_record_bytes: usize) -> CsvSource {
        CsvSource::with_delimiter(inner, max_record_bytes, b',', b"\n")
    }

    /// Fields separated by `delimiter` (`|` for PSV, tab for TSV); lines
    /// usually end with `ending` (the layout's).
    pub fn with_delimiter(
        inner: impl Read + Send + 'static,
        max_record_bytes: usize,
        delimiter: u8,
        ending: &'static [u8],
    ) -> CsvSource {
        let buffer = Arc::new(Mutex::new(TeeBuffer::default()));
        CsvSource {
            reader: csv_reader(Box::new(inner), buffer.clone(), max_record_bytes, delimiter),
            buffer,
            record: csv::ByteRecord::new(),
            columns: 0,
            max_record_bytes,
            line_offset: 0,
            base_line: 1,
            delimiter,
            plan: RowPlan::default(),
            separated: Separated::new(ending, ending),
            ended: false,
            header_lead: Vec::new(),
            trail: Vec::new(),
        }
    }

    /// Checks and projects every row by `plan` (from the header).
    pub fn set_plan(&mut self, plan: RowPlan) {
        self.plan = plan;
    }

    /// Reads the first record as the header. None for an empty input.
    pub fn read_header(&mut self) -> io::Result<Option<CsvHeader>> {
        let raw = match self.read_raw()? {
            None => return Ok(None),
            Some(Raw::Record { raw, lead, .. }) => {
                // Blank lines before the header are the layout's.
                self.header_lead = lead;
                self.separated.gap(&self.trail);
                raw
            }
            Some(Raw::Bad(_, line, message)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the CSV header (line {line}) cannot be read: {message}"),
                ))
            }
        };
        let raw = String::from_utf8(raw).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the header is not UTF-8; pass the file's --encoding (e.g. --encoding latin1)",
            )
        })?;
        let columns: Vec<String> = self
            .record
            .iter()
            .map(|c| String::from_utf8_lossy(c).trim().to_string())
            .collect();
        self.columns = columns.len();
        Ok(Some(CsvHeader { raw, columns }))
    }

    /// The line breaks before the header (read by `read_header`).
    pub fn header_lead(&self) -> &[u8] {
        &self.header_lead
    }

    /// The next record's raw bytes (terminator removed) and starting line.
    fn read_raw(&mut self) -> io::Result<Option<Raw>> {
        let more = match self.reader.read_byte_record(&mut self.record) {
            Ok(more) => more,
            Err(e) => {
                let e = csv_to_io(e);
                if e.to_string() == TOO_LONG {
                    let message = self.too_long_message();
                    let held = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
                    let record = held.bytes.trim_ascii_start();
                    let swallowed = line_count(&record[..record.len().min(self.max_record_bytes)]);
                    drop(held);
                    let message =
                        format!("{message}; it swallowed {swallowed} lines within the limit");
                    return self.skip_first_line(message).map(Some);
                }
                return Err(e);
            }
        };
        if !more {
            return Ok(None);
        }
        let start = self.record.position().map_or(0, |p| p.byte());
        let end = self.reader.position().byte();
        let mut tee = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let at_end = tee.at_eof && end == tee.base_offset + tee.bytes.len() as u64;
        let from = (start.max(tee.base_offset) - tee.base_offset) as usize;
        let to = (end - tee.base_offset) as usize;
        if at_end && quote_left_open(&tee.bytes[from..to]) {
            let swallowed = line_count(tee.bytes[from..to].trim_ascii());
            drop(tee);
            let message = format!(
                "malformed CSV: a quote opened in the record starting on this line is never \
                 closed and would swallow the {swallowed} lines to the end of the input; the \
                 line is skipped and parsing resumes at the next line"
            );
            return self.skip_first_line(message).map(Some);
        }
        let mut raw = tee.take(start, end);
        drop(tee);
        let lead = drop_leading_line_breaks(&mut raw);
        let skipped_lines = lead.iter().filter(|b| **b == b'\n').count() as u64;
        let body = raw.len()
            - raw
                .iter()
                .rev()
                .take_while(|b| matches!(b, b'\n' | b'\r'))
                .count();
        self.trail.clear();
        self.trail.extend_from_slice(&raw[body..]);
        raw.truncate(body);
        let line =
            self.line_offset + self.record.position().map_or(0, |p| p.line()) + skipped_lines;
        self.base_line = self.reader.position().line();
        if raw.len() > self.max_record_bytes {
            // Complete, but over the limit by less than the read-ahead.
            raw.truncate(self.max_record_bytes);
            return Ok(Some(Raw::Bad(raw, line, self.too_long_message())));
        }
        Ok(Some(Raw::Record { raw, line, lead }))
    }

    /// The bytes the reader read past the last record: blank lines at the
    /// end of the input.
    fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buffer.lock().unwrap_or_else(|p| p.into_inner()).bytes)
    }

    fn too_long_message(&self) -> String {
        format!(
            "malformed CSV: the record starting on this line is longer than {} bytes \
             (an unclosed quote?); the line is skipped and parsing resumes at the next line \
             (--max-record-bytes raises the limit)",
            self.max_record_bytes
        )
    }

    /// The record that begins at the tee's first byte cannot be read:
    /// rejects its first line and starts a new csv reader on the bytes after
    /// that line (already read) followed by the rest of the input.
    fn skip_first_line(&mut self, message: String) -> io::Result<Raw> {
        let mut held =
            std::mem::take(&mut self.buffer.lock().unwrap_or_else(|p| p.into_inner()).bytes);
        let lead = drop_leading_line_breaks(&mut held);
        let line =
            self.line_offset + self.base_line + lead.iter().filter(|b| **b == b'\n').count() as u64;
        let empty = csv_reader(
            Box::new(io::empty()),
            self.buffer.clone(),
            0,
            self.delimiter,
        );
        let mut inner = std::mem::replace(&mut self.reader, empty)
            .into_inner()
            .inner;
        let (mut first_line, rest) = match memchr::memchr(b'\n', &held) {
            Some(i) => (held[..i].to_vec(), held[i + 1..].to_vec()),
            None => {
                // The line itself is longer than the limit: read on to its end.
                let rest = skip_to_next_line(&mut inner)?;
                (held, rest)
            }
        };
        first_line.truncate(self.max_record_bytes);
        if first_line.last() == Some(&b'\r') {
            first_line.pop();
        }
        *self.buffer.lock().unwrap_or_else(|p| p.into_inner()) = TeeBuffer::default();
        let resumed: Input = Box::new(io::Cursor::new(rest).chain(inner));
        self.reader = csv_reader(
            resumed,
            self.buffer.clone(),
            self.max_record_bytes,
            self.delimiter,
        );
        self.line_offset = line;
        self.base_line = 1;
        Ok(Raw::Bad(first_line, line, message))
    }
}

/// Reads and drops bytes up to and including the next `\n`; returns what
/// was read after it.
fn skip_to_next_line(inner: &mut Input) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match inner.read(&mut buf) {
            Ok(0) => return Ok(Vec::new()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(buf[i + 1..n].to_vec());
        }
    }
}

/// How many lines `bytes` spans (a last line without `\n` counts).
fn line_count(bytes: &[u8]) -> u64 {
    let breaks = memchr::memchr_iter(b'\n', bytes).count() as u64;
    breaks + u64::from(!bytes.is_empty() && bytes.last() != Some(&b'\n'))
}

/// A record that runs to the end of the input over several lines with an
/// odd number of quote characters: its last quote never closed.
fn quote_left_open(raw: &[u8]) -> bool {
    let body = raw.trim_ascii();
    body.contains(&b'\n') && memchr::memchr_iter(b'"', body).count() % 2 == 1
}

/// The reader's record position can sit before the blank lines and the
/// `\n` of a `\r\n` that precede the record: no record starts with a line
/// break (a quoted one starts with `"`), so they are taken off and given
/// back.
fn drop_leading_line_breaks(raw: &mut Vec<u8>) -> Vec<u8> {
    let leading = raw
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    raw.drain(..leading).collect()
}

fn csv_to_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}")),
    }
}

impl RecordSource for CsvSource {
    fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> io::Result<()> {
        while out.len() < max && !self.ended {
            let (raw, line, lead) = match self.read_raw()? {
                None => {
                    let rest = self.rest();
                    self.separated.gap(&rest);
                    self.separated.end(out);
                    self.ended = true;
                    break;
                }
                Some(Raw::Bad(raw, line, message)) => {
                    self.separated
                        .rejected(Item::Rejected { raw, line, message }, out);
                    continue;
                }
                Some(Raw::Record { raw, line, lead }) => (raw, line, lead),
            };
            self.separated.gap(&lead);
            let fields = self.record.len();
            let rejected = if fields == self.columns {
                match self.plan.check(&self.record) {
                    Ok(()) => {
                        let bytes = self.plan.project(&self.record, raw);
                        self.separated.record(bytes, line, out);
                        None
                    }
                    Err(message) => Some(Item::Rejected { raw, line, message }),
                }
            } else {
                Some(Item::Rejected {
                    raw,
                    line,
                    message: format!(
                        "malformed CSV: {fields} fields where the header has {}",
                        self.columns
                    ),
                })
            };
            if let Some(item) = rejected {
                self.separated.rejected(item, out);
            }
            self.separated.gap(&self.trail);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &[u8]) -> (Option<CsvHeader>, Vec<Item>) {
        read_all_limited(text, DEFAULT_MAX_RECORD_BYTES)
    }

    /// The items with their separators, read two at a time.
    fn read_separated(text: &[u8], max_record_bytes: usize) -> (Option<CsvHeader>, Vec<Item>) {
        let mut src = CsvSource::new(io::Cursor::new(text.to_vec()), max_record_bytes);
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

    /// The items, separators left out.
    fn read_all_limited(text: &[u8], max_record_bytes: usize) -> (Option<CsvHeader>, Vec<Item>) {
        let (header, mut items) = read_separated(text, max_record_bytes);
        for item in &mut items {
            if let Item::Record { separators, .. } = item {
                *separators = Default::default();
            }
        }
        (header, items)
    }

    fn record(bytes: &str, line: u64) -> Item {
        Item::record(bytes.as_bytes().to_vec(), line)
    }

    /// A record's bytes, its `before` and its `after` (`None`: usual).
    type Seen<'a> = (&'a [u8], Option<&'a [u8]>, Option<&'a [u8]>);

    /// Each record's bytes and its separators.
    fn with_separators(items: &[Item]) -> Vec<Seen<'_>> {
        items
            .iter()
            .map(|item| match item {
                Item::Record {
                    bytes, separators, ..
                } => (
                    &bytes[..],
                    separators.before.as_deref(),
                    separators.after.as_deref(),
                ),
                Item::Rejected { raw, .. } => (&raw[..], None, None),
            })
            .collect()
    }

    #[test]
    fn blank_lines_and_the_end_are_kept_as_separators() {
        let text = b"id,note\n\n1,\"a\nb\"\n\n\n2,c\n3,d\n\n";
        let (_, items) = read_separated(text, DEFAULT_MAX_RECORD_BYTES);
        assert_eq!(
            with_separators(&items),
            vec![
                (&b"1,\"a\nb\""[..], Some(&b"\n\n"[..]), Some(&b"\n\n\n"[..])),
                (b"2,c", None, None),
                (b"3,d", None, Some(b"\n\n")),
            ]
        );
        let (_, items) = read_separated(b"id\r\n1\r\n2", DEFAULT_MAX_RECORD_BYTES);
        assert_eq!(
            with_separators(&items),
            vec![
                (&b"1"[..], Some(&b"\r\n"[..]), Some(&b"\r\n"[..])),
                (b"2", None, Some(b""))
            ],
            "the CSV source here is told \\n is usual; \\r\\n is kept exactly"
        );
    }

    #[test]
    fn a_rejected_row_takes_its_own_line_break_along() {
        let (_, items) = read_separated(b"a,b\n1,2\n\n1,2,3\n\n4,5\n", DEFAULT_MAX_RECORD_BYTES);
        assert_eq!(
            with_separators(&items),
            vec![
                (&b"1,2"[..], None, Some(&b"\n\n"[..])),
                (b"1,2,3", None, None),
                (b"4,5", None, None)
            ]
        );
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

    fn rejected_line(item: &Item) -> Option<(u64, &str)> {
        match item {
            Item::Rejected { line, message, .. } => Some((*line, message.as_str())),
            Item::Record { .. } => None,
        }
    }

    #[test]
    fn an_unclosed_quote_costs_its_line_and_every_later_row_is_counted() {
        let text = b"id,name\n1,\"never closed\n2,b\n3,c\n4,d\n";
        let (_, items) = read_all(text);
        let (line, message) = rejected_line(&items[0]).expect("line 2 is an error");
        assert_eq!(line, 2);
        assert!(message.contains("never closed"), "{message}");
        assert!(message.contains("swallow the 4 lines"), "{message}");
        assert_eq!(
            items[1..].to_vec(),
            vec![record("2,b", 3), record("3,c", 4), record("4,d", 5)]
        );
    }

    #[test]
    fn a_record_over_the_limit_is_an_error_naming_where_its_quote_opened() {
        // The quote opened on line 3 swallows the next lines until the
        // limit; parsing resumes on line 4, so every later row is counted.
        let mut text = b"id,name\n1,a\n2,\"open\n".to_vec();
        for i in 0..3000 {
            text.extend_from_slice(format!("{},row\n", i + 3).as_bytes());
        }
        let (_, items) = read_all_limited(&text, 64);
        assert_eq!(items[0], record("1,a", 2));
        let (line, message) = rejected_line(&items[1]).expect("line 3 is an error");
        assert_eq!(line, 3);
        assert!(message.contains("longer than 64 bytes"), "{message}");
        // "2,\"open\n" (8 bytes), 3,row .. 9,row (6 each) and 10,row,
        // 11,row (7 each) are the first 64 bytes: 10 lines.
        assert!(message.contains("swallowed 10 lines"), "{message}");
        match &items[1] {
            Item::Rejected { raw, .. } => assert_eq!(raw, b"2,\"open"),
            other => panic!("{other:?}"),
        }
        let rows: Vec<Item> = (0..3000)
            .map(|i| record(&format!("{},row", i + 3), i + 4))
            .collect();
        assert_eq!(items[2..].to_vec(), rows);
    }

    #[test]
    fn a_single_line_over_the_limit_is_skipped_to_its_end() {
        let mut text = b"id,name\n1,\"".to_vec();
        text.extend(std::iter::repeat_n(b'x', 300_000));
        text.extend_from_slice(b"\n2,b\n");
        let (_, items) = read_all_limited(&text, 1000);
        let (line, _) = rejected_line(&items[0]).expect("line 2 is an error");
        assert_eq!(line, 2);
        match &items[0] {
            Item::Rejected { raw, .. } => assert_eq!(raw.len(), 1000, "kept up to the limit"),
            other => panic!("{other:?}"),
        }
        assert_eq!(items[1..].to_vec(), vec![record("2,b", 3)]);
    }

    #[test]
    fn a_long_quoted_record_under_the_limit_is_kept_whole() {
        let field = "y".repeat(5000);
        let text = format!("id,name\n1,\"{field}\nmore\"\n2,b\n");
        let (_, items) = read_all_limited(text.as_bytes(), 6000);
        assert_eq!(
            items,
            vec![record(&format!("1,\"{field}\nmore\""), 2), record("2,b", 4)]
        );
    }
}
