//! Recovery on open: find the segments, check the key, resolve compaction
//! groups, index sealed segments from their footers, and scan, truncate and
//! seal an unsealed last segment (a torn tail). Recovery is idempotent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::accounting::{account, FileFacts, Issue, ManifestView, Removal};
use super::footer::{
    decode_footer, encode_footer, footer_offset_from_tail, FooterEntry, FOOTER_TAIL_LEN,
};
use super::frame::FLAG_AES_GCM;
use super::frame::{decode_frame, FrameKind, FRAME_MAGIC};
use super::header::{decode_segment_header, SegmentHeader, SEGMENT_HEADER_LEN};
use super::reader::Segment;
use super::{parse_segment_file_name, segment_file_name, MAX_SEGMENT_ID};
use crate::fs::{FileHandle, FileLayer};
use crate::index::{FrameLoc, Index};
use crate::manifest::{
    decode_manifest, manifest_mac_matches, read_manifest_bytes, write_manifest, Manifest,
    Watermark, MANIFEST_FILE_NAME, MANIFEST_TEMP_NAME,
};
use crate::{FormatError, MasterKey, RecoveryReport, StoreError};

/// What a frame-by-frame scan of one segment found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// Frames up to and including the last *batch end*.
    pub entries: Vec<FooterEntry>,
    /// End of the last complete batch; bytes after it are a tail to drop.
    pub valid_end: u64,
    /// The first frame that did not decode, and why.
    pub problem: Option<(u64, String)>,
    /// A valid frame starts somewhere after `problem`: corruption, not a torn tail.
    pub good_frame_after_problem: Option<u64>,
}

/// Scans `bytes` (a whole segment, header included) frame by frame, without
/// the key. Stops at the first frame that does not decode or is out of
/// sequence. Never panics on hostile bytes.
pub fn scan_segment(bytes: &[u8]) -> SegmentScan {
    let header_len = SEGMENT_HEADER_LEN as u64;
    let mut scan = SegmentScan {
        entries: Vec::new(),
        valid_end: header_len.min(bytes.len() as u64),
        problem: None,
        good_frame_after_problem: None,
    };
    let mut kept = 0;
    let mut offset = header_len;
    let mut seq = 0u64;
    while offset < bytes.len() as u64 {
        let here = &bytes[offset as usize..];
        match decode_frame(here) {
            Ok(h) if h.kind == FrameKind::SealFooter => {
                scan.problem = Some((
                    offset,
                    "seal footer does not decode as the segment end".into(),
                ));
                break;
            }
            Ok(h) if h.seq != seq => {
                scan.problem = Some((
                    offset,
                    format!("frame sequence {} where {seq} was expected", h.seq),
                ));
                break;
            }
            Ok(h) => {
                scan.entries.push(FooterEntry { offset, header: h });
                offset += h.frame_len();
                seq += 1;
                if h.is_batch_end() {
                    kept = scan.entries.len();
                    scan.valid_end = offset;
                }
            }
            Err(e) => {
                scan.problem = Some((offset, e.0));
                break;
            }
        }
    }
    scan.entries.truncate(kept);
    if let Some((at, _)) = &scan.problem {
        scan.good_frame_after_problem = find_frame_after(bytes, *at + 1);
    }
    scan
}

/// The offset of the first whole, valid frame starting at or after `from`.
fn find_frame_after(bytes: &[u8], from: u64) -> Option<u64> {
    let mut at = usize::try_from(from).ok()?;
    while at + FRAME_MAGIC.len() <= bytes.len() {
        let rel = bytes[at..]
            .windows(FRAME_MAGIC.len())
            .position(|w| w == FRAME_MAGIC)?;
        at += rel;
        if decode_frame(&bytes[at..]).is_ok() {
            return Some(at as u64);
        }
        at += 1;
    }
    None
}

/// The frames of a sealed segment from its footer, or why not.
pub fn read_sealed_entries(bytes: &[u8]) -> Result<Vec<FooterEntry>, FormatError> {
    let min = SEGMENT_HEADER_LEN + FOOTER_TAIL_LEN;
    if bytes.len() < min {
        return Err(FormatError::new("segment too short to hold a seal footer"));
    }
    let offset = footer_offset_from_tail(&bytes[bytes.len() - FOOTER_TAIL_LEN..])?;
    if offset < SEGMENT_HEADER_LEN as u64 || offset >= bytes.len() as u64 {
        return Err(FormatError::new("seal footer offset out of range"));
    }
    decode_footer(&bytes[offset as usize..], offset)
}

pub(crate) struct Recovered<F: FileLayer> {
    pub segments: BTreeMap<u64, Arc<Segment<F>>>,
    pub index: Index,
    pub next_segment_id: u64,
    /// The manifest now on disk (written by recovery when it changed).
    pub manifest: Manifest,
    pub report: RecoveryReport,
}

struct Candidate<F: FileLayer> {
    facts: FileFacts,
    file: F::File,
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::io(context, e)
}

fn corrupt(id: u64, path: &Path, offset: u64, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        segment_id: id,
        path: path.to_path_buf(),
        offset,
        what: what.into(),
    }
}

impl From<Issue> for StoreError {
    fn from(i: Issue) -> StoreError {
        corrupt(i.segment_id, &i.path, i.offset, i.what)
    }
}

/// Recovery's own leftovers: compaction output and a manifest not yet
/// renamed into place. Any other `*.tmp` is not the store's and stays.
pub(crate) fn is_own_temp(name: &str) -> bool {
    name == MANIFEST_TEMP_NAME
        || name
            .strip_suffix(".tmp")
            .and_then(parse_segment_file_name)
            .is_some()
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
    let manifest = decode_manifest(&bytes).map_err(|e| corrupt(0, &path, 0, e.0))?;
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
                    0,
                    &path,
                    0,
                    "MANIFEST fails authentication under the key: it was altered",
                ));
            }
            true
        }
    };
    Ok(Some((manifest, authenticated)))
}

/// Runs recovery on `dir` (already locked). Reads everything and checks the
/// key before it changes anything on disk.
///
/// `read_only` (for a disk too full to take even a seal footer): nothing is
/// written or deleted; an unsealed last segment stays unsealed and is read
/// up to its last whole batch, and the caller must refuse writes.
pub(crate) fn recover<F: FileLayer>(
    fs: &F,
    dir: &Path,
    key: Option<&MasterKey>,
    read_only: bool,
) -> Result<Recovered<F>, StoreError> {
    let names = fs
        .list(dir)
        .map_err(io_err(format!("listing {}", dir.display())))?;
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    ids.sort_unstable();
    let temps: Vec<&String> = names.iter().filter(|n| is_own_temp(n)).collect();
    let max_temp_id = temps
        .iter()
        .filter_map(|n| parse_segment_file_name(n.trim_end_matches(".tmp")))
        .max()
        .unwrap_or(0);
    let manifest = load_manifest(fs, dir, key)?;
    let candidates = ids
        .iter()
        .map(|&id| read_candidate(fs, dir, id))
        .collect::<Result<Vec<_>, _>>()?;
    let newest = ids.last().copied().unwrap_or(0).max(max_temp_id).max(
        manifest
            .as_ref()
            .map_or(0, |(m, _)| m.segments.last().copied().unwrap_or(0)),
    );
    // Ids grow by one per segment: one at the end of the range is a lie.
    let next_segment_id = newest + 1;
    if next_segment_id > MAX_SEGMENT_ID {
        return Err(corrupt(
            newest,
            &dir.join(segment_file_name(newest)),
            16,
            format!("segment id {newest} leaves no id for the next segment; the file was altered"),
        ));
    }
    let facts: Vec<&FileFacts> = candidates.iter().map(|c| &c.facts).collect();
    let view = manifest.as_ref().map(|(m, authenticated)| ManifestView {
        manifest: m,
        authenticated: *authenticated,
    });
    // A wrong or missing key is named before any corruption it would cause.
    for f in &facts {
        if let Ok(header) = &f.header {
            check_key(dir, header, key)?;
        }
    }
    let accounting = account(dir, &facts, view, key);
    if let Some(issue) = accounting.issues.into_iter().next() {
        return Err(issue.into());
    }
    let removals = accounting.removals;

    // From here on recovery may change the directory.
    let mut report = RecoveryReport::default();
    let kept = if read_only {
        candidates
            .into_iter()
            .filter(|c| !removals.contains_key(&c.facts.id))
            .collect()
    } else {
        apply_removals(fs, dir, candidates, &removals, &temps, &mut report)?
    };
    let watermark = manifest.as_ref().map(|(m, _)| m.watermark);
    let mut segments = BTreeMap::new();
    let mut index = Index::default();
    let last_id = kept.last().map(|c| c.facts.id);
    let mut empty_last = None;
    for c in kept {
        let is_last = Some(c.facts.id) == last_id;
        match load_segment(fs, c, key, is_last, watermark, read_only, &mut report)? {
            Loaded::Segment(segment, entries) => {
                for e in &entries {
                    index.add(FrameLoc {
                        segment_id: segment.id,
                        offset: e.offset,
                        header: e.header,
                    });
                }
                report.frames += entries.len() as u64;
                segments.insert(segment.id, segment);
            }
            Loaded::Empty(path) => empty_last = Some(path),
        }
    }
    report.segments = segments.len();
    if read_only {
        return Ok(Recovered {
            segments,
            index,
            next_segment_id,
            manifest: manifest.map(|(m, _)| m).unwrap_or_default(),
            report,
        });
    }
    let manifest = settle_manifest(fs, dir, manifest.map(|(m, _)| m), &segments, key)?;
    if let Some(path) = empty_last {
        let ctx = format!("removing {}", path.display());
        fs.remove(&path).map_err(io_err(ctx.clone()))?;
        fs.sync_dir(dir).map_err(io_err(ctx))?;
    }
    Ok(Recovered {
        segments,
        index,
        next_segment_id,
        manifest,
        report,
    })
}

/// The manifest after recovery: the segments that stay, the plaintext ones
/// a keyed store accepts. Written only when it changed, so a second open
/// writes nothing.
fn settle_manifest<F: FileLayer>(
    fs: &F,
    dir: &Path,
    old: Option<Manifest>,
    segments: &BTreeMap<u64, Arc<Segment<F>>>,
    key: Option<&MasterKey>,
) -> Result<Manifest, StoreError> {
    let old_or_default = old.clone().unwrap_or_default();
    let listed: Vec<u64> = segments.keys().copied().collect();
    let plaintext = if key.is_some() {
        segments
            .values()
            .filter(|s| !s.header.encrypted)
            .map(|s| s.id)
            .collect()
    } else {
        Vec::new()
    };
    let watermark = if segments.contains_key(&old_or_default.watermark.segment_id) {
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

/// Deletes `*.tmp` and the planned segments (then fsyncs the directory);
/// returns the segments that stay.
fn apply_removals<F: FileLayer>(
    fs: &F,
    dir: &Path,
    candidates: Vec<Candidate<F>>,
    removals: &BTreeMap<u64, Removal>,
    temps: &[&String],
    report: &mut RecoveryReport,
) -> Result<Vec<Candidate<F>>, StoreError> {
    let remove = |path: &Path| {
        fs.remove(path)
            .map_err(io_err(format!("removing {}", path.display())))
    };
    let mut dir_changed = false;
    for name in temps {
        let path = dir.join(name);
        remove(&path)?;
        if name.as_str() != MANIFEST_TEMP_NAME {
            report.removed_incomplete_compaction.push(path);
        }
        dir_changed = true;
    }
    let mut kept = Vec::with_capacity(candidates.len());
    for c in candidates {
        match removals.get(&c.facts.id) {
            None => kept.push(c),
            Some(why) => {
                remove(&c.facts.path)?;
                dir_changed = true;
                match why {
                    Removal::Unfinished if c.facts.len > 0 => {
                        report.truncated.push((c.facts.id, 0, c.facts.len));
                    }
                    Removal::IncompleteGroup => {
                        report.removed_incomplete_compaction.push(c.facts.path)
                    }
                    _ => {}
                }
            }
        }
    }
    if dir_changed {
        fs.sync_dir(dir)
            .map_err(io_err(format!("syncing {}", dir.display())))?;
    }
    Ok(kept)
}

fn read_candidate<F: FileLayer>(fs: &F, dir: &Path, id: u64) -> Result<Candidate<F>, StoreError> {
    let path = dir.join(segment_file_name(id));
    let file = fs
        .open(&path)
        .map_err(io_err(format!("opening {}", path.display())))?;
    let len = file
        .len()
        .map_err(io_err(format!("reading {}", path.display())))?;
    let header = if len >= SEGMENT_HEADER_LEN as u64 {
        let mut buf = [0u8; SEGMENT_HEADER_LEN];
        file.read_exact_at(&mut buf, 0)
            .map_err(io_err(format!("reading {}", path.display())))?;
        decode_segment_header(&buf)
    } else {
        Err(FormatError::new("segment shorter than its header"))
    };
    Ok(Candidate {
        facts: FileFacts {
            id,
            path,
            len,
            header,
        },
        file,
    })
}

fn check_key(
    dir: &Path,
    header: &SegmentHeader,
    key: Option<&MasterKey>,
) -> Result<(), StoreError> {
    if !header.encrypted {
        return Ok(());
    }
    match key {
        None => Err(StoreError::KeyRequired {
            dir: dir.to_path_buf(),
        }),
        Some(k) if k.key_id() != header.key_id => Err(StoreError::WrongKey {
            dir: dir.to_path_buf(),
        }),
        Some(_) => Ok(()),
    }
}

/// What `load_segment` made of a segment.
enum Loaded<F: FileLayer> {
    Segment(Arc<Segment<F>>, Vec<FooterEntry>),
    /// An unsealed last segment without a whole batch: to be removed.
    Empty(PathBuf),
}

/// Indexes one segment. A sealed segment is read from its footer; an
/// unsealed one is scanned, its torn tail truncated, and then it is sealed
/// (never appended to again: no nonce is reused). An empty unsealed last
/// segment is removed instead. A tail below the watermark was acknowledged:
/// losing it is corruption, not a torn tail.
fn load_segment<F: FileLayer>(
    fs: &F,
    c: Candidate<F>,
    key: Option<&MasterKey>,
    is_last: bool,
    watermark: Option<Watermark>,
    read_only: bool,
    report: &mut RecoveryReport,
) -> Result<Loaded<F>, StoreError> {
    let Candidate { facts, file } = c;
    let header = facts.header.expect("checked by the caller");
    let (id, path, len) = (facts.id, facts.path, facts.len);
    let ctx = format!("reading {}", path.display());
    let map = fs.map(&file).map_err(io_err(ctx.clone()))?;
    let cipher = key
        .filter(|_| header.encrypted)
        .map(|k| k.segment_cipher(&header.salt, id));
    if let Ok(entries) = read_sealed_entries(&map) {
        check_all_encrypted(&header, &entries, &path)?;
        let segment = Segment::new(fs.clone(), path, header, cipher, file);
        segment.set_map(map);
        return Ok(Loaded::Segment(Arc::new(segment), entries));
    }
    let scan = scan_segment(&map);
    drop(map);
    if let Some((offset, what)) = &scan.problem {
        if let Some(good) = scan.good_frame_after_problem {
            return Err(corrupt(
                id,
                &path,
                *offset,
                format!("{what}, followed by a valid frame at offset {good}"),
            ));
        }
        if !is_last {
            return Err(corrupt(
                id,
                &path,
                *offset,
                format!("{what} in a segment that is not the last"),
            ));
        }
    }
    check_all_encrypted(&header, &scan.entries, &path)?;
    if let Some(w) = watermark.filter(|w| w.segment_id == id && w.offset > scan.valid_end) {
        return Err(corrupt(
            id,
            &path,
            scan.valid_end,
            format!(
                "acknowledged data lost: batches up to offset {} were acknowledged, whole batches end at {}; restore the segment from a backup",
                w.offset, scan.valid_end
            ),
        ));
    }
    let dropped = len - scan.valid_end;
    if dropped > 0 {
        if !is_last {
            return Err(corrupt(
                id,
                &path,
                scan.valid_end,
                "incomplete batch in a segment that is not the last",
            ));
        }
        report.truncated.push((id, scan.valid_end, dropped));
    }
    if read_only {
        // Read by pread up to the last whole batch; nothing is changed.
        if scan.entries.is_empty() {
            return Ok(Loaded::Empty(path));
        }
        let segment = Segment::new(fs.clone(), path, header, cipher, file);
        return Ok(Loaded::Segment(Arc::new(segment), scan.entries));
    }
    let write_ctx = format!("recovering {}", path.display());
    if scan.entries.is_empty() && is_last {
        // Removed by the caller once the manifest no longer lists it; cut
        // to its header first, so that if the crash comes in between, the
        // unlisted file holds nothing and is removed again.
        if len > SEGMENT_HEADER_LEN as u64 {
            file.set_len(SEGMENT_HEADER_LEN as u64)
                .and_then(|()| file.sync_data())
                .map_err(io_err(write_ctx.clone()))?;
        }
        return Ok(Loaded::Empty(path));
    }
    if dropped > 0 {
        // Make the truncation durable before the footer goes where the torn
        // tail was, so no old tail bytes can reappear behind the footer.
        file.set_len(scan.valid_end)
            .and_then(|()| file.sync_data())
            .map_err(io_err(write_ctx.clone()))?;
    }
    let footer = encode_footer(&scan.entries, scan.entries.len() as u64, scan.valid_end);
    file.write_all_at(&footer, scan.valid_end)
        .and_then(|()| file.sync_data())
        .map_err(io_err(write_ctx.clone()))?;
    let segment = Segment::new(fs.clone(), path, header, cipher, file);
    segment.mark_sealed().map_err(io_err(write_ctx))?;
    Ok(Loaded::Segment(Arc::new(segment), scan.entries))
}

/// In an encrypted segment every data frame carries the AES-GCM flag: a
/// plaintext frame there was put in by someone without the key (G11).
fn check_all_encrypted(
    header: &SegmentHeader,
    entries: &[FooterEntry],
    path: &Path,
) -> Result<(), StoreError> {
    if !header.encrypted {
        return Ok(());
    }
    match entries.iter().find(|e| e.header.flags & FLAG_AES_GCM == 0) {
        Some(e) => Err(corrupt(
            header.segment_id,
            path,
            e.offset,
            "plaintext frame in an encrypted segment: tampering",
        )),
        None => Ok(()),
    }
}
