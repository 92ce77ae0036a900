//! How records cross the HTTP API exactly, so `--server` gives what a local
//! command gives:
//!
//! - upload `PUT /api/jobs/{id}/input?format=items`: the client has parsed
//!   the input with the same readers as a local `submit` (every input
//!   option applied there: delimiter, encoding, layout, zip member, column
//!   rules, sheet), and sends each [`Item`] as one JSON line:
//!   `{"line": N, "record": TEXT}` (or `"record_base64"` for bytes that are
//!   not UTF-8), with `"before"`/`"after"` (or `..._base64`) where its
//!   separators are not the usual ones, or `{"line": N, "rejected": TEXT |
//!   "rejected_base64": B64, "message": WHY}` for a record the format
//!   rejected. [`ItemsReader`] writes them, [`ItemsSource`] reads them.
//! - download `GET /api/jobs/{id}/output?framing=length`: each record
//!   length-prefixed, so a record holding a newline comes back whole
//!   (booster-client's `http::framing`, re-exported here: the server and
//!   the JSON client share it).

use std::io::{self, BufRead, Read};

use base64::Engine as _;
use booster_runtime::Separators;
use serde::{Deserialize, Serialize};

use super::{Item, RecordSource};

/// The upload format name of pre-parsed items.
pub const ITEMS_FORMAT: &str = "items";
pub use booster_client::http::framing::{
    write_framed, write_separated, FramedRecords, SeparatedRecords, LENGTH_FRAMING,
    SEPARATORS_HEADER,
};

const ITEMS_PER_REFILL: usize = 256;

#[derive(Serialize, Deserialize, Default)]
struct WireItem {
    line: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rejected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rejected_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after_base64: Option<String>,
}

/// Text when `bytes` are UTF-8, else base64 in the second slot.
fn text_or_base64(bytes: Vec<u8>) -> (Option<String>, Option<String>) {
    match String::from_utf8(bytes) {
        Ok(text) => (Some(text), None),
        Err(e) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
        ),
    }
}

fn bytes_of(text: Option<String>, b64: Option<String>, what: &str) -> io::Result<Option<Vec<u8>>> {
    match (text, b64) {
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(Some)
            .map_err(|e| invalid(format!("{what}_base64 is not base64: {e}"))),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(invalid(format!("both {what} and {what}_base64 given"))),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn encode_item(item: Item) -> Vec<u8> {
    let wire = match item {
        Item::Record {
            bytes,
            line,
            separators,
        } => {
            let (record, record_base64) = text_or_base64(bytes);
            let (before, before_base64) = separators.before.map_or((None, None), text_or_base64);
            let (after, after_base64) = separators.after.map_or((None, None), text_or_base64);
            WireItem {
                line,
                record,
                record_base64,
                before,
                before_base64,
                after,
                after_base64,
                ..WireItem::default()
            }
        }
        Item::Rejected { raw, line, message } => {
            let (rejected, rejected_base64) = text_or_base64(raw);
            WireItem {
                line,
                rejected,
                rejected_base64,
                message: Some(message),
                ..WireItem::default()
            }
        }
    };
    let mut line = serde_json::to_vec(&wire).expect("items serialize");
    line.push(b'\n');
    line
}

fn decode_item(line: &[u8], number: u64) -> io::Result<Item> {
    let wire: WireItem = serde_json::from_slice(line)
        .map_err(|e| invalid(format!("item {number} of the upload is not an item: {e}")))?;
    let record = bytes_of(wire.record, wire.record_base64, "record")?;
    let rejected = bytes_of(wire.rejected, wire.rejected_base64, "rejected")?;
    let separators = Separators {
        before: bytes_of(wire.before, wire.before_base64, "before")?,
        after: bytes_of(wire.after, wire.after_base64, "after")?,
    };
    match (record, rejected) {
        (Some(bytes), None) => Ok(Item::Record {
            bytes,
            line: wire.line,
            separators,
        }),
        (None, Some(raw)) => Ok(Item::Rejected {
            raw,
            line: wire.line,
            message: wire.message.unwrap_or_default(),
        }),
        _ => Err(invalid(format!(
            "item {number} of the upload needs exactly one of record and rejected"
        ))),
    }
}

/// A record source as the bytes of an `items` upload, read as it goes.
pub struct ItemsReader {
    records: Box<dyn RecordSource>,
    buffer: Vec<u8>,
    at: usize,
    ended: bool,
}

impl ItemsReader {
    pub fn new(records: Box<dyn RecordSource>) -> ItemsReader {
        ItemsReader {
            records,
            buffer: Vec::new(),
            at: 0,
            ended: false,
        }
    }
}

impl Read for ItemsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buffer.len() && !self.ended {
            self.buffer.clear();
            self.at = 0;
            let mut batch = Vec::with_capacity(ITEMS_PER_REFILL);
            self.records.next_batch(ITEMS_PER_REFILL, &mut batch)?;
            self.ended = batch.is_empty();
            for item in batch {
                self.buffer.extend(encode_item(item));
            }
        }
        let n = buf.len().min(self.buffer.len() - self.at);
        buf[..n].copy_from_slice(&self.buffer[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The items of an `items` upload, as a record source.
pub struct ItemsSource<R> {
    reader: R,
    number: u64,
    line: Vec<u8>,
}

impl<R: BufRead + Send> ItemsSource<R> {
    pub fn new(reader: R) -> ItemsSource<R> {
        ItemsSource {
            reader,
            number: 0,
            line: Vec::new(),
        }
    }
}

impl<R: BufRead + Send> RecordSource for ItemsSource<R> {
    fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> io::Result<()> {
        while out.len() < max {
            self.line.clear();
            if self.reader.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(());
            }
            self.number += 1;
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            out.push(decode_item(&self.line, self.number)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<Item>);

    impl RecordSource for Fixed {
        fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> io::Result<()> {
            let n = max.min(self.0.len());
            out.extend(self.0.drain(..n));
            Ok(())
        }
    }

    #[test]
    fn items_cross_the_wire_exactly_whatever_their_bytes() {
        let items = vec![
            Item::Record {
                bytes: b"1,\"a\nb\"".to_vec(),
                line: 2,
                separators: Separators {
                    before: Some(b"\r\n\r\n".to_vec()),
                    after: Some(Vec::new()),
                },
            },
            Item::Record {
                bytes: vec![0xff, 0x00, b'x'],
                line: 4,
                separators: Separators {
                    before: None,
                    after: Some(vec![b'\n', 0xfe]),
                },
            },
            Item::Rejected {
                raw: vec![0xfe, b'\n'],
                line: 5,
                message: "bad".into(),
            },
        ];
        let mut wire = Vec::new();
        ItemsReader::new(Box::new(Fixed(items.clone())))
            .read_to_end(&mut wire)
            .unwrap();
        let mut source = ItemsSource::new(wire.as_slice());
        let mut back = Vec::new();
        source.next_batch(100, &mut back).unwrap();
        assert_eq!(back, items);
    }

    #[test]
    fn a_broken_item_is_an_error_naming_it() {
        let mut source = ItemsSource::new(&b"{\"line\":1,\"record\":\"a\"}\n{\"line\":2}\n"[..]);
        let err = source.next_batch(10, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("item 2"), "{err}");
    }
}
