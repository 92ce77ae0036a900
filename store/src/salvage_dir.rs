//! `salvage`: copies every verifiable batch of a damaged data directory into
//! a fresh store and names what could not be saved (issue 10, G7/G11).
//!
//! It reads the source like `verify_dir` does: no lock, no recovery, no
//! writes. Only the segments the store would serve are read (a segment that
//! recovery would remove, because a compaction replaced it or never
//! published it, holds nothing live). Within a segment, the frames come from
//! the seal footer when it checks out, else from a salvage scan that skips
//! past damaged frames. A batch is copied whole or not at all: a batch that
//! lost one frame (a slice or its meta record) is listed, and none of its
//! frames is copied, so the new store never holds half of an atomic commit.
//! Batches are appended to the new store in the order they were committed,
//! so a newer frame of a key still replaces an older one there.

use std::path::{Path, PathBuf};

use crate::codec::open_frame;
use crate::fs::{FileHandle, FileLayer};
use crate::records::decode_records;
use crate::segment::footer::FooterEntry;
use crate::segment::frame::{FrameKind, FLAG_BATCH_END};
use crate::segment::header::decode_segment_header;
use crate::segment::salvage::salvage_scan;
use crate::segment::scan::read_sealed_entries;
use crate::segment::segment_file_name;
use crate::verify::{account_files, manifest_for_verify};
use crate::{Batch, MasterKey, SliceKey, Store, StoreError, StoreOptions, VerifyReport};

/// Something that could not be copied: a range of a segment, what was wrong
/// with it, and what it held where frame headers name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsaved {
    pub segment_id: u64,
    pub path: PathBuf,
    pub offset: u64,
    pub what: String,
    /// Slices whose frames were lost (as far as frame headers name them).
    pub slices: Vec<SliceKey>,
    /// Meta records were (or may have been) lost.
    pub meta_lost: bool,
}

/// What `Store::salvage` copied and what it could not.
#[derive(Clone, Debug, Default)]
pub struct SalvageReport {
    pub segments_read: usize,
    pub batches_copied: u64,
    pub slices_copied: u64,
    pub meta_records_copied: u64,
    pub unsaved: Vec<Unsaved>,
    /// Problems with the directory as a whole (missing segments, an altered
    /// manifest), as `verify` names them.
    pub problems: Vec<crate::Problem>,
}

impl SalvageReport {
    /// Everything the source held was copied.
    pub fn complete(&self) -> bool {
        self.unsaved.is_empty() && self.problems.is_empty()
    }
}

/// One frame, checked and opened, waiting for the rest of its batch.
enum Opened {
    Slice(SliceKey, Vec<Vec<u8>>),
    Tombstone(SliceKey),
    Meta(Vec<Vec<u8>>),
    /// A checkpoint (the first record) and the batch's other meta records.
    Checkpoint(Vec<Vec<u8>>),
}

pub(crate) fn salvage_dir<F: FileLayer>(
    fs: &F,
    src: &Path,
    dst: &Path,
    key: Option<&MasterKey>,
) -> Result<SalvageReport, StoreError> {
    let dst_has_files = match std::fs::read_dir(dst) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(StoreError::io(format!("reading {}", dst.display()), e)),
    };
    if dst_has_files {
        return Err(StoreError::Invalid(format!(
            "{} is not empty: salvage writes into a new, empty directory (the damaged one is left as it is)",
            dst.display()
        )));
    }
    if same_dir(src, dst) {
        return Err(StoreError::Invalid(
            "salvage must write into another directory than the one it reads".into(),
        ));
    }
    let mut verify = VerifyReport::default();
    let manifest = manifest_for_verify(fs, src, key, &mut verify)?;
    let (ids, removals) = account_files(fs, src, key, manifest.as_ref(), false, &mut verify)?;
    let opts = StoreOptions {
        master_key: key.cloned(),
        ..StoreOptions::default()
    };
    let (target, _) = Store::open(dst, opts)?;
    let mut report = SalvageReport {
        problems: verify.problems,
        ..SalvageReport::default()
    };
    for id in ids.into_iter().filter(|id| !removals.contains_key(id)) {
        let path = src.join(segment_file_name(id));
        report.segments_read += 1;
        let bytes = match read_whole(fs, &path) {
            Ok(b) => b,
            Err(e) => {
                report
                    .unsaved
                    .push(whole_segment(id, &path, format!("unreadable: {e}")));
                continue;
            }
        };
        salvage_segment(id, &path, &bytes, key, &target, &mut report)?;
    }
    target.close()?;
    Ok(report)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn read_whole<F: FileLayer>(fs: &F, path: &Path) -> std::io::Result<Vec<u8>> {
    let file = fs.open(path)?;
    let mut bytes = vec![0u8; usize::try_from(file.len()?).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

fn whole_segment(id: u64, path: &Path, what: String) -> Unsaved {
    Unsaved {
        segment_id: id,
        path: path.to_path_buf(),
        offset: 0,
        what,
        slices: Vec::new(),
        meta_lost: true,
    }
}

fn salvage_segment(
    id: u64,
    path: &Path,
    bytes: &[u8],
    key: Option<&MasterKey>,
    target: &Store,
    report: &mut SalvageReport,
) -> Result<(), StoreError> {
    let header = match decode_segment_header(bytes) {
        Ok(h) => h,
        // Without a key every frame must be plaintext, and each carries its
        // own CRC: read them without the header (an encrypted frame fails
        // to open and is named). With a key, frames without the header's
        // salt cannot be opened, and accepting plaintext ones would take
        // data nobody with the key wrote (G11).
        Err(e) if key.is_none() => {
            report.unsaved.push(Unsaved {
                segment_id: id,
                path: path.to_path_buf(),
                offset: 0,
                what: format!(
                    "segment header: {} (its frames were read without it; any that failed are named below)",
                    e.0
                ),
                slices: Vec::new(),
                meta_lost: false,
            });
            return salvage_frames(id, path, bytes, None, target, report);
        }
        Err(e) => {
            report
                .unsaved
                .push(whole_segment(id, path, format!("segment header: {}", e.0)));
            return Ok(());
        }
    };
    let cipher = if header.encrypted {
        match key {
            Some(k) if k.key_id() == header.key_id => Some(k.segment_cipher(&header.salt, id)),
            _ => {
                report.unsaved.push(whole_segment(
                    id,
                    path,
                    "encrypted under another key (or no key given): pass the store's key".into(),
                ));
                return Ok(());
            }
        }
    } else {
        None
    };
    salvage_frames(id, path, bytes, cipher.as_ref(), target, report)
}

/// Copies the whole batches of one segment's frames, opened with `cipher`.
fn salvage_frames(
    id: u64,
    path: &Path,
    bytes: &[u8],
    cipher: Option<&crate::crypto::SegmentCipher>,
    target: &Store,
    report: &mut SalvageReport,
) -> Result<(), StoreError> {
    let entries: Vec<FooterEntry> = match read_sealed_entries(bytes) {
        Ok(entries) => entries,
        Err(_) => {
            let scan = salvage_scan(bytes);
            for span in scan.damaged.iter().chain(scan.tail.iter()) {
                report.unsaved.push(Unsaved {
                    segment_id: id,
                    path: path.to_path_buf(),
                    offset: span.offset,
                    what: format!("bytes {}..{}: {}", span.offset, span.end, span.what),
                    slices: span.slices.clone(),
                    meta_lost: span.meta_lost || !span.identified,
                });
            }
            scan.entries
        }
    };
    let mut batch: Vec<(u64, Result<Opened, String>, FooterEntry)> = Vec::new();
    for e in entries {
        let opened = usize::try_from(e.offset)
            .ok()
            .and_then(|o| bytes.get(o..))
            .ok_or_else(|| "frame offset past the end".to_string())
            .and_then(|b| open_frame(b, id, cipher).map_err(|err| err.0))
            .and_then(|(h, raw)| {
                let records = decode_records(&raw, h.record_count).map_err(|err| err.0)?;
                Ok(match h.kind {
                    FrameKind::Slice if h.is_tombstone() => Opened::Tombstone(h.key),
                    FrameKind::Slice => Opened::Slice(h.key, records),
                    _ if h.is_checkpoint() => Opened::Checkpoint(records),
                    _ => Opened::Meta(records),
                })
            });
        let end = e.header.flags & FLAG_BATCH_END != 0;
        batch.push((e.offset, opened, e));
        if end {
            copy_batch(id, path, std::mem::take(&mut batch), target, report)?;
        }
    }
    // Frames after the last batch end are a batch that never committed.
    if let Some((offset, _, _)) = batch.first() {
        report.unsaved.push(Unsaved {
            segment_id: id,
            path: path.to_path_buf(),
            offset: *offset,
            what: "a batch without its end (never acknowledged)".into(),
            slices: batch
                .iter()
                .filter(|(_, _, e)| e.header.kind == FrameKind::Slice)
                .map(|(_, _, e)| e.header.key)
                .collect(),
            meta_lost: batch
                .iter()
                .any(|(_, _, e)| e.header.kind == FrameKind::Meta),
        });
    }
    Ok(())
}

fn copy_batch(
    id: u64,
    path: &Path,
    frames: Vec<(u64, Result<Opened, String>, FooterEntry)>,
    target: &Store,
    report: &mut SalvageReport,
) -> Result<(), StoreError> {
    if let Some((offset, Err(what), _)) = frames.iter().find(|(_, r, _)| r.is_err()) {
        report.unsaved.push(Unsaved {
            segment_id: id,
            path: path.to_path_buf(),
            offset: *offset,
            what: format!("frame at {offset}: {what}; its whole batch is left out"),
            slices: frames
                .iter()
                .filter(|(_, _, e)| e.header.kind == FrameKind::Slice)
                .map(|(_, _, e)| e.header.key)
                .collect(),
            meta_lost: frames
                .iter()
                .any(|(_, _, e)| e.header.kind == FrameKind::Meta),
        });
        return Ok(());
    }
    // A checkpoint summarises every batch before it: after one was left
    // out, its image says the lost commit happened. It is left out whole
    // (its record, the batch's other records, its image's slices), so the
    // copy's log starts at the checkpoint before the loss, over that one's
    // image, and replays what followed: the lost commit is not done there.
    // The meta frames it replaced are still in the segments (only
    // compaction removes them, and its snapshot starts the log it writes).
    let checkpoint = frames
        .iter()
        .any(|(_, r, _)| matches!(r, Ok(Opened::Checkpoint(_))));
    if checkpoint && !(report.unsaved.is_empty() && report.problems.is_empty()) {
        report.unsaved.push(Unsaved {
            segment_id: id,
            path: path.to_path_buf(),
            offset: frames.first().map_or(0, |(o, _, _)| *o),
            what: "a checkpoint written after a batch that was left out (it summarises \
                   that batch); left out whole, so the copy replays the log from the \
                   checkpoint before it"
                .into(),
            slices: Vec::new(),
            meta_lost: false,
        });
        return Ok(());
    }
    let mut out = Batch::new();
    let (mut slices, mut metas) = (0u64, 0u64);
    for opened in frames.into_iter().filter_map(|(_, r, _)| r.ok()) {
        match opened {
            Opened::Slice(key, records) => {
                slices += 1;
                out = out.slice(key, &records);
            }
            Opened::Tombstone(key) => {
                slices += 1;
                out = out.delete(key);
            }
            Opened::Meta(records) => {
                for r in records {
                    metas += 1;
                    out = out.meta(r);
                }
            }
            Opened::Checkpoint(records) => {
                for (i, r) in records.into_iter().enumerate() {
                    metas += 1;
                    out = if i == 0 {
                        out.checkpoint(r)
                    } else {
                        out.meta(r)
                    };
                }
            }
        }
    }
    if !out.is_empty() {
        target.append(out)?;
    }
    report.batches_copied += 1;
    report.slices_copied += slices;
    report.meta_records_copied += metas;
    Ok(())
}
