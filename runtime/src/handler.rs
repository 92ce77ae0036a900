//! Running handlers: per-record isolation of the default `process_slice`,
//! panic messages, and the heartbeat that keeps a lease alive.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::clock::Clock;
use crate::{JobContext, Output, RecordHandler, SliceOutcome};

thread_local! {
    static PROGRESS: RefCell<Option<Progress>> = const { RefCell::new(None) };
}

/// A worker thread's lease progress cell, and the runtime's clock that
/// heartbeats read (the clock the lease deadlines are on).
pub(crate) struct Progress {
    pub cell: Arc<AtomicU64>,
    pub clock: Arc<dyn Clock>,
}

/// The value of a lease's progress cell once the lease ended (expired,
/// revoked by abort/fail/destroy, or released): heartbeats no longer move it.
pub(crate) const LEASE_ENDED: u64 = u64::MAX;

/// Tells the runtime the current handler is making progress, extending its
/// lease. The default `process_slice` calls it per record; a handler that
/// overrides `process_slice` (or a long simple job) should call it from time
/// to time. A no-op outside a worker thread.
pub fn heartbeat() {
    PROGRESS.with(|p| {
        if let Some(Progress { cell, clock }) = &*p.borrow() {
            let now = clock.now_ms();
            let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v != LEASE_ENDED).then_some(now)
            });
        }
    });
}

/// True once the current handler's lease has ended: it expired, or the job
/// was aborted, failed or destroyed. Its output would be fenced, so a
/// handler running something long (a child process) should stop it. False
/// outside a worker thread.
pub fn lease_ended() -> bool {
    PROGRESS.with(|p| {
        p.borrow()
            .as_ref()
            .is_some_and(|p| p.cell.load(Ordering::Relaxed) == LEASE_ENDED)
    })
}

/// A lease's progress as the thread running its handler reports it, for a
/// process that runs handlers on another process's leases (a fleet's
/// remote worker, `booster --server URL work`): inside [`LeaseProgress::run`],
/// `heartbeat()` and `lease_ended()` work as on a worker thread of the node,
/// and the process forwards the progress (its heartbeats) and the end (the
/// node said the lease is over) itself.
#[derive(Clone)]
pub struct LeaseProgress {
    cell: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
}

impl Default for LeaseProgress {
    fn default() -> Self {
        LeaseProgress::new()
    }
}

impl LeaseProgress {
    /// A live lease, last heard of now (this host's clock).
    pub fn new() -> LeaseProgress {
        let clock: Arc<dyn Clock> = Arc::new(crate::SystemClock);
        LeaseProgress {
            cell: Arc::new(AtomicU64::new(clock.now_ms())),
            clock,
        }
    }

    /// Runs `f` (the handler) with this lease as the thread's own.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                set_progress(None);
            }
        }
        set_progress(Some(Progress {
            cell: self.cell.clone(),
            clock: self.clock.clone(),
        }));
        let _reset = Reset;
        f()
    }

    /// When the handler last heartbeat (ms since the epoch); None once the
    /// lease ended.
    pub fn last_ms(&self) -> Option<u64> {
        let v = self.cell.load(Ordering::Relaxed);
        (v != LEASE_ENDED).then_some(v)
    }

    /// The lease is over: `lease_ended()` says so to the handler, and
    /// heartbeats no longer move it.
    pub fn end(&self) {
        self.cell.store(LEASE_ENDED, Ordering::Relaxed);
    }
}

pub(crate) fn set_progress(progress: Option<Progress>) {
    PROGRESS.with(|p| *p.borrow_mut() = progress);
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

/// The default `process_slice`: `process_to` per record, each record's
/// error or panic caught on its own. A failing record's partial output is
/// dropped, in every category.
pub(crate) fn process_per_record<H: RecordHandler + ?Sized>(
    handler: &H,
    job: &JobContext<'_>,
    records: &[Vec<u8>],
) -> SliceOutcome {
    let mut output = Output::for_job(job);
    output.main.reserve(records.len());
    let mut record_errors = Vec::new();
    for (i, record) in records.iter().enumerate() {
        if i % 16 == 0 {
            heartbeat();
        }
        let mark = output.mark();
        match catch_unwind(AssertUnwindSafe(|| {
            handler.process_to(job, record, &mut output)
        })) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                output.truncate(&mark);
                record_errors.push((i, e.0));
            }
            Err(panic) => {
                output.truncate(&mark);
                record_errors.push((i, format!("handler panicked: {}", panic_message(&*panic))));
            }
        }
    }
    SliceOutcome::Categorized {
        output,
        record_errors,
    }
}
