//! A simulated file system for fault tests. It keeps, per file, the durable
//! bytes (as of the last `sync_data`) and the writes since; per directory
//! entry, the durable namespace (as of the last directory fsync) and the
//! current one. A test can make the k-th mutating operation fail as a crash
//! and then take a `crash_image`: what a machine would find after power
//! loss, with the unsynced writes dropped, kept, or torn.
//!
//! Simplifications: directories themselves are durable once created; a
//! torn write keeps a prefix of the operations since the last sync, the
//! last of them cut short and optionally zero-filled to its full length
//! (the size reached the disk, the data did not); unsynced directory changes
//! (create, rename, remove) survive as a prefix, in order, each atomic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{FileHandle, FileLayer};

/// What happens to writes that were not synced when the machine stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    DropUnsynced,
    KeepUnsynced,
    /// A seeded choice per file: a prefix of its unsynced writes, the last
    /// one torn, sometimes zero-filled.
    TornUnsynced {
        seed: u64,
    },
}

#[derive(Clone)]
enum Op {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Op>,
}

/// A directory change not yet made durable by a directory fsync.
#[derive(Clone)]
enum NsOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
    /// Atomic: the new name appears as the old one goes.
    Rename(PathBuf, PathBuf, u64),
}

#[derive(Default)]
struct SimState {
    /// Namespace changes since the last directory fsync, in order; a crash
    /// keeps none, all, or a prefix of them (metadata journals commit in order).
    ns_pending: Vec<NsOp>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    entries: BTreeMap<PathBuf, u64>,
    durable_entries: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    mutating_ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
    /// The disk's size for the files' bytes (None: unbounded): a write or
    /// a size change that would pass it fails with ENOSPC, changing nothing.
    quota: Option<u64>,
    /// `hold_syncs`: a file's `sync_data` waits while set.
    syncs_held: bool,
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the machine is down")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl SimState {
    fn alive(&self) -> io::Result<()> {
        if self.crashed {
            Err(crashed())
        } else {
            Ok(())
        }
    }

    /// Counts a mutating operation; the one numbered `crash_at` never happens.
    fn tick(&mut self) -> io::Result<()> {
        self.alive()?;
        self.mutating_ops += 1;
        if self.crash_at == Some(self.mutating_ops) {
            self.crashed = true;
            return Err(crashed());
        }
        Ok(())
    }

    fn inode(&mut self, id: u64) -> &mut Inode {
        self.inodes
            .get_mut(&id)
            .expect("open files keep their inode")
    }

    /// Bytes the files in the namespace hold.
    fn used_bytes(&self) -> u64 {
        let linked: BTreeSet<u64> = self.entries.values().copied().collect();
        linked
            .iter()
            .filter_map(|id| self.inodes.get(id))
            .map(|inode| inode.data.len() as u64)
            .sum()
    }

    /// ENOSPC when growing file `id` to `len` bytes would pass the quota.
    fn room_for(&self, id: u64, len: u64) -> io::Result<()> {
        let Some(quota) = self.quota else {
            return Ok(());
        };
        let have = self.inodes.get(&id).map_or(0, |i| i.data.len() as u64);
        let growth = len.saturating_sub(have);
        if growth > 0 && self.used_bytes().saturating_add(growth) > quota {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }
}

fn apply(data: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, bytes } => {
            let start = *offset as usize;
            let end = start + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[start..end].copy_from_slice(bytes);
        }
        Op::SetLen(len) => data.resize(*len as usize, 0),
    }
}

/// A small deterministic generator (splitmix64) for torn-write choices.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn after_crash(inode: &Inode, mode: CrashMode, salt: u64) -> Vec<u8> {
    let mut data = inode.durable.clone();
    match mode {
        CrashMode::DropUnsynced => {}
        CrashMode::KeepUnsynced => inode.pending.iter().for_each(|op| apply(&mut data, op)),
        CrashMode::TornUnsynced { seed } => {
            let mut rng = seed ^ salt.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let kept = (next_random(&mut rng) % (inode.pending.len() as u64 + 1)) as usize;
            inode.pending[..kept]
                .iter()
                .for_each(|op| apply(&mut data, op));
            if let Some(Op::Write { offset, bytes }) = inode.pending.get(kept) {
                let cut = (next_random(&mut rng) % (bytes.len() as u64 + 1)) as usize;
                let mut torn = bytes[..cut].to_vec();
                if next_random(&mut rng) & 1 == 0 {
                    torn.resize(bytes.len(), 0);
                }
                apply(
                    &mut data,
                    &Op::Write {
                        offset: *offset,
                        bytes: torn,
                    },
                );
            }
        }
    }
    data
}

/// The simulated file system. Clones share state.
#[derive(Clone, Default)]
pub struct SimFileLayer {
    state: Arc<Mutex<SimState>>,
}

impl SimFileLayer {
    pub fn new() -> SimFileLayer {
        SimFileLayer::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes mutating operation number `k` (counted from 1 since creation)
    /// fail as a crash; every operation after it fails too.
    pub fn crash_at(&self, k: Option<u64>) {
        self.lock().crash_at = k;
    }

    /// Mutating operations so far (writes, syncs, creates, renames, removes).
    pub fn mutating_ops(&self) -> u64 {
        self.lock().mutating_ops
    }

    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Bounds the files' bytes at `bytes` (a disk that fills: writes past
    /// it fail with ENOSPC and `free_bytes` says what is left), or lifts
    /// the bound (`None`: space freed).
    pub fn set_quota(&self, bytes: Option<u64>) {
        self.lock().quota = bytes;
    }

    /// Holds every file's `sync_data` from now on (each waits before it
    /// happens, as a slow disk's `fdatasync` does) until called with false:
    /// what a process does while a group's sync is under way, without
    /// timing.
    pub fn hold_syncs(&self, held: bool) {
        self.lock().syncs_held = held;
    }

    /// Bytes the files hold now.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    /// What a machine finds after power loss now: the durable namespace, each
    /// file's synced bytes, and its unsynced writes treated as `mode` says.
    pub fn crash_image(&self, mode: CrashMode) -> SimFileLayer {
        let s = self.lock();
        let mut image = SimState {
            dirs: s.dirs.clone(),
            next_inode: s.next_inode,
            ..SimState::default()
        };
        let mut namespace = s.durable_entries.clone();
        let kept_ops = match mode {
            CrashMode::DropUnsynced => 0,
            CrashMode::KeepUnsynced => s.ns_pending.len(),
            CrashMode::TornUnsynced { seed } => {
                let mut rng = seed;
                (next_random(&mut rng) % (s.ns_pending.len() as u64 + 1)) as usize
            }
        };
        for op in &s.ns_pending[..kept_ops] {
            match op {
                NsOp::Link(path, id) => {
                    namespace.insert(path.clone(), *id);
                }
                NsOp::Unlink(path) => {
                    namespace.remove(path);
                }
                NsOp::Rename(from, to, id) => {
                    namespace.remove(from);
                    namespace.insert(to.clone(), *id);
                }
            }
        }
        for (path, id) in namespace {
            let inode = &s.inodes[&id];
            let data = after_crash(inode, mode, id);
            image.inodes.insert(
                id,
                Inode {
                    durable: data.clone(),
                    data,
                    pending: Vec::new(),
                },
            );
            image.entries.insert(path.clone(), id);
            image.durable_entries.insert(path, id);
        }
        SimFileLayer {
            state: Arc::new(Mutex::new(image)),
        }
    }

    /// The current bytes of a file.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        let id = s.entries.get(path)?;
        Some(s.inodes[id].data.clone())
    }

    /// Replaces (or creates) a file with `bytes`, durable at once.
    pub fn write_file(&self, path: &Path, bytes: &[u8]) {
        let mut s = self.lock();
        let id = match s.entries.get(path) {
            Some(id) => *id,
            None => {
                s.next_inode += 1;
                s.next_inode
            }
        };
        s.inodes.insert(
            id,
            Inode {
                data: bytes.to_vec(),
                durable: bytes.to_vec(),
                pending: Vec::new(),
            },
        );
        s.entries.insert(path.to_path_buf(), id);
        s.durable_entries.insert(path.to_path_buf(), id);
        if let Some(parent) = path.parent() {
            s.dirs.insert(parent.to_path_buf());
        }
    }

    /// Removes a file at once and durably (a file lost by an operator).
    pub fn remove_file(&self, path: &Path) {
        let mut s = self.lock();
        s.entries.remove(path);
        s.durable_entries.remove(path);
    }

    /// Paths of the files in `dir`, sorted.
    pub fn files(&self, dir: &Path) -> Vec<PathBuf> {
        let s = self.lock();
        s.entries
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect()
    }

    /// An independent copy with the same current state, all of it durable.
    pub fn snapshot(&self) -> SimFileLayer {
        let s = self.lock();
        let mut image = SimState {
            dirs: s.dirs.clone(),
            next_inode: s.next_inode,
            ..SimState::default()
        };
        for (path, id) in &s.entries {
            let data = s.inodes[id].data.clone();
            image.inodes.insert(
                *id,
                Inode {
                    durable: data.clone(),
                    data,
                    pending: Vec::new(),
                },
            );
            image.entries.insert(path.clone(), *id);
            image.durable_entries.insert(path.clone(), *id);
        }
        drop(s);
        SimFileLayer {
            state: Arc::new(Mutex::new(image)),
        }
    }
}

/// An open simulated file (like a file descriptor: it follows the inode).
pub struct SimFile {
    state: Arc<Mutex<SimState>>,
    inode: u64,
}

impl SimFile {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FileHandle for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut s = self.lock();
        s.alive()?;
        let data = &s.inode(self.inode).data;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start.checked_add(buf.len()).filter(|e| *e <= data.len());
        let Some(end) = end else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        };
        buf.copy_from_slice(&data[start..end]);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        s.room_for(self.inode, offset.saturating_add(buf.len() as u64))?;
        let op = Op::Write {
            offset,
            bytes: buf.to_vec(),
        };
        let inode = s.inode(self.inode);
        apply(&mut inode.data, &op);
        inode.pending.push(op);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut s = self.lock();
        s.alive()?;
        Ok(s.inode(self.inode).data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        s.room_for(self.inode, len)?;
        let inode = s.inode(self.inode);
        apply(&mut inode.data, &Op::SetLen(len));
        inode.pending.push(Op::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.lock();
        while s.syncs_held {
            drop(s);
            std::thread::sleep(std::time::Duration::from_millis(1));
            s = self.lock();
        }
        s.tick()?;
        let inode = s.inode(self.inode);
        inode.durable = inode.data.clone();
        inode.pending.clear();
        Ok(())
    }
}

/// A read-only copy of a sealed file.
pub struct SimMap(Arc<[u8]>);

impl std::ops::Deref for SimMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Held while a simulated directory is locked.
pub struct SimLock {
    state: Arc<Mutex<SimState>>,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.locks.remove(&self.path);
    }
}

impl FileLayer for SimFileLayer {
    type File = SimFile;
    type Map = SimMap;
    type Lock = SimLock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.alive()?;
        s.dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        s.alive()?;
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(s.entries
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn create_new(&self, path: &Path) -> io::Result<SimFile> {
        let mut s = self.lock();
        s.tick()?;
        if s.entries.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"));
        }
        s.next_inode += 1;
        let id = s.next_inode;
        s.inodes.insert(id, Inode::default());
        s.entries.insert(path.to_path_buf(), id);
        s.ns_pending.push(NsOp::Link(path.to_path_buf(), id));
        Ok(SimFile {
            state: Arc::clone(&self.state),
            inode: id,
        })
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let s = self.lock();
        s.alive()?;
        let id = *s.entries.get(path).ok_or_else(|| not_found(path))?;
        Ok(SimFile {
            state: Arc::clone(&self.state),
            inode: id,
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        let id = s.entries.remove(from).ok_or_else(|| not_found(from))?;
        s.entries.insert(to.to_path_buf(), id);
        s.ns_pending
            .push(NsOp::Rename(from.to_path_buf(), to.to_path_buf(), id));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        s.entries.remove(path).ok_or_else(|| not_found(path))?;
        s.ns_pending.push(NsOp::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        s.durable_entries.retain(|p, _| p.parent() != Some(dir));
        let current: Vec<(PathBuf, u64)> = s
            .entries
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        s.durable_entries.extend(current);
        s.ns_pending.retain(|op| match op {
            NsOp::Link(p, _) | NsOp::Unlink(p) => p.parent() != Some(dir),
            NsOp::Rename(from, to, _) => from.parent() != Some(dir) && to.parent() != Some(dir),
        });
        Ok(())
    }

    fn map(&self, file: &SimFile) -> io::Result<SimMap> {
        let mut s = self.lock();
        s.alive()?;
        Ok(SimMap(s.inode(file.inode).data.clone().into()))
    }

    fn free_bytes(&self, _dir: &Path) -> io::Result<u64> {
        let s = self.lock();
        s.alive()?;
        Ok(s.quota
            .map_or(u64::MAX, |q| q.saturating_sub(s.used_bytes())))
    }

    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<Result<SimLock, String>> {
        let mut s = self.lock();
        s.alive()?;
        if !s.locks.insert(path.to_path_buf()) {
            return Ok(Err(holder.to_string()));
        }
        Ok(Ok(SimLock {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
        }))
    }
}
