//! Zip input: one member (the only one, or `--member NAME`), or every file
//! member in order with `--concat` (lines, JSON Lines and fixed-width).
//!
//! The zip crate reads the central directory; each chosen member is then
//! read straight from the file (seek to its data, inflate with flate2), so
//! the reader owns its file and streams in bounded memory. Nothing is ever
//! written to disk, so a member name cannot place a file anywhere; a name
//! that would escape a directory (`../x`, `/etc/x`) is still refused, as an
//! archive nobody should trust. A member that declares more than
//! [`MAX_RATIO`] times its compressed size (past [`RATIO_FLOOR_BYTES`]) is
//! refused before it is read (a zip bomb, or a size field that lies); one
//! that inflates past its declared size, or whose CRC-32 does not match,
//! fails the read. A member may itself be gzip, zstd, bzip2 or xz.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use zip::CompressionMethod;

/// Largest declared size / compressed size a member may have.
pub const MAX_RATIO: u64 = 200;
/// Members smaller than this may have any ratio.
pub const RATIO_FLOOR_BYTES: u64 = 16 << 20;

/// Which members of a zip archive to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZipChoice {
    pub member: Option<String>,
    pub concat: bool,
}

#[derive(Clone, Debug)]
struct Member {
    name: String,
    data_start: u64,
    compressed_bytes: u64,
    size_bytes: u64,
    deflated: bool,
    crc32: u32,
}

/// Whether `path` is a regular file starting with a zip signature.
pub fn is_zip(path: &Path) -> bool {
    let mut head = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && (head == *b"PK\x03\x04" || head == *b"PK\x05\x06")
}

/// The chosen members of the archive at `path`, one after another, and
/// their declared size in all.
pub fn open_members(
    path: &Path,
    choice: &ZipChoice,
) -> anyhow::Result<(Box<dyn Read + Send>, u64)> {
    let shown = path.display();
    let members = list(path)?;
    let names = || {
        members
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<Member> = match (&choice.member, choice.concat) {
        (Some(name), _) => match members.iter().find(|m| &m.name == name) {
            Some(m) => vec![m.clone()],
            None => anyhow::bail!("{shown} has no member {name:?}; it has {}", names()),
        },
        (None, true) => members.clone(),
        (None, false) if members.len() == 1 => members.clone(),
        (None, false) if members.is_empty() => {
            anyhow::bail!("the zip archive {shown} holds no file")
        }
        (None, false) => anyhow::bail!(
            "the zip archive {shown} holds {} files ({}); pass --member NAME for one, \
             or --concat to read them all into one job (`run` and `submit` make a job \
             per member)",
            members.len(),
            names()
        ),
    };
    let total_bytes = chosen.iter().map(|m| m.size_bytes).sum();
    let mut reader: Box<dyn Read + Send> = Box::new(io::empty());
    for member in chosen {
        let name = member.name.clone();
        let one = member_reader(path, member)?;
        let one = super::compression::decompress(Path::new(&name), one)?.0;
        reader = Box::new(reader.chain(one));
    }
    Ok((reader, total_bytes))
}

/// The names of the archive's file members, in order, each checked as
/// `open_members` checks it (an escaping name, a bomb, a method booster
/// cannot read are refused).
pub fn file_members(path: &Path) -> anyhow::Result<Vec<String>> {
    Ok(list(path)?.into_iter().map(|m| m.name).collect())
}

/// Every file member, checked.
fn list(path: &Path) -> anyhow::Result<Vec<Member>> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| anyhow::anyhow!("cannot open {shown}: {e}"))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| anyhow::anyhow!("{shown} is not a readable zip archive: {e}"))?;
    let mut members = Vec::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| anyhow::anyhow!("{shown}: member {i} cannot be read: {e}"))?;
        let name = entry.name().to_string();
        if entry.enclosed_name().is_none() {
            anyhow::bail!(
                "{shown} has a member named {name:?}, which would escape its directory; \
                 the archive is refused (nothing is extracted)"
            );
        }
        if entry.is_dir() {
            continue;
        }
        if entry.encrypted() {
            anyhow::bail!("{shown}: member {name:?} is encrypted; decrypt the archive first");
        }
        let deflated = match entry.compression() {
            CompressionMethod::Stored => false,
            CompressionMethod::Deflated => true,
            other => anyhow::bail!(
                "{shown}: member {name:?} is compressed with {other}, which booster cannot \
                 read (stored and deflate are); re-zip it or extract it first"
            ),
        };
        let (compressed_bytes, size_bytes) = (entry.compressed_size(), entry.size());
        if size_bytes > RATIO_FLOOR_BYTES && size_bytes / compressed_bytes.max(1) > MAX_RATIO {
            anyhow::bail!(
                "{shown}: member {name:?} declares {size_bytes} bytes from {compressed_bytes} \
                 compressed, over {MAX_RATIO} to 1 (a zip bomb, or a size that lies); the \
                 archive is refused — extract it yourself if you trust it"
            );
        }
        members.push(Member {
            name,
            data_start: entry.data_start(),
            compressed_bytes,
            size_bytes,
            deflated,
            crc32: entry.crc32(),
        });
    }
    Ok(members)
}

fn member_reader(path: &Path, member: Member) -> anyhow::Result<Box<dyn Read + Send>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(member.data_start))?;
    let raw = BufReader::new(file).take(member.compressed_bytes);
    let data: Box<dyn Read + Send> = if member.deflated {
        Box::new(flate2::read::DeflateDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    Ok(Box::new(CheckedMember {
        data,
        member,
        read_bytes: 0,
        hasher: crc32fast::Hasher::new(),
        checked: false,
    }))
}

/// A member's bytes, held to its declared size and CRC-32.
struct CheckedMember {
    data: Box<dyn Read + Send>,
    member: Member,
    read_bytes: u64,
    hasher: crc32fast::Hasher,
    /// The end was reached and checked.
    checked: bool,
}

impl Read for CheckedMember {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.read(buf)?;
        self.read_bytes += n as u64;
        let name = &self.member.name;
        if self.read_bytes > self.member.size_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "zip member {name:?} inflates past its declared {} bytes; the archive is \
                     damaged or hostile",
                    self.member.size_bytes
                ),
            ));
        }
        self.hasher.update(&buf[..n]);
        if n == 0 && !buf.is_empty() && !self.checked {
            self.checked = true;
            let crc = std::mem::take(&mut self.hasher).finalize();
            if self.read_bytes != self.member.size_bytes || crc != self.member.crc32 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("zip member {name:?} is damaged (its size or CRC-32 does not match)"),
                ));
            }
        }
        Ok(n)
    }
}
