//! Benchmark-only access to the dispatcher's ready queue (`ReadyQueue`), for
//! `bench/benches/ready_queue.rs`. Not part of the API: hidden from docs, no
//! stability promise. Nothing here changes how the runtime behaves.

use std::sync::Arc;

pub use crate::ready::{KindGate, ReadyQueue};
use crate::table::kinds::KindIds;
pub use crate::table::Job;
use crate::table::{Body, SimpleBody};
use crate::{JobId, JobState};

/// A queued simple job of `kind` at `priority`, not yet filed in any queue.
/// Kinds get their ids as the table gives them (one interner for the
/// process, as `Book::kind_ids` is for a runtime).
pub fn simple_job(id: JobId, kind: &str, priority: u8) -> Job {
    static KINDS: std::sync::Mutex<Option<KindIds>> = std::sync::Mutex::new(None);
    let kind: Arc<str> = Arc::from(kind);
    let kind_id = KINDS
        .lock()
        .expect("the interner's lock is never poisoned")
        .get_or_insert_with(KindIds::default)
        .intern(&kind);
    Job {
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
            leased: false,
            expiries: 0,
        }),
        ready: None,
        accepted: None,
        singleton: None,
        refused: None,
        cron: None,
        after: Vec::new(),
        on_dependency_failure: Default::default(),
        window: None,
        window_closed: false,
    }
}

/// Marks a simple job leased (as the dispatcher does when it hands it to a
/// worker) or not; the caller re-files it with `ReadyQueue::refile`.
pub fn set_leased(job: &mut Job, leased: bool) {
    if let Body::Simple(body) = &mut job.body {
        body.leased = leased;
    }
}
