//! A worker's commit thread (issue 17; ARCHITECTURE.md, "Priority: what
//! bounds a start"): the worker hands it each slice commit it won
//! (`begin_commit`: the lease is `committing`, so the worker's slot is
//! free) and leases again at once, so a job made runnable while the
//! worker's handler ran (an urgent one) starts without waiting for the
//! slice's output to be compressed, sealed and handed to the store.
//!
//! At most one commit waits for the thread besides the one it runs: a
//! worker whose handlers outrun the codec waits here, not in the store,
//! so memory stays bounded (G10): up to 3 slice outputs per worker (the
//! one run, the one queued, the one being handed over). While it waits
//! here the worker leases nothing, an urgent job included: the hand-over
//! gains only while the handler takes longer than the commit.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use booster_store::Batch;
use crossbeam_channel::{Receiver, Sender};

use super::{commit_or_fail, on_panic};
use crate::handler::panic_message;
use crate::meta::Meta;
use crate::shared::Shared;
use crate::slice_store::SliceStore;
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

/// Where a worker's slice commits go: its commit thread, or, when that
/// thread could not start, the worker's own thread (as before issue 17).
pub(crate) struct CommitThread {
    tx: Option<Sender<SliceCommit>>,
    thread: Option<JoinHandle<()>>,
}

impl CommitThread {
    pub fn start(shared: &Arc<Shared>, store: &Arc<dyn SliceStore>, worker: usize) -> CommitThread {
        let (tx, rx) = crossbeam_channel::bounded::<SliceCommit>(1);
        let (sh, st) = (shared.clone(), store.clone());
        let thread = std::thread::Builder::new()
            .name(format!("booster-commit-{worker}"))
            .spawn(move || {
                // Should the thread end with commits still queued, their
                // leases go back (the slices run again): none stays
                // `committing` for good (G4).
                let _queued = ReleaseQueued(&sh, &rx);
                while let Ok(c) = rx.recv() {
                    let epoch = c.epoch;
                    // `on_panic` itself may panic (it commits a `SliceFailed`
                    // through the store): the lease then goes back, and the
                    // thread goes on with the next commit.
                    if catch_unwind(AssertUnwindSafe(|| run_guarded(&sh, &st, c))).is_err() {
                        sh.state.lock().release(epoch);
                        sh.changed();
                    }
                }
            })
            .ok();
        CommitThread {
            tx: thread.is_some().then_some(tx),
            thread,
        }
    }

    /// Commits `c`: hands it to the commit thread (waiting while one
    /// commit waits there already), or runs it here.
    pub fn hand(&self, shared: &Arc<Shared>, store: &Arc<dyn SliceStore>, c: SliceCommit) {
        let refused = match &self.tx {
            Some(tx) => tx.send(c).err().map(|e| e.into_inner()),
            None => Some(c),
        };
        // No thread to take it (it could not start, or it is gone).
        if let Some(c) = refused {
            run_guarded(shared, store, c);
        }
    }
}

impl Drop for CommitThread {
    /// Waits until every commit handed over is with the store: a worker
    /// counts as alive (`Shared::workers_alive`) until then.
    fn drop(&mut self) {
        drop(self.tx.take());
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

/// Releases the lease of every commit still in the channel when dropped.
struct ReleaseQueued<'a>(&'a Arc<Shared>, &'a Receiver<SliceCommit>);

impl Drop for ReleaseQueued<'_> {
    fn drop(&mut self) {
        let epochs: Vec<u64> = self.1.try_iter().map(|c| c.epoch).collect();
        if epochs.is_empty() {
            return;
        }
        let mut st = self.0.state.lock();
        for epoch in epochs {
            st.release(epoch);
        }
        drop(st);
        self.0.changed();
    }
}
