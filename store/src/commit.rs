//! Group commit. Producers compress on their own thread and queue a
//! `Request`; one writer thread takes every request waiting (a group),
//! encrypts, writes the group with one write and one fdatasync, updates the
//! index, and only then acknowledges each producer.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;

use parking_lot::{Condvar, Mutex};

use crate::codec::{encode_frame_into, PreparedFrame};
use crate::engine::Engine;
use crate::fs::FileLayer;
use crate::index::FrameLoc;
use crate::manifest::Watermark;
use crate::segment::footer::FooterEntry;
use crate::segment::frame::FLAG_BATCH_END;
use crate::segment::header::CompactionGroup;
use crate::segment::writer::{create_segment, ActiveSegment};
use crate::segment::MAX_SEGMENT_ID;
use crate::{Receipt, StoreError};

/// Called once with the outcome of an append.
pub(crate) type Done = Box<dyn FnOnce(Result<Receipt, StoreError>) + Send>;

pub(crate) struct Request {
    pub frames: Vec<PreparedFrame>,
    pub done: Done,
}

impl Request {
    pub fn bytes(&self) -> usize {
        self.frames.iter().map(|f| f.body.len()).sum()
    }
}

pub(crate) enum Command {
    Append(Request),
    /// An urgent request is waiting in `UrgentLane` (wakes an idle writer).
    Wake,
    Stop,
}

/// Urgent requests (`Batch::urgent`): the writer takes them before anything
/// queued on its channel, into the group it is forming or the next one.
#[derive(Default)]
pub(crate) struct UrgentLane {
    inner: Mutex<UrgentQueue>,
}

#[derive(Default)]
struct UrgentQueue {
    waiting: Vec<Request>,
    /// The writer has stopped: a request now gets an error, not a place.
    closed: bool,
}

impl UrgentLane {
    /// Queues `request`, or hands it back when the writer has stopped.
    pub fn push(&self, request: Request) -> Result<(), Request> {
        let mut q = self.inner.lock();
        if q.closed {
            return Err(request);
        }
        q.waiting.push(request);
        Ok(())
    }

    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut self.inner.lock().waiting)
    }

    /// The last take: later pushes are refused.
    fn close(&self) -> Vec<Request> {
        let mut q = self.inner.lock();
        q.closed = true;
        std::mem::take(&mut q.waiting)
    }
}

/// A group stops growing at this many payload bytes (one write per group).
/// Small enough that a group's write + fsync stays short for the batch
/// queued behind it, large enough that fsyncs stay rare under load.
const MAX_GROUP_BYTES: usize = 4 << 20;

/// Producers wait while this many compressed bytes are queued for the
/// writer, so a fast producer cannot grow memory without bound.
const MAX_QUEUED_BYTES: usize = 64 << 20;

/// Back-pressure between producers and the writer thread.
#[derive(Default)]
pub(crate) struct QueueBudget {
    queued_bytes: Mutex<usize>,
    drained: Condvar,
    writer_thread: OnceLock<ThreadId>,
}

impl QueueBudget {
    /// Waits until `bytes` more fit (a batch alone may exceed the limit).
    /// Never waits on the writer thread itself, where it would deadlock.
    pub fn acquire(&self, bytes: usize) {
        let mut queued = self.queued_bytes.lock();
        let on_writer = self.writer_thread.get() == Some(&std::thread::current().id());
        while !on_writer && *queued > 0 && *queued + bytes > MAX_QUEUED_BYTES {
            self.drained.wait(&mut queued);
        }
        *queued += bytes;
    }

    /// Counts `bytes` without waiting (urgent requests jump the queue).
    pub fn acquire_now(&self, bytes: usize) {
        *self.queued_bytes.lock() += bytes;
    }

    pub fn release(&self, bytes: usize) {
        *self.queued_bytes.lock() -= bytes;
        self.drained.notify_all();
    }
}

pub(crate) struct WriterState<F: FileLayer> {
    /// Created lazily by the first group after open or after a seal.
    pub active: Option<ActiveSegment<F>>,
    pub next_segment_id: u64,
    buf: Vec<u8>,
}

impl<F: FileLayer> WriterState<F> {
    pub fn new(next_segment_id: u64) -> WriterState<F> {
        WriterState {
            active: None,
            next_segment_id,
            buf: Vec::new(),
        }
    }
}

/// Why a group failed; turned into one error per producer.
enum GroupFailure {
    DiskFull(PathBuf),
    Poisoned(String),
    /// Nothing was written (out of file descriptors); the store goes on.
    Unavailable {
        context: String,
        os_error: i32,
    },
}

impl GroupFailure {
    fn to_error(&self) -> StoreError {
        match self {
            GroupFailure::DiskFull(path) => StoreError::DiskFull { path: path.clone() },
            GroupFailure::Poisoned(cause) => StoreError::Poisoned {
                cause: cause.clone(),
            },
            GroupFailure::Unavailable { context, os_error } => StoreError::Unavailable {
                context: context.clone(),
                source: std::io::Error::from_raw_os_error(*os_error),
            },
        }
    }
}

/// EMFILE / ENFILE: the process or the system has no file descriptor left.
/// Creating a file fails with it before anything is written.
fn out_of_descriptors(e: &std::io::Error) -> Option<i32> {
    e.raw_os_error()
        .filter(|&code| code == libc::EMFILE || code == libc::ENFILE)
}

/// The writer thread's loop; returns when asked to stop or when every sender
/// is gone (committing the urgent requests still waiting first).
pub(crate) fn run_writer<F: FileLayer>(engine: Arc<Engine<F>>, rx: Receiver<Command>) {
    let _ = engine.budget.writer_thread.set(std::thread::current().id());
    let mut stop = false;
    while !stop {
        let mut group = engine.urgent.take();
        if group.is_empty() {
            match rx.recv() {
                Ok(Command::Append(r)) => group.push(r),
                Ok(Command::Wake) => continue,
                Ok(Command::Stop) | Err(_) => break,
            }
        }
        let mut bytes: usize = group.iter().map(Request::bytes).sum();
        while bytes < MAX_GROUP_BYTES {
            let urgent = engine.urgent.take();
            if !urgent.is_empty() {
                // Into this group, which then closes: it is written now.
                bytes += urgent.iter().map(Request::bytes).sum::<usize>();
                group.extend(urgent);
                break;
            }
            match rx.try_recv() {
                Ok(Command::Append(r)) => {
                    bytes += r.bytes();
                    group.push(r);
                }
                Ok(Command::Wake) => {}
                Ok(Command::Stop) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        commit_and_answer(&engine, group, bytes);
    }
    let last = engine.urgent.close();
    if !last.is_empty() {
        let bytes = last.iter().map(Request::bytes).sum();
        commit_and_answer(&engine, last, bytes);
    }
}

/// Commits one group and acknowledges each producer (or fails them all).
fn commit_and_answer<F: FileLayer>(engine: &Engine<F>, group: Vec<Request>, bytes: usize) {
    let outcome = engine.commit_group(&group);
    engine.budget.release(bytes);
    match outcome {
        Ok(receipts) => {
            for (req, receipt) in group.into_iter().zip(receipts) {
                (req.done)(Ok(receipt));
            }
        }
        Err(failure) => {
            for req in group {
                (req.done)(Err(failure.to_error()));
            }
        }
    }
}

impl<F: FileLayer> Engine<F> {
    fn poison(&self, context: &str, e: &std::io::Error, path: &std::path::Path) -> GroupFailure {
        let full = crate::reserve::is_disk_full(e);
        let cause = format!(
            "{}{context} {}: {e}",
            if full {
                crate::error::DISK_FULL_CAUSE
            } else {
                ""
            },
            path.display()
        );
        self.poisoned.lock().get_or_insert(cause.clone());
        if full {
            // Room for the next open's recovery, a destroy and a compaction.
            crate::reserve::release_reserve(&self.fs, &self.dir);
            GroupFailure::DiskFull(path.to_path_buf())
        } else {
            GroupFailure::Poisoned(cause)
        }
    }

    /// Why creating segment `id` failed. Out of file descriptors, nothing
    /// was written that matters: at most a header-only file that is not in
    /// the manifest, which is removed so the next group can create it (and
    /// which recovery deletes should a crash bring it back). That fails this
    /// group only. Anything else poisons the store.
    fn segment_not_created(&self, id: u64, e: &std::io::Error) -> GroupFailure {
        let path = self.dir.join(crate::segment::segment_file_name(id));
        if let Some(os_error) = out_of_descriptors(e) {
            let removed = match self.fs.remove(&path) {
                Ok(()) => true,
                Err(r) => r.kind() == std::io::ErrorKind::NotFound,
            };
            if removed {
                return GroupFailure::Unavailable {
                    context: format!("creating segment {}", path.display()),
                    os_error,
                };
            }
        }
        self.poison("creating segment in", e, &self.dir)
    }

    /// Starts a new active segment and makes it readable.
    fn open_active(&self, w: &mut WriterState<F>) -> Result<(), GroupFailure> {
        let id = w.next_segment_id;
        if id > MAX_SEGMENT_ID {
            let cause = format!("no segment id is left after {MAX_SEGMENT_ID}");
            self.poisoned.lock().get_or_insert(cause.clone());
            return Err(GroupFailure::Poisoned(cause));
        }
        let key = self.opts.master_key.as_ref();
        let active = match create_segment(&self.fs, &self.dir, id, key, CompactionGroup::default())
        {
            Ok(active) => active,
            Err(e) => return Err(self.segment_not_created(id, &e)),
        };
        // Listed before any frame goes in: a listed segment that goes
        // missing is corruption, an unlisted one holds nothing.
        self.publish_manifest(|m| m.segments.push(id))
            .map_err(|e| self.poison("writing the manifest in", &e, &self.dir))?;
        w.next_segment_id += 1;
        self.segments
            .write()
            .insert(id, Arc::clone(&active.segment));
        w.active = Some(active);
        Ok(())
    }

    /// Writes one group durably and indexes it. Receipts are in request order.
    fn commit_group(&self, group: &[Request]) -> Result<Vec<Receipt>, GroupFailure> {
        let mut w = self.writer.lock();
        if let Some(cause) = self.poisoned.lock().clone() {
            return Err(GroupFailure::Poisoned(cause));
        }
        if w.active.is_none() {
            self.open_active(&mut w)?;
        }
        let WriterState { active, buf, .. } = &mut *w;
        let active = active.as_mut().expect("opened above");
        let (receipts, locs) = encode_group(active, buf, group);
        if !buf.is_empty() {
            let segment = Arc::clone(&active.segment);
            active
                .write_group(buf)
                .map_err(|e| self.poison("writing", &e, &segment.path))?;
            *self.acked.lock() = Watermark {
                segment_id: segment.id,
                offset: active.end_offset,
            };
        }
        if buf.capacity() > 4 * MAX_GROUP_BYTES {
            *buf = Vec::new();
        }
        active.entries.extend(locs.iter().map(|l| FooterEntry {
            offset: l.offset,
            header: l.header,
        }));
        {
            let mut index = self.index.write();
            for loc in locs {
                index.add(loc);
            }
        }
        if active.end_offset >= self.opts.segment_size_bytes {
            // The group is durable whatever happens here; a failed seal only
            // poisons the store for later writes.
            if self.seal_into_index(active).is_ok() {
                w.active = None;
            }
        }
        Ok(receipts)
    }

    /// Seals `active` (a version-2 footer with the counters as of now) and
    /// moves its keys from RAM to its sorted run. Poisons on failure.
    fn seal_into_index(&self, active: &mut ActiveSegment<F>) -> Result<(), GroupFailure> {
        let counters = self.index.read().counters();
        match active.seal(&counters) {
            Ok(sealed) => {
                self.index
                    .write()
                    .install_run(&active.segment, sealed.offset, &sealed.run);
                Ok(())
            }
            Err(e) => {
                let path = active.segment.path.clone();
                Err(self.poison("sealing", &e, &path))
            }
        }
    }

    /// Seals the active segment, if any (on close and before compaction).
    pub(crate) fn seal_active(&self, w: &mut WriterState<F>) -> Result<(), StoreError> {
        if let Some(cause) = self.poisoned.lock().clone() {
            return Err(StoreError::Poisoned { cause });
        }
        if let Some(active) = w.active.as_mut() {
            self.seal_into_index(active).map_err(|f| f.to_error())?;
            w.active = None;
        }
        Ok(())
    }
}

/// Encodes every frame of a group into `buf` (sequences, encryption, batch
/// ends), advancing the segment's sequence. Nothing is written yet.
fn encode_group<F: FileLayer>(
    active: &mut ActiveSegment<F>,
    buf: &mut Vec<u8>,
    group: &[Request],
) -> (Vec<Receipt>, Vec<FrameLoc>) {
    let segment = Arc::clone(&active.segment);
    buf.clear();
    let mut locs = Vec::new();
    let mut receipts = Vec::with_capacity(group.len());
    for req in group {
        receipts.push(Receipt {
            segment_id: segment.id,
            first_frame_seq: active.next_seq,
        });
        for (i, frame) in req.frames.iter().enumerate() {
            let batch_end = if i + 1 == req.frames.len() {
                FLAG_BATCH_END
            } else {
                0
            };
            let offset = active.end_offset + buf.len() as u64;
            let header = encode_frame_into(
                buf,
                segment.id,
                segment.cipher.as_ref(),
                active.next_seq,
                batch_end,
                frame,
            );
            active.next_seq += 1;
            locs.push(FrameLoc {
                segment_id: segment.id,
                offset,
                header,
            });
        }
    }
    (receipts, locs)
}
