//! A download's slices read ahead of its reader on a few threads, so the
//! CRC check, AES-GCM, zstd and the per-record copies of a large download
//! run on every core, while the reader still gets each slice's read in the
//! download's order. The reads are the store's own (`read_slice_records`): an
//! error or a missing frame comes back as it is, when the reader reaches
//! that slice, and the download reports it there as it does for a read on
//! its own thread.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use booster_store::{SliceKey, SliceRecords, StoreError};
use crossbeam_channel::{Receiver, Sender};

use crate::slice_store::SliceStore;

/// One slice's read, as `SliceStore::read_slice_records` answers it: its
/// records in one buffer, so the reader makes (and frees) each record's
/// `Vec` on its own thread, never across threads.
pub(crate) type SliceRead = Result<Option<SliceRecords>, StoreError>;

/// Decoded bytes read ahead at most, besides the slice the reader holds:
/// a download's memory follows its position, never its size (G10). A
/// slice of unknown size counts as this much, so it is read ahead alone.
const READ_AHEAD_BYTES: u64 = 8 << 20;

/// Reads requested per reader thread at most: enough that a thread never
/// waits for the reader to ask, few enough to keep memory small.
const READS_PER_THREAD: usize = 2;

type Request = (SliceKey, Sender<SliceRead>);

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
    queue: VecDeque<(SliceKey, Option<u32>)>,
    pending: VecDeque<Pending>,
    pending_bytes: u64,
    requests: Option<Sender<Request>>,
    threads: Vec<JoinHandle<()>>,
}

impl ReadAhead {
    /// Reads `keys` in this order on up to `threads` threads, started at
    /// the first read and only for two slices or more (a small download,
    /// such as a handler's `after_output`, reads on its own thread).
    pub fn new(
        store: Arc<dyn SliceStore>,
        keys: Vec<(SliceKey, Option<u32>)>,
        threads: usize,
    ) -> ReadAhead {
        ReadAhead {
            store,
            threads_max: threads,
            queue: keys.into(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            requests: None,
            threads: Vec::new(),
        }
    }

    /// The read of `key`, which must be the next key of the list.
    pub fn read(&mut self, key: &SliceKey) -> SliceRead {
        if self.requests.is_none() && self.threads_max >= 2 && self.queue.len() >= 2 {
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
                return p
                    .answer
                    .recv()
                    .unwrap_or_else(|_| self.store.read_slice_records(key));
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
        self.requests = None;
        self.pending.clear();
        self.pending_bytes = 0;
        for thread in self.threads.drain(..) {
            // A thread ends after the read it is doing; one that panicked
            // has nothing more to say.
            let _ = thread.join();
        }
    }

    fn start(&mut self) {
        let (tx, rx) = crossbeam_channel::unbounded::<Request>();
        for i in 0..self.threads_max.min(self.queue.len()) {
            let (rx, store) = (rx.clone(), self.store.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("booster-read-{i}"))
                .spawn(move || {
                    for (key, answer) in rx {
                        // The reader may have stopped; its read is not needed.
                        let _ = answer.send(store.read_slice_records(&key));
                    }
                });
            if let Ok(thread) = spawned {
                self.threads.push(thread);
            }
        }
        if !self.threads.is_empty() {
            self.requests = Some(tx);
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
