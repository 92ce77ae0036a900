//! End-to-end behaviour of the store on real files.

use booster_store::format::segment_paths;
use booster_store::{Batch, MasterKey, SliceKey, Store, StoreError, StoreOptions};

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 1,
        stream: 0,
        seq,
    }
}

fn records(seq: u64, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{seq},{i},customer-{i},2026-11-28,{}", i * 7).into_bytes())
        .collect()
}

fn opts_with(master_key: Option<MasterKey>) -> StoreOptions {
    StoreOptions {
        master_key,
        ..StoreOptions::default()
    }
}

#[test]
fn appended_slices_and_meta_read_back_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), opts_with(Some(MasterKey::generate()))).unwrap();
    for seq in 0..5 {
        let batch = Batch::new()
            .slice(key(seq), &records(seq, 100))
            .meta(format!("slice {seq} uploaded").into_bytes());
        store.append(batch).unwrap();
    }
    for seq in 0..5 {
        assert_eq!(
            store.read_slice(&key(seq)).unwrap().unwrap(),
            records(seq, 100)
        );
    }
    assert_eq!(store.read_slice(&key(99)).unwrap(), None);
    let meta = store.meta_records().unwrap();
    assert_eq!(meta.len(), 5);
    assert_eq!(meta[3], b"slice 3 uploaded");
    let infos = store.slices(1, 0);
    assert_eq!(
        infos.iter().map(|i| i.key.seq).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(infos[0].record_count, 100);
    let stats = store.stats();
    assert_eq!((stats.slice_frames, stats.meta_frames), (5, 5));
    assert!(stats.stored_bytes < stats.raw_bytes, "{stats:?}");
}

#[test]
fn reopen_keeps_everything_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    {
        let (store, _) = Store::open(dir.path(), opts_with(Some(master.clone()))).unwrap();
        store
            .append(
                Batch::new()
                    .slice(key(0), &records(0, 10))
                    .meta(b"m0".to_vec()),
            )
            .unwrap();
        store.close().unwrap();
    }
    {
        // Dropped without close: the next open scans and seals the segment.
        let (store, report) = Store::open(dir.path(), opts_with(Some(master.clone()))).unwrap();
        assert_eq!(report.frames, 2);
        store
            .append(
                Batch::new()
                    .slice(key(1), &records(1, 10))
                    .meta(b"m1".to_vec()),
            )
            .unwrap();
    }
    let (store, report) = Store::open(dir.path(), opts_with(Some(master))).unwrap();
    assert!(report.truncated.is_empty(), "{report:?}");
    assert_eq!(report.frames, 4);
    assert_eq!(store.read_slice(&key(0)).unwrap().unwrap(), records(0, 10));
    assert_eq!(store.read_slice(&key(1)).unwrap().unwrap(), records(1, 10));
    assert_eq!(
        store.meta_records().unwrap(),
        vec![b"m0".to_vec(), b"m1".to_vec()]
    );
}

#[test]
fn a_slice_appended_again_replaces_the_older_one() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    store
        .append(Batch::new().slice(key(0), &records(0, 10)))
        .unwrap();
    store
        .append(Batch::new().slice(key(0), &records(7, 3)))
        .unwrap();
    assert_eq!(store.read_slice(&key(0)).unwrap().unwrap(), records(7, 3));
    let stats = store.stats();
    assert!(stats.dead_bytes > 0 && stats.live_bytes > 0, "{stats:?}");
    drop(store);
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.read_slice(&key(0)).unwrap().unwrap(), records(7, 3));
}

#[test]
fn segments_roll_over_at_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        segment_size_bytes: 4096,
        master_key: Some(MasterKey::generate()),
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), opts.clone()).unwrap();
    for seq in 0..50 {
        store
            .append(Batch::new().slice(key(seq), &records(seq, 50)))
            .unwrap();
    }
    assert!(store.stats().segments > 3, "{:?}", store.stats());
    for seq in 0..50 {
        assert_eq!(
            store.read_slice(&key(seq)).unwrap().unwrap(),
            records(seq, 50)
        );
    }
    drop(store);
    let (store, report) = Store::open(dir.path(), opts).unwrap();
    assert_eq!(report.frames, 50);
    for seq in 0..50 {
        assert_eq!(
            store.read_slice(&key(seq)).unwrap().unwrap(),
            records(seq, 50)
        );
    }
}

#[test]
fn concurrent_producers_are_all_acknowledged_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), opts_with(Some(MasterKey::generate()))).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let store = &store;
            s.spawn(move || {
                for i in 0..25 {
                    let seq = t * 100 + i;
                    store
                        .append(Batch::new().slice(key(seq), &records(seq, 20)))
                        .unwrap();
                }
            });
        }
    });
    for t in 0..4u64 {
        for i in 0..25 {
            let seq = t * 100 + i;
            assert_eq!(
                store.read_slice(&key(seq)).unwrap().unwrap(),
                records(seq, 20)
            );
        }
    }
}

#[test]
fn append_with_calls_back_after_the_batch_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for seq in 0..10 {
        let tx = tx.clone();
        store.append_with(
            Batch::new().slice(key(seq), &records(seq, 5)),
            Box::new(move |r| tx.send((seq, r.is_ok())).unwrap()),
        );
    }
    let mut acked: Vec<_> = (0..10).map(|_| rx.recv().unwrap()).collect();
    acked.sort();
    assert!(acked.iter().all(|(_, ok)| *ok));
    for seq in 0..10 {
        assert!(store.read_slice(&key(seq)).unwrap().is_some());
    }
}

#[test]
fn a_torn_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
        store
            .append(Batch::new().slice(key(0), &records(0, 10)))
            .unwrap();
        store
            .append(Batch::new().slice(key(1), &records(1, 10)))
            .unwrap();
    }
    let seg = segment_paths(dir.path()).unwrap().pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    // Cut into the middle of the last frame, as a crash mid-write would.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let (store, report) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(report.truncated.len(), 1, "{report:?}");
    assert_eq!(store.read_slice(&key(0)).unwrap().unwrap(), records(0, 10));
    assert_eq!(store.read_slice(&key(1)).unwrap(), None);
    store
        .append(Batch::new().slice(key(2), &records(2, 10)))
        .unwrap();
    drop(store);
    let (store, report) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(
        report.truncated.is_empty(),
        "recovery is idempotent: {report:?}"
    );
    assert_eq!(store.read_slice(&key(2)).unwrap().unwrap(), records(2, 10));
}

/// Past the acknowledged end of the last segment, a bad frame followed by a
/// good one may be a torn write that reached the disk out of order, or rot
/// in batches acknowledged since the watermark: it is damage, named, never
/// a silent cut; the batch it broke never shows, later whole batches do.
#[test]
fn a_bad_frame_followed_by_a_good_one_in_the_unacknowledged_tail_is_damage_not_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    {
        let opts = StoreOptions {
            watermark_interval_ms: 0,
            ..StoreOptions::default()
        };
        let (store, _) = Store::open(dir.path(), opts).unwrap();
        store
            .append(Batch::new().slice(key(0), &records(0, 10)))
            .unwrap();
        store
            .append(Batch::new().slice(key(1), &records(1, 10)))
            .unwrap();
    }
    let seg = segment_paths(dir.path()).unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[128 + 60] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let (store, report) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].offset, 128);
    assert_eq!(report.damaged[0].slices, vec![key(0)]);
    assert!(report.truncated.is_empty(), "{report:?}");
    assert!(matches!(
        store.read_slice(&key(0)),
        Err(StoreError::Corrupt { offset: 128, .. })
    ));
    assert_eq!(store.read_slice(&key(1)).unwrap().unwrap(), records(1, 10));
    drop(store);
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        bytes,
        "nothing was cut or sealed"
    );
}

#[test]
fn a_wrong_key_is_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = Store::open(dir.path(), opts_with(Some(MasterKey::generate()))).unwrap();
        store
            .append(Batch::new().slice(key(0), &records(0, 10)))
            .unwrap();
        // Not closed: the segment stays unsealed, so open would modify it.
    }
    let before: Vec<_> = segment_paths(dir.path())
        .unwrap()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let err = Store::open(dir.path(), opts_with(Some(MasterKey::generate())))
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("key"), "{err}");
    let err = Store::open(dir.path(), opts_with(None)).err().unwrap();
    assert!(matches!(err, StoreError::KeyRequired { .. }), "{err}");
    let after: Vec<_> = segment_paths(dir.path())
        .unwrap()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn a_second_opener_is_told_who_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default())
        .err()
        .unwrap();
    match &err {
        StoreError::Locked { pid, .. } => assert_eq!(pid, &std::process::id().to_string()),
        other => panic!("expected Locked, got {other}"),
    }
    drop(store);
    assert!(Store::open(dir.path(), StoreOptions::default()).is_ok());
}

#[test]
fn a_marker_in_the_records_never_appears_on_disk_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let marker = b"MARKER-5b1f0c7e-never-in-clear";
    {
        let (store, _) = Store::open(dir.path(), opts_with(Some(MasterKey::generate()))).unwrap();
        let recs: Vec<Vec<u8>> = (0..200)
            .map(|i| [&marker[..], format!(",{i}").as_bytes()].concat())
            .collect();
        store
            .append(Batch::new().slice(key(0), &recs).meta(marker.to_vec()))
            .unwrap();
        store.append(Batch::new().slice(key(1), &recs)).unwrap();
        struct KeepFirst(Vec<u8>);
        impl booster_store::CompactionPlan for KeepFirst {
            fn slice_is_live(&self, key: &SliceKey) -> bool {
                key.seq == 0
            }
            fn meta_snapshot(&self) -> Vec<Vec<u8>> {
                vec![self.0.clone()]
            }
        }
        store.compact(&KeepFirst(marker.to_vec())).unwrap();
        store.append(Batch::new().slice(key(2), &recs)).unwrap();
        drop(store); // the active segment stays unsealed, as after a crash
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker));
    }
}

#[test]
fn the_meta_records_of_a_batch_share_one_frame_and_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let batch = (0..100).fold(Batch::new(), |b, i| {
        b.meta(format!("job {i} queued").into_bytes())
    });
    store.append(batch).unwrap();
    store
        .append(Batch::new().meta(b"last".to_vec()).meta(Vec::new()))
        .unwrap();
    assert_eq!(store.stats().meta_frames, 2);
    let meta = store.meta_records().unwrap();
    assert_eq!(meta.len(), 102);
    assert_eq!(meta[0], b"job 0 queued");
    assert_eq!(meta[99], b"job 99 queued");
    assert_eq!(meta[100], b"last");
    assert!(meta[101].is_empty());
}

#[test]
fn a_key_file_holds_raw_bytes_or_hex() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    let hex = dir.path().join("hex");
    std::fs::write(&hex, format!("  {}\n", key.to_hex())).unwrap();
    assert_eq!(MasterKey::from_file(&hex).unwrap().0, key.0);
    let raw = dir.path().join("raw");
    std::fs::write(&raw, key.0).unwrap();
    assert_eq!(MasterKey::from_file(&raw).unwrap().0, key.0);
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "not a key").unwrap();
    let err = MasterKey::from_file(&bad).unwrap_err();
    assert!(err.to_string().contains("64 hex characters"), "{err}");
    assert_eq!(format!("{key:?}"), "MasterKey(..)");
}

#[test]
fn verify_dir_reports_a_bad_frame_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    {
        let (store, _) = Store::open(dir.path(), opts_with(Some(master.clone()))).unwrap();
        store
            .append(Batch::new().slice(key(0), &records(0, 10)))
            .unwrap();
        store
            .append(Batch::new().slice(key(1), &records(1, 10)))
            .unwrap();
    }
    let seg = segment_paths(dir.path()).unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[128 + 60] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    let report = Store::verify_dir(dir.path(), Some(&master)).unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(
        (report.problems[0].segment_id, report.problems[0].offset),
        (1, 128)
    );
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        bytes,
        "verify_dir changes nothing"
    );
}

#[test]
fn the_store_and_its_batches_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Store>();
    send_sync::<Store<booster_store::fs::sim::SimFileLayer>>();
    send::<Batch>();
    send_sync::<booster_store::SliceRecords>();
}

/// The fleet's wire (protocol 3): an input slice is read packed (decrypted,
/// still compressed) and a worker's packed output is stored as it came;
/// both read back as the records, after a reopen too.
#[test]
fn a_packed_slice_is_stored_as_packed_and_read_back_packed_and_as_records() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let (store, _) = Store::open(dir.path(), opts_with(Some(master.clone()))).unwrap();
    store
        .append(Batch::new().slice(key(0), &records(0, 200)))
        .unwrap();
    let read = store.read_slice_packed(&key(0)).unwrap().unwrap();
    assert!(
        read.is_zstd(),
        "a slice of 200 records is stored compressed"
    );
    assert_eq!(read.unpack(1 << 20).unwrap().to_vecs(), records(0, 200));
    let made = booster_store::PackedSlice::pack(&records(1, 300), 1).unwrap();
    let body = made.body().to_vec();
    store
        .append(Batch::new().slice_packed(key(1), made))
        .unwrap();
    assert_eq!(store.read_slice(&key(1)).unwrap().unwrap(), records(1, 300));
    assert_eq!(
        store.read_slice_packed(&key(1)).unwrap().unwrap().body(),
        body
    );
    assert_eq!(store.read_slice_packed(&key(9)).unwrap(), None);
    drop(store);
    let (store, _) = Store::open(dir.path(), opts_with(Some(master))).unwrap();
    assert_eq!(store.read_slice(&key(1)).unwrap().unwrap(), records(1, 300));
    let report = store.verify();
    assert!(report.problems.is_empty(), "{report:?}");
}
