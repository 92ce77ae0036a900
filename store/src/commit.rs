//! Group commit. Producers compress and seal on their own threads
//! (`sequencer.rs`); one writer thread takes the sealed head of the window
//! (a group), writes it with one write and one fdatasync, updates the
//! index, and only then acknowledges each producer.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;

use parking_lot::{Condvar, Mutex};

use crate::engine::Engine;
use crate::fs::FileLayer;
use crate::manifest::Watermark;
use crate::segment::footer::FooterEntry;
use crate::segment::header::CompactionGroup;
use crate::segment::writer::{create_segment_with_salt, ActiveSegment};
use crate::segment::MAX_SEGMENT_ID;
use crate::sequencer::{Next, Plan, Slot};
use crate::{Receipt, StoreError};

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

    /// Bytes queued for the writer now.
    pub fn queued(&self) -> usize {
        *self.queued_bytes.lock()
    }

    pub fn release(&self, bytes: usize) {
        *self.queued_bytes.lock() -= bytes;
        self.drained.notify_all();
    }
}

pub(crate) struct WriterState<F: FileLayer> {
    /// Created lazily by the first group after open or after a seal.
    pub active: Option<ActiveSegment<F>>,
    /// The first segment id not created yet (plans and compaction output
    /// take ids from here when the sequencer's plans are dropped).
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

/// The writer thread's loop; returns when asked to stop, once everything
/// queued is written.
pub(crate) fn run_writer<F: FileLayer>(engine: Arc<Engine<F>>) {
    let _ = engine.budget.writer_thread.set(std::thread::current().id());
    let _failing = FailQueuedIfUnwinding(&engine);
    loop {
        if engine.poison_error().is_some() {
            // Nothing more is written: fail what waits without sealing it.
            for request in engine.sequencer.take_all() {
                engine.budget.release(request.bytes());
                let err = engine.poison_error().expect("poisons stay");
                request.done.send(Err(err));
            }
        }
        match engine.sequencer.wait_for_work() {
            Next::Exit => return,
            Next::Group => {
                let (group, outcome) = engine.commit_next_group();
                answer(&engine, group, outcome);
            }
        }
    }
}

/// Should the writer thread panic (a bug), every queued and later append
/// fails instead of waiting forever for a writer that is gone.
struct FailQueuedIfUnwinding<'a, F: FileLayer>(&'a Engine<F>);

impl<F: FileLayer> Drop for FailQueuedIfUnwinding<'_, F> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let cause = "the writer thread panicked; reopen the store".to_string();
        self.0.poisoned.lock().get_or_insert(cause.clone());
        for request in self.0.sequencer.stop_now() {
            self.0.budget.release(request.bytes());
            request.done.send(Err(StoreError::Poisoned {
                cause: cause.clone(),
            }));
        }
    }
}

/// Acknowledges each producer of a group (or fails them all), in commit order.
fn answer<F: FileLayer>(
    engine: &Engine<F>,
    group: Vec<Slot>,
    outcome: Result<Vec<Receipt>, GroupFailure>,
) {
    engine
        .budget
        .release(group.iter().map(Slot::bytes).sum::<usize>());
    match outcome {
        Ok(receipts) => {
            for (slot, receipt) in group.into_iter().zip(receipts) {
                slot.request.done.send(Ok(receipt));
            }
        }
        Err(failure) => {
            for slot in group {
                slot.request.done.send(Err(failure.to_error()));
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

    /// Creates the segment `plan` describes and makes it readable.
    fn open_active(&self, w: &mut WriterState<F>, plan: &Plan) -> Result<(), GroupFailure> {
        let id = plan.id;
        if id > MAX_SEGMENT_ID {
            let cause = format!("no segment id is left after {MAX_SEGMENT_ID}");
            self.poisoned.lock().get_or_insert(cause.clone());
            return Err(GroupFailure::Poisoned(cause));
        }
        let key = self.opts.master_key.as_ref();
        let group = CompactionGroup::default();
        let active = match create_segment_with_salt(&self.fs, &self.dir, id, key, group, plan.salt)
        {
            Ok(active) => active,
            Err(e) => return Err(self.segment_not_created(id, &e)),
        };
        // Listed before any frame goes in: a listed segment that goes
        // missing is corruption, an unlisted one holds nothing.
        self.publish_manifest(|m| m.segments.push(id))
            .map_err(|e| self.poison("writing the manifest in", &e, &self.dir))?;
        w.next_segment_id = id + 1;
        self.segments
            .write()
            .insert(id, Arc::clone(&active.segment));
        w.active = Some(active);
        Ok(())
    }

    /// Takes the next group from the sequencer under the writer lock (so no
    /// unplacing runs between taking and writing it) and commits it.
    /// Receipts are in group order.
    fn commit_next_group(&self) -> (Vec<Slot>, Result<Vec<Receipt>, GroupFailure>) {
        let mut w = self.writer.lock();
        let mut group = self.sequencer.take_group();
        if group.is_empty() {
            return (group, Ok(Vec::new()));
        }
        let outcome = self.commit_group(&mut w, &mut group);
        if let Err(GroupFailure::Unavailable { .. }) = outcome {
            // The planned segment was not created: every later place in it
            // is void. Placed again, under a fresh salt, at the same id.
            self.sequencer.unplace_all(w.next_segment_id);
        }
        (group, outcome)
    }

    /// Writes one group (all of one plan, in place order) durably and
    /// indexes it.
    fn commit_group(
        &self,
        w: &mut WriterState<F>,
        group: &mut [Slot],
    ) -> Result<Vec<Receipt>, GroupFailure> {
        if let Some(cause) = self.poisoned.lock().clone() {
            return Err(GroupFailure::Poisoned(cause));
        }
        let plan = Arc::clone(&group[0].place.plan);
        match &w.active {
            None => self.open_active(w, &plan)?,
            Some(active) if active.segment.id != plan.id => {
                let cause = format!(
                    "internal error: a batch placed in segment {} while segment {} is open",
                    plan.id, active.segment.id
                );
                self.poisoned.lock().get_or_insert(cause.clone());
                return Err(GroupFailure::Poisoned(cause));
            }
            Some(_) => {}
        }
        let WriterState { active, buf, .. } = w;
        let active = active.as_mut().expect("opened above");
        let segment = Arc::clone(&active.segment);
        buf.clear();
        let mut receipts = Vec::with_capacity(group.len());
        let mut locs = Vec::new();
        for slot in group.iter_mut() {
            // The invariant behind G6 and recovery: each batch starts where
            // the last one ended, at the next sequence (no gap, no reuse).
            assert_eq!(
                (slot.place.first_seq, slot.place.offset),
                (active.next_seq, active.end_offset + buf.len() as u64),
                "a batch placed out of order in segment {}",
                segment.id
            );
            let sealed = slot.take_sealed();
            receipts.push(Receipt {
                segment_id: segment.id,
                first_frame_seq: slot.place.first_seq,
            });
            active.next_seq += sealed.locs.len() as u64;
            buf.extend_from_slice(&sealed.bytes);
            locs.extend(sealed.locs);
        }
        active
            .write_group(buf)
            .map_err(|e| self.poison("writing", &e, &segment.path))?;
        *self.acked.lock() = Watermark {
            segment_id: segment.id,
            offset: active.end_offset,
        };
        if buf.capacity() > 2 * crate::sequencer::WINDOW_BYTES {
            *buf = Vec::new();
        }
        active.entries.extend(locs.iter().map(|l| FooterEntry {
            offset: l.offset,
            header: l.header,
        }));
        self.active_frames
            .store(active.entries.len(), Ordering::Release);
        {
            let mut index = self.index.write();
            for loc in locs {
                index.add(loc);
            }
        }
        if crate::segment::segment_is_full(
            active.end_offset,
            active.next_seq,
            self.opts.segment_size_bytes,
        ) {
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
                self.active_frames.store(0, Ordering::Release);
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
