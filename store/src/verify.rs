//! `verify`: every header, frame CRC and footer, and with the key every GCM
//! tag (and zstd payload). Each problem is named by segment and offset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::codec::open_frame;
use crate::crypto::SegmentCipher;
use crate::engine::Engine;
use crate::fs::{FileHandle, FileLayer};
use crate::manifest::{
    decode_manifest, manifest_mac_matches, read_manifest_bytes, Manifest, MANIFEST_FILE_NAME,
};
use crate::segment::accounting::{account, FileFacts, ManifestView, Removal};
use crate::segment::footer::sorted_run;
use crate::segment::footer::FooterEntry;
use crate::segment::frame::{decode_frame, FLAG_AES_GCM};
use crate::segment::header::{decode_segment_header, SEGMENT_HEADER_LEN};
use crate::segment::scan::{read_sealed_footer, scan_segment};
use crate::segment::{parse_segment_file_name, segment_file_name};
use crate::{FormatError, MasterKey, Problem, StoreError, VerifyReport};

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
/// `acked_end`: the watermark's offset when it lies in this segment.
pub(crate) fn verify_segment(
    seg: &SegmentBytes<'_>,
    key: Option<&MasterKey>,
    cipher: Option<&SegmentCipher>,
    acked_end: Option<u64>,
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
        scanned_entries(seg, None, report)
    } else {
        match read_sealed_footer(seg.bytes) {
            Ok(footer) => {
                let run_matches = footer
                    .sorted
                    .as_ref()
                    .is_none_or(|sorted| sorted.entries == sorted_run(&footer.entries));
                if !run_matches {
                    let at = footer.sorted.as_ref().map_or(0, |s| s.offset);
                    problem(
                        report,
                        seg,
                        at,
                        "seal footer: the sorted run does not match the frames",
                    );
                }
                footer.entries
            }
            Err(e) => {
                if seg.sealing == Sealing::Sealed {
                    let at = seg.bytes.len().saturating_sub(12) as u64;
                    problem(report, seg, at, format!("seal footer: {e}"));
                }
                scanned_entries(seg, acked_end, report)
            }
        }
    };
    for e in entries {
        if header.encrypted && e.header.flags & FLAG_AES_GCM == 0 {
            report.frames += 1;
            problem(
                report,
                seg,
                e.offset,
                "plaintext frame in an encrypted segment: tampering",
            );
            continue;
        }
        check_frame(seg, &e, cipher, report);
    }
}

fn scanned_entries(
    seg: &SegmentBytes<'_>,
    acked_end: Option<u64>,
    report: &mut VerifyReport,
) -> Vec<FooterEntry> {
    let scan = scan_segment(seg.bytes);
    if let Some(acked) = acked_end.filter(|end| *end > scan.valid_end) {
        problem(
            report,
            seg,
            scan.valid_end,
            format!("acknowledged data lost: batches up to offset {acked} were acknowledged, whole batches end at {}", scan.valid_end),
        );
    }
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
                    verify_segment(&seg, None, segment.cipher.as_ref(), None, &mut report);
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
        // Files missing or unaccounted for since open.
        // Under the writer lock, so no segment is created or published
        // between reading the manifest and listing the directory.
        let _writer = self.writer.lock();
        let key = self.opts.master_key.as_ref();
        let manifest = (self.manifest.lock().clone(), key.is_some());
        // With headers: a segment the store opened without (its header is
        // rotted) is not among those checked above.
        let checked = account_files(&self.fs, &self.dir, key, Some(&manifest), true, &mut report);
        if let Err(e) = checked {
            report.problems.push(Problem {
                segment_id: 0,
                path: self.dir.clone(),
                offset: 0,
                what: e.to_string(),
            });
        }
        report
    }
}

/// Verifies a data directory without opening (or locking, or recovering) it,
/// for a store that does not open because of corruption. Writes nothing.
pub fn verify_dir<F: FileLayer>(
    fs: &F,
    dir: &Path,
    key: Option<&MasterKey>,
) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let manifest = manifest_for_verify(fs, dir, key, &mut report)?;
    let (ids, _) = account_files(fs, dir, key, manifest.as_ref(), false, &mut report)?;
    let last = ids.last().copied();
    let watermark = manifest.as_ref().map(|(m, _)| m.watermark);
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
                let acked_end = watermark.filter(|w| w.segment_id == id).map(|w| w.offset);
                verify_segment(&seg, key, None, acked_end, &mut report);
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

/// The manifest on disk and whether it is authenticated under `key`;
/// problems with it go into the report.
pub(crate) fn manifest_for_verify<F: FileLayer>(
    fs: &F,
    dir: &Path,
    key: Option<&MasterKey>,
    report: &mut VerifyReport,
) -> Result<Option<(Manifest, bool)>, StoreError> {
    let path = dir.join(MANIFEST_FILE_NAME);
    let bytes = read_manifest_bytes(fs, dir)
        .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let mut manifest_problem = |what: &str| {
        report.problems.push(Problem {
            segment_id: 0,
            path: path.clone(),
            offset: 0,
            what: what.to_string(),
        })
    };
    let manifest = match decode_manifest(&bytes) {
        Ok(m) => m,
        Err(e) => {
            manifest_problem(&e.0);
            return Ok(None);
        }
    };
    let authenticated = match key {
        Some(k) if manifest.key_id == k.key_id() => {
            let ok = manifest_mac_matches(&bytes, k);
            if !ok {
                manifest_problem("MANIFEST fails authentication under the key: it was altered");
            }
            ok
        }
        Some(_) if manifest.key_id != 0 => {
            return Err(StoreError::WrongKey {
                dir: dir.to_path_buf(),
            })
        }
        _ => false,
    };
    Ok(Some((manifest, authenticated)))
}

/// Accounts for every segment file against the manifest (missing, unlisted,
/// plaintext where it may not be) and returns the ids of the files present,
/// and those recovery would remove (replaced by a compaction, or never
/// published: they hold nothing the store serves).
pub(crate) fn account_files<F: FileLayer>(
    fs: &F,
    dir: &Path,
    key: Option<&MasterKey>,
    manifest: Option<&(Manifest, bool)>,
    with_headers: bool,
    report: &mut VerifyReport,
) -> Result<(Vec<u64>, BTreeMap<u64, Removal>), StoreError> {
    let mut ids: Vec<u64> = fs
        .list(dir)
        .map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    ids.sort_unstable();
    let facts: Vec<FileFacts> = ids
        .iter()
        .map(|&id| {
            let path = dir.join(segment_file_name(id));
            let mut buf = [0u8; SEGMENT_HEADER_LEN];
            let read = fs.open(&path).and_then(|f| {
                let len = f.len()?;
                if len >= SEGMENT_HEADER_LEN as u64 {
                    f.read_exact_at(&mut buf, 0)?;
                }
                Ok(len)
            });
            let (len, header) = match read {
                Ok(len) if len >= SEGMENT_HEADER_LEN as u64 => (len, decode_segment_header(&buf)),
                Ok(len) => (
                    len,
                    Err(FormatError::new("segment shorter than its header")),
                ),
                Err(e) => (0, Err(FormatError::new(format!("unreadable: {e}")))),
            };
            FileFacts {
                id,
                path,
                len,
                header,
            }
        })
        .collect();
    let refs: Vec<&FileFacts> = facts.iter().collect();
    let view = manifest.map(|(m, authenticated)| ManifestView {
        manifest: m,
        authenticated: *authenticated,
    });
    let accounting = account(dir, &refs, view, key);
    // Unless `with_headers`, header problems are left to the caller, which
    // reports them per segment.
    for issue in accounting
        .issues
        .into_iter()
        .filter(|i| with_headers || !i.header)
    {
        report.problems.push(Problem {
            segment_id: issue.segment_id,
            path: issue.path,
            offset: issue.offset,
            what: issue.what,
        });
    }
    Ok((ids, accounting.removals))
}
