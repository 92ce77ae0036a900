//! A remote worker reads the output of its job's dependencies
//! (`JobContext::after_output` on a remote worker; the `Output` method):
//! chunk by chunk from a cursor, under a live lease of its own whose work
//! holds a job that ran after the one it reads. The node keeps nothing
//! between calls.

use crate::download::{ChunkError, OutputChunk, OutputCursor, OutputSource};
use crate::{Category, JobId, Runtime};

use super::{RemoteError, RemoteSession, TaskWork};

impl Runtime {
    /// Category `category` (`main`, `errors`, `input` or one of the job's
    /// own) of job `dep`, from `from` on, about `budget_bytes` of records
    /// (at least one), for the remote process of `session`, whose live
    /// lease `epoch` holds a job that ran after `dep`. Reads the store:
    /// call it off the async threads.
    pub fn remote_output(
        &self,
        session: &RemoteSession,
        epoch: u64,
        dep: JobId,
        category: &str,
        from: OutputCursor,
        budget_bytes: usize,
    ) -> Result<OutputChunk, RemoteError> {
        let category = Category::parse(category).map_err(|e| {
            RemoteError::Malformed(format!("a read of job {dep}'s output names {e}"))
        })?;
        let shared = self.shared();
        {
            let mut st = shared.state.lock();
            st.book.fleet.check(session)?;
            st.book.fleet.seen(session.worker, shared.clock.now_ms());
            let held = (st.book.fleet.held.get(&epoch))
                .filter(|h| h.group == session.worker)
                .filter(|_| st.book.leases.get(&epoch).is_some_and(|l| !l.committing))
                .ok_or(RemoteError::NoSuchLease(epoch))?;
            let jobs: Vec<JobId> = match &held.work {
                TaskWork::Simple(items) => items.iter().map(|i| i.job).collect(),
                TaskWork::Slice(s) => vec![s.job],
                TaskWork::Before(h) | TaskWork::After(h) => vec![h.job],
            };
            let ran_after = |job: &JobId| st.table.get(job).is_some_and(|j| j.after.contains(&dep));
            if !jobs.iter().any(ran_after) {
                return Err(RemoteError::Malformed(format!(
                    "lease {epoch} holds no job that ran after job {dep}; a handler reads only \
                     its own job's dependencies"
                )));
            }
        }
        let source = OutputSource {
            shared,
            store: self.store(),
        };
        let download = source
            .open_stored(dep, category, false)
            .map_err(RemoteError::Output)?;
        download
            .chunk(from, budget_bytes.max(1))
            .map_err(|e| match e {
                ChunkError::Cursor(why) => {
                    RemoteError::Malformed(format!("a read of job {dep}'s output: {why}"))
                }
                ChunkError::Read(e) => RemoteError::Output(e),
            })
    }
}
