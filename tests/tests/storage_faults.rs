//! Storage faults under the store, with real files: a failed `fdatasync`,
//! a failed (torn) write, a full disk (a small tmpfs), and bit rot in sealed
//! segments. What must hold: the store refuses writes after the fault (G9),
//! stays readable, reopening recovers every acknowledged batch (G1), a batch
//! is all or nothing, and corruption is named, never hidden (G7).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use booster_store::{Batch, FileLayer, SliceKey, Store, StoreError, StoreOptions};
use booster_tests::faulty_fs::{Fault, FaultyFs};
use booster_tests::rng::{scale, seed, Rng};
use booster_tests::small_disk::SmallDisk;

const PRODUCERS: u32 = 3;

fn key(producer: u32, i: u64) -> SliceKey {
    SliceKey {
        owner: 1,
        stream: producer,
        seq: i,
    }
}

fn records(producer: u32, i: u64, bytes_each: usize) -> Vec<Vec<u8>> {
    (0..4)
        .map(|r| {
            let mut rec = format!("p{producer}-b{i}-r{r}-").into_bytes();
            let mut x = u64::from(producer) << 40 ^ i << 8 ^ r;
            while rec.len() < bytes_each {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                rec.push(b'a' + (x >> 59) as u8);
            }
            rec
        })
        .collect()
}

fn meta(producer: u32, i: u64) -> Vec<u8> {
    format!("batch p{producer} b{i}").into_bytes()
}

/// Producers append batches (one slice + one meta record) until an append
/// fails; returns the acknowledged (producer, i) pairs and the first errors.
fn produce_until_failure<F: FileLayer>(
    store: &Store<F>,
    max_per_producer: u64,
    bytes_each: usize,
) -> (Vec<(u32, u64)>, Vec<StoreError>) {
    let acked = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for p in 0..PRODUCERS {
            let (acked, errors) = (&acked, &errors);
            s.spawn(move || {
                for i in 0..max_per_producer {
                    let batch = Batch::new()
                        .slice(key(p, i), &records(p, i, bytes_each))
                        .meta(meta(p, i));
                    match store.append(batch) {
                        Ok(_) => acked.lock().unwrap().push((p, i)),
                        Err(e) => {
                            errors.lock().unwrap().push(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    (acked.into_inner().unwrap(), errors.into_inner().unwrap())
}

/// Reopens `dir` with real files and checks: every acknowledged batch is
/// there, intact; every batch is all or nothing (slice present exactly when
/// its meta record is); nothing appears twice. Returns the batches present.
fn check_after_reopen(dir: &Path, acked: &[(u32, u64)], bytes_each: usize) -> usize {
    let (store, _) = Store::open(dir, StoreOptions::default()).expect("reopen after the fault");
    let metas = store
        .meta_records()
        .expect("meta records read after reopen");
    let mut meta_count: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for m in &metas {
        *meta_count.entry(m.clone()).or_default() += 1;
    }
    assert!(
        meta_count.values().all(|&n| n == 1),
        "a meta record appears twice"
    );
    let mut present = 0;
    for p in 0..PRODUCERS {
        for info in store.slices(1, p) {
            let i = info.key.seq;
            let got = store.read_slice(&info.key).unwrap().unwrap();
            assert_eq!(got, records(p, i, bytes_each), "slice p{p} b{i} changed");
            assert!(
                meta_count.contains_key(&meta(p, i)),
                "slice p{p} b{i} is present without its meta record: a torn batch"
            );
            present += 1;
        }
    }
    assert_eq!(
        present,
        metas.len(),
        "a meta record is present without its slice"
    );
    for &(p, i) in acked {
        assert!(
            store.read_slice(&key(p, i)).unwrap().is_some(),
            "acknowledged batch p{p} b{i} is missing after reopen"
        );
    }
    // Work continues: the reopened store takes writes.
    store
        .append(Batch::new().slice(key(9, 0), &[b"after".as_slice()]))
        .expect("append after reopen");
    present
}

fn run_fault(fault: Fault) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let opts = StoreOptions {
        segment_size_bytes: 4096,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open_with(fs.clone(), dir.path(), opts).unwrap();
    fs.arm(fault);
    let (acked, errors) = produce_until_failure(&store, 60, 200);
    assert_eq!(fs.injected(), 1, "{fault:?} was never reached");
    assert!(!errors.is_empty(), "{fault:?}: no append failed");
    for e in &errors {
        assert!(
            matches!(e, StoreError::Poisoned { .. }),
            "{fault:?}: expected Poisoned, got {e}"
        );
    }
    // G9: the fault is over, yet the store refuses writes until reopened.
    fs.arm(Fault::None);
    let err = store
        .append(Batch::new().slice(key(8, 0), &[b"x".as_slice()]))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Poisoned { .. }) && err.to_string().contains("reopen"),
        "{fault:?}: after the fault: {err}"
    );
    // Still readable: every acknowledged slice reads back.
    for &(p, i) in &acked {
        let got = store.read_slice(&key(p, i)).unwrap();
        assert_eq!(
            got,
            Some(records(p, i, 200)),
            "{fault:?}: p{p} b{i} while poisoned"
        );
    }
    drop(store);
    let present = check_after_reopen(dir.path(), &acked, 200);
    assert!(present >= acked.len());
}

#[test]
fn a_failed_fsync_at_any_point_poisons_and_reopening_keeps_every_acknowledged_batch() {
    for k in 1..=scale(8, 60) {
        run_fault(Fault::SyncNumber(k));
    }
}

#[test]
fn a_torn_failed_write_at_any_point_poisons_and_reopening_keeps_every_acknowledged_batch() {
    for k in 1..=scale(8, 60) {
        run_fault(Fault::WriteNumber(k));
    }
}

#[test]
fn a_full_disk_fails_writes_clearly_keeps_data_readable_and_work_continues_after_freeing_space() {
    let Some(disk) = SmallDisk::mount(8) else {
        return;
    };
    let data = disk.path().join("data");
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; 2 << 20]).unwrap();
    let opts = StoreOptions {
        segment_size_bytes: 1 << 20,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(&data, opts.clone()).unwrap();
    // Incompressible records: ~8 MiB of tmpfs fills in a few hundred batches.
    let (acked, errors) = produce_until_failure(&store, 100_000, 4096);
    assert!(!acked.is_empty() && !errors.is_empty());
    let disk_full = errors
        .iter()
        .find(|e| matches!(e, StoreError::DiskFull { .. }))
        .unwrap_or_else(|| panic!("no DiskFull error among {errors:?}"));
    let text = disk_full.to_string();
    assert!(
        text.contains("disk full") && text.contains("free space"),
        "{text}"
    );
    // Readable while full; refuses writes.
    for &(p, i) in &acked {
        assert_eq!(
            store.read_slice(&key(p, i)).unwrap(),
            Some(records(p, i, 4096))
        );
    }
    assert!(store
        .append(Batch::new().slice(key(8, 0), &[b"x".as_slice()]))
        .is_err());
    drop(store);
    // Reopening while still full: a clear error or a working store, never a panic.
    match Store::open(&data, opts.clone()) {
        Ok((s, _)) => drop(s),
        Err(e) => eprintln!("reopen on a full disk: {e}"),
    }
    std::fs::remove_file(&ballast).unwrap();
    check_after_reopen(&data, &acked, 4096);
}

/// Keeps every slice; the meta log stays empty.
struct KeepAll;

impl booster_store::CompactionPlan for KeepAll {
    fn slice_is_live(&self, _: &SliceKey) -> bool {
        true
    }
    fn meta_snapshot(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

/// Writes a file until the disk refuses another byte.
fn fill_disk(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![3u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    let mut one = [3u8; 1];
    while f.write_all(&one[..]).is_ok() {
        one[0] ^= 1;
    }
    let _ = f.sync_all();
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect()
}

#[test]
fn a_disk_full_to_the_last_byte_still_opens_read_only_and_compaction_checks_space_first() {
    let Some(disk) = SmallDisk::mount(8) else {
        return;
    };
    let data = disk.path().join("data");
    let opts = StoreOptions {
        segment_size_bytes: 1 << 20,
        reserve_bytes: 1 << 20,
        ..StoreOptions::default()
    };
    let (store, report) = Store::open(&data, opts.clone()).unwrap();
    assert_eq!(report.reserve_bytes, 1 << 20);
    assert!(
        data.join("RESERVE").exists(),
        "the reserve is taken at open"
    );
    let (acked, errors) = produce_until_failure(&store, 100_000, 4096);
    assert!(errors.iter().any(|e| e.is_disk_full()), "{errors:?}");
    assert!(
        !data.join("RESERVE").exists(),
        "the reserve went when the disk filled"
    );
    drop(store);

    // Not a byte left: open still works, read-only, and reads everything.
    let ballast = disk.path().join("ballast");
    fill_disk(&ballast);
    let (store, report) =
        Store::open(&data, opts.clone()).unwrap_or_else(|e| panic!("open on a full disk: {e}"));
    // Read-only, unless cutting a torn tail freed the room for the footer
    // (store/tests/poison.rs opens read-only deterministically).
    eprintln!("open on a full disk: read_only = {}", report.read_only);
    for &(p, i) in &acked {
        assert_eq!(
            store.read_slice(&key(p, i)).unwrap(),
            Some(records(p, i, 4096))
        );
    }
    if report.read_only {
        let err = store
            .append(Batch::new().slice(key(8, 0), &[b"x".as_slice()]))
            .unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
    }
    drop(store);
    Store::verify_dir(&data, None).unwrap();

    // Room for the store, not for a compaction of it: refused up front,
    // nothing left behind, and the store keeps working.
    std::fs::remove_file(&ballast).unwrap();
    let (store, report) = Store::open(&data, opts.clone()).unwrap();
    assert!(!report.read_only);
    let free_mib = 1;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![5u8; 64 << 10];
        // Leave about `free_mib` MiB free.
        loop {
            let st = Command::new("df")
                .args(["--output=avail", "-B1"])
                .arg(disk.path())
                .output()
                .unwrap();
            let avail: u64 = String::from_utf8_lossy(&st.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.trim().parse().ok())
                .unwrap();
            if avail <= free_mib << 20 || f.write_all(&chunk).is_err() {
                break;
            }
        }
        f.sync_all().unwrap();
    }
    let err = store.compact(&KeepAll).unwrap_err();
    assert!(
        matches!(err, StoreError::NoSpace { .. }) && err.to_string().contains("free space"),
        "{err}"
    );
    assert!(tmp_files(&data).is_empty(), "{:?}", tmp_files(&data));
    store
        .append(Batch::new().slice(key(8, 1), &[b"still works".as_slice()]))
        .unwrap();
    drop(store);
    std::fs::remove_file(&ballast).unwrap();
    check_after_reopen(&data, &acked, 4096);
}

/// Flips one byte inside a data frame of a sealed segment; returns (segment
/// id, frame offset, frame end, key of the slice or None for a meta frame).
fn flip_in_a_frame(dir: &Path, rng: &mut Rng) -> (u64, u64, u64, Option<SliceKey>) {
    let names = booster_store::format::segment_paths(dir).unwrap();
    let path = &names[rng.range(0, names.len() as u64) as usize];
    let mut bytes = std::fs::read(path).unwrap();
    let header = booster_store::format::decode_segment_header(&bytes).unwrap();
    let entries = booster_store::format::read_sealed_entries(&bytes).expect("sealed");
    let e = entries[rng.range(0, entries.len() as u64) as usize];
    let end = e.offset + e.header.frame_len();
    let at = rng.range(e.offset, end) as usize;
    bytes[at] ^= 1 << rng.range(0, 8);
    std::fs::write(path, &bytes).unwrap();
    let key = (e.header.kind == booster_store::format::FrameKind::Slice).then_some(e.header.key);
    (header.segment_id, e.offset, end, key)
}

#[test]
fn bit_rot_in_sealed_segments_is_named_by_verify_and_fails_only_the_affected_slices() {
    let seed = seed("bit_rot");
    let mut rng = Rng::new(seed);
    for round in 0..scale(6, 200) {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            segment_size_bytes: 2048,
            master_key: rng.chance(50).then(booster_store::MasterKey::generate),
            ..StoreOptions::default()
        };
        let (store, _) = Store::open(dir.path(), opts.clone()).unwrap();
        let (acked, _) = produce_until_failure(&store, 20, 64);
        store.close().unwrap();
        let mut flipped = Vec::new();
        for _ in 0..rng.range(1, 4) {
            flipped.push(flip_in_a_frame(dir.path(), &mut rng));
        }
        let ctx = format!("seed {seed} round {round} flipped {flipped:?}");
        let report = Store::verify_dir(dir.path(), opts.master_key.as_ref()).unwrap();
        for (seg, start, end, _) in &flipped {
            assert!(
                report
                    .problems
                    .iter()
                    .any(|p| p.segment_id == *seg && (*start..*end).contains(&p.offset)),
                "verify does not name segment {seg} frame {start}: {:?} ({ctx})",
                report.problems
            );
        }
        let (store, _) = Store::open(dir.path(), opts).unwrap_or_else(|e| panic!("{e} ({ctx})"));
        let rotten: Vec<SliceKey> = flipped.iter().filter_map(|f| f.3).collect();
        for &(p, i) in &acked {
            let k = key(p, i);
            let got = store.read_slice(&k);
            if rotten.contains(&k) {
                let err = got.expect_err(&format!("rotten slice {k:?} read back ({ctx})"));
                let text = err.to_string();
                assert!(
                    matches!(err, StoreError::Corrupt { .. }) && text.contains("verify"),
                    "{text} ({ctx})"
                );
            } else {
                assert_eq!(
                    got.unwrap(),
                    Some(records(p, i, 64)),
                    "healthy slice {k:?} ({ctx})"
                );
            }
        }
        if flipped.iter().any(|f| f.3.is_none()) {
            assert!(
                store.meta_records().is_err(),
                "a rotten meta record read back ({ctx})"
            );
        }
    }
}
