//! The manifest: the list of segment files that must exist, the plaintext
//! segments a keyed store accepts, and the highest acknowledged position
//! (the watermark). Written whole and atomically (`MANIFEST.tmp`, fsync,
//! rename, directory fsync); authenticated with HMAC-SHA256 under the master
//! key when there is one. Byte layout and protocol in ARCHITECTURE.md.

use std::io;
use std::path::Path;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::fs::{FileHandle, FileLayer};
use crate::segment::reader::Segment;
use crate::segment::MAX_SEGMENT_ID;
use crate::{FormatError, MasterKey, StoreError};

pub const MANIFEST_FILE_NAME: &str = "MANIFEST";
pub const MANIFEST_TEMP_NAME: &str = "MANIFEST.tmp";
pub const MANIFEST_MAGIC: [u8; 8] = *b"BSTRMANI";
pub const MANIFEST_VERSION: u16 = 1;
/// Fixed part before the segment ids.
pub const MANIFEST_HEAD_LEN: usize = 64;
/// HMAC-SHA256 (zeros when unauthenticated) ++ CRC32.
pub const MANIFEST_TAIL_LEN: usize = 32 + 4;
/// A manifest longer than this is not read (about 8M segment ids).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// The highest acknowledged position: every batch that ends at or before
/// `offset` in segment `segment_id` was acknowledged. (0, 0) is none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watermark {
    pub segment_id: u64,
    pub offset: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Bumped by every write; a larger one is newer.
    pub generation: u64,
    /// Key id of the key the manifest is authenticated under; 0 = none.
    pub key_id: u64,
    /// An unlisted segment below this was replaced by a compaction whose
    /// unlink phase did not finish.
    pub compacted_below: u64,
    pub watermark: Watermark,
    /// Every segment file that must exist, ascending.
    pub segments: Vec<u64>,
    /// Listed segments written without encryption before the key was first
    /// used: the only plaintext segments a keyed store accepts. Ascending.
    pub plaintext: Vec<u64>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Manifest {
    /// The bytes on disk; authenticated when `key` is given (and then
    /// `key_id` is the key's).
    pub fn encode(&self, key: Option<&MasterKey>) -> Vec<u8> {
        let ids = self.segments.len() + self.plaintext.len();
        let mut b = Vec::with_capacity(MANIFEST_HEAD_LEN + 8 * ids + MANIFEST_TAIL_LEN);
        b.extend_from_slice(&MANIFEST_MAGIC);
        b.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        b.extend_from_slice(&[0u8; 6]);
        b.extend_from_slice(&self.generation.to_le_bytes());
        b.extend_from_slice(&key.map_or(0, MasterKey::key_id).to_le_bytes());
        b.extend_from_slice(&self.compacted_below.to_le_bytes());
        b.extend_from_slice(&self.watermark.segment_id.to_le_bytes());
        b.extend_from_slice(&self.watermark.offset.to_le_bytes());
        b.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        b.extend_from_slice(&(self.plaintext.len() as u32).to_le_bytes());
        for id in self.segments.iter().chain(&self.plaintext) {
            b.extend_from_slice(&id.to_le_bytes());
        }
        let mac = key.map_or([0u8; 32], |k| k.manifest_mac(&b));
        b.extend_from_slice(&mac);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn lists(&self, id: u64) -> bool {
        self.segments.binary_search(&id).is_ok()
    }

    pub fn allows_plaintext(&self, id: u64) -> bool {
        self.plaintext.binary_search(&id).is_ok()
    }

    /// Equal but for the generation (so recovery rewrites only on change).
    pub fn same_content(&self, other: &Manifest) -> bool {
        Manifest {
            generation: other.generation,
            ..self.clone()
        } == *other
    }
}

/// Decodes a manifest and checks its CRC and layout, not its MAC (see
/// `manifest_mac_matches`). Never panics and never allocates from an
/// unchecked count.
pub fn decode_manifest(bytes: &[u8]) -> Result<Manifest, FormatError> {
    if bytes.len() < MANIFEST_HEAD_LEN + MANIFEST_TAIL_LEN {
        return Err(FormatError::new(format!(
            "manifest is {} bytes, shorter than its fixed part",
            bytes.len()
        )));
    }
    if bytes[..8] != MANIFEST_MAGIC {
        return Err(FormatError::new("not a booster manifest (bad magic)"));
    }
    let body_end = bytes.len() - 4;
    if crc32fast::hash(&bytes[..body_end]) != u32_at(bytes, body_end) {
        return Err(FormatError::new("manifest checksum mismatch"));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != MANIFEST_VERSION {
        return Err(FormatError::new(format!(
            "manifest version {version} is not supported (this build reads {MANIFEST_VERSION})"
        )));
    }
    if bytes[10..16] != [0u8; 6] {
        return Err(FormatError::new("unknown manifest flags"));
    }
    let n = u32_at(bytes, 56) as usize;
    let m = u32_at(bytes, 60) as usize;
    let expected = n
        .checked_add(m)
        .and_then(|ids| ids.checked_mul(8))
        .and_then(|len| len.checked_add(MANIFEST_HEAD_LEN + MANIFEST_TAIL_LEN));
    if expected != Some(bytes.len()) {
        return Err(FormatError::new(
            "manifest length does not match its segment counts",
        ));
    }
    let ids = |from: usize, count: usize| -> Vec<u64> {
        (0..count).map(|i| u64_at(bytes, from + 8 * i)).collect()
    };
    let segments = ids(MANIFEST_HEAD_LEN, n);
    let plaintext = ids(MANIFEST_HEAD_LEN + 8 * n, m);
    if let Some(id) = segments
        .iter()
        .find(|id| **id == 0 || **id > MAX_SEGMENT_ID)
    {
        return Err(FormatError::new(format!(
            "manifest lists segment id {id}, outside 1..={MAX_SEGMENT_ID}"
        )));
    }
    let ascending = |v: &[u64]| v.windows(2).all(|w| w[0] < w[1]);
    if !ascending(&segments) || !ascending(&plaintext) {
        return Err(FormatError::new("manifest segment ids are not ascending"));
    }
    if let Some(id) = plaintext
        .iter()
        .find(|id| segments.binary_search(id).is_err())
    {
        return Err(FormatError::new(format!(
            "manifest allows plaintext segment {id} that it does not list"
        )));
    }
    Ok(Manifest {
        generation: u64_at(bytes, 16),
        key_id: u64_at(bytes, 24),
        compacted_below: u64_at(bytes, 32),
        watermark: Watermark {
            segment_id: u64_at(bytes, 40),
            offset: u64_at(bytes, 48),
        },
        segments,
        plaintext,
    })
}

/// True when the manifest's MAC is the one `key` computes.
pub fn manifest_mac_matches(bytes: &[u8], key: &MasterKey) -> bool {
    if bytes.len() < MANIFEST_HEAD_LEN + MANIFEST_TAIL_LEN {
        return false;
    }
    let mac_at = bytes.len() - MANIFEST_TAIL_LEN;
    key.manifest_mac_verify(&bytes[..mac_at], &bytes[mac_at..mac_at + 32])
}

/// The manifest's bytes, or None when the directory has none.
pub(crate) fn read_manifest_bytes<F: FileLayer>(fs: &F, dir: &Path) -> io::Result<Option<Vec<u8>>> {
    let path = dir.join(MANIFEST_FILE_NAME);
    let file = match fs.open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.len()?;
    if len > MAX_MANIFEST_BYTES {
        return Err(io::Error::other(format!(
            "{} is {len} bytes, above the {MAX_MANIFEST_BYTES}-byte cap",
            path.display()
        )));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(Some(bytes))
}

/// Replaces the manifest atomically: write `MANIFEST.tmp`, fsync it, rename
/// it over `MANIFEST`, fsync the directory. A crash at any step leaves the
/// old or the new manifest whole.
pub(crate) fn write_manifest<F: FileLayer>(
    fs: &F,
    dir: &Path,
    manifest: &Manifest,
    key: Option<&MasterKey>,
) -> io::Result<()> {
    let temp = dir.join(MANIFEST_TEMP_NAME);
    match fs.remove(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let file = fs.create_new(&temp)?;
    file.write_all_at(&manifest.encode(key), 0)?;
    file.sync_data()?;
    drop(file);
    fs.rename(&temp, &dir.join(MANIFEST_FILE_NAME))?;
    fs.sync_dir(dir)
}

// What recovery does with the manifest.

fn io_err(context: String) -> impl FnOnce(io::Error) -> StoreError {
    move |e| StoreError::io(context, e)
}

fn corrupt(path: &Path, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        segment_id: 0,
        path: path.to_path_buf(),
        offset: 0,
        what: what.into(),
    }
}

/// The manifest of `dir`, its MAC checked under `key`; None when there is none.
pub(crate) fn load_manifest<F: FileLayer>(
    fs: &F,
    dir: &Path,
    key: Option<&MasterKey>,
) -> Result<Option<(Manifest, bool)>, StoreError> {
    let path = dir.join(MANIFEST_FILE_NAME);
    let Some(bytes) =
        read_manifest_bytes(fs, dir).map_err(io_err(format!("reading {}", path.display())))?
    else {
        return Ok(None);
    };
    let manifest = decode_manifest(&bytes).map_err(|e| corrupt(&path, e.0))?;
    let authenticated = match (manifest.key_id, key) {
        (0, _) => false,
        (_, None) => {
            return Err(StoreError::KeyRequired {
                dir: dir.to_path_buf(),
            })
        }
        (id, Some(k)) if id != k.key_id() => {
            return Err(StoreError::WrongKey {
                dir: dir.to_path_buf(),
            })
        }
        (_, Some(k)) => {
            if !manifest_mac_matches(&bytes, k) {
                return Err(corrupt(
                    &path,
                    "MANIFEST fails authentication under the key: it was altered",
                ));
            }
            true
        }
    };
    Ok(Some((manifest, authenticated)))
}

/// The manifest after recovery: the segments that stay, the plaintext ones
/// a keyed store accepts. Written only when it changed, so a second open
/// writes nothing.
pub(crate) fn settle_manifest<F: FileLayer>(
    fs: &F,
    dir: &Path,
    old: Option<Manifest>,
    segments: &BTreeMap<u64, Arc<Segment<F>>>,
    unreadable: &[u64],
    key: Option<&MasterKey>,
) -> Result<Manifest, StoreError> {
    let old_or_default = old.clone().unwrap_or_default();
    // A segment kept without a readable header stays listed, as it was.
    let mut listed: Vec<u64> = segments.keys().chain(unreadable).copied().collect();
    listed.sort_unstable();
    let plaintext = if key.is_some() {
        let mut ids: Vec<u64> = segments
            .values()
            .filter(|s| !s.header.encrypted)
            .map(|s| s.id)
            .chain(
                unreadable
                    .iter()
                    .copied()
                    .filter(|id| old_or_default.allows_plaintext(*id)),
            )
            .collect();
        ids.sort_unstable();
        ids
    } else {
        Vec::new()
    };
    let watermark_segment = old_or_default.watermark.segment_id;
    let watermark =
        if segments.contains_key(&watermark_segment) || unreadable.contains(&watermark_segment) {
            old_or_default.watermark
        } else {
            Watermark::default()
        };
    let new = Manifest {
        generation: old_or_default.generation.wrapping_add(1),
        key_id: key.map_or(0, MasterKey::key_id),
        compacted_below: old_or_default.compacted_below,
        watermark,
        segments: listed,
        plaintext,
    };
    if let Some(old) = old {
        if old.same_content(&new) {
            return Ok(old);
        }
    }
    write_manifest(fs, dir, &new, key).map_err(io_err(format!(
        "writing {}",
        dir.join(MANIFEST_FILE_NAME).display()
    )))?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            generation: 7,
            key_id: 0,
            compacted_below: 3,
            watermark: Watermark {
                segment_id: 5,
                offset: 4096,
            },
            segments: vec![3, 4, 5],
            plaintext: vec![4],
        }
    }

    #[test]
    fn manifest_round_trips() {
        assert_eq!(decode_manifest(&sample().encode(None)).unwrap(), sample());
    }

    #[test]
    fn a_manifest_listing_an_impossible_segment_id_is_rejected() {
        for id in [0, MAX_SEGMENT_ID + 1, u64::MAX] {
            let bad = Manifest {
                segments: vec![id],
                plaintext: Vec::new(),
                ..sample()
            };
            assert!(decode_manifest(&bad.encode(None)).is_err(), "id {id}");
        }
    }

    #[test]
    fn every_flipped_bit_of_a_manifest_is_rejected() {
        let good = sample().encode(None);
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_manifest(&bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn a_manifest_rewritten_without_the_key_fails_its_mac() {
        let key = MasterKey([1; 32]);
        let signed = sample().encode(Some(&key));
        assert!(manifest_mac_matches(&signed, &key));
        assert!(!manifest_mac_matches(&signed, &MasterKey([2; 32])));
        // A forger who drops a segment and recomputes the CRC cannot redo the MAC.
        let mut forged = Manifest {
            segments: vec![3, 4],
            ..sample()
        }
        .encode(None);
        let mac_at = forged.len() - MANIFEST_TAIL_LEN;
        let at = signed.len() - MANIFEST_TAIL_LEN;
        forged[mac_at..mac_at + 32].copy_from_slice(&signed[at..at + 32]);
        let crc_at = forged.len() - 4;
        let crc = crc32fast::hash(&forged[..crc_at]);
        forged[crc_at..].copy_from_slice(&crc.to_le_bytes());
        assert!(decode_manifest(&forged).is_ok());
        assert!(!manifest_mac_matches(&forged, &key));
    }
}
