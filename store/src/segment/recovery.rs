//! Recovery on open: find the segments, check the key, resolve compaction
//! groups, index sealed segments from their footers, and scan, truncate and
//! seal an unsealed last segment (a torn tail). Recovery is idempotent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::footer::{
    decode_footer, encode_footer, footer_offset_from_tail, FooterEntry, FOOTER_TAIL_LEN,
};
use super::frame::{decode_frame, FrameKind, FRAME_MAGIC};
use super::header::{decode_segment_header, SegmentHeader, SEGMENT_HEADER_LEN};
use super::reader::Segment;
use super::{parse_segment_file_name, segment_file_name};
use crate::fs::{FileHandle, FileLayer};
use crate::index::{FrameLoc, Index};
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
    pub report: RecoveryReport,
}

struct Candidate<F: FileLayer> {
    id: u64,
    path: PathBuf,
    file: F::File,
    len: u64,
    header: Result<SegmentHeader, FormatError>,
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

/// Why recovery deletes a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Removal {
    /// The last segment, whose header never became durable.
    Unfinished,
    /// Replaced by a complete compaction group.
    Replaced,
    /// A member of a compaction group that was never fully published.
    IncompleteGroup,
}

/// Runs recovery on `dir` (already locked). Reads everything and checks the
/// key before it changes anything on disk.
pub(crate) fn recover<F: FileLayer>(
    fs: &F,
    dir: &Path,
    key: Option<&MasterKey>,
) -> Result<Recovered<F>, StoreError> {
    let names = fs
        .list(dir)
        .map_err(io_err(format!("listing {}", dir.display())))?;
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    ids.sort_unstable();
    let temps: Vec<&String> = names.iter().filter(|n| n.ends_with(".tmp")).collect();
    let max_temp_id = temps
        .iter()
        .filter_map(|n| parse_segment_file_name(n.trim_end_matches(".tmp")))
        .max()
        .unwrap_or(0);
    let next_segment_id = ids.last().copied().unwrap_or(0).max(max_temp_id) + 1;

    let candidates = ids
        .iter()
        .map(|&id| read_candidate(fs, dir, id))
        .collect::<Result<Vec<_>, _>>()?;
    let unfinished = unfinished_last(&candidates);
    // Every other header must be sound before any file is deleted on the
    // strength of the others (a rotted compaction member must not make its
    // complete group look incomplete).
    for c in candidates.iter().filter(|c| Some(c.id) != unfinished) {
        check_header(c)?;
    }
    let removals = plan_removals(&candidates, unfinished)?;
    for c in candidates.iter().filter(|c| !removals.contains_key(&c.id)) {
        if let Ok(header) = &c.header {
            check_key(dir, header, key)?;
        }
    }

    // From here on recovery may change the directory.
    let mut report = RecoveryReport::default();
    let kept = apply_removals(fs, dir, candidates, &removals, &temps, &mut report)?;
    let mut segments = BTreeMap::new();
    let mut index = Index::default();
    let last_id = kept.last().map(|c| c.id);
    for c in kept {
        let is_last = Some(c.id) == last_id;
        if let Some((segment, entries)) = load_segment(fs, dir, c, key, is_last, &mut report)? {
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
    }
    report.segments = segments.len();
    Ok(Recovered {
        segments,
        index,
        next_segment_id,
        report,
    })
}

/// The last segment, when its header never became durable: it was being
/// created when the process stopped and cannot hold acknowledged data.
fn unfinished_last<F: FileLayer>(candidates: &[Candidate<F>]) -> Option<u64> {
    candidates
        .last()
        .filter(|last| last.header.is_err() && last.len <= SEGMENT_HEADER_LEN as u64)
        .map(|last| last.id)
}

/// Which segment files recovery deletes, and why.
fn plan_removals<F: FileLayer>(
    candidates: &[Candidate<F>],
    unfinished: Option<u64>,
) -> Result<BTreeMap<u64, Removal>, StoreError> {
    let mut removals = BTreeMap::new();
    if let Some(id) = unfinished {
        removals.insert(id, Removal::Unfinished);
    }
    resolve_compaction_groups(candidates, &mut removals)?;
    Ok(removals)
}

/// A segment's header must decode and match its file name.
fn check_header<F: FileLayer>(c: &Candidate<F>) -> Result<(), StoreError> {
    let header = c
        .header
        .as_ref()
        .map_err(|e| corrupt(c.id, &c.path, 0, e.0.clone()))?;
    if header.segment_id != c.id {
        return Err(corrupt(
            c.id,
            &c.path,
            16,
            "segment id does not match the file name",
        ));
    }
    Ok(())
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
        report.removed_incomplete_compaction.push(path);
        dir_changed = true;
    }
    let mut kept = Vec::with_capacity(candidates.len());
    for c in candidates {
        match removals.get(&c.id) {
            None => kept.push(c),
            Some(why) => {
                remove(&c.path)?;
                dir_changed = true;
                match why {
                    Removal::Unfinished if c.len > 0 => report.truncated.push((c.id, 0, c.len)),
                    Removal::IncompleteGroup => report.removed_incomplete_compaction.push(c.path),
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
        id,
        path,
        file,
        len,
        header,
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

/// A complete compaction group replaces every older segment below its bound;
/// an incomplete one (a crash before all members were published) is removed,
/// but only while the segments it was to replace are still there: a group
/// missing a member after those are gone lost a file, which is corruption.
fn resolve_compaction_groups<F: FileLayer>(
    candidates: &[Candidate<F>],
    remove: &mut BTreeMap<u64, Removal>,
) -> Result<(), StoreError> {
    let mut groups: BTreeMap<u64, Vec<&SegmentHeader>> = BTreeMap::new();
    for c in candidates {
        if let Ok(h) = &c.header {
            if h.group.group_id != 0 {
                groups.entry(h.group.group_id).or_default().push(h);
            }
        }
    }
    let mut incomplete = Vec::new();
    for members in groups.values() {
        let first = members[0].group;
        let indices: BTreeSet<u32> = members.iter().map(|h| h.group.member_index).collect();
        let consistent = members.iter().all(|h| {
            h.group.member_count == first.member_count
                && h.group.replaces_below == first.replaces_below
        });
        if !(consistent && indices.len() == first.member_count as usize) {
            incomplete.push(members);
            continue;
        }
        let own: BTreeSet<u64> = members.iter().map(|h| h.segment_id).collect();
        for c in candidates {
            if c.id < first.replaces_below && !own.contains(&c.id) {
                remove.entry(c.id).or_insert(Removal::Replaced);
            }
        }
    }
    for members in incomplete {
        if members
            .iter()
            .all(|h| remove.get(&h.segment_id) == Some(&Removal::Replaced))
        {
            continue; // a later complete group replaces them anyway
        }
        let bound = members[0].group.replaces_below;
        let own: BTreeSet<u64> = members.iter().map(|h| h.segment_id).collect();
        let old_still_there = candidates
            .iter()
            .any(|c| c.id < bound && !own.contains(&c.id) && !remove.contains_key(&c.id));
        if !old_still_there {
            let h = members[0];
            return Err(StoreError::Corrupt {
                segment_id: h.segment_id,
                path: candidates
                    .iter()
                    .find(|c| c.id == h.segment_id)
                    .map_or_else(|| PathBuf::from(segment_file_name(h.segment_id)), |c| c.path.clone()),
                offset: 64,
                what: format!(
                    "compaction group {:#x} has {} of {} members and the segments it replaced are gone; restore the missing segment files",
                    h.group.group_id,
                    members.len(),
                    h.group.member_count
                ),
            });
        }
        for h in members {
            remove.insert(h.segment_id, Removal::IncompleteGroup);
        }
    }
    Ok(())
}

/// Indexes one segment. A sealed segment is read from its footer; an
/// unsealed one is scanned, its torn tail truncated, and then it is sealed
/// (never appended to again: no nonce is reused). An empty unsealed last
/// segment is removed instead.
#[allow(clippy::type_complexity)]
fn load_segment<F: FileLayer>(
    fs: &F,
    dir: &Path,
    c: Candidate<F>,
    key: Option<&MasterKey>,
    is_last: bool,
    report: &mut RecoveryReport,
) -> Result<Option<(Arc<Segment<F>>, Vec<FooterEntry>)>, StoreError> {
    let header = c.header.expect("checked by the caller");
    let ctx = format!("reading {}", c.path.display());
    let map = fs.map(&c.file).map_err(io_err(ctx.clone()))?;
    if let Ok(entries) = read_sealed_entries(&map) {
        let cipher = key
            .filter(|_| header.encrypted)
            .map(|k| k.segment_cipher(&header.salt, c.id));
        let segment = Segment::new(fs.clone(), c.path, header, cipher, c.file);
        segment.set_map(map);
        return Ok(Some((Arc::new(segment), entries)));
    }
    let scan = scan_segment(&map);
    drop(map);
    if let Some((offset, what)) = &scan.problem {
        if let Some(good) = scan.good_frame_after_problem {
            return Err(corrupt(
                c.id,
                &c.path,
                *offset,
                format!("{what}, followed by a valid frame at offset {good}"),
            ));
        }
        if !is_last {
            return Err(corrupt(
                c.id,
                &c.path,
                *offset,
                format!("{what} in a segment that is not the last"),
            ));
        }
    }
    let dropped = c.len - scan.valid_end;
    if dropped > 0 {
        if !is_last {
            return Err(corrupt(
                c.id,
                &c.path,
                scan.valid_end,
                "incomplete batch in a segment that is not the last",
            ));
        }
        report.truncated.push((c.id, scan.valid_end, dropped));
    }
    let write_ctx = format!("recovering {}", c.path.display());
    if scan.entries.is_empty() && is_last {
        fs.remove(&c.path).map_err(io_err(write_ctx.clone()))?;
        fs.sync_dir(dir).map_err(io_err(write_ctx))?;
        return Ok(None);
    }
    if dropped > 0 {
        // Make the truncation durable before the footer goes where the torn
        // tail was, so no old tail bytes can reappear behind the footer.
        c.file
            .set_len(scan.valid_end)
            .and_then(|()| c.file.sync_data())
            .map_err(io_err(write_ctx.clone()))?;
    }
    let footer = encode_footer(&scan.entries, scan.entries.len() as u64, scan.valid_end);
    c.file
        .write_all_at(&footer, scan.valid_end)
        .and_then(|()| c.file.sync_data())
        .map_err(io_err(write_ctx.clone()))?;
    let cipher = key
        .filter(|_| header.encrypted)
        .map(|k| k.segment_cipher(&header.salt, c.id));
    let segment = Segment::new(fs.clone(), c.path, header, cipher, c.file);
    segment.mark_sealed().map_err(io_err(write_ctx))?;
    Ok(Some((Arc::new(segment), scan.entries)))
}
