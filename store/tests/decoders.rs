//! Decoders never panic on hostile bytes: random bytes and damaged valid
//! encodings go through every public decoder.

use booster_store::format::{
    decode_entry, decode_footer, decode_frame, decode_frame_header, decode_frame_payload,
    decode_records, decode_sealed_footer, decode_segment_header, decode_summary, encode_footer,
    encode_sorted_footer, read_footer_summary, read_sealed_entries, read_sealed_footer,
    scan_segment, sorted_run, CompactionGroup, Counters, FooterEntry, FrameHeader, FrameKind,
    SegmentHeader,
};
use booster_store::{MasterKey, SliceKey};
use proptest::prelude::*;

mod common;

fn valid_segment_header() -> SegmentHeader {
    SegmentHeader {
        segment_id: 3,
        encrypted: true,
        key_id: MasterKey([1; 32]).key_id(),
        salt: [2; 32],
        group: CompactionGroup::default(),
        manifested: true,
    }
}

fn valid_entry() -> FooterEntry {
    let header = FrameHeader {
        kind: FrameKind::Slice,
        flags: 1,
        seq: 0,
        key: SliceKey {
            owner: 1,
            stream: 2,
            seq: 3,
        },
        record_count: 4,
        raw_len: 10,
        stored_len: 20,
    };
    FooterEntry {
        offset: 128,
        header,
    }
}

fn valid_footer() -> Vec<u8> {
    let e = valid_entry();
    encode_footer(&[e], 1, 128 + e.header.frame_len())
}

/// A segment header, one data frame's worth of bytes and a version-3
/// footer (sorted run, counters, summary) after it.
fn valid_v3_segment() -> Vec<u8> {
    let e = valid_entry();
    let counters = Counters {
        frames: 1,
        slice_frames: 1,
        frame_bytes: e.header.frame_len(),
        live_bytes: e.header.frame_len(),
        ..Counters::default()
    };
    let entries = [e];
    let (footer, _) = encode_sorted_footer(
        &entries,
        &sorted_run(&entries),
        &counters,
        1,
        128 + e.header.frame_len(),
    );
    let mut seg = valid_segment_header().encode().to_vec();
    seg.resize(128 + e.header.frame_len() as usize, 0);
    seg.extend_from_slice(&footer);
    seg
}

fn all_decoders(bytes: &[u8]) {
    let _ = decode_segment_header(bytes);
    let _ = decode_frame_header(bytes);
    let _ = decode_frame(bytes);
    let _ = decode_footer(bytes, 204);
    let _ = decode_sealed_footer(bytes, 204);
    let _ = read_sealed_entries(bytes);
    let _ = read_sealed_footer(bytes);
    let _ = read_footer_summary(bytes);
    let _ = decode_summary(bytes);
    let _ = decode_entry(bytes);
    let _ = scan_segment(bytes);
    for count in [0, 1, 2, 1000, u32::MAX] {
        let _ = decode_records(bytes, count);
    }
    let key = MasterKey([1; 32]);
    let _ = decode_frame_payload(bytes, &valid_segment_header(), Some(&key));
    let _ = decode_frame_payload(bytes, &valid_segment_header(), None);
}

proptest! {
    #![proptest_config(common::proptest_config("store_decoders", 2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        all_decoders(&bytes);
    }

    #[test]
    fn damaged_encodings_never_panic(pos in 0usize..400, val in any::<u8>(), cut in 0usize..400) {
        let mut seg = valid_segment_header().encode().to_vec();
        seg.extend_from_slice(&valid_footer());
        if pos < seg.len() {
            seg[pos] = val;
        }
        seg.truncate(cut.max(1).min(seg.len()));
        all_decoders(&seg);
        all_decoders(&seg[seg.len().min(128)..]);
    }

    #[test]
    fn damaged_version_3_footers_never_panic(pos in 0usize..700, val in any::<u8>(), cut in 0usize..700) {
        let mut seg = valid_v3_segment();
        if pos < seg.len() {
            seg[pos] = val;
        }
        seg.truncate(cut.max(1).min(seg.len()));
        all_decoders(&seg);
        all_decoders(&seg[seg.len().min(204)..]);
    }
}

#[test]
fn a_valid_version_3_footer_decodes_whole_and_by_its_summary() {
    let seg = valid_v3_segment();
    let footer = read_sealed_footer(&seg).unwrap();
    assert_eq!(footer.entries, vec![valid_entry()]);
    assert_eq!(footer.sorted.unwrap().entries, vec![valid_entry()]);
    let summary = read_footer_summary(&seg).unwrap();
    assert_eq!((summary.frames, summary.run_count), (1, 1));
    assert_eq!(summary.fences, vec![valid_entry().header.key]);
    assert_eq!(summary.last, valid_entry().header.key);
}

#[test]
fn a_valid_footer_decodes() {
    let footer = valid_footer();
    let entries = decode_footer(&footer, 204).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].offset, 128);
}

/// A footer offset near the top of u64 (torn garbage where a sealed
/// segment's last bytes go) is refused, never an overflow: the offset
/// plus the footer's header and tail overflowed in `read_footer_summary`
/// (a panic in debug, an index past the end in release). Found by the
/// power-loss test of a sweeping checkpoint torn at its last write.
#[test]
fn a_footer_offset_near_the_top_of_u64_is_refused_never_an_overflow() {
    let mut seg = valid_v3_segment();
    let len = seg.len();
    for offset in [u64::MAX, u64::MAX - 60, u64::MAX / 2 + 1] {
        seg[len - 12..len - 4].copy_from_slice(&offset.to_le_bytes());
        assert!(read_footer_summary(&seg).is_err(), "offset {offset}");
        all_decoders(&seg);
        // A footer decoded as if it sat at that offset.
        assert!(
            decode_sealed_footer(&valid_footer(), offset).is_err(),
            "offset {offset}"
        );
    }
}
