//! Remote worker slots (issue 13): the node's side of the fleet.
//!
//! A worker process on another host joins with [`Runtime::remote_join`]
//! and gets one worker slot per thread, after this process's own
//! (`Book::workers`, `WorkerSlot::remote`). A remote thread leases through
//! the same `State::lease` as a local one (priority, kind limits, windows
//! and `max_workers` apply unchanged; a slot takes only the kinds its
//! process runs), the node reads and decrypts the slice it hands out, and
//! the worker's commit goes through the commit local workers make
//! (`worker::commit_result`, `commit_simple`, `commit_hook`): matched by
//! epoch and claim, one atomic append, answered only once durable.
//! Deadlines are the node's: the timer expires a remote lease like a local
//! one, and a late commit is fenced.
//!
//! ```no_run
//! # async fn f(runtime: booster_runtime::Runtime) -> Result<(), booster_runtime::RemoteError> {
//! use booster_runtime::{RemoteHello, RemoteLease};
//! let joined = runtime.remote_join(RemoteHello {
//!     host: "w1".into(), pid: 42, version: "0.1.0".into(),
//!     kinds: vec!["copy".into()], threads: 2, allows: Vec::new(), reads_after: true,
//! })?;
//! if let RemoteLease::Task(task) =
//!     runtime.remote_lease(&joined.session, 0, std::time::Duration::from_secs(1)).await?
//! {
//!     // ... send it to the worker, then `remote_commit` what it made of it.
//! }
//! # Ok(()) }
//! ```
//!
//! **Architecture invariant:** a remote commit changes the store only
//! through the local workers' commit functions, after `begin_commit` of
//! the epoch and claim the node handed out; anything else is fenced or
//! refused, and changes nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod answer;
mod output;
mod packed;
mod unsent;

use answer::AnswerDue;

pub use packed::PackedResult;
pub(crate) use packed::{Outcome, Written};

use crate::dispatch::{CommitEnd, HookItem, SimpleItem, SliceItem, TaskWork};
use crate::shared::Shared;
use crate::slice_store::SliceStore;
use crate::Runtime;
use crate::{JobId, SliceOutcome};
use booster_store::PackedSlice;

/// What a remote worker process says when it joins.
#[derive(Clone, Debug)]
pub struct RemoteHello {
    pub host: String,
    pub pid: u32,
    pub version: String,
    /// The kinds it runs; its slots lease nothing else.
    pub kinds: Vec<String>,
    /// Its worker threads: one slot each.
    pub threads: u32,
    /// Jobs of these kinds it runs only with one of these property values
    /// (`exec`: its `--exec-allow` commands): its slots lease no other.
    pub allows: Vec<RemoteAllow>,
    /// Its handlers read the output of their jobs' dependencies through
    /// `remote_output`: it may be leased jobs with `after` (an older
    /// worker cannot, and would run them without their input).
    pub reads_after: bool,
}

/// A job of `kind` is for the process only when its property `property`
/// is a string among `values`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteAllow {
    pub kind: String,
    pub property: String,
    pub values: Vec<String>,
}

/// What the node answers a join with.
#[derive(Clone, Debug)]
pub struct RemoteJoined {
    /// Names the process, and proves it is the one that joined, in every
    /// later call.
    pub session: RemoteSession,
    /// A lease whose heartbeat stops for this long expires.
    pub lease_timeout_ms: u64,
}

/// Who makes a call: the process's id and the secret its join drew. Ids
/// are sequential, so anyone with a worker token could guess another's;
/// the secret (128 random bits, compared in constant time) is what keeps
/// one process from leasing, heartbeating or committing as another.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteSession {
    pub worker: u64,
    pub secret: [u8; 16],
}

impl std::fmt::Debug for RemoteSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteSession {{ worker: {}, secret: .. }}", self.worker)
    }
}

/// One answer to `remote_lease`.
pub enum RemoteLease {
    Task(RemoteTask),
    /// Nothing came within the wait, but work is queued or leased.
    Nothing,
    /// Nothing is queued or leased to anyone (`--until-idle` may stop).
    Idle,
}

/// A lease as a remote worker gets it.
pub struct RemoteTask {
    pub epoch: u64,
    /// The node's deadline (ms since the epoch, the node's clock): a
    /// heartbeat moves it; a commit after it is fenced.
    pub deadline_ms: u64,
    /// The lease's own bound from hand-out (its kind's
    /// `LeasePolicy::timeout`), past which it ends however its heartbeats
    /// go; None: heartbeats keep it. A worker holding it unstarted (asked
    /// for ahead) hands it back within this, not only within half the
    /// lease timeout (Known fault 10).
    pub timeout_ms: Option<u64>,
    pub work: RemoteWork,
}

pub enum RemoteWork {
    Simple(Vec<RemoteSimpleJob>),
    Slice(RemoteSlice),
    Before(RemoteHook),
    After(RemoteHook),
}

pub struct RemoteSimpleJob {
    pub job: JobId,
    /// The jobs it ran after, whose output it reads (`remote_output`).
    pub after: Vec<JobId>,
    pub kind: Arc<str>,
    pub args: Arc<serde_json::Value>,
    pub properties: Arc<serde_json::Value>,
}

pub struct RemoteSlice {
    pub job: JobId,
    /// The jobs it ran after, whose output it reads (`remote_output`).
    pub after: Vec<JobId>,
    pub slice: u64,
    pub kind: Arc<str>,
    pub properties: Arc<serde_json::Value>,
    pub categories: Arc<[String]>,
    /// The input records, decrypted by the node and still compressed as
    /// the store holds them (the worker decompresses: "Wire protocol 3").
    pub records: PackedSlice,
}

pub struct RemoteHook {
    pub job: JobId,
    /// The jobs it ran after, whose output it reads (`remote_output`).
    pub after: Vec<JobId>,
    pub kind: Arc<str>,
    pub properties: Arc<serde_json::Value>,
    pub categories: Arc<[String]>,
}

/// What a remote worker made of its lease.
pub enum RemoteOutcome {
    /// One result per job of the batch, in lease order.
    Simple(Vec<SimpleResult>),
    Slice {
        job: JobId,
        slice: u64,
        /// Err: the whole slice failed, with this message.
        result: Result<PackedResult, String>,
    },
    Hook {
        job: JobId,
        before: bool,
        result: Result<(), String>,
    },
}

/// One simple job's result.
#[derive(Clone, Debug)]
pub struct SimpleResult {
    pub job: JobId,
    /// When it started (µs since the epoch).
    pub started_us: u64,
    pub result: Result<Option<serde_json::Value>, String>,
}

/// A handler's slice output with its categories laid out as the job
/// declared them: what a commit writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SliceResult {
    pub main: Vec<Vec<u8>>,
    /// Category n of the job's list at index n (may be shorter).
    pub by_category: Vec<Vec<Vec<u8>>>,
    /// (index in the slice, message) per failed record.
    pub record_errors: Vec<(usize, String)>,
}

impl SliceResult {
    /// `outcome` as a commit writes it; Err: the slice fails with this
    /// message (the handler failed it, or wrote to categories the job has
    /// not).
    pub fn settle(outcome: SliceOutcome, categories: &[String]) -> Result<SliceResult, String> {
        match outcome {
            SliceOutcome::Failed { message } => Err(message),
            SliceOutcome::Done {
                output,
                record_errors,
            } => Ok(SliceResult {
                main: output,
                by_category: Vec::new(),
                record_errors,
            }),
            SliceOutcome::Categorized {
                output,
                record_errors,
            } => {
                let got = output.names().join(", ");
                let Some((main, by_category)) = output.into_parts(categories) else {
                    return Err(format!(
                        "the handler returned output for categories [{got}], the job has [{}]; \
                         build its output with Output::for_job",
                        categories.join(", ")
                    ));
                };
                Ok(SliceResult {
                    main,
                    by_category,
                    record_errors,
                })
            }
        }
    }
}

/// How a remote commit ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitAnswer {
    /// Durable: the work is done (or failed, as the outcome said).
    Accepted,
    /// Durable, but the node stored failures in place of some of a simple
    /// batch's results (over its cap), saying why; the other results are
    /// as sent. (An outcome none of which was stored as sent is `Fenced`:
    /// a slice's output replaced, a batch the store refused whole.)
    AcceptedReplacing(String),
    /// Nothing the worker sent was stored: nothing changed, or the node
    /// failed the work in its place; the reason.
    Fenced(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("worker {0} is not known to this node (it restarted, or forgot a silent worker); join again")]
    UnknownWorker(u64),
    #[error(
        "the call names worker {0} without the session its join gave it; \
         a process calls with its own Hello's session (join again if the node restarted)"
    )]
    WrongSession(u64),
    #[error("the node cannot draw a session secret: {0}")]
    Random(String),
    #[error("thread {thread} is not one of worker {worker}'s {threads} threads")]
    UnknownThread {
        worker: u64,
        thread: u32,
        threads: u32,
    },
    #[error("refused: {0}")]
    Malformed(String),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error(
        "this node holds no lease {0} of this worker: it expired, ended or was given to \
         another worker; its work runs again"
    )]
    NoSuchLease(u64),
    /// A dependency's output could not be read (`remote_output`): what a
    /// local handler's `after_output` would have been told.
    #[error("{0}")]
    Output(crate::RuntimeError),
    #[error(
        "the node has {threads} remote worker threads, and takes at most {MAX_REMOTE_THREADS}; \
         join with fewer --workers, or wait for silent workers to be forgotten"
    )]
    Full { threads: usize },
}

/// The most remote worker threads a node keeps slots for at once: a bound
/// on what `Hello`s can make it hold.
pub const MAX_REMOTE_THREADS: usize = 65_536;

/// The most leases one remote thread names in a heartbeat: the one it
/// runs, the one ahead, and its commits on their way (8 in `booster
/// work`), with room to spare.
pub const MAX_EPOCHS_PER_THREAD: usize = 16;

/// Limits on what a `Hello` says, so it cannot make the node hold (and
/// list, and log) more than a worker needs.
const MAX_HOST_BYTES: usize = 255;
const MAX_KINDS: usize = 256;
const MAX_KIND_BYTES: usize = 128;
const MAX_VERSION_BYTES: usize = 64;
const MAX_ALLOWED_VALUES: usize = 1024;

fn check_hello(hello: &RemoteHello) -> Result<(), RemoteError> {
    let bad = |m: String| Err(RemoteError::Malformed(m));
    if hello.host.len() > MAX_HOST_BYTES {
        return bad(format!(
            "a host name of {} bytes; at most {MAX_HOST_BYTES}",
            hello.host.len()
        ));
    }
    if hello.version.len() > MAX_VERSION_BYTES {
        return bad(format!("a version of {} bytes", hello.version.len()));
    }
    if hello.kinds.len() > MAX_KINDS {
        return bad(format!(
            "{} kinds; a worker runs at most {MAX_KINDS}",
            hello.kinds.len()
        ));
    }
    let values: usize = hello.allows.iter().map(|a| a.values.len()).sum();
    if hello.allows.len() > MAX_KINDS || values > MAX_ALLOWED_VALUES {
        return bad(format!(
            "{} allow lists of {values} values; at most {MAX_KINDS} of {MAX_ALLOWED_VALUES}",
            hello.allows.len()
        ));
    }
    if let Some(k) = hello.kinds.iter().find(|k| k.len() > MAX_KIND_BYTES) {
        return bad(format!(
            "a kind name of {} bytes; at most {MAX_KIND_BYTES}",
            k.len()
        ));
    }
    Ok(())
}

/// A remote thread's slot: which process it belongs to and what it runs.
#[derive(Clone, Debug)]
pub struct RemoteSlot {
    pub group: u64,
    pub kinds: Arc<[String]>,
    pub allows: Arc<[RemoteAllow]>,
    /// Its process reads dependencies' output (`RemoteHello::reads_after`).
    pub reads_after: bool,
}

impl RemoteSlot {
    pub fn runs(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == kind)
    }

    /// `job` is one this slot's process may run: its allow lists pass it,
    /// and it has no `after` or the process reads dependencies' output.
    pub fn takes(&self, job: &crate::table::Job) -> bool {
        (job.after.is_empty() || self.reads_after) && self.accepts(&job.kind, &job.properties)
    }

    /// A job of `kind` with `properties` passes the process's allow lists.
    pub fn accepts(&self, kind: &str, properties: &serde_json::Value) -> bool {
        self.allows.iter().filter(|a| a.kind == kind).all(|a| {
            let value = properties.get(&a.property).and_then(|v| v.as_str());
            value.is_some_and(|v| a.values.iter().any(|allowed| allowed == v))
        })
    }
}

/// The remote worker processes and their leases' work (in `Book`, under
/// the state lock).
#[derive(Default)]
pub struct Fleet {
    groups: BTreeMap<u64, Group>,
    next: u64,
    /// The work of each remote lease, by epoch: the commit is checked
    /// against it, and built from it as a local worker's would be.
    held: HashMap<u64, Held>,
    /// Slots of processes that went silent, for the next to join.
    free_slots: Vec<usize>,
    /// When this process opened the store: its own threads' rate is
    /// counted from then.
    opened_ms: u64,
    /// The answers of the last `RECENT_COMMITS` commits (epoch, process,
    /// answer): a commit sent again because its answer was lost is told
    /// the first one's answer, not that its lease went to another worker.
    answered: std::collections::VecDeque<(u64, u64, CommitAnswer)>,
    /// Commits on their way to the store, by epoch (process, its answer
    /// once known): a retry that comes meanwhile waits for the answer.
    committing: HashMap<u64, (u64, tokio::sync::watch::Receiver<Option<CommitAnswer>>)>,
    /// `Lease` long polls waiting on `work_ready` now, by slot: a commit
    /// wakes the waiters only when its own thread's poll is among them
    /// (the one it frees room for), not every poll on the node.
    polls_waiting: HashMap<usize, u32>,
}

/// Commits remembered for retries (`Fleet::answered`): a few seconds of
/// a busy fleet's commits; a retry older than that is only fenced.
const RECENT_COMMITS: usize = 4096;

pub struct Group {
    pub hello: RemoteHello,
    /// The session's secret (`RemoteSession`): every call must carry it.
    secret: [u8; 16],
    pub slots: Vec<usize>,
    pub joined_ms: u64,
    pub last_seen_ms: u64,
    /// Input records of the slices it committed (accepted).
    pub records_done: u64,
    /// Jobs its handlers refused (`Runtime::remote_decline`), with their
    /// reasons, oldest first: never leased to it again. At most
    /// `MAX_DECLINED`; past that the oldest is asked again.
    declined: HashMap<JobId, String>,
    /// `declined`'s jobs, oldest first.
    declined_order: VecDeque<JobId>,
}

/// The refused jobs a process's `declined` list keeps.
const MAX_DECLINED: usize = 4096;

impl Group {
    /// Job `job` is never leased to this process again, for `why` (cut to
    /// 1 KiB); past `MAX_DECLINED` jobs, the oldest is asked again.
    fn decline(&mut self, job: JobId, mut why: String) {
        const MAX_REASON_BYTES: usize = 1024;
        if why.len() > MAX_REASON_BYTES {
            let mut end = MAX_REASON_BYTES;
            while !why.is_char_boundary(end) {
                end -= 1;
            }
            why.truncate(end);
        }
        if self.declined.insert(job, why).is_none() {
            self.declined_order.push_back(job);
        }
        while self.declined_order.len() > MAX_DECLINED {
            if let Some(oldest) = self.declined_order.pop_front() {
                self.declined.remove(&oldest);
            }
        }
    }
}

/// A process that works on this node's jobs: this one (its own threads)
/// or a remote worker process (`Runtime::worker_processes`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WorkerProcess {
    /// The remote process's id; None: this process.
    pub worker: Option<u64>,
    /// Empty for this process (the caller knows its own host).
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub kinds: Vec<String>,
    pub threads: u32,
    /// Leases its threads hold now.
    pub leases: u32,
    /// When the node last heard from it (this process: now).
    pub last_heartbeat_ms: u64,
    /// Input records of the slices it finished per second, since it joined
    /// (this process: since it opened the store).
    pub records_per_s: f64,
}

struct Held {
    group: u64,
    work: TaskWork,
    /// The slice's record count (0 for other work).
    records: usize,
    leased: Instant,
}

/// A process unseen for this many lease timeouts, holding no lease, is
/// forgotten and its slots reused.
const SILENT_TIMEOUTS: u64 = 4;

impl Fleet {
    /// The process `session` names, if the session is its.
    fn check(&self, session: &RemoteSession) -> Result<&Group, RemoteError> {
        use subtle::ConstantTimeEq as _;
        let g = self
            .groups
            .get(&session.worker)
            .ok_or(RemoteError::UnknownWorker(session.worker))?;
        match bool::from(g.secret.ct_eq(&session.secret)) {
            true => Ok(g),
            false => Err(RemoteError::WrongSession(session.worker)),
        }
    }

    /// The slot of `thread` of the process `session` names.
    fn slot(&self, session: &RemoteSession, thread: u32) -> Result<usize, RemoteError> {
        let group = session.worker;
        let g = self.check(session)?;
        g.slots
            .get(thread as usize)
            .copied()
            .ok_or(RemoteError::UnknownThread {
                worker: group,
                thread,
                threads: g.slots.len() as u32,
            })
    }

    fn seen(&mut self, group: u64, now_ms: u64) {
        if let Some(g) = self.groups.get_mut(&group) {
            g.last_seen_ms = now_ms;
        }
    }

    /// Why process `group`'s handler refused job `job`, if it did.
    pub(crate) fn declined(&self, group: u64, job: JobId) -> Option<&str> {
        let g = self.groups.get(&group)?;
        g.declined.get(&job).map(String::as_str)
    }

    /// The processes that joined, by id.
    pub fn groups(&self) -> &BTreeMap<u64, Group> {
        &self.groups
    }

    /// The commit of remote lease `epoch` of process `group` ended with
    /// `answer`: remembered for a retry, no longer on its way.
    /// `records`: the slice's input records, counted as done when accepted.
    fn note_answer(&mut self, epoch: u64, group: u64, answer: CommitAnswer, records: u64) {
        self.committing.remove(&epoch);
        let accepted = matches!(
            answer,
            CommitAnswer::Accepted | CommitAnswer::AcceptedReplacing(_)
        );
        if let (true, Some(g)) = (accepted, self.groups.get_mut(&group)) {
            g.records_done += records;
        }
        if self.answered.len() >= RECENT_COMMITS {
            self.answered.pop_front();
        }
        self.answered.push_back((epoch, group, answer));
    }

    /// How a commit of lease `epoch` sent again by process `group` is
    /// answered: the answer of one that ended, or a wait for one on its
    /// way; None: no commit of it is known.
    fn earlier_commit(&self, epoch: u64, group: u64) -> Option<Earlier> {
        if let Some((_, _, answer)) = self
            .answered
            .iter()
            .rev()
            .find(|(e, g, _)| (*e, *g) == (epoch, group))
        {
            return Some(Earlier::Answered(answer.clone()));
        }
        match self.committing.get(&epoch) {
            Some((g, rx)) if *g == group => Some(Earlier::OnItsWay(rx.clone())),
            _ => None,
        }
    }

    /// This process opened the store at `now_ms`.
    pub fn set_opened(&mut self, now_ms: u64) {
        self.opened_ms = now_ms;
    }
}

impl Runtime {
    /// A remote worker process joins: it gets `hello.threads` worker slots
    /// (at least 1, at most 1024) that lease only `hello.kinds`.
    pub fn remote_join(&self, hello: RemoteHello) -> Result<RemoteJoined, RemoteError> {
        if hello.threads == 0 || hello.threads > 1024 {
            return Err(RemoteError::Malformed(format!(
                "a worker runs 1 to 1024 threads, not {}",
                hello.threads
            )));
        }
        check_hello(&hello)?;
        let shared = self.shared();
        let mut st = shared.state.lock();
        if st.book.stopping {
            return Err(RemoteError::ShuttingDown);
        }
        let mut secret = [0u8; 16];
        getrandom::getrandom(&mut secret).map_err(|e| RemoteError::Random(e.to_string()))?;
        let now_ms = shared.clock.now_ms();
        forget_silent(&mut st.book, now_ms);
        let book = &mut st.book;
        let remote = book.workers.len() - book.local_workers - book.fleet.free_slots.len();
        if remote + hello.threads as usize > MAX_REMOTE_THREADS {
            return Err(RemoteError::Full { threads: remote });
        }
        // Unique across node restarts: a worker that lived through one
        // holds an id this node never gave.
        book.fleet.next += 1;
        let group = book.generation << 32 | book.fleet.next;
        let kinds: Arc<[String]> = hello.kinds.clone().into();
        let allows: Arc<[RemoteAllow]> = hello.allows.clone().into();
        let mut slots = Vec::with_capacity(hello.threads as usize);
        for _ in 0..hello.threads {
            let remote = Some(crate::remote::RemoteSlot {
                group,
                kinds: kinds.clone(),
                allows: allows.clone(),
                reads_after: hello.reads_after,
            });
            let slot = match book.fleet.free_slots.pop() {
                Some(i) => i,
                None => {
                    book.workers.push(Default::default());
                    book.workers.len() - 1
                }
            };
            // A reused slot starts afresh: its counters were another
            // process's.
            book.workers[slot] = crate::state::WorkerSlot {
                remote,
                ..Default::default()
            };
            slots.push(slot);
        }
        book.fleet.groups.insert(
            group,
            Group {
                hello,
                secret,
                slots,
                joined_ms: now_ms,
                last_seen_ms: now_ms,
                records_done: 0,
                declined: HashMap::new(),
                declined_order: VecDeque::new(),
            },
        );
        Ok(RemoteJoined {
            session: RemoteSession {
                worker: group,
                secret,
            },
            lease_timeout_ms: book.lease_timeout_ms,
        })
    }

    /// The next lease for `thread` of the remote process of `session`,
    /// waiting up to `wait` for one. A slice comes with its records, read
    /// and decrypted here.
    pub async fn remote_lease(
        &self,
        session: &RemoteSession,
        thread: u32,
        wait: Duration,
    ) -> Result<RemoteLease, RemoteError> {
        let (shared, store) = (self.shared().clone(), self.store().clone());
        // Work ready now is leased on this thread, its slice read here
        // (one frame's CRC and decryption, what a lease costs anyway):
        // the hop to a blocking thread and back cost two thread hand-offs
        // a slice. Only a call that waits for work holds a blocking
        // thread for its long poll, and only a lease that must fail or
        // be refused is sent on to one (session 18).
        let first = match lease_within(
            &shared,
            &store,
            session,
            thread,
            Duration::ZERO,
            On::Executor,
            None,
        )? {
            Leased::Answer(RemoteLease::Nothing) if !wait.is_zero() => None,
            Leased::Answer(answer) => return Ok(answer),
            Leased::Blocking(task) => Some(task),
        };
        let session = session.clone();
        let leased = tokio::task::spawn_blocking(move || {
            lease_within(&shared, &store, &session, thread, wait, On::Blocking, first)
        });
        match leased.await.map_err(|_| RemoteError::ShuttingDown)?? {
            Leased::Answer(answer) => Ok(answer),
            Leased::Blocking(_) => unreachable!("a blocking thread goes on itself"),
        }
    }

    /// Heartbeats of the remote process of `session` for `epochs`: each
    /// lease it holds lives another lease timeout. Returns the epochs it
    /// no longer holds (expired, revoked, committed or never its): their
    /// work is to be dropped.
    pub fn remote_heartbeat(
        &self,
        session: &RemoteSession,
        epochs: &[u64],
    ) -> Result<Vec<u64>, RemoteError> {
        let shared = self.shared();
        let now_ms = shared.clock.now_ms();
        let worker = session.worker;
        let mut st = shared.state.lock();
        let threads = st.book.fleet.check(session)?.slots.len();
        if epochs.len() > threads * MAX_EPOCHS_PER_THREAD {
            return Err(RemoteError::Malformed(format!(
                "a heartbeat names {} leases; a process of {threads} threads holds at most {}",
                epochs.len(),
                threads * MAX_EPOCHS_PER_THREAD
            )));
        }
        st.book.fleet.seen(worker, now_ms);
        let mut ended = Vec::new();
        for &epoch in epochs {
            let mine = st
                .book
                .fleet
                .held
                .get(&epoch)
                .is_some_and(|h| h.group == worker);
            match st.book.leases.get(&epoch).filter(|_| mine) {
                Some(lease) if !lease.committing => {
                    lease
                        .progress_ms
                        .fetch_max(now_ms, std::sync::atomic::Ordering::Relaxed);
                    if lease.progress_ms.load(std::sync::atomic::Ordering::Relaxed)
                        == crate::handler::LEASE_ENDED
                    {
                        ended.push(epoch);
                    }
                }
                Some(_) => {}
                None => ended.push(epoch),
            }
        }
        Ok(ended)
    }

    /// Hands back leases of the remote process of `session` that a thread
    /// asked for ahead and has not started (`epochs`; its other task ran
    /// long): their work is queued again at once, for any worker, and no
    /// expiry is counted, since no handler ran it. Epochs it does not hold
    /// (ended, committing, another's) are left alone.
    pub fn remote_release(
        &self,
        session: &RemoteSession,
        epochs: &[u64],
    ) -> Result<(), RemoteError> {
        if epochs.is_empty() {
            return Ok(());
        }
        let shared = self.shared();
        let mut st = shared.state.lock();
        let threads = st.book.fleet.check(session)?.slots.len();
        if epochs.len() > threads * MAX_EPOCHS_PER_THREAD {
            return Err(RemoteError::Malformed(format!(
                "a release names {} leases; a process of {threads} threads holds at most {}",
                epochs.len(),
                threads * MAX_EPOCHS_PER_THREAD
            )));
        }
        for epoch in epochs {
            let mine = st
                .book
                .fleet
                .held
                .get(epoch)
                .is_some_and(|h| h.group == session.worker);
            let live = st.book.leases.get(epoch).is_some_and(|l| !l.committing);
            if mine && live {
                st.book.fleet.held.remove(epoch);
                st.release(*epoch);
            }
        }
        drop(st);
        shared.changed();
        Ok(())
    }

    /// The handler of the remote process of `session` refuses jobs of its
    /// lease `epoch` (`refuses`, with its reasons): the lease is handed
    /// back, its work queued again at once and no expiry counted (no
    /// handler ran it), and those jobs are never leased to that process
    /// again; a job no connected process takes says so in its waiting
    /// reason. A lease it does not hold (ended, committing, another's) is
    /// left alone; jobs outside the lease's work are `Malformed`.
    pub fn remote_decline(
        &self,
        session: &RemoteSession,
        epoch: u64,
        declined: Vec<(JobId, String)>,
    ) -> Result<(), RemoteError> {
        let shared = self.shared();
        let mut st = shared.state.lock();
        st.book.fleet.check(session)?;
        let Some(held) = st
            .book
            .fleet
            .held
            .get(&epoch)
            .filter(|h| h.group == session.worker)
        else {
            return Ok(());
        };
        let in_lease = |job: JobId| match &held.work {
            TaskWork::Simple(items) => items.iter().any(|i| i.job == job),
            TaskWork::Slice(s) => s.job == job,
            TaskWork::Before(h) | TaskWork::After(h) => h.job == job,
        };
        if let Some((job, _)) = declined.iter().find(|(job, _)| !in_lease(*job)) {
            return Err(RemoteError::Malformed(format!(
                "a decline of lease {epoch} names job {job}, which the lease does not hold"
            )));
        }
        if st.book.leases.get(&epoch).is_none_or(|l| l.committing) {
            return Ok(());
        }
        st.book.fleet.held.remove(&epoch);
        if let Some(g) = st.book.fleet.groups.get_mut(&session.worker) {
            for (job, why) in declined {
                g.decline(job, why);
            }
        }
        st.release(epoch);
        drop(st);
        shared.changed();
        Ok(())
    }

    /// Commits what remote process `worker` made of lease `epoch`. The
    /// answer comes once the outcome as sent is durable (`Accepted`) or
    /// known not to be (`Fenced`: the lease expired, was revoked, is not
    /// this worker's, the store refused the write, or the node could not
    /// store the outcome and failed the work in its place, saying why).
    /// The same commit sent again gets the first one's answer, waiting
    /// for it while it is on its way. A commit whose outcome
    /// does not fit the work leased (another job or slice, unknown record
    /// indexes, categories the job lacks) is `Malformed` and changes
    /// nothing, the lease included.
    pub async fn remote_commit(
        &self,
        session: &RemoteSession,
        epoch: u64,
        outcome: RemoteOutcome,
    ) -> Result<CommitAnswer, RemoteError> {
        self.remote_commit_with(session, epoch, move || Ok(outcome))
            .await
    }

    /// `remote_commit` of what `outcome` makes of a worker's message
    /// (decoding and checking it; its error is the caller's, `E`). One
    /// blocking thread makes the outcome, checks it against the lease and
    /// hands it to the store; the call then waits for the fsync's callback
    /// itself (`answer::AnswerDue`). Before session 18 the outcome, the
    /// commit and the wait each took a hop of their own (a blocking
    /// thread, a task and another blocking thread): seven thread hand-offs
    /// a slice where three do.
    pub async fn remote_commit_with<E>(
        &self,
        session: &RemoteSession,
        epoch: u64,
        outcome: impl FnOnce() -> Result<RemoteOutcome, E> + Send + 'static,
    ) -> Result<CommitAnswer, E>
    where
        E: From<RemoteError> + Send + 'static,
    {
        let (shared, store) = (self.shared().clone(), self.store().clone());
        let session = session.clone();
        // Runs to its end once started, even if this call is cancelled
        // (its connection dropped): the commit is made, and an answer due
        // is handed to a task of its own (`AnswerDue`'s drop).
        let begun =
            tokio::task::spawn_blocking(move || -> Result<Result<AnswerDue, Earlier>, E> {
                let outcome = outcome()?;
                Ok(
                    match begin_remote_commit(&shared, &session, epoch, &outcome)? {
                        // A panic in the commit drops `due`: its wait goes on, on
                        // a task of its own.
                        Begun::Commit { held, slot, due } => {
                            commit_blocking(&shared, &store, epoch, held, outcome);
                            wake_poll(&shared, slot);
                            Ok(due)
                        }
                        Begun::Earlier(earlier) => Err(earlier),
                    },
                )
            })
            .await
            .map_err(|_| E::from(RemoteError::ShuttingDown))??;
        match begun {
            Ok(due) => Ok(due.answer().await),
            Err(Earlier::Answered(answer)) => Ok(answer),
            Err(Earlier::OnItsWay(rx)) => answer_of(rx).await.map_err(E::from),
        }
    }

    /// The largest message between this node and a remote worker, either
    /// way: a slice's records, or its output and errors, with room for the
    /// framing (twice `max_slice_bytes`, and 1 MiB).
    pub fn max_message_bytes(&self) -> usize {
        max_message_bytes(self.shared().limits.max_slice_bytes)
    }

    /// The most bytes a slice may hold (`RuntimeOptions::max_slice_bytes`):
    /// what bounds a remote worker's messages.
    pub fn max_slice_bytes(&self) -> usize {
        self.shared().limits.max_slice_bytes
    }

    /// The most records one slice's commit may write, main and categories
    /// together: a remote worker's commit past it is malformed. The node
    /// refuses one by its count of lengths before building any record.
    pub fn max_commit_records(&self) -> usize {
        max_commit_records(self.shared().limits.max_slice_records)
    }

    /// The processes working on this node's jobs: this one when it runs
    /// worker threads, then each remote process not forgotten, with the
    /// leases it holds, when it was last heard from and its rate.
    pub fn worker_processes(&self) -> Vec<WorkerProcess> {
        let now_ms = self.shared().clock.now_ms();
        let kinds = self.kinds();
        let st = self.shared().state.lock();
        let book = &st.book;
        let rate = |records: u64, since_ms: u64| {
            records as f64 / (now_ms.saturating_sub(since_ms).max(1) as f64 / 1000.0)
        };
        let mut leases_of: HashMap<Option<u64>, u32> = HashMap::new();
        for lease in book.leases.values() {
            let owner = book
                .workers
                .get(lease.worker)
                .and_then(|w| w.remote.as_ref());
            *leases_of.entry(owner.map(|r| r.group)).or_default() += 1;
        }
        let mut all = Vec::new();
        if book.local_workers > 0 {
            let remote: u64 = book.fleet.groups.values().map(|g| g.records_done).sum();
            let records = book.metrics.records_processed.saturating_sub(remote);
            all.push(WorkerProcess {
                worker: None,
                host: String::new(),
                pid: std::process::id(),
                version: String::new(),
                kinds,
                threads: book.local_workers as u32,
                leases: leases_of.get(&None).copied().unwrap_or(0),
                last_heartbeat_ms: now_ms,
                records_per_s: rate(records, book.fleet.opened_ms),
            });
        }
        for (id, g) in &book.fleet.groups {
            all.push(WorkerProcess {
                worker: Some(*id),
                host: g.hello.host.clone(),
                pid: g.hello.pid,
                version: g.hello.version.clone(),
                kinds: g.hello.kinds.clone(),
                threads: g.slots.len() as u32,
                leases: leases_of.get(&Some(*id)).copied().unwrap_or(0),
                last_heartbeat_ms: g.last_seen_ms,
                records_per_s: rate(g.records_done, g.joined_ms),
            });
        }
        all
    }
}

impl crate::state::State {
    /// Why no worker can run `job` on a node that runs no threads of its
    /// own (`serve --workers 0`): no connected remote process runs its
    /// kind, passes its allow lists, or (for a job with `after`) reads
    /// dependencies' output. None: some worker can.
    pub(crate) fn no_worker_can_run(&self, job: &crate::table::Job) -> Option<String> {
        let book = &self.book;
        if book.local_workers > 0 || !book.runs_workers {
            return None;
        }
        let slots = book.fleet.groups.values().filter_map(|g| {
            let slot = *g.slots.first()?;
            book.workers.get(slot)?.remote.as_ref()
        });
        let (mut runs_kind, mut allowed) = (false, false);
        let mut refused = None;
        for r in slots {
            if !r.runs(&job.kind) {
                continue;
            }
            runs_kind = true;
            if !r.accepts(&job.kind, &job.properties) {
                continue;
            }
            allowed = true;
            if r.takes(job) {
                match book.fleet.declined(r.group, job.id) {
                    None => return None,
                    Some(why) => refused = Some((r.group, why)),
                }
            }
        }
        let kind = &*job.kind;
        if let Some((group, why)) = refused {
            return Some(format!(
                "no connected worker takes it: worker {group}'s handler for kind {kind:?} declined it: {why}"
            ));
        }
        Some(match (book.fleet.groups.is_empty(), runs_kind, allowed) {
            (true, _, _) => "no worker can run it: this node runs no threads (serve --workers 0) \
                          and no remote worker is connected; start one: booster --server URL work"
                .into(),
            (false, false, _) => {
                format!("no worker can run it: no connected worker runs kind {kind:?}")
            }
            (false, true, false) => format!(
                "no worker can run it: no connected worker allows this {kind:?} job \
                 (an exec job runs only where `booster work --exec-allow` names its cmd)"
            ),
            (false, true, true) => format!(
                "no worker can run it: it reads the output of the jobs it runs after, and no \
                 connected worker that runs kind {kind:?} can read them (an older booster \
                 work): run this node's booster build there, or restart the node with --workers N"
            ),
        })
    }
}

fn fenced(epoch: u64, why: &str) -> CommitAnswer {
    CommitAnswer::Fenced(format!("lease {epoch}: {why}"))
}

/// Step 1 of a remote commit, under the state lock: the session, the
/// epoch, the outcome against the work held; then the lease waits for
/// its commit (`Lease::on_end`) and the epoch is on its way
/// (`Fleet::committing`). A retry gets the first call's answer instead.
fn begin_remote_commit(
    shared: &Arc<Shared>,
    session: &RemoteSession,
    epoch: u64,
    outcome: &RemoteOutcome,
) -> Result<Begun, RemoteError> {
    let worker = session.worker;
    let mut st = shared.state.lock();
    let now_ms = shared.clock.now_ms();
    st.book.fleet.check(session)?;
    st.book.fleet.seen(worker, now_ms);
    let Some(h) = st.book.fleet.held.get(&epoch) else {
        // A retry of a commit whose answer was lost, or that is still on
        // its way: told the truth, never "no such lease".
        return Ok(Begun::Earlier(match st.book.fleet.earlier_commit(epoch, worker) {
            Some(earlier) => earlier,
            None => Earlier::Answered(fenced(epoch, "this node holds no such lease: it expired and was given to another worker, or the node restarted")),
        }));
    };
    if h.group != worker {
        return Ok(Begun::Earlier(Earlier::Answered(fenced(
            epoch,
            "the lease is another worker's",
        ))));
    }
    check_outcome(
        h,
        outcome,
        max_commit_records(shared.limits.max_slice_records),
    )?;
    let lease = st.book.leases.get_mut(&epoch).filter(|l| !l.committing);
    let Some(lease) = lease else {
        st.book.fleet.held.remove(&epoch);
        let why = "the lease expired or its job was stopped";
        return Ok(Begun::Earlier(Earlier::Answered(fenced(epoch, why))));
    };
    let (on_end_tx, on_end) = tokio::sync::oneshot::channel();
    lease.on_end = Some(on_end_tx);
    let slot = lease.worker;
    let held = st.book.fleet.held.remove(&epoch).expect("checked above");
    let (tx, rx) = tokio::sync::watch::channel(None);
    st.book.fleet.committing.insert(epoch, (worker, rx));
    let due = AnswerDue {
        shared: shared.clone(),
        epoch,
        worker,
        records: held.records as u64,
        simple: matches!(held.work, TaskWork::Simple(_)),
        wait: Some((on_end, tx)),
        on_drop: answer::OnDrop::HandToTask,
    };
    Ok(Begun::Commit { held, slot, due })
}

enum Begun {
    /// A retry, or a commit refused: told what the node knows.
    Earlier(Earlier),
    /// This call commits: its answer is `due` once the lease ends, to
    /// this call and any retry's.
    Commit {
        held: Held,
        /// The slot (thread) whose lease it is.
        slot: usize,
        due: AnswerDue,
    },
}

/// What a retry of a commit learns of an earlier one.
enum Earlier {
    Answered(CommitAnswer),
    OnItsWay(tokio::sync::watch::Receiver<Option<CommitAnswer>>),
}

/// The answer a commit on its way gets once it ends; the node shutting
/// down ends it without one.
async fn answer_of(
    mut rx: tokio::sync::watch::Receiver<Option<CommitAnswer>>,
) -> Result<CommitAnswer, RemoteError> {
    match rx.wait_for(Option::is_some).await {
        Ok(answer) => Ok(answer.clone().expect("waited for Some")),
        Err(_) => Err(RemoteError::ShuttingDown),
    }
}

/// A remote commit's answer from how its lease ended: `Accepted` only
/// when what the worker sent is durable (G1); a `simple` batch some of
/// whose results the node replaced with failures is durable all the same,
/// its other results as sent: `AcceptedReplacing`, saying why. One none
/// of whose outcomes was stored as sent (the store refused the batch, and
/// the node failed every job in its place) is `Fenced`, saying why.
fn answer_to(
    epoch: u64,
    simple: bool,
    end: Result<CommitEnd, tokio::sync::oneshot::error::RecvError>,
) -> CommitAnswer {
    match end {
        Ok(CommitEnd::Durable) => CommitAnswer::Accepted,
        Ok(CommitEnd::Replaced { why, partial: true }) if simple => {
            CommitAnswer::AcceptedReplacing(format!(
                "lease {epoch}: durable, but the node failed some of its jobs in place of their \
                 results: {why}"
            ))
        }
        Ok(CommitEnd::Replaced { why, .. }) => fenced(
            epoch,
            &format!("the node could not store the outcome, and failed the work instead: {why}"),
        ),
        Ok(CommitEnd::NotDurable) => fenced(
            epoch,
            "the store did not take the commit; the work runs again",
        ),
        Err(_) => fenced(
            epoch,
            "the lease expired or its job was stopped before the commit",
        ),
    }
}

/// Forgets processes unseen for `SILENT_TIMEOUTS` lease timeouts that
/// hold no lease; their slots go to the next to join. Run at each join and
/// by the timer (`tick`), so a dead process leaves the listing and the
/// waiting reasons without another process joining.
pub(crate) fn forget_silent(book: &mut crate::state::Book, now_ms: u64) {
    // Leases that ended without a commit leave their work here.
    let leases = &book.leases;
    book.fleet
        .held
        .retain(|epoch, _| leases.contains_key(epoch));
    let limit = book.lease_timeout_ms.saturating_mul(SILENT_TIMEOUTS);
    let silent: Vec<u64> = book
        .fleet
        .groups
        .iter()
        .filter(|(id, g)| {
            g.last_seen_ms.saturating_add(limit) < now_ms
                && !book.fleet.held.values().any(|h| h.group == **id)
        })
        .map(|(id, _)| *id)
        .collect();
    for id in silent {
        if let Some(g) = book.fleet.groups.remove(&id) {
            for slot in g.slots {
                book.workers[slot].remote = None;
                book.fleet.free_slots.push(slot);
            }
        }
    }
}

/// Where a lease is taken: on an executor thread it neither waits nor
/// commits (failing a slice that does not read, or refusing a job too
/// large to send, appends, and an append waits for the append gate, which
/// a compaction holds for its whole run): such a task goes on to a
/// blocking thread (`Leased::Blocking`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum On {
    Executor,
    Blocking,
}

enum Leased {
    Answer(RemoteLease),
    /// Leased on an executor thread; needs a blocking one to go on.
    Blocking(crate::dispatch::Task),
}

/// The next lease for `thread` of `session`'s process, waiting up to
/// `wait` for one (none `On::Executor`); `first`: a task leased already
/// that is to be sent or refused first.
fn lease_within(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    session: &RemoteSession,
    thread: u32,
    wait: Duration,
    on: On,
    mut first: Option<crate::dispatch::Task>,
) -> Result<Leased, RemoteError> {
    debug_assert!(on == On::Blocking || wait.is_zero());
    let group = session.worker;
    let until = Instant::now() + wait;
    let answer = |a| Ok(Leased::Answer(a));
    loop {
        let task = if let Some(task) = first.take() {
            task
        } else {
            let mut st = shared.state.lock();
            loop {
                // Again after each wait: a process forgotten meanwhile has
                // no slot, and its old one may be another's now.
                let slot = st.book.fleet.slot(session, thread)?;
                let now_ms = shared.clock.now_ms();
                st.book.fleet.seen(group, now_ms);
                if st.book.stopping {
                    return Err(RemoteError::ShuttingDown);
                }
                if let Some(task) = st.lease(slot, now_ms) {
                    break task;
                }
                let commits = shared
                    .inflight_commits
                    .load(std::sync::atomic::Ordering::Acquire);
                if commits == 0 && st.is_idle_for(slot) {
                    return answer(RemoteLease::Idle);
                }
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return answer(RemoteLease::Nothing);
                }
                *st.book.fleet.polls_waiting.entry(slot).or_default() += 1;
                shared
                    .work_ready
                    .wait_for(&mut st, left.min(Duration::from_millis(100)));
                let waiting = &mut st.book.fleet.polls_waiting;
                if let Some(n) = waiting.get_mut(&slot) {
                    *n -= 1;
                    if *n == 0 {
                        waiting.remove(&slot);
                    }
                }
            }
        };
        let leased = Instant::now();
        let epoch = task.epoch;
        if let TaskWork::Simple(items) = &task.work {
            let limit = max_message_bytes(shared.limits.max_slice_bytes);
            let after_ids = match items.as_slice() {
                [item] => (shared.state.lock().table.get(&item.job)).map_or(0, |j| j.after.len()),
                _ => 0,
            };
            if let Some(why) = unsendable(items, after_ids, limit) {
                if on == On::Executor {
                    return Ok(Leased::Blocking(task));
                }
                refuse_unsendable(shared, store, group, epoch, items, &why);
                continue;
            }
        }
        let (mut work, count) = match &task.work {
            TaskWork::Slice(item) => {
                // A slice that cannot be read fails here, as a local
                // worker's would; the thread asks again. Read packed: the
                // worker decompresses ("Wire protocol 3").
                let read = |store: &dyn SliceStore, key: &_| store.read_slice_packed(key);
                let records = match on {
                    On::Blocking => {
                        crate::worker::read_input_with(shared, store, epoch, item, read)
                    }
                    On::Executor => match read(store.as_ref(), &crate::worker::input_key(item)) {
                        Ok(Some(records)) => Some(records),
                        // Failed on a blocking thread, reading it again.
                        _ => return Ok(Leased::Blocking(task)),
                    },
                };
                let Some(records) = records else {
                    continue;
                };
                let count = records.record_count() as usize;
                (RemoteWork::Slice(slice_of(item, records)), count)
            }
            TaskWork::Simple(items) => {
                (RemoteWork::Simple(items.iter().map(simple_of).collect()), 0)
            }
            TaskWork::Before(item) => (RemoteWork::Before(hook_of(item)), 0),
            TaskWork::After(item) => (RemoteWork::After(hook_of(item)), 0),
        };
        let mut st = shared.state.lock();
        add_after(&st, &mut work);
        let lease = st.book.leases.get(&epoch);
        let deadline_ms = lease.map_or(0, |l| l.deadline_ms);
        let timeout_ms = lease.and_then(|l| l.timeout_ms);
        // Leases that ended without a commit leave their work here.
        let book = &mut st.book;
        let leases = &book.leases;
        book.fleet.held.retain(|e, _| leases.contains_key(e));
        st.book.fleet.held.insert(
            epoch,
            Held {
                group,
                work: task.work,
                records: count,
                leased,
            },
        );
        return answer(RemoteLease::Task(RemoteTask {
            epoch,
            deadline_ms,
            timeout_ms,
            work,
        }));
    }
}

/// Each job of `work` with the jobs it ran after, whose output its
/// handler reads (`remote_output`). Most have none: a look-up each.
fn add_after(st: &crate::state::State, work: &mut RemoteWork) {
    let after = |job: JobId| {
        st.table
            .get(&job)
            .map_or_else(Vec::new, |j| j.after.clone())
    };
    match work {
        RemoteWork::Simple(jobs) => {
            for j in jobs {
                j.after = after(j.job);
            }
        }
        RemoteWork::Slice(s) => s.after = after(s.job),
        RemoteWork::Before(h) | RemoteWork::After(h) => h.after = after(h.job),
    }
}

fn slice_of(item: &SliceItem, records: PackedSlice) -> RemoteSlice {
    RemoteSlice {
        job: item.job,
        after: Vec::new(),
        slice: item.slice,
        kind: item.kind.clone(),
        properties: item.properties.clone(),
        categories: item.categories.clone(),
        records,
    }
}

fn simple_of(item: &SimpleItem) -> RemoteSimpleJob {
    RemoteSimpleJob {
        job: item.job,
        after: Vec::new(),
        kind: item.kind.clone(),
        args: item.args.clone(),
        properties: item.properties.clone(),
    }
}

fn hook_of(item: &HookItem) -> RemoteHook {
    RemoteHook {
        job: item.job,
        after: Vec::new(),
        kind: item.kind.clone(),
        properties: item.properties.clone(),
        categories: item.categories.clone(),
    }
}

fn max_message_bytes(max_slice_bytes: usize) -> usize {
    max_slice_bytes.saturating_mul(2) + (1 << 20)
}

/// Room in a lease's message for all but a simple job's arguments and
/// properties (its id, kind, `after`, the framing).
const LEASE_FRAMING_BYTES: usize = 64 << 10;

/// The bytes an id of a simple job's `after` list takes in a lease's
/// message, at most (a varint of a 64-bit id and its framing). The
/// on-complete job of a batch runs after every job of the batch.
const AFTER_ID_BYTES: usize = 10;

/// Why a simple lease cannot be sent to a remote worker: its one job's
/// arguments, properties and `after` list (`after_ids` ids) pass what a
/// message carries. A batch of several is cut to fit far below that
/// (`Book::max_remote_batch_bytes`, `max_slice_bytes`); only a job alone
/// can be too large, and only then is its JSON measured here.
fn unsendable(items: &[SimpleItem], after_ids: usize, max_message_bytes: usize) -> Option<String> {
    let [item] = items else {
        return None;
    };
    let json_len = |v: &serde_json::Value| serde_json::to_vec(v).map_or(0, |b| b.len());
    let bytes = json_len(&item.args) + json_len(&item.properties);
    let after_bytes = after_ids.saturating_mul(AFTER_ID_BYTES);
    let room = max_message_bytes.saturating_sub(LEASE_FRAMING_BYTES);
    let (what, bytes) = match after_ids {
        0 => ("its arguments and properties are", bytes),
        _ => (
            "its arguments, properties and the ids of the jobs it runs after are",
            bytes.saturating_add(after_bytes),
        ),
    };
    (bytes > room).then(|| {
        format!(
            "{what} {bytes} bytes, more than the {room} bytes a message to a remote worker \
             carries (twice the node's max_slice_bytes and 1 MiB, less room for the rest of \
             the lease)"
        )
    })
}

/// Why none of this node's own threads can run `items` (None: one can):
/// it runs none, has no handler for a job's kind (a kind only remote
/// workers run), or keeps its only threads for more urgent jobs.
fn no_local_thread_for(st: &crate::state::State, items: &[SimpleItem]) -> Option<String> {
    let book = &st.book;
    let local = book.local_workers;
    if local == 0 {
        return Some(
            "this node runs no worker threads of its own (serve --workers 0) to run it instead"
                .into(),
        );
    }
    let lane = local - book.reserved_workers.min(local);
    items.iter().find_map(|item| {
        let kind = &*item.kind;
        let handled = (book.kinds.get(kind))
            .is_some_and(|k| k.handler == Some(crate::state::HandlerShape::Simple));
        if !handled {
            return Some(format!(
                "this node's own threads have no handler for kind {kind:?} to run it instead"
            ));
        }
        let priority = st.table.get(&item.job).map_or(u8::MAX, |j| j.priority);
        (lane == 0 && priority > book.reserved_priority).then(|| {
            format!(
                "this node's own threads take only jobs of priority {} or more urgent, and it \
                 has priority {priority}",
                book.reserved_priority
            )
        })
    })
}

/// Simple lease `epoch`, leased to process `group`, cannot be sent to it
/// (`unsendable`, or its message did not fit: `why`). Where one of the
/// node's own threads can run its jobs (`no_local_thread_for`), the node
/// hands the lease back, no expiry counted, and never leases the jobs to
/// that process again, so a thread runs them; otherwise they fail at
/// once, no retry (sending them again would not change), the rest of its
/// work untouched. Before, the lease was answered `Internal` until it
/// expired, again and again, until the job failed as hung.
pub(crate) fn refuse_unsendable(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    group: u64,
    epoch: u64,
    items: &[SimpleItem],
    why: &str,
) {
    let mut st = shared.state.lock();
    let Some(none_here) = no_local_thread_for(&st, items) else {
        if st.book.leases.get(&epoch).is_some_and(|l| !l.committing) {
            if let Some(g) = st.book.fleet.groups.get_mut(&group) {
                for item in items {
                    g.decline(
                        item.job,
                        format!("a remote worker cannot be sent it: {why}"),
                    );
                }
            }
            st.release(epoch);
        }
        drop(st);
        shared.changed();
        return;
    };
    drop(st);
    let why = format!(
        "{why}; {none_here}: pass large inputs as a sliced job's upload, or run it where a \
         thread of the node can"
    );
    crate::worker::fail_simple(shared, store, epoch, items, &why);
}

/// The most records a slice's commit may write: 16 for each record a
/// slice may hold (`Runtime::max_commit_records`).
fn max_commit_records(max_slice_records: usize) -> usize {
    max_slice_records.saturating_mul(16)
}

/// The outcome names exactly the work leased and fits it (writes at most
/// `max_written` records).
fn check_outcome(
    held: &Held,
    outcome: &RemoteOutcome,
    max_written: usize,
) -> Result<(), RemoteError> {
    let bad = |m: String| Err(RemoteError::Malformed(m));
    match (&held.work, outcome) {
        (TaskWork::Simple(items), RemoteOutcome::Simple(results)) => {
            let leased: Vec<JobId> = items.iter().map(|i| i.job).collect();
            let given: Vec<JobId> = results.iter().map(|r| r.job).collect();
            if leased != given {
                return bad(format!(
                    "the commit names jobs {given:?}; the lease holds {leased:?}, in that order"
                ));
            }
        }
        (TaskWork::Slice(item), RemoteOutcome::Slice { job, slice, result }) => {
            if (item.job, item.slice) != (*job, *slice) {
                return bad(format!(
                    "the commit names slice {slice} of job {job}; the lease holds slice {} of job {}",
                    item.slice, item.job
                ));
            }
            if let Ok(r) = result {
                if r.by_category.len() > item.categories.len() {
                    return bad(format!(
                        "the commit has output for {} categories; job {job} has {}",
                        r.by_category.len(),
                        item.categories.len()
                    ));
                }
                if let Some((i, _)) = r.record_errors.iter().find(|(i, _)| *i >= held.records) {
                    return bad(format!(
                        "a record error names record {i} of a slice of {} records",
                        held.records
                    ));
                }
                // One error per record at most, in record order: the
                // counts reconcile (G2) only if no record fails twice.
                if let Some(w) = r.record_errors.windows(2).find(|w| w[0].0 >= w[1].0) {
                    return bad(format!(
                        "record errors must name each record once, in order; record {} follows record {}",
                        w[1].0, w[0].0
                    ));
                }
                let written = r.records_written();
                if written > max_written {
                    return bad(format!("the commit writes {written} records"));
                }
            }
        }
        (
            TaskWork::Before(item),
            RemoteOutcome::Hook {
                job, before: true, ..
            },
        )
        | (
            TaskWork::After(item),
            RemoteOutcome::Hook {
                job, before: false, ..
            },
        ) if item.job == *job => {}
        _ => {
            return bad(
                "the commit's outcome is not of the work leased (slice, simple jobs or hook)"
                    .into(),
            )
        }
    }
    Ok(())
}

/// A commit has begun on `slot`'s lease: it is no longer one of its
/// thread's live leases, so a look-ahead `Lease` that waits for room may
/// go before the fsync. Only that thread's poll gains by it: with none
/// waiting, nobody is woken (at thousands of commits a second, waking
/// every poll each time was a storm on the state lock).
fn wake_poll(shared: &Shared, slot: usize) {
    let waits = (shared.state.lock().book.fleet.polls_waiting).contains_key(&slot);
    if waits {
        shared.work_ready.notify_all();
    }
}

/// Hands the checked outcome to the commit local workers make.
fn commit_blocking(
    shared: &Arc<Shared>,
    store: &Arc<dyn SliceStore>,
    epoch: u64,
    held: Held,
    outcome: RemoteOutcome,
) {
    match (held.work, outcome) {
        (TaskWork::Simple(items), RemoteOutcome::Simple(results)) => {
            let elapsed = held.leased.elapsed();
            crate::worker::commit_simple(shared, store, epoch, &items, results, elapsed);
        }
        (TaskWork::Slice(item), RemoteOutcome::Slice { result, .. }) => {
            // Samples of record errors quote the records: read them again
            // (rare), rather than keep every leased slice in memory.
            let needs_records = result.as_ref().is_ok_and(|r| !r.record_errors.is_empty());
            let records = match needs_records {
                true => match crate::worker::read_input(shared, store, epoch, &item) {
                    Some(records) => records,
                    None => return, // the slice failed, naming why
                },
                false => Vec::new(),
            };
            let count = held.records as u64;
            crate::worker::commit_result(
                shared,
                store,
                epoch,
                &item,
                &records,
                count,
                result.map(Outcome::from),
                held.leased,
                None,
            );
        }
        (
            TaskWork::Before(item) | TaskWork::After(item),
            RemoteOutcome::Hook { before, result, .. },
        ) => {
            crate::worker::commit_hook(shared, store, epoch, item.job, before, result);
        }
        _ => unreachable!("check_outcome matched the work"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding 4 (s12-fleet): `unsendable` measured only a job's
    /// arguments and properties; the on-complete job of a large batch
    /// runs after every job of it, and its lease then passed the message
    /// limit unmeasured. Its `after` list counts too.
    /// Review finding 1 (s12-fleet, second review): a simple batch the
    /// store refused whole had a failure stored for every job in place of
    /// every result, and was answered durable "failed some of its jobs".
    /// Only a batch some of whose outcomes are stored as sent is.
    #[test]
    fn a_simple_batch_none_of_whose_results_was_stored_is_not_accepted() {
        let replaced = |partial| {
            Ok(CommitEnd::Replaced {
                why: "the store refused the output".into(),
                partial,
            })
        };
        match answer_to(7, true, replaced(false)) {
            CommitAnswer::Fenced(why) => assert!(
                why.contains("lease 7") && why.contains("the store refused the output"),
                "{why}"
            ),
            other => panic!("nothing stored as sent, answered {other:?}"),
        }
        assert!(matches!(
            answer_to(7, true, replaced(true)),
            CommitAnswer::AcceptedReplacing(_)
        ));
        assert!(matches!(
            answer_to(7, false, replaced(true)),
            CommitAnswer::Fenced(_)
        ));
    }

    #[test]
    fn a_simple_job_s_after_list_counts_toward_its_lease_s_size() {
        let item = SimpleItem {
            job: 1,
            kind: "job".into(),
            args: Arc::new(serde_json::json!({ "n": 1 })),
            properties: Arc::new(serde_json::Value::Null),
            attempts: 0,
            retry: crate::RetryPolicy::default(),
        };
        let limit = LEASE_FRAMING_BYTES + 1000;
        assert_eq!(unsendable(std::slice::from_ref(&item), 0, limit), None);
        assert_eq!(unsendable(std::slice::from_ref(&item), 90, limit), None);
        let why = unsendable(std::slice::from_ref(&item), 100, limit).expect("too large");
        assert!(
            why.contains("the jobs it runs after are 1011 bytes"),
            "{why}"
        );
    }
}
