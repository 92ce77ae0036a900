//! The node's side of `booster.worker.v1.Worker`: six unary gRPC
//! methods, routed by `serve`'s axum router on its own listener (same
//! port, same TLS, the same token check in `serve/auth.rs`, which lets
//! only worker and admin tokens through). Each turns its message into a
//! `Runtime::remote_*` call; the runtime decides everything.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use booster_runtime::{
    CommitAnswer, PackedResult, RemoteError, RemoteHello, RemoteLease, RemoteOutcome,
    RemoteSession, RemoteWork, Runtime, SimpleResult,
};
use tonic::server::UnaryService;
use tonic::Status;

use super::proto;
use super::refusals;
use crate::serve::AppState;

/// How long a `Lease` waits for work before answering "nothing".
const LEASE_POLL: Duration = Duration::from_secs(1);

/// The most bytes a `Hello`, `Lease` or `Heartbeat` may take: none needs
/// more than a few hundred, and a worker token must not make the node
/// read (and log) a slice-sized host name.
pub const SMALL_MESSAGE_BYTES: usize = 64 << 10;

/// `Lease` calls waiting at once, node-wide: each holds a blocking thread
/// for up to `LEASE_POLL`; past this, a call waits for a turn (async,
/// holding no thread).
const LONG_POLLS: usize = 256;
static LONG_POLL_TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(LONG_POLLS);

/// `Output` reads at once, node-wide: each holds a blocking thread and a
/// reply's records three times over (the records, their blob, the
/// encoded message); past this, a call waits for a turn (async, holding
/// no thread).
const OUTPUT_READS: usize = 8;
static OUTPUT_TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(OUTPUT_READS);

/// A turn of `turns`, waited for without holding a thread.
async fn turn(
    turns: &'static tokio::sync::Semaphore,
) -> Result<tokio::sync::SemaphorePermit<'static>, Status> {
    turns
        .acquire()
        .await
        .map_err(|_| Status::unavailable("the node is shutting down"))
}

/// The record bytes an `Output` reply carries at most (beyond its last
/// record): 1 MiB, or half a slice where that is less, so a reply stays
/// well under the message limit.
const OUTPUT_CHUNK_BYTES: usize = 1 << 20;

/// The record bytes of an `Output` reply with `max_slice_bytes` slices:
/// `OUTPUT_CHUNK_BYTES`, half a slice, or `BOOSTER_OUTPUT_CHUNK_BYTES`
/// (read once; for tests, so a small dependency crosses the wire in
/// several chunks) where that is less.
fn output_budget(max_slice_bytes: usize) -> usize {
    static SET: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let set = *SET.get_or_init(|| {
        std::env::var("BOOSTER_OUTPUT_CHUNK_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    output_budget_of(max_slice_bytes, set)
}

fn output_budget_of(max_slice_bytes: usize, set: Option<usize>) -> usize {
    let budget = OUTPUT_CHUNK_BYTES.min(max_slice_bytes / 2);
    set.map_or(budget, |set| set.min(budget)).max(1)
}

/// The node's `booster` version; a worker of another is refused.
pub const VERSION: &str = booster_client::VERSION;

/// The largest gRPC message either side takes: a slice's records or its
/// output and errors, with room for the framing.
pub fn max_message_bytes(runtime: &Runtime) -> usize {
    runtime.max_message_bytes()
}

pub async fn hello(State(app): State<AppState>, req: Request) -> Response {
    let runtime = app.runtime.clone();
    let small = SMALL_MESSAGE_BYTES;
    unary("Hello", &app.runtime, req, small, move |m: proto::HelloRequest| async move {
        let protocol = booster_client::protocol_of(m.protocol);
        let mismatch = if m.version != VERSION {
            Some(format!(
                "this worker is booster {}, the node is booster {VERSION}: run the same version on both",
                refusals::printable(&m.version, 64)
            ))
        } else if protocol != booster_client::PROTOCOL {
            Some(format!(
                "this worker speaks worker protocol {protocol}, the node (booster {VERSION}) protocol {}: \
                 run the same booster build on both",
                booster_client::PROTOCOL
            ))
        } else {
            None
        };
        if let Some(why) = mismatch {
            let who = format!(" from {} pid {}", refusals::printable(&m.host, 255), m.pid);
            refusals::log("Hello", &who, tonic::Code::FailedPrecondition, &why);
            return Err(Status::failed_precondition(why));
        }
        // A probe (no threads): the node says its version and protocol and
        // registers nothing. No worker of this build sends one (a node of
        // protocol 1, the only one that registers a worker it then refuses,
        // refuses it); answered so a later one may ask before joining.
        if m.threads == 0 {
            return Ok(proto::HelloReply {
                version: VERSION.to_string(),
                max_message_bytes: max_message_bytes(&runtime) as u64,
                protocol: booster_client::PROTOCOL,
                ..Default::default()
            });
        }
        let hello = RemoteHello {
            host: m.host,
            pid: m.pid,
            version: m.version,
            kinds: m.kinds,
            threads: m.threads,
            allows: m
                .allows
                .into_iter()
                .map(|a| booster_runtime::RemoteAllow {
                    kind: a.kind,
                    property: a.property,
                    values: a.values,
                })
                .collect(),
            reads_after: m.reads_after,
        };
        let who = format!("{} pid {}", refusals::printable(&hello.host, 255), hello.pid);
        let joined = runtime
            .remote_join(hello)
            .map_err(|e| refuse("Hello", &format!(" from {who}"), e))?;
        let worker = joined.session.worker;
        refusals::bounded("joined", tonic::Code::Ok, || {
            format!("worker {worker} ({who}, {} threads) joined", m.threads)
        });
        Ok(proto::HelloReply {
            version: VERSION.to_string(),
            worker_id: worker,
            session: joined.session.secret.to_vec(),
            lease_timeout_ms: joined.lease_timeout_ms,
            // Often enough that a lease lives through a lost heartbeat or
            // two, and that a revoked lease stops its handler within a second.
            heartbeat_interval_ms: (joined.lease_timeout_ms / 4).clamp(10, 1000),
            max_message_bytes: max_message_bytes(&runtime) as u64,
            protocol: booster_client::PROTOCOL,
        })
    })
    .await
}

pub async fn lease(State(app): State<AppState>, req: Request) -> Response {
    let runtime = app.runtime.clone();
    unary(
        "Lease",
        &app.runtime,
        req,
        SMALL_MESSAGE_BYTES,
        move |m: proto::LeaseRequest| async move {
            let _turn = turn(&LONG_POLL_TURNS).await?;
            let session = session(m.worker_id, &m.session);
            let answer = runtime
                .remote_lease(&session, m.thread, LEASE_POLL)
                .await
                .map_err(|e| refuse("Lease", &of_worker(m.worker_id), e))?;
            Ok(match answer {
                RemoteLease::Task(task) => {
                    let epoch = task.epoch;
                    let limit = max_message_bytes(&runtime);
                    let work = work_of(task.work).and_then(|w| fits(w, limit));
                    let work = match work {
                        Ok(work) => work,
                        // Never sent (a record of 4 GiB or more, a message
                        // past the limit): the work fails once, saying
                        // why, rather than its lease expiring and failing
                        // again at each lease.
                        Err(why) => {
                            refusals::bounded("unsent Lease", tonic::Code::Internal, || {
                                format!(
                                    "lease {epoch} of worker {} failed unsent: {why}",
                                    m.worker_id
                                )
                            });
                            let rt = runtime.clone();
                            tokio::task::spawn_blocking(move || {
                                rt.remote_unsent(&session, epoch, &why)
                            })
                            .await
                            .map_err(|_| Status::unavailable("the node is shutting down"))?
                            .map_err(|e| refuse("Lease", &of_worker(m.worker_id), e))?;
                            return Ok(proto::LeaseReply {
                                task: None,
                                idle: false,
                            });
                        }
                    };
                    proto::LeaseReply {
                        task: Some(proto::Task {
                            epoch,
                            deadline_ms: task.deadline_ms,
                            timeout_ms: task.timeout_ms.unwrap_or(0),
                            work: Some(work),
                        }),
                        idle: false,
                    }
                }
                RemoteLease::Nothing => proto::LeaseReply {
                    task: None,
                    idle: false,
                },
                RemoteLease::Idle => proto::LeaseReply {
                    task: None,
                    idle: true,
                },
            })
        },
    )
    .await
}

pub async fn heartbeat(State(app): State<AppState>, req: Request) -> Response {
    let runtime = app.runtime.clone();
    unary(
        "Heartbeat",
        &app.runtime,
        req,
        SMALL_MESSAGE_BYTES,
        move |m: proto::HeartbeatRequest| async move {
            let session = session(m.worker_id, &m.session);
            runtime
                .remote_release(&session, &m.released)
                .map_err(|e| refuse("Heartbeat", &of_worker(m.worker_id), e))?;
            let ended = runtime
                .remote_heartbeat(&session, &m.epochs)
                .map_err(|e| refuse("Heartbeat", &of_worker(m.worker_id), e))?;
            Ok(proto::HeartbeatReply { ended })
        },
    )
    .await
}

pub async fn commit(State(app): State<AppState>, req: Request) -> Response {
    let runtime = app.runtime.clone();
    let limit = max_message_bytes(&app.runtime);
    unary(
        "Commit",
        &app.runtime,
        req,
        limit,
        move |m: proto::CommitRequest| async move {
            let (worker, epoch) = (m.worker_id, m.epoch);
            let session = session(worker, &m.session);
            let who = format!(" of worker {worker}, lease {epoch}");
            let max_raw = max_message_bytes(&runtime);
            let invalid = |why: String| {
                refusals::log("Commit", &who, tonic::Code::InvalidArgument, &why);
                Status::invalid_argument(why)
            };
            refuse_oversized(&m, runtime.max_commit_records(), max_raw).map_err(invalid)?;
            // Decompressing the bodies (up to the message limit) runs off
            // the executor threads, so it delays no heartbeat or lease: on
            // the blocking thread that then makes the commit.
            let outcome = move || outcome_of(m, max_raw).map_err(Refused::Invalid);
            let answer = runtime
                .remote_commit_with(&session, epoch, outcome)
                .await
                .map_err(|e| match e {
                    Refused::Invalid(why) => invalid(why),
                    Refused::Remote(e) => refuse("Commit", &who, e),
                })?;
            Ok(match answer {
                CommitAnswer::Accepted => proto::CommitReply {
                    accepted: true,
                    reason: String::new(),
                },
                CommitAnswer::AcceptedReplacing(reason) => proto::CommitReply {
                    accepted: true,
                    reason,
                },
                CommitAnswer::Fenced(reason) => {
                    refusals::bounded("fenced Commit", tonic::Code::Aborted, || {
                        format!("fenced a commit of worker {worker}: {reason}")
                    });
                    proto::CommitReply {
                        accepted: false,
                        reason,
                    }
                }
            })
        },
    )
    .await
}

/// `Decline`: the worker's handler refuses jobs of a lease it holds
/// (`Runtime::remote_decline`).
pub async fn decline(State(app): State<AppState>, req: Request) -> Response {
    let runtime = app.runtime.clone();
    unary(
        "Decline",
        &app.runtime,
        req,
        SMALL_MESSAGE_BYTES,
        move |m: proto::DeclineRequest| async move {
            let session = session(m.worker_id, &m.session);
            let jobs = m.jobs.into_iter().map(|j| (j.job, j.reason)).collect();
            runtime
                .remote_decline(&session, m.epoch, jobs)
                .map_err(|e| refuse("Decline", &of_worker(m.worker_id), e))?;
            Ok(proto::DeclineReply {})
        },
    )
    .await
}

/// `Output`: records of a dependency's output for a handler of a lease
/// the worker holds (`Runtime::remote_output`), up to `output_budget`
/// bytes a reply, a few replies read at once (`OUTPUT_TURNS`).
pub async fn output(State(app): State<AppState>, req: Request) -> Response {
    let runtime = app.runtime.clone();
    unary(
        "Output",
        &app.runtime,
        req,
        SMALL_MESSAGE_BYTES,
        move |m: proto::OutputRequest| async move {
            let _turn = turn(&OUTPUT_TURNS).await?;
            let session = session(m.worker_id, &m.session);
            let from = booster_runtime::OutputCursor {
                seq: m.part,
                rank: m.rank,
                record: m.record,
                before: m.before,
            };
            let budget_bytes = output_budget(runtime.max_slice_bytes());
            let who = format!(" of worker {}, lease {}", m.worker_id, m.epoch);
            let rt = runtime.clone();
            let chunk = tokio::task::spawn_blocking(move || {
                rt.remote_output(&session, m.epoch, m.job, &m.category, from, budget_bytes)
            })
            .await
            .map_err(|_| Status::unavailable("the node is shutting down"))?
            .map_err(|e| refuse("Output", &who, e))?;
            let records = proto::RecordBlob::of(&chunk.records).map_err(|why| {
                refusals::log("Output", &who, tonic::Code::Internal, &why);
                Status::failed_precondition(why)
            })?;
            let next = chunk.next.unwrap_or_default();
            Ok(proto::OutputReply {
                records: Some(records),
                done: chunk.next.is_none(),
                part: next.seq,
                record: next.record,
                rank: next.rank,
                before: next.before,
            })
        },
    )
    .await
}

/// Why the node refused a commit: its message does not decode to an
/// outcome (`outcome_of`), or the runtime refused it.
enum Refused {
    Invalid(String),
    Remote(RemoteError),
}

impl From<RemoteError> for Refused {
    fn from(e: RemoteError) -> Refused {
        Refused::Remote(e)
    }
}

/// The session a call names; a secret of another length matches none.
fn session(worker: u64, secret: &[u8]) -> RemoteSession {
    RemoteSession {
        worker,
        secret: secret.try_into().unwrap_or_default(),
    }
}

/// `e` as a status, logged (boundedly: `refusals`).
fn refuse(method: &'static str, who: &str, e: RemoteError) -> Status {
    let s = status(e);
    refusals::log(method, who, s.code(), s.message());
    s
}

fn of_worker(worker: u64) -> String {
    format!(" of worker {worker}")
}

fn status(e: RemoteError) -> Status {
    match e {
        RemoteError::UnknownWorker(_) => Status::not_found(e.to_string()),
        RemoteError::WrongSession(_) => Status::permission_denied(e.to_string()),
        RemoteError::Random(_) => Status::unavailable(e.to_string()),
        RemoteError::ShuttingDown => Status::unavailable(e.to_string()),
        RemoteError::NoSuchLease(_) | RemoteError::Output(_) => {
            Status::failed_precondition(e.to_string())
        }
        RemoteError::Full { .. } => Status::resource_exhausted(e.to_string()),
        RemoteError::UnknownThread { .. } | RemoteError::Malformed(_) => {
            Status::invalid_argument(e.to_string())
        }
    }
}

fn json(v: &serde_json::Value) -> String {
    v.to_string()
}

/// Err: a record too large for a blob (4 GiB or more), naming its size.
fn work_of(work: RemoteWork) -> Result<proto::Work, String> {
    let hook = |h: booster_runtime::RemoteHook| proto::HookWork {
        job: h.job,
        after: h.after,
        kind: h.kind.to_string(),
        properties_json: json(&h.properties),
        categories: h.categories.to_vec(),
    };
    Ok(match work {
        RemoteWork::Simple(jobs) => proto::Work::Simple(proto::SimpleBatch {
            jobs: jobs
                .into_iter()
                .map(|j| proto::SimpleJob {
                    job: j.job,
                    after: j.after,
                    kind: j.kind.to_string(),
                    args_json: json(&j.args),
                    properties_json: json(&j.properties),
                })
                .collect(),
        }),
        RemoteWork::Slice(s) => proto::Work::Slice(proto::SliceWork {
            job: s.job,
            after: s.after,
            slice: s.slice,
            kind: s.kind.to_string(),
            properties_json: json(&s.properties),
            categories: s.categories.to_vec(),
            records: Some(s.records.into()),
        }),
        RemoteWork::Before(h) => proto::Work::Before(hook(h)),
        RemoteWork::After(h) => proto::Work::After(hook(h)),
    })
}

/// `work` if its message is within `limit` bytes; Err: why it is not
/// (the runtime cuts batches and slices far below it, so this is a last
/// guard, never a copy: `encoded_len` only adds up the fields' sizes).
fn fits(work: proto::Work, limit: usize) -> Result<proto::Work, String> {
    let bytes = work.encoded_len();
    match bytes + 64 <= limit {
        true => Ok(work),
        false => Err(format!(
            "its lease would be a message of {bytes} bytes, over the node's limit of {limit} \
             bytes (twice max_slice_bytes and 1 MiB)"
        )),
    }
}

/// Err (why) when a slice's output states more than `max_records` records
/// (the runtime's `max_commit_records`) or more than `max_raw_bytes`
/// bytes once decompressed (the message limit), all its categories
/// together: the cheap refusals, by the counts it states, before any body
/// is decompressed (so a bomb costs nothing).
fn refuse_oversized(
    m: &proto::CommitRequest,
    max_records: usize,
    max_raw_bytes: usize,
) -> Result<(), String> {
    let Some(proto::Outcome::Slice(s)) = &m.outcome else {
        return Ok(());
    };
    let malformed = |why: String| format!("slice {} of job {}: {why}", s.slice, s.job);
    let packed = || s.main.iter().chain(&s.categories);
    let count = packed().fold(0usize, |n, p| n.saturating_add(p.count as usize));
    if count > max_records {
        return Err(malformed(format!(
            "it carries {count} records, more than the {max_records} records a commit may write"
        )));
    }
    let raw = packed().fold(0usize, |n, p| n.saturating_add(p.raw_len as usize));
    if raw > max_raw_bytes {
        return Err(malformed(format!(
            "its records say they are {raw} bytes once decompressed, over the node's limit of {max_raw_bytes}"
        )));
    }
    Ok(())
}

/// A commit's outcome as the runtime takes it; Err: malformed, with why.
/// Run after `refuse_oversized`, off the executor (it decompresses): a
/// slice's packed records are checked (`PackedRecords::checked`), each
/// decompressing to at most `max_raw_bytes`, so the store never takes a
/// body the node could not read back or would not write itself.
fn outcome_of(m: proto::CommitRequest, max_raw_bytes: usize) -> Result<RemoteOutcome, String> {
    match m.outcome {
        None => Err("the commit carries no outcome".into()),
        Some(proto::Outcome::Simple(r)) => {
            let mut results = Vec::with_capacity(r.results.len());
            for r in r.results {
                let result = match r.error {
                    Some(e) => Err(e),
                    None if r.result_json.is_empty() => Ok(None),
                    None => {
                        Ok(Some(serde_json::from_str(&r.result_json).map_err(|e| {
                            format!("job {}'s result is not JSON: {e}", r.job)
                        })?))
                    }
                };
                results.push(SimpleResult {
                    job: r.job,
                    started_us: r.started_us,
                    result,
                });
            }
            Ok(RemoteOutcome::Simple(results))
        }
        Some(proto::Outcome::Slice(s)) => {
            let malformed = |why: String| format!("slice {} of job {}: {why}", s.slice, s.job);
            let result = match s.failed {
                Some(message) => Err(message),
                None => Ok(PackedResult {
                    main: proto::packed_of(s.main.as_ref(), max_raw_bytes).map_err(malformed)?,
                    by_category: (s.categories.iter())
                        .map(|c| c.checked(max_raw_bytes).map_err(malformed))
                        .collect::<Result<_, _>>()?,
                    record_errors: s
                        .record_errors
                        .into_iter()
                        .map(|e| (e.index as usize, e.message))
                        .collect(),
                }),
            };
            Ok(RemoteOutcome::Slice {
                job: s.job,
                slice: s.slice,
                result,
            })
        }
        Some(proto::Outcome::Hook(h)) => Ok(RemoteOutcome::Hook {
            job: h.job,
            before: h.before,
            result: h.error.map_or(Ok(()), Err),
        }),
    }
}

/// Decodes the request (at most `request_bytes`), runs `f` on its
/// message once, encodes the answer (or the status; at most
/// `max_message_bytes`). A request refused before `f` saw it (malformed,
/// oversized) is logged as `method`'s.
async fn unary<M1, M2, F, Fut>(
    method: &'static str,
    runtime: &Runtime,
    req: Request,
    request_bytes: usize,
    f: F,
) -> Response
where
    M1: prost::Message + Default + Send + 'static,
    M2: prost::Message + Send + 'static,
    F: FnOnce(M1) -> Fut + Send + 'static,
    Fut: Future<Output = Result<M2, Status>> + Send + 'static,
{
    let limit = max_message_bytes(runtime);
    let codec = booster_client::codec::SizedCodec::<M2, M1>::default();
    let mut grpc = tonic::server::Grpc::new(codec)
        .max_decoding_message_size(request_bytes.min(limit))
        .max_encoding_message_size(limit);
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = ran.clone();
    let f = move |m: M1| {
        seen.store(true, std::sync::atomic::Ordering::Relaxed);
        f(m)
    };
    let response = grpc.unary(Once(Some(f)), req).await;
    if !ran.load(std::sync::atomic::Ordering::Relaxed) {
        log_malformed(method, response.headers());
    }
    response.map(axum::body::Body::new)
}

/// Logs a `method` call refused before it was read: its status is in the
/// response's headers (a trailers-only gRPC response).
fn log_malformed(method: &'static str, headers: &axum::http::HeaderMap) {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let code = header("grpc-status").and_then(|c| c.parse::<i32>().ok());
    if let Some(code) = code
        .map(tonic::Code::from)
        .filter(|c| *c != tonic::Code::Ok)
    {
        let why = header("grpc-message").unwrap_or("no message");
        let why = percent_decoded(why);
        refusals::log(method, " (malformed)", code, &why);
    }
}

/// A `grpc-message` as text (it is percent-encoded on the wire).
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A function as a one-call `UnaryService`.
struct Once<F>(Option<F>);

type Answer<M> = Pin<Box<dyn Future<Output = Result<tonic::Response<M>, Status>> + Send>>;

impl<M1, M2, F, Fut> UnaryService<M1> for Once<F>
where
    F: FnOnce(M1) -> Fut,
    Fut: Future<Output = Result<M2, Status>> + Send + 'static,
    M2: 'static,
{
    type Response = M2;
    type Future = Answer<M2>;

    fn call(&mut self, request: tonic::Request<M1>) -> Self::Future {
        match self.0.take() {
            Some(f) => {
                let answer = f(request.into_inner());
                Box::pin(async move { answer.await.map(tonic::Response::new) })
            }
            None => Box::pin(async { Err(Status::internal("one call per request")) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding 3 (s12-fleet): a reply's budget was half a slice
    /// (32 MiB by default), some 100 MB a call. At most 1 MiB, half a
    /// slice where less, and a test's setting only lowers it.
    #[test]
    fn an_output_reply_carries_at_most_a_mebibyte_of_records() {
        assert_eq!(output_budget_of(64 << 20, None), 1 << 20);
        assert_eq!(output_budget_of(1 << 20, None), 512 << 10);
        assert_eq!(output_budget_of(64 << 20, Some(200)), 200);
        assert_eq!(output_budget_of(64 << 20, Some(8 << 20)), 1 << 20);
        assert_eq!(output_budget_of(64 << 20, Some(0)), 1);
    }

    /// Review finding 5 (s12-fleet): no test ran the Lease route's `fits`
    /// guard (an inverted comparison would have passed). A lease fits
    /// only with 64 bytes of framing to spare under the limit, and the
    /// refusal names both sizes.
    #[test]
    fn a_lease_fits_only_under_the_message_limit_naming_both_sizes() {
        let work = |after: u64| {
            proto::Work::Simple(proto::SimpleBatch {
                jobs: vec![proto::SimpleJob {
                    job: 1,
                    after: (0..after).collect(),
                    kind: "job".into(),
                    args_json: "{}".into(),
                    properties_json: "null".into(),
                }],
            })
        };
        let bytes = work(0).encoded_len();
        assert!(fits(work(0), bytes + 64).is_ok());
        let why = fits(work(0), bytes + 63).expect_err("over the limit");
        assert!(
            why.contains(&format!("of {bytes} bytes"))
                && why.contains(&format!("{} bytes", bytes + 63)),
            "{why}"
        );
        assert!(fits(work(1000), 1 << 10).is_err(), "its after list counts");
        assert!(fits(work(1000), 64 << 10).is_ok());
    }
}
