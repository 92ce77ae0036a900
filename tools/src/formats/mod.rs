//! Record formats the command reads and writes: lines, CSV (header kept) and
//! JSON Lines, each optionally `.gz` or `.zst` compressed, `-` for stdin/stdout.
//!
//! A job remembers its format in its properties (see [`props`]) so `download`
//! writes the output back the way the input came, CSV header first.

mod csv_source;
mod input;
mod output;

pub use csv_source::{CsvHeader, DEFAULT_MAX_RECORD_BYTES};
pub use input::{
    open_bytes, open_source, source_from_reader, InputSource, Item, ReadProgress, RecordSource,
};
pub use output::{check_destination, OutputSink};

use std::path::Path;

/// Keys of the job properties this crate writes and reads.
pub mod props {
    /// "lines", "csv" or "jsonl".
    pub const FORMAT: &str = "format";
    /// The raw CSV header line, written back at the top of the output.
    pub const CSV_HEADER: &str = "csv_header";
    /// The CSV header split into column names.
    pub const CSV_COLUMNS: &str = "csv_columns";
    /// `exec`'s shell command.
    pub const CMD: &str = "cmd";
    /// `exec`: true when the command must write one line per record
    /// (`--exec-one-to-one`); another count fails the slice.
    pub const EXEC_ONE_TO_ONE: &str = "exec_one_to_one";
    /// The input file's name, for people reading `job show`.
    pub const INPUT: &str = "input";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One record per line.
    Lines,
    /// CSV with a header row; quoted fields may hold commas, quotes, newlines.
    Csv,
    /// One JSON value per line.
    Jsonl,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Lines => "lines",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "lines" => Some(Format::Lines),
            "csv" => Some(Format::Csv),
            "jsonl" => Some(Format::Jsonl),
            _ => None,
        }
    }

    /// From the file name, ignoring a `.gz` / `.zst` suffix; lines otherwise.
    pub fn from_path(path: &Path) -> Format {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let name = name.to_ascii_lowercase();
        let base = Compression::from_path(path).strip(&name);
        match base.rsplit_once('.').map(|(_, ext)| ext) {
            Some("csv") => Format::Csv,
            Some("jsonl" | "ndjson" | "json") => Format::Jsonl,
            _ => Format::Lines,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// By extension: `.gz` gzip, `.zst` zstd, anything else none.
    pub fn from_path(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("gz") => Compression::Gzip,
            Some(e) if e.eq_ignore_ascii_case("zst") => Compression::Zstd,
            _ => Compression::None,
        }
    }

    fn strip(self, name: &str) -> &str {
        match self {
            Compression::None => name,
            Compression::Gzip => name.strip_suffix(".gz").unwrap_or(name),
            Compression::Zstd => name.strip_suffix(".zst").unwrap_or(name),
        }
    }
}

/// `-` means stdin (input) or stdout (output).
pub fn is_std_stream(path: &Path) -> bool {
    path.as_os_str() == "-"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_found_under_a_compression_suffix() {
        assert_eq!(Format::from_path(Path::new("a/b.csv.gz")), Format::Csv);
        assert_eq!(Format::from_path(Path::new("b.JSONL.zst")), Format::Jsonl);
        assert_eq!(Format::from_path(Path::new("b.txt")), Format::Lines);
        assert_eq!(Format::from_path(Path::new("-")), Format::Lines);
        assert_eq!(
            Compression::from_path(Path::new("x.csv.zst")),
            Compression::Zstd
        );
        assert_eq!(
            Compression::from_path(Path::new("x.csv")),
            Compression::None
        );
    }
}
