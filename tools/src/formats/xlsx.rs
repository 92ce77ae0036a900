//! Spreadsheet input (xlsx, xlsm, xlsb, xls, ods) through calamine: one
//! sheet, by name or index (`--sheet`), its first row the header. Rows
//! become CSV records (numbers in their shortest exact form, dates as ISO
//! 8601, booleans `true`/`false`), so the job is a CSV job: column rules
//! apply and `download` writes CSV. A cell holding an error (`#DIV/0!`) is
//! a record error on its row.
//!
//! calamine loads a sheet whole, so a sheet larger than `--max-sheet-cells`
//! is refused before it is loaded where the file says its size (xlsx), and
//! right after loading otherwise.

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use calamine::{Data, DataType, Reader, Sheets};

use super::columns::encode_fields;
use super::csv_source::CsvHeader;
use super::input::{Item, RecordSource};
use super::ColumnRules;

/// The largest sheet read by default, in cells.
pub const DEFAULT_MAX_SHEET_CELLS: u64 = 10_000_000;

/// A sheet's rows as CSV records.
pub struct SheetSource {
    rows: VecDeque<(u64, Vec<Data>)>,
    plan: super::columns::RowPlan,
}

/// Opens `sheet` (a name, or an index from 0; the first by default) of the
/// workbook at `path`; its header and rows.
pub fn open_sheet(
    path: &Path,
    sheet: Option<&str>,
    max_cells: u64,
    rules: &ColumnRules,
) -> anyhow::Result<(Option<CsvHeader>, SheetSource)> {
    let shown = path.display();
    let mut book = calamine::open_workbook_auto(path)
        .map_err(|e| anyhow::anyhow!("{shown} is not a readable spreadsheet: {e}"))?;
    let names = book.sheet_names();
    let name = match sheet {
        None => names.first().cloned(),
        Some(s) => names
            .iter()
            .find(|n| n.as_str() == s)
            .cloned()
            .or_else(|| s.parse::<usize>().ok().and_then(|i| names.get(i).cloned())),
    }
    .ok_or_else(|| {
        anyhow::anyhow!(
            "{shown} has no sheet {:?}; it has {}",
            sheet.unwrap_or("0"),
            names.join(", ")
        )
    })?;
    let too_big = |cells: u64| {
        anyhow::anyhow!(
            "sheet {name:?} of {shown} has {cells} cells, over --max-sheet-cells {max_cells}; \
             raise it, or save the sheet as CSV"
        )
    };
    if let Sheets::Xlsx(xlsx) = &mut book {
        let declared = xlsx
            .worksheet_cells_reader(&name)
            .map(|r| r.dimensions().len())
            .map_err(|e| anyhow::anyhow!("reading sheet {name:?} of {shown}: {e}"))?;
        if declared > max_cells {
            return Err(too_big(declared));
        }
    }
    let range = book
        .worksheet_range(&name)
        .map_err(|e| anyhow::anyhow!("reading sheet {name:?} of {shown}: {e}"))?;
    let (height, width) = range.get_size();
    if (height as u64).saturating_mul(width as u64) > max_cells {
        return Err(too_big(height as u64 * width as u64));
    }
    let first_row = u64::from(range.start().map_or(0, |(r, _)| r)) + 1;
    let mut rows: VecDeque<(u64, Vec<Data>)> = range
        .rows()
        .enumerate()
        .map(|(i, r)| (first_row + i as u64, r.to_vec()))
        .collect();
    let Some((_, header_cells)) = rows.pop_front() else {
        return Ok((
            None,
            SheetSource {
                rows,
                plan: Default::default(),
            },
        ));
    };
    let columns: Vec<String> = header_cells
        .iter()
        .map(|c| cell_text(c).unwrap_or_default())
        .collect();
    let mut header = CsvHeader {
        raw: String::from_utf8_lossy(&encode_fields(columns.iter().map(|c| c.as_bytes()), b','))
            .into_owned(),
        columns,
    };
    let plan = rules.plan(&mut header, b',')?;
    Ok((Some(header), SheetSource { rows, plan }))
}

/// A cell as text; Err names the error a cell holds.
fn cell_text(cell: &Data) -> Result<String, String> {
    Ok(match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(_) => match cell.as_datetime() {
            Some(dt) => {
                let text = dt.to_string().replacen(' ', "T", 1);
                match text.strip_suffix("T00:00:00") {
                    Some(date) => date.to_string(),
                    None => text,
                }
            }
            None => cell.as_f64().map_or_else(String::new, |f| f.to_string()),
        },
        Data::Error(e) => return Err(format!("the cell holds the error {e}")),
    })
}

impl RecordSource for SheetSource {
    fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> io::Result<()> {
        while out.len() < max {
            let Some((line, cells)) = self.rows.pop_front() else {
                break;
            };
            let texts: Result<Vec<String>, String> = cells.iter().map(cell_text).collect();
            let item = texts.and_then(|texts| {
                let fields =
                    csv::ByteRecord::from(texts.iter().map(String::as_str).collect::<Vec<_>>());
                let raw = encode_fields(texts.iter().map(|t| t.as_bytes()), b',');
                self.plan.check(&fields)?;
                Ok(self.plan.project(&fields, raw))
            });
            out.push(match item {
                Ok(bytes) => Item::record(bytes, line),
                Err(message) => Item::Rejected {
                    raw: cells
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                        .into_bytes(),
                    line,
                    message,
                },
            });
        }
        Ok(())
    }
}
