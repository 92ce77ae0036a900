//! `Batch::urgent` (issue 17): an urgent batch is committed in the writer's
//! next group, ahead of batches already queued behind the group in flight,
//! and is as durable and whole as any other.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use booster_store::{Batch, Receipt, SliceKey, Store, StoreError, StoreOptions};

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 4,
        stream: 0,
        seq,
    }
}

/// Incompressible records of about `bytes` bytes in all.
fn noise(seed: u64, bytes: usize) -> Vec<Vec<u8>> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..bytes / 1024)
        .map(|_| {
            (0..1024)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 56) as u8
                })
                .collect()
        })
        .collect()
}

type Log = Arc<Mutex<Vec<(String, Receipt)>>>;

fn note(log: &Log, name: String) -> Box<dyn FnOnce(Result<Receipt, StoreError>) + Send> {
    let log = log.clone();
    Box::new(move |r| log.lock().unwrap().push((name, r.unwrap())))
}

#[test]
fn an_urgent_batch_is_committed_ahead_of_a_queued_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        segment_size_bytes: 256 << 20,
        reserve_bytes: 0,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), opts.clone()).unwrap();
    let log: Log = Arc::default();
    // The writer is held inside the first batch's callback until the
    // backlog (five groups' worth) and the urgent batch are all queued.
    let (release, held) = mpsc::channel::<()>();
    let first_log = log.clone();
    store.append_with(
        Batch::new().slice(key(0), &noise(0, 1024)),
        Box::new(move |r| {
            held.recv().unwrap();
            first_log.lock().unwrap().push(("first".into(), r.unwrap()));
        }),
    );
    for v in 1..=20 {
        store.append_with(
            Batch::new().slice(key(v), &noise(v, 1 << 20)),
            note(&log, format!("backlog {v}")),
        );
    }
    let urgent_done = note(&log, "urgent".into());
    store.append_with(
        Batch::new()
            .slice(key(99), &[b"priority 1".as_slice()])
            .meta(b"created 99".to_vec())
            .urgent(),
        urgent_done,
    );
    release.send(()).unwrap();
    store.close().unwrap();

    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 22, "every batch acknowledged");
    let at = log.iter().position(|(n, _)| n == "urgent").unwrap();
    assert!(
        at <= 6,
        "the urgent batch waited behind {} backlog batches (the writer takes at most \
         4 MiB, four or five of them, per group): {:?}",
        at - 1,
        log.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
    );
    let urgent = log[at].1;
    let last_backlog = log
        .iter()
        .rev()
        .find(|(n, _)| n.starts_with("backlog"))
        .unwrap()
        .1;
    assert!(
        (urgent.segment_id, urgent.first_frame_seq)
            < (last_backlog.segment_id, last_backlog.first_frame_seq),
        "committed ahead of the backlog's tail on disk too"
    );

    // As durable and whole as any batch.
    let (store, _) = Store::open(dir.path(), opts).unwrap();
    assert_eq!(
        store.read_slice(&key(99)).unwrap().unwrap(),
        vec![b"priority 1".to_vec()]
    );
    assert!(store
        .meta_records()
        .unwrap()
        .contains(&b"created 99".to_vec()));
    for v in 1..=20 {
        assert_eq!(
            store.read_slice(&key(v)).unwrap().unwrap(),
            noise(v, 1 << 20)
        );
    }
}
