//! A worker process of a fleet (`booster --server URL work`, or a
//! service's [`Runtime::connect`]). It joins the node (`Hello`), then
//! each of its threads leases work (`Lease`, a long poll), runs the
//! registered kind's handler on it and
//! commits the outcome (`Commit`). While a task runs, its thread already
//! asks for the next lease (one ahead, no more); finished work waiting for
//! the node's fsync is pipelined, up to `COMMITS_IN_FLIGHT` commits a
//! thread. A task keeps alive the leases whose handler makes progress
//! (`Heartbeat`).
//!
//! Records live only in memory: nothing of a job is written to this
//! host's disk. A commit the node cannot take now (unreachable) is tried
//! again until the lease's timeout, then dropped: the node gives the work
//! to another worker once the lease expires. A node that forgot this
//! worker (it restarted) is joined again.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use booster_runtime::{
    JobContext, LeaseProgress, PackedResult, RecordHandler, SimpleHandler, SliceResult,
};
use parking_lot::Mutex;
use tonic::{Code, Status};

use crate::node::{describe, NodeClient};
use crate::Log;
use crate::{proto, ClientError};

mod dependencies;
mod hangs;
use dependencies::NodeOutputs;

/// A handler a worker runs, under its kind's name.
#[derive(Clone)]
pub enum Handler {
    Sliced(Arc<dyn RecordHandler>),
    Simple(Arc<dyn SimpleHandler>),
}

/// How a connected runtime works.
#[derive(Clone, Debug)]
pub struct WorkOptions {
    /// Worker threads (at least 1): one lease each, one more asked ahead.
    pub threads: usize,
    /// Stop once nothing is leased to anyone and nothing queued is for
    /// this worker.
    pub until_idle: bool,
    /// A PEM certificate to trust (a self-signed node), else the web's
    /// roots. Default: the one `BOOSTER_CA_CERT` names, as `booster work`
    /// reads it.
    pub ca_cert: Option<PathBuf>,
    /// The version this worker says it is (tests say another).
    pub version: String,
    /// Where the worker's messages go (joining, the node lost and found
    /// again, fenced or dropped commits, hung handlers). Default: stderr,
    /// as `booster work: MESSAGE`.
    pub log: Log,
}

impl Default for WorkOptions {
    fn default() -> WorkOptions {
        WorkOptions {
            threads: 1,
            until_idle: false,
            ca_cert: crate::ca_cert_from_env(),
            version: crate::VERSION.to_string(),
            log: Log::default(),
        }
    }
}

/// A runtime connected to a node instead of opened on a directory: its
/// handlers work the node's jobs of their kinds, as a remote worker.
pub struct Runtime {
    server: String,
    token: Option<String>,
    handlers: HashMap<String, Handler>,
    allows: Vec<proto::PropertyAllow>,
}

impl Runtime {
    /// A runtime for the node at `url` (`https://`, or `http://` to a
    /// loopback host), sending `token` (a worker or admin token). Nothing
    /// is sent until [`Runtime::work`].
    pub fn connect(url: &str, token: Option<&str>) -> Result<Runtime, ClientError> {
        crate::check_server_url(url.trim_end_matches('/'))?;
        Ok(Runtime {
            server: url.to_string(),
            token: token.map(str::to_string),
            handlers: HashMap::new(),
            allows: Vec::new(),
        })
    }

    /// Runs `kind`'s sliced jobs with `handler`.
    pub fn register_sliced(&mut self, kind: &str, handler: Arc<dyn RecordHandler>) {
        self.register(kind, Handler::Sliced(handler));
    }

    /// Runs `kind`'s simple jobs with `handler`.
    pub fn register_simple(&mut self, kind: &str, handler: Arc<dyn SimpleHandler>) {
        self.register(kind, Handler::Simple(handler));
    }

    pub fn register(&mut self, kind: &str, handler: Handler) {
        self.handlers.insert(kind.to_string(), handler);
    }

    /// Takes jobs of `kind` only when their property `property` is one of
    /// `values` (`exec`: its `cmd`, from `--exec-allow`): the node leases
    /// this worker no other.
    pub fn allow_only(&mut self, kind: &str, property: &str, values: Vec<String>) {
        self.allows.push(proto::PropertyAllow {
            kind: kind.to_string(),
            property: property.to_string(),
            values,
        });
    }

    /// Joins the node and works until `stop` resolves, or until the node
    /// is idle for it with `until_idle`.
    pub async fn work(
        self,
        opts: WorkOptions,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), ClientError> {
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort();
        let hello = proto::HelloRequest {
            version: opts.version.clone(),
            host: this_host(),
            pid: std::process::id(),
            kinds,
            threads: opts.threads.max(1) as u32,
            allows: self.allows,
            protocol: crate::PROTOCOL,
            reads_after: true,
        };
        let client = NodeClient::new(&self.server, self.token.as_deref(), opts.ca_cert.as_deref())?;
        work(
            client,
            &self.server,
            hello,
            self.handlers,
            opts.until_idle,
            opts.log,
            stop,
        )
        .await
    }
}

/// This host's name, as the node lists its workers.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Commits one thread may have on their way to the node: finished work
/// waiting for durability (it holds no lease another job could use).
const COMMITS_IN_FLIGHT: usize = 8;

/// The longest wait between tries to reach the node.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A lease's heartbeat state: the handler's progress, what the last
/// heartbeat sent, and whether the handler is done (its commit is on its
/// way: the lease is kept alive until the node answers).
struct Beat {
    progress: LeaseProgress,
    sent_ms: u64,
    done: bool,
    /// A lease asked for ahead whose handler has not started: the progress
    /// of the handler its thread runs first. The node's deadline for it
    /// runs from when it was handed out, so it lives on that handler's
    /// heartbeats: without them, a handler running longer than a lease
    /// timeout had the lease ahead expire behind it, counted against its
    /// work as a hang (three such expiries failed a slice no handler had
    /// started). If that handler hangs, both leases expire, as they should.
    /// Held so unstarted until `hand_back_at`, it is handed back
    /// (`heartbeats`).
    behind: Option<LeaseProgress>,
    /// When a lease asked for ahead is handed back if still unstarted
    /// (`hand_back_after`).
    hand_back_at: Instant,
}

impl Beat {
    /// A lease its thread runs now, under `progress`.
    fn running(progress: LeaseProgress) -> Beat {
        Beat {
            progress,
            sent_ms: 0,
            done: false,
            behind: None,
            hand_back_at: Instant::now(),
        }
    }
}

/// A lease asked for ahead and not started after this fraction of a lease
/// timeout is handed back to the node (`HeartbeatRequest::released`),
/// which queues its work again for any worker and counts no expiry: a
/// thread's long task never holds other work (a priority-1 job) for
/// longer, however long it heartbeats (G4, G5).
const HAND_BACK_AHEAD: (u64, u64) = (1, 2);

/// The most of a lease's own bound a lease asked for ahead may wait
/// unstarted: its handler has the rest.
const WAIT_AHEAD_OF_OWN_BOUND: (u64, u64) = (1, 16);

/// How long a lease asked for ahead may wait unstarted: `HAND_BACK_AHEAD`
/// of the lease timeout, or `WAIT_AHEAD_OF_OWN_BOUND` of the lease's own
/// bound (`Task::timeout_ms`, its kind's lease timeout; 0: none) when that
/// is shorter. The node ends a lease at its own bound from hand-out
/// whatever its heartbeats say: a lease ahead that waited expired
/// unstarted, counted against its work (Known fault 10: three such failed
/// it as hung), and one that waited half its bound left its handler half
/// (the review of faults12, finding 5).
fn hand_back_after(lease_timeout_ms: u64, task_timeout_ms: u64) -> Duration {
    let (part, whole) = HAND_BACK_AHEAD;
    let of_timeout_ms = lease_timeout_ms * part / whole;
    let (part, whole) = WAIT_AHEAD_OF_OWN_BOUND;
    Duration::from_millis(match task_timeout_ms {
        0 => of_timeout_ms,
        t => of_timeout_ms.min(t * part / whole),
    })
}

struct Worker {
    /// Held only to clone the client or replace it (`rejoin`).
    client: Mutex<NodeClient>,
    /// Held by the thread that joins again, so only one does.
    rejoining: Mutex<()>,
    hello: proto::HelloRequest,
    /// Who this process is to the node: its id and session secret, which
    /// change together when it joins again.
    session: Mutex<Session>,
    lease_timeout_ms: AtomicU64,
    handlers: HashMap<String, Handler>,
    until_idle: bool,
    stop: AtomicBool,
    /// Leases held and not yet answered, by epoch: what heartbeats keep
    /// alive.
    held: Mutex<HashMap<u64, Beat>>,
    /// Told when a lease asked for ahead arrives: `heartbeats` wakes in
    /// time to hand it back (its bound may be shorter than the interval).
    ahead_arrived: tokio::sync::Notify,
    rt: tokio::runtime::Handle,
    /// The node's URL, for messages.
    server: String,
    /// Why the node stopped taking this worker (its token revoked, say):
    /// set once, it stops every thread and is `work`'s error.
    refused: Mutex<Option<String>>,
    /// The handlers running and the threads working (`hangs`).
    threads: hangs::Threads,
    /// Where messages go (`WorkOptions::log`).
    log: Log,
}

impl Worker {
    /// Ends the worker: the node answered `status`, a refusal that asking
    /// again would not change (a token revoked since it joined).
    fn give_up(&self, status: &Status) {
        self.give_up_saying(format!(
            "the node at {} refused this worker: {}",
            self.server,
            describe(status)
        ));
    }

    /// Ends the worker for `why` (the first reason given is kept).
    fn give_up_saying(&self, why: String) {
        let mut refused = self.refused.lock();
        if refused.is_none() {
            *refused = Some(why);
        }
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Joins the node and works until `stop` resolves, or until the node is
/// idle with `until_idle`.
async fn work(
    mut client: NodeClient,
    server: &str,
    hello: proto::HelloRequest,
    handlers: HashMap<String, Handler>,
    until_idle: bool,
    log: Log,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ClientError> {
    tokio::pin!(stop);
    let joined = tokio::select! {
        joined = join(&mut client, &hello, server, &log) => joined?,
        () = &mut stop => return Ok(()),
    };
    log.say(&format!(
        "worker {} of {} ({} threads; kinds {})",
        joined.worker_id,
        server,
        hello.threads,
        hello.kinds.join(", ")
    ));
    let worker = Arc::new(Worker {
        client: Mutex::new(client),
        rejoining: Mutex::new(()),
        hello,
        session: Mutex::new(Session::of(&joined)),
        lease_timeout_ms: AtomicU64::new(joined.lease_timeout_ms),
        handlers,
        until_idle,
        stop: AtomicBool::new(false),
        held: Mutex::new(HashMap::new()),
        ahead_arrived: tokio::sync::Notify::new(),
        rt: tokio::runtime::Handle::current(),
        server: server.to_string(),
        refused: Mutex::new(None),
        threads: hangs::Threads::default(),
        log,
    });
    let beat = tokio::spawn(heartbeats(
        worker.clone(),
        Duration::from_millis(joined.heartbeat_interval_ms.max(10)),
    ));
    // Dropped before its end (a caller's `select!` or timeout), the work
    // stops as if told to: its threads finish the task they hold and
    // lease no more, and the heartbeats end.
    let _stop_on_drop = StopOnDrop {
        worker: worker.clone(),
        beat: beat.abort_handle(),
    };
    for t in 0..worker.hello.threads {
        hangs::spawn(&worker, t)?;
    }
    // Until every thread ended, or was given up behind a hung handler: a
    // stop waits for the tasks the threads hold, not for a handler that
    // makes no progress (`hangs`).
    let mut stopping = false;
    while worker.threads.working() > 0 {
        tokio::select! {
            () = worker.threads.one_ended() => {}
            () = &mut stop, if !stopping => {
                stopping = true;
                worker.stop.store(true, Ordering::Relaxed);
            }
        }
    }
    let left = worker.threads.left_running();
    if !left.is_empty() {
        worker.log.say(&format!(
            "stopped, leaving running handlers that made no progress (their leases \
             expire on the node and nothing is committed for them): {}",
            left.join("; ")
        ));
    }
    let refused = worker.refused.lock().take();
    match refused {
        Some(why) => Err(ClientError::Refused(why)),
        None => Ok(()),
    }
}

/// Stops a worker's threads and heartbeats when `work` ends or is dropped.
struct StopOnDrop {
    worker: Arc<Worker>,
    beat: tokio::task::AbortHandle,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.worker.stop.store(true, Ordering::Relaxed);
        self.beat.abort();
    }
}

/// `Hello` until the node answers: a node not up yet (or restarting) is
/// waited for with backoff, saying so; a refusal (a wrong token, another
/// version) ends the worker, since asking again changes nothing.
async fn join(
    client: &mut NodeClient,
    hello: &proto::HelloRequest,
    server: &str,
    log: &Log,
) -> Result<proto::HelloReply, ClientError> {
    let mut backoff = Backoff::new(log.clone());
    loop {
        match client.hello(hello.clone()).await {
            Ok(joined) => {
                backoff.reset();
                return check_protocol(&joined, server).map(|()| joined);
            }
            Err(s) if refused(&s) || untrusted(&s) => {
                return Err(ClientError::Refused(format!(
                    "the node at {server} refused this worker: {}",
                    describe(&s)
                )))
            }
            Err(s) => tokio::time::sleep(backoff.next(&s, "joining the node")).await,
        }
    }
}

/// A node speaking another wire protocol (an older one sends none) would
/// read this worker's slices as empty: refused, naming both.
fn check_protocol(joined: &proto::HelloReply, server: &str) -> Result<(), ClientError> {
    let node = crate::protocol_of(joined.protocol);
    match node == crate::PROTOCOL {
        true => Ok(()),
        false => Err(ClientError::Refused(format!(
            "the node at {server} (booster {}) speaks worker protocol {node}, this worker \
             (booster {}) protocol {}: run the same booster build on both",
            joined.version,
            crate::VERSION,
            crate::PROTOCOL
        ))),
    }
}

/// The worker's id and session secret (`HelloReply`).
#[derive(Clone, Default)]
struct Session {
    id: u64,
    secret: Vec<u8>,
}

impl Session {
    fn of(joined: &proto::HelloReply) -> Session {
        Session {
            id: joined.worker_id,
            secret: joined.session.clone(),
        }
    }
}

type LeaseAnswer = (Session, Result<proto::LeaseReply, Status>);

/// One `Lease` call for `thread`, with the session it was made under.
async fn lease_once(w: Arc<Worker>, thread: u32) -> LeaseAnswer {
    let session = w.session.lock().clone();
    let client = w.client.lock().clone();
    let m = proto::LeaseRequest {
        worker_id: session.id,
        thread,
        session: session.secret.clone(),
    };
    (session, client.lease(m).await)
}

/// `lease_once` for the lease a thread asks for ahead, while it runs the
/// handler whose progress is `behind`: a lease it gets is held (and
/// heartbeat) from the moment the answer comes, not from when the thread
/// takes it.
async fn lease_ahead(w: Arc<Worker>, thread: u32, behind: LeaseProgress) -> LeaseAnswer {
    let answer = lease_once(w.clone(), thread).await;
    if let Ok(proto::LeaseReply {
        task: Some(task), ..
    }) = &answer.1
    {
        let timeout_ms = w.lease_timeout_ms.load(Ordering::Relaxed);
        let beat = Beat {
            progress: LeaseProgress::new(),
            sent_ms: 0,
            done: false,
            behind: Some(behind),
            hand_back_at: Instant::now() + hand_back_after(timeout_ms, task.timeout_ms),
        };
        w.held.lock().insert(task.epoch, beat);
        w.ahead_arrived.notify_one();
    }
    answer
}

/// A thread's loop: lease, run, commit. While a task runs, the next lease
/// is already asked for (one ahead, no more), so the round trip is hidden;
/// a thread told to stop still runs the task it holds. false: the thread
/// was given up behind a hung handler (`hangs`), and ended when it
/// returned, committing nothing more.
fn thread_loop(w: &Arc<Worker>, thread: u32) -> bool {
    let mut pending: std::collections::VecDeque<tokio::task::JoinHandle<()>> = Default::default();
    let mut next: Option<tokio::task::JoinHandle<LeaseAnswer>> = None;
    let mut backoff = Backoff::new(w.log.clone());
    loop {
        let was_ahead = next.is_some();
        let (session, answer) = match next.take() {
            Some(ahead) => {
                w.rt.block_on(ahead)
                    .unwrap_or_else(|e| (Session::default(), Err(Status::internal(e.to_string()))))
            }
            None if w.stop.load(Ordering::Relaxed) => break,
            None => w.rt.block_on(lease_once(w.clone(), thread)),
        };
        let task = match answer {
            Ok(reply) => {
                backoff.reset();
                match reply.task {
                    Some(task) => task,
                    None if reply.idle && w.until_idle => break,
                    None => continue,
                }
            }
            Err(s) if s.code() == Code::NotFound => {
                rejoin(w, session.id);
                continue;
            }
            Err(s) if revoked(&s) => {
                w.give_up(&s);
                continue;
            }
            Err(s) => {
                backoff.wait(&s, "lease");
                continue;
            }
        };
        let epoch = task.epoch;
        let Some(progress) = take_lease(w, epoch, was_ahead) else {
            continue;
        };
        // A handler that refuses the work (its `refuses`, as on a node's
        // own threads): handed back, and this process is leased those jobs
        // no more.
        if let Some(jobs) = declined(w, &task) {
            w.held.lock().remove(&epoch);
            let client = w.client.lock().clone();
            let m = proto::DeclineRequest {
                worker_id: session.id,
                epoch,
                session: session.secret,
                jobs,
            };
            if let Err(s) = w.rt.block_on(client.decline(m)) {
                // The lease expires at worst, and runs elsewhere.
                w.log.say(&format!(
                    "could not hand back lease {epoch}: {}",
                    describe(&s)
                ));
            }
            continue;
        }
        if !w.stop.load(Ordering::Relaxed) {
            next = Some(w.rt.spawn(lease_ahead(w.clone(), thread, progress.clone())));
        }
        w.threads.start(epoch, thread, &task, &progress);
        let outcome = progress.run(|| run(w, task, &session));
        if !w.threads.finish(epoch) {
            // Its lease expired long ago; a stop may have returned.
            if let Some(ahead) = next {
                ahead.abort();
            }
            return false;
        }
        if let Some(b) = w.held.lock().get_mut(&epoch) {
            b.done = true;
        }
        // A bounded pipeline of commits on their way, so the thread works
        // while the node makes them durable (an fsync each, grouped).
        pending.retain(|p| !p.is_finished());
        if pending.len() >= COMMITS_IN_FLIGHT {
            if let Some(p) = pending.pop_front() {
                let _ = w.rt.block_on(p);
            }
        }
        let mut commit = proto::CommitRequest {
            worker_id: session.id,
            epoch,
            outcome,
            session: session.secret,
        };
        fit(&mut commit, w.client.lock().max_message_bytes());
        pending.push_back(w.rt.spawn(commit_until_deadline(w.clone(), commit)));
    }
    for p in pending {
        let _ = w.rt.block_on(p);
    }
    true
}

/// The progress a thread runs lease `epoch` under, held from now on; None
/// when the lease is not run. One asked for ahead (`was_ahead`) is not run
/// when the node ended it while it waited or a heartbeat handed it back
/// (either took it out of `held`), nor when its hand-back fell due before
/// the heartbeat did it: the process was stopped or starved past it, and
/// run now the lease may have expired on the node, which would fence its
/// commit (review finding 5 of s16-fleet). It is left to that hand-back.
fn take_lease(w: &Worker, epoch: u64, was_ahead: bool) -> Option<LeaseProgress> {
    let mut held = w.held.lock();
    match held.get_mut(&epoch) {
        Some(b) if b.behind.is_some() && Instant::now() >= b.hand_back_at => {
            w.ahead_arrived.notify_one();
            None
        }
        // Asked for ahead: its own progress from now on.
        Some(b) => {
            b.behind = None;
            Some(b.progress.clone())
        }
        None if was_ahead => None,
        None => {
            let progress = LeaseProgress::new();
            held.insert(epoch, Beat::running(progress.clone()));
            Some(progress)
        }
    }
}

/// The node forgot worker `stale` (it restarted): join again, once for
/// all threads.
///
/// The client's lock is held only to copy the client out and to put the
/// joined one back, never across the `Hello` or a wait: the heartbeat and
/// commit tasks take it on tokio's threads, and a `Hello` waiting for them
/// while they wait for the lock would never finish. `rejoining` makes the
/// threads join one at a time.
fn rejoin(w: &Arc<Worker>, stale: u64) {
    let turn = w.rejoining.lock();
    if w.session.lock().id != stale || w.stop.load(Ordering::Relaxed) {
        return; // another thread did, or the worker is ending
    }
    let mut client = w.client.lock().clone();
    match w.rt.block_on(client.hello(w.hello.clone())) {
        Ok(joined) => {
            if let Err(why) = check_protocol(&joined, &w.server) {
                // The node was replaced by another build while this worker
                // ran. An older one took the Hello (it ignores the
                // protocol) and there is no call to leave it: the worker
                // stops, so that no other thread joins it again.
                w.give_up_saying(why.to_string());
                return;
            }
            *w.client.lock() = client;
            w.log.say(&format!(
                "the node forgot worker {stale}; joined again as worker {}",
                joined.worker_id
            ));
            *w.session.lock() = Session::of(&joined);
            w.lease_timeout_ms
                .store(joined.lease_timeout_ms, Ordering::Relaxed);
        }
        Err(s) if refused(&s) || untrusted(&s) => w.give_up(&s),
        Err(s) => {
            drop(turn);
            w.log
                .say(&format!("cannot join the node again: {}", describe(&s)));
            std::thread::sleep(MAX_BACKOFF);
        }
    }
}

/// Sends `commit` until the node answers, or until a lease timeout has
/// passed (the node has then given the work to someone else).
async fn commit_until_deadline(w: Arc<Worker>, commit: proto::CommitRequest) {
    let epoch = commit.epoch;
    let give_up =
        Instant::now() + Duration::from_millis(w.lease_timeout_ms.load(Ordering::Relaxed));
    let mut backoff = Backoff::new(w.log.clone());
    loop {
        let client = w.client.lock().clone();
        match client.commit(commit.clone()).await {
            Ok(reply) if reply.accepted => {
                if !reply.reason.is_empty() {
                    w.log.say(&reply.reason);
                }
                break;
            }
            Ok(reply) => {
                w.log
                    .say(&format!("the node fenced lease {epoch}: {}", reply.reason));
                break;
            }
            Err(s) if !refused(&s) && Instant::now() < give_up => {
                // The last wait ends at the deadline, for one more try:
                // a backoff of up to `MAX_BACKOFF` dropped it that late.
                let left = give_up.saturating_duration_since(Instant::now());
                tokio::time::sleep(backoff.next(&s, "commit").min(left)).await;
            }
            Err(s) => {
                w.log.say(&format!(
                    "dropped the commit of lease {epoch}: {}",
                    describe(&s)
                ));
                break;
            }
        }
    }
    w.held.lock().remove(&epoch);
}

/// The node answered and said no: trying again changes nothing. Anything
/// else (a cut connection, a node restarting) may not have reached it, and
/// a commit is safe to send twice: the second writes nothing.
/// A TLS handshake that failed on the node's certificate (tonic answers
/// it `Unavailable`, as a node that is down): asking again changes
/// nothing, so it ends the worker like a refusal.
fn untrusted(status: &Status) -> bool {
    status.code() == Code::Unavailable && describe(status).to_lowercase().contains("certificate")
}

/// The node no longer takes this worker's token (revoked, or its role
/// changed, since it joined).
fn revoked(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unauthenticated | Code::PermissionDenied
    )
}

fn refused(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::NotFound
            | Code::InvalidArgument
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::OutOfRange
            | Code::Unimplemented
    )
}

/// Keeps alive the leases whose handler made progress since the last
/// heartbeat (a hung handler loses its lease, as on the node), and those
/// whose commit is on its way; hands back the leases asked for ahead that
/// waited unstarted too long (`HAND_BACK_AHEAD`); tells a handler whose
/// lease the node says ended (`lease_ended()`: `exec` stops its command).
async fn heartbeats(w: Arc<Worker>, every: Duration) {
    // Handed back until a heartbeat carrying them is answered.
    let mut released: Vec<u64> = Vec::new();
    loop {
        until_next_beat(&w, every).await;
        let timeout_ms = w.lease_timeout_ms.load(Ordering::Relaxed);
        // The longest a turn of this loop takes: the wait, then the call.
        let limit = every.max(Duration::from_millis(timeout_ms / 2));
        hangs::give_up_hung(&w, Duration::from_millis(timeout_ms), every + limit);
        let epochs: Vec<u64> = {
            let mut held = w.held.lock();
            let now = Instant::now();
            held.retain(|epoch, b| {
                let unstarted = b.behind.is_some() && now >= b.hand_back_at;
                if unstarted {
                    released.push(*epoch);
                }
                !unstarted
            });
            let mut moved = Vec::new();
            for (epoch, b) in held.iter_mut() {
                let last = b.behind.as_ref().unwrap_or(&b.progress).last_ms();
                if b.done || last.is_some_and(|ms| ms > b.sent_ms) {
                    b.sent_ms = last.unwrap_or(b.sent_ms);
                    moved.push(*epoch);
                }
            }
            moved
        };
        if epochs.is_empty() && released.is_empty() {
            continue;
        }
        let client = w.client.lock().clone();
        let session = w.session.lock().clone();
        let m = proto::HeartbeatRequest {
            worker_id: session.id,
            epochs,
            session: session.secret,
            released: released.clone(),
        };
        // Bounded: a node that stops answering mid-call (a blackholed
        // connection; the client sets only a connect timeout) held this
        // loop, and with it hang detection, for good, and a stop waited
        // on a hung handler (review finding 3 of s12-fleet's later
        // commits). Not answered in time, it is an error like any other.
        let answer = match tokio::time::timeout(limit, client.heartbeat(m)).await {
            Ok(answer) => answer,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no heartbeat answer in {} ms",
                limit.as_millis()
            ))),
        };
        match answer {
            Ok(reply) => {
                released.clear();
                let mut held = w.held.lock();
                for e in reply.ended {
                    if let Some(b) = held.remove(&e) {
                        b.progress.end();
                    }
                }
            }
            // The node answered no (it forgot this worker, say): the leases
            // are not its any more, and they expire there at worst.
            Err(s) if refused(&s) => released.clear(),
            Err(_) => {}
        }
    }
}

/// Waits `every`, or less when a lease asked for ahead is due to be
/// handed back before then (one arriving meanwhile is looked at at once).
async fn until_next_beat(w: &Worker, every: Duration) {
    let beat_at = Instant::now() + every;
    loop {
        let due = (w.held.lock().values())
            .filter(|b| b.behind.is_some())
            .map(|b| b.hand_back_at)
            .min();
        let at = due.map_or(beat_at, |d| d.min(beat_at));
        tokio::select! {
            () = tokio::time::sleep_until(at.into()) => return,
            () = w.ahead_arrived.notified() => {}
        }
    }
}

/// Bytes of a slice commit's output once decompressed; 0 for others.
fn unpacked_bytes(commit: &proto::CommitRequest) -> usize {
    match &commit.outcome {
        Some(proto::Outcome::Slice(s)) => (s.main.iter().chain(&s.categories))
            .map(|p| p.raw_len as usize)
            .fold(0, usize::saturating_add),
        _ => 0,
    }
}

/// Cuts a commit the node's message limit would refuse to one it takes,
/// failing what made it too large, as the node's own caps do: a slice
/// whose output passes the limit fails naming it; a batch's largest
/// results fail one by one until the rest fit; a hook's error is
/// shortened. Sent whole, the commit would be refused and dropped, the
/// lease would expire and the work run again until it failed as hung.
fn fit(commit: &mut proto::CommitRequest, limit: usize) {
    use prost::Message;
    // Room for the framing and the reasons written in.
    let limit = limit.saturating_sub(64 << 10);
    // A slice's output counts at its size once decompressed too: the node
    // refuses one past its limit unread (protocol 3), as it refused a
    // message that large.
    let bytes = commit.encoded_len().max(unpacked_bytes(commit));
    if bytes <= limit {
        return;
    }
    let too_large = |what: String, bytes: usize| {
        format!(
            "{what} is {bytes} bytes, over the node's message limit of {limit} bytes; return less, or raise the node's max_slice_bytes"
        )
    };
    match &mut commit.outcome {
        Some(proto::Outcome::Slice(s)) => {
            *s = proto::SliceOutput {
                job: s.job,
                slice: s.slice,
                failed: Some(too_large(format!("the output of slice {}", s.slice), bytes)),
                ..Default::default()
            };
        }
        Some(proto::Outcome::Simple(batch)) => {
            let mut order: Vec<usize> = (0..batch.results.len()).collect();
            let size = |r: &proto::SimpleResult| r.encoded_len();
            order.sort_by_key(|&i| std::cmp::Reverse(size(&batch.results[i])));
            for i in order {
                if commit_len(&batch.results) <= limit {
                    break;
                }
                let r = &mut batch.results[i];
                let what = format!("the result of job {} with its batch's", r.job);
                r.error = Some(too_large(what, bytes));
                r.result_json.clear();
            }
        }
        Some(proto::Outcome::Hook(h)) => {
            if let Some(e) = &mut h.error {
                let mut end = (limit / 2).min(e.len());
                while !e.is_char_boundary(end) {
                    end -= 1;
                }
                e.truncate(end);
            }
        }
        None => {}
    }
}

fn commit_len(results: &[proto::SimpleResult]) -> usize {
    use prost::Message;
    results.iter().map(|r| r.encoded_len() + 8).sum()
}

/// The jobs of `task` this process's handler refuses (`refuses`), with
/// its reasons; None when it takes them all (or has no handler: running
/// it says so).
fn declined(w: &Worker, task: &proto::Task) -> Option<Vec<proto::DeclinedJob>> {
    let ask = |job: u64, kind: &str, props: &str, categories: &[String], simple: bool| {
        let props = properties(props);
        let ctx = JobContext::new(job, kind, &props, categories);
        let reason = match w.handlers.get(kind)? {
            Handler::Sliced(h) if !simple => h.refuses(&ctx),
            Handler::Simple(h) if simple => h.refuses(&ctx),
            _ => None,
        }?;
        Some(proto::DeclinedJob { job, reason })
    };
    let jobs: Vec<proto::DeclinedJob> = match task.work.as_ref()? {
        proto::Work::Slice(s) => ask(s.job, &s.kind, &s.properties_json, &s.categories, false)
            .into_iter()
            .collect(),
        proto::Work::Before(h) | proto::Work::After(h) => {
            ask(h.job, &h.kind, &h.properties_json, &h.categories, false)
                .into_iter()
                .collect()
        }
        proto::Work::Simple(b) => b
            .jobs
            .iter()
            .filter_map(|j| ask(j.job, &j.kind, &j.properties_json, &[], true))
            .collect(),
    };
    (!jobs.is_empty()).then_some(jobs)
}

/// Runs the handler on `task`, leased under `session`; the outcome to
/// commit. Its handlers read their jobs' dependencies from the node.
fn run(w: &Worker, task: proto::Task, session: &Session) -> Option<proto::Outcome> {
    let work = task.work?;
    let after = match &work {
        proto::Work::Slice(s) => [(s.job, s.after.clone())].into(),
        proto::Work::Simple(b) => b.jobs.iter().map(|j| (j.job, j.after.clone())).collect(),
        proto::Work::Before(h) | proto::Work::After(h) => [(h.job, h.after.clone())].into(),
    };
    let deps = NodeOutputs {
        w,
        session: session.clone(),
        epoch: task.epoch,
        after,
    };
    let outcome = match work {
        proto::Work::Slice(s) => proto::Outcome::Slice(run_slice(w, s, &deps)),
        proto::Work::Simple(b) => proto::Outcome::Simple(run_simple(w, b, &deps)),
        proto::Work::Before(h) => proto::Outcome::Hook(run_hook(w, h, true, &deps)),
        proto::Work::After(h) => proto::Outcome::Hook(run_hook(w, h, false, &deps)),
    };
    Some(outcome)
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn properties(json: &str) -> serde_json::Value {
    serde_json::from_str(json).unwrap_or(serde_json::Value::Null)
}

fn sliced(w: &Worker, kind: &str) -> Result<Arc<dyn booster_runtime::RecordHandler>, String> {
    match w.handlers.get(kind) {
        Some(Handler::Sliced(h)) => Ok(h.clone()),
        _ => Err(format!("this worker runs no sliced kind {kind:?}")),
    }
}

fn panicked(p: Box<dyn std::any::Any + Send>) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    format!("handler panicked: {what}")
}

fn run_slice(w: &Worker, mut s: proto::SliceWork, deps: &NodeOutputs<'_>) -> proto::SliceOutput {
    let props = properties(&s.properties_json);
    let packed = s.records.take();
    let result = sliced(w, &s.kind).and_then(|h| {
        // At most a slice of the store's bytes once decompressed, not a
        // message's (`received_records` says why).
        let records = proto::received_records(packed)
            .map_err(|why| format!("the node sent a malformed slice: {why}"))?
            .to_vecs();
        let ctx = JobContext::new(s.job, &s.kind, &props, &s.categories).with_dependencies(deps);
        let outcome =
            catch_unwind(AssertUnwindSafe(|| h.process_slice(&ctx, &records))).map_err(panicked)?;
        SliceResult::settle(outcome, &s.categories)
    });
    let mut out = proto::SliceOutput {
        job: s.job,
        slice: s.slice,
        ..Default::default()
    };
    // Packed here, so zstd runs on this process's cores, not the node's;
    // an output too large for a frame fails the slice, naming its size.
    let result = result.and_then(|r| {
        PackedResult::pack(&r, crate::WIRE_ZSTD_LEVEL).map_err(|e| format!("its output: {e}"))
    });
    match result {
        Ok(r) => {
            out.main = Some(r.main.into());
            out.categories = r.by_category.into_iter().map(Into::into).collect();
            out.record_errors = r
                .record_errors
                .into_iter()
                .map(|(i, message)| proto::RecordError {
                    index: i as u32,
                    message,
                })
                .collect();
        }
        Err(message) => out.failed = Some(message),
    }
    out
}

fn run_simple(
    w: &Worker,
    batch: proto::SimpleBatch,
    deps: &NodeOutputs<'_>,
) -> proto::SimpleResults {
    let results = batch
        .jobs
        .into_iter()
        .map(|j| {
            booster_runtime::heartbeat();
            let started_us = now_us();
            let props = properties(&j.properties_json);
            let args = properties(&j.args_json);
            let result = match w.handlers.get(&j.kind) {
                Some(Handler::Simple(h)) => {
                    let ctx = JobContext::new(j.job, &j.kind, &props, &[]).with_dependencies(deps);
                    catch_unwind(AssertUnwindSafe(|| h.perform(&ctx, &args)))
                        .map_err(panicked)
                        .and_then(|r| r.map_err(|e| e.0))
                }
                _ => Err(format!("this worker runs no simple kind {:?}", j.kind)),
            };
            let (result_json, error) = match result {
                Ok(Some(v)) => (v.to_string(), None),
                Ok(None) => (String::new(), None),
                Err(e) => (String::new(), Some(e)),
            };
            proto::SimpleResult {
                job: j.job,
                started_us,
                result_json,
                error,
            }
        })
        .collect();
    proto::SimpleResults { results }
}

fn run_hook(
    w: &Worker,
    h: proto::HookWork,
    before: bool,
    deps: &NodeOutputs<'_>,
) -> proto::HookResult {
    let props = properties(&h.properties_json);
    let result = sliced(w, &h.kind).and_then(|handler| {
        let ctx = JobContext::new(h.job, &h.kind, &props, &h.categories).with_dependencies(deps);
        catch_unwind(AssertUnwindSafe(|| match before {
            true => handler.before_batch(&ctx),
            false => handler.after_batch(&ctx),
        }))
        .map_err(panicked)
        .and_then(|r| r.map_err(|e| e.0))
    });
    proto::HookResult {
        job: h.job,
        before,
        error: result.err(),
    }
}

/// Waits between tries to reach the node: 50 ms, doubling to 2 s, each
/// wait a random half to whole of that, so a fleet whose node restarted
/// does not come back in step; says so once per streak of failures.
struct Backoff {
    wait: Option<Duration>,
    log: Log,
}

/// A random fraction in [0.5, 1): the jitter of a wait.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    // A `RandomState`'s keys are seeded from the OS once per thread and
    // stepped for each new one, so an empty hash under them is a fresh
    // number each time: enough to spread a fleet's retries.
    let h = std::collections::hash_map::RandomState::new().build_hasher();
    0.5 + (h.finish() >> 11) as f64 / (1u64 << 54) as f64
}

impl Backoff {
    fn new(log: Log) -> Backoff {
        Backoff { wait: None, log }
    }

    fn reset(&mut self) {
        if self.wait.take().is_some() {
            self.log.say("the node answers again");
        }
    }

    fn next(&mut self, status: &Status, what: &str) -> Duration {
        let wait = match self.wait {
            None => {
                self.log
                    .say(&format!("{what}: {}; trying again", describe(status)));
                Duration::from_millis(50)
            }
            Some(w) => (w * 2).min(MAX_BACKOFF),
        };
        self.wait = Some(wait);
        wait.mul_f64(jitter())
    }

    fn wait(&mut self, status: &Status, what: &str) {
        std::thread::sleep(self.next(status, what));
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    const LIMIT: usize = 1 << 20;

    /// `Runtime::connect`'s work trusts the certificate `BOOSTER_CA_CERT`
    /// names, as `booster work` does (`WorkOptions::default` and the CLI
    /// both read it through `ca_cert_from`): a service on a self-signed
    /// node used to need it passed in code, or failed its handshake. The
    /// value is passed in: setting the variable in a multi-threaded test
    /// binary raced other tests, and cleared a user's own (review finding 8
    /// of s12-fleet's later commits).
    #[test]
    fn work_options_trust_the_certificate_booster_ca_cert_names() {
        assert_eq!(
            crate::ca_cert_from(Some("/etc/booster/node.pem".into())),
            Some(PathBuf::from("/etc/booster/node.pem"))
        );
        assert_eq!(crate::ca_cert_from(None), None);
        assert_eq!(crate::ca_cert_from(Some("".into())), None, "set empty");
    }

    fn commit(outcome: proto::Outcome) -> proto::CommitRequest {
        proto::CommitRequest {
            worker_id: 1,
            epoch: 2,
            outcome: Some(outcome),
            session: vec![0; 16],
        }
    }

    fn result(job: u64, bytes: usize) -> proto::SimpleResult {
        proto::SimpleResult {
            job,
            started_us: 1,
            result_json: format!("\"{}\"", "x".repeat(bytes)),
            error: None,
        }
    }

    #[test]
    fn a_batch_over_the_message_limit_fails_its_largest_results_until_the_rest_fit() {
        let results = vec![result(1, 10), result(2, 700_000), result(3, 600_000)];
        let mut c = commit(proto::Outcome::Simple(proto::SimpleResults { results }));
        fit(&mut c, LIMIT);
        assert!(c.encoded_len() <= LIMIT);
        let Some(proto::Outcome::Simple(batch)) = &c.outcome else {
            panic!("still a batch");
        };
        let failed: Vec<u64> = batch
            .results
            .iter()
            .filter(|r| r.error.is_some())
            .map(|r| r.job)
            .collect();
        assert_eq!(failed, [2], "only the largest had to go");
        assert!(batch.results[1]
            .error
            .as_deref()
            .unwrap()
            .contains("message limit"));
        assert_eq!(batch.results[2].result_json.len(), 600_002);
    }

    #[test]
    fn a_commit_within_the_limit_is_sent_as_it_is() {
        let results = vec![result(1, 10), result(2, 500_000)];
        let before = commit(proto::Outcome::Simple(proto::SimpleResults { results }));
        let mut c = before.clone();
        fit(&mut c, LIMIT);
        assert_eq!(c, before);
    }

    #[test]
    fn a_hook_error_over_the_limit_is_shortened_on_a_character_boundary() {
        let mut c = commit(proto::Outcome::Hook(proto::HookResult {
            job: 1,
            before: true,
            error: Some("é".repeat(LIMIT)),
        }));
        fit(&mut c, LIMIT);
        assert!(c.encoded_len() <= LIMIT);
        let Some(proto::Outcome::Hook(h)) = &c.outcome else {
            panic!("still a hook");
        };
        assert!(h.error.as_deref().unwrap().starts_with("éé"));
    }

    /// Emits one record for each, its function of the record.
    struct Map(fn(&[u8]) -> Vec<u8>);
    impl booster_runtime::RecordHandler for Map {
        fn process(
            &self,
            _: &JobContext<'_>,
            record: &[u8],
            out: &mut Vec<Vec<u8>>,
        ) -> Result<(), booster_runtime::HandlerError> {
            out.push((self.0)(record));
            Ok(())
        }
    }

    /// `run_slice` on slice 2 of job 1, of `kind`, holding `records`.
    fn run_slice_of(
        w: &Worker,
        kind: &str,
        records: Option<proto::PackedRecords>,
    ) -> proto::SliceOutput {
        let work = proto::SliceWork {
            job: 1,
            slice: 2,
            kind: kind.into(),
            records,
            ..Default::default()
        };
        let deps = NodeOutputs {
            w,
            session: Session::default(),
            epoch: 1,
            after: HashMap::new(),
        };
        run_slice(w, work, &deps)
    }

    /// A worker of `handlers` joined to no node (its client connects lazily).
    fn worker(rt: &tokio::runtime::Runtime, handlers: HashMap<String, Handler>) -> Arc<Worker> {
        worker_at(rt, "http://127.0.0.1:9", handlers)
    }

    /// `worker`, its client to `url`.
    pub(super) fn worker_at(
        rt: &tokio::runtime::Runtime,
        url: &str,
        handlers: HashMap<String, Handler>,
    ) -> Arc<Worker> {
        let _in = rt.enter();
        Arc::new(Worker {
            client: Mutex::new(NodeClient::new(url, None, None).unwrap()),
            rejoining: Mutex::new(()),
            hello: proto::HelloRequest::default(),
            session: Mutex::new(Session::default()),
            lease_timeout_ms: AtomicU64::new(1000),
            handlers,
            until_idle: true,
            stop: AtomicBool::new(false),
            held: Mutex::new(HashMap::new()),
            ahead_arrived: tokio::sync::Notify::new(),
            rt: rt.handle().clone(),
            server: "http://127.0.0.1:9".into(),
            refused: Mutex::new(None),
            threads: Default::default(),
            log: Log::default(),
        })
    }

    /// A slice the node holds may be larger once decompressed than the
    /// node's message limit (twice its `max_slice_bytes` and 1 MiB): a
    /// record alone in its slice may pass `max_slice_bytes`, and the node
    /// sends it compressed, so it fits the message. Its own threads run
    /// it; a worker must too, and a filter's output fits a commit. Failed
    /// before: the worker bounded the decompression by the message limit
    /// and failed the slice as "malformed".
    #[test]
    fn a_slice_larger_decompressed_than_the_node_s_message_limit_runs() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Each record's length: its output is far smaller than its input.
        let length = Map(|r| r.len().to_string().into_bytes());
        let handlers = HashMap::from([("length".to_string(), Handler::Sliced(Arc::new(length)))]);
        let w = worker(&rt, handlers);
        // A node of max_slice_bytes 1 MiB.
        let limit = 3 << 20;
        w.client.lock().set_max_message_bytes(limit);
        let record = vec![b'x'; 4 << 20];
        let packed = booster_runtime::PackedSlice::pack(&[&record[..]], 1).unwrap();
        assert!(packed.body().len() < limit && packed.raw_len() as usize > limit);
        let out = run_slice_of(&w, "length", Some(packed.into()));
        assert_eq!(out.failed, None, "the slice is run");
        let main = out.main.unwrap().checked(limit).unwrap();
        assert_eq!(
            main.unpack(limit).unwrap().to_vecs(),
            vec![(4u64 << 20).to_string().into_bytes()]
        );
    }

    #[test]
    fn a_slice_without_its_records_blob_fails_and_an_empty_blob_runs() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let copy = Map(<[u8]>::to_vec);
        let handlers = HashMap::from([("copy".to_string(), Handler::Sliced(Arc::new(copy)))]);
        let w = worker(&rt, handlers);
        let out = run_slice_of(&w, "copy", None);
        let why = out.failed.expect("a slice with no records blob is not run");
        assert!(
            why.contains("malformed") && why.contains("no packed records"),
            "{why}"
        );
        assert_eq!(out.main, None);
        use booster_runtime::PackedSlice;
        let packed = |records: &[&[u8]]| Some(PackedSlice::pack(records, 1).unwrap().into());
        let out = run_slice_of(&w, "copy", packed(&[]));
        assert_eq!(out.failed, None);
        assert_eq!(
            out.main.unwrap().count,
            0,
            "an empty slice has empty output"
        );
        let out = run_slice_of(&w, "copy", packed(&[b"a", b"b"]));
        let main = out.main.unwrap().checked(1 << 20).unwrap();
        assert_eq!(
            main.unpack(1 << 20).unwrap().to_vecs(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        let mut lying: proto::PackedRecords = PackedSlice::pack(&[b"abc"], 1).unwrap().into();
        lying.count = 2;
        let out = run_slice_of(&w, "copy", Some(lying));
        let why = out.failed.expect("a slice whose count lies is not run");
        assert!(why.contains("malformed"), "{why}");
        // A body of two zstd frames: the node's store reads such a body,
        // so the worker runs it (it only unpacks what the node sent, once;
        // the shape checks are the node's, on what it stores).
        let half: Vec<&[u8]> = vec![b"a,line,that,repeats"; 50];
        let one = PackedSlice::pack(&half, 1).unwrap();
        assert!(one.is_zstd());
        let two = proto::PackedRecords {
            body: [one.body(), one.body()].concat().into(),
            raw_len: 2 * one.raw_len(),
            count: 2 * one.record_count(),
            zstd: true,
        };
        let out = run_slice_of(&w, "copy", Some(two));
        assert_eq!(out.failed, None);
        assert_eq!(out.main.unwrap().count, 100);
    }

    /// Issue 13: a worker that finished a slice while the node is
    /// unreachable retries its commit until a lease timeout has passed (the
    /// node has given the work to another worker by then), then drops it
    /// and holds the lease no more, saying so. The node here takes each
    /// connection and closes it at once. Dropped at the deadline, not a
    /// backoff past it: with a timeout of 1400 ms the unclamped backoff
    /// (jittered waits of 50, 100, .., 800, 1600 ms) dropped it more than
    /// 600 ms late in about 87% of runs (failed so before the clamp).
    #[test]
    fn a_commit_the_node_cannot_take_is_tried_until_a_lease_timeout_then_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let closer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closer.local_addr().unwrap());
        let tries = Arc::new(AtomicU64::new(0));
        let counted = tries.clone();
        std::thread::spawn(move || {
            for stream in closer.incoming() {
                counted.fetch_add(1, Ordering::Relaxed);
                drop(stream);
            }
        });
        let said = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut w = worker_at(&rt, &url, HashMap::new());
        let to = said.clone();
        Arc::get_mut(&mut w).unwrap().log = Log::new(move |m| to.lock().push(m.to_string()));
        let timeout = Duration::from_millis(1400);
        w.lease_timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
        let beat = Beat {
            done: true,
            ..Beat::running(LeaseProgress::new())
        };
        w.held.lock().insert(7, beat);
        let commit = proto::CommitRequest {
            epoch: 7,
            ..Default::default()
        };
        let sent = Instant::now();
        let ended = rt.block_on(async {
            let commit = commit_until_deadline(w.clone(), commit);
            tokio::time::timeout(Duration::from_secs(30), commit).await
        });
        assert!(ended.is_ok(), "still trying after 30 s");
        let took = sent.elapsed();
        assert!(took >= timeout, "dropped early: after {took:?}");
        assert!(
            took < timeout + Duration::from_millis(600),
            "dropped a backoff past the deadline: after {took:?}"
        );
        assert!(
            tries.load(Ordering::Relaxed) >= 2,
            "sent once, not tried again"
        );
        let said = said.lock().join("\n");
        assert!(said.contains("dropped the commit of lease 7"), "{said}");
        assert!(!w.held.lock().contains_key(&7), "the lease is still held");
    }

    #[test]
    fn a_stopped_worker_does_not_join_again() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let w = worker(&rt, HashMap::new());
        // Stopped (another thread found the node of another protocol):
        // no Hello, so no wait for an unreachable node either.
        w.stop.store(true, Ordering::Relaxed);
        let started = Instant::now();
        rejoin(&w, Session::default().id);
        assert!(
            started.elapsed() < MAX_BACKOFF / 2,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_node_of_another_wire_protocol_is_refused_naming_both() {
        // A node from before the field says none: protocol 1; one of
        // protocol 2 sends a slice's records as a `RecordBlob`, which this
        // worker would read as no records.
        assert_eq!(crate::PROTOCOL, 3, "the protocols below are older");
        for (said, named) in [(0, "protocol 1"), (2, "protocol 2")] {
            let older = proto::HelloReply {
                version: "0.1.0".into(),
                protocol: said,
                ..Default::default()
            };
            let Err(ClientError::Refused(why)) = check_protocol(&older, "http://node") else {
                panic!("a node of {named} is refused");
            };
            assert!(why.contains(named) && why.contains("protocol 3"), "{why}");
        }
        let same = proto::HelloReply {
            protocol: crate::PROTOCOL,
            ..Default::default()
        };
        assert!(check_protocol(&same, "http://node").is_ok());
    }

    #[test]
    fn backoff_waits_double_to_the_cap_each_jittered_within_its_upper_half() {
        let status = tonic::Status::unavailable("down");
        let mut b = Backoff::new(Log::default());
        let mut waits = Vec::new();
        for _ in 0..12 {
            waits.push(b.next(&status, "test"));
        }
        let mut base = std::time::Duration::from_millis(50);
        for w in &waits {
            assert!(*w >= base / 2 && *w < base, "{w:?} of {base:?}");
            base = (base * 2).min(MAX_BACKOFF);
        }
        let capped = &waits[8..];
        assert!(
            capped.windows(2).any(|p| p[0] != p[1]),
            "the waits at the cap are not all equal: {capped:?}"
        );
    }

    /// Review finding 5 (s16-fleet): a thread that reached its lease ahead
    /// after its hand-back fell due, before the heartbeat handed it back
    /// (the process stopped or starved past it), ran it on a lease the
    /// node had expired or was about to, and sent a commit it fences. It
    /// is left to that hand-back now, the heartbeat woken for it; one not
    /// yet due is run. Failed before: the overdue lease was taken.
    #[test]
    fn a_lease_ahead_whose_hand_back_fell_due_is_not_run() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let w = worker(&rt, HashMap::new());
        let ahead = |hand_back_at| Beat {
            progress: LeaseProgress::new(),
            sent_ms: 0,
            done: false,
            behind: Some(LeaseProgress::new()),
            hand_back_at,
        };
        w.held.lock().insert(7, ahead(Instant::now()));
        w.held
            .lock()
            .insert(8, ahead(Instant::now() + Duration::from_secs(60)));
        assert!(
            take_lease(&w, 7, true).is_none(),
            "an overdue lease ahead is run"
        );
        let held = w.held.lock();
        assert!(
            held.get(&7).is_some_and(|b| b.behind.is_some()),
            "left held, unstarted, for the heartbeat to hand back"
        );
        drop(held);
        let woken = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), w.ahead_arrived.notified()).await
        });
        assert!(woken.is_ok(), "the heartbeat is not woken to hand it back");
        assert!(
            take_lease(&w, 8, true).is_some(),
            "a lease ahead not yet due is not run"
        );
        assert!(
            w.held.lock()[&8].behind.is_none(),
            "its own progress from now on"
        );
        assert!(
            take_lease(&w, 9, true).is_none(),
            "a lease ahead the node ended is run"
        );
        assert!(take_lease(&w, 10, false).is_some());
        assert!(w.held.lock().contains_key(&10), "a fresh lease is not held");
    }

    /// A lease asked for ahead whose kind has its own bound (the node
    /// ends it at that bound from hand-out, heartbeats or not) waits
    /// unstarted at most a sixteenth of it, so its handler has at least
    /// 15/16 of its bound (the review of faults12, finding 5: within half
    /// of it, a handler picked up late had half, and one that needed 60%
    /// expired as a hang); and never longer than half the lease timeout;
    /// an older node sends no bound (0).
    #[test]
    fn a_lease_ahead_waits_unstarted_at_most_a_sixteenth_of_its_own_bound() {
        assert_eq!(hand_back_after(4_000, 1_000), Duration::from_millis(62));
        assert_eq!(hand_back_after(4_000, 16_000), Duration::from_millis(1_000));
        assert_eq!(hand_back_after(4_000, 0), Duration::from_millis(2_000));
        assert_eq!(hand_back_after(4_000, 60_000), Duration::from_millis(2_000));
    }
}
