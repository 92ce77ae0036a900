//! Benchmark-only access to the dispatcher's ready queue (`ReadyQueue`), for
//! `bench/benches/ready_queue.rs`. Not part of the API: hidden from docs, no
//! stability promise. Nothing here changes how the runtime behaves.

use std::sync::Arc;

pub use crate::ready::{KindGate, ReadyQueue};
pub use crate::table::Job;
use crate::table::{Body, SimpleBody};
use crate::{JobId, JobState};

/// A queued simple job of `kind` at `priority`, not yet filed in any queue.
pub fn simple_job(id: JobId, kind: &str, priority: u8) -> Job {
    Job {
        id,
        kind: kind.into(),
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
    }
}

/// Marks a simple job leased (as the dispatcher does when it hands it to a
/// worker) or not; the caller re-files it with `ReadyQueue::refile`.
pub fn set_leased(job: &mut Job, leased: bool) {
    if let Body::Simple(body) = &mut job.body {
        body.leased = leased;
    }
}
