//! A JSON array (`[{...}, {...}]`) read one element at a time, never whole.
//!
//! A small splitter walks the bytes: it tracks strings (and their escapes)
//! and bracket depth, so an element ends at a `,` or `]` at depth 0. Each
//! element is stored compact (whitespace outside strings dropped, so a
//! pretty-printed object becomes one line a command can read) and checked
//! with serde_json; one that is not JSON is a record error on the line where
//! it began. An element longer than `max_record_bytes` is an error and the
//! splitter reads on to its end holding at most that much. An array never
//! closed, or data after the closing `]`, is a record error too.

use std::io::{self, BufRead};

use super::input::{check_json, Item, RecordSource};

pub struct JsonArraySource<R> {
    reader: R,
    max_record_bytes: usize,
    /// 1-based line of the next byte.
    line: u64,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `[`.
    Start,
    /// Inside the array, between elements.
    Between,
    /// After the closing `]` (or a fatal problem): only whitespace may follow.
    Done,
}

/// One element being read.
struct Element {
    bytes: Vec<u8>,
    line: u64,
    depth: i64,
    in_string: bool,
    escaped: bool,
    too_long: bool,
}

impl<R: BufRead> JsonArraySource<R> {
    pub fn new(reader: R, max_record_bytes: usize) -> JsonArraySource<R> {
        JsonArraySource {
            reader,
            max_record_bytes,
            line: 1,
            state: State::Start,
        }
    }

    /// The next byte that is not whitespace, consumed; None at the end.
    fn next_significant(&mut self) -> io::Result<Option<u8>> {
        loop {
            let buf = self.reader.fill_buf()?;
            let Some(&b) = buf.first() else {
                return Ok(None);
            };
            self.reader.consume(1);
            match b {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => return Ok(Some(b)),
            }
        }
    }

    /// Reads one element starting with `first`; the `,` or `]` after it is
    /// consumed, and says whether the array goes on.
    fn read_element(&mut self, first: u8) -> io::Result<(Element, Option<u8>)> {
        let mut el = Element {
            bytes: Vec::new(),
            line: self.line,
            depth: 0,
            in_string: false,
            escaped: false,
            too_long: false,
        };
        let mut pending = Some(first);
        loop {
            let b = match pending.take() {
                Some(b) => b,
                None => {
                    let buf = self.reader.fill_buf()?;
                    let Some(&b) = buf.first() else {
                        return Ok((el, None));
                    };
                    self.reader.consume(1);
                    b
                }
            };
            if b == b'\n' {
                self.line += 1;
            }
            if el.in_string {
                if el.escaped {
                    el.escaped = false;
                } else if b == b'\\' {
                    el.escaped = true;
                } else if b == b'"' {
                    el.in_string = false;
                }
            } else {
                match b {
                    b',' | b']' if el.depth <= 0 => return Ok((el, Some(b))),
                    b'"' => el.in_string = true,
                    b'{' | b'[' => el.depth += 1,
                    b'}' | b']' => el.depth -= 1,
                    b' ' | b'\t' | b'\r' | b'\n' => continue,
                    _ => {}
                }
            }
            if el.bytes.len() < self.max_record_bytes {
                el.bytes.push(b);
            } else {
                el.too_long = true;
            }
        }
    }

    fn item(&self, el: Element, ended: Option<u8>) -> Item {
        let message = if el.too_long {
            Some(format!(
                "malformed JSON: the array element starting on this line is longer than {} \
                 bytes (--max-record-bytes raises the limit)",
                self.max_record_bytes
            ))
        } else if ended.is_none() {
            Some(
                "malformed JSON: the array is not closed; the input ends inside the element \
                 starting on this line"
                    .to_string(),
            )
        } else {
            check_json(&el.bytes).err()
        };
        match message {
            None => Item::record(el.bytes, el.line),
            Some(message) => Item::Rejected {
                raw: el.bytes,
                line: el.line,
                message,
            },
        }
    }
}

impl<R: BufRead + Send> RecordSource for JsonArraySource<R> {
    fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> io::Result<()> {
        while out.len() < max {
            let Some(b) = self.next_significant()? else {
                if self.state == State::Between {
                    self.state = State::Done;
                    out.push(Item::Rejected {
                        raw: Vec::new(),
                        line: self.line,
                        message: "malformed JSON: the array is not closed; add the `]`".into(),
                    });
                }
                break;
            };
            match (self.state, b) {
                (State::Start, b'[') => self.state = State::Between,
                (State::Start | State::Done, _) => {
                    let line = self.line;
                    let (el, _) = self.read_element(b)?;
                    self.state = State::Done;
                    out.push(Item::Rejected {
                        raw: el.bytes,
                        line,
                        message: "malformed JSON: data after the end of the JSON array".into(),
                    });
                }
                (State::Between, b']') => self.state = State::Done,
                // A stray comma (`[,1]` or `[1,,2]`): skip it; the
                // elements around it are still read.
                (State::Between, b',') => {}
                (State::Between, _) => {
                    let (el, ended) = self.read_element(b)?;
                    if ended != Some(b',') {
                        self.state = State::Done;
                    }
                    out.push(self.item(el, ended));
                }
            }
        }
        Ok(())
    }
}

/// The first byte that is not whitespace, without consuming anything:
/// `[` means a JSON array, anything else is one value per line.
pub fn starts_an_array(head: &[u8]) -> bool {
    head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &[u8], max: usize) -> Vec<Item> {
        let mut src = JsonArraySource::new(text, max);
        let mut all = Vec::new();
        loop {
            let mut batch = Vec::new();
            src.next_batch(2, &mut batch).unwrap();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    }

    fn record(bytes: &str, line: u64) -> Item {
        Item::record(bytes.as_bytes().to_vec(), line)
    }

    #[test]
    fn elements_are_read_one_by_one_compact_with_their_lines() {
        let text = b"[\n  {\"a\": 1,\n   \"s\": \"x, ]y\"},\n  [1, 2],\n  \"q\\\"}\"\n]\n";
        assert_eq!(
            items(text, 1 << 20),
            vec![
                record("{\"a\":1,\"s\":\"x, ]y\"}", 2),
                record("[1,2]", 4),
                record("\"q\\\"}\"", 5),
            ]
        );
    }

    #[test]
    fn a_bad_element_is_a_record_error_and_the_rest_is_read() {
        let text = b"[{\"a\":1},\n{\"a\":},\n{\"a\":3}]";
        let got = items(text, 1 << 20);
        assert_eq!(got[0], record("{\"a\":1}", 1));
        assert!(
            matches!(&got[1], Item::Rejected { line: 2, .. }),
            "{:?}",
            got[1]
        );
        assert_eq!(got[2], record("{\"a\":3}", 3));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn an_unclosed_array_and_trailing_data_are_record_errors() {
        let got = items(b"[1,\n2", 1 << 20);
        assert_eq!(got[0], record("1", 1));
        assert!(
            matches!(&got[1], Item::Rejected { line: 2, message, .. } if message.contains("not closed")),
            "{got:?}"
        );
        let got = items(b"[1]\n[2]", 1 << 20);
        assert_eq!(got[0], record("1", 1));
        assert!(
            matches!(&got[1], Item::Rejected { line: 2, message, .. } if message.contains("after the end")),
            "{got:?}"
        );
    }

    #[test]
    fn an_element_over_the_limit_is_an_error_and_reading_goes_on() {
        let long = format!("[\"{}\",\n2]", "x".repeat(5000));
        let got = items(long.as_bytes(), 100);
        assert!(
            matches!(&got[0], Item::Rejected { line: 1, raw, message } if raw.len() == 100 && message.contains("longer than 100")),
            "{got:?}"
        );
        assert_eq!(got[1], record("2", 2));
    }

    #[test]
    fn an_empty_array_has_no_records() {
        assert!(items(b" [ ]\n", 10).is_empty());
        assert!(starts_an_array(b"\n [1]"));
        assert!(!starts_an_array(b"{\"a\":1}\n"));
    }
}
