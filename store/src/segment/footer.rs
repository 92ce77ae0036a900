//! The seal footer: the last frame of a sealed segment, listing every frame
//! (offset + header), so reopening indexes a sealed segment without a scan.
//! Its payload ends with the footer's own offset, so the footer is found
//! from the last 12 bytes of the file.

use super::frame::{
    decode_frame, decode_frame_header_body, frame_payload, FrameHeader, FrameKind,
    FRAME_HEADER_LEN, FRAME_TRAILER_LEN, MAX_PAYLOAD_BYTES,
};
use super::header::SEGMENT_HEADER_LEN;
use super::summary::{encode_summary, summary_bytes, SUMMARY_LEN_FIELD};
use crate::{FormatError, SliceKey};

/// Bytes per footer entry: frame offset (u64) ++ frame header bytes 0..48.
pub const FOOTER_ENTRY_LEN: usize = 56;
/// The bytes at the end of a sealed segment that locate the footer:
/// footer offset (u64, end of the footer payload) ++ the footer's trailer CRC.
pub const FOOTER_TAIL_LEN: usize = 8 + FRAME_TRAILER_LEN;

/// One data frame of a segment, as the index sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FooterEntry {
    pub offset: u64,
    pub header: FrameHeader,
}

/// The footer version a sealing store writes: 2 adds the key-sorted run
/// and the store's counters (ARCHITECTURE.md). Carried in the footer
/// frame header's `key.stream` (0 in version 1).
pub const FOOTER_VERSION_SORTED: u32 = 2;
/// Version 3 (what a sealing store writes) adds the summary open reads
/// instead of the whole footer (`segment::summary`).
pub const FOOTER_VERSION_SUMMARY: u32 = 3;
/// Bytes of the counters in a version-2 footer: 7 x u64.
pub const COUNTERS_LEN: usize = 56;

/// The store-wide frame counters behind `StoreStats`, as of a seal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub frames: u64,
    pub slice_frames: u64,
    pub meta_frames: u64,
    pub frame_bytes: u64,
    pub live_bytes: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

impl Counters {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.frames,
            self.slice_frames,
            self.meta_frames,
            self.frame_bytes,
            self.live_bytes,
            self.raw_bytes,
            self.stored_bytes,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Counters, FormatError> {
        let v = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let c = Counters {
            frames: v(0),
            slice_frames: v(1),
            meta_frames: v(2),
            frame_bytes: v(3),
            live_bytes: v(4),
            raw_bytes: v(5),
            stored_bytes: v(6),
        };
        if c.live_bytes > c.frame_bytes
            || c.slice_frames.checked_add(c.meta_frames) != Some(c.frames)
        {
            return Err(FormatError::new("seal footer counters are inconsistent"));
        }
        Ok(c)
    }
}

/// A sealed segment's footer: its frames in file order and, from version
/// 2, where its key-sorted run lies and the store's counters at the seal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedFooter {
    pub entries: Vec<FooterEntry>,
    pub sorted: Option<SortedSection>,
}

/// The key-sorted run of a version-2 footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortedSection {
    /// Segment offset of the first sorted entry.
    pub offset: u64,
    /// The entries (newest frame per key), ascending by key.
    pub entries: Vec<FooterEntry>,
    pub counters: Counters,
}

/// The newest slice frame (tombstones included) of every key in `entries`
/// (file order), ascending by key: a version-2 footer's sorted run.
pub fn sorted_run(entries: &[FooterEntry]) -> Vec<FooterEntry> {
    let mut run: Vec<FooterEntry> = entries
        .iter()
        .filter(|e| e.header.kind == FrameKind::Slice)
        .copied()
        .collect();
    // Stable: frames of one key stay in file order, so the last is newest.
    run.sort_by_key(|e| e.header.key);
    let mut newest: Vec<FooterEntry> = Vec::with_capacity(run.len());
    for e in run {
        match newest.last_mut() {
            Some(last) if last.header.key == e.header.key => *last = e,
            _ => newest.push(e),
        }
    }
    newest
}

fn footer_frame(
    entries: &[FooterEntry],
    seq: u64,
    offset: u64,
    sorted: Option<(&[FooterEntry], &Counters)>,
) -> Vec<u8> {
    let metas = entries
        .iter()
        .filter(|e| e.header.kind == FrameKind::Meta)
        .count();
    let summary_len = sorted.map_or(0, |(run, _)| summary_bytes(metas, run.len()));
    let payload_len = footer_payload_len(entries.len(), sorted.map(|(run, _)| (metas, run.len())));
    let header = FrameHeader {
        kind: FrameKind::SealFooter,
        flags: 0,
        seq,
        key: SliceKey {
            owner: 0,
            stream: if sorted.is_some() {
                FOOTER_VERSION_SUMMARY
            } else {
                0
            },
            seq: 0,
        },
        record_count: entries.len() as u32,
        raw_len: payload_len as u32,
        stored_len: payload_len as u32,
    };
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload_len + FRAME_TRAILER_LEN);
    out.extend_from_slice(&header.encode());
    let put = |out: &mut Vec<u8>, e: &FooterEntry| {
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.header.encode_body());
    };
    for e in entries {
        put(&mut out, e);
    }
    if let Some((run, counters)) = sorted {
        for e in run {
            put(&mut out, e);
        }
        out.extend_from_slice(&(run.len() as u64).to_le_bytes());
        counters.encode(&mut out);
        let summary = encode_summary(entries, run, counters, crc32fast::hash(&out));
        debug_assert_eq!(summary.len(), summary_len);
        out.extend_from_slice(&summary);
        out.extend_from_slice(&(summary.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The payload length of a footer of `entries` frames; with `sorted`
/// (meta frames, run entries), of version 3.
fn footer_payload_len(entries: usize, sorted: Option<(usize, usize)>) -> usize {
    let extra = sorted.map_or(0, |(metas, run)| {
        run * FOOTER_ENTRY_LEN + 8 + COUNTERS_LEN + summary_bytes(metas, run) + SUMMARY_LEN_FIELD
    });
    entries * FOOTER_ENTRY_LEN + extra + 8
}

/// The most bytes the seal footer (version 3) of a segment of `frames`
/// frames takes, whatever their kinds: what sealing it needs free
/// (`Engine::room_for`). About 112 bytes a frame: a footer entry, and a
/// sorted-run entry or a summary entry.
pub fn seal_footer_bound(frames: usize) -> u64 {
    let payload_len = footer_payload_len(frames, Some((frames, frames)));
    (FRAME_HEADER_LEN + payload_len + FRAME_TRAILER_LEN) as u64
}

/// Encodes a version-1 footer frame (header, payload, trailer) for a
/// segment whose next frame sequence is `seq` and whose footer starts at
/// `offset`. Kept for tests and fixtures; the store writes version 2.
pub fn encode_footer(entries: &[FooterEntry], seq: u64, offset: u64) -> Vec<u8> {
    footer_frame(entries, seq, offset, None)
}

/// Encodes a version-3 footer frame: the frames, the key-sorted run of
/// their slices, the store's `counters` as of this seal and the summary.
/// Returns the frame and the segment offset where the sorted run starts.
pub fn encode_sorted_footer(
    entries: &[FooterEntry],
    run: &[FooterEntry],
    counters: &Counters,
    seq: u64,
    offset: u64,
) -> (Vec<u8>, u64) {
    let frame = footer_frame(entries, seq, offset, Some((run, counters)));
    let run_offset = offset + (FRAME_HEADER_LEN + entries.len() * FOOTER_ENTRY_LEN) as u64;
    (frame, run_offset)
}

/// Reads the footer offset out of a sealed segment's last 12 bytes.
pub fn footer_offset_from_tail(tail: &[u8]) -> Result<u64, FormatError> {
    if tail.len() != FOOTER_TAIL_LEN {
        return Err(FormatError::new("footer tail must be 12 bytes"));
    }
    Ok(u64::from_le_bytes(tail[..8].try_into().expect("8 bytes")))
}

/// Decodes a footer frame: `bytes` runs from `footer_offset` to the end of
/// the segment. Checks that every entry lies inside the segment, in order.
pub fn decode_footer(bytes: &[u8], footer_offset: u64) -> Result<Vec<FooterEntry>, FormatError> {
    decode_sealed_footer(bytes, footer_offset).map(|f| f.entries)
}

/// `decode_footer` with a version-2 footer's sorted run and counters.
pub fn decode_sealed_footer(bytes: &[u8], footer_offset: u64) -> Result<SealedFooter, FormatError> {
    let header = decode_frame(bytes)?;
    if header.kind != FrameKind::SealFooter {
        return Err(FormatError::new("last frame is not a seal footer"));
    }
    if header.frame_len() != bytes.len() as u64 {
        return Err(FormatError::new("seal footer does not end the segment"));
    }
    let version = header.key.stream;
    let known = matches!(version, 0 | FOOTER_VERSION_SORTED | FOOTER_VERSION_SUMMARY);
    if header.key.owner != 0 || header.key.seq != 0 || !known {
        return Err(FormatError::new(format!(
            "seal footer version {version} is not known"
        )));
    }
    let payload = frame_payload(bytes, &header);
    let count = header.record_count as usize;
    let entries_len = count.checked_mul(FOOTER_ENTRY_LEN);
    let (entries_payload, rest) = match entries_len {
        Some(n) if version != 0 && n + 8 <= payload.len() => payload.split_at(n),
        Some(n) if n + 8 == payload.len() => payload.split_at(n),
        _ => {
            return Err(FormatError::new(
                "seal footer length does not match its entry count",
            ))
        }
    };
    let mut footer = SealedFooter {
        entries: decode_entries(entries_payload, &header, payload, footer_offset)?,
        sorted: None,
    };
    if version == 0 {
        return Ok(footer);
    }
    // Without the footer offset at the end; from version 3, without the
    // summary and its length either.
    let rest = &rest[..rest.len() - 8];
    let (sorted_payload, summary) = if version == FOOTER_VERSION_SUMMARY {
        split_summary(rest)?
    } else {
        (rest, &[][..])
    };
    let run_offset = footer_offset + (FRAME_HEADER_LEN + entries_payload.len()) as u64;
    let sorted = decode_sorted(sorted_payload, run_offset, footer_offset)?;
    let prefix_len = FRAME_HEADER_LEN + entries_payload.len() + sorted_payload.len();
    let prefix_crc = crc32fast::hash(&bytes[..prefix_len]);
    if version == FOOTER_VERSION_SUMMARY
        && encode_summary(
            &footer.entries,
            &sorted.entries,
            &sorted.counters,
            prefix_crc,
        ) != summary
    {
        return Err(FormatError::new(
            "seal footer summary does not match the footer",
        ));
    }
    footer.sorted = Some(sorted);
    Ok(footer)
}

/// Splits the sorted section of a version-3 footer from its summary (which
/// ends with its length).
fn split_summary(rest: &[u8]) -> Result<(&[u8], &[u8]), FormatError> {
    let bad = || FormatError::new("seal footer summary length out of range");
    let len_at = rest.len().checked_sub(SUMMARY_LEN_FIELD).ok_or_else(bad)?;
    let len = u32::from_le_bytes(rest[len_at..].try_into().expect("4 bytes")) as usize;
    let start = len_at.checked_sub(len).ok_or_else(bad)?;
    Ok((&rest[..start], &rest[start..len_at]))
}

/// The sorted section of a version-2 or -3 footer: `b` runs from the first
/// sorted entry to the end of the counters.
fn decode_sorted(
    b: &[u8],
    run_offset: u64,
    footer_offset: u64,
) -> Result<SortedSection, FormatError> {
    let tail = 8 + COUNTERS_LEN;
    let bad = || FormatError::new("seal footer sorted run does not match its count");
    let run_len = b.len().checked_sub(tail).ok_or_else(bad)?;
    let count = u64::from_le_bytes(b[run_len..run_len + 8].try_into().expect("8 bytes"));
    if usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(FOOTER_ENTRY_LEN))
        != Some(run_len)
    {
        return Err(bad());
    }
    let counters = Counters::decode(&b[run_len + 8..run_len + 8 + COUNTERS_LEN])?;
    let mut entries = Vec::with_capacity(count as usize);
    for (i, raw) in b[..run_len].chunks_exact(FOOTER_ENTRY_LEN).enumerate() {
        let e = decode_entry(raw)?;
        let fits = e
            .offset
            .checked_add(e.header.frame_len())
            .is_some_and(|end| end <= footer_offset && e.offset >= SEGMENT_HEADER_LEN as u64);
        let ordered = entries
            .last()
            .is_none_or(|prev: &FooterEntry| prev.header.key < e.header.key);
        if !fits || !ordered || e.header.kind != FrameKind::Slice {
            return Err(FormatError::new(format!(
                "seal footer sorted entry {i} is inconsistent"
            )));
        }
        entries.push(e);
    }
    Ok(SortedSection {
        offset: run_offset,
        entries,
        counters,
    })
}

/// One 56-byte entry: frame offset ++ header bytes 0..48.
pub fn decode_entry(raw: &[u8]) -> Result<FooterEntry, FormatError> {
    if raw.len() < FOOTER_ENTRY_LEN {
        return Err(FormatError::new("footer entry truncated"));
    }
    let offset = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
    let header = decode_frame_header_body(&raw[8..FOOTER_ENTRY_LEN])?;
    Ok(FooterEntry { offset, header })
}

/// The file-order entries of a footer, checked against the segment.
fn decode_entries(
    entries_payload: &[u8],
    header: &FrameHeader,
    payload: &[u8],
    footer_offset: u64,
) -> Result<Vec<FooterEntry>, FormatError> {
    let count = header.record_count as usize;
    if header.stored_len > MAX_PAYLOAD_BYTES {
        return Err(FormatError::new(
            "seal footer length does not match its entry count",
        ));
    }
    if header.seq != count as u64 {
        return Err(FormatError::new(
            "seal footer sequence does not match its entry count",
        ));
    }
    let stated = u64::from_le_bytes(payload[payload.len() - 8..].try_into().expect("8 bytes"));
    if stated != footer_offset {
        return Err(FormatError::new(
            "seal footer offset does not match its position",
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut next_offset = SEGMENT_HEADER_LEN as u64;
    for (i, raw) in entries_payload.chunks_exact(FOOTER_ENTRY_LEN).enumerate() {
        let FooterEntry { offset, header: h } = decode_entry(raw)?;
        let fits = offset
            .checked_add(h.frame_len())
            .is_some_and(|end| end <= footer_offset);
        if offset != next_offset || !fits || h.seq != i as u64 || h.kind == FrameKind::SealFooter {
            return Err(FormatError::new(format!(
                "seal footer entry {i} is inconsistent"
            )));
        }
        next_offset = offset + h.frame_len();
        entries.push(FooterEntry { offset, header: h });
    }
    if next_offset != footer_offset {
        return Err(FormatError::new(
            "seal footer entries do not cover the segment",
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64, kind: FrameKind) -> FooterEntry {
        let header = FrameHeader {
            kind,
            flags: 0,
            seq: n,
            key: SliceKey {
                owner: 1,
                stream: 0,
                seq: n,
            },
            record_count: 1,
            raw_len: 4,
            stored_len: 4,
        };
        FooterEntry {
            offset: 128 + 64 * n,
            header,
        }
    }

    /// What the room check counts for a seal is never less than the seal
    /// writes: all slices (a sorted-run entry each), all meta frames (a
    /// summary entry each), or a mix.
    #[test]
    fn the_seal_footer_bound_holds_for_every_mix_of_frames() {
        for frames in [0u64, 1, 127, 128, 129, 3000] {
            for meta_every in [1, 2, 3, u64::MAX] {
                let entries: Vec<FooterEntry> = (0..frames)
                    .map(|n| match n % meta_every == 0 {
                        true => entry(n, FrameKind::Meta),
                        false => entry(n, FrameKind::Slice),
                    })
                    .collect();
                let run = sorted_run(&entries);
                let (footer, _) =
                    encode_sorted_footer(&entries, &run, &Counters::default(), frames, 128);
                let bound = seal_footer_bound(frames as usize);
                assert!(
                    footer.len() as u64 <= bound,
                    "{frames} frames: {} > {bound}",
                    footer.len()
                );
            }
        }
    }
}
