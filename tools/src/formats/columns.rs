//! Column rules for delimited input (CSV, TSV, PSV), as Rocket Job's
//! tabular layer has them.
//!
//! - `--columns a,b,c` renames the header's columns, by position.
//! - `--required-columns` must be in the header (else the input is refused
//!   before anything is stored); a row whose required column is empty is a
//!   record error on its line.
//! - `--allowed-columns`: a header column outside the list is refused, or
//!   with `--skip-unknown` dropped from the header and from every row.
//! - `--output-columns` selects and orders the columns `download` writes
//!   (checked against the header at submit, applied on output).
//!
//! Rules are checked on the header once ([`ColumnRules::plan`]); rows are
//! then checked and projected by the [`RowPlan`] it returns.

use super::csv_source::CsvHeader;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnRules {
    pub rename: Option<Vec<String>>,
    pub required: Vec<String>,
    pub allowed: Option<Vec<String>>,
    pub skip_unknown: bool,
    pub output: Option<Vec<String>>,
}

/// What to do with each row, decided from the header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowPlan {
    /// Columns kept, by index in the input; None keeps them all.
    keep: Option<Vec<usize>>,
    /// Required columns: index in the input and name.
    required: Vec<(usize, String)>,
    delimiter: u8,
}

fn find(columns: &[String], name: &str) -> Option<usize> {
    columns.iter().position(|c| c.eq_ignore_ascii_case(name))
}

impl ColumnRules {
    pub fn is_empty(&self) -> bool {
        *self == ColumnRules::default()
    }

    /// Applies the rules to `header` (renaming and dropping columns there)
    /// and returns the plan for the rows; an input the rules refuse is an
    /// error that says which columns and what to pass.
    pub fn plan(&self, header: &mut CsvHeader, delimiter: u8) -> anyhow::Result<RowPlan> {
        let mut names = header.columns.clone();
        if let Some(rename) = &self.rename {
            if rename.len() != names.len() {
                anyhow::bail!(
                    "--columns names {} columns but the header has {} ({}); name every column",
                    rename.len(),
                    names.len(),
                    names.join(", ")
                );
            }
            names = rename.clone();
        }
        let mut required = Vec::new();
        for name in &self.required {
            let Some(i) = find(&names, name) else {
                anyhow::bail!(
                    "the header has no `{name}` column, which --required-columns asks for \
                     (it has {})",
                    names.join(", ")
                );
            };
            required.push((i, name.clone()));
        }
        let mut keep = None;
        if let Some(allowed) = &self.allowed {
            let unknown: Vec<&String> = names
                .iter()
                .filter(|n| find(allowed, n).is_none())
                .collect();
            if !unknown.is_empty() && !self.skip_unknown {
                anyhow::bail!(
                    "the header has columns outside --allowed-columns: {}; pass --skip-unknown \
                     to drop them, or allow them",
                    unknown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if !unknown.is_empty() {
                keep = Some(
                    (0..names.len())
                        .filter(|i| find(allowed, &names[*i]).is_some())
                        .collect::<Vec<usize>>(),
                );
            }
        }
        let kept: Vec<String> = match &keep {
            Some(k) => k.iter().map(|i| names[*i].clone()).collect(),
            None => names.clone(),
        };
        if let Some(output) = &self.output {
            for name in output {
                if find(&kept, name).is_none() {
                    anyhow::bail!(
                        "--output-columns names `{name}`, which the input does not have \
                         (it has {})",
                        kept.join(", ")
                    );
                }
            }
        }
        if self.rename.is_some() || keep.is_some() {
            header.raw = String::from_utf8_lossy(&encode_fields(
                kept.iter().map(|s| s.as_bytes()),
                delimiter,
            ))
            .into_owned();
        }
        header.columns = kept;
        Ok(RowPlan {
            keep,
            required,
            delimiter,
        })
    }
}

impl RowPlan {
    /// A row that breaks a rule: why.
    pub fn check(&self, fields: &csv::ByteRecord) -> Result<(), String> {
        for (i, name) in &self.required {
            if fields.get(*i).is_none_or(|f| f.trim_ascii().is_empty()) {
                return Err(format!("required column `{name}` is empty"));
            }
        }
        Ok(())
    }

    /// The bytes to store for a row: its raw bytes, or the kept columns
    /// re-encoded when unknown columns are skipped.
    pub fn project(&self, fields: &csv::ByteRecord, raw: Vec<u8>) -> Vec<u8> {
        match &self.keep {
            None => raw,
            Some(keep) => encode_fields(
                keep.iter().map(|i| fields.get(*i).unwrap_or_default()),
                self.delimiter,
            ),
        }
    }
}

/// Fields as one delimited line (quoted where needed), no terminator.
pub fn encode_fields<'a>(fields: impl Iterator<Item = &'a [u8]>, delimiter: u8) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(fields);
    let mut out = writer.into_inner().unwrap_or_default();
    out.pop();
    out
}

/// Projects output rows onto `--output-columns` at download.
pub struct OutputProjection {
    indexes: Vec<Option<usize>>,
    delimiter: u8,
    pub header: String,
}

impl OutputProjection {
    /// None when every named column is missing from `columns` is impossible
    /// (checked at submit); a name not found writes an empty field.
    pub fn new(columns: &[String], output: &[String], delimiter: u8) -> OutputProjection {
        OutputProjection {
            indexes: output.iter().map(|n| find(columns, n)).collect(),
            delimiter,
            header: String::from_utf8_lossy(&encode_fields(
                output.iter().map(|s| s.as_bytes()),
                delimiter,
            ))
            .into_owned(),
        }
    }

    pub fn project(&self, record: &[u8]) -> Vec<u8> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.delimiter)
            .from_reader(record);
        let mut fields = csv::ByteRecord::new();
        if !reader.read_byte_record(&mut fields).unwrap_or(false) {
            fields.clear();
        }
        encode_fields(
            self.indexes
                .iter()
                .map(|i| i.and_then(|i| fields.get(i)).unwrap_or_default()),
            self.delimiter,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> CsvHeader {
        CsvHeader {
            raw: names.join(","),
            columns: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn row(fields: &[&str]) -> csv::ByteRecord {
        csv::ByteRecord::from(fields.to_vec())
    }

    #[test]
    fn rename_needs_a_name_per_column_and_renames_the_header() {
        let rules = ColumnRules {
            rename: Some(names(&["a", "b"])),
            ..ColumnRules::default()
        };
        let mut h = header(&["x", "y"]);
        rules.plan(&mut h, b',').unwrap();
        assert_eq!(
            (h.raw.as_str(), h.columns.clone()),
            ("a,b", names(&["a", "b"]))
        );
        let err = rules.plan(&mut header(&["x"]), b',').unwrap_err();
        assert!(err.to_string().contains("name every column"), "{err}");
    }

    #[test]
    fn a_missing_required_column_refuses_and_an_empty_one_rejects_the_row() {
        let rules = ColumnRules {
            required: names(&["email"]),
            ..ColumnRules::default()
        };
        let err = rules.plan(&mut header(&["id"]), b',').unwrap_err();
        assert!(err.to_string().contains("no `email` column"), "{err}");
        let plan = rules.plan(&mut header(&["id", "email"]), b',').unwrap();
        let err = plan.check(&row(&["1", " "])).unwrap_err();
        assert!(err.contains("`email` is empty"), "{err}");
        assert_eq!(plan.check(&row(&["1", "e"])), Ok(()));
        assert_eq!(plan.project(&row(&["1", "e"]), b"1,e".to_vec()), b"1,e");
    }

    #[test]
    fn unknown_columns_are_refused_or_skipped() {
        let mut rules = ColumnRules {
            allowed: Some(names(&["id", "name"])),
            ..ColumnRules::default()
        };
        let err = rules
            .plan(&mut header(&["id", "junk", "name"]), b',')
            .unwrap_err();
        assert!(
            err.to_string().contains("junk; pass --skip-unknown"),
            "{err}"
        );
        rules.skip_unknown = true;
        let mut h = header(&["id", "junk", "name"]);
        let plan = rules.plan(&mut h, b'|').unwrap();
        assert_eq!(h.raw, "id|name");
        let got = plan.project(&row(&["1", "j", "a|b"]), Vec::new());
        assert_eq!(got, b"1|\"a|b\"");
    }

    #[test]
    fn output_columns_select_and_order() {
        let p = OutputProjection::new(
            &names(&["id", "name", "city"]),
            &names(&["city", "id"]),
            b',',
        );
        assert_eq!(p.header, "city,id");
        assert_eq!(p.project(b"1,\"A, B\",Oslo"), b"Oslo,1");
        let rules = ColumnRules {
            output: Some(names(&["nope"])),
            ..ColumnRules::default()
        };
        assert!(rules.plan(&mut header(&["id"]), b',').is_err());
    }
}
