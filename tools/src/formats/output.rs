//! Writing records out: one per line with the input's line endings and
//! each record's own separators where it has them (or as a JSON array),
//! compressed by extension, `-` for stdout. A regular file
//! is written as `PATH.partial` and renamed into place once complete and
//! synced, so a download that stops midway never leaves a truncated file
//! under the name asked for; [`OutputSink::finish_partial`] leaves it as
//! `PATH.partial` (a failed `run`). Anything else that exists (a device
//! such as `/dev/null`, a FIFO, a socket) is written in place: replacing it
//! with a regular file would break it for every other program. An existing
//! directory is refused ([`check_destination`]) before any work.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use booster_runtime::Separators;

use super::encoding::TextEncoder;
use super::{is_std_stream, Compression, Encoder, TextLayout};

type Inner = BufWriter<Box<dyn Write + Send>>;

/// How records are put together in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFraming {
    /// A line per record, ended as the layout says.
    Lines(TextLayout),
    /// `[`, the records separated by `,` and a line break, `]`.
    JsonArray,
}

impl Default for OutputFraming {
    fn default() -> OutputFraming {
        OutputFraming::Lines(TextLayout::default())
    }
}

/// What goes after the last line written: before the next, or at the end.
enum After {
    /// The layout's line ending (at the end: if the input had one).
    Ending,
    /// These bytes exactly (a record's own separator).
    Exact(Vec<u8>),
}

pub struct OutputSink {
    framing: OutputFraming,
    after: After,
    /// Some: the text is written in another encoding than UTF-8.
    text_encoder: Option<TextEncoder>,
    /// Lines written so far (the header too).
    lines_written: u64,
    path: PathBuf,
    /// Some for a file: where it is written until `finish`.
    partial: Option<PathBuf>,
    file: Option<File>,
    encoder: Encoder<Inner>,
    pub records_written: u64,
}

/// Refuses a destination that cannot be written: a missing directory, or
/// an existing directory. Call it before any work starts.
pub fn check_destination(path: &Path) -> anyhow::Result<()> {
    if is_std_stream(path) {
        return Ok(());
    }
    if path.is_dir() {
        anyhow::bail!(
            "cannot write {}: it is a directory; pass a file name (e.g. {})",
            path.display(),
            path.join("out.txt").display()
        );
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => anyhow::bail!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// True when `path` exists and is not a regular file (a device, a FIFO, a
/// socket): written in place, never through `.partial` and a rename.
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

impl OutputSink {
    /// A line per record, each ended with `\n`.
    pub fn create(path: &Path) -> anyhow::Result<OutputSink> {
        OutputSink::create_framed(path, OutputFraming::default())
    }

    pub fn create_framed(path: &Path, framing: OutputFraming) -> anyhow::Result<OutputSink> {
        check_destination(path)?;
        let (raw, partial, file): (Box<dyn Write + Send>, _, _) = if is_std_stream(path) {
            (Box::new(io::stdout()), None, None)
        } else if is_special(path) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| output_error(path, e))?;
            (Box::new(file), None, None)
        } else {
            let mut name = path.as_os_str().to_owned();
            name.push(".partial");
            let partial = PathBuf::from(name);
            let file = File::create(&partial).map_err(|e| output_error(path, e))?;
            let clone = file.try_clone().context("duplicating the output handle")?;
            (Box::new(clone), Some(partial), Some(file))
        };
        let inner = BufWriter::with_capacity(256 << 10, raw);
        let encoder = Encoder::new(Compression::from_path(path), inner)?;
        Ok(OutputSink {
            framing,
            after: After::Ending,
            text_encoder: None,
            lines_written: 0,
            path: path.to_path_buf(),
            partial,
            file,
            encoder,
            records_written: 0,
        })
    }

    /// Writes `line` (a header, not counted as a record). The terminator
    /// goes before the next line, or at the end when the input had one.
    pub fn write_line(&mut self, line: &[u8]) -> anyhow::Result<()> {
        self.write_between(None)?;
        self.put(line)?;
        self.lines_written += 1;
        self.after = After::Ending;
        Ok(())
    }

    /// What goes before the next line: `instead` (a record's own `before`)
    /// in place of the line ending, after the blank lines before a header.
    fn write_between(&mut self, instead: Option<&[u8]>) -> anyhow::Result<()> {
        let layout = match self.framing {
            OutputFraming::JsonArray if self.lines_written == 0 => return self.put(b"[\n"),
            OutputFraming::JsonArray => return self.put(b",\n"),
            OutputFraming::Lines(layout) => layout,
        };
        if self.lines_written == 0 {
            for _ in 0..layout.leading_blank_lines {
                self.put(layout.line_ending.bytes())?;
            }
        }
        match (instead, std::mem::replace(&mut self.after, After::Ending)) {
            (Some(bytes), _) => self.put(bytes),
            (None, _) if self.lines_written == 0 => Ok(()),
            (None, After::Ending) => self.put(layout.line_ending.bytes()),
            (None, After::Exact(bytes)) => self.put(&bytes),
        }
    }

    /// Writes the text from here on in `encoder`'s encoding (its BOM first).
    pub fn encode_as(&mut self, encoder: TextEncoder) -> anyhow::Result<()> {
        let preamble = encoder.preamble.clone();
        self.put(&preamble)?;
        self.text_encoder = Some(encoder);
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let encoded;
        let bytes = match &mut self.text_encoder {
            Some(encoder) if !bytes.is_empty() => {
                encoded = encoder
                    .encode(bytes)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", self.path.display()))?;
                &encoded[..]
            }
            _ => bytes,
        };
        self.encoder
            .write_all(bytes)
            .map_err(|e| output_error(&self.path, e))
    }

    pub fn write_record(&mut self, record: &[u8]) -> anyhow::Result<()> {
        self.write_line(record)?;
        self.records_written += 1;
        Ok(())
    }

    /// Writes `record` with the separators its input had around it (a
    /// JSON array has its own and ignores them).
    pub fn write_separated(
        &mut self,
        record: &[u8],
        separators: &Separators,
    ) -> anyhow::Result<()> {
        self.write_between(separators.before.as_deref())?;
        self.put(record)?;
        self.lines_written += 1;
        self.records_written += 1;
        self.after = match &separators.after {
            Some(bytes) if matches!(self.framing, OutputFraming::Lines(_)) => {
                After::Exact(bytes.clone())
            }
            _ => After::Ending,
        };
        Ok(())
    }

    /// Finishes compression, syncs and renames the file into place.
    pub fn finish(self) -> anyhow::Result<u64> {
        let path = self.path.clone();
        let (records, partial, file) = self.flush()?;
        if let (Some(partial), Some(file)) = (partial, file) {
            file.sync_all().map_err(|e| output_error(&path, e))?;
            std::fs::rename(&partial, &path)
                .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
        }
        Ok(records)
    }

    /// Finishes compression and syncs, but leaves a regular file as
    /// `PATH.partial` (returned), for output known to be incomplete.
    pub fn finish_partial(self) -> anyhow::Result<(u64, Option<PathBuf>)> {
        let path = self.path.clone();
        let (records, partial, file) = self.flush()?;
        if let Some(file) = file {
            file.sync_all().map_err(|e| output_error(&path, e))?;
        }
        Ok((records, partial))
    }

    /// Writes the framing's end, ends the encoder and flushes everything.
    fn flush(mut self) -> anyhow::Result<(u64, Option<PathBuf>, Option<File>)> {
        let after = std::mem::replace(&mut self.after, After::Ending);
        let end: &[u8] = match (self.framing, self.lines_written, &after) {
            (OutputFraming::Lines(_), 1.., After::Exact(bytes)) => bytes,
            (OutputFraming::Lines(layout), 1.., After::Ending) if layout.final_newline => {
                layout.line_ending.bytes()
            }
            (OutputFraming::Lines(_), _, _) => b"",
            (OutputFraming::JsonArray, 0, _) => b"[]\n",
            (OutputFraming::JsonArray, _, _) => b"\n]\n",
        };
        self.put(end)?;
        let path = self.path;
        self.encoder
            .finish()
            .and_then(|mut w| w.flush())
            .map_err(|e| output_error(&path, e))?;
        Ok((self.records_written, self.partial, self.file))
    }
}

fn output_error(path: &Path, e: io::Error) -> anyhow::Error {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        return anyhow::anyhow!(
            "disk full writing {}: free space and download again (the job's output is kept in the store)",
            path.display()
        );
    }
    match e.kind() {
        io::ErrorKind::NotFound => anyhow::anyhow!(
            "cannot create {}: its directory does not exist",
            path.display()
        ),
        io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!("cannot write {}: permission denied", path.display())
        }
        io::ErrorKind::BrokenPipe => anyhow::Error::new(crate::exit::BrokenPipe),
        _ => anyhow::anyhow!("writing {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::input::open_bytes;
    use std::io::Read;

    #[test]
    fn compressed_output_reads_back_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["o.txt", "o.txt.gz", "o.txt.zst", "o.txt.bz2", "o.txt.xz"] {
            let path = dir.path().join(name);
            let mut sink = OutputSink::create(&path).unwrap();
            sink.write_record(b"one").unwrap();
            sink.write_record(b"two").unwrap();
            assert_eq!(sink.finish().unwrap(), 2);
            let (mut reader, _) = open_bytes(&path).unwrap();
            let mut text = String::new();
            reader.read_to_string(&mut text).unwrap();
            assert_eq!(text, "one\ntwo\n", "{name}");
            assert!(!dir.path().join(format!("{name}.partial")).exists());
        }
    }

    fn written(framing: OutputFraming, lines: &[&str]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o");
        let mut sink = OutputSink::create_framed(&path, framing).unwrap();
        for line in lines {
            sink.write_record(line.as_bytes()).unwrap();
        }
        sink.finish().unwrap();
        std::fs::read_to_string(&path).unwrap()
    }

    #[test]
    fn lines_end_as_the_layout_says() {
        use crate::formats::LineEnding;
        let layout = TextLayout {
            line_ending: LineEnding::CrLf,
            final_newline: false,
            leading_blank_lines: 1,
        };
        let text = written(OutputFraming::Lines(layout), &["a", "b"]);
        assert_eq!(text, "\r\na\r\nb");
        let cr = TextLayout {
            line_ending: LineEnding::Cr,
            ..TextLayout::default()
        };
        assert_eq!(written(OutputFraming::Lines(cr), &["a", "b"]), "a\rb\r");
        assert_eq!(written(OutputFraming::default(), &[]), "");
    }

    #[test]
    fn records_are_written_with_their_own_separators() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.csv");
        let crlf = TextLayout {
            line_ending: crate::formats::LineEnding::CrLf,
            ..TextLayout::default()
        };
        let mut sink = OutputSink::create_framed(&path, OutputFraming::Lines(crlf)).unwrap();
        let exact = |before: Option<&[u8]>, after: Option<&[u8]>| Separators {
            before: before.map(<[u8]>::to_vec),
            after: after.map(<[u8]>::to_vec),
        };
        sink.write_line(b"id").unwrap();
        sink.write_separated(b"1", &exact(Some(b"\r\n\r\n"), None))
            .unwrap();
        sink.write_separated(b"2", &exact(None, Some(b"\n\n")))
            .unwrap();
        sink.write_separated(b"3", &Separators::default()).unwrap();
        sink.write_separated(b"4", &exact(None, Some(b""))).unwrap();
        assert_eq!(sink.finish().unwrap(), 4);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"id\r\n\r\n1\r\n2\n\n3\r\n4".to_vec()
        );
    }

    #[test]
    fn json_array_framing_writes_an_array() {
        assert_eq!(
            written(OutputFraming::JsonArray, &["1", "{}"]),
            "[\n1,\n{}\n]\n"
        );
        assert_eq!(written(OutputFraming::JsonArray, &[]), "[]\n");
    }
}
