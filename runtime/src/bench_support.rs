//! Benchmark-only access to the dispatcher's ready queue (`ReadyQueue`), for
//! `bench/benches/ready_queue.rs`. Not part of the API: hidden from docs, no
//! stability promise. Nothing here changes how the runtime behaves.

use std::sync::Arc;

pub use crate::ready::{KindGate, ReadyQueue};
use crate::scheduler::{flag, Slot};
pub use crate::table::kinds::KindId;
use crate::table::kinds::KindIds;
pub use crate::table::Job;
use crate::table::{Body, SimpleBody};
use crate::{JobId, JobState};

/// A simple job's row and its scheduler entry, as the runtime keeps them
/// (`TableView` and `Book::active`).
pub struct QueuedJob {
    pub job: Job,
    entry: Slot,
}

/// A queued simple job of `kind` at `priority`, not yet filed in any queue.
/// Kinds get their ids as the table gives them (one interner for the
/// process, as `Book::kind_ids` is for a runtime).
pub fn simple_job(id: JobId, kind: &str, priority: u8) -> QueuedJob {
    static KINDS: std::sync::Mutex<Option<KindIds>> = std::sync::Mutex::new(None);
    let kind: Arc<str> = Arc::from(kind);
    let kind_id = KINDS
        .lock()
        .expect("the interner's lock is never poisoned")
        .get_or_insert_with(KindIds::default)
        .intern(&kind);
    let job = Job {
        id,
        kind,
        kind_id,
        description: String::new(),
        priority,
        max_workers: None,
        run_at_ms: None,
        expires_at_ms: None,
        created_ms: 0,
        started_us: None,
        completed_us: None,
        state: JobState::Queued,
        properties: Arc::new(serde_json::Value::Null),
        failure_reason: None,
        attempts: 0,
        body: Body::Simple(SimpleBody {
            args: Arc::new(serde_json::Value::Null),
            result: None,
            expiries: 0,
        }),
        singleton: None,
        cron: None,
        after: Vec::new(),
        on_dependency_failure: Default::default(),
        window: None,
        destroy_on_complete: None,
        destroyed_ms: None,
    };
    let (entry, _) = Slot::of(&job, kind_id, &[]);
    QueuedJob { job, entry }
}

/// Re-files `q` after a change to its row's state or priority or its
/// lease mark, as `Book::refile` does; true when it is leasable.
pub fn refile(queue: &mut ReadyQueue, q: &mut QueuedJob) -> bool {
    q.entry.state = q.job.state;
    q.entry.priority = q.job.priority;
    let want = q.entry.ready_slot(&q.job, None);
    queue.refile(q.job.id, &q.job.kind, &mut q.entry, want)
}

/// Marks a simple job leased (as the dispatcher does when it hands it to a
/// worker) or not; the caller re-files it with `refile`.
pub fn set_leased(q: &mut QueuedJob, leased: bool) {
    q.entry.set_flag(flag::LEASED, leased);
}
