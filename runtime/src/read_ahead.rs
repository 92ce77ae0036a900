//! A download's slices read ahead of its reader on a few threads, so the
//! CRC check, AES-GCM and zstd of a large download run on every core (the
//! per-record copies stay on the thread iterating the download), while
//! the reader still gets each slice's read in the download's order. At
//! most `DOWNLOADS_READING_AHEAD` downloads of a runtime read ahead at
//! once (`ReadAheadSlots`); a further one reads on its own thread. The reads are the store's own (`read_slice_records`): an
//! error or a missing frame comes back as it is, when the reader reaches
//! that slice, and the download reports it there as it does for a read on
//! its own thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use booster_store::{SliceKey, SliceRecords, StoreError};
use crossbeam_channel::{Receiver, Sender};

use crate::slice_store::SliceStore;

/// One slice's read, as `SliceStore::read_slice_records` answers it: its
/// records in one buffer, so the reader makes (and frees) each record's
/// `Vec` on its own thread, never across threads.
pub(crate) type SliceRead = Result<Option<SliceRecords>, StoreError>;

/// Decoded bytes read ahead at most, besides the slice the reader holds
/// and except that one slice, of any size, is always read ahead: a
/// download's memory follows its position, never its size (G10). A
/// slice of unknown size counts as this much, so it is read ahead alone.
const READ_AHEAD_BYTES: u64 = 8 << 20;

/// Reads requested per reader thread at most: enough that a thread never
/// waits for the reader to ask, few enough to keep memory small.
const READS_PER_THREAD: usize = 2;

/// Downloads of one runtime reading ahead at once at most: each runs a
/// reader per core and holds up to `READ_AHEAD_BYTES`, so many concurrent
/// downloads (an API's requests) must not multiply threads and memory.
pub(crate) const DOWNLOADS_READING_AHEAD: usize = 2;

type Request = (SliceKey, Sender<SliceRead>);

/// A runtime's count of downloads reading ahead (`Shared`).
#[derive(Default)]
pub(crate) struct ReadAheadSlots(AtomicUsize);

impl ReadAheadSlots {
    /// One of the `DOWNLOADS_READING_AHEAD` slots, if one is free.
    fn take(self: &Arc<Self>) -> Option<Slot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < DOWNLOADS_READING_AHEAD).then_some(n + 1)
            })
            .ok()?;
        Some(Slot(self.clone()))
    }
}

/// A slot held: given back when dropped.
struct Slot(Arc<ReadAheadSlots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A read handed to a reader thread, in the download's order.
struct Pending {
    key: SliceKey,
    bytes: u64,
    answer: Receiver<SliceRead>,
}

/// The slices a download will read, in its order, each with its decoded
/// size where the index knows it.
pub(crate) struct ReadAhead {
    store: Arc<dyn SliceStore>,
    threads_max: usize,
    /// The runtime's slots; None: never read ahead (`after_output`).
    slots: Option<Arc<ReadAheadSlots>>,
    /// Held while the threads run.
    slot: Option<Slot>,
    /// Reading ahead was tried (started, or found no slot or no thread):
    /// it is tried once a download.
    tried: bool,
    /// Set when the download stops: the threads read nothing more.
    stopped: Arc<AtomicBool>,
    queue: VecDeque<(SliceKey, Option<u32>)>,
    pending: VecDeque<Pending>,
    pending_bytes: u64,
    requests: Option<Sender<Request>>,
    threads: Vec<JoinHandle<()>>,
}

impl ReadAhead {
    /// Reads `keys` in this order on up to `threads` threads, started at
    /// the first read, only for two slices or more and only if one of
    /// `slots` is free (without one, or with no `slots`, such as a
    /// handler's `after_output`, the download reads on its own thread).
    pub fn new(
        store: Arc<dyn SliceStore>,
        keys: Vec<(SliceKey, Option<u32>)>,
        threads: usize,
        slots: Option<Arc<ReadAheadSlots>>,
    ) -> ReadAhead {
        ReadAhead {
            store,
            threads_max: threads,
            slots,
            slot: None,
            tried: false,
            stopped: Arc::new(AtomicBool::new(false)),
            queue: keys.into(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            requests: None,
            threads: Vec::new(),
        }
    }

    /// Drops the next key of the list unread (a remote worker's cursor
    /// resumes past it). Only before the first read: nothing is pending.
    pub fn skip(&mut self) {
        debug_assert!(self.pending.is_empty(), "skips come before any read");
        self.queue.pop_front();
    }

    /// The read of `key`, which must be the next key of the list.
    pub fn read(&mut self, key: &SliceKey) -> SliceRead {
        if !self.tried && self.threads_max >= 2 && self.queue.len() >= 2 {
            self.tried = true;
            self.start();
        }
        self.request_more();
        if let Some(p) = self.pending.pop_front() {
            debug_assert_eq!(p.key, *key, "reads follow the download's order");
            if p.key == *key {
                self.pending_bytes -= p.bytes;
                self.request_more();
                // A reader thread that stopped (it panicked) dropped its
                // answer: the read is repeated here, as reads are pure.
                let answer = p
                    .answer
                    .recv()
                    .unwrap_or_else(|_| self.store.read_slice_records(key));
                if self.pending.is_empty() && self.queue.is_empty() {
                    // Every read is handed out: the threads and the slot
                    // are not kept until the download is dropped.
                    self.stop();
                }
                return answer;
            }
            // Out of step: no further read ahead can be trusted.
            self.stop();
            return self.store.read_slice_records(key);
        }
        let next = self.queue.pop_front().map(|(next, _)| next);
        debug_assert_eq!(next, Some(*key), "reads follow the download's order");
        if next != Some(*key) {
            self.stop();
        }
        self.store.read_slice_records(key)
    }

    /// Stops reading ahead (the download stopped): reads not handed out
    /// are dropped and the threads end. Later reads, if any, are inline.
    pub fn stop(&mut self) {
        self.queue.clear();
        // Requests queued are not read: each thread ends after the read
        // it is doing.
        self.stopped.store(true, Ordering::Release);
        self.requests = None;
        self.pending.clear();
        self.pending_bytes = 0;
        for thread in self.threads.drain(..) {
            // A thread ends after the read it is doing; one that panicked
            // has nothing more to say.
            let _ = thread.join();
        }
        self.slot = None;
    }

    fn start(&mut self) {
        let Some(slot) = self.slots.as_ref().and_then(ReadAheadSlots::take) else {
            return;
        };
        let (tx, rx) = crossbeam_channel::unbounded::<Request>();
        for i in 0..self.threads_max.min(self.queue.len()) {
            let (rx, store) = (rx.clone(), self.store.clone());
            let stopped = self.stopped.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("booster-read-{i}"))
                .spawn(move || {
                    for (key, answer) in rx {
                        if stopped.load(Ordering::Acquire) {
                            break;
                        }
                        // The reader may have stopped; its read is not needed.
                        let _ = answer.send(store.read_slice_records(&key));
                    }
                });
            match spawned {
                Ok(thread) => self.threads.push(thread),
                // No more threads now: those started will do.
                Err(_) => break,
            }
        }
        if !self.threads.is_empty() {
            self.requests = Some(tx);
            self.slot = Some(slot);
        }
    }

    /// Hands reader threads the next slices while the window has room:
    /// at least one, then up to `READS_PER_THREAD` per thread and
    /// `READ_AHEAD_BYTES` of decoded records.
    fn request_more(&mut self) {
        let Some(requests) = &self.requests else {
            return;
        };
        let max_pending = READS_PER_THREAD * self.threads.len();
        while let Some(&(key, size)) = self.queue.front() {
            let bytes = size.map_or(READ_AHEAD_BYTES, u64::from);
            let full =
                self.pending.len() >= max_pending || self.pending_bytes + bytes > READ_AHEAD_BYTES;
            if !self.pending.is_empty() && full {
                break;
            }
            let (tx, rx) = crossbeam_channel::bounded(1);
            if requests.send((key, tx)).is_err() {
                // No reader thread is left: the rest is read inline.
                break;
            }
            self.queue.pop_front();
            self.pending.push_back(Pending {
                key,
                bytes,
                answer: rx,
            });
            self.pending_bytes += bytes;
        }
    }
}

impl Drop for ReadAhead {
    /// The threads are joined, so none outlives the download (nor holds
    /// the store after the runtime shut down).
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::logged_tests::Logged;

    fn keys(n: u64) -> Vec<(SliceKey, Option<u32>)> {
        (0..n)
            .map(|seq| {
                let key = SliceKey {
                    owner: 7,
                    stream: 1,
                    seq,
                };
                (key, Some(1))
            })
            .collect()
    }

    /// Before the stop flag, `stop` dropped the sender and joined: the
    /// threads still read every request queued (5 here) for nobody.
    #[test]
    fn a_stopped_read_ahead_reads_only_the_slices_under_way() {
        let logged = Logged::new(crate::state_tests::state());
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let shut = gate.clone();
        logged.watch_reads(move |key| {
            if key.seq > 0 {
                let (open, cv) = &*shut;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
            }
        });
        let before = logged.reads();
        let mut reads = ReadAhead::new(logged.store.clone(), keys(60), 2, Some(Arc::default()));
        assert!(reads.read(&keys(1)[0].0).is_ok());
        // Two threads, two reads each: slices 0 to 4 are requested now,
        // 1 and 2 (at most) under way at the gate.
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            *gate.0.lock().unwrap() = true;
            gate.1.notify_all();
        });
        reads.stop();
        opener.join().unwrap();
        let done = logged.reads() - before;
        assert!(
            done <= 3,
            "{done} slices read for a download stopped after one"
        );
    }

    /// With the runtime's slots held, a further download reads every
    /// slice (in order: `read` asserts it) on its own thread (before the slots it started a
    /// reader per core whatever ran).
    #[test]
    fn a_download_without_a_free_read_ahead_slot_reads_on_its_own_thread() {
        let logged = Logged::new(crate::state_tests::state());
        let slots: Arc<ReadAheadSlots> = Arc::default();
        let mut held = Vec::new();
        for _ in 0..DOWNLOADS_READING_AHEAD {
            let mut r = ReadAhead::new(logged.store.clone(), keys(60), 2, Some(slots.clone()));
            assert!(r.read(&keys(1)[0].0).is_ok());
            assert!(
                !r.threads.is_empty(),
                "a download with a free slot reads ahead"
            );
            held.push(r);
        }
        let mut r = ReadAhead::new(logged.store.clone(), keys(60), 2, Some(slots.clone()));
        for (key, _) in keys(60) {
            assert!(r.read(&key).is_ok());
            assert!(r.threads.is_empty(), "no reader thread without a slot");
        }
        drop(held);
        assert_eq!(slots.0.load(Ordering::Acquire), 0, "slots given back");
        let mut r = ReadAhead::new(logged.store.clone(), keys(60), 2, Some(slots.clone()));
        assert!(r.read(&keys(1)[0].0).is_ok());
        assert!(!r.threads.is_empty(), "a slot given back is taken again");
        // A download that found no `slots` (a handler's `after_output`)
        // never reads ahead.
        let mut r = ReadAhead::new(logged.store.clone(), keys(60), 2, None);
        assert!(r.read(&keys(1)[0].0).is_ok());
        assert!(r.threads.is_empty());
    }
}
