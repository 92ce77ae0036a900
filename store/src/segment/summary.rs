//! The summary at the end of a version-3 seal footer: what open needs of a
//! sealed segment (its run's fences, the store's counters, its meta frames)
//! under its own CRC, so open reads a few bytes per segment instead of the
//! whole footer. Layout in ARCHITECTURE.md.

use super::footer::{
    Counters, FooterEntry, COUNTERS_LEN, FOOTER_ENTRY_LEN, FOOTER_VERSION_SUMMARY,
};
use super::frame::{decode_frame_header, FrameKind, FRAME_HEADER_LEN, FRAME_TRAILER_LEN};
use super::header::SEGMENT_HEADER_LEN;
use crate::{FormatError, SliceKey};

/// Entries per block of a sorted run: a fence (first key) per block.
pub const RUN_BLOCK_ENTRIES: usize = 128;
const KEY_LEN: usize = 20;
const META_ENTRY_LEN: usize = 24;
/// After the summary, before the footer offset: the summary's length.
pub const SUMMARY_LEN_FIELD: usize = 4;

/// A meta frame as the summary lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaEntry {
    pub offset: u64,
    pub stored_len: u32,
    pub record_count: u32,
    pub checkpoint: bool,
}

/// What open reads of a sealed segment with a version-3 footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FooterSummary {
    /// Data frames in the segment.
    pub frames: u64,
    /// Segment offset of the sorted run, and its entries.
    pub run_offset: u64,
    pub run_count: u64,
    pub counters: Counters,
    /// First key of each block of `RUN_BLOCK_ENTRIES` run entries.
    pub fences: Vec<SliceKey>,
    /// CRC32 of each block's bytes, checked when the block is read.
    pub block_crcs: Vec<u32>,
    /// The run's last key (all zero when the run is empty).
    pub last: SliceKey,
    pub metas: Vec<MetaEntry>,
}

fn put_key(out: &mut Vec<u8>, k: &SliceKey) {
    out.extend_from_slice(&k.owner.to_le_bytes());
    out.extend_from_slice(&k.stream.to_le_bytes());
    out.extend_from_slice(&k.seq.to_le_bytes());
}

fn key_at(b: &[u8]) -> SliceKey {
    SliceKey {
        owner: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
        stream: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
        seq: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
    }
}

/// The length of the summary of `metas` meta frames and a run of `run`
/// entries, its CRC included.
pub fn summary_bytes(metas: usize, run: usize) -> usize {
    8 + COUNTERS_LEN
        + 12
        + (KEY_LEN + 4) * run.div_ceil(RUN_BLOCK_ENTRIES)
        + KEY_LEN
        + META_ENTRY_LEN * metas
        + 4
}

/// The fences of a run: the first key of each block.
pub fn fences_of(run: &[FooterEntry]) -> Vec<SliceKey> {
    run.chunks(RUN_BLOCK_ENTRIES)
        .map(|block| block[0].header.key)
        .collect()
}

/// The CRC32 of each block of a run, over its bytes on disk.
pub fn block_crcs_of(run: &[FooterEntry]) -> Vec<u32> {
    run.chunks(RUN_BLOCK_ENTRIES)
        .map(|block| {
            let mut crc = crc32fast::Hasher::new();
            for e in block {
                crc.update(&e.offset.to_le_bytes());
                crc.update(&e.header.encode_body());
            }
            crc.finalize()
        })
        .collect()
}

/// The meta frames of `entries` (file order), as the summary lists them.
pub fn metas_of(entries: &[FooterEntry]) -> Vec<MetaEntry> {
    entries
        .iter()
        .filter(|e| e.header.kind == FrameKind::Meta)
        .map(|e| MetaEntry {
            offset: e.offset,
            stored_len: e.header.stored_len,
            record_count: e.header.record_count,
            checkpoint: e.header.is_checkpoint(),
        })
        .collect()
}

/// The summary bytes (with their CRC) for a segment's frames and run.
pub fn encode_summary(
    entries: &[FooterEntry],
    run: &[FooterEntry],
    counters: &Counters,
    prefix_crc: u32,
) -> Vec<u8> {
    let fences = fences_of(run);
    let crcs = block_crcs_of(run);
    let metas = metas_of(entries);
    let mut out = Vec::with_capacity(summary_bytes(metas.len(), run.len()));
    out.extend_from_slice(&(run.len() as u64).to_le_bytes());
    counters.encode(&mut out);
    out.extend_from_slice(&(fences.len() as u32).to_le_bytes());
    out.extend_from_slice(&(metas.len() as u32).to_le_bytes());
    out.extend_from_slice(&prefix_crc.to_le_bytes());
    for (f, crc) in fences.iter().zip(&crcs) {
        put_key(&mut out, f);
        out.extend_from_slice(&crc.to_le_bytes());
    }
    let zero = SliceKey {
        owner: 0,
        stream: 0,
        seq: 0,
    };
    put_key(&mut out, &run.last().map_or(zero, |e| e.header.key));
    for m in &metas {
        out.extend_from_slice(&m.offset.to_le_bytes());
        out.extend_from_slice(&m.stored_len.to_le_bytes());
        out.extend_from_slice(&m.record_count.to_le_bytes());
        out.push(u8::from(m.checkpoint));
        out.extend_from_slice(&[0; 7]);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes summary bytes (CRC last): run count, counters, fences, last
/// key, meta frames. Never panics; checks every count before allocating.
/// A summary's fields as decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedSummary {
    pub count: u64,
    pub counters: Counters,
    /// (first key, CRC32) of each block.
    pub fences: Vec<(SliceKey, u32)>,
    pub last: SliceKey,
    pub metas: Vec<MetaEntry>,
    /// CRC32 of the footer frame's bytes before the summary.
    pub prefix_crc: u32,
}

pub fn decode_summary(b: &[u8]) -> Result<DecodedSummary, FormatError> {
    let bad = |what: &str| FormatError::new(format!("seal footer summary: {what}"));
    let fixed = 8 + COUNTERS_LEN + 12;
    if b.len() < fixed + KEY_LEN + 4 {
        return Err(bad("too short"));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(bad("checksum mismatch"));
    }
    let count = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
    let counters = Counters::decode(&body[8..8 + COUNTERS_LEN])?;
    let at = 8 + COUNTERS_LEN;
    let fences_n = u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes")) as usize;
    let metas_n = u32::from_le_bytes(body[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
    let prefix_crc = u32::from_le_bytes(body[at + 8..at + 12].try_into().expect("4 bytes"));
    let expected = fences_n
        .checked_mul(KEY_LEN + 4)
        .and_then(|k| k.checked_add(KEY_LEN))
        .and_then(|k| {
            metas_n
                .checked_mul(META_ENTRY_LEN)
                .and_then(|m| m.checked_add(k))
        })
        .and_then(|v| v.checked_add(fixed));
    let blocks = count.div_ceil(RUN_BLOCK_ENTRIES as u64);
    if expected != Some(body.len()) || blocks != fences_n as u64 {
        return Err(bad("lengths do not match its counts"));
    }
    let keys_end = fixed + (KEY_LEN + 4) * fences_n;
    let fences: Vec<(SliceKey, u32)> = body[fixed..keys_end]
        .chunks_exact(KEY_LEN + 4)
        .map(|f| {
            let crc = u32::from_le_bytes(f[KEY_LEN..].try_into().expect("4 bytes"));
            (key_at(f), crc)
        })
        .collect();
    let last = key_at(&body[keys_end..keys_end + KEY_LEN]);
    if fences.windows(2).any(|w| w[0].0 >= w[1].0) || fences.last().is_some_and(|f| f.0 > last) {
        return Err(bad("fences out of order"));
    }
    let metas = body[keys_end + KEY_LEN..]
        .chunks_exact(META_ENTRY_LEN)
        .map(|m| MetaEntry {
            offset: u64::from_le_bytes(m[0..8].try_into().expect("8 bytes")),
            stored_len: u32::from_le_bytes(m[8..12].try_into().expect("4 bytes")),
            record_count: u32::from_le_bytes(m[12..16].try_into().expect("4 bytes")),
            checkpoint: m[16] != 0,
        })
        .collect();
    Ok(DecodedSummary {
        count,
        counters,
        fences,
        last,
        metas,
        prefix_crc,
    })
}

/// The summary of a sealed segment (`bytes`: the whole file) with a
/// version-3 footer, reading only the footer's header and its summary.
/// An error means: no such footer (an older version, a torn or damaged
/// one); the caller then reads the whole footer, or scans.
pub fn read_footer_summary(bytes: &[u8]) -> Result<FooterSummary, FormatError> {
    let bad = |what: &str| FormatError::new(format!("seal footer summary: {what}"));
    let len = bytes.len();
    let tail = SUMMARY_LEN_FIELD + 8 + FRAME_TRAILER_LEN;
    if len < SEGMENT_HEADER_LEN + FRAME_HEADER_LEN + tail {
        return Err(bad("segment too short"));
    }
    let footer_offset = u64::from_le_bytes(bytes[len - 12..len - 4].try_into().expect("8 bytes"));
    let off = usize::try_from(footer_offset)
        .ok()
        .filter(|o| {
            let end = o.checked_add(FRAME_HEADER_LEN + tail);
            *o >= SEGMENT_HEADER_LEN && end.is_some_and(|end| end <= len)
        })
        .ok_or_else(|| bad("footer offset out of range"))?;
    let header = decode_frame_header(&bytes[off..])?;
    if header.kind != FrameKind::SealFooter
        || header.key.stream != FOOTER_VERSION_SUMMARY
        || header.key.owner != 0
        || header.key.seq != 0
        || footer_offset + header.frame_len() != len as u64
    {
        return Err(bad("not a version-3 seal footer ending the segment"));
    }
    let payload_end = len - FRAME_TRAILER_LEN - 8;
    let summary_len = u32::from_le_bytes(
        bytes[payload_end - SUMMARY_LEN_FIELD..payload_end]
            .try_into()
            .expect("4 bytes"),
    ) as usize;
    let summary_end = payload_end - SUMMARY_LEN_FIELD;
    let payload_start = off + FRAME_HEADER_LEN;
    let summary_start = summary_end
        .checked_sub(summary_len)
        .filter(|s| *s >= payload_start)
        .ok_or_else(|| bad("length out of range"))?;
    let DecodedSummary {
        count: run_count,
        counters,
        fences,
        last,
        metas,
        prefix_crc,
    } = decode_summary(&bytes[summary_start..summary_end])?;
    // The trailer CRC covers the whole footer: from the CRC of the part
    // before the summary (which the summary holds) and the bytes from the
    // summary on, it is checked without reading that part. So a torn tail
    // (its last write cut short) is never taken for a seal.
    let mut whole =
        crc32fast::Hasher::new_with_initial_len(prefix_crc, (summary_start - off) as u64);
    let mut rest = crc32fast::Hasher::new();
    rest.update(&bytes[summary_start..len - FRAME_TRAILER_LEN]);
    whole.combine(&rest);
    let trailer = u32::from_le_bytes(
        bytes[len - FRAME_TRAILER_LEN..]
            .try_into()
            .expect("4 bytes"),
    );
    if whole.finalize() != trailer {
        return Err(bad("the footer's checksum does not match"));
    }
    let frames = u64::from(header.record_count);
    let run_offset = payload_start as u64 + frames * FOOTER_ENTRY_LEN as u64;
    let run_end = run_count
        .checked_mul(FOOTER_ENTRY_LEN as u64)
        .and_then(|r| r.checked_add(run_offset + 8 + COUNTERS_LEN as u64));
    if run_end != Some(summary_start as u64) {
        return Err(bad("does not match the footer's entry counts"));
    }
    let (fences, block_crcs) = fences.into_iter().unzip();
    Ok(FooterSummary {
        frames,
        run_offset,
        run_count,
        counters,
        fences,
        block_crcs,
        last,
        metas,
    })
}
