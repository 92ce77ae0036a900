//! Where an urgent start's time goes (issue 17; ARCHITECTURE.md, "Where
//! the urgent tail goes"): monotonic stamps of each phase between a
//! submit and its handler's start, and of the worker that takes it, for
//! `booster-bench priority` with `BOOSTER_BENCH_TRACE_STARTS=1`. Not part
//! of the API: hidden from docs, no stability promise.
//!
//! Off by default, and then a stamp is one relaxed atomic load: nothing is
//! allocated, locked or read. On, each stamp takes a global lock and
//! pushes 40 bytes, and the phases that need it read the thread's
//! scheduler statistics (`/proc/thread-self/schedstat`, a few
//! microseconds): how long the thread was runnable but waiting for a core,
//! so a tail can be told apart as a core wait or Booster's own path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::JobId;

static ON: AtomicBool = AtomicBool::new(false);
static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());

/// A point on the way from a submit to a handler's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `submit` was called (the submitting thread; `job` is its first id).
    SubmitCalled,
    /// `Store::append_placing` returned with the batch placed.
    Placed,
    /// The `Created` record was applied at placement, workers woken.
    Applied,
    /// A worker's slice handler returned (`job`: the sliced job).
    SliceEnded,
    /// The worker handed that slice's commit to its commit thread.
    Handed,
    /// The worker called `next_task`.
    LeaseAsked,
    /// It holds the state lock in `next_task` (again after each wait).
    LockHeld,
    /// It found nothing leasable and waits on `work_ready`.
    Waiting,
    /// It got a lease (`job`: the first job of it).
    Leased,
    /// A simple handler is about to run (`job`: its job).
    Started,
    /// A commit thread took a commit (`worker`: whose).
    CommitTaken,
}

/// One stamp.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub at: Instant,
    pub phase: Phase,
    pub job: JobId,
    /// The worker slot, for the phases on a worker's (or its commit
    /// thread's) side.
    pub worker: Option<usize>,
    /// The thread's time runnable but not running so far, in nanoseconds
    /// (`schedstat`'s second field), for the phases that read it; 0 else.
    pub run_delay_ns: u64,
}

/// Starts stamping afresh (forgetting what was stamped), or stops it
/// (what was stamped stays for `take`).
pub fn enable(on: bool) {
    if on {
        EVENTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
    ON.store(on, Ordering::Release);
}

/// Whether stamps are taken.
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The stamps taken since `enable`, in the order they were pushed.
pub fn take() -> Vec<Event> {
    std::mem::take(&mut *EVENTS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Stamps `phase` now, when stamping is on.
#[inline]
pub(crate) fn stamp(phase: Phase, job: JobId, worker: Option<usize>) {
    if on() {
        push(Instant::now(), phase, job, worker);
    }
}

/// `stamp` at `at`, an instant read earlier (under a lock, where the
/// stamp itself would hold it too long), when stamping is on.
pub(crate) fn stamp_then(at: Instant, phase: Phase, job: JobId, worker: Option<usize>) {
    if on() {
        push(at, phase, job, worker);
    }
}

/// `stamp` for an instant taken earlier (`now`), when it was taken while on.
pub(crate) fn stamp_at(at: Option<(Instant, u64)>, phase: Phase, job: JobId) {
    if let Some((at, run_delay_ns)) = at {
        record(Event {
            at,
            phase,
            job,
            worker: None,
            run_delay_ns,
        });
    }
}

/// Now and the thread's run delay, when stamping is on (for `stamp_at`).
pub(crate) fn now() -> Option<(Instant, u64)> {
    on().then(|| (Instant::now(), run_delay_ns()))
}

#[cold]
fn push(at: Instant, phase: Phase, job: JobId, worker: Option<usize>) {
    let reads_delay = matches!(
        phase,
        Phase::SliceEnded | Phase::Started | Phase::Applied | Phase::Leased
    );
    let run_delay_ns = if reads_delay { run_delay_ns() } else { 0 };
    record(Event {
        at,
        phase,
        job,
        worker,
        run_delay_ns,
    });
}

fn record(e: Event) {
    EVENTS.lock().unwrap_or_else(|e| e.into_inner()).push(e);
}

/// This thread's time spent runnable, waiting for a core (Linux
/// `schedstat`, nanoseconds); 0 where it cannot be read.
fn run_delay_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}
