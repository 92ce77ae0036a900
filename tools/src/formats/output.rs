//! Writing records out: one per line, compressed by extension, `-` for
//! stdout. A file is written as `PATH.partial` and renamed into place once
//! complete and synced, so a download that stops midway never leaves a
//! truncated file under the name asked for.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{is_std_stream, Compression, Encoder};

type Inner = BufWriter<Box<dyn Write + Send>>;

pub struct OutputSink {
    path: PathBuf,
    /// Some for a file: where it is written until `finish`.
    partial: Option<PathBuf>,
    file: Option<File>,
    encoder: Encoder<Inner>,
    pub records_written: u64,
}

impl OutputSink {
    pub fn create(path: &Path) -> anyhow::Result<OutputSink> {
        let (raw, partial, file): (Box<dyn Write + Send>, _, _) = if is_std_stream(path) {
            (Box::new(io::stdout()), None, None)
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
            path: path.to_path_buf(),
            partial,
            file,
            encoder,
            records_written: 0,
        })
    }

    /// Writes `line` and a `\n` (a header, not counted as a record).
    pub fn write_line(&mut self, line: &[u8]) -> anyhow::Result<()> {
        let path = self.path.clone();
        let w = &mut self.encoder;
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
        let path = self.path;
        self.encoder
            .finish()
            .and_then(|mut w| w.flush())
            .map_err(|e| output_error(&path, e))?;
        if let (Some(partial), Some(file)) = (self.partial, self.file) {
            file.sync_all().map_err(|e| output_error(&path, e))?;
            std::fs::rename(&partial, &path)
                .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
        }
        Ok(self.records_written)
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
        io::ErrorKind::BrokenPipe => anyhow::anyhow!("output {}: broken pipe", path.display()),
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
}
