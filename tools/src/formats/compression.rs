//! Compressed input and output: gzip, zstd, bzip2 and xz.
//!
//! Input is recognised by its first bytes, never by its name: a gzip file
//! called `data.txt`, or gzip piped into stdin, is decompressed all the
//! same. A file that starts with the magic bytes of a format booster cannot
//! read (zip, 7z, rar, lz4, ...) is refused with a message saying what it
//! is, instead of being read as text. A file named `.gz` (or `.zst`, `.bz2`,
//! `.xz`) that does not start with that codec's magic is refused too: it is
//! not what its name says. Output is compressed by the file's extension.
//!
//! Every codec is a well-kept crate (flate2, zstd, bzip2, liblzma); each
//! reader accepts concatenated streams (gzip members, zstd frames, bzip2
//! and xz streams), so files written in parallel parts read as one.

use std::io::{self, BufReader, Read, Write};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

/// The codecs booster reads and writes, with their extension and magic.
const CODECS: [(Compression, &str, &[u8]); 4] = [
    (Compression::Gzip, "gz", &[0x1f, 0x8b]),
    (Compression::Zstd, "zst", &[0x28, 0xb5, 0x2f, 0xfd]),
    (Compression::Bzip2, "bz2", b"BZh"),
    (Compression::Xz, "xz", &[0xfd, b'7', b'z', b'X', b'Z', 0]),
];

/// Formats booster recognises but cannot read: their magic, their name.
const REFUSED_MAGIC: [(&[u8], &str); 8] = [
    (
        b"PK\x03\x04",
        "a zip archive here (pass a zip as a file, not on stdin or inside another archive)",
    ),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
    (b"Rar!\x1a\x07", "a rar archive"),
    (&[0x04, 0x22, 0x4d, 0x18], "lz4-compressed"),
    (b"LZIP", "lzip-compressed"),
    (&[0x1f, 0x9d], "compress (.Z) data"),
    (&[0x89, b'L', b'Z', b'O'], "lzop-compressed"),
];

/// Extensions of formats without a reliable magic that booster cannot read.
const REFUSED_EXTENSIONS: [(&str, &str); 3] = [
    ("br", "brotli-compressed"),
    ("lzma", "lzma-compressed"),
    ("lz4", "lz4-compressed"),
];

/// Bytes read from the start of an input to recognise it.
const SNIFF_BYTES: usize = 8;

impl Compression {
    /// By extension (`.gz`, `.zst`, `.bz2`, `.xz`), anything else none:
    /// how output is compressed.
    pub fn from_path(path: &Path) -> Compression {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        CODECS
            .iter()
            .find(|(_, e, _)| ext.eq_ignore_ascii_case(e))
            .map_or(Compression::None, |(c, _, _)| *c)
    }

    /// By the first bytes of the data; None when no codec's magic matches.
    pub fn from_magic(head: &[u8]) -> Option<Compression> {
        let found = CODECS.iter().find(|(_, _, magic)| head.starts_with(magic));
        // bzip2's "BZh" is followed by the block size digit 1-9.
        found
            .filter(|(c, _, _)| {
                *c != Compression::Bzip2 || matches!(head.get(3), Some(b'1'..=b'9'))
            })
            .map(|(c, _, _)| *c)
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "plain",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
        }
    }

    fn extension(self) -> Option<&'static str> {
        CODECS
            .iter()
            .find(|(c, _, _)| *c == self)
            .map(|(_, e, _)| *e)
    }

    /// `name` without this codec's extension.
    pub fn strip(self, name: &str) -> &str {
        match self.extension() {
            Some(ext) => name
                .strip_suffix(ext)
                .and_then(|n| n.strip_suffix('.'))
                .unwrap_or(name),
            None => name,
        }
    }
}

/// Reads the first bytes of `raw`, decides how it is compressed and returns
/// a reader of the decompressed bytes. `path` names the input in messages
/// and, for a file, says what its extension promised.
pub fn decompress(
    path: &Path,
    mut raw: Box<dyn Read + Send>,
) -> anyhow::Result<(Box<dyn Read + Send>, Compression)> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&mut raw)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let compression = detect(path, &head)?;
    let raw: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(raw));
    let reader: Box<dyn Read + Send> = match compression {
        Compression::None => raw,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(raw))),
        Compression::Zstd => Box::new(zstd::Decoder::new(raw)?),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(BufReader::new(raw))),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(BufReader::new(
            raw,
        ))),
    };
    Ok((reader, compression))
}

/// The decision table: magic bytes first, then what the name promised.
fn detect(path: &Path, head: &[u8]) -> anyhow::Result<Compression> {
    if let Some(found) = Compression::from_magic(head) {
        return Ok(found);
    }
    let shown = path.display();
    if let Some((_, what)) = REFUSED_MAGIC.iter().find(|(m, _)| head.starts_with(m)) {
        anyhow::bail!(
            "input {shown} is {what}, which booster cannot read; extract or decompress it \
             first (booster reads plain text and gzip, zstd, bzip2 or xz compressed files)"
        );
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if let Some((_, what)) = REFUSED_EXTENSIONS
        .iter()
        .find(|(e, _)| ext.eq_ignore_ascii_case(e))
    {
        anyhow::bail!(
            "input {shown} is named as {what} data, which booster cannot read; decompress it \
             first (booster reads plain text and gzip, zstd, bzip2 or xz compressed files)"
        );
    }
    let named = Compression::from_path(path);
    if named != Compression::None && !head.is_empty() {
        anyhow::bail!(
            "input {shown} is named .{} but is not {} data (its first bytes are not {}'s \
             magic); rename it to what it is, or pass the right file",
            ext,
            named.name(),
            named.name()
        );
    }
    Ok(Compression::None)
}

/// A writer that compresses into `W` (or passes through, for `None`).
pub enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
    Bzip2(bzip2::write::BzEncoder<W>),
    Xz(liblzma::write::XzEncoder<W>),
}

impl<W: Write> Encoder<W> {
    /// Fast settings: output is written while a person waits.
    pub fn new(compression: Compression, inner: W) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::Plain(inner),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::fast(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::Encoder::new(inner, 3)?),
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                inner,
                bzip2::Compression::fast(),
            )),
            Compression::Xz => Encoder::Xz(liblzma::write::XzEncoder::new(inner, 3)),
        })
    }

    /// Ends the stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Bzip2(e) => e.finish(),
            Encoder::Xz(e) => e.finish(),
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Encoder::Plain(w) => w,
            Encoder::Gzip(w) => w,
            Encoder::Zstd(w) => w,
            Encoder::Bzip2(w) => w,
            Encoder::Xz(w) => w,
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compressed(compression: Compression, text: &[u8]) -> Vec<u8> {
        let mut e = Encoder::new(compression, Vec::new()).unwrap();
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    fn read_back(name: &str, bytes: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let (mut reader, _) = decompress(Path::new(name), Box::new(io::Cursor::new(bytes)))?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_codec_is_recognised_by_its_magic_whatever_the_name() {
        let text = b"one\ntwo\n".repeat(100);
        for c in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Bzip2,
            Compression::Xz,
        ] {
            assert_eq!(Compression::from_magic(&compressed(c, &text)), Some(c));
            let back = read_back("data.txt", compressed(c, &text)).unwrap();
            assert_eq!(back, text, "{c:?}");
        }
    }

    #[test]
    fn concatenated_streams_read_as_one() {
        for c in [Compression::Bzip2, Compression::Xz, Compression::Gzip] {
            let mut two = compressed(c, b"a\n");
            two.extend(compressed(c, b"b\n"));
            assert_eq!(read_back("x", two).unwrap(), b"a\nb\n", "{c:?}");
        }
    }

    #[test]
    fn unknown_compressions_are_refused_by_magic_and_by_name() {
        let err = read_back("in.txt", b"PK\x03\x04rest".to_vec()).unwrap_err();
        assert!(err.to_string().contains("a zip archive"), "{err}");
        let err = read_back("in.txt", vec![0x04, 0x22, 0x4d, 0x18, 1, 2]).unwrap_err();
        assert!(err.to_string().contains("lz4"), "{err}");
        let err = read_back("in.csv.br", b"abc".to_vec()).unwrap_err();
        assert!(err.to_string().contains("brotli"), "{err}");
    }

    #[test]
    fn a_file_named_gz_that_is_not_gzip_is_refused() {
        let err = read_back("in.csv.gz", b"id,name\n".to_vec()).unwrap_err();
        assert!(
            err.to_string().contains("is named .gz but is not gzip"),
            "{err}"
        );
        assert_eq!(read_back("empty.gz", Vec::new()).unwrap(), b"");
    }

    #[test]
    fn plain_text_starting_like_bzh_is_not_bzip2() {
        assert_eq!(Compression::from_magic(b"BZhello"), None);
        assert_eq!(
            read_back("a.txt", b"BZhello\n".to_vec()).unwrap(),
            b"BZhello\n"
        );
    }

    #[test]
    fn extension_names_the_output_codec() {
        assert_eq!(
            Compression::from_path(Path::new("o.csv.BZ2")),
            Compression::Bzip2
        );
        assert_eq!(Compression::from_path(Path::new("o.xz")), Compression::Xz);
        assert_eq!(Compression::Bzip2.strip("a.csv.bz2"), "a.csv");
    }
}
