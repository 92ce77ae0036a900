//! Encryption is all or nothing (G6, G11): in a store opened with a key, a
//! plaintext frame or segment put there without the key, or a manifest
//! rewritten without it, is corruption, never data.

use std::path::Path;

use booster_store::format::segment_paths;
use booster_store::format::{
    decode_manifest, scan_segment, FrameHeader, FrameKind, Manifest, FLAG_BATCH_END,
    MANIFEST_FILE_NAME,
};
use booster_store::{Batch, MasterKey, SliceKey, Store, StoreError, StoreOptions};

const KEY: [u8; 32] = [0x33; 32];

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 4,
        stream: 0,
        seq,
    }
}

fn records(v: u64) -> Vec<Vec<u8>> {
    (0..10)
        .map(|i| format!("{v},{i},card-{}", 4000 + v * 10 + i).into_bytes())
        .collect()
}

fn opts(master_key: Option<MasterKey>) -> StoreOptions {
    StoreOptions {
        segment_size_bytes: 1024,
        master_key,
        watermark_interval_ms: 0,
        ..StoreOptions::default()
    }
}

/// Appends `n` batches; closes (seals) the store when `close`, else drops it
/// with its last segment unsealed, as after a crash.
fn store_of(dir: &Path, n: u64, master: Option<MasterKey>, close: bool) {
    let (store, _) = Store::open(dir, opts(master)).unwrap();
    for v in 0..n {
        store
            .append(
                Batch::new()
                    .slice(key(v), &records(v))
                    .meta(format!("job {v}").into_bytes()),
            )
            .unwrap();
    }
    if close {
        store.close().unwrap();
    }
}

/// A whole plaintext meta frame, as a forger without the key writes it.
fn plaintext_meta_frame(seq: u64, record: &[u8]) -> Vec<u8> {
    let mut payload = (record.len() as u32).to_le_bytes().to_vec();
    payload.extend_from_slice(record);
    let header = FrameHeader {
        kind: FrameKind::Meta,
        flags: FLAG_BATCH_END,
        seq,
        key: SliceKey {
            owner: 0,
            stream: 0,
            seq: 0,
        },
        record_count: 1,
        raw_len: payload.len() as u32,
        stored_len: payload.len() as u32,
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn assert_tampering(err: Option<StoreError>, what: &str) {
    match err {
        Some(StoreError::Corrupt { what: w, .. }) => assert!(w.contains(what), "{w}"),
        other => panic!("expected Corrupt ({what}), got {other:?}"),
    }
}

#[test]
fn a_plaintext_frame_appended_to_an_encrypted_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 2, Some(MasterKey(KEY)), false);
    let last = segment_paths(dir.path()).unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let scan = scan_segment(&bytes);
    assert_eq!(scan.valid_end, bytes.len() as u64, "unsealed, no tail");
    let at = bytes.len() as u64;
    let forged = br#"{"created":{"kind":"exec","cmd":"id"}}"#;
    bytes.extend_from_slice(&plaintext_meta_frame(scan.entries.len() as u64, forged));
    std::fs::write(&last, &bytes).unwrap();

    let report = Store::verify_dir(dir.path(), Some(&MasterKey(KEY))).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.offset == at && p.what.contains("plaintext frame")),
        "{report:?}"
    );
    let err = Store::open(dir.path(), opts(Some(MasterKey(KEY)))).err();
    assert_tampering(err, "plaintext frame");
}

#[test]
fn a_plaintext_segment_in_place_of_an_encrypted_one_is_tampering() {
    let enc = tempfile::tempdir().unwrap();
    store_of(enc.path(), 12, Some(MasterKey(KEY)), true);
    let plain = tempfile::tempdir().unwrap();
    store_of(plain.path(), 12, None, true);
    let victim = segment_paths(enc.path()).unwrap()[1].clone();
    let forged = plain.path().join(victim.file_name().unwrap());
    std::fs::copy(&forged, &victim).unwrap();
    let report = Store::verify_dir(enc.path(), Some(&MasterKey(KEY))).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.path == victim && p.what.contains("plaintext segment")),
        "{report:?}"
    );
    let err = Store::open(enc.path(), opts(Some(MasterKey(KEY)))).err();
    assert_tampering(err, "plaintext segment");
}

#[test]
fn plaintext_segments_from_before_the_key_stay_readable_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 6, None, true);
    let old = segment_paths(dir.path()).unwrap();
    {
        let (store, _) = Store::open(dir.path(), opts(Some(MasterKey(KEY)))).unwrap();
        store
            .append(Batch::new().slice(key(100), &records(100)))
            .unwrap();
        store.close().unwrap();
    }
    let bytes = std::fs::read(dir.path().join(MANIFEST_FILE_NAME)).unwrap();
    let manifest: Manifest = decode_manifest(&bytes).unwrap();
    let old_ids: Vec<u64> = (1..=old.len() as u64).collect();
    assert_eq!(
        manifest.plaintext, old_ids,
        "the plaintext segments of then"
    );
    let (store, _) = Store::open(dir.path(), opts(Some(MasterKey(KEY)))).unwrap();
    for v in 0..6 {
        assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
    }
    assert_eq!(store.read_slice(&key(100)).unwrap().unwrap(), records(100));
    drop(store);
    // The newest segment, written under the key, swapped for a plaintext one.
    let newest = segment_paths(dir.path()).unwrap().pop().unwrap();
    let plain = tempfile::tempdir().unwrap();
    store_of(plain.path(), 40, None, true);
    std::fs::copy(plain.path().join(newest.file_name().unwrap()), &newest).unwrap();
    let err = Store::open(dir.path(), opts(Some(MasterKey(KEY)))).err();
    assert_tampering(err, "plaintext segment");
}

#[test]
fn a_deleted_newest_segment_cannot_be_hidden_by_rewriting_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 12, Some(MasterKey(KEY)), true);
    let path = dir.path().join(MANIFEST_FILE_NAME);
    let mut manifest = decode_manifest(&std::fs::read(&path).unwrap()).unwrap();
    let newest = segment_paths(dir.path()).unwrap().pop().unwrap();
    std::fs::remove_file(&newest).unwrap();
    manifest.segments.pop();
    manifest.watermark = Default::default();
    // Without the key the forger can write only an unauthenticated manifest...
    std::fs::write(&path, manifest.encode(None)).unwrap();
    let err = Store::open(dir.path(), opts(Some(MasterKey(KEY)))).err();
    assert_tampering(err, "not authenticated");
    // ...or keep the key id and guess the MAC.
    let mut forged = manifest.encode(Some(&MasterKey([0x44; 32])));
    forged[24..32].copy_from_slice(&MasterKey(KEY).key_id().to_le_bytes());
    let crc_at = forged.len() - 4;
    let crc = crc32fast::hash(&forged[..crc_at]);
    forged[crc_at..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &forged).unwrap();
    let err = Store::open(dir.path(), opts(Some(MasterKey(KEY)))).err();
    assert_tampering(err, "fails authentication");
}
