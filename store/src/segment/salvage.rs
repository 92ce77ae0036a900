//! Salvage scan: reads a segment without a usable footer frame by frame and,
//! where a frame is bad, skips to the next valid frame instead of stopping,
//! so one bad frame costs only what it held (degraded open, G11).

use super::footer::FooterEntry;
use super::frame::{decode_frame_header, FrameHeader, FrameKind, FLAG_BATCH_END};
use super::scan::scan_from;
use crate::SliceKey;

/// A range of a segment whose frames cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub offset: u64,
    pub end: u64,
    pub what: String,
    /// Slices a frame header in the range names.
    pub slices: Vec<SliceKey>,
    /// A meta frame was in the range.
    pub meta_lost: bool,
    /// A checkpoint was among the lost meta frames: the meta log restarts
    /// there, so the meta frames before the range are dead.
    pub checkpoint_lost: bool,
    /// Every frame in the range is known by its header (so no newer frame of
    /// an unknown key was lost, and no older one may be served in its place).
    pub identified: bool,
}

/// What a salvage scan kept and lost.
pub(crate) struct Salvage {
    /// Frames of whole batches, in order (across damaged spans).
    pub entries: Vec<FooterEntry>,
    /// Damage followed by valid frames (bit rot, not a torn tail).
    pub damaged: Vec<Span>,
    /// End of the last whole batch.
    pub valid_end: u64,
    /// From `valid_end` to the file's end: no whole batch (a torn tail in
    /// the last segment; damage in any other). None when nothing follows.
    pub tail: Option<Span>,
}

/// What the frames of a damaged range were, from their headers.
#[derive(Default)]
pub(crate) struct Lost {
    pub slices: Vec<SliceKey>,
    pub meta_lost: bool,
    pub checkpoint_lost: bool,
}

impl Lost {
    pub fn note(&mut self, h: &FrameHeader) {
        match h.kind {
            FrameKind::Slice => self.slices.push(h.key),
            FrameKind::Meta => {
                self.meta_lost = true;
                self.checkpoint_lost |= h.is_checkpoint();
            }
            FrameKind::SealFooter => {}
        }
    }
}

/// What the frames dropped before `bad` held, plus the frame at `bad`;
/// whether that frame's header decodes and its length reaches exactly
/// `end` (then every lost frame is known); and whether it ended its batch
/// (known only then: otherwise the batch may go on past `end`).
fn lost(dropped: &[FooterEntry], bytes: &[u8], bad: Option<u64>, end: u64) -> (Lost, bool, bool) {
    let mut lost = Lost::default();
    for e in dropped {
        lost.note(&e.header);
    }
    let mut identified = true;
    let mut ends_batch = false;
    if let Some(at) = bad {
        match usize::try_from(at)
            .ok()
            .and_then(|at| bytes.get(at..))
            .map(decode_frame_header)
        {
            Some(Ok(h)) => {
                lost.note(&h);
                identified = at.checked_add(h.frame_len()) == Some(end);
                ends_batch = identified && h.flags & FLAG_BATCH_END != 0;
            }
            // A frame with a bad header could have been anything.
            _ => identified = false,
        }
    }
    (lost, identified, ends_batch)
}

/// Scans `bytes` (a whole segment) past damaged frames. Never panics.
pub(crate) fn salvage_scan(bytes: &[u8]) -> Salvage {
    let mut out = Salvage {
        entries: Vec::new(),
        damaged: Vec::new(),
        valid_end: 0,
        tail: None,
    };
    let mut start = super::header::SEGMENT_HEADER_LEN as u64;
    let mut seq = 0;
    // A damaged span whose batch may go on past it: the frames after it up
    // to the next batch end are the rest of that batch, lost with it (a
    // batch is whole or not at all), even though each of them is sound.
    let mut broken: Option<usize> = None;
    loop {
        let scan = scan_from(bytes, start, seq);
        let all = full_entries(bytes, seq, &scan);
        let kept = scan.entries.len();
        let mut entries = scan.entries.as_slice();
        if let Some(i) = broken.take() {
            let rest = entries
                .iter()
                .position(|e| e.header.flags & FLAG_BATCH_END != 0)
                .map_or(0, |p| p + 1);
            let span = &mut out.damaged[i];
            let mut more = Lost::default();
            for e in &entries[..rest] {
                more.note(&e.header);
                span.end = e.offset + e.header.frame_len();
            }
            span.slices.extend(more.slices);
            span.meta_lost |= more.meta_lost;
            span.checkpoint_lost |= more.checkpoint_lost;
            entries = &entries[rest..];
        }
        out.entries.extend_from_slice(entries);
        out.valid_end = scan.valid_end;
        let dropped = &all[kept..];
        let bad = scan.problem.as_ref().map(|(at, _)| *at);
        let what = scan.problem.as_ref().map(|(_, w)| w.clone());
        let next = scan.good_frame_after_problem.and_then(|good| {
            let h = decode_frame_header(&bytes[good as usize..]).ok()?;
            (h.kind != FrameKind::SealFooter && h.seq >= seq).then_some((good, h.seq))
        });
        match (bad, next) {
            (Some(bad), Some((good, good_seq))) => {
                let (lost, identified, ends_batch) = lost(dropped, bytes, Some(bad), good);
                if !ends_batch {
                    broken = Some(out.damaged.len());
                }
                out.damaged.push(Span {
                    offset: scan.valid_end,
                    end: good,
                    what: what.unwrap_or_default(),
                    slices: lost.slices,
                    meta_lost: lost.meta_lost || !identified,
                    checkpoint_lost: lost.checkpoint_lost,
                    identified,
                });
                start = good;
                seq = good_seq;
            }
            _ => {
                if scan.valid_end < bytes.len() as u64 {
                    let end = bytes.len() as u64;
                    let (lost, identified, _) = lost(dropped, bytes, bad, end);
                    out.tail = Some(Span {
                        offset: scan.valid_end,
                        end,
                        what: what.unwrap_or_else(|| "frames after the last complete batch".into()),
                        slices: lost.slices,
                        meta_lost: lost.meta_lost || !identified,
                        checkpoint_lost: lost.checkpoint_lost,
                        identified,
                    });
                }
                return out;
            }
        }
    }
}

/// Every frame the scan decoded, including those of an unfinished batch
/// that `scan.entries` leaves out.
fn full_entries(bytes: &[u8], seq: u64, scan: &super::scan::SegmentScan) -> Vec<FooterEntry> {
    let mut all = scan.entries.clone();
    let mut offset = scan.valid_end;
    let stop = scan
        .problem
        .as_ref()
        .map_or(bytes.len() as u64, |(at, _)| *at);
    let mut seq = seq.saturating_add(all.len() as u64);
    while offset < stop {
        let Ok(h) = super::frame::decode_frame(&bytes[offset as usize..]) else {
            break;
        };
        if h.seq != seq {
            break;
        }
        all.push(FooterEntry { offset, header: h });
        offset += h.frame_len();
        seq = seq.saturating_add(1);
    }
    all
}
