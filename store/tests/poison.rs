//! G9: after a failed write or fsync the store refuses writes until reopened.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use booster_store::fs::{FileHandle, FileLayer};
use booster_store::{Batch, OsFileLayer, SliceKey, Store, StoreError, StoreOptions};

/// Real files whose `fdatasync` fails while `fail_sync` is set.
#[derive(Clone, Default)]
struct FlakySync {
    fail_sync: Arc<AtomicBool>,
    disk_full: Arc<AtomicBool>,
}

struct FlakyFile {
    inner: std::fs::File,
    fail_sync: Arc<AtomicBool>,
    disk_full: Arc<AtomicBool>,
}

impl FileHandle for FlakyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.disk_full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc_enospc()));
        }
        FileHandle::write_all_at(&self.inner, buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        FileHandle::len(&self.inner)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        FileHandle::set_len(&self.inner, len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure"));
        }
        FileHandle::sync_data(&self.inner)
    }
}

impl FileLayer for FlakySync {
    type File = FlakyFile;
    type Map = <OsFileLayer as FileLayer>::Map;
    type Lock = <OsFileLayer as FileLayer>::Lock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        OsFileLayer.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        OsFileLayer.list(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<FlakyFile> {
        Ok(FlakyFile {
            inner: OsFileLayer.create_new(path)?,
            fail_sync: self.fail_sync.clone(),
            disk_full: self.disk_full.clone(),
        })
    }
    fn open(&self, path: &Path) -> io::Result<FlakyFile> {
        Ok(FlakyFile {
            inner: OsFileLayer.open(path)?,
            fail_sync: self.fail_sync.clone(),
            disk_full: self.disk_full.clone(),
        })
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsFileLayer.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        OsFileLayer.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        OsFileLayer.sync_dir(dir)
    }
    fn map(&self, file: &FlakyFile) -> io::Result<Self::Map> {
        OsFileLayer.map(&file.inner)
    }
    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<Result<Self::Lock, String>> {
        OsFileLayer.try_lock(path, holder)
    }
}

fn key(seq: u64) -> SliceKey {
    SliceKey {
        owner: 3,
        stream: 1,
        seq,
    }
}

#[test]
fn a_failed_fsync_poisons_the_store_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FlakySync::default();
    let (store, _) = Store::open_with(fs.clone(), dir.path(), StoreOptions::default()).unwrap();
    store.append(Batch::new().slice(key(0), &[b"ok"])).unwrap();
    fs.fail_sync.store(true, Ordering::SeqCst);
    let err = store
        .append(Batch::new().slice(key(1), &[b"lost"]))
        .unwrap_err();
    assert!(matches!(err, StoreError::Poisoned { .. }), "{err}");
    fs.fail_sync.store(false, Ordering::SeqCst);
    // The disk works again, but an fsync failure cannot be retried safely.
    let err = store
        .append(Batch::new().slice(key(2), &[b"later"]))
        .unwrap_err();
    assert!(matches!(err, StoreError::Poisoned { .. }), "{err}");
    assert!(err.to_string().contains("reopen"), "{err}");
    drop(store);
    let (store, _) = Store::open_with(fs, dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        store.read_slice(&key(0)).unwrap().unwrap(),
        vec![b"ok".to_vec()]
    );
    store
        .append(Batch::new().slice(key(2), &[b"later"]))
        .unwrap();
}

/// ENOSPC on Linux and the BSDs.
fn libc_enospc() -> i32 {
    28
}

#[test]
fn a_full_disk_says_so_and_poisons_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FlakySync::default();
    let (store, _) = Store::open_with(fs.clone(), dir.path(), StoreOptions::default()).unwrap();
    store.append(Batch::new().slice(key(0), &[b"ok"])).unwrap();
    fs.disk_full.store(true, Ordering::SeqCst);
    let err = store
        .append(Batch::new().slice(key(1), &[b"lost"]))
        .unwrap_err();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("free space"), "{err}");
    fs.disk_full.store(false, Ordering::SeqCst);
    let err = store
        .append(Batch::new().slice(key(2), &[b"later"]))
        .unwrap_err();
    assert!(matches!(err, StoreError::Poisoned { .. }), "{err}");
    // Classed as disk full (507 over HTTP), whichever write met it first.
    assert!(err.is_disk_full(), "{err}");
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(
        store.read_slice(&key(0)).unwrap().unwrap(),
        vec![b"ok".to_vec()]
    );
}

/// A compaction that fails before it publishes leaves no `*.tmp` behind
/// and does not poison the store: nothing it relies on was written.
#[test]
fn a_compaction_that_fails_before_publishing_removes_its_output() {
    struct KeepAll;
    impl booster_store::CompactionPlan for KeepAll {
        fn slice_is_live(&self, _: &SliceKey) -> bool {
            true
        }
        fn meta_snapshot(&self) -> Vec<Vec<u8>> {
            vec![b"snapshot".to_vec()]
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = FlakySync::default();
    let (store, _) = Store::open_with(fs.clone(), dir.path(), StoreOptions::default()).unwrap();
    store.append(Batch::new().slice(key(0), &[b"ok"])).unwrap();
    store.close().unwrap();
    let (store, _) = Store::open_with(fs.clone(), dir.path(), StoreOptions::default()).unwrap();
    fs.disk_full.store(true, Ordering::SeqCst);
    let err = store.compact(&KeepAll).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    fs.disk_full.store(false, Ordering::SeqCst);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    store
        .append(Batch::new().slice(key(1), &[b"after"]))
        .unwrap();
    store.compact(&KeepAll).unwrap();
    assert_eq!(
        store.read_slice(&key(0)).unwrap().unwrap(),
        vec![b"ok".to_vec()]
    );
}

/// A disk that refuses every write: recovery cannot even seal the last
/// segment, so the store opens read-only: everything reads, and every
/// append says why it is refused.
#[test]
fn a_disk_that_takes_no_write_opens_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FlakySync::default();
    {
        let (store, _) = Store::open_with(fs.clone(), dir.path(), StoreOptions::default()).unwrap();
        store.append(Batch::new().slice(key(0), &[b"ok"])).unwrap();
        // Dropped without close: the last segment stays unsealed.
    }
    fs.disk_full.store(true, Ordering::SeqCst);
    let (store, report) =
        Store::open_with(fs.clone(), dir.path(), StoreOptions::default()).unwrap();
    assert!(report.read_only, "{report:?}");
    assert_eq!(
        store.read_slice(&key(0)).unwrap().unwrap(),
        vec![b"ok".to_vec()]
    );
    let err = store
        .append(Batch::new().slice(key(1), &[b"x"]))
        .unwrap_err();
    assert!(
        err.to_string().contains("read-only") && err.to_string().contains("free space"),
        "{err}"
    );
    drop(store);
    fs.disk_full.store(false, Ordering::SeqCst);
    let (store, report) = Store::open_with(fs, dir.path(), StoreOptions::default()).unwrap();
    assert!(!report.read_only);
    store.append(Batch::new().slice(key(1), &[b"x"])).unwrap();
}

/// A batch that waits for room (`Batch::needs_room`, a checkpoint) is
/// refused unwritten when the disk lacks room for it, and poisons
/// nothing: a small batch after it is written, and once space is freed
/// the large one is too. Without the mark, the same batch meets the full
/// disk and poisons the store (G9).
#[test]
fn a_batch_that_waits_for_room_is_refused_unwritten_on_a_full_disk_and_poisons_nothing() {
    use booster_store::fs::sim::SimFileLayer;
    let fs = SimFileLayer::new();
    let opts = || StoreOptions {
        reserve_bytes: 0,
        zstd_level: 0,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open_with(fs.clone(), "/d", opts()).unwrap();
    // 64 KB that no compression shrinks much.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let big: Vec<u8> = (0..64 << 10)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    store.append(Batch::new().slice(key(0), &[b"ok"])).unwrap();
    fs.set_quota(Some(fs.used_bytes() + (32 << 10)));
    let large = || {
        Batch::new()
            .slice(key(1), &[&big])
            .needs_room("a large batch")
    };
    let err = store.append(large()).unwrap_err();
    assert!(matches!(err, StoreError::NoSpace { .. }), "{err}");
    assert!(
        err.to_string().contains("a large batch") && err.to_string().contains("free space"),
        "{err}"
    );
    store
        .append(Batch::new().slice(key(2), &[b"small"]))
        .unwrap();
    fs.set_quota(None);
    store.append(large()).unwrap();
    assert_eq!(
        store.read_slice(&key(1)).unwrap().unwrap(),
        vec![big.clone()]
    );
    // The same batch without the mark poisons.
    fs.set_quota(Some(fs.used_bytes() + (32 << 10)));
    let err = store
        .append(Batch::new().slice(key(3), &[&big]))
        .unwrap_err();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
    drop(store);
    fs.set_quota(None);
    let (store, _) = Store::open_with(fs, "/d", opts()).unwrap();
    for k in [0, 1, 2] {
        assert!(store.read_slice(&key(k)).unwrap().is_some(), "key {k}");
    }
}

/// The review of faults12, finding 2: a batch that waits for room counts
/// the seal it may trigger. A segment of many small frames has a large
/// seal footer (a footer entry and a sorted-run entry per frame); a
/// large batch that crosses the segment's size seals it right after its
/// group is written. On a disk with room for the batch twice over but not
/// for that seal, the batch is refused unwritten; before, it was written
/// and acknowledged, and the seal met the full disk and poisoned the
/// store (G9).
#[test]
fn a_batch_that_waits_for_room_counts_the_seal_it_triggers() {
    use booster_store::fs::sim::SimFileLayer;
    let fs = SimFileLayer::new();
    let opts = || StoreOptions {
        reserve_bytes: 0,
        zstd_level: 0,
        segment_size_bytes: 256 << 10,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open_with(fs.clone(), "/d", opts()).unwrap();
    // 3 000 frames of a few bytes: about 200 KB of frames in the active
    // segment, and a seal of about twice that.
    for n in 0..3000 {
        store
            .append(Batch::new().slice(key(10 + n), &[b"tiny"]))
            .unwrap();
    }
    // 64 KB that no compression shrinks: it crosses 256 KiB.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let big: Vec<u8> = (0..64 << 10)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let large = || {
        Batch::new()
            .slice(key(1), &[&big])
            .needs_room("a large batch")
    };
    // Room for the batch twice over with headroom, not for the seal.
    fs.set_quota(Some(fs.used_bytes() + (250 << 10)));
    let err = store.append(large()).unwrap_err();
    assert!(matches!(err, StoreError::NoSpace { .. }), "{err}");
    store
        .append(Batch::new().slice(key(2), &[b"small"]))
        .unwrap();
    fs.set_quota(None);
    store.append(large()).unwrap();
    store
        .append(Batch::new().slice(key(3), &[b"after"]))
        .unwrap();
    drop(store);
    let (store, _) = Store::open_with(fs, "/d", opts()).unwrap();
    assert_eq!(store.read_slice(&key(1)).unwrap().unwrap(), vec![big]);
    for k in [2, 3, 10, 3009] {
        assert!(store.read_slice(&key(k)).unwrap().is_some(), "key {k}");
    }
}
