//! A data directory whose segment files were damaged or forged: opening,
//! reading and verifying it must never panic, and a damaged byte must never
//! come back as a different record: every slice reads back as written or
//! fails with an error (CRC32 without the key, CRC32 + AES-GCM tag with it).
//!
//! Short by default; `BOOSTER_LONG=1` runs many more cases.

use std::sync::OnceLock;

use booster_store::{MasterKey, Store, StoreOptions};
use booster_tests::corpus::{self, SegmentFile, Written};
use booster_tests::rng::proptest_config;
use proptest::prelude::*;

const KEY: [u8; 32] = [9; 32];

struct Original {
    plain: (Vec<SegmentFile>, Written),
    encrypted: (Vec<SegmentFile>, Written),
    /// The MANIFEST of each, copied along so the damaged copies open.
    manifests: (Vec<u8>, Vec<u8>),
}

fn original() -> &'static Original {
    static ORIGINAL: OnceLock<Original> = OnceLock::new();
    ORIGINAL.get_or_init(|| {
        let plain = tempfile::tempdir().unwrap();
        let w = corpus::write_store(plain.path(), None, true);
        let enc = tempfile::tempdir().unwrap();
        let we = corpus::write_store(enc.path(), Some(MasterKey(KEY)), true);
        Original {
            plain: (corpus::read_segments(plain.path()), w),
            encrypted: (corpus::read_segments(enc.path()), we),
            manifests: (
                corpus::read_manifest(plain.path()),
                corpus::read_manifest(enc.path()),
            ),
        }
    })
}

/// Opens the damaged directory and reads everything; asserts that nothing
/// reads back different from what was written.
fn open_and_read(dir: &std::path::Path, key: Option<MasterKey>, written: &Written) {
    let _ = Store::verify_dir(dir, key.as_ref());
    let opts = StoreOptions {
        master_key: key,
        ..StoreOptions::default()
    };
    let Ok((store, _)) = Store::open(dir, opts) else {
        return;
    };
    for (k, records) in &written.slices {
        // Ok(None) (a torn tail dropped) and Err (damage found) are both fine.
        if let Ok(Some(got)) = store.read_slice(k) {
            assert_eq!(&got, records, "slice {k:?} read back changed");
        }
    }
    if let Ok(meta) = store.meta_records() {
        for m in &meta {
            assert!(
                written.meta.contains(m),
                "a meta record read back changed: {m:?}"
            );
        }
    }
    let _ = store.verify();
}

proptest! {
    #![proptest_config(proptest_config("hostile_store_files", 48, 5_000))]

    #[test]
    fn damaged_segments_never_panic_and_never_read_back_changed(
        encrypted in any::<bool>(),
        damage in prop::collection::vec((any::<usize>(), any::<usize>(), 1u8..=255), 1..5),
    ) {
        let o = original();
        let (segments, written) = if encrypted { &o.encrypted } else { &o.plain };
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<Vec<u8>> = segments.iter().map(|s| s.bytes.clone()).collect();
        for (which, at, xor) in &damage {
            let f = &mut files[which % segments.len()];
            let n = f.len();
            f[at % n] ^= xor;
        }
        for (s, bytes) in segments.iter().zip(&files) {
            std::fs::write(dir.path().join(&s.name), bytes).unwrap();
        }
        let manifest = if encrypted { &o.manifests.1 } else { &o.manifests.0 };
        std::fs::write(dir.path().join("MANIFEST"), manifest).unwrap();
        open_and_read(dir.path(), encrypted.then_some(MasterKey(KEY)), written);
    }

    /// With the key, even damage whose CRCs were recomputed (a forger, not
    /// bit rot) never reads back as different records: the GCM tag binds
    /// the segment id, the frame header and the payload.
    #[test]
    fn forged_encrypted_frames_never_read_back_changed(
        damage in prop::collection::vec((any::<usize>(), any::<usize>(), 1u8..=255), 1..4),
    ) {
        let o = original();
        let (segments, written) = &o.encrypted;
        let dir = tempfile::tempdir().unwrap();
        let mut files: Vec<Vec<u8>> = segments.iter().map(|s| s.bytes.clone()).collect();
        for (which, at, xor) in &damage {
            let i = which % segments.len();
            let offsets = corpus::frame_offsets(&segments[i].bytes);
            // Damage data frames only (not the unencrypted footer index).
            let data: Vec<usize> = offsets[..offsets.len().saturating_sub(1)].to_vec();
            if data.is_empty() {
                continue;
            }
            let start = data[at % data.len()];
            let f = &mut files[i];
            let len = booster_store::format::decode_frame(&f[start..]).map(|h| h.frame_len() as usize).unwrap_or(60);
            let pos = start + (at / 7) % len.min(f.len() - start);
            // Leave the kind, flags and length fields alone so the frame stays
            // the same size; change key fields, counters and payload.
            if (4..8).contains(&(pos - start)) || (36..52).contains(&(pos - start)) {
                continue;
            }
            f[pos] ^= xor;
            corpus::reseal_frame(&mut f[start..]);
        }
        for (s, bytes) in segments.iter().zip(&files) {
            std::fs::write(dir.path().join(&s.name), bytes).unwrap();
        }
        std::fs::write(dir.path().join("MANIFEST"), &o.manifests.1).unwrap();
        open_and_read(dir.path(), Some(MasterKey(KEY)), written);
    }
}

/// The copies above start from a directory that opens: segments and
/// MANIFEST, every slice readable (so a case that fails to open is damage,
/// not a bad copy).
#[test]
fn an_undamaged_copy_opens_and_reads_back_whole() {
    let o = original();
    for (encrypted, (segments, written), manifest) in [
        (false, &o.plain, &o.manifests.0),
        (true, &o.encrypted, &o.manifests.1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        for s in segments {
            std::fs::write(dir.path().join(&s.name), &s.bytes).unwrap();
        }
        std::fs::write(dir.path().join("MANIFEST"), manifest).unwrap();
        let opts = StoreOptions {
            master_key: encrypted.then_some(MasterKey(KEY)),
            ..StoreOptions::default()
        };
        let (store, _) = Store::open(dir.path(), opts).unwrap();
        for (k, records) in &written.slices {
            assert_eq!(&store.read_slice(k).unwrap().unwrap(), records);
        }
    }
}

/// Every flipped byte of the MANIFEST: open fails with an error or opens
/// whole; it never panics, deletes a segment or reads back changed.
#[test]
fn a_damaged_manifest_never_panics_deletes_or_reads_back_changed() {
    let o = original();
    let (segments, written) = &o.encrypted;
    let manifest = &o.manifests.1;
    for at in 0..manifest.len() {
        let dir = tempfile::tempdir().unwrap();
        for s in segments {
            std::fs::write(dir.path().join(&s.name), &s.bytes).unwrap();
        }
        let mut bad = manifest.clone();
        bad[at] ^= 0x20;
        std::fs::write(dir.path().join("MANIFEST"), &bad).unwrap();
        open_and_read(dir.path(), Some(MasterKey(KEY)), written);
        for s in segments {
            assert!(
                dir.path().join(&s.name).exists(),
                "byte {at}: {} was deleted",
                s.name
            );
        }
    }
}
