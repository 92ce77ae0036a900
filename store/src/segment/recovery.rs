//! Recovery on open: find the segments, check the key, resolve compaction
//! groups, index sealed segments from their footers, and scan, truncate and
//! seal an unsealed last segment (a torn tail). Recovery is idempotent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::accounting::{account, FileFacts, Issue, ManifestView, Removal};
use super::footer::{encode_sorted_footer, sorted_run, FooterEntry};
use super::frame::FLAG_AES_GCM;
use super::header::{decode_segment_header, SegmentHeader, SEGMENT_HEADER_LEN};
use super::reader::Segment;
use super::salvage::{salvage_scan, Lost, Span};
use super::scan::{read_sealed_entries, read_sealed_footer, SegmentScan};
use super::summary::read_footer_summary;
use super::writer::write_footer;
use super::{parse_segment_file_name, segment_file_name, MAX_SEGMENT_ID};
use crate::fs::{FileHandle, FileLayer};
use crate::index::{FrameLoc, Index};
use crate::manifest::{load_manifest, settle_manifest, Manifest, Watermark, MANIFEST_TEMP_NAME};
use crate::{Damage, FormatError, MasterKey, RecoveryReport, StoreError};

pub(crate) struct Recovered<F: FileLayer> {
    pub segments: BTreeMap<u64, Arc<Segment<F>>>,
    pub index: Index<F>,
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
    // A listed segment with a rotted header is damage (its footer names
    // what it held, or it is an unknown loss), and so is a listed segment
    // that is missing; anything else the accounting found fails.
    let (degradable, issues): (Vec<Issue>, Vec<Issue>) =
        accounting.issues.into_iter().partition(|i| {
            // offset 0: a header that does not decode (rot); one that
            // decodes but names another id (offset 16) is a foreign file.
            i.missing
                || (i.header
                    && i.offset == 0
                    && manifest
                        .as_ref()
                        .is_some_and(|(m, _)| m.lists(i.segment_id)))
        });
    if let Some(issue) = issues.into_iter().next() {
        return Err(issue.into());
    }
    let (missing, headerless): (Vec<Issue>, Vec<Issue>) =
        degradable.into_iter().partition(|i| i.missing);
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
    let mut index = Index::new();
    let last_id = kept.last().map(|c| c.facts.id);
    let mut empty_last = None;
    // Listed segments kept without a readable header, or missing: they
    // stay listed, so every open reports them again until restored.
    let mut kept_unreadable = Vec::new();
    for issue in &missing {
        let span = Span {
            offset: 0,
            end: 0,
            what: issue.what.clone(),
            slices: Vec::new(),
            meta_lost: true,
            checkpoint_lost: false,
            identified: false,
        };
        index_in_order(
            &mut index,
            issue.segment_id,
            &[],
            std::slice::from_ref(&span),
        );
        report
            .damaged
            .push(damage_of(issue.segment_id, &issue.path, &span));
        kept_unreadable.push(issue.segment_id);
    }
    for c in kept {
        if let Some(issue) = headerless.iter().find(|i| i.segment_id == c.facts.id) {
            let span = headerless_damage(fs, &c, issue)?;
            index_in_order(&mut index, c.facts.id, &[], std::slice::from_ref(&span));
            report
                .damaged
                .push(damage_of(c.facts.id, &c.facts.path, &span));
            kept_unreadable.push(c.facts.id);
            continue;
        }
        let is_last = Some(c.facts.id) == last_id;
        let place = Place {
            is_last,
            watermark,
            read_only,
        };
        match load_segment(fs, c, key, place, &mut index, &mut report)? {
            Loaded::Segment(segment, frames) => {
                report.frames += frames;
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
    // Compaction waits while a range lost something (it would drop the
    // record of the loss); a damaged seal footer over whole frames lost
    // nothing, and compacting rewrites it away.
    if let Some(d) = report
        .damaged
        .iter()
        .find(|d| !d.slices.is_empty() || d.meta_lost || !d.identified)
    {
        index.degraded = Some((d.segment_id, d.offset));
    }
    let manifest = settle_manifest(
        fs,
        dir,
        manifest.map(|(m, _)| m),
        &segments,
        &kept_unreadable,
        key,
    )?;
    if let Some(path) = empty_last {
        let ctx = format!("removing {}", path.display());
        fs.remove(&path).map_err(io_err(ctx.clone()))?;
        fs.sync_dir(dir).map_err(io_err(ctx))?;
    }
    if report.damaged.is_empty() {
        remove_replaced(fs, dir, &removals)?;
    }
    Ok(Recovered {
        segments,
        index,
        next_segment_id,
        manifest,
        report,
    })
}

/// The public record of a damaged span of segment `id`.
fn damage_of(id: u64, path: &Path, span: &Span) -> Damage {
    Damage {
        segment_id: id,
        path: path.to_path_buf(),
        offset: span.offset,
        end: span.end,
        what: span.what.clone(),
        slices: span.slices.clone(),
        meta_lost: span.meta_lost,
        identified: span.identified,
    }
}

/// The damage of a listed segment whose header is rotted: the whole file,
/// with the slices and meta frames its seal footer names. Without a footer
/// (an unsealed newest segment, or a rotted footer) nothing in it can be
/// identified: an unknown loss of the whole file.
fn headerless_damage<F: FileLayer>(
    fs: &F,
    c: &Candidate<F>,
    issue: &Issue,
) -> Result<Span, StoreError> {
    let map = fs
        .map(&c.file)
        .map_err(io_err(format!("reading {}", c.facts.path.display())))?;
    let entries = match read_sealed_entries(&map) {
        Ok(entries) => entries,
        Err(e) => {
            return Ok(Span {
                offset: 0,
                end: c.facts.len,
                what: format!(
                    "segment header: {}, and no seal footer names what it held ({e}): restore the segment from a backup",
                    issue.what
                ),
                slices: Vec::new(),
                meta_lost: true,
                checkpoint_lost: false,
                identified: false,
            })
        }
    };
    let mut lost = Lost::default();
    for e in &entries {
        lost.note(&e.header);
    }
    Ok(Span {
        offset: 0,
        end: c.facts.len,
        what: format!("segment header: {}", issue.what),
        slices: lost.slices,
        meta_lost: lost.meta_lost,
        checkpoint_lost: lost.checkpoint_lost,
        identified: true,
    })
}

/// Indexes a segment's frames and marks the slices of its damaged spans, in
/// file order: a damaged frame hides an older frame of its key, a later
/// good one replaces it; a lost checkpoint ends the meta log before it.
fn index_in_order<F: FileLayer>(
    index: &mut Index<F>,
    segment_id: u64,
    entries: &[FooterEntry],
    damage: &[Span],
) {
    let mark = |index: &mut Index<F>, span: &Span| {
        for key in &span.slices {
            index.mark_damaged(*key, segment_id, span.offset);
        }
        if span.checkpoint_lost {
            index.restart_meta_log();
        }
        if !span.identified {
            index.mark_unknown_loss(segment_id, span.offset);
        }
    };
    let mut spans = damage.iter().peekable();
    for e in entries {
        while let Some(span) = spans.next_if(|s| s.offset <= e.offset) {
            mark(index, span);
        }
        index.add(FrameLoc {
            segment_id,
            offset: e.offset,
            header: e.header,
        });
    }
    for span in spans {
        mark(index, span);
    }
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
            // Deleted only once the segments that replaced them loaded
            // without damage (`remove_replaced`): until then they may hold
            // the only intact copy of what a damaged or missing one held.
            Some(Removal::Replaced) => {}
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

/// Deletes the segments a published compaction replaced (its unlink phase
/// did not finish), once everything that replaced them loaded whole.
fn remove_replaced<F: FileLayer>(
    fs: &F,
    dir: &Path,
    removals: &BTreeMap<u64, Removal>,
) -> Result<(), StoreError> {
    let mut removed = false;
    for (&id, why) in removals {
        if *why == Removal::Replaced {
            let path = dir.join(segment_file_name(id));
            fs.remove(&path)
                .map_err(io_err(format!("removing {}", path.display())))?;
            removed = true;
        }
    }
    if removed {
        fs.sync_dir(dir)
            .map_err(io_err(format!("syncing {}", dir.display())))?;
    }
    Ok(())
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
    /// Indexed: the segment and its number of frames.
    Segment(Arc<Segment<F>>, u64),
    /// An unsealed last segment without a whole batch: to be removed.
    Empty(PathBuf),
}

/// Where a segment stands among the others, and how recovery runs.
#[derive(Clone, Copy)]
struct Place {
    is_last: bool,
    watermark: Option<Watermark>,
    read_only: bool,
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
    place: Place,
    index: &mut Index<F>,
    report: &mut RecoveryReport,
) -> Result<Loaded<F>, StoreError> {
    let Place {
        is_last,
        watermark,
        read_only,
    } = place;
    let Candidate { facts, file } = c;
    let header = facts.header.expect("checked by the caller");
    let (id, path, len) = (facts.id, facts.path, facts.len);
    let ctx = format!("reading {}", path.display());
    let map = fs.map(&file).map_err(io_err(ctx.clone()))?;
    let cipher = key
        .filter(|_| header.encrypted)
        .map(|k| k.segment_cipher(&header.salt, id));
    if let Ok(summary) = read_footer_summary(&map) {
        // A version-3 footer: only its header and summary are read. Its
        // entries are checked by `verify`, and each frame when it is read
        // (header against the index, CRC, tag; a plaintext frame in an
        // encrypted segment is refused there too).
        let frames = summary.frames;
        let segment = Segment::new(fs.clone(), path, header, cipher, file);
        segment.set_map(map);
        let segment = Arc::new(segment);
        index.add_summary(&segment, summary);
        segment.release(0, len);
        return Ok(Loaded::Segment(segment, frames));
    }
    if let Ok(footer) = read_sealed_footer(&map) {
        check_all_encrypted(&header, &footer.entries, &path)?;
        let segment = Segment::new(fs.clone(), path, header, cipher, file);
        segment.set_map(map);
        let segment = Arc::new(segment);
        index.add_sealed(&segment, &footer.entries, footer.sorted.as_ref());
        // Reading the footer touched its pages: let them leave the
        // resident set, so opening a large store does not grow RSS.
        segment.release(0, len);
        return Ok(Loaded::Segment(segment, footer.entries.len() as u64));
    }
    let salvage = salvage_scan(&map);
    drop(map);
    check_all_encrypted(&header, &salvage.entries, &path)?;
    let mut damage = salvage.damaged;
    let mut torn = None;
    let acked_end = watermark.filter(|w| w.segment_id == id && w.offset > salvage.valid_end);
    match (salvage.tail, acked_end) {
        // The segment ends (or its whole batches end) below the watermark:
        // acknowledged batches were cut off. Nothing is cut or sealed, so
        // every open finds it again.
        (tail, Some(w)) => {
            let mut lost = Span {
                offset: salvage.valid_end,
                end: w.offset.max(len),
                what: format!(
                    "acknowledged data lost: batches up to offset {} were acknowledged, whole batches end at {}; restore the segment from a backup",
                    w.offset, salvage.valid_end
                ),
                slices: Vec::new(),
                meta_lost: true,
                checkpoint_lost: false,
                identified: false,
            };
            if let Some(tail) = tail {
                lost.slices = tail.slices;
            }
            damage.push(lost);
        }
        (Some(mut span), None) if !is_last => {
            span.what = format!("{} in a segment that is not the last", span.what);
            damage.push(span);
        }
        (Some(span), None) => torn = Some(span),
        (None, None) if !is_last && damage.is_empty() => {
            // Every segment but the last is sealed when the writer moves
            // on, and an open leaves one unsealed only for damage it finds
            // again (above). One without either was cut short at a batch
            // boundary: what followed is unknown.
            damage.push(Span {
                offset: salvage.valid_end,
                end: len,
                what: "the segment is not the last, yet has no seal footer: it was cut short, and frames after its last whole batch may be lost; restore the segment from a backup".into(),
                slices: Vec::new(),
                meta_lost: true,
                checkpoint_lost: false,
                identified: false,
            });
        }
        (None, None) => {}
    }
    // Damage past the watermark in the last segment may be a torn group
    // write whose later pages reached the disk before earlier ones, or rot
    // in acknowledged batches written since the watermark was recorded:
    // the two cannot be told apart, so it is damage like any other (no
    // batch touching it shows; later whole batches do, and the frames the
    // range held are named), never a silent cut. Behind a frame header
    // that does not decode the lost frames cannot be named: an unknown
    // loss (`Damage::identified`).
    if let Some(span) = &torn {
        report
            .truncated
            .push((id, span.offset, span.end - span.offset));
    }
    let scan = SegmentScan {
        entries: salvage.entries,
        valid_end: salvage.valid_end,
        problem: None,
        good_frame_after_problem: None,
    };
    if !damage.is_empty() {
        // Degraded open: the damaged segment is never sealed or rewritten,
        // so the next open finds (and reports) the damage again. Only a torn
        // tail after it is cut, so it cannot later pass for damage.
        if torn.is_some() && !read_only {
            file.set_len(scan.valid_end)
                .and_then(|()| file.sync_data())
                .map_err(io_err(format!("recovering {}", path.display())))?;
        }
        report
            .damaged
            .extend(damage.iter().map(|d| damage_of(id, &path, d)));
        let segment = Segment::new(fs.clone(), path, header, cipher, file);
        index_in_order(index, id, &scan.entries, &damage);
        let frames = scan.entries.len() as u64;
        return Ok(Loaded::Segment(Arc::new(segment), frames));
    }
    let dropped = len - scan.valid_end;
    if read_only {
        // Read by pread up to the last whole batch; nothing is changed.
        if scan.entries.is_empty() {
            return Ok(Loaded::Empty(path));
        }
        let segment = Segment::new(fs.clone(), path, header, cipher, file);
        index_in_order(index, id, &scan.entries, &[]);
        let frames = scan.entries.len() as u64;
        return Ok(Loaded::Segment(Arc::new(segment), frames));
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
    // Indexed first: the footer carries the counters that include it.
    index_in_order(index, id, &scan.entries, &[]);
    let run = sorted_run(&scan.entries);
    let (footer, run_offset) = encode_sorted_footer(
        &scan.entries,
        &run,
        &index.counters(),
        scan.entries.len() as u64,
        scan.valid_end,
    );
    write_footer(&file, &footer, scan.valid_end).map_err(io_err(write_ctx.clone()))?;
    let segment = Arc::new(Segment::new(fs.clone(), path, header, cipher, file));
    segment.mark_sealed().map_err(io_err(write_ctx))?;
    index.install_run(&segment, run_offset, &run);
    Ok(Loaded::Segment(segment, scan.entries.len() as u64))
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
