//! The command-line options that say how to read an input: `run` and
//! `submit` flatten [`InputFormatArgs`] into their arguments.

use super::{encoding, ColumnRules, FixedLayout, Format, ReadOptions, ZipChoice};

/// The input's text encoding; for delimited input (CSV, PSV, TSV) the
/// delimiter and column rules.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct InputFormatArgs {
    /// The input's text encoding (latin1, windows-1252, utf-16le, utf-16be, shift_jis, ...);
    /// by default a byte-order mark says, else UTF-8. Records are stored as UTF-8.
    #[arg(long, value_name = "LABEL", value_parser = encoding::parse_label)]
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// CSV field delimiter, one character (`\t` for a tab); psv and tsv mean `|` and tab.
    #[arg(long, value_name = "CHAR", value_parser = parse_delimiter)]
    pub delimiter: Option<u8>,
    /// Names for the header's columns, by position (renames them).
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Columns the header must have; a row with one of them empty is a record error.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub required_columns: Vec<String>,
    /// The only columns allowed; others are refused, or dropped with --skip-unknown.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub allowed_columns: Option<Vec<String>>,
    /// With --allowed-columns: drop other columns from the header and every row.
    #[arg(long, requires = "allowed_columns")]
    pub skip_unknown: bool,
    /// For --format fixed: the JSON file giving each field's name, start (from 1) and width.
    #[arg(long, value_name = "LAYOUT.json")]
    pub layout: Option<std::path::PathBuf>,
    /// Zip input: the member to read (the only one by default).
    #[arg(long, value_name = "NAME")]
    pub member: Option<String>,
    /// Zip input: read every member, in order, into one job.
    #[arg(long, conflicts_with = "member")]
    pub concat: bool,
    /// Spreadsheet input: the sheet, by name or index from 0 (the first by default).
    #[arg(long, value_name = "NAME|INDEX")]
    pub sheet: Option<String>,
    /// Spreadsheet input: the largest sheet read, in cells; a larger one is refused.
    #[arg(long, value_name = "N", default_value_t = super::DEFAULT_MAX_SHEET_CELLS)]
    pub max_sheet_cells: u64,
    /// The columns `download` writes, in this order.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub output_columns: Option<Vec<String>>,
}

impl InputFormatArgs {
    pub fn read_options(
        &self,
        format: Format,
        max_record_bytes: usize,
    ) -> anyhow::Result<ReadOptions> {
        let layout = self.layout.as_deref().map(FixedLayout::load).transpose()?;
        Ok(ReadOptions {
            layout,
            sheet: self.sheet.clone(),
            max_sheet_cells: self.max_sheet_cells,
            zip: ZipChoice {
                member: self.member.clone(),
                concat: self.concat,
            },
            format,
            max_record_bytes,
            delimiter: self.delimiter,
            encoding: self.encoding,
            columns: ColumnRules {
                rename: self.columns.clone(),
                required: self.required_columns.clone(),
                allowed: self.allowed_columns.clone(),
                skip_unknown: self.skip_unknown,
                output: self.output_columns.clone(),
            },
        })
    }
}

pub fn parse_delimiter(text: &str) -> Result<u8, String> {
    let byte = match text {
        "\\t" | "tab" => b'\t',
        _ if text.len() == 1 && text.is_ascii() => text.as_bytes()[0],
        _ => return Err("a delimiter is one ASCII character, or `\\t` for a tab".into()),
    };
    if matches!(byte, b'"' | b'\n' | b'\r') {
        return Err("a quote or a line break cannot be the delimiter".into());
    }
    Ok(byte)
}
