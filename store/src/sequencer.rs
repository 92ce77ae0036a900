//! Placing and sealing (ARCHITECTURE.md, "Batch atomicity and the commit
//! protocol", step 2). A batch is *placed* (its segment, first frame
//! sequence and offset) before it is written, so the thread that placed it
//! can seal it (AES-GCM with the segment key, nonce = sequence; header;
//! CRC) while the writer thread only lays out, writes and syncs.
//!
//! Why this cannot reuse a nonce or leave a gap: a place is handed out once,
//! in write order, and the writer writes each place with the batch it was
//! given to (asserting the sequence and offset follow on), or the place is
//! dropped together with every later one in its plan (`unplace_all`), whose
//! batches are placed again under a fresh salt, so a fresh key.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::codec::{encode_frame_into, PreparedFrame};
use crate::crypto::{SegmentCipher, TAG_LEN};
use crate::index::FrameLoc;
use crate::segment::frame::{frame_len, FLAG_BATCH_END};
use crate::{MasterKey, Receipt, StoreError};

/// Called once with the outcome of an append.
pub(crate) type Done = Box<dyn FnOnce(Result<Receipt, StoreError>) + Send>;

/// Batches are placed at most this many bytes ahead of the writer (about
/// one group): an urgent batch, placed at the end of the window, waits for
/// at most the group in flight and this window, and batches beyond it wait
/// unplaced, so they can be placed again cheaply when a segment changes.
pub(crate) const WINDOW_BYTES: usize = 4 << 20;

/// A request's `done`, called once. Dropped without being called (the
/// writer thread panicked with the request in hand: its group taken from
/// the sequencer, not answered), it answers `Poisoned`, so every producer
/// learns what became of its batch (ARCHITECTURE.md, "Start at placement":
/// a placed job is dropped then).
pub(crate) struct Answer(Option<Done>);

impl Answer {
    pub fn new(done: Done) -> Answer {
        Answer(Some(done))
    }

    pub fn send(mut self, result: Result<Receipt, StoreError>) {
        if let Some(done) = self.0.take() {
            done(result);
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done(Err(StoreError::Poisoned {
                cause: "the writer thread panicked; reopen the store".into(),
            }));
        }
    }
}

/// One append: compressed frames, not yet sealed.
pub(crate) struct Request {
    /// Shared with the thread sealing it, kept until written: a batch that
    /// is unplaced is sealed again from these.
    pub frames: Arc<[PreparedFrame]>,
    pub done: Answer,
    pub urgent: bool,
}

impl Request {
    /// Compressed bytes (what the queue budget counts).
    pub fn bytes(&self) -> usize {
        self.frames.iter().map(|f| f.body.len()).sum()
    }
}

/// A segment as planned by the sequencer: the writer creates it with this
/// id and salt when it writes the segment's first group.
pub(crate) struct Plan {
    pub id: u64,
    pub salt: [u8; 32],
    pub cipher: Option<SegmentCipher>,
}

/// Where a batch goes.
#[derive(Clone)]
pub(crate) struct Place {
    pub plan: Arc<Plan>,
    pub first_seq: u64,
    /// Where its first frame starts in the segment file.
    pub offset: u64,
}

/// A batch's frames as they go on disk, and where each lies.
pub(crate) struct Sealed {
    pub bytes: Vec<u8>,
    pub locs: Vec<FrameLoc>,
}

enum Seal {
    /// The placing thread is sealing it now.
    Sealing,
    Sealed(Sealed),
    /// The placing thread panicked while sealing: the writer seals it.
    Abandoned,
}

/// A placed batch, in the window.
pub(crate) struct Slot {
    ticket: u64,
    pub request: Request,
    pub place: Place,
    seal: Seal,
    bytes: usize,
}

impl Slot {
    /// Its bytes on disk: sealed by the placing thread, or here.
    pub fn take_sealed(&mut self) -> Sealed {
        match std::mem::replace(&mut self.seal, Seal::Abandoned) {
            Seal::Sealed(sealed) => sealed,
            Seal::Sealing | Seal::Abandoned => seal(&self.place, &self.request.frames),
        }
    }

    /// Compressed bytes (what the queue budget counts).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The segment placements go into now.
struct Cursor {
    plan: Arc<Plan>,
    next_seq: u64,
    end_offset: u64,
    /// A placement took it past the segment size: the next one plans anew.
    full: bool,
}

struct Queue {
    /// Placed batches, in write order; tickets are contiguous.
    placed: VecDeque<Slot>,
    placed_bytes: usize,
    next_ticket: u64,
    /// Batches waiting for a place, in order.
    waiting: VecDeque<Request>,
    /// How many at the front of `waiting` go before a newly waiting urgent
    /// batch (urgent batches and unplaced ones, which were ahead of all).
    waiting_front: usize,
    cursor: Option<Cursor>,
    next_plan_id: u64,
    /// Compaction holds the writer: nothing is placed.
    paused: bool,
    /// The writer drains what is queued, then refuses more.
    stopping: bool,
    stopped: bool,
}

/// What the writer is to do next.
pub(crate) enum Next {
    /// The head of the window is sealed (or abandoned): take a group.
    Group,
    /// Every queued batch is written; the writer exits.
    Exit,
}

/// A placement the caller must seal and publish.
pub(crate) struct ToSeal {
    ticket: u64,
    place: Place,
    frames: Arc<[PreparedFrame]>,
}

pub(crate) struct Sequencer {
    queue: Mutex<Queue>,
    changed: Condvar,
    key: Option<MasterKey>,
    segment_size_bytes: u64,
}

impl Sequencer {
    pub fn new(key: Option<MasterKey>, segment_size_bytes: u64, next_plan_id: u64) -> Sequencer {
        Sequencer {
            queue: Mutex::new(Queue {
                placed: VecDeque::new(),
                placed_bytes: 0,
                next_ticket: 0,
                waiting: VecDeque::new(),
                waiting_front: 0,
                cursor: None,
                next_plan_id,
                paused: false,
                stopping: false,
                stopped: false,
            }),
            changed: Condvar::new(),
            key,
            segment_size_bytes,
        }
    }

    /// Queues `request`: placed at once when it is urgent or the window has
    /// room (and nothing waits before it), else it waits. Places what the
    /// window then takes from the waiting line too, and seals all it placed
    /// on this thread. Hands the request back when the writer has stopped;
    /// else says whether `request` itself was placed (and sealed) here.
    pub fn push(&self, request: Request) -> Result<bool, Request> {
        let mut mine = Vec::new();
        let placed_here;
        {
            let mut q = self.queue.lock();
            if q.stopped {
                return Err(request);
            }
            // A batch at the back of the line is placed here once every
            // one ahead of it is.
            let mut ahead = q.waiting.len();
            if request.urgent && !q.paused {
                mine.push(self.place(&mut q, request));
                ahead = 0;
            } else if request.urgent {
                let at = q.waiting_front;
                q.waiting.insert(at, request);
                q.waiting_front += 1;
                ahead = usize::MAX;
            } else {
                q.waiting.push_back(request);
            }
            self.promote(&mut q, &mut mine);
            placed_here = mine.len() > ahead;
            if mine.is_empty() {
                // It waits: a writer idle on an empty window must see it.
                self.changed.notify_all();
            }
        }
        self.seal_all(mine);
        Ok(placed_here)
    }

    /// Places waiting batches while the window has room.
    fn promote(&self, q: &mut Queue, out: &mut Vec<ToSeal>) {
        while !q.paused {
            let Some(next) = q.waiting.front() else { break };
            let bytes = next.bytes();
            if q.placed_bytes > 0 && q.placed_bytes + bytes > WINDOW_BYTES {
                break;
            }
            let request = q.waiting.pop_front().expect("just seen");
            q.waiting_front = q.waiting_front.saturating_sub(1);
            out.push(self.place(q, request));
        }
    }

    /// Gives `request` the next place, planning a new segment when needed.
    fn place(&self, q: &mut Queue, request: Request) -> ToSeal {
        if q.cursor.as_ref().is_none_or(|c| c.full) {
            let id = q.next_plan_id;
            let mut salt = [0u8; 32];
            getrandom::getrandom(&mut salt).expect("the OS random source failed");
            let cipher = self.key.as_ref().map(|k| k.segment_cipher(&salt, id));
            q.next_plan_id += 1;
            q.cursor = Some(Cursor {
                plan: Arc::new(Plan { id, salt, cipher }),
                next_seq: 0,
                end_offset: crate::segment::header::SEGMENT_HEADER_LEN as u64,
                full: false,
            });
        }
        let cursor = q.cursor.as_mut().expect("planned above");
        let tag_len = if self.key.is_some() { TAG_LEN } else { 0 };
        let place = Place {
            plan: Arc::clone(&cursor.plan),
            first_seq: cursor.next_seq,
            offset: cursor.end_offset,
        };
        for f in request.frames.iter() {
            cursor.end_offset += frame_len((f.body.len() + tag_len) as u32);
        }
        cursor.next_seq += request.frames.len() as u64;
        cursor.full = crate::segment::segment_is_full(
            cursor.end_offset,
            cursor.next_seq,
            self.segment_size_bytes,
        );
        let bytes = request.bytes();
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.placed_bytes += bytes;
        let frames = Arc::clone(&request.frames);
        q.placed.push_back(Slot {
            ticket,
            request,
            place: place.clone(),
            seal: Seal::Sealing,
            bytes,
        });
        ToSeal {
            ticket,
            place,
            frames,
        }
    }

    /// Seals each placement on this thread and hands it to the writer.
    fn seal_all(&self, jobs: Vec<ToSeal>) {
        for job in jobs {
            let mut guard = AbandonOnPanic {
                sequencer: self,
                ticket: Some(job.ticket),
            };
            let sealed = seal(&job.place, &job.frames);
            guard.ticket = None;
            self.publish(job.ticket, Seal::Sealed(sealed));
        }
    }

    /// Stores a seal in its slot, unless the slot was unplaced meanwhile
    /// (the seal is then dropped unwritten; its place is never used).
    fn publish(&self, ticket: u64, seal: Seal) {
        let mut q = self.queue.lock();
        let Some(front) = q.placed.front().map(|s| s.ticket) else {
            return;
        };
        let Some(at) = ticket.checked_sub(front) else {
            return;
        };
        if let Some(slot) = q.placed.get_mut(at as usize) {
            debug_assert_eq!(slot.ticket, ticket);
            if matches!(slot.seal, Seal::Sealing) {
                slot.seal = seal;
            }
            self.changed.notify_all();
        }
    }

    /// Blocks until the writer has a group to take, placing and sealing
    /// waiting batches itself when nobody else will.
    pub fn wait_for_work(&self) -> Next {
        let mut q = self.queue.lock();
        loop {
            if let Some(head) = q.placed.front() {
                if !matches!(head.seal, Seal::Sealing) {
                    return Next::Group;
                }
            } else if !q.waiting.is_empty() && !q.paused {
                let mut mine = Vec::new();
                self.promote(&mut q, &mut mine);
                drop(q);
                self.seal_all(mine);
                q = self.queue.lock();
                continue;
            } else if q.stopping && q.waiting.is_empty() {
                q.stopped = true;
                return Next::Exit;
            }
            self.changed.wait(&mut q);
        }
    }

    /// Takes the sealed head of the window, up to the end of its segment.
    /// Call with the writer lock held, so no unplacing runs meanwhile.
    pub fn take_group(&self) -> Vec<Slot> {
        let mut q = self.queue.lock();
        let mut group = Vec::new();
        let Some(plan) = q.placed.front().map(|s| Arc::clone(&s.place.plan)) else {
            return group;
        };
        while let Some(head) = q.placed.front() {
            if matches!(head.seal, Seal::Sealing) || !Arc::ptr_eq(&head.place.plan, &plan) {
                break;
            }
            let slot = q.placed.pop_front().expect("just seen");
            q.placed_bytes -= slot.bytes;
            group.push(slot);
        }
        drop(q);
        // Room in the window: a producer waiting on it may place more.
        self.changed.notify_all();
        group
    }

    /// Drops every place not yet written: the placed batches go back to the
    /// front of the waiting line, in order, to be placed again in a new
    /// plan; the next plan takes id `next_plan_id`. Their seals, when they
    /// come, are dropped unwritten. Call with the writer lock held.
    pub fn unplace_all(&self, next_plan_id: u64) {
        let mut q = self.queue.lock();
        self.unplace_locked(&mut q, next_plan_id);
    }

    fn unplace_locked(&self, q: &mut Queue, next_plan_id: u64) {
        let placed = std::mem::take(&mut q.placed);
        q.placed_bytes = 0;
        q.waiting_front += placed.len();
        for slot in placed.into_iter().rev() {
            q.waiting.push_front(slot.request);
        }
        q.cursor = None;
        q.next_plan_id = next_plan_id;
        self.changed.notify_all();
    }

    /// Stops placing (compaction holds the writer) after unplacing all, in
    /// one step: a batch placed between the two would plan a segment whose
    /// id the compaction output is about to take.
    pub fn pause(&self, next_plan_id: u64) {
        let mut q = self.queue.lock();
        self.unplace_locked(&mut q, next_plan_id);
        q.paused = true;
    }

    /// Places again; the next plan takes id `next_plan_id`.
    pub fn resume(&self, next_plan_id: u64) {
        let mut q = self.queue.lock();
        q.paused = false;
        q.next_plan_id = next_plan_id;
        self.changed.notify_all();
    }

    /// Asks the writer to write what is queued and exit.
    pub fn stop(&self) {
        self.queue.lock().stopping = true;
        self.changed.notify_all();
    }

    /// Refuses every later push and returns what is queued (the writer
    /// thread is gone).
    pub fn stop_now(&self) -> Vec<Request> {
        self.queue.lock().stopped = true;
        self.take_all()
    }

    /// Every queued batch, placed or not (the store is poisoned).
    pub fn take_all(&self) -> Vec<Request> {
        let mut q = self.queue.lock();
        let placed = std::mem::take(&mut q.placed);
        q.placed_bytes = 0;
        q.waiting_front = 0;
        let mut all: Vec<Request> = placed.into_iter().map(|s| s.request).collect();
        all.extend(std::mem::take(&mut q.waiting));
        all
    }
}

/// Marks a slot abandoned when the thread sealing it unwinds, so the
/// writer seals it instead of waiting for it forever.
struct AbandonOnPanic<'a> {
    sequencer: &'a Sequencer,
    ticket: Option<u64>,
}

impl Drop for AbandonOnPanic<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            self.sequencer.publish(ticket, Seal::Abandoned);
        }
    }
}

/// A batch's frames at its place: sequences from `first_seq`, AES-GCM
/// under the plan's key, *batch end* on the last frame.
pub(crate) fn seal(place: &Place, frames: &[PreparedFrame]) -> Sealed {
    let total: u64 = frames
        .iter()
        .map(|f| {
            let tag = if place.plan.cipher.is_some() {
                TAG_LEN
            } else {
                0
            };
            frame_len((f.body.len() + tag) as u32)
        })
        .sum();
    let mut bytes = Vec::with_capacity(total as usize);
    let mut locs = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let batch_end = if i + 1 == frames.len() {
            FLAG_BATCH_END
        } else {
            0
        };
        let offset = place.offset + bytes.len() as u64;
        let header = encode_frame_into(
            &mut bytes,
            place.plan.id,
            place.plan.cipher.as_ref(),
            place.first_seq + i as u64,
            batch_end,
            frame,
        );
        locs.push(FrameLoc {
            segment_id: place.plan.id,
            offset,
            header,
        });
    }
    Sealed { bytes, locs }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use crate::crypto::seals_on_this_thread;
    use crate::{Batch, MasterKey, SliceKey, Store, StoreOptions};

    fn key(seq: u64) -> SliceKey {
        SliceKey {
            owner: 1,
            stream: 0,
            seq,
        }
    }

    #[test]
    fn batches_are_sealed_on_the_appending_thread_not_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            master_key: Some(MasterKey([5; 32])),
            segment_size_bytes: 1 << 10,
            reserve_bytes: 0,
            ..StoreOptions::default()
        };
        let (store, _) = Store::open(dir.path(), opts).unwrap();
        let before = seals_on_this_thread();
        let mut writer_seals = Vec::new();
        for v in 0..20 {
            let (tx, rx) = mpsc::channel();
            let batch = Batch::new()
                .slice(key(v), &[format!("record {v}").as_bytes(); 50])
                .slice(key(1000 + v), &[b"x"])
                .meta(format!("meta {v}").into_bytes());
            // The callback runs on the writer thread, after the write.
            store.append_with(
                batch,
                Box::new(move |r| {
                    r.unwrap();
                    tx.send(seals_on_this_thread()).unwrap();
                }),
            );
            writer_seals.push(rx.recv().unwrap());
        }
        // Three frames a batch (two slices, one meta frame), across rolls.
        assert_eq!(seals_on_this_thread() - before, 60);
        assert_eq!(writer_seals.last(), Some(&0), "{writer_seals:?}");
        assert!(store.segment_ids().len() > 2, "the test rolls segments");
        for v in 0..20 {
            assert_eq!(store.read_slice(&key(v)).unwrap().unwrap().len(), 50);
        }
    }
}
