//! A worker's commit thread (issue 17; ARCHITECTURE.md, "Priority: what
//! bounds a start"): the worker hands it each slice commit it won
//! (`begin_commit`: the lease is `committing`, so the worker's slot is
//! free) and leases again at once, so a job made runnable while the
//! worker's handler ran (an urgent one) starts without waiting for the
//! slice's output to be compressed, sealed and handed to the store.
//!
//! Two commits may wait for the thread besides the one it runs
//! (`QUEUED_MAX`). With one waiting, the worker leases anything; with
//! two (its handlers outrun the codec), it leases only an urgent job
//! (`State::lease_urgent`) until the thread takes one, so a simple urgent
//! job, or an urgent sliced job's first slice, never waits for its
//! worker's commits (its later slices can: its own commit waits in `hand`
//! for room, and then behind the queued ones). A worker slot holds at most 5
//! slice outputs (G10): the one the thread runs, the two queued, and an
//! urgent sliced job's output and its batch while the worker builds it
//! (the output is dropped before `hand`, where the batch waits for room);
//! a replaced worker's old thread holds up to 3 more until it drains
//! (ARCHITECTURE.md, "The freed worker's commit"). The queued commits are
//! the thread's, not the worker's: a worker whose urgent handler hangs
//! does not hold them back (G4).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use booster_store::Batch;
use parking_lot::{Condvar, Mutex};

use super::{commit_or_fail, on_panic};
use crate::handler::panic_message;
use crate::meta::Meta;
use crate::shared::Shared;
use crate::slice_store::SliceStore;
use crate::start_trace::{self, Phase};
use crate::state::LeaseWork;
use crate::JobId;

/// A slice's output and its `SliceDone`, for lease `epoch`, which won
/// `begin_commit`: nothing but the store's answer ends the lease now.
pub(crate) struct SliceCommit {
    pub batch: Batch,
    pub meta: Meta,
    pub epoch: u64,
    pub job: JobId,
    pub slice: u64,
}

impl SliceCommit {
    /// Hands the batch to the store from this thread. If the store refuses
    /// it as input (a frame over its size cap: see `shared::poisons`), the
    /// slice fails alone (`commit_or_fail`).
    pub fn run(self, shared: &Arc<Shared>, store: &Arc<dyn SliceStore>) {
        let SliceCommit {
            batch,
            meta,
            epoch,
            job,
            slice,
        } = self;
        let clock = shared.clock.clone();
        commit_or_fail(shared, store, batch, meta, epoch, None, move |e| {
            Meta::SliceFailed {
                job,
                slice,
                at_ms: clock.now_ms(),
                message: format!("output of slice {slice} could not be stored: {e}"),
                sample: None,
                retry_at_ms: None,
            }
        });
    }
}

/// How many handed commits may wait for the commit thread besides the
/// one it runs. At this many the worker is behind: it leases only urgent
/// jobs, and a further hand-over waits for room.
const QUEUED_MAX: usize = 2;

/// Where a worker's slice commits go: its commit thread, or, when that
/// thread could not start, the worker's own thread (as before issue 17).
pub(crate) struct CommitThread {
    /// The worker slot it commits for.
    pub worker: usize,
    mailbox: Option<Arc<Mailbox>>,
    thread: Option<JoinHandle<()>>,
}

/// The commits waiting for a commit thread.
struct Mailbox {
    queue: Mutex<Queue>,
    /// Signalled when a commit is queued or the worker stops.
    arrived: Condvar,
    /// Signalled when the thread takes a commit or ends.
    room: Condvar,
}

#[derive(Default)]
struct Queue {
    commits: VecDeque<Handed>,
    /// The worker stops: the thread ends once `commits` is empty.
    closed: bool,
    /// The thread ended: nothing more is queued.
    gone: bool,
}

/// A commit handed over, counted in `Shared::handed_commits` until
/// dropped: after its append is counted in flight, or its lease released.
struct Handed {
    commit: SliceCommit,
    _count: HandedCount,
}

struct HandedCount(Arc<Shared>);

impl HandedCount {
    fn new(shared: &Arc<Shared>) -> HandedCount {
        shared.handed_commits.fetch_add(1, Ordering::AcqRel);
        HandedCount(shared.clone())
    }
}

impl Drop for HandedCount {
    fn drop(&mut self) {
        self.0.handed_commits.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CommitThread {
    pub fn start(shared: &Arc<Shared>, store: &Arc<dyn SliceStore>, worker: usize) -> CommitThread {
        let mailbox = Arc::new(Mailbox {
            queue: Mutex::new(Queue::default()),
            arrived: Condvar::new(),
            room: Condvar::new(),
        });
        let (sh, st, mb) = (shared.clone(), store.clone(), mailbox.clone());
        let thread = std::thread::Builder::new()
            .name(format!("booster-commit-{worker}"))
            .spawn(move || {
                // Should the thread end with commits still queued, their
                // leases go back (the slices run again): none stays
                // `committing` for good (G4).
                let _end = ThreadEnd(&sh, &mb);
                while let Some(Handed { commit, _count }) = mb.next(&sh) {
                    start_trace::stamp(Phase::CommitTaken, commit.job, Some(worker));
                    let epoch = commit.epoch;
                    // `on_panic` itself may panic (it commits a `SliceFailed`
                    // through the store): the lease then goes back, and the
                    // thread goes on with the next commit.
                    if catch_unwind(AssertUnwindSafe(|| run_guarded(&sh, &st, commit))).is_err() {
                        sh.state.lock().release(epoch);
                        sh.changed();
                    }
                    // `_count` drops here: the append is counted in flight.
                }
            })
            .ok();
        CommitThread {
            worker,
            mailbox: thread.is_some().then_some(mailbox),
            thread,
        }
    }

    /// Commits `c`: queues it for the commit thread (waiting while
    /// `QUEUED_MAX` wait there already), or runs it here.
    pub fn hand(&self, shared: &Arc<Shared>, store: &Arc<dyn SliceStore>, c: SliceCommit) {
        let Some(mb) = &self.mailbox else {
            return run_guarded(shared, store, c);
        };
        let handed = Handed {
            commit: c,
            _count: HandedCount::new(shared),
        };
        let mut q = mb.queue.lock();
        while q.commits.len() >= QUEUED_MAX && !q.gone {
            mb.room.wait(&mut q);
        }
        if q.gone {
            // No thread to take it: it runs here.
            drop(q);
            return run_guarded(shared, store, handed.commit);
        }
        q.commits.push_back(handed);
        drop(q);
        mb.arrived.notify_one();
    }

    /// `QUEUED_MAX` commits wait for the thread: the worker takes only
    /// an urgent job now. Call it holding the state lock (as `next_task`
    /// does): the thread takes that lock before it wakes `work_ready`
    /// (`Mailbox::next`), so a worker that found it behind is woken.
    pub fn behind(&self, shared: &Shared) -> bool {
        // Held by some thread, not necessarily this one: a cheap check.
        debug_assert!(
            shared.state.is_locked(),
            "call `behind` holding the state lock"
        );
        self.mailbox
            .as_ref()
            .is_some_and(|mb| mb.queue.lock().commits.len() >= QUEUED_MAX)
    }
}

impl Mailbox {
    /// The next commit to run, or None once the worker stopped and none
    /// is left.
    fn next(&self, shared: &Shared) -> Option<Handed> {
        let mut q = self.queue.lock();
        loop {
            if let Some(h) = q.commits.pop_front() {
                let was_behind = q.commits.len() + 1 >= QUEUED_MAX;
                drop(q);
                self.room.notify_one();
                if was_behind {
                    // Its worker may wait in `next_task`, on the state's
                    // condvar, having found it behind under the state
                    // lock: taking that lock first, the wake-up cannot
                    // come between its check and its wait.
                    drop(shared.state.lock());
                    shared.work_ready.notify_all();
                }
                return Some(h);
            }
            if q.closed {
                return None;
            }
            self.arrived.wait(&mut q);
        }
    }
}

impl Drop for CommitThread {
    /// Waits until every commit handed over is with the store: a worker
    /// counts as alive (`Shared::workers_alive`) until then.
    fn drop(&mut self) {
        if let Some(mb) = &self.mailbox {
            mb.queue.lock().closed = true;
            mb.arrived.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a commit; a panic on its way to the store is the worker's panic
/// (`on_panic`): the committing lease is handed back, so the slice runs
/// again rather than hang (G4), as when it panicked on the worker's thread.
fn run_guarded(shared: &Arc<Shared>, store: &Arc<dyn SliceStore>, c: SliceCommit) {
    let (epoch, claim) = (
        c.epoch,
        LeaseWork::Slice {
            job: c.job,
            slice: c.slice,
        },
    );
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| c.run(shared, store))) {
        on_panic(shared, store, epoch, &claim, &panic_message(&*panic), true);
    }
}

/// When the commit thread ends: nothing more is queued (a hand-over runs
/// on the worker), and the lease of every commit still queued goes back.
struct ThreadEnd<'a>(&'a Arc<Shared>, &'a Mailbox);

impl Drop for ThreadEnd<'_> {
    fn drop(&mut self) {
        let queued: Vec<Handed> = {
            let mut q = self.1.queue.lock();
            q.gone = true;
            q.commits.drain(..).collect()
        };
        self.1.room.notify_all();
        if queued.is_empty() {
            return;
        }
        let mut st = self.0.state.lock();
        for h in &queued {
            st.release(h.commit.epoch);
        }
        drop(st);
        drop(queued);
        self.0.changed();
    }
}
