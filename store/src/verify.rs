//! `verify`: every header, frame CRC and footer, and with the key every GCM
//! tag (and zstd payload). Each problem is named by segment and offset.

use std::path::{Path, PathBuf};

use crate::codec::open_frame;
use crate::crypto::SegmentCipher;
use crate::engine::Engine;
use crate::fs::{FileHandle, FileLayer};
use crate::segment::footer::FooterEntry;
use crate::segment::frame::{decode_frame, FLAG_AES_GCM};
use crate::segment::header::decode_segment_header;
use crate::segment::recovery::{read_sealed_entries, scan_segment};
use crate::segment::{parse_segment_file_name, segment_file_name};
use crate::{MasterKey, Problem, StoreError, VerifyReport};

/// One segment's bytes and what verify knows about it.
pub(crate) struct SegmentBytes<'a> {
    pub id: u64,
    pub path: &'a Path,
    pub bytes: &'a [u8],
    pub sealing: Sealing,
}

/// Whether a segment should end in a seal footer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sealing {
    /// The active segment: no footer yet.
    Active,
    /// Every segment but the last must be sealed.
    Sealed,
    /// The last segment of a directory not opened: unsealed after a crash
    /// is normal (recovery seals it).
    Either,
}

fn problem(
    report: &mut VerifyReport,
    seg: &SegmentBytes<'_>,
    offset: u64,
    what: impl Into<String>,
) {
    report.problems.push(Problem {
        segment_id: seg.id,
        path: seg.path.to_path_buf(),
        offset,
        what: what.into(),
    });
}

/// Checks one segment; `key` derives the segment key when it is encrypted.
pub(crate) fn verify_segment(
    seg: &SegmentBytes<'_>,
    key: Option<&MasterKey>,
    cipher: Option<&SegmentCipher>,
    report: &mut VerifyReport,
) {
    report.segments += 1;
    let header = match decode_segment_header(seg.bytes) {
        Ok(h) => h,
        Err(e) => return problem(report, seg, 0, e.0),
    };
    if header.segment_id != seg.id {
        problem(report, seg, 16, "segment id does not match the file name");
    }
    let derived;
    let cipher = match (cipher, key) {
        (Some(c), _) => Some(c),
        (None, Some(k)) if header.encrypted && k.key_id() == header.key_id => {
            derived = k.segment_cipher(&header.salt, seg.id);
            Some(&derived)
        }
        (None, Some(_)) if header.encrypted => {
            problem(
                report,
                seg,
                24,
                "written with another key: tags not checked",
            );
            None
        }
        _ => None,
    };
    let entries: Vec<FooterEntry> = if seg.sealing == Sealing::Active {
        scanned_entries(seg, report)
    } else {
        match read_sealed_entries(seg.bytes) {
            Ok(entries) => entries,
            Err(e) => {
                if seg.sealing == Sealing::Sealed {
                    let at = seg.bytes.len().saturating_sub(12) as u64;
                    problem(report, seg, at, format!("seal footer: {e}"));
                }
                scanned_entries(seg, report)
            }
        }
    };
    for e in entries {
        check_frame(seg, &e, cipher, report);
    }
}

fn scanned_entries(seg: &SegmentBytes<'_>, report: &mut VerifyReport) -> Vec<FooterEntry> {
    let scan = scan_segment(seg.bytes);
    if let Some((offset, what)) = &scan.problem {
        problem(report, seg, *offset, what.clone());
    } else if scan.valid_end < seg.bytes.len() as u64 {
        problem(
            report,
            seg,
            scan.valid_end,
            "frames after the last complete batch",
        );
    }
    scan.entries
}

fn check_frame(
    seg: &SegmentBytes<'_>,
    e: &FooterEntry,
    cipher: Option<&SegmentCipher>,
    report: &mut VerifyReport,
) {
    report.frames += 1;
    let Some(bytes) = usize::try_from(e.offset)
        .ok()
        .and_then(|o| seg.bytes.get(o..))
    else {
        return problem(report, seg, e.offset, "frame offset past the end");
    };
    match decode_frame(bytes) {
        Ok(h) if h != e.header => {
            return problem(
                report,
                seg,
                e.offset,
                "frame header differs from the footer",
            );
        }
        Ok(_) => {}
        Err(err) => return problem(report, seg, e.offset, err.0),
    }
    let encrypted = e.header.flags & FLAG_AES_GCM != 0;
    if encrypted && cipher.is_none() {
        return;
    }
    if encrypted {
        report.tags_checked += 1;
    }
    if let Err(err) = open_frame(bytes, seg.id, cipher) {
        problem(report, seg, e.offset, err.0);
    }
}

impl<F: FileLayer> Engine<F> {
    pub(crate) fn verify(&self) -> VerifyReport {
        let (segments, active) = {
            let w = self.writer.lock();
            let segments: Vec<_> = self.segments.read().values().cloned().collect();
            let active = w.active.as_ref().map(|a| (a.segment.id, a.end_offset));
            (segments, active)
        };
        let mut report = VerifyReport::default();
        for segment in segments {
            let (is_active, len) = match active {
                Some((id, end)) if id == segment.id => (true, end),
                _ => (false, segment.len_bytes()),
            };
            match segment.read(0, len) {
                Ok(bytes) => {
                    let seg = SegmentBytes {
                        id: segment.id,
                        path: &segment.path,
                        bytes: &bytes,
                        sealing: if is_active {
                            Sealing::Active
                        } else {
                            Sealing::Sealed
                        },
                    };
                    verify_segment(&seg, None, segment.cipher.as_ref(), &mut report);
                    drop(bytes);
                    segment.release(0, len);
                }
                Err(e) => report.problems.push(Problem {
                    segment_id: segment.id,
                    path: segment.path.clone(),
                    offset: 0,
                    what: format!("unreadable: {e}"),
                }),
            }
        }
        report
    }
}

/// Verifies a data directory without opening (or locking, or recovering) it,
/// for a store that does not open because of corruption.
pub fn verify_dir<F: FileLayer>(
    fs: &F,
    dir: &Path,
    key: Option<&MasterKey>,
) -> Result<VerifyReport, StoreError> {
    let mut ids: Vec<u64> = fs
        .list(dir)
        .map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    ids.sort_unstable();
    let mut report = VerifyReport::default();
    let last = ids.last().copied();
    for id in ids {
        let path: PathBuf = dir.join(segment_file_name(id));
        let read = || -> std::io::Result<Vec<u8>> {
            let file = fs.open(&path)?;
            let mut bytes = vec![0u8; usize::try_from(file.len()?).map_err(std::io::Error::other)?];
            file.read_exact_at(&mut bytes, 0)?;
            Ok(bytes)
        };
        match read() {
            Ok(bytes) => {
                let seg = SegmentBytes {
                    id,
                    path: &path,
                    bytes: &bytes,
                    sealing: if Some(id) == last {
                        Sealing::Either
                    } else {
                        Sealing::Sealed
                    },
                };
                verify_segment(&seg, key, None, &mut report);
            }
            Err(e) => report.problems.push(Problem {
                segment_id: id,
                path,
                offset: 0,
                what: format!("unreadable: {e}"),
            }),
        }
    }
    Ok(report)
}
