//! Ids, lengths and counters read from the store's own files are checked:
//! a value no honest writer produces is corruption, never a panic, a wrap or
//! a file the store cannot name.

use std::path::Path;

use booster_store::format::{
    decode_segment_header, FrameHeader, FrameKind, FLAG_AES_GCM, FLAG_BATCH_END, MANIFEST_FILE_NAME,
};
use booster_store::{Batch, CompactionPlan, MasterKey, SliceKey, Store, StoreError, StoreOptions};

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 6,
        stream: 0,
        seq,
    }
}

fn opts(master_key: Option<MasterKey>) -> StoreOptions {
    StoreOptions {
        master_key,
        watermark_interval_ms: 0,
        reserve_bytes: 0,
        ..StoreOptions::default()
    }
}

struct KeepAll;

impl CompactionPlan for KeepAll {
    fn slice_is_live(&self, _: &SliceKey) -> bool {
        true
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

fn one_batch(dir: &Path, master: Option<MasterKey>, close: bool) {
    let (store, _) = Store::open(dir, opts(master)).unwrap();
    store
        .append(Batch::new().slice(key(0), &[b"a,b".as_slice()]))
        .unwrap();
    if close {
        store.close().unwrap();
    }
}

/// A frame that claims AES-GCM but holds fewer bytes than a tag: compaction
/// once subtracted the tag length from it and wrapped.
#[test]
fn an_encrypted_frame_shorter_than_its_tag_never_reaches_compaction() {
    let master = MasterKey([0x21; 32]);
    let dir = tempfile::tempdir().unwrap();
    one_batch(dir.path(), Some(master.clone()), false);
    let seg = dir.path().join("seg-0000000000000001.bseg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.truncate(128);
    let header = FrameHeader {
        kind: FrameKind::Slice,
        flags: FLAG_BATCH_END | FLAG_AES_GCM,
        seq: 0,
        key: key(9),
        record_count: 1,
        raw_len: 4,
        stored_len: 8,
    };
    let start = bytes.len();
    bytes.extend_from_slice(&header.encode());
    bytes.extend_from_slice(&[1u8; 8]);
    let crc = crc32fast::hash(&bytes[start..]);
    bytes.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();

    match Store::open(dir.path(), opts(Some(master))) {
        Err(e) => assert!(matches!(e, StoreError::Corrupt { .. }), "{e}"),
        Ok((store, _)) => {
            assert!(store.slices(6, 0).is_empty(), "the short frame was indexed");
            store.compact(&KeepAll).unwrap();
        }
    }
}

/// A segment id at the end of what a file name can carry leaves no id for
/// the next segment (whose file would be unnameable, so unaccounted for).
#[test]
fn a_segment_id_at_the_end_of_the_range_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    one_batch(dir.path(), None, true);
    let seg = dir.path().join("seg-0000000000000001.bseg");
    let mut bytes = std::fs::read(&seg).unwrap();
    let mut header = decode_segment_header(&bytes).unwrap();
    header.segment_id = 9_999_999_999_999_999;
    header.manifested = false;
    bytes[..128].copy_from_slice(&header.encode());
    std::fs::remove_file(&seg).unwrap();
    std::fs::remove_file(dir.path().join(MANIFEST_FILE_NAME)).unwrap();
    std::fs::write(dir.path().join("seg-9999999999999999.bseg"), &bytes).unwrap();
    match Store::open(dir.path(), opts(None)) {
        Err(StoreError::Corrupt { what, .. }) => {
            assert!(what.contains("no id for the next segment"), "{what}")
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("a store with no segment id left opened"),
    }
}
