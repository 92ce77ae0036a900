//! Sealing on the producers' threads (issue 17): batches are placed
//! (segment, sequences) before the writer sees them and sealed where they
//! were placed. These tests pin what that must never break: a nonce is
//! never used twice under one segment key, whatever the producers, urgent
//! batches and segment rolls do; sequences stay contiguous when a batch
//! fails after it was placed; a crash at any I/O step recovers every
//! acknowledged batch.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use booster_store::format::{
    decode_segment_header, read_sealed_entries, scan_segment, segment_paths,
};
use booster_store::fs::sim::{CrashMode, SimFileLayer};
use booster_store::fs::FileLayer;
use booster_store::{Batch, MasterKey, Receipt, Store, StoreError, StoreOptions};
use common::{dir, key, records};

fn encrypted(segment_size_bytes: u64) -> StoreOptions {
    StoreOptions {
        segment_size_bytes,
        zstd_level: 1,
        master_key: Some(MasterKey([0x5e; 32])),
        watermark_interval_ms: 0,
        reserve_bytes: 0,
    }
}

/// Batch `v`: its slice, a second slice, its meta record (three frames).
fn batch(v: u64) -> Batch {
    Batch::new()
        .slice(key(v), &records(v))
        .slice(key(100_000 + v), &[format!("side {v}").into_bytes()])
        .meta(format!("meta {v}").into_bytes())
}

/// Every segment file's salt (one key per segment) and its frames'
/// sequences, which must run 0, 1, 2, ... with no gap and no repeat.
fn check_nonces(dir: &Path) -> usize {
    let mut salts = BTreeSet::new();
    let paths = segment_paths(dir).unwrap();
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        let header = decode_segment_header(&bytes).unwrap();
        assert!(
            salts.insert(header.salt),
            "{}: a salt (so a segment key) used twice",
            path.display()
        );
        // The frames as they lie (the scan stops at the seal footer) and as
        // the footer lists them.
        let scan = scan_segment(&bytes);
        let sealed = read_sealed_entries(&bytes).unwrap();
        assert_eq!(scan.entries.len(), sealed.len(), "{}", path.display());
        for (i, (lying, listed)) in scan.entries.iter().zip(&sealed).enumerate() {
            assert_eq!(lying.header.seq, i as u64, "{}", path.display());
            assert_eq!(lying.header, listed.header, "{}", path.display());
        }
    }
    paths.len()
}

#[test]
fn concurrent_producers_urgent_batches_and_rolls_never_reuse_a_nonce() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = encrypted(2 << 10);
    let (store, _) = Store::open(tmp.path(), opts.clone()).unwrap();
    let store = Arc::new(store);
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 60;
    let receipts: Vec<(u64, Receipt)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let v = t * PER_THREAD + i;
                            let b = if v % 7 == 3 {
                                batch(v).urgent()
                            } else {
                                batch(v)
                            };
                            (v, store.append(b).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    // Each batch took three places of its own.
    let mut places = BTreeSet::new();
    for (v, r) in &receipts {
        for seq in r.first_frame_seq..r.first_frame_seq + 3 {
            assert!(
                places.insert((r.segment_id, seq)),
                "batch {v}: segment {} sequence {seq} given twice",
                r.segment_id
            );
        }
    }
    Arc::into_inner(store).unwrap().close().unwrap();
    let segments = check_nonces(tmp.path());
    assert!(segments > 20, "the test rolls segments: {segments}");

    let (store, _) = Store::open(tmp.path(), opts).unwrap();
    assert!(store.verify().problems.is_empty(), "{:?}", store.verify());
    for v in 0..THREADS * PER_THREAD {
        assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
    }
    assert_eq!(
        store.meta_records().unwrap().len(),
        (THREADS * PER_THREAD) as usize
    );
}

/// Runs once, where the file layer is about to fail.
type Hook = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;

/// A simulated file system on which creating segment file `fail_id`
/// fails once with EMFILE, after running `hook` (on the writer thread).
#[derive(Clone)]
struct NoDescriptorFor {
    inner: SimFileLayer,
    fail_id: u64,
    hook: Hook,
}

impl FileLayer for NoDescriptorFor {
    type File = <SimFileLayer as FileLayer>::File;
    type Map = <SimFileLayer as FileLayer>::Map;
    type Lock = <SimFileLayer as FileLayer>::Lock;

    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Self::File> {
        let name = booster_store::format::segment_file_name(self.fail_id);
        if path.file_name().and_then(|n| n.to_str()) == Some(name.as_str()) {
            if let Some(hook) = self.hook.lock().unwrap().take() {
                hook();
                return Err(std::io::Error::from_raw_os_error(libc_emfile()));
            }
        }
        self.inner.create_new(path)
    }
    fn open(&self, path: &Path) -> std::io::Result<Self::File> {
        self.inner.open(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn map(&self, file: &Self::File) -> std::io::Result<Self::Map> {
        self.inner.map(file)
    }
    fn try_lock(&self, path: &Path, holder: &str) -> std::io::Result<Result<Self::Lock, String>> {
        self.inner.try_lock(path, holder)
    }
}

/// EMFILE on Linux (the store tells it from other errors by number).
fn libc_emfile() -> i32 {
    24
}

type Outcomes = Arc<Mutex<Vec<(u64, Result<Receipt, String>)>>>;

fn note(log: &Outcomes, v: u64) -> Box<dyn FnOnce(Result<Receipt, StoreError>) + Send> {
    let log = log.clone();
    Box::new(move |r| log.lock().unwrap().push((v, r.map_err(|e| e.to_string()))))
}

#[test]
fn batches_placed_in_a_segment_that_cannot_be_created_are_placed_again_without_a_gap() {
    // Batch 0 fills segment 1 alone; batches 1-3 are placed in segment 2
    // while the writer is held in batch 0's callback. Creating segment 2
    // fails (EMFILE) after batch 4 was placed behind them, in segment 2
    // too: 1-3 fail as a group, and 4 must not be written at the places
    // it was given (sequences 9.. of a segment that starts empty).
    let sim = SimFileLayer::new();
    let hook: Hook = Arc::default();
    let fs = NoDescriptorFor {
        inner: sim.clone(),
        fail_id: 2,
        hook: hook.clone(),
    };
    // Incompressible, so it fills the 1 KiB segment alone.
    let mut x: u64 = 1;
    let big: Vec<Vec<u8>> = vec![(0..2048)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()];
    let opts = encrypted(1 << 10);
    let (store, _) = Store::open_with(fs.clone(), dir(), opts.clone()).unwrap();
    let store = Arc::new(store);
    let log: Outcomes = Arc::default();
    let (release, held) = mpsc::channel::<()>();
    let first = log.clone();
    store.append_with(
        Batch::new().slice(key(0), &big),
        Box::new(move |r| {
            held.recv().unwrap();
            first
                .lock()
                .unwrap()
                .push((0, r.map_err(|e| e.to_string())));
        }),
    );
    for v in 1..=3 {
        store.append_with(batch(v), note(&log, v));
    }
    let weak = Arc::downgrade(&store);
    let late = log.clone();
    let (four_done, four_answered) = mpsc::channel();
    *hook.lock().unwrap() = Some(Box::new(move || {
        let store = weak.upgrade().unwrap();
        let noted = note(&late, 4);
        store.append_with(
            batch(4),
            Box::new(move |r| {
                noted(r);
                four_done.send(()).unwrap();
            }),
        );
    }));
    release.send(()).unwrap();
    four_answered.recv().unwrap();
    store
        .append(batch(5))
        .expect("the store goes on after EMFILE");
    let log = log.lock().unwrap().clone();
    let outcome = |v: u64| log.iter().find(|(w, _)| *w == v).unwrap().1.clone();
    assert!(outcome(0).is_ok());
    for v in 1..=3 {
        let err = outcome(v).unwrap_err();
        assert!(err.contains("creating segment"), "batch {v}: {err}");
    }
    let four = outcome(4).expect("batch 4 was placed again and written");
    assert_eq!(four.first_frame_seq, 0, "{four:?}");
    Arc::into_inner(store).unwrap().close().unwrap();

    let (store, report) = Store::open_with(sim, dir(), opts).unwrap();
    assert!(report.damaged.is_empty(), "{report:?}");
    assert!(report.truncated.is_empty(), "{report:?}");
    assert!(store.verify().problems.is_empty(), "{:?}", store.verify());
    for v in [4, 5] {
        assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
    }
    for v in 1..=3 {
        assert_eq!(store.read_slice(&key(v)).unwrap(), None);
    }
}

const PRODUCERS: u64 = 3;
const PER_PRODUCER: u64 = 4;

/// Three producers append concurrently on `fs` (one of every four batches
/// urgent) until the first failure; returns the acknowledged batches.
fn run_producers(fs: &SimFileLayer, opts: &StoreOptions) -> BTreeSet<u64> {
    let Ok((store, _)) = Store::open_with(fs.clone(), dir(), opts.clone()) else {
        assert!(fs.has_crashed(), "open failed without a crash");
        return BTreeSet::new();
    };
    let acked = Mutex::new(BTreeSet::new());
    std::thread::scope(|s| {
        for t in 0..PRODUCERS {
            let (store, acked) = (&store, &acked);
            s.spawn(move || {
                for i in 0..PER_PRODUCER {
                    let v = t * PER_PRODUCER + i;
                    let b = if i == 2 { batch(v).urgent() } else { batch(v) };
                    match store.append(b) {
                        Ok(_) => {
                            acked.lock().unwrap().insert(v);
                        }
                        Err(e) => {
                            assert!(fs.has_crashed(), "batch {v} failed without a crash: {e}");
                            return;
                        }
                    }
                }
            });
        }
    });
    acked.into_inner().unwrap()
}

fn check_recovered(fs: &SimFileLayer, opts: &StoreOptions, acked: &BTreeSet<u64>, what: &str) {
    let (store, _) = Store::open_with(fs.clone(), dir(), opts.clone())
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let verify = store.verify();
    assert!(verify.problems.is_empty(), "{what}: {verify:?}");
    let meta = store.meta_records().unwrap();
    for v in 0..PRODUCERS * PER_PRODUCER {
        let slice = store.read_slice(&key(v)).unwrap();
        let has_meta = meta.contains(&format!("meta {v}").into_bytes());
        if acked.contains(&v) {
            assert_eq!(
                slice,
                Some(records(v)),
                "{what}: acknowledged batch {v} lost"
            );
        }
        // A batch is whole or absent: its slice and its meta record together.
        assert_eq!(slice.is_some(), has_meta, "{what}: batch {v} is half there");
    }
    store
        .append(Batch::new().slice(key(999), &records(999)))
        .unwrap();
}

#[test]
fn a_crash_at_any_io_step_with_concurrent_producers_keeps_every_acknowledged_batch() {
    let opts = encrypted(600);
    let clean = SimFileLayer::new();
    let all = run_producers(&clean, &opts);
    assert_eq!(all.len() as u64, PRODUCERS * PER_PRODUCER);
    // Thread timing changes the groups, so the number of operations
    // varies from run to run: every point of the clean run is tried.
    let total_ops = clean.mutating_ops();
    assert!(total_ops > 40, "workload too small: {total_ops} ops");
    for k in 1..=total_ops {
        let fs = SimFileLayer::new();
        fs.crash_at(Some(k));
        let acked = run_producers(&fs, &opts);
        for mode in [CrashMode::DropUnsynced, CrashMode::TornUnsynced { seed: k }] {
            let image = fs.crash_image(mode);
            check_recovered(&image, &opts, &acked, &format!("crash at op {k}, {mode:?}"));
        }
    }
}

#[test]
fn batches_placed_before_a_compaction_are_placed_again_after_it() {
    // The writer is held in batch 0's callback, so batches 1-3 are placed
    // in the active segment but not written when compaction seals it.
    let tmp = tempfile::tempdir().unwrap();
    let opts = encrypted(1 << 20);
    let (store, _) = Store::open(tmp.path(), opts.clone()).unwrap();
    let log: Outcomes = Arc::default();
    let (release, held) = mpsc::channel::<()>();
    let first = log.clone();
    store.append_with(
        batch(0),
        Box::new(move |r| {
            held.recv().unwrap();
            first
                .lock()
                .unwrap()
                .push((0, r.map_err(|e| e.to_string())));
        }),
    );
    for v in 1..=3 {
        store.append_with(batch(v), note(&log, v));
    }
    let plan = common::Plan {
        live: (0..=3).map(key).collect(),
        meta: vec![b"snapshot".to_vec()],
    };
    store.compact(&plan).unwrap();
    release.send(()).unwrap();
    store.append(batch(4)).unwrap();
    let log = log.lock().unwrap().clone();
    for v in 1..=3 {
        let (_, outcome) = log.iter().find(|(w, _)| *w == v).unwrap();
        outcome.as_ref().unwrap();
    }
    store.close().unwrap();
    check_nonces(tmp.path());
    let (store, report) = Store::open(tmp.path(), opts).unwrap();
    assert!(report.damaged.is_empty(), "{report:?}");
    assert!(store.verify().problems.is_empty(), "{:?}", store.verify());
    for v in 0..=4 {
        assert_eq!(store.read_slice(&key(v)).unwrap().unwrap(), records(v));
    }
}

/// The writer thread panics with a group in hand (here a producer's
/// callback, which runs on it, panics): the group was taken from the
/// sequencer, so no queue holds the other batches of that group. Each is
/// answered `Poisoned` all the same (its answer's `Drop`), so no producer
/// waits for ever and a batch placed ahead (start at placement) is known
/// to have failed.
#[test]
fn a_batch_in_the_group_the_writer_panicked_on_is_answered() {
    let fs = SimFileLayer::new();
    let (store, _) = Store::open_with(fs, dir(), encrypted(1 << 20)).unwrap();
    let (release, held) = mpsc::channel::<()>();
    store.append_with(
        batch(0),
        Box::new(move |r| {
            held.recv().unwrap();
            r.unwrap();
        }),
    );
    store.append_with(batch(1), Box::new(|_| panic!("a callback's bug")));
    let (tx, answered) = mpsc::channel();
    let placed = store.append_placing(
        batch(2).urgent(),
        Box::new(move |r| tx.send(r.map_err(|e| e.to_string())).unwrap()),
    );
    assert!(placed);
    release.send(()).unwrap();
    let answer = answered
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("batch 2 is answered");
    let err = answer.unwrap_err();
    assert!(err.contains("panicked"), "{err}");
    let err = store.append(batch(3)).unwrap_err();
    assert!(matches!(err, StoreError::Poisoned { .. }), "{err}");
}
