//! Checked-in segments of format version 1 (store/tests/fixtures/) must keep
//! opening with the same contents. Regenerate them only on purpose, for a new
//! format version: `cargo test -p booster-store --test fixtures -- --ignored`.

use std::path::{Path, PathBuf};

use booster_store::{Batch, CompactionPlan, MasterKey, SliceKey, Store, StoreOptions};

const FIXTURE_KEY: [u8; 32] = [0x42; 32];

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 77,
        stream: 2,
        seq,
    }
}

fn records(v: u64) -> Vec<Vec<u8>> {
    (0..25)
        .map(|i| format!("{v},{i},fixture-customer-{i},{}.50", v + i).into_bytes())
        .collect()
}

fn opts(encrypted: bool) -> StoreOptions {
    StoreOptions {
        segment_size_bytes: 1024,
        zstd_level: 1,
        master_key: encrypted.then_some(MasterKey(FIXTURE_KEY)),
        watermark_interval_ms: 0,
        reserve_bytes: 0,
    }
}

struct DropOdd;

impl CompactionPlan for DropOdd {
    fn slice_is_live(&self, key: &SliceKey) -> bool {
        key.seq & 1 == 0
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        vec![b"compacted".to_vec()]
    }
}

/// Slices 0..6 (slice 2 written twice), meta, a compaction dropping odd
/// slices, then slices 10..13 and meta "tail".
fn write_fixture(dir: &Path, encrypted: bool) {
    let (store, _) = Store::open(dir, opts(encrypted)).unwrap();
    for v in 0..6 {
        store
            .append(
                Batch::new()
                    .slice(key(v), &records(v))
                    .meta(format!("m{v}").into_bytes()),
            )
            .unwrap();
    }
    store
        .append(Batch::new().slice(key(2), &records(102)))
        .unwrap();
    store.compact(&DropOdd).unwrap();
    for v in 10..13 {
        store
            .append(Batch::new().slice(key(v), &records(v)))
            .unwrap();
    }
    store.append(Batch::new().meta(b"tail".to_vec())).unwrap();
    store.close().unwrap();
}

fn check_fixture(name: &str, encrypted: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(fixture_dir(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
        copied += 1;
    }
    assert!(copied >= 2, "fixture {name} is missing");
    let (store, report) = Store::open(tmp.path(), opts(encrypted)).unwrap();
    assert!(report.truncated.is_empty(), "{report:?}");
    let seqs: Vec<u64> = store.slices(77, 2).iter().map(|i| i.key.seq).collect();
    assert_eq!(seqs, vec![0, 2, 4, 10, 11, 12]);
    assert_eq!(store.read_slice(&key(2)).unwrap().unwrap(), records(102));
    for v in [0, 4, 10, 11, 12] {
        assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
    }
    assert_eq!(
        store.meta_records().unwrap(),
        vec![b"compacted".to_vec(), b"tail".to_vec()]
    );
    let verify = store.verify();
    assert!(verify.problems.is_empty(), "{verify:?}");
    assert_eq!(verify.tags_checked > 0, encrypted);
    store.close().unwrap();
    // The first open of a store from before the manifest wrote one: from
    // now on a missing segment is caught.
    assert!(tmp.path().join("MANIFEST").exists());
    let (store, _) = Store::open(tmp.path(), opts(encrypted)).unwrap();
    drop(store);
    let any = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "bseg"))
        .unwrap();
    std::fs::remove_file(&any).unwrap();
    let err = Store::open(tmp.path(), opts(encrypted))
        .err()
        .expect("open fails");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn the_encrypted_v1_fixture_opens_with_its_contents() {
    check_fixture("v1-encrypted", true);
}

#[test]
fn the_plain_v1_fixture_opens_with_its_contents() {
    check_fixture("v1-plain", false);
}

#[test]
#[ignore = "writes the checked-in fixtures; run on purpose only"]
fn generate_fixtures() {
    for (name, encrypted) in [("v1-encrypted", true), ("v1-plain", false)] {
        let tmp = tempfile::tempdir().unwrap();
        write_fixture(tmp.path(), encrypted);
        let out = fixture_dir(name);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        for entry in std::fs::read_dir(tmp.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "bseg") {
                std::fs::copy(&path, out.join(path.file_name().unwrap())).unwrap();
            }
        }
    }
}
