//! How a text input's lines end, kept with the job so `download` writes the
//! file back byte for byte.
//!
//! Records are stored without their terminators (handlers see clean
//! records). What the terminators were is a per-job setting, read from the
//! input when the job is submitted and stored in its properties
//! (`line_ending`, `final_newline`, `leading_blank_lines`):
//!
//! - `line_ending`: the input's first line terminator, `\n`, `\r\n` or a
//!   lone `\r`; written after every output line.
//! - `final_newline`: false when the last line has no terminator. Known when
//!   the job is submitted for a plain (uncompressed) regular file; assumed
//!   true for compressed files and stdin, which cannot be read to their end
//!   before the upload.
//! - `leading_blank_lines`: blank lines before a CSV header.
//!
//! Lines and JSON Lines keep a `\r` before `\n` inside the record. What
//! differs from the layout at a record (blank lines between CSV rows,
//! another ending, the end of the file) is that record's separators
//! (`separated.rs`), written back where the output is 1:1. A job
//! submitted before these properties existed reads as `\n` with a final
//! newline, as it was written then.

use std::path::Path;

use serde_json::{json, Value};

/// Keys of the job properties.
const LINE_ENDING: &str = "line_ending";
const FINAL_NEWLINE: &str = "final_newline";
const LEADING_BLANK_LINES: &str = "leading_blank_lines";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LineEnding {
    #[default]
    Lf,
    CrLf,
    Cr,
}

impl LineEnding {
    pub fn bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Lf => b"\n",
            LineEnding::CrLf => b"\r\n",
            LineEnding::Cr => b"\r",
        }
    }

    fn name(self) -> &'static str {
        match self {
            LineEnding::Lf => "lf",
            LineEnding::CrLf => "crlf",
            LineEnding::Cr => "cr",
        }
    }

    fn from_name(name: &str) -> Option<LineEnding> {
        [LineEnding::Lf, LineEnding::CrLf, LineEnding::Cr]
            .into_iter()
            .find(|e| e.name() == name)
    }

    /// The line ending of `head`: `\r\n` when its first `\n` follows a
    /// `\r`, `\n` when it follows anything else, a lone `\r` only when
    /// `head` has no `\n` at all (an old Mac file), and `\n` when there is
    /// no terminator. A stray `\r` inside a record of a `\n` file never
    /// makes the whole file split on `\r`. A `\r` as the last byte of a
    /// `head` without `\n` counts as `\r\n` (the more common file).
    pub fn sniff(head: &[u8]) -> LineEnding {
        match memchr::memchr(b'\n', head) {
            Some(i) if i > 0 && head[i - 1] == b'\r' => LineEnding::CrLf,
            Some(_) => LineEnding::Lf,
            None => match memchr::memchr(b'\r', head) {
                None => LineEnding::Lf,
                Some(i) if i + 1 == head.len() => LineEnding::CrLf,
                Some(_) => LineEnding::Cr,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextLayout {
    pub line_ending: LineEnding,
    pub final_newline: bool,
    pub leading_blank_lines: u64,
}

impl Default for TextLayout {
    fn default() -> TextLayout {
        TextLayout {
            line_ending: LineEnding::Lf,
            final_newline: true,
            leading_blank_lines: 0,
        }
    }
}

impl TextLayout {
    /// From the first bytes of the (decompressed) input.
    pub fn sniff(head: &[u8], count_leading_blank_lines: bool) -> TextLayout {
        let line_ending = LineEnding::sniff(head);
        let leading_blank_lines = if count_leading_blank_lines {
            let ending = line_ending.bytes();
            let mut rest = head;
            let mut n = 0;
            while let Some(after) = rest.strip_prefix(ending) {
                rest = after;
                n += 1;
            }
            n
        } else {
            0
        };
        TextLayout {
            line_ending,
            final_newline: true,
            leading_blank_lines,
        }
    }

    /// Blank lines before a CSV header, as the reader found them: counted
    /// when they are the layout's line ending repeated (a mix of endings
    /// there is not kept).
    pub fn count_leading_blank_lines(&mut self, lead: &[u8]) {
        let ending = self.line_ending.bytes();
        if lead.len().is_multiple_of(ending.len()) && lead.chunks(ending.len()).all(|c| c == ending)
        {
            self.leading_blank_lines = (lead.len() / ending.len()) as u64;
        }
    }

    /// Writes the layout into a job's properties.
    pub fn to_properties(self, properties: &mut Value) {
        properties[LINE_ENDING] = json!(self.line_ending.name());
        properties[FINAL_NEWLINE] = json!(self.final_newline);
        if self.leading_blank_lines > 0 {
            properties[LEADING_BLANK_LINES] = json!(self.leading_blank_lines);
        }
    }

    /// The layout a job was submitted with; the default for older jobs.
    pub fn from_properties(properties: &Value) -> TextLayout {
        let default = TextLayout::default();
        TextLayout {
            line_ending: properties
                .get(LINE_ENDING)
                .and_then(Value::as_str)
                .and_then(LineEnding::from_name)
                .unwrap_or(default.line_ending),
            final_newline: properties
                .get(FINAL_NEWLINE)
                .and_then(Value::as_bool)
                .unwrap_or(default.final_newline),
            leading_blank_lines: properties
                .get(LEADING_BLANK_LINES)
                .and_then(Value::as_u64)
                .unwrap_or(0),
        }
    }
}

/// Whether a plain regular file ends with a line terminator; None when it
/// cannot be told without reading it whole (stdin, a pipe) or it is empty.
pub fn file_ends_with_newline(path: &Path) -> Option<bool> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, meta.len() - 1).ok()?;
    Some(matches!(last[0], b'\n' | b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_terminator_names_the_line_ending() {
        assert_eq!(LineEnding::sniff(b"a,b\r\n1,2\n"), LineEnding::CrLf);
        assert_eq!(LineEnding::sniff(b"a,b\r1,2\r"), LineEnding::Cr);
        assert_eq!(LineEnding::sniff(b"a,b\n1\r\n"), LineEnding::Lf);
        assert_eq!(LineEnding::sniff(b"no terminator"), LineEnding::Lf);
        // A stray \r in a record of a \n file does not name the ending.
        assert_eq!(LineEnding::sniff(b"a\rb\nc\n"), LineEnding::Lf);
        assert_eq!(LineEnding::sniff(b"a\rb\r\nc\r\n"), LineEnding::CrLf);
    }

    #[test]
    fn leading_blank_lines_are_counted_in_the_files_ending() {
        let layout = TextLayout::sniff(b"\r\n\r\nid,name\r\n", true);
        assert_eq!(layout.line_ending, LineEnding::CrLf);
        assert_eq!(layout.leading_blank_lines, 2);
    }

    #[test]
    fn layout_survives_the_job_properties_and_old_jobs_read_as_lf() {
        let layout = TextLayout {
            line_ending: LineEnding::Cr,
            final_newline: false,
            leading_blank_lines: 3,
        };
        let mut props = json!({"format": "csv"});
        layout.to_properties(&mut props);
        assert_eq!(TextLayout::from_properties(&props), layout);
        assert_eq!(
            TextLayout::from_properties(&json!({"format": "csv"})),
            TextLayout::default()
        );
    }
}
