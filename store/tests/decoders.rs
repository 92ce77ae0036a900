//! Decoders never panic on hostile bytes: random bytes and damaged valid
//! encodings go through every public decoder.

use booster_store::format::{
    decode_footer, decode_frame, decode_frame_header, decode_frame_payload, decode_records,
    decode_segment_header, encode_footer, read_sealed_entries, scan_segment, CompactionGroup,
    FooterEntry, FrameHeader, FrameKind, SegmentHeader,
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

fn valid_footer() -> Vec<u8> {
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
    encode_footer(
        &[FooterEntry {
            offset: 128,
            header,
        }],
        1,
        128 + header.frame_len(),
    )
}

fn all_decoders(bytes: &[u8]) {
    let _ = decode_segment_header(bytes);
    let _ = decode_frame_header(bytes);
    let _ = decode_frame(bytes);
    let _ = decode_footer(bytes, 204);
    let _ = read_sealed_entries(bytes);
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
}

#[test]
fn a_valid_footer_decodes() {
    let footer = valid_footer();
    let entries = decode_footer(&footer, 204).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].offset, 128);
}
