//! The manifest (G11): recovery knows every segment that must exist. A
//! missing segment is corruption naming the file, open never deletes a file
//! it cannot account for, and verify reports both.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use booster_store::format::{decode_manifest, read_sealed_entries, FrameKind, MANIFEST_FILE_NAME};
use booster_store::{
    Batch, Damage, MasterKey, RecoveryReport, SliceKey, Store, StoreError, StoreOptions,
};

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 3,
        stream: 0,
        seq,
    }
}

fn records(v: u64) -> Vec<Vec<u8>> {
    (0..20)
        .map(|i| format!("{v},{i},customer-{}", v * 100 + i).into_bytes())
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

/// Every file of the directory with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("LOCK"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    booster_store::format::segment_paths(dir).unwrap()
}

/// A closed store of `n` batches (slice + meta each) over several segments.
fn store_of(dir: &Path, n: u64, master: Option<MasterKey>) {
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
    store.close().unwrap();
}

struct KeepAll;
impl booster_store::CompactionPlan for KeepAll {
    fn slice_is_live(&self, _: &SliceKey) -> bool {
        true
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        vec![b"snapshot".to_vec()]
    }
}

/// The damage an open reports for a missing segment file.
fn missing_damage(report: &RecoveryReport, missing: &Path) -> Damage {
    let found: Vec<&Damage> = report
        .damaged
        .iter()
        .filter(|d| d.path == missing)
        .collect();
    assert_eq!(found.len(), 1, "{report:?}");
    let d = found[0].clone();
    assert!(d.what.contains("missing"), "{}", d.what);
    assert!(!d.identified, "nothing names what a missing file held");
    assert!(d.meta_lost, "meta records may have been in it");
    d
}

/// The keys whose slices the sealed `segment` holds, from its footer.
fn keys_in(segment: &Path) -> Vec<u64> {
    let bytes = std::fs::read(segment).unwrap();
    read_sealed_entries(&bytes)
        .unwrap()
        .iter()
        .filter(|e| e.header.kind == FrameKind::Slice)
        .map(|e| e.header.key.seq)
        .collect()
}

#[test]
fn a_missing_segment_opens_degraded_naming_the_file_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 12, None);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let victim = segs[1].clone();
    let held = keys_in(&victim);
    assert!(!held.is_empty());
    let saved = std::fs::read(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    let before = files(dir.path());

    let (store, report) = Store::open(dir.path(), opts(None)).unwrap();
    let d = missing_damage(&report, &victim);
    assert_eq!(d.segment_id, 2);
    let segments_only = |files: BTreeMap<PathBuf, Vec<u8>>| {
        files
            .into_iter()
            .filter(|(p, _)| p.to_string_lossy().ends_with(".bseg"))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        segments_only(files(dir.path())),
        segments_only(before),
        "open deleted and rewrote no segment"
    );
    for v in 0..12 {
        match store.read_slice(&key(v)) {
            Ok(Some(r)) if !held.contains(&v) => assert_eq!(r, records(v)),
            Err(StoreError::Corrupt {
                segment_id, what, ..
            }) if held.contains(&v) => {
                assert_eq!(segment_id, 2);
                assert!(what.contains("may have been"), "{what}");
            }
            other => panic!(
                "slice {v} (held by the missing file: {}): {other:?}",
                held.contains(&v)
            ),
        }
    }
    let (meta, _) = store.meta_records_skipping_damage().unwrap();
    assert_eq!(meta.len(), 12 - held.len(), "the other batches' records");
    // New work goes on, in a new segment, and the loss stays on record.
    store
        .append(Batch::new().slice(key(40), &records(40)))
        .unwrap();
    assert!(
        store.compact(&KeepAll).is_err(),
        "compaction would erase the record of the loss"
    );
    store.close().unwrap();
    assert!(!victim.exists());
    let (store, report) = Store::open(dir.path(), opts(None)).unwrap();
    missing_damage(&report, &victim);
    assert_eq!(store.read_slice(&key(40)).unwrap().unwrap(), records(40));
    drop(store);

    // Putting it back makes the store whole again.
    std::fs::write(&victim, saved).unwrap();
    let (store, report) = Store::open(dir.path(), opts(None)).unwrap();
    assert!(report.damaged.is_empty(), "{report:?}");
    assert_eq!(store.meta_records().unwrap().len(), 12);
    for v in 0..12 {
        assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
    }
}

#[test]
fn a_missing_newest_segment_opens_degraded_and_writes_go_to_a_new_one() {
    let master = || Some(MasterKey([5; 32]));
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 12, master());
    let victim = segments(dir.path()).pop().unwrap();
    std::fs::remove_file(&victim).unwrap();
    let (store, report) = Store::open(dir.path(), opts(master())).unwrap();
    missing_damage(&report, &victim);
    assert_eq!(store.read_slice(&key(0)).unwrap().unwrap(), records(0));
    store
        .append(Batch::new().slice(key(77), &records(77)))
        .unwrap();
    store.close().unwrap();
    assert!(!victim.exists(), "no new file takes the missing one's name");
    let (store, report) = Store::open(dir.path(), opts(master())).unwrap();
    missing_damage(&report, &victim);
    assert_eq!(store.read_slice(&key(77)).unwrap().unwrap(), records(77));
}

#[test]
fn verify_dir_names_a_missing_segment() {
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 12, None);
    let victim = segments(dir.path())[2].clone();
    std::fs::remove_file(&victim).unwrap();
    let report = Store::verify_dir(dir.path(), None).unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].path, victim);
    assert!(report.problems[0].what.contains("missing"));
}

#[test]
fn verify_on_an_open_store_names_a_segment_removed_under_it() {
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 12, None);
    let (store, _) = Store::open(dir.path(), opts(None)).unwrap();
    let victim = segments(dir.path())[0].clone();
    std::fs::remove_file(&victim).unwrap();
    let report = store.verify();
    assert!(
        report.problems.iter().any(|p| p.path == victim),
        "{report:?}"
    );
}

#[test]
fn an_unlisted_segment_is_reported_and_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 12, None);
    let segs = segments(dir.path());
    // A foreign file named like a segment between two listed ones.
    let other = tempfile::tempdir().unwrap();
    store_of(other.path(), 1, None);
    let foreign_bytes = std::fs::read(&segments(other.path())[0]).unwrap();
    std::fs::remove_file(&segs[1]).unwrap();
    std::fs::write(&segs[1], &foreign_bytes).unwrap();
    let err = Store::open(dir.path(), opts(None))
        .err()
        .expect("open fails");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&segs[1]).unwrap(), foreign_bytes);
    // Beyond the newest listed one, a file holding frames is not taken as
    // an unfinished segment either.
    let beyond = dir
        .path()
        .join(format!("seg-{:016}.bseg", segs.len() as u64 + 10));
    let dir2 = tempfile::tempdir().unwrap();
    store_of(dir2.path(), 12, None);
    std::fs::write(
        dir2.path().join(beyond.file_name().unwrap()),
        &foreign_bytes,
    )
    .unwrap();
    let before = files(dir2.path());
    let err = Store::open(dir2.path(), opts(None))
        .err()
        .expect("open fails");
    assert!(err.to_string().contains("not listed in MANIFEST"), "{err}");
    assert_eq!(files(dir2.path()), before);
}

#[test]
fn a_deleted_manifest_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 4, None);
    std::fs::remove_file(dir.path().join(MANIFEST_FILE_NAME)).unwrap();
    let err = Store::open(dir.path(), opts(None))
        .err()
        .expect("open fails");
    assert!(err.to_string().contains("MANIFEST is missing"), "{err}");
}

#[test]
fn the_manifest_lists_exactly_the_segments_after_close_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 12, None);
    let listed = |dir: &Path| {
        let bytes = std::fs::read(dir.join(MANIFEST_FILE_NAME)).unwrap();
        decode_manifest(&bytes).unwrap().segments
    };
    let on_disk = |dir: &Path| -> Vec<u64> {
        segments(dir)
            .iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_str().unwrap();
                name[4..20].parse().unwrap()
            })
            .collect()
    };
    assert_eq!(listed(dir.path()), on_disk(dir.path()));
    let (store, _) = Store::open(dir.path(), opts(None)).unwrap();
    store.compact(&KeepAll).unwrap();
    store.close().unwrap();
    assert_eq!(listed(dir.path()), on_disk(dir.path()));
}

#[test]
fn opening_a_store_twice_writes_the_manifest_once() {
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 3, None);
    let before = files(dir.path());
    let (store, _) = Store::open(dir.path(), opts(None)).unwrap();
    store.close().unwrap();
    assert_eq!(files(dir.path()), before, "a clean reopen writes nothing");
}

#[test]
fn open_deletes_only_its_own_tmp_files() {
    let dir = tempfile::tempdir().unwrap();
    store_of(dir.path(), 3, None);
    let theirs = dir.path().join("notes.tmp");
    let also_theirs = dir.path().join("seg-12.bseg.tmp");
    std::fs::write(&theirs, b"not the store's").unwrap();
    std::fs::write(&also_theirs, b"not a segment name").unwrap();
    let ours = dir.path().join("seg-0000000000000099.bseg.tmp");
    std::fs::write(&ours, b"unpublished compaction output").unwrap();
    let (_store, report) = Store::open(dir.path(), opts(None)).unwrap();
    assert!(theirs.exists() && also_theirs.exists());
    assert!(!ours.exists());
    assert_eq!(report.removed_incomplete_compaction, vec![ours]);
}
