//! Writing records out: one per line, compressed by extension, `-` for
//! stdout. A regular file is written as `PATH.partial` and renamed into
//! place once complete and synced, so a download that stops midway never
//! leaves a truncated file under the name asked for; [`OutputSink::finish_partial`]
//! leaves it as `PATH.partial` (a failed `run`). Anything else that exists
//! (a device such as `/dev/null`, a FIFO, a socket) is written in place:
//! replacing it with a regular file would break it for every other program.
//! An existing directory is refused ([`check_destination`]) before any work.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{is_std_stream, Compression};

type Inner = BufWriter<Box<dyn Write + Send>>;

enum Encoder {
    Plain(Inner),
    Gzip(flate2::write::GzEncoder<Inner>),
    Zstd(zstd::Encoder<'static, Inner>),
}

pub struct OutputSink {
    path: PathBuf,
    /// Some for a file: where it is written until `finish`.
    partial: Option<PathBuf>,
    file: Option<File>,
    encoder: Encoder,
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
    pub fn create(path: &Path) -> anyhow::Result<OutputSink> {
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
        let encoder = match Compression::from_path(path) {
            Compression::None => Encoder::Plain(inner),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::fast(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::Encoder::new(inner, 3)?),
        };
        Ok(OutputSink {
            path: path.to_path_buf(),
            partial,
            file,
            encoder,
            records_written: 0,
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match &mut self.encoder {
            Encoder::Plain(w) => w,
            Encoder::Gzip(w) => w,
            Encoder::Zstd(w) => w,
        }
    }

    /// Writes `line` and a `\n` (a header, not counted as a record).
    pub fn write_line(&mut self, line: &[u8]) -> anyhow::Result<()> {
        let path = self.path.clone();
        let w = self.writer();
        w.write_all(line)
            .and_then(|()| w.write_all(b"\n"))
            .map_err(|e| output_error(&path, e))
    }

    pub fn write_record(&mut self, record: &[u8]) -> anyhow::Result<()> {
        self.write_line(record)?;
        self.records_written += 1;
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

    /// Ends the encoder and flushes everything written.
    fn flush(self) -> anyhow::Result<(u64, Option<PathBuf>, Option<File>)> {
        let path = self.path;
        let inner = match self.encoder {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(w) => w.finish(),
            Encoder::Zstd(w) => w.finish(),
        };
        inner
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
        for name in ["o.txt", "o.txt.gz", "o.txt.zst"] {
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
}
