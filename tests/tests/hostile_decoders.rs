//! Hostile bytes against every on-disk decoder: real frames, footers and
//! segment headers mutated by proptest (with and without re-sealed CRCs, so
//! mutations reach past the checksums), forged headers with hostile length
//! fields, and arbitrary bytes. Each case must return an error or a value,
//! never panic, and never make an allocation larger than its input (or the
//! length it claims, once that length passed the documented 256 MiB cap).
//!
//! Short by default (a few seconds); `BOOSTER_LONG=1` runs many more cases.

use std::sync::OnceLock;

use booster_store::format::{
    decode_footer, decode_frame, decode_frame_header, decode_frame_header_body,
    decode_frame_payload, decode_records, decode_segment_header, footer_offset_from_tail,
    frame_payload, read_sealed_entries, scan_segment, FrameKind, SegmentHeader, FLAG_ZSTD,
    FOOTER_TAIL_LEN, FRAME_HEADER_LEN, FRAME_MAGIC, MAX_PAYLOAD_BYTES, SEGMENT_HEADER_LEN,
};
use booster_store::MasterKey;
use booster_tests::alloc::{largest_allocation, PeakAlloc};
use booster_tests::corpus::{self, FrameSample, SegmentFile};
use booster_tests::rng::proptest_config;
use proptest::prelude::*;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const KEY: [u8; 32] = [7; 32];

struct Corpus {
    segments: Vec<SegmentFile>,
    frames: Vec<FrameSample>,
    encrypted_segments: Vec<SegmentFile>,
    encrypted_frames: Vec<FrameSample>,
}

fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let plain = tempfile::tempdir().unwrap();
        corpus::write_store(plain.path(), None, true);
        let segments = corpus::read_segments(plain.path());
        let enc = tempfile::tempdir().unwrap();
        corpus::write_store(enc.path(), Some(MasterKey(KEY)), true);
        let encrypted_segments = corpus::read_segments(enc.path());
        Corpus {
            frames: corpus::frames(&segments),
            encrypted_frames: corpus::frames(&encrypted_segments),
            segments,
            encrypted_segments,
        }
    })
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    SetByte {
        at: usize,
        value: u8,
    },
    /// A little-endian u32 at `at`: where length and count fields live.
    SetU32 {
        at: usize,
        value: u32,
    },
    SetU64 {
        at: usize,
        value: u64,
    },
    Truncate {
        len: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
}

/// u32 values that break length arithmetic: zero, one, the cap and around
/// it, the largest values, and random ones.
fn hostile_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(4),
        Just(MAX_PAYLOAD_BYTES - 1),
        Just(MAX_PAYLOAD_BYTES),
        Just(MAX_PAYLOAD_BYTES + 1),
        Just(u32::MAX / 4),
        Just(u32::MAX - 3),
        Just(u32::MAX),
        any::<u32>(),
    ]
}

fn hostile_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(SEGMENT_HEADER_LEN as u64),
        Just(u64::from(u32::MAX) + 1),
        Just(u64::MAX - 11),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Positions are taken modulo the target's length when applied.
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        // Length fields sit at 4-byte aligned offsets (36, 40, 44 in a frame header).
        4 => (any::<usize>(), hostile_u32()).prop_map(|(at, value)| Mutation::SetU32 { at, value }),
        2 => (any::<usize>(), hostile_u64()).prop_map(|(at, value)| Mutation::SetU64 { at, value }),
        1 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match m {
        Mutation::FlipBit { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::SetByte { at, value } => bytes[at % n] = *value,
        Mutation::SetU32 { at, value } => {
            // Aligned half the time, like the real fields.
            let at = if at % 2 == 0 {
                (at / 2 % n) & !3
            } else {
                at % n
            };
            for (i, b) in value.to_le_bytes().iter().enumerate() {
                if at + i < n {
                    bytes[at + i] = *b;
                }
            }
        }
        Mutation::SetU64 { at, value } => {
            let at = (at % n) & !3;
            for (i, b) in value.to_le_bytes().iter().enumerate() {
                if at + i < n {
                    bytes[at + i] = *b;
                }
            }
        }
        Mutation::Truncate { len } => bytes.truncate(len % n),
        Mutation::Insert { at, bytes: ins } => {
            let at = at % (n + 1);
            bytes.splice(at..at, ins.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let at = at % n;
            let end = (at + len).min(n);
            bytes.drain(at..end);
        }
    }
}

/// The most a decoder may allocate at once for `input`: proportional to the
/// input, plus the payload length the frame claims when it is compressed
/// (zstd output is sized from it; the header decoder caps it at 256 MiB).
fn allocation_bound(input: &[u8]) -> usize {
    let mut claimed = 0usize;
    if input.len() >= FRAME_HEADER_LEN && input[5] & FLAG_ZSTD != 0 {
        let raw_len = u32::from_le_bytes(input[40..44].try_into().unwrap());
        if raw_len <= MAX_PAYLOAD_BYTES {
            claimed = raw_len as usize;
        }
    }
    // Records decode into Vec<Vec<u8>>: up to 24 bytes of Vec per 4 input bytes.
    8 * (input.len() + claimed) + (1 << 20)
}

/// Every frame-level decoder on `bytes`; returns the largest allocation.
fn exercise_frame(bytes: &[u8], segment: &SegmentHeader, key: Option<&MasterKey>) -> usize {
    let ((), peak) = largest_allocation(|| {
        let _ = decode_frame_header(bytes);
        let _ = decode_frame_header_body(bytes);
        if let Ok(h) = decode_frame(bytes) {
            let payload = frame_payload(bytes, &h);
            assert_eq!(payload.len(), h.stored_len as usize);
            if h.kind == FrameKind::SealFooter {
                let _ = decode_footer(bytes, 1 << 20);
            }
        }
        if let Ok((h, raw)) = decode_frame_payload(bytes, segment, key) {
            assert_eq!(raw.len(), h.raw_len as usize, "payload length is checked");
            if h.kind == FrameKind::Slice {
                if let Ok(records) = decode_records(&raw, h.record_count) {
                    assert_eq!(records.len(), h.record_count as usize);
                }
            }
        }
    });
    let bound = allocation_bound(bytes);
    assert!(
        peak <= bound,
        "a decoder allocated {peak} bytes at once for a {}-byte frame (bound {bound})",
        bytes.len()
    );
    peak
}

/// Every segment-level decoder on `bytes`; returns the largest allocation.
fn exercise_segment(bytes: &[u8]) -> usize {
    let ((), peak) = largest_allocation(|| {
        let _ = decode_segment_header(bytes);
        let scan = scan_segment(bytes);
        assert!(scan.valid_end <= bytes.len() as u64 || bytes.len() < SEGMENT_HEADER_LEN);
        for e in &scan.entries {
            assert!(e.offset + e.header.frame_len() <= bytes.len() as u64);
        }
        if let Ok(entries) = read_sealed_entries(bytes) {
            for e in &entries {
                assert!(e.offset + e.header.frame_len() <= bytes.len() as u64);
            }
        }
        if bytes.len() >= FOOTER_TAIL_LEN {
            let tail = &bytes[bytes.len() - FOOTER_TAIL_LEN..];
            if let Ok(at) = footer_offset_from_tail(tail) {
                if let Ok(at_usize) = usize::try_from(at) {
                    if at_usize < bytes.len() {
                        let _ = decode_footer(&bytes[at_usize..], at);
                    }
                }
            }
        }
    });
    // Footer entries and scan entries are 64 bytes or so per 56+ input bytes.
    let bound = 8 * bytes.len() + (1 << 20);
    assert!(
        peak <= bound,
        "a segment decoder allocated {peak} bytes at once for {} bytes",
        bytes.len()
    );
    peak
}

/// Real table records: the rows of the checked-in v1 and v2 pages
/// (runtime/tests/fixtures/row-page-v*.bin) and a slice map.
fn table_corpus() -> &'static [Vec<u8>] {
    static RECORDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        use booster_runtime::table_format::slice_map::{encode, SliceMap, SlicePlace, SliceState};
        let mut out = Vec::new();
        for version in ["v1", "v2"] {
            let path = format!(
                "{}/../runtime/tests/fixtures/row-page-{version}.bin",
                env!("CARGO_MANIFEST_DIR")
            );
            let bytes = std::fs::read(path).unwrap();
            let mut at = 0;
            while at < bytes.len() {
                let n = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                out.push(bytes[at + 4..at + 4 + n].to_vec());
                at += 4 + n;
            }
        }
        let mut map = SliceMap::default();
        for s in 0..100 {
            let place = SlicePlace {
                first_record: 1 + s * 10,
                records: if s == 50 { 7 } else { 10 },
                line_first: Some(2 + s * 10),
            };
            let lines = (s == 60).then(|| std::sync::Arc::new(vec![3, 5, 9]));
            map.upload(s, place, lines, None);
        }
        for s in 0..40 {
            map.set_state(s, SliceState::Done);
        }
        map.set_state(40, SliceState::Failed);
        map.with_detail(40, |d| {
            d.expiries = 3;
            d.retries = 1;
        });
        map.with_detail(41, |d| d.retry_at_ms = Some(1_795_000_000_000));
        out.push(encode(&map));
        out
    })
}

fn cases(short: u32, long: u32) -> ProptestConfig {
    proptest_config("hostile_decoders", short, long)
}

proptest! {
    #![proptest_config(cases(1500, 100_000))]

    #[test]
    fn mutated_frames_never_panic_or_over_allocate(
        pick in any::<usize>(),
        encrypted in any::<bool>(),
        with_key in any::<bool>(),
        reseal in any::<bool>(),
        edits in prop::collection::vec(mutation(), 1..6),
    ) {
        let c = corpus();
        let pool = if encrypted { &c.encrypted_frames } else { &c.frames };
        let sample = &pool[pick % pool.len()];
        let mut bytes = sample.bytes.clone();
        for m in &edits {
            apply(&mut bytes, m);
        }
        if reseal {
            corpus::reseal_frame(&mut bytes);
        }
        let key = MasterKey(KEY);
        exercise_frame(&bytes, &sample.segment, with_key.then_some(&key));
    }

    #[test]
    fn mutated_segments_never_panic_or_over_allocate(
        pick in any::<usize>(),
        encrypted in any::<bool>(),
        reseal in any::<bool>(),
        edits in prop::collection::vec(mutation(), 1..8),
    ) {
        let c = corpus();
        let pool = if encrypted { &c.encrypted_segments } else { &c.segments };
        let original = &pool[pick % pool.len()].bytes;
        let mut bytes = original.clone();
        for m in &edits {
            apply(&mut bytes, m);
        }
        if reseal {
            // Re-seal the header and every frame where the original had one,
            // so footer and scan logic see lies with valid checksums.
            corpus::reseal_segment_header(&mut bytes);
            for at in corpus::frame_offsets(original) {
                if at < bytes.len() {
                    corpus::reseal_frame(&mut bytes[at..]);
                }
            }
        }
        exercise_segment(&bytes);
    }

    #[test]
    fn forged_frames_with_hostile_lengths_are_rejected_before_allocating(
        kind in prop_oneof![Just(1u8), Just(2), Just(3), any::<u8>()],
        flags in prop_oneof![Just(0u8), Just(1), Just(2), Just(3), Just(4), Just(7), any::<u8>()],
        record_count in hostile_u32(),
        raw_len in hostile_u32(),
        stored_len in hostile_u32(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        // A header whose CRCs are right but whose lengths lie.
        let mut b = vec![0u8; FRAME_HEADER_LEN];
        b[..4].copy_from_slice(&FRAME_MAGIC);
        b[4] = kind;
        b[5] = flags;
        b[36..40].copy_from_slice(&record_count.to_le_bytes());
        b[40..44].copy_from_slice(&raw_len.to_le_bytes());
        b[44..48].copy_from_slice(&stored_len.to_le_bytes());
        b.extend_from_slice(&body);
        b.extend_from_slice(&[0; 4]);
        corpus::reseal_frame(&mut b);
        let segment = corpus().segments[0].header;
        let key = MasterKey(KEY);
        exercise_frame(&b, &segment, None);
        exercise_frame(&b, &segment, Some(&key));
        // The same body claimed as a whole record payload.
        let ((), peak) = largest_allocation(|| {
            let _ = decode_records(&body, record_count);
        });
        prop_assert!(peak <= 8 * body.len() + 4096, "decode_records allocated {peak} for {} bytes", body.len());
    }

    /// The job table's records (issue 12): a row page, each row, a slice
    /// map, mutated, decode to an error or to some valid value, never a
    /// panic or an allocation out of proportion to the input.
    #[test]
    fn mutated_table_records_never_panic_or_over_allocate(
        pick in any::<usize>(),
        edits in prop::collection::vec(mutation(), 1..6),
    ) {
        use booster_runtime::table_format::{page, row, slice_map};
        let records = table_corpus();
        let mut bytes = records[pick % records.len()].clone();
        for m in &edits {
            apply(&mut bytes, m);
        }
        let bound = 8 * bytes.len() + (1 << 16);
        let ((), peak) = largest_allocation(|| {
            let _ = row::decode(&bytes, 2);
            let _ = slice_map::decode(&bytes);
            let _ = page::decode(2, std::slice::from_ref(&bytes));
        });
        prop_assert!(peak <= bound, "allocated {peak} for {} bytes", bytes.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let segment = corpus().segments[0].header;
        let key = MasterKey(KEY);
        exercise_frame(&bytes, &segment, Some(&key));
        exercise_segment(&bytes);
        let _ = decode_records(&bytes, u32::MAX);
    }
}

/// The allocation probe itself works: without this, every bound above
/// could pass vacuously.
#[test]
fn the_allocation_probe_sees_a_large_allocation() {
    let (v, peak) = largest_allocation(|| vec![1u8; 10 << 20]);
    assert_eq!(v.len(), 10 << 20);
    assert!(peak >= 10 << 20, "probe saw only {peak} bytes");
    let ((), small) = largest_allocation(|| {});
    assert!(small < 10 << 20, "probe does not reset: {small}");
}

/// The corpus really is what the tests think: every frame decodes before
/// it is mutated (a test whose inputs never decode proves nothing).
#[test]
fn corpus_frames_decode_untouched() {
    let c = corpus();
    assert!(c.segments.len() >= 3, "expected several sealed segments");
    assert!(
        c.segments.iter().any(|s| s.header.group.group_id != 0),
        "expected a compaction group in the corpus"
    );
    let key = MasterKey(KEY);
    let mut kinds = std::collections::BTreeSet::new();
    for f in c.frames.iter().chain(&c.encrypted_frames) {
        let h = decode_frame(&f.bytes).expect("corpus frame decodes");
        kinds.insert(format!("{:?}", h.kind));
        if h.kind != FrameKind::SealFooter {
            decode_frame_payload(&f.bytes, &f.segment, Some(&key)).expect("corpus payload decodes");
        }
    }
    assert_eq!(
        kinds.len(),
        3,
        "slices, meta records and footers: {kinds:?}"
    );
    for s in c.segments.iter().chain(&c.encrypted_segments) {
        read_sealed_entries(&s.bytes).expect("corpus segment is sealed");
    }
}

/// A frame that claims a huge record count in a tiny payload is refused
/// without allocating for the count: checked here on a real, re-sealed frame.
#[test]
fn a_huge_record_count_in_a_real_frame_is_rejected_without_allocating() {
    let c = corpus();
    let sample = c
        .frames
        .iter()
        .find(|f| decode_frame(&f.bytes).unwrap().kind == FrameKind::Slice)
        .unwrap();
    let mut bytes = sample.bytes.clone();
    bytes[36..40].copy_from_slice(&u32::MAX.to_le_bytes());
    corpus::reseal_frame(&mut bytes);
    let (result, peak) = largest_allocation(|| {
        let (h, raw) = decode_frame_payload(&bytes, &sample.segment, None)?;
        decode_records(&raw, h.record_count)
    });
    assert!(result.is_err(), "a lying record count must be an error");
    assert!(peak < 1 << 20, "allocated {peak} bytes for a lying count");
}
