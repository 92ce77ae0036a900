//! The directory lock is released when a `Store` or a `Runtime` is dropped
//! or closed, before the call returns, even while other threads of the same
//! process start child processes (issue 18: a child forked by another thread
//! shares the lock's open file description until it execs, so a lock that
//! is only released by `close(2)` outlives its store in that window).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::{Runtime, RuntimeOptions};
use booster_store::{Batch, SliceKey, Store, StoreError, StoreOptions};
use booster_tests::faulty_fs::{Fault, FaultyFs};
use booster_tests::rng::scale;

/// Threads that start short-lived child processes until dropped, the way a
/// service running `exec` slices (or this test suite's `mount`) does.
struct Spawners {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Spawners {
    fn start(n: usize) -> Spawners {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut spawned = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let status = Command::new("true")
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                        assert!(status.is_ok(), "spawning `true` failed: {status:?}");
                        spawned += 1;
                    }
                    spawned
                })
            })
            .collect();
        Spawners { stop, threads }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().unwrap()).sum()
    }
}

fn slice_key(i: u64) -> SliceKey {
    SliceKey {
        owner: 1,
        stream: 0,
        seq: i,
    }
}

#[test]
fn a_dropped_poisoned_store_releases_its_lock_while_other_threads_spawn_processes() {
    let dir = tempfile::tempdir().unwrap();
    let spawners = Spawners::start(3);
    for round in 0..scale(300, 3000) {
        let fs = FaultyFs::new();
        let (store, _) = Store::open_with(fs.clone(), dir.path(), StoreOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: open after drop: {e}"));
        fs.arm(Fault::SyncNumber(1));
        let err = store
            .append(Batch::new().slice(slice_key(round), &[b"r".as_slice()]))
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Poisoned { .. }),
            "round {round}: {err}"
        );
        drop(store);
    }
    let spawned = spawners.finish();
    assert!(spawned > 0, "no child process was started during the test");
}

#[test]
fn a_closed_store_releases_its_lock_while_other_threads_spawn_processes() {
    let dir = tempfile::tempdir().unwrap();
    let spawners = Spawners::start(3);
    for round in 0..scale(300, 3000) {
        let (store, _) = Store::open(dir.path(), StoreOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: open after close: {e}"));
        store
            .append(Batch::new().slice(slice_key(round), &[b"r".as_slice()]))
            .unwrap();
        store.close().unwrap();
    }
    let spawned = spawners.finish();
    assert!(spawned > 0, "no child process was started during the test");
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        store.slices(1, 0).len() as u64,
        scale(300, 3000),
        "every acknowledged slice survives the open/close loop"
    );
}

#[test]
fn a_shut_down_or_dropped_runtime_releases_its_lock_while_other_threads_spawn_processes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spawners = Spawners::start(3);
    rt.block_on(async {
        for round in 0..scale(60, 600) {
            let opts = RuntimeOptions {
                workers: 1,
                ..RuntimeOptions::new(dir.path())
            };
            let runtime = Runtime::open(opts)
                .await
                .unwrap_or_else(|e| panic!("round {round}: open after the last one: {e}"));
            if round % 2 == 0 {
                runtime.shutdown(Duration::from_secs(1)).await.unwrap();
            } else {
                drop(runtime);
            }
        }
    });
    let spawned = spawners.finish();
    assert!(spawned > 0, "no child process was started during the test");
}
