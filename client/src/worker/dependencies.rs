//! A remote handler reads the output of the jobs its job ran after
//! (`JobContext::after_output`) from the node, through `Output`: the
//! lease says each job's `after`, and a download asks for its records a
//! chunk at a time, as the handler reads them. Nothing is written to this
//! host's disk.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use booster_runtime::{Category, DependencyOutputs, Download, JobId, RuntimeError};

use super::{refused, Backoff, Session, Worker};
use crate::node::{describe, NodeClient};
use crate::proto;

/// The dependencies of a lease's jobs, read from the node under that
/// lease (`epoch`).
pub(super) struct NodeOutputs<'a> {
    pub w: &'a Worker,
    pub session: Session,
    pub epoch: u64,
    /// Each job of the lease with the jobs it ran after.
    pub after: HashMap<JobId, Vec<JobId>>,
}

impl DependencyOutputs for NodeOutputs<'_> {
    fn after(&self, job: JobId) -> Vec<JobId> {
        self.after.get(&job).cloned().unwrap_or_default()
    }

    fn open(&self, _job: JobId, dep: JobId, category: Category) -> Result<Download, RuntimeError> {
        let reader = OutputReader {
            client: self.w.client.lock().clone(),
            rt: self.w.rt.clone(),
            server: self.w.server.clone(),
            lease_timeout: Duration::from_millis(
                self.w
                    .lease_timeout_ms
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            request: proto::OutputRequest {
                worker_id: self.session.id,
                session: self.session.secret.clone(),
                epoch: self.epoch,
                job: dep,
                category: category.name().to_string(),
                part: 0,
                record: 0,
                rank: 0,
                before: 0,
            },
            records: VecDeque::new(),
            done: false,
            log: self.w.log.clone(),
        };
        Ok(Download::streamed(Box::new(reader)))
    }
}

/// One dependency's category, read a chunk at a time.
struct OutputReader {
    client: NodeClient,
    rt: tokio::runtime::Handle,
    server: String,
    lease_timeout: Duration,
    /// The next chunk's request: its cursor moves with each reply.
    request: proto::OutputRequest,
    records: VecDeque<Vec<u8>>,
    done: bool,
    log: crate::Log,
}

impl OutputReader {
    /// The next chunk into `records`; a node that cannot be reached is
    /// asked again until a lease timeout has passed (the lease is gone by
    /// then), a refusal or a read error ends the download.
    fn fetch(&mut self) -> Result<(), RuntimeError> {
        let give_up = Instant::now() + self.lease_timeout;
        let mut backoff = Backoff::new(self.log.clone());
        let reply = loop {
            match self.rt.block_on(self.client.output(self.request.clone())) {
                Ok(reply) => break reply,
                Err(s) if !refused(&s) && Instant::now() < give_up => {
                    std::thread::sleep(backoff.next(&s, "reading a dependency's output"));
                }
                Err(s) => {
                    return Err(RuntimeError::Invalid(format!(
                        "the node at {} did not send the {} output of job {}: {}",
                        self.server,
                        self.request.category,
                        self.request.job,
                        describe(&s)
                    )))
                }
            }
        };
        let records = proto::records_of(reply.records.as_ref()).map_err(|why| {
            RuntimeError::Invalid(format!(
                "the node at {} sent job {}'s output malformed: {why}",
                self.server, self.request.job
            ))
        })?;
        // A reply that is not done moves the cursor: one that did not
        // would be asked for again for ever.
        let moved = (reply.part, reply.rank, reply.record, reply.before)
            != (
                self.request.part,
                self.request.rank,
                self.request.record,
                self.request.before,
            );
        if !reply.done && (records.is_empty() || !moved) {
            return Err(RuntimeError::Invalid(format!(
                "the node at {} sent a chunk of job {}'s output that does not move its cursor",
                self.server, self.request.job
            )));
        }
        self.done = reply.done;
        self.request.part = reply.part;
        self.request.record = reply.record;
        self.request.rank = reply.rank;
        self.request.before = reply.before;
        self.records.extend(records);
        booster_runtime::heartbeat();
        Ok(())
    }
}

impl Iterator for OutputReader {
    type Item = Result<Vec<u8>, RuntimeError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.records.pop_front() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fetch() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}
