//! Reading an input file as records: decompression by magic bytes, then the
//! format's record boundaries. A record the format cannot parse becomes an
//! [`Item::Rejected`] with its line number, never an error that stops the read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use booster_runtime::Separators;

use super::columns::ColumnRules;
use super::csv_source::{CsvHeader, CsvSource};
use super::encoding::{self, DecodeReader, InputEncoding, Utf8Records};
use super::fixed::{FixedLayout, FixedSource};
use super::json_array::{starts_an_array, JsonArraySource};
use super::layout::{file_ends_with_newline, LineEnding, TextLayout};
use super::separated::Separated;
use super::zip_input::{self, ZipChoice};
use super::{is_std_stream, Compression, Format};

/// One record read from the input, or one the format rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `line` is the 1-based line the record starts on; `separators` the
    /// bytes around it that no record holds, where they differ from the
    /// layout's (ARCHITECTURE.md, "Exact round trips").
    Record {
        bytes: Vec<u8>,
        line: u64,
        separators: Separators,
    },
    Rejected {
        raw: Vec<u8>,
        line: u64,
        message: String,
    },
}

impl Item {
    /// A record with the layout's usual separators.
    pub fn record(bytes: Vec<u8>, line: u64) -> Item {
        Item::Record {
            bytes,
            line,
            separators: Separators::default(),
        }
    }
}

/// Streams records in batches. An empty batch after a call means end of input.
pub trait RecordSource: Send {
    fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> io::Result<()>;
}

/// How far the reader is through the file on disk (compressed bytes for
/// compressed input), for progress bars.
#[derive(Clone, Debug, Default)]
pub struct ReadProgress {
    read_bytes: Arc<AtomicU64>,
    /// None for stdin.
    pub total_bytes: Option<u64>,
    /// How the input was compressed, as its magic bytes said.
    pub compression: Compression,
}

impl ReadProgress {
    pub fn read_bytes(&self) -> u64 {
        self.read_bytes.load(Ordering::Relaxed)
    }
}

/// How to read an input: what `run` and `submit` were asked.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    pub format: Format,
    pub max_record_bytes: usize,
    /// CSV only: another delimiter than the format's.
    pub delimiter: Option<u8>,
    /// `--encoding`; None: a BOM says, else the bytes are taken as they are.
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// CSV, PSV, TSV: the column rules.
    pub columns: ColumnRules,
    /// Fixed-width: the layout.
    pub layout: Option<FixedLayout>,
    /// Zip input: which members.
    pub zip: ZipChoice,
    /// Spreadsheet input: the sheet (the first by default) and the cap.
    pub sheet: Option<String>,
    pub max_sheet_cells: u64,
}

impl ReadOptions {
    pub fn new(format: Format, max_record_bytes: usize) -> ReadOptions {
        ReadOptions {
            format,
            max_record_bytes,
            delimiter: None,
            encoding: None,
            columns: ColumnRules::default(),
            layout: None,
            zip: ZipChoice::default(),
            sheet: None,
            max_sheet_cells: super::DEFAULT_MAX_SHEET_CELLS,
        }
    }
}

/// An opened input: its format, CSV header (if any) and its records.
pub struct InputSource {
    pub format: Format,
    pub header: Option<CsvHeader>,
    /// CSV, PSV, TSV: the field delimiter.
    pub delimiter: Option<u8>,
    /// How the input was decoded to UTF-8; None: taken as it is.
    pub encoding: Option<InputEncoding>,
    /// Fixed-width: the layout its lines were checked against.
    pub fixed_layout: Option<FixedLayout>,
    /// Its line terminators, written back on download.
    pub layout: TextLayout,
    pub progress: ReadProgress,
    pub records: Box<dyn RecordSource>,
}

struct CountingReader<R> {
    inner: R,
    read_bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read_bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `path` (`-` is stdin) and decompresses it by its magic bytes.
pub fn open_bytes(path: &Path) -> anyhow::Result<(Box<dyn BufRead + Send>, ReadProgress)> {
    open_bytes_with(path, &ZipChoice::default())
}

/// Like [`open_bytes`]; a zip archive gives the members `zip` chooses.
pub fn open_bytes_with(
    path: &Path,
    zip: &ZipChoice,
) -> anyhow::Result<(Box<dyn BufRead + Send>, ReadProgress)> {
    let mut progress = ReadProgress::default();
    if !is_std_stream(path) && zip_input::is_zip(path) {
        let (members, total_bytes) = zip_input::open_members(path, zip)?;
        progress.total_bytes = Some(total_bytes);
        let counted = CountingReader {
            inner: members,
            read_bytes: progress.read_bytes.clone(),
        };
        return Ok((
            Box::new(BufReader::with_capacity(256 << 10, counted)),
            progress,
        ));
    }
    if *zip != ZipChoice::default() {
        anyhow::bail!(
            "--member and --concat are for zip archives; {} is not one",
            path.display()
        );
    }
    let raw: Box<dyn Read + Send> = if is_std_stream(path) {
        Box::new(io::stdin())
    } else {
        let file = File::open(path).map_err(|e| input_error(path, e))?;
        let meta = file.metadata().map_err(|e| input_error(path, e))?;
        if meta.is_dir() {
            anyhow::bail!("input {} is a directory; pass a file", path.display());
        }
        progress.total_bytes = Some(meta.len());
        Box::new(file)
    };
    wrap(path, raw, progress)
}

fn wrap(
    path: &Path,
    raw: Box<dyn Read + Send>,
    progress: ReadProgress,
) -> anyhow::Result<(Box<dyn BufRead + Send>, ReadProgress)> {
    let counted = CountingReader {
        inner: raw,
        read_bytes: progress.read_bytes.clone(),
    };
    let mut progress = progress;
    // A pipe may stall: stdin is recognised at its first read, so nothing
    // waits for input before the job exists (a remote upload holds it).
    let decompressed: Box<dyn Read + Send> = if is_std_stream(path) {
        Box::new(LazyDecompress {
            path: path.to_path_buf(),
            raw: Some(Box::new(counted)),
            inner: None,
        })
    } else {
        let (decompressed, compression) = super::compression::decompress(path, Box::new(counted))?;
        progress.compression = compression;
        decompressed
    };
    let reader: Box<dyn BufRead + Send> =
        Box::new(BufReader::with_capacity(256 << 10, decompressed));
    Ok((reader, progress))
}

/// Decompression decided at the first read (see `wrap`).
struct LazyDecompress {
    path: std::path::PathBuf,
    raw: Option<Box<dyn Read + Send>>,
    inner: Option<Box<dyn Read + Send>>,
}

impl Read for LazyDecompress {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inner.is_none() {
            let raw = self.raw.take().unwrap_or_else(|| Box::new(io::empty()));
            let (reader, _) = super::compression::decompress(&self.path, raw)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:#}")))?;
            self.inner = Some(reader);
        }
        match &mut self.inner {
            Some(reader) => reader.read(buf),
            None => Ok(0),
        }
    }
}

fn input_error(path: &Path, e: io::Error) -> anyhow::Error {
    match e.kind() {
        io::ErrorKind::NotFound => {
            anyhow::anyhow!("input {} does not exist; check the path", path.display())
        }
        io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "cannot read input {}: permission denied; check its mode or owner",
            path.display()
        ),
        _ => anyhow::anyhow!("cannot open input {}: {e}", path.display()),
    }
}

/// Opens `path` as records of `format`; for CSV, reads the header row.
/// A CSV record longer than `max_record_bytes` is a record error
/// ([`super::DEFAULT_MAX_RECORD_BYTES`] unless the user asked otherwise).
pub fn open_source(
    path: &Path,
    format: Format,
    max_record_bytes: usize,
) -> anyhow::Result<InputSource> {
    open_source_with(path, &ReadOptions::new(format, max_record_bytes))
}

/// Opens `path` as `options` say.
pub fn open_source_with(path: &Path, options: &ReadOptions) -> anyhow::Result<InputSource> {
    if options.format == Format::Xlsx {
        return open_spreadsheet(path, options);
    }
    if options.zip.concat && options.format.is_delimited() {
        anyhow::bail!(
            "--concat joins lines, JSON Lines and fixed-width members; each CSV member has its \
             own header, so run a job per member with --member NAME"
        );
    }
    let (reader, progress) = open_bytes_with(path, &options.zip)?;
    let mut input =
        source_from_reader_with(reader, progress, options, &path.display().to_string())?;
    // Only a plain file's last byte is its text's last byte (and in UTF-16
    // a `\n` is not one byte).
    let bytewise = input
        .encoding
        .is_none_or(|e| e.encoding.is_ascii_compatible());
    let plain_file = input.progress.compression == Compression::None
        && !is_std_stream(path)
        && !zip_input::is_zip(path);
    if plain_file && bytewise {
        if let Some(ends) = file_ends_with_newline(path) {
            input.layout.final_newline = ends;
        }
    }
    Ok(input)
}

/// A spreadsheet's sheet, read as CSV.
fn open_spreadsheet(path: &Path, options: &ReadOptions) -> anyhow::Result<InputSource> {
    if is_std_stream(path) {
        anyhow::bail!("a spreadsheet cannot be read from stdin; pass it as a file");
    }
    let (header, rows) = super::xlsx::open_sheet(
        path,
        options.sheet.as_deref(),
        options.max_sheet_cells,
        &options.columns,
    )?;
    Ok(InputSource {
        format: Format::Csv,
        header,
        delimiter: Some(b','),
        encoding: None,
        fixed_layout: None,
        layout: TextLayout::default(),
        progress: ReadProgress::default(),
        records: Box::new(rows),
    })
}

/// Records of `format` from already-decompressed bytes (`booster serve`
/// parses uploads with this); `name` is what error messages call the input.
pub fn source_from_reader(
    reader: Box<dyn BufRead + Send>,
    progress: ReadProgress,
    format: Format,
    max_record_bytes: usize,
    name: &str,
) -> anyhow::Result<InputSource> {
    let options = ReadOptions::new(format, max_record_bytes);
    source_from_reader_with(reader, progress, &options, name)
}

/// Records as `options` say from already-decompressed bytes.
pub fn source_from_reader_with(
    reader: Box<dyn BufRead + Send>,
    progress: ReadProgress,
    options: &ReadOptions,
    name: &str,
) -> anyhow::Result<InputSource> {
    let (format, max_record_bytes) = (options.format, options.max_record_bytes);
    if format == Format::Xlsx {
        anyhow::bail!(
            "{name}: a spreadsheet is read from a file (booster run/submit --input FILE)"
        );
    }
    if !format.is_delimited() && (options.delimiter.is_some() || !options.columns.is_empty()) {
        anyhow::bail!(
            "--delimiter and the column options apply to csv, psv and tsv input; {name} is read \
             as {} (pass --format csv)",
            format.name()
        );
    }
    match (format, &options.layout) {
        (Format::Fixed, None) => {
            anyhow::bail!(
                "--format fixed needs --layout LAYOUT.json (each field's name, start and width)"
            )
        }
        (Format::Fixed, Some(_)) | (_, None) => {}
        (other, Some(_)) => anyhow::bail!(
            "--layout is for --format fixed; {name} is read as {}",
            other.name()
        ),
    }
    let delimiter = format
        .is_delimited()
        .then(|| options.delimiter.unwrap_or(format.default_delimiter()));
    // stdin and uploads (no known size) are not read before the job
    // exists: their layout is the default and only --encoding decodes them.
    let can_peek = progress.total_bytes.is_some();
    let (bom_head, reader) = peek(reader, |head| !can_peek || head.len() >= 3)
        .with_context(|| format!("reading {name}"))?;
    let encoding = encoding::choose(options.encoding, &bom_head);
    let reader: Box<dyn BufRead + Send> = match encoding {
        Some(e) => Box::new(BufReader::with_capacity(
            256 << 10,
            DecodeReader::new(reader, e),
        )),
        None => reader,
    };
    // Up to the first `\n` (its byte before says `\n` or `\r\n`), or all
    // of `PEEK_BYTES` without one (lone `\r` lines): a `\r` before the first
    // `\n` decides nothing, and the first read may be a few bytes only
    // (the compression sniff's 8).
    let (head, reader) = peek(reader, |head| {
        !can_peek || memchr::memchr(b'\n', head).is_some()
    })
    .with_context(|| format!("reading {name}"))?;
    let mut layout = TextLayout::sniff(&head, format.is_delimited());
    let format = match format {
        Format::Json if !head.is_empty() && !starts_an_array(&head) => Format::Jsonl,
        other => other,
    };
    let split_on = match layout.line_ending {
        LineEnding::Cr => b'\r',
        LineEnding::Lf | LineEnding::CrLf => b'\n',
    };
    if !format.is_delimited() && layout.line_ending == LineEnding::CrLf {
        // Lines keep the `\r` of their `\r\n`: only the `\n` is added back.
        layout.line_ending = LineEnding::Lf;
    }
    let (header, records): (Option<CsvHeader>, Box<dyn RecordSource>) = match format {
        Format::Csv | Format::Psv | Format::Tsv => {
            let delimiter = delimiter.unwrap_or(b',');
            let mut csv = CsvSource::with_delimiter(
                reader,
                max_record_bytes,
                delimiter,
                layout.line_ending.bytes(),
            );
            let mut header = csv
                .read_header()
                .with_context(|| format!("reading the {} header of {name}", format.name()))?;
            if let Some(header) = &mut header {
                csv.set_plan(options.columns.plan(header, delimiter)?);
            }
            // Seen, where the head could not be (stdin, an upload).
            layout.count_leading_blank_lines(csv.header_lead());
            (header, Box::new(csv))
        }
        Format::Lines => (None, Box::new(LineSource::new(reader, false, split_on))),
        Format::Fixed => {
            let lines = Box::new(LineSource::new(reader, false, split_on));
            let layout = options
                .layout
                .clone()
                .unwrap_or(FixedLayout { fields: Vec::new() });
            (None, Box::new(FixedSource { lines, layout }))
        }
        Format::Jsonl => (None, Box::new(LineSource::new(reader, true, split_on))),
        Format::Xlsx => {
            anyhow::bail!(
                "{name}: a spreadsheet is read from a file (booster run/submit --input FILE)"
            )
        }
        Format::Json => {
            // An array is written back as an array, one element per line.
            layout = TextLayout::default();
            (
                None,
                Box::new(JsonArraySource::new(reader, max_record_bytes)),
            )
        }
    };
    let why = match encoding {
        Some(e) => Some(format!(
            "the line cannot be decoded as {}; check --encoding",
            e.encoding.name()
        )),
        None if format.is_delimited() => Some(
            "the row is not UTF-8 text; pass the file's --encoding (e.g. --encoding latin1)"
                .to_string(),
        ),
        None => None,
    };
    let records = match why {
        Some(why) => Box::new(Utf8Records {
            inner: records,
            why,
        }),
        None => records,
    };
    Ok(InputSource {
        format,
        header,
        delimiter,
        encoding,
        fixed_layout: options.layout.clone(),
        layout,
        progress,
        records,
    })
}

/// The most read ahead to find the input's first line terminator.
const PEEK_BYTES: usize = 64 << 10;

/// Reads until `enough` says the bytes read are enough (or 64 KiB, or the
/// end), and gives back those bytes and a reader that still starts at the
/// beginning.
fn peek(
    mut reader: Box<dyn BufRead + Send>,
    enough: impl Fn(&[u8]) -> bool,
) -> io::Result<(Vec<u8>, Box<dyn BufRead + Send>)> {
    let mut head = Vec::new();
    while !enough(&head) && head.len() < PEEK_BYTES {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(PEEK_BYTES - head.len());
        head.extend_from_slice(&buf[..n]);
        reader.consume(n);
    }
    let rest: Box<dyn BufRead + Send> = Box::new(io::Cursor::new(head.clone()).chain(reader));
    Ok((head, rest))
}

/// Lines and JSON Lines: a record per `\n`-terminated line (`\r` in a file
/// whose lines end in a lone `\r`). The line's bytes are kept exactly (a
/// `\r` before the `\n` stays), so lines round-trip. In JSON Lines, blank
/// and whitespace-only lines carry no record: they are kept as the
/// separators of the record before them (or before the first record).
pub struct LineSource<R> {
    reader: R,
    line: u64,
    jsonl: bool,
    terminator: u8,
    separated: Separated,
    ended: bool,
}

impl<R: BufRead> LineSource<R> {
    pub fn new(reader: R, jsonl: bool, terminator: u8) -> LineSource<R> {
        let ending: &'static [u8] = if terminator == b'\r' { b"\r" } else { b"\n" };
        LineSource {
            reader,
            line: 0,
            jsonl,
            terminator,
            separated: Separated::new(ending, b""),
            ended: false,
        }
    }
}

impl<R: BufRead + Send> RecordSource for LineSource<R> {
    fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> io::Result<()> {
        while out.len() < max && !self.ended {
            let mut buf = Vec::with_capacity(128);
            if self.reader.read_until(self.terminator, &mut buf)? == 0 {
                self.ended = true;
                self.separated.end(out);
                break;
            }
            self.line += 1;
            if self.jsonl && buf.trim_ascii().is_empty() {
                self.separated.gap(&buf);
                continue;
            }
            let terminated = buf.last() == Some(&self.terminator);
            if terminated {
                buf.pop();
            }
            match self.jsonl.then(|| check_json(&buf)) {
                Some(Err(message)) => self.separated.rejected(
                    Item::Rejected {
                        raw: buf,
                        line: self.line,
                        message,
                    },
                    out,
                ),
                None | Some(Ok(())) => self.separated.record(buf, self.line, out),
            }
            if terminated {
                self.separated.gap(&[self.terminator]);
            }
        }
        Ok(())
    }
}

/// The message names the kind of problem but not its column, so the same
/// mistake on many lines groups under one message.
pub(super) fn check_json(record: &[u8]) -> Result<(), String> {
    match serde_json::from_slice::<serde::de::IgnoredAny>(record) {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.classify() {
            serde_json::error::Category::Eof => "invalid JSON: the record ends early".into(),
            serde_json::error::Category::Syntax => "invalid JSON: syntax error".into(),
            serde_json::error::Category::Data => "invalid JSON: bad data".into(),
            serde_json::error::Category::Io => "invalid JSON: unreadable".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(src: &mut dyn RecordSource) -> Vec<Item> {
        let mut items = Vec::new();
        loop {
            let mut batch = Vec::new();
            src.next_batch(3, &mut batch).unwrap();
            if batch.is_empty() {
                return items;
            }
            items.extend(batch);
        }
    }

    #[test]
    fn lines_keep_their_bytes_and_numbers() {
        let mut src = LineSource::new(&b"a\r\n\nc"[..], false, b'\n');
        let items = all(&mut src);
        let mut last = Item::record(b"c".to_vec(), 3);
        if let Item::Record { separators, .. } = &mut last {
            separators.after = Some(Vec::new());
        }
        assert_eq!(
            items,
            vec![
                Item::record(b"a\r".to_vec(), 1),
                Item::record(b"".to_vec(), 2),
                last
            ]
        );
    }

    fn afters(items: &[Item]) -> Vec<Option<&[u8]>> {
        items
            .iter()
            .filter_map(|item| match item {
                Item::Record { separators, .. } => Some(separators.after.as_deref()),
                Item::Rejected { .. } => None,
            })
            .collect()
    }

    #[test]
    fn json_lines_keep_blank_and_whitespace_lines_as_separators() {
        let text = b"\n \n{\"a\":1}\r\n\r\n{\"a\":2}\n\t\n\n{\"a\":3}\n\n";
        let mut src = LineSource::new(&text[..], true, b'\n');
        let items = all(&mut src);
        assert_eq!(
            afters(&items),
            vec![Some(&b"\n\r\n"[..]), Some(b"\n\t\n\n"), Some(b"\n\n")]
        );
        match &items[0] {
            Item::Record {
                line, separators, ..
            } => {
                assert_eq!(*line, 3);
                assert_eq!(separators.before.as_deref(), Some(&b"\n \n"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&items[1], Item::Record { line: 5, .. }));
        assert!(matches!(&items[2], Item::Record { line: 8, .. }));
    }

    #[test]
    fn bad_json_line_is_rejected_with_its_line_number() {
        let mut src = LineSource::new(&b"{\"a\":1}\n\n{\"a\":\n[1,2]\n"[..], true, b'\n');
        let items = all(&mut src);
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[1], Item::Rejected { line: 3, raw, .. } if raw == b"{\"a\":"));
        assert!(matches!(&items[2], Item::Record { line: 4, .. }));
    }

    /// A stray `\r` before the first `\n` (here the file's first byte, as
    /// in random binary input) does not make a `\n` file split on `\r`:
    /// the sniff sees up to the first `\n`, whatever the `\r`s before it.
    /// The first read of a file is the compression sniff's 8 bytes, so a
    /// `\r` in them with the first `\n` further on split the whole file on
    /// `\r` before (`hostile_input_files`, seed 1796098698883242983).
    #[test]
    fn a_stray_carriage_return_before_the_first_newline_keeps_newline_lines() {
        let dir = tempfile::tempdir().unwrap();
        // Lines of a `\r\n` file keep their `\r`: their layout is `\n`.
        for (text, ending) in [
            (&b"\rthe first line\nsec\rond\nthird\n"[..], LineEnding::Lf),
            (b"x\ry and more\r\nsecond\r\n", LineEnding::Lf),
            (b"old\rmac\rfile\r", LineEnding::Cr),
            (b"an old mac file\rwith long lines\r", LineEnding::Cr),
        ] {
            let path = dir.path().join("in.txt");
            std::fs::write(&path, text).unwrap();
            let mut input = open_source(&path, Format::Lines, 1 << 20).unwrap();
            assert_eq!(input.layout.line_ending, ending, "{text:?}");
            let records: Vec<Vec<u8>> = all(&mut *input.records)
                .into_iter()
                .map(|item| match item {
                    Item::Record { bytes, .. } => bytes,
                    other => panic!("{other:?}"),
                })
                .collect();
            let split_on = if ending == LineEnding::Cr {
                b'\r'
            } else {
                b'\n'
            };
            let want: Vec<&[u8]> = text
                .strip_suffix(&[split_on])
                .unwrap()
                .split(|b| *b == split_on)
                .collect();
            assert_eq!(records, want, "{:?}", String::from_utf8_lossy(text));
        }
    }
}
