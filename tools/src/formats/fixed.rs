//! Fixed-width input (`--format fixed --layout layout.json`): each line is
//! one record, its fields at fixed character positions.
//!
//! The layout file names every field, its start (1-based, in characters,
//! as bank layouts count) and its width:
//!
//! ```json
//! {"fields": [{"name": "id", "start": 1, "width": 5},
//!             {"name": "amount", "start": 6, "width": 10}]}
//! ```
//!
//! A record is the line as it was (so the file comes back byte for byte);
//! the layout is kept with the job (`fixed_layout`) for handlers. A line
//! shorter than the layout's last field is a record error on its line.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::input::{Item, RecordSource};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedField {
    pub name: String,
    pub start: usize,
    pub width: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedLayout {
    pub fields: Vec<FixedField>,
}

/// Job property: the layout, as its file gave it.
pub const FIXED_LAYOUT: &str = "fixed_layout";

impl FixedLayout {
    /// Reads and checks a layout file.
    pub fn load(path: &Path) -> anyhow::Result<FixedLayout> {
        let text = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the layout {}: {e}; check --layout",
                path.display()
            )
        })?;
        let layout: FixedLayout = serde_json::from_slice(&text).map_err(|e| {
            anyhow::anyhow!(
                "the layout {} is not valid: {e}; it is {{\"fields\": [{{\"name\": \"id\", \
                 \"start\": 1, \"width\": 5}}, ...]}}",
                path.display()
            )
        })?;
        layout
            .check()
            .map_err(|e| anyhow::anyhow!("the layout {}: {e}", path.display()))?;
        Ok(layout)
    }

    /// The layout a job was created with (its `fixed_layout` property),
    /// checked as a layout file is; None when it has none.
    pub fn from_properties(properties: &serde_json::Value) -> Option<Result<FixedLayout, String>> {
        let value = properties.get(FIXED_LAYOUT)?;
        Some(
            serde_json::from_value::<FixedLayout>(value.clone())
                .map_err(|e| format!("the job's fixed_layout is not a layout: {e}"))
                .and_then(|layout| {
                    layout
                        .check()
                        .map(|()| layout)
                        .map_err(|e| format!("the job's fixed_layout: {e}"))
                }),
        )
    }

    fn check(&self) -> Result<(), String> {
        if self.fields.is_empty() {
            return Err("it has no fields".into());
        }
        let mut spans: Vec<(usize, usize, &str)> = Vec::new();
        for f in &self.fields {
            if f.name.trim().is_empty() || f.start == 0 || f.width == 0 {
                return Err(format!(
                    "field {:?} needs a name, a start from 1 and a width from 1",
                    f.name
                ));
            }
            if self.fields.iter().filter(|g| g.name == f.name).count() > 1 {
                return Err(format!("field {:?} is named twice", f.name));
            }
            spans.push((f.start, f.start + f.width, &f.name));
        }
        spans.sort();
        for pair in spans.windows(2) {
            if pair[1].0 < pair[0].1 {
                return Err(format!(
                    "fields {:?} and {:?} overlap",
                    pair[0].2, pair[1].2
                ));
            }
        }
        Ok(())
    }

    /// Characters a line needs to hold every field.
    pub fn line_chars(&self) -> usize {
        self.fields
            .iter()
            .map(|f| f.start - 1 + f.width)
            .max()
            .unwrap_or(0)
    }

    /// The fields of `line`, trimmed of padding; None when it is too short.
    pub fn split<'a>(&self, line: &'a str) -> Option<Vec<(&str, &'a str)>> {
        let starts: Vec<usize> = line
            .char_indices()
            .map(|(i, _)| i)
            .chain([line.len()])
            .collect();
        self.fields
            .iter()
            .map(|f| {
                let from = *starts.get(f.start - 1)?;
                let to = *starts.get(f.start - 1 + f.width)?;
                Some((f.name.as_str(), line[from..to].trim()))
            })
            .collect()
    }
}

/// Lines checked against a layout.
pub struct FixedSource {
    pub lines: Box<dyn RecordSource>,
    pub layout: FixedLayout,
}

impl RecordSource for FixedSource {
    fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> io::Result<()> {
        let from = out.len();
        self.lines.next_batch(max, out)?;
        let need = self.layout.line_chars();
        for item in &mut out[from..] {
            let Item::Record { bytes, line, .. } = item else {
                continue;
            };
            let text = String::from_utf8_lossy(bytes);
            let text = text.strip_suffix('\r').unwrap_or(&text);
            let chars = text.chars().count();
            if chars < need {
                *item = Item::Rejected {
                    raw: std::mem::take(bytes),
                    line: *line,
                    message: format!(
                        "the line has {chars} characters; the fixed-width layout needs {need}"
                    ),
                };
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(fields: &[(&str, usize, usize)]) -> FixedLayout {
        FixedLayout {
            fields: fields
                .iter()
                .map(|(n, s, w)| FixedField {
                    name: n.to_string(),
                    start: *s,
                    width: *w,
                })
                .collect(),
        }
    }

    #[test]
    fn fields_are_cut_by_character_position() {
        let l = layout(&[("id", 1, 3), ("name", 4, 6)]);
        assert_eq!(l.line_chars(), 9);
        assert_eq!(
            l.split("007Zoë   ").unwrap(),
            vec![("id", "007"), ("name", "Zoë")]
        );
        assert_eq!(l.split("007Zo"), None);
    }

    #[test]
    fn overlapping_or_empty_fields_are_refused() {
        assert!(layout(&[("a", 1, 3), ("b", 3, 2)])
            .check()
            .unwrap_err()
            .contains("overlap"));
        assert!(layout(&[("a", 0, 3)]).check().is_err());
        assert!(layout(&[]).check().is_err());
        assert!(layout(&[("a", 1, 1), ("a", 2, 1)])
            .check()
            .unwrap_err()
            .contains("twice"));
    }
}
