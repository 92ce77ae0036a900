//! Record formats the command reads and writes: lines, CSV (header kept) and
//! JSON Lines, each optionally gzip, zstd, bzip2 or xz compressed (recognised
//! by magic bytes on input, chosen by extension on output), `-` for
//! stdin/stdout.
//!
//! A job remembers its format in its properties (see [`props`]) so `download`
//! writes the output back the way the input came, CSV header first.

mod columns;
mod compression;
mod csv_source;
pub mod encoding;
mod fixed;
mod input;
mod json_array;
mod layout;
mod options;
mod output;
mod separated;
mod wire;
mod xlsx;
mod zip_input;

pub use columns::{ColumnRules, OutputProjection};
pub use compression::{Compression, Encoder};
pub use csv_source::{CsvHeader, DEFAULT_MAX_RECORD_BYTES};
pub use fixed::{FixedField, FixedLayout, FIXED_LAYOUT};
pub use input::{
    open_bytes, open_bytes_with, open_source, open_source_with, source_from_reader,
    source_from_reader_with, InputSource, Item, ReadOptions, ReadProgress, RecordSource,
};
pub use layout::{LineEnding, TextLayout};
pub use options::{parse_delimiter, InputFormatArgs};
pub use output::{check_destination, OutputFraming, OutputSink};
pub use wire::{
    write_framed, write_separated, FramedRecords, ItemsReader, ItemsSource, SeparatedRecords,
    ITEMS_FORMAT, LENGTH_FRAMING, SEPARATORS_HEADER,
};
pub use xlsx::DEFAULT_MAX_SHEET_CELLS;
pub use zip_input::{file_members, is_zip, ZipChoice};

use std::path::Path;

/// Keys of the job properties this crate writes and reads.
pub mod props {
    /// "lines", "csv", "jsonl" or "json".
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
    /// The zip member the job read (`--member`, or one job per member).
    pub const MEMBER: &str = "member";
    /// CSV, PSV, TSV: the field delimiter, one character.
    pub const DELIMITER: &str = "delimiter";
    /// `--output-columns`: the columns `download` writes, in order.
    pub const OUTPUT_COLUMNS: &str = "output_columns";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One record per line.
    Lines,
    /// CSV with a header row; quoted fields may hold commas, quotes, newlines.
    Csv,
    /// Pipe-separated values: CSV with `|`.
    Psv,
    /// Tab-separated values: CSV with a tab.
    Tsv,
    /// Fixed-width fields, as `--layout layout.json` places them.
    Fixed,
    /// A spreadsheet (xlsx, xlsm, xlsb, xls, ods), input only: one sheet,
    /// read as CSV.
    Xlsx,
    /// One JSON value per line.
    Jsonl,
    /// One JSON array of values, read element by element (a `.json` file
    /// that does not start with `[` is read as JSON Lines).
    Json,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Lines => "lines",
            Format::Csv => "csv",
            Format::Psv => "psv",
            Format::Tsv => "tsv",
            Format::Fixed => "fixed",
            Format::Xlsx => "xlsx",
            Format::Jsonl => "jsonl",
            Format::Json => "json",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "lines" => Some(Format::Lines),
            "csv" => Some(Format::Csv),
            "psv" => Some(Format::Psv),
            "tsv" => Some(Format::Tsv),
            "fixed" => Some(Format::Fixed),
            "xlsx" => Some(Format::Xlsx),
            "jsonl" => Some(Format::Jsonl),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// CSV, PSV and TSV: a header row and delimited fields.
    pub fn is_delimited(self) -> bool {
        matches!(self, Format::Csv | Format::Psv | Format::Tsv)
    }

    /// The field delimiter a delimited format has unless `--delimiter` says.
    pub fn default_delimiter(self) -> u8 {
        match self {
            Format::Psv => b'|',
            Format::Tsv => b'\t',
            _ => b',',
        }
    }

    /// From the file name, ignoring a compression suffix; lines otherwise.
    pub fn from_path(path: &Path) -> Format {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let name = name.to_ascii_lowercase();
        let name = name.strip_suffix(".zip").unwrap_or(&name);
        let base = Compression::from_path(Path::new(name)).strip(name);
        match base.rsplit_once('.').map(|(_, ext)| ext) {
            Some("csv") => Format::Csv,
            Some("psv") => Format::Psv,
            Some("tsv" | "tab") => Format::Tsv,
            Some("xlsx" | "xlsm" | "xlsb" | "xls" | "ods") => Format::Xlsx,
            Some("jsonl" | "ndjson") => Format::Jsonl,
            Some("json") => Format::Json,
            _ => Format::Lines,
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
