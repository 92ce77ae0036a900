//! Text encodings (encoding_rs): input decoded to UTF-8 as it streams,
//! output encoded back on request.
//!
//! Input: `--encoding LABEL` (any WHATWG label: `latin1`, `windows-1252`,
//! `utf-16le`, `shift_jis`, ...), else a byte-order mark picks UTF-8,
//! UTF-16LE or UTF-16BE, else the bytes are taken as they are (UTF-8).
//! Records are stored as the decoded UTF-8 text; the job remembers the
//! encoding and whether there was a BOM (`encoding`, `bom` properties).
//!
//! A byte sequence the encoding cannot decode becomes the byte 0xFF in the
//! decoded stream — a byte that never occurs in UTF-8 — so the record
//! holding it is found invalid and becomes a record error on its line, and
//! the rest of the file goes on ([`Utf8Records`]).
//!
//! Output: UTF-8 (a UTF-8 input's BOM is written back by default, so the
//! file comes back exact); `--output-encoding input` writes the job's
//! input encoding (and its BOM), so a latin-1 or UTF-16 file comes back
//! byte for byte; another label writes that encoding. A character the target cannot hold stops
//! the download with a message naming it, never a silent substitution.

use std::io::{self, BufRead, Read};

use encoding_rs::{DecoderResult, Encoding, UTF_16BE, UTF_16LE, UTF_8};
use serde_json::{json, Value};

use super::input::{Item, RecordSource};

/// Keys of the job properties.
const ENCODING: &str = "encoding";
const BOM: &str = "bom";

/// Stands for an undecodable sequence in the decoded stream.
const UNDECODABLE: u8 = 0xFF;

/// The encoding `label` names, or an error listing some.
pub fn parse_label(label: &str) -> Result<&'static Encoding, String> {
    let label = match label.to_ascii_lowercase().as_str() {
        "latin1" | "latin-1" => "iso-8859-1".to_string(),
        other => other.to_string(),
    };
    Encoding::for_label(label.as_bytes()).ok_or_else(|| {
        format!(
            "unknown encoding {label:?}: use a label such as utf-8, latin1, windows-1252, \
             utf-16le, utf-16be, shift_jis"
        )
    })
}

/// How an input was decoded, kept with the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputEncoding {
    pub encoding: &'static Encoding,
    pub bom: bool,
}

impl InputEncoding {
    pub fn to_properties(self, properties: &mut Value) {
        properties[ENCODING] = json!(self.encoding.name());
        if self.bom {
            properties[BOM] = json!(true);
        }
    }

    /// The job's input encoding; None for a job read as plain bytes.
    pub fn from_properties(properties: &Value) -> Option<InputEncoding> {
        let name = properties.get(ENCODING)?.as_str()?;
        Some(InputEncoding {
            encoding: Encoding::for_label(name.as_bytes())?,
            bom: properties
                .get(BOM)
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// Decides how to decode an input from `--encoding` and its first bytes
/// (`head`, at least 3 bytes unless the input is shorter). None: take the
/// bytes as they are.
pub fn choose(asked: Option<&'static Encoding>, head: &[u8]) -> Option<InputEncoding> {
    let bom = Encoding::for_bom(head);
    match (asked, bom) {
        (Some(encoding), Some((found, _))) => Some(InputEncoding {
            encoding,
            bom: found == encoding,
        }),
        (Some(encoding), None) => Some(InputEncoding {
            encoding,
            bom: false,
        }),
        (None, Some((encoding, _))) => Some(InputEncoding {
            encoding,
            bom: true,
        }),
        (None, None) => None,
    }
}

/// The decoded UTF-8 of `inner`; an undecodable sequence becomes 0xFF.
pub struct DecodeReader<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    done: bool,
}

impl<R: BufRead> DecodeReader<R> {
    pub fn new(inner: R, encoding: InputEncoding) -> DecodeReader<R> {
        // With a BOM of this encoding, it is removed; without, nothing is.
        let decoder = encoding.encoding.new_decoder_with_bom_removal();
        DecodeReader {
            inner,
            decoder,
            done: false,
        }
    }
}

impl<R: BufRead> Read for DecodeReader<R> {
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        // Room for one decoded character whatever the input.
        if dst.len() < 8 {
            let mut small = [0u8; 8];
            let n = self.read(&mut small)?;
            // Rare: callers here always pass large buffers.
            let n = n.min(dst.len());
            dst[..n].copy_from_slice(&small[..n]);
            return Ok(n);
        }
        let mut written = 0;
        while written == 0 && !self.done {
            let src = self.inner.fill_buf()?;
            let last = src.is_empty();
            let (result, read, wrote) =
                self.decoder
                    .decode_to_utf8_without_replacement(src, &mut dst[written..], last);
            self.inner.consume(read);
            written += wrote;
            match result {
                DecoderResult::InputEmpty => self.done = last,
                DecoderResult::OutputFull => break,
                DecoderResult::Malformed(_, _) => {
                    dst[written] = UNDECODABLE;
                    written += 1;
                }
            }
        }
        Ok(written)
    }
}

/// Turns a record that is not UTF-8 into a record error saying `why`.
pub struct Utf8Records {
    pub inner: Box<dyn RecordSource>,
    pub why: String,
}

impl RecordSource for Utf8Records {
    fn next_batch(&mut self, max: usize, out: &mut Vec<Item>) -> io::Result<()> {
        let from = out.len();
        self.inner.next_batch(max, out)?;
        for item in &mut out[from..] {
            if let Item::Record { bytes, line, .. } = item {
                if std::str::from_utf8(bytes).is_err() {
                    *item = Item::Rejected {
                        raw: std::mem::take(bytes),
                        line: *line,
                        message: self.why.clone(),
                    };
                }
            }
        }
        Ok(())
    }
}

/// Encodes UTF-8 output text into another encoding.
pub struct TextEncoder {
    encoding: &'static Encoding,
    encoder: encoding_rs::Encoder,
    /// Bytes to write before the first text (a BOM).
    pub preamble: Vec<u8>,
}

impl TextEncoder {
    pub fn new(encoding: &'static Encoding, bom: bool) -> TextEncoder {
        let preamble = match (bom, encoding) {
            (false, _) => Vec::new(),
            (true, e) if e == UTF_16LE => vec![0xFF, 0xFE],
            (true, e) if e == UTF_16BE => vec![0xFE, 0xFF],
            (true, _) => vec![0xEF, 0xBB, 0xBF],
        };
        TextEncoder {
            encoding,
            encoder: encoding.new_encoder(),
            preamble,
        }
    }

    /// `text` (UTF-8) in the target encoding; an error names a character
    /// the target cannot hold.
    pub fn encode(&mut self, text: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(text).map_err(|_| {
            "a record is not UTF-8 text, so it cannot be written in another encoding".to_string()
        })?;
        // encoding_rs decodes UTF-16 but writes it as UTF-8 (the web's
        // rule), so UTF-16 is written here.
        if self.encoding == UTF_16LE || self.encoding == UTF_16BE {
            let le = self.encoding == UTF_16LE;
            return Ok(text
                .encode_utf16()
                .flat_map(|u| if le { u.to_le_bytes() } else { u.to_be_bytes() })
                .collect());
        }
        if self.encoding == UTF_8 {
            return Ok(text.as_bytes().to_vec());
        }
        let mut out = Vec::with_capacity(text.len() + 16);
        let mut rest = text;
        loop {
            out.reserve(rest.len() + 16);
            let spare = out.capacity() - out.len();
            let mut buf = vec![0u8; spare];
            let (result, read, wrote) = self
                .encoder
                .encode_from_utf8_without_replacement(rest, &mut buf, false);
            out.extend_from_slice(&buf[..wrote]);
            rest = &rest[read..];
            match result {
                encoding_rs::EncoderResult::InputEmpty => return Ok(out),
                encoding_rs::EncoderResult::OutputFull => {}
                encoding_rs::EncoderResult::Unmappable(c) => {
                    return Err(format!(
                        "the character {c:?} cannot be written in {}; pick another \
                         --output-encoding (utf-8 holds every character)",
                        self.encoding.name()
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8], asked: Option<&str>) -> Vec<u8> {
        let asked = asked.map(|l| parse_label(l).unwrap());
        let enc = choose(asked, bytes).unwrap();
        let mut out = Vec::new();
        DecodeReader::new(bytes, enc).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn latin1_decodes_and_encodes_back_byte_for_byte() {
        let latin1 = b"id,name\n1,Jos\xe9\n2,M\xfcller\n";
        let text = decode(latin1, Some("latin1"));
        assert_eq!(
            String::from_utf8(text.clone()).unwrap(),
            "id,name\n1,José\n2,Müller\n"
        );
        let mut enc = TextEncoder::new(parse_label("latin1").unwrap(), false);
        assert_eq!(enc.encode(&text).unwrap(), latin1);
    }

    #[test]
    fn a_bom_picks_utf16_and_is_written_back() {
        let mut utf16: Vec<u8> = vec![0xFF, 0xFE];
        utf16.extend("a,b\n1,é\n".encode_utf16().flat_map(u16::to_le_bytes));
        let found = choose(None, &utf16).unwrap();
        assert_eq!((found.encoding, found.bom), (UTF_16LE, true));
        assert_eq!(decode(&utf16, None), "a,b\n1,é\n".as_bytes());
        let mut enc = TextEncoder::new(UTF_16LE, true);
        let mut back = enc.preamble.clone();
        back.extend(enc.encode("a,b\n1,é\n".as_bytes()).unwrap());
        assert_eq!(back, utf16);
    }

    #[test]
    fn an_undecodable_sequence_marks_its_record() {
        // A lone 0xFF byte is not UTF-8.
        let text = decode(b"\xEF\xBB\xBFok\nbad \xff\n", None);
        assert_eq!(text, b"ok\nbad \xff\n");
        let err = TextEncoder::new(parse_label("latin1").unwrap(), false)
            .encode("snow ☃".as_bytes())
            .unwrap_err();
        assert!(err.contains("cannot be written in windows-1252"), "{err}");
        assert!(parse_label("klingon")
            .unwrap_err()
            .contains("unknown encoding"));
    }
}
