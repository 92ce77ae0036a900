//! Hung handlers, as a node's own threads treat them. A handler that makes
//! no progress for a lease timeout has lost its lease (heartbeats carry
//! only leases whose handler moved, so the node expires it); its thread
//! is given up: a fresh one takes its place (a node replaces a local
//! thread whose lease expired), or, once the worker is stopping, nothing
//! does and the stop does not wait for it. A given-up thread whose handler
//! returns after all ends without committing: its lease is gone, and after
//! a stop nothing more is sent for it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use booster_runtime::LeaseProgress;

use super::Worker;
use crate::proto;

/// A handler running on one of the worker's threads.
pub(super) struct Running {
    thread: u32,
    /// What it runs, for the line that says it was given up.
    what: String,
    progress: LeaseProgress,
    /// Its progress when last looked at, and when that moved.
    last_ms: Option<u64>,
    moved_at: Instant,
    /// Its thread was given up (replaced, or left behind by a stop).
    given_up: bool,
}

/// The handlers running now, by epoch, and the threads still working
/// (not counting those given up): `work` returns once none is left.
#[derive(Default)]
pub(super) struct Threads {
    running: parking_lot::Mutex<HashMap<u64, Running>>,
    working: std::sync::atomic::AtomicUsize,
    ended: tokio::sync::Notify,
}

impl Threads {
    /// Thread `thread` starts the handler of `task` (lease `epoch`).
    pub fn start(&self, epoch: u64, thread: u32, task: &proto::Task, progress: &LeaseProgress) {
        let running = Running {
            thread,
            what: describe(task),
            progress: progress.clone(),
            last_ms: progress.last_ms(),
            moved_at: Instant::now(),
            given_up: false,
        };
        self.running.lock().insert(epoch, running);
    }

    /// The handler of lease `epoch` returned: false when its thread was
    /// given up meanwhile, and must end without committing.
    pub fn finish(&self, epoch: u64) -> bool {
        self.running
            .lock()
            .remove(&epoch)
            .is_none_or(|r| !r.given_up)
    }

    /// A thread ended (not a given-up one: it was counted out then).
    pub fn ended(&self) {
        self.working.fetch_sub(1, Ordering::AcqRel);
        self.ended.notify_one();
    }

    /// Threads still working.
    pub fn working(&self) -> usize {
        self.working.load(Ordering::Acquire)
    }

    /// Until a thread ends (or was given up).
    pub async fn one_ended(&self) {
        self.ended.notified().await;
    }

    /// The handlers given up and still running, as a stop leaves them.
    pub fn left_running(&self) -> Vec<String> {
        let running = self.running.lock();
        let mut left: Vec<String> = (running.iter())
            .filter(|(_, r)| r.given_up)
            .map(|(epoch, r)| format!("thread {}: {} (lease {epoch})", r.thread, r.what))
            .collect();
        left.sort();
        left
    }
}

fn describe(task: &proto::Task) -> String {
    match &task.work {
        Some(proto::Work::Slice(s)) => {
            format!(
                "the {} handler of slice {} of job {}",
                s.kind, s.slice, s.job
            )
        }
        Some(proto::Work::Simple(b)) => {
            let jobs: Vec<String> = b.jobs.iter().map(|j| j.job.to_string()).collect();
            let kind = b.jobs.first().map_or("", |j| j.kind.as_str());
            format!("the {kind} handler of simple jobs {}", jobs.join(", "))
        }
        Some(proto::Work::Before(h)) => format!("the before_batch hook of job {}", h.job),
        Some(proto::Work::After(h)) => format!("the after_batch hook of job {}", h.job),
        None => "an empty task".into(),
    }
}

/// Starts the worker's thread `thread`.
pub(super) fn spawn(w: &Arc<Worker>, thread: u32) -> std::io::Result<()> {
    w.threads.working.fetch_add(1, Ordering::AcqRel);
    let this = w.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("booster-remote-{thread}"))
        .spawn(move || {
            if super::thread_loop(&this, thread) {
                this.threads.ended();
            }
        });
    if spawned.is_err() {
        w.threads.ended();
    }
    spawned.map(drop)
}

/// Gives up the threads whose handler made no progress for a lease
/// timeout (`timeout`): each is replaced by a fresh thread, or, once the
/// worker is stopping, counted out so the stop does not wait for it. Run
/// at each heartbeat.
pub(super) fn give_up_hung(w: &Arc<Worker>, timeout: Duration) {
    let now = Instant::now();
    let mut hung = Vec::new();
    {
        let mut running = w.threads.running.lock();
        for (epoch, r) in running.iter_mut() {
            let last = r.progress.last_ms();
            if last.is_some() && last != r.last_ms {
                r.last_ms = last;
                r.moved_at = now;
            }
            if !r.given_up && now.duration_since(r.moved_at) >= timeout {
                r.given_up = true;
                hung.push((*epoch, r.thread, r.what.clone()));
            }
        }
    }
    for (epoch, thread, what) in hung {
        let stopping = w.stop.load(Ordering::Relaxed);
        let then = match stopping {
            true => "the worker is stopping and leaves it running",
            false => "a fresh thread takes its place",
        };
        eprintln!(
            "booster work: thread {thread}: {what} (lease {epoch}) made no progress for {} ms: \
             its lease expires on the node and its work runs again; {then}",
            timeout.as_millis()
        );
        // Its replacement is counted in (`spawn`) before it is counted
        // out: `working` never reads 0 while a thread still works.
        if stopping || spawn(w, thread).is_err() {
            w.threads.ended();
        } else {
            w.threads.working.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
