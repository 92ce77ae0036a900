//! Out of file descriptors (EMFILE): the store cannot create its next
//! segment. Nothing was written, so that request fails with a clear error and
//! the store is not poisoned (issue 11: idle clients that use up descriptors
//! must not stop all writes for good). Its own test binary, because it lowers
//! the process's open-file limit.

use std::fs::File;

use booster_store::{Batch, SliceKey, Store, StoreError, StoreOptions};

/// A record larger than a segment, so every batch fills its segment and the
/// next append must create a new one.
fn record(tag: &str) -> Vec<u8> {
    let mut r = tag.as_bytes().to_vec();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    while r.len() < 600 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.push(b'a' + (x % 26) as u8);
    }
    r
}

fn key(i: u64) -> SliceKey {
    SliceKey {
        owner: 1,
        stream: 0,
        seq: i,
    }
}

/// Opens files until the process has no descriptor left; returns them.
fn use_up_descriptors(dir: &std::path::Path) -> Vec<File> {
    let mut held = Vec::new();
    let path = dir.join("filler");
    std::fs::write(&path, b"x").unwrap();
    loop {
        match File::open(&path) {
            Ok(f) => held.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return held,
            Err(e) => panic!("unexpected error while using up descriptors: {e}"),
        }
        assert!(held.len() < 100_000, "the descriptor limit was not lowered");
    }
}

#[test]
fn running_out_of_descriptors_fails_the_append_and_never_poisons_the_store() {
    // A low limit, so using it up is quick.
    let limit = libc::rlimit {
        rlim_cur: 256,
        rlim_max: 4096,
    };
    // SAFETY: setrlimit with a valid pointer to an initialised rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let dir = tempfile::tempdir().unwrap();
    let spare = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        // Every batch fills a segment: each append creates a new one.
        segment_size_bytes: 256,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), opts.clone()).unwrap();
    store
        .append(Batch::new().slice(key(0), &[record("before")]))
        .unwrap();

    let held = use_up_descriptors(spare.path());
    let err = store
        .append(Batch::new().slice(key(1), &[record("starved")]))
        .expect_err("no descriptor is left to create a segment");
    assert!(
        matches!(err, StoreError::Unavailable { .. }),
        "expected Unavailable, got {err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("nothing was written") && text.contains("ulimit -n"),
        "{text}"
    );
    drop(held);

    // Descriptors are back: the same store takes writes again.
    store
        .append(Batch::new().slice(key(2), &[record("after")]))
        .expect("the store is not poisoned by EMFILE");
    store.close().unwrap();
    let (store, _) = Store::open(dir.path(), opts).unwrap();
    assert_eq!(
        store.read_slice(&key(0)).unwrap(),
        Some(vec![record("before")])
    );
    assert_eq!(
        store.read_slice(&key(1)).unwrap(),
        None,
        "never acknowledged"
    );
    assert_eq!(
        store.read_slice(&key(2)).unwrap(),
        Some(vec![record("after")])
    );
}
