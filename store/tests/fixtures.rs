//! Checked-in segments (store/tests/fixtures/) must keep opening with the
//! same contents: `v1-*` (footer version 1, before deletes and checkpoints),
//! `v2-*` (footer version 2 with the sorted run; a delete and a checkpoint)
//! and `v3-*` (version 3: with the summary open reads). Write the fixtures
//! of the current format only on purpose, for a new format version: `cargo
//! test -p booster-store --test fixtures -- --ignored` writes `v3-*` (the
//! older ones cannot be written any more).

use std::path::{Path, PathBuf};

use booster_store::format::{read_footer_summary, read_sealed_footer};
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
fn write_fixture(dir: &Path, encrypted: bool, version: u32) {
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
    if version >= 2 {
        store
            .append(
                Batch::new()
                    .delete(key(4))
                    .checkpoint(b"cp".to_vec())
                    .meta(b"after".to_vec()),
            )
            .unwrap();
    }
    store.close().unwrap();
}

/// What a fixture of `version` holds: live seqs and the meta log.
fn expected(version: u32) -> (Vec<u64>, Vec<Vec<u8>>) {
    if version >= 2 {
        (
            vec![0, 2, 10, 11, 12],
            vec![b"cp".to_vec(), b"after".to_vec()],
        )
    } else {
        (
            vec![0, 2, 4, 10, 11, 12],
            vec![b"compacted".to_vec(), b"tail".to_vec()],
        )
    }
}

/// A copy of the checked-in fixture `name` in a fresh directory.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(fixture_dir(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
        copied += 1;
    }
    assert!(copied >= 2, "fixture {name} is missing");
    tmp
}

fn check_contents(store: &Store, version: u32) {
    let (live, meta) = expected(version);
    let seqs: Vec<u64> = store.slices(77, 2).iter().map(|i| i.key.seq).collect();
    assert_eq!(seqs, live);
    assert_eq!(store.read_slice(&key(2)).unwrap().unwrap(), records(102));
    for v in live.into_iter().filter(|v| *v != 2) {
        assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
    }
    assert_eq!(store.meta_records().unwrap(), meta);
}

fn check_fixture(name: &str, encrypted: bool, version: u32) {
    let tmp = copy_fixture(name);
    let (store, report) = Store::open(tmp.path(), opts(encrypted)).unwrap();
    assert!(report.truncated.is_empty(), "{report:?}");
    check_contents(&store, version);
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
    let (_store, report) = Store::open(tmp.path(), opts(encrypted)).unwrap();
    assert!(
        report
            .damaged
            .iter()
            .any(|d| d.path == any && d.what.contains("missing")),
        "{report:?}"
    );
}

#[test]
fn the_encrypted_v1_fixture_opens_with_its_contents() {
    check_fixture("v1-encrypted", true, 1);
}

#[test]
fn the_plain_v1_fixture_opens_with_its_contents() {
    check_fixture("v1-plain", false, 1);
}

#[test]
fn the_encrypted_v2_fixture_opens_with_its_contents() {
    check_fixture("v2-encrypted", true, 2);
}

#[test]
fn the_plain_v2_fixture_opens_with_its_contents() {
    check_fixture("v2-plain", false, 2);
}

#[test]
fn the_encrypted_v3_fixture_opens_with_its_contents() {
    check_fixture("v3-encrypted", true, 3);
}

#[test]
fn the_plain_v3_fixture_opens_with_its_contents() {
    check_fixture("v3-plain", false, 3);
}

/// The footer version of every segment file in `dir`.
fn footer_versions(dir: &Path) -> Vec<u32> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bseg"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap();
            let footer = read_sealed_footer(&bytes).unwrap();
            if read_footer_summary(&bytes).is_ok() {
                3
            } else if footer.sorted.is_some() {
                2
            } else {
                1
            }
        })
        .collect()
}

#[test]
fn a_v1_store_takes_new_writes_and_compaction_rewrites_it_as_v3() {
    let tmp = copy_fixture("v1-encrypted");
    let (store, _) = Store::open(tmp.path(), opts(true)).unwrap();
    assert!(footer_versions(tmp.path()).iter().all(|v| *v == 1));
    store
        .append(
            Batch::new()
                .delete(key(4))
                .slice(key(20), &records(20))
                .checkpoint(b"cp".to_vec()),
        )
        .unwrap();
    store.close().unwrap();
    let versions = footer_versions(tmp.path());
    assert_eq!(versions.last(), Some(&3), "{versions:?}");
    assert!(versions.contains(&1));
    let (store, _) = Store::open(tmp.path(), opts(true)).unwrap();
    let seqs: Vec<u64> = store.slices(77, 2).iter().map(|i| i.key.seq).collect();
    assert_eq!(seqs, vec![0, 2, 10, 11, 12, 20]);
    assert_eq!(store.read_slice(&key(4)).unwrap(), None);
    assert_eq!(store.read_slice(&key(2)).unwrap().unwrap(), records(102));
    assert_eq!(store.meta_records().unwrap(), vec![b"cp".to_vec()]);
    let stats = store.stats();
    assert!(stats.dead_bytes > 0, "{stats:?}");
    store.compact(&KeepAll).unwrap();
    assert_eq!(store.stats().dead_bytes, 0);
    store.close().unwrap();
    assert!(footer_versions(tmp.path()).iter().all(|v| *v == 3));
    let (store, _) = Store::open(tmp.path(), opts(true)).unwrap();
    let seqs: Vec<u64> = store.slices(77, 2).iter().map(|i| i.key.seq).collect();
    assert_eq!(seqs, vec![0, 2, 10, 11, 12, 20]);
    assert_eq!(store.read_slice(&key(20)).unwrap().unwrap(), records(20));
    assert_eq!(store.meta_records().unwrap(), vec![b"kept".to_vec()]);
    assert!(store.verify().problems.is_empty());
}

struct KeepAll;

impl CompactionPlan for KeepAll {
    fn slice_is_live(&self, _: &SliceKey) -> bool {
        true
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        vec![b"kept".to_vec()]
    }
}

#[test]
#[ignore = "writes the checked-in fixtures of the current format; run on purpose only"]
fn generate_fixtures() {
    for (name, encrypted) in [("v3-encrypted", true), ("v3-plain", false)] {
        let tmp = tempfile::tempdir().unwrap();
        write_fixture(tmp.path(), encrypted, 3);
        let out = fixture_dir(name);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        for entry in std::fs::read_dir(tmp.path()).unwrap() {
            let path = entry.unwrap().path();
            // A store that keeps a manifest cannot open without it.
            if path.extension().is_some_and(|e| e == "bseg") || path.ends_with("MANIFEST") {
                std::fs::copy(&path, out.join(path.file_name().unwrap())).unwrap();
            }
        }
    }
}
