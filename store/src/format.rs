//! The on-disk format's decoders, public so fault tests can feed them
//! hostile bytes. Every decoder returns an error instead of panicking and
//! checks every length before allocating.

pub use crate::codec::decode_frame_payload;
pub use crate::manifest::{
    decode_manifest, manifest_mac_matches, Manifest, Watermark, MANIFEST_FILE_NAME,
};
pub use crate::records::{decode_records, SliceRecords};
pub use crate::segment::footer::{
    decode_entry, decode_footer, decode_sealed_footer, encode_footer, encode_sorted_footer,
    footer_offset_from_tail, sorted_run, Counters, FooterEntry, SealedFooter, SortedSection,
    FOOTER_ENTRY_LEN, FOOTER_TAIL_LEN, FOOTER_VERSION_SORTED, FOOTER_VERSION_SUMMARY,
};
pub use crate::segment::frame::{
    decode_frame, decode_frame_header, decode_frame_header_body, frame_len, frame_payload,
    FrameHeader, FrameKind, FLAG_AES_GCM, FLAG_BATCH_END, FLAG_CHECKPOINT, FLAG_TOMBSTONE,
    FLAG_ZSTD, FRAME_HEADER_LEN, FRAME_MAGIC, FRAME_TRAILER_LEN, MAX_PAYLOAD_BYTES,
};
pub use crate::segment::header::{
    decode_segment_header, CompactionGroup, SegmentHeader, FORMAT_VERSION, SEGMENT_HEADER_LEN,
    SEGMENT_MAGIC,
};
pub use crate::segment::scan::{
    read_sealed_entries, read_sealed_footer, scan_segment, SegmentScan,
};
pub use crate::segment::segment_file_name;

/// The segment files (`seg-*.bseg`) of a data directory, in id order.
pub fn segment_paths(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(crate::segment::parse_segment_file_name)
        })
        .collect();
    ids.sort_unstable();
    Ok(ids
        .into_iter()
        .map(|id| dir.join(crate::segment::segment_file_name(id)))
        .collect())
}
pub use crate::segment::summary::{
    decode_summary, read_footer_summary, FooterSummary, MetaEntry, RUN_BLOCK_ENTRIES,
};
