//! Real on-disk bytes for the hostile-input tests: a store is written through
//! the public API (slices that compress and slices that do not, meta records,
//! sealed segments, a compaction group), then its segment files are read back
//! and cut into frames, footers and headers.

use std::collections::BTreeMap;
use std::path::Path;

use booster_store::format::{
    decode_segment_header, read_sealed_entries, scan_segment, SegmentHeader, FRAME_HEADER_LEN,
    FRAME_TRAILER_LEN, SEGMENT_HEADER_LEN,
};
use booster_store::{Batch, CompactionPlan, MasterKey, SliceKey, Store, StoreOptions};

/// The owner every corpus slice is stored under.
pub const OWNER: u64 = 42;

/// One segment file of the corpus.
#[derive(Clone, Debug)]
pub struct SegmentFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub header: SegmentHeader,
}

/// One frame cut out of a segment, with the header of its segment.
#[derive(Clone, Debug)]
pub struct FrameSample {
    pub bytes: Vec<u8>,
    pub segment: SegmentHeader,
}

/// What was written, to compare against what reads back.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub slices: BTreeMap<SliceKey, Vec<Vec<u8>>>,
    pub meta: Vec<Vec<u8>>,
}

pub fn slice_key(stream: u32, seq: u64) -> SliceKey {
    SliceKey {
        owner: OWNER,
        stream,
        seq,
    }
}

/// Records that compress well (CSV-like) or not at all (pseudo-random).
fn records(seq: u64, compressible: bool) -> Vec<Vec<u8>> {
    (0..7u64)
        .map(|i| {
            if compressible {
                format!("{seq},{i},customer-{i}@example.com,ACTIVE,ACTIVE,ACTIVE").into_bytes()
            } else {
                let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i;
                (0..40)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            }
        })
        .collect()
}

struct KeepAll(Vec<Vec<u8>>);

impl CompactionPlan for KeepAll {
    fn slice_is_live(&self, _: &SliceKey) -> bool {
        true
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        self.0.clone()
    }
}

/// Writes a small store into `dir`: several sealed segments (small segment
/// size), slices of both kinds, meta records; `compact` first compacts the
/// early part so a compaction group is on disk too. Closes it (every
/// segment sealed) and returns what was written.
pub fn write_store(dir: &Path, key: Option<MasterKey>, compact: bool) -> Written {
    let opts = StoreOptions {
        segment_size_bytes: 1500,
        master_key: key,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir, opts).expect("open corpus store");
    let mut written = Written::default();
    let mut seq = 0;
    let mut batch_round = |store: &Store, written: &mut Written, rounds: u64| {
        for _ in 0..rounds {
            let k = slice_key(1, seq);
            let recs = records(seq, seq % 2 == 0);
            let meta = format!("{{\"t\":\"slice_done\",\"job\":{OWNER},\"slice\":{seq}}}");
            store
                .append(Batch::new().slice(k, &recs).meta(meta.clone().into_bytes()))
                .expect("append corpus batch");
            written.slices.insert(k, recs);
            written.meta.push(meta.into_bytes());
            seq += 1;
        }
    };
    batch_round(&store, &mut written, 6);
    if compact {
        let plan = KeepAll(written.meta.clone());
        store.compact(&plan).expect("compact corpus store");
    }
    batch_round(&store, &mut written, 6);
    store.close().expect("close corpus store");
    written
}

/// The manifest of `dir`: copy it with the segments, or the copy does not
/// open (its segments are unaccounted for).
pub fn read_manifest(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(booster_store::format::MANIFEST_FILE_NAME)).expect("read manifest")
}

/// The segment files of `dir`, in name (= id) order.
pub fn read_segments(dir: &Path) -> Vec<SegmentFile> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list corpus dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".bseg"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).expect("read segment");
            let header = decode_segment_header(&bytes).expect("corpus header decodes");
            SegmentFile {
                name,
                bytes,
                header,
            }
        })
        .collect()
}

/// Every data frame and every seal footer of the segments, cut out whole.
pub fn frames(segments: &[SegmentFile]) -> Vec<FrameSample> {
    let mut out = Vec::new();
    for seg in segments {
        let entries =
            read_sealed_entries(&seg.bytes).unwrap_or_else(|_| scan_segment(&seg.bytes).entries);
        let mut footer_at = SEGMENT_HEADER_LEN as u64;
        for e in entries {
            let end = e.offset + e.header.frame_len();
            out.push(FrameSample {
                bytes: seg.bytes[e.offset as usize..end as usize].to_vec(),
                segment: seg.header,
            });
            footer_at = end;
        }
        if (footer_at as usize) < seg.bytes.len() {
            out.push(FrameSample {
                bytes: seg.bytes[footer_at as usize..].to_vec(),
                segment: seg.header,
            });
        }
    }
    out
}

/// Recomputes a frame's header CRC and, when its stored length fits, its
/// trailer CRC, so mutated bytes get past the checksums into the decoders.
pub fn reseal_frame(b: &mut [u8]) {
    if b.len() < FRAME_HEADER_LEN {
        return;
    }
    let crc = crc32fast::hash(&b[..48]);
    b[48..52].copy_from_slice(&crc.to_le_bytes());
    let stored = u32::from_le_bytes(b[44..48].try_into().expect("4 bytes")) as usize;
    let end = FRAME_HEADER_LEN.saturating_add(stored);
    if end + FRAME_TRAILER_LEN <= b.len() {
        let crc = crc32fast::hash(&b[..end]);
        b[end..end + FRAME_TRAILER_LEN].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Recomputes a segment header's CRC.
pub fn reseal_segment_header(b: &mut [u8]) {
    if b.len() >= SEGMENT_HEADER_LEN {
        let crc = crc32fast::hash(&b[..124]);
        b[124..128].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Offsets of every frame (data frames and the seal footer) of a segment.
pub fn frame_offsets(segment: &[u8]) -> Vec<usize> {
    let entries = read_sealed_entries(segment).unwrap_or_else(|_| scan_segment(segment).entries);
    let mut out: Vec<usize> = entries.iter().map(|e| e.offset as usize).collect();
    if let Some(last) = entries.last() {
        out.push((last.offset + last.header.frame_len()) as usize);
    }
    out
}
