//! The worker service (`fleet/`) on `serve`'s listener: who may call it,
//! the version check, TLS, and leases committed through it (fenced when
//! they are not the caller's, refused when malformed).

use std::path::Path;

use booster_runtime::JobState;
use serde_json::json;
use tonic::Code;

use super::{security, TestServer};
use crate::fleet::client::{describe, NodeClient};
use crate::fleet::node::VERSION;
use crate::fleet::proto;

const ADMIN: &str = "admin-token-0123456789abcdef";
const SUBMITTER: &str = "submitter-token-0123456789abcdef";
const WORKER: &str = "worker-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789abcdef";

/// A node (no local workers) with a token of every role: the worker token
/// from `--worker-token-file`, the read-only one from `--read-token-file`.
fn node_with_roles(tls: bool) -> TestServer {
    TestServer::start_node(|dir, opts| {
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            crate::secret_file::write_private(&path, text.as_bytes()).unwrap();
            path
        };
        opts.token_file = Some(write(
            "tokens",
            format!("admin {ADMIN}\nsubmitter {SUBMITTER}\n"),
        ));
        opts.worker_token_file = Some(write("workers", format!("{WORKER}\n")));
        opts.read_token_file = Some(write("readers", format!("# dashboards\n{READER}\n")));
        if tls {
            let (cert, key) = security::write_self_signed(dir);
            opts.tls_cert = Some(cert);
            opts.tls_key = Some(key);
        }
    })
}

/// Remote worker processes the node knows.
fn remote_workers(t: &TestServer) -> usize {
    let all = t.runtime().worker_processes();
    all.iter().filter(|p| p.worker.is_some()).count()
}

/// `booster --server URL work --until-idle` in this process, on the
/// server's runtime: `threads` threads, `exec` allowed for `exec_allow`.
fn remote_worker(
    t: &TestServer,
    threads: usize,
    exec_allow: &[&str],
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let opts = crate::fleet::work::WorkOptions {
        server: t.url.clone(),
        token_file: None,
        ca_cert: None,
        threads,
        until_idle: true,
        exec_allow: exec_allow.iter().map(|c| c.to_string()).collect(),
        version: VERSION.to_string(),
    };
    t.spawn(crate::fleet::work::work(opts, std::future::pending()))
}

fn client(t: &TestServer, token: Option<&str>, ca: Option<&Path>) -> NodeClient {
    // The channel's connection task needs the runtime.
    t.block_on(async { NodeClient::new(&t.url, token, ca) })
        .unwrap()
}

fn hello(version: &str) -> proto::HelloRequest {
    proto::HelloRequest {
        version: version.to_string(),
        host: "test-host".into(),
        pid: 4242,
        kinds: vec!["copy".into()],
        threads: 1,
        allows: Vec::new(),
        protocol: booster_client::PROTOCOL,
        reads_after: true,
    }
}

/// A joined worker process: its id and session secret.
#[derive(Clone)]
struct Who {
    worker: u64,
    session: Vec<u8>,
}

/// Joins as a worker of one thread.
fn join(t: &TestServer, c: &mut NodeClient) -> Who {
    let joined = t
        .block_on(c.hello(hello(VERSION)))
        .unwrap_or_else(|s| panic!("hello: {}", describe(&s)));
    Who {
        worker: joined.worker_id,
        session: joined.session,
    }
}

fn lease(t: &TestServer, c: &NodeClient, who: &Who) -> Result<proto::LeaseReply, tonic::Status> {
    t.block_on(c.lease(proto::LeaseRequest {
        worker_id: who.worker,
        thread: 0,
        session: who.session.clone(),
    }))
}

/// Leases until a slice comes, committing the hooks that come first.
fn lease_slice(t: &TestServer, c: &NodeClient, worker: &Who) -> (u64, proto::SliceWork) {
    for _ in 0..50 {
        let task = lease(t, c, worker).unwrap().task;
        let Some(task) = task else { continue };
        let (h, before) = match task.work.unwrap() {
            proto::Work::Slice(s) => return (task.epoch, s),
            proto::Work::Before(h) => (h, true),
            proto::Work::After(h) => (h, false),
            proto::Work::Simple(_) => panic!("no simple job was submitted"),
        };
        let hook = proto::HookResult {
            job: h.job,
            before,
            error: None,
        };
        let reply = commit(t, c, worker, task.epoch, proto::Outcome::Hook(hook));
        assert!(reply.unwrap().accepted);
    }
    panic!("no slice was leased");
}

fn commit(
    t: &TestServer,
    c: &NodeClient,
    who: &Who,
    epoch: u64,
    outcome: proto::Outcome,
) -> Result<proto::CommitReply, tonic::Status> {
    t.block_on(c.commit(proto::CommitRequest {
        worker_id: who.worker,
        session: who.session.clone(),
        epoch,
        outcome: Some(outcome),
    }))
}

/// Records as a worker of protocol 3 sends them: packed.
fn packed(records: &[&[u8]]) -> Option<proto::PackedRecords> {
    Some(
        booster_runtime::PackedSlice::pack(records, 1)
            .unwrap()
            .into(),
    )
}

/// A leased slice's records, unpacked as a worker does.
fn unpacked(s: &proto::SliceWork) -> Vec<Vec<u8>> {
    let bound = 1 << 20;
    proto::packed_of(s.records.as_ref(), bound)
        .unwrap()
        .unpack(bound)
        .unwrap()
        .to_vecs()
}

fn copy_of(s: &proto::SliceWork) -> proto::Outcome {
    proto::Outcome::Slice(proto::SliceOutput {
        job: s.job,
        slice: s.slice,
        main: s.records.clone(),
        ..Default::default()
    })
}

/// A copy job of `lines` in one slice, uploaded by an admin.
fn copy_job(t: &TestServer, lines: &str, token: Option<&str>) -> u64 {
    let path = t.dir().join("token-admin");
    let token_file = token.map(|tok| {
        crate::secret_file::write_private(&path, tok.as_bytes()).unwrap();
        path.clone()
    });
    let client = crate::remote::connect(&crate::remote::RemoteOptions {
        server: t.url.clone(),
        token_file,
        ..Default::default()
    })
    .unwrap();
    let id = client
        .create(&json!({"kind": "copy", "slice_size": 100}))
        .unwrap();
    client.upload(id, &mut lines.as_bytes(), None).unwrap();
    id
}

#[test]
fn a_worker_of_another_version_is_refused_naming_both() {
    let t = TestServer::start_node(|_, _| {});
    let mut c = client(&t, None, None);
    let err = t.block_on(c.hello(hello("0.0.0-other"))).unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let msg = err.message();
    assert!(
        msg.contains("0.0.0-other") && msg.contains(VERSION),
        "names both versions: {msg}"
    );
    assert!(remote_workers(&t) == 0, "nobody joined");
}

#[test]
fn a_worker_of_another_wire_protocol_is_refused_naming_both() {
    let t = TestServer::start_node(|_, _| {});
    let mut c = client(&t, None, None);
    // A worker from before the protocol field sends none: protocol 1. One
    // of protocol 2 (a slice's records as a `RecordBlob`, before session
    // 15) may say this very version: two builds of one version can differ
    // in the protocol, and such a worker would read a slice of protocol 3
    // as one without records.
    assert_eq!(booster_client::PROTOCOL, 3, "the protocols below are older");
    for (sent, named) in [(0, "protocol 1"), (2, "protocol 2")] {
        let mut older = hello(VERSION);
        older.protocol = sent;
        let err = t.block_on(c.hello(older)).unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{sent}: {err:?}");
        let msg = err.message();
        assert!(
            msg.contains(named) && msg.contains("protocol 3"),
            "names both protocols: {msg}"
        );
        assert!(remote_workers(&t) == 0, "nobody joined");
    }
}

#[test]
fn a_wrong_or_missing_token_is_refused_by_the_worker_service() {
    let t = node_with_roles(false);
    for token in [Some("not-a-token-of-this-server"), None] {
        let mut c = client(&t, token, None);
        let err = t.block_on(c.hello(hello(VERSION))).unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}: {err:?}");
        assert!(err.message().contains("token"), "{err:?}");
    }
    assert!(remote_workers(&t) == 0);
}

#[test]
fn only_worker_and_admin_tokens_may_join_and_lease() {
    let t = node_with_roles(false);
    for token in [READER, SUBMITTER] {
        let mut c = client(&t, Some(token), None);
        let err = t.block_on(c.hello(hello(VERSION))).unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{token}: {err:?}");
        assert!(err.message().contains("may not lease"), "{err:?}");
        let anyone = Who {
            worker: 1,
            session: vec![0; 16],
        };
        let err = lease(&t, &c, &anyone).unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{token}: {err:?}");
    }
    for token in [WORKER, ADMIN] {
        let mut c = client(&t, Some(token), None);
        let worker = join(&t, &mut c);
        let reply = lease(&t, &c, &worker).unwrap();
        assert!(
            reply.task.is_none() && reply.idle,
            "nothing to do: {reply:?}"
        );
    }
    assert_eq!(remote_workers(&t), 2);
}

#[test]
fn a_worker_joins_over_tls_trusting_the_nodes_certificate_and_no_other() {
    let t = node_with_roles(true);
    assert!(t.url.starts_with("https://"));
    let mut untrusted = client(&t, Some(WORKER), None);
    let err = t.block_on(untrusted.hello(hello(VERSION))).unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let why = describe(&err);
    assert!(
        why.to_lowercase().contains("certificate"),
        "says why: {why}"
    );
    assert!(remote_workers(&t) == 0);
    let cert = t.dir().join("cert.pem");
    let mut trusted = client(&t, Some(WORKER), Some(&cert));
    join(&t, &mut trusted);
}

/// A worker that does not trust the node's certificate is refused, and
/// says so: it never waits on it as on a node that is not up yet.
#[test]
fn a_worker_that_does_not_trust_the_nodes_certificate_gives_up_saying_so() {
    let t = node_with_roles(true);
    let opts = crate::fleet::work::WorkOptions {
        server: t.url.clone(),
        token_file: None,
        ca_cert: None,
        threads: 1,
        until_idle: true,
        exec_allow: Vec::new(),
        version: VERSION.to_string(),
    };
    let ended = t.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            crate::fleet::work::work(opts, std::future::pending()),
        )
        .await
    });
    let err = ended
        .expect("the worker gave up instead of retrying for ever")
        .expect_err("an untrusted certificate is a refusal");
    assert!(
        format!("{err:#}").to_lowercase().contains("certificate"),
        "says why: {err:#}"
    );
    assert_eq!(remote_workers(&t), 0);
}

#[test]
fn a_slice_leased_through_the_worker_service_is_committed_exactly() {
    let t = TestServer::start_node(|_, _| {});
    let id = copy_job(&t, "a\nb\nc\n", None);
    let mut c = client(&t, None, None);
    let worker = join(&t, &mut c);
    let (epoch, slice) = lease_slice(&t, &c, &worker);
    assert_eq!(
        unpacked(&slice),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    let reply = commit(&t, &c, &worker, epoch, copy_of(&slice)).unwrap();
    assert!(reply.accepted, "{reply:?}");
    // The after hook, then the job is done.
    let _ = lease(&t, &c, &worker).unwrap().task.map(|task| {
        let hook = proto::HookResult {
            job: id,
            before: false,
            error: None,
        };
        commit(&t, &c, &worker, task.epoch, proto::Outcome::Hook(hook)).unwrap()
    });
    t.wait_until(id, |j| j.state == JobState::Completed);
    let job = t.job(id);
    assert_eq!((job.records_in, job.records_out), (3, 3), "{job:?}");
    let mut out = Vec::new();
    t.client().download(id, "main", &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "a\nb\nc\n");
}

#[test]
fn a_commit_of_another_workers_lease_or_a_malformed_one_changes_nothing() {
    let t = TestServer::start_node(|_, _| {});
    let id = copy_job(&t, "a\nb\n", None);
    let mut c = client(&t, None, None);
    let (a, b) = (join(&t, &mut c), join(&t, &mut c));
    let (epoch, slice) = lease_slice(&t, &c, &a);
    // B commits A's lease: fenced.
    let reply = commit(&t, &c, &b, epoch, copy_of(&slice)).unwrap();
    assert!(
        !reply.accepted && reply.reason.contains("another worker's"),
        "{reply:?}"
    );
    // A names another slice, or a record the slice does not have: refused.
    let mut wrong = slice.clone();
    wrong.slice += 1;
    let err = commit(&t, &c, &a, epoch, copy_of(&wrong)).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let bad_error = proto::Outcome::Slice(proto::SliceOutput {
        job: slice.job,
        slice: slice.slice,
        main: Some(proto::PackedRecords::default()),
        record_errors: vec![proto::RecordError {
            index: 7,
            message: "no such record".into(),
        }],
        ..Default::default()
    });
    let err = commit(&t, &c, &a, epoch, bad_error).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("record 7"), "{err:?}");
    // A record that fails twice would count twice (G2).
    let twice = proto::RecordError {
        index: 0,
        message: "bad".into(),
    };
    let doubled = proto::Outcome::Slice(proto::SliceOutput {
        job: slice.job,
        slice: slice.slice,
        main: packed(&[b"b"]),
        record_errors: vec![twice.clone(), twice],
        ..Default::default()
    });
    let err = commit(&t, &c, &a, epoch, doubled).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("each record once"), "{err:?}");
    let err = t
        .block_on(c.commit(proto::CommitRequest {
            worker_id: a.worker,
            session: a.session.clone(),
            epoch,
            outcome: None,
        }))
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let job = t.job(id);
    assert_eq!(
        (job.state, job.records_out),
        (JobState::Running, 0),
        "{job:?}"
    );
    // A's own commit still wins: nothing above touched the lease.
    let reply = commit(&t, &c, &a, epoch, copy_of(&slice)).unwrap();
    assert!(reply.accepted, "{reply:?}");
    // B sends it now: still no lease of B's.
    let reply = commit(&t, &c, &b, epoch, copy_of(&slice)).unwrap();
    assert!(!reply.accepted, "{reply:?}");
    t.wait_until(id, |j| j.records_out == 2);
}

#[test]
fn a_commit_whose_connection_drops_midway_is_durable_once_and_its_retry_is_told_so() {
    use futures::FutureExt as _;
    let t = TestServer::start_node(|_, _| {});
    let id = copy_job(&t, "a\nb\nc\n", None);
    let mut c = client(&t, None, None);
    let worker = join(&t, &mut c);
    let (epoch, slice) = lease_slice(&t, &c, &worker);
    // The node's handler is dropped with its connection: here, after its
    // first poll (the commit is on its way to the store).
    let outcome = booster_runtime::RemoteOutcome::Slice {
        job: slice.job,
        slice: slice.slice,
        result: Ok(booster_runtime::PackedResult {
            main: proto::packed_of(slice.records.as_ref(), 1 << 20).unwrap(),
            by_category: Vec::new(),
            record_errors: Vec::new(),
        }),
    };
    let runtime = t.runtime().clone();
    let session = booster_runtime::RemoteSession {
        worker: worker.worker,
        secret: worker.session.clone().try_into().unwrap(),
    };
    let answered = t.block_on(async {
        runtime
            .remote_commit(&session, epoch, outcome)
            .now_or_never()
    });
    assert!(answered.is_none(), "the commit waits for durability");
    t.wait_until(id, |j| j.records_out == 3);
    // The worker never heard: it sends the commit again, and is told the
    // truth (durable), not that its lease went to another worker; nothing
    // is written twice.
    let reply = commit(&t, &c, &worker, epoch, copy_of(&slice)).unwrap();
    assert!(reply.accepted, "{reply:?}");
    let job = t.job(id);
    assert_eq!((job.records_in, job.records_out), (3, 3), "{job:?}");
    let mut out = Vec::new();
    t.client().download(id, "main", &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "a\nb\nc\n",
        "each record once"
    );
}

#[test]
fn the_workers_listing_shows_each_remote_process_with_its_leases_and_rate() {
    let t = TestServer::start_node(|_, _| {});
    copy_job(&t, "a\nb\nc\n", None);
    let mut c = client(&t, None, None);
    let worker = join(&t, &mut c);
    let (epoch, slice) = lease_slice(&t, &c, &worker);
    let listed = |t: &TestServer| {
        let (status, body) = t.get("/api/workers");
        assert_eq!(status, 200, "{body}");
        let all = body["processes"].as_array().unwrap().clone();
        assert_eq!(
            all.len(),
            1,
            "only the remote process; the node runs no thread: {body}"
        );
        all[0].clone()
    };
    let p = listed(&t);
    assert_eq!(p["worker"], worker.worker, "{p}");
    assert_eq!(
        (p["host"].as_str(), p["pid"].as_u64()),
        (Some("test-host"), Some(4242))
    );
    assert_eq!(p["version"], VERSION);
    assert_eq!(p["kinds"], json!(["copy"]));
    assert_eq!(
        (p["threads"].as_u64(), p["leases"].as_u64()),
        (Some(1), Some(1)),
        "{p}"
    );
    let heard = p["last_heartbeat_ms"].as_u64().unwrap();
    assert!(heard > 1_700_000_000_000, "a time of day: {p}");
    assert_eq!(p["records_per_s"], 0.0, "nothing committed yet: {p}");
    let reply = commit(&t, &c, &worker, epoch, copy_of(&slice)).unwrap();
    assert!(reply.accepted);
    let p = listed(&t);
    assert_eq!(p["leases"], 0, "{p}");
    assert!(
        p["records_per_s"].as_f64().unwrap() > 0.0,
        "3 records done: {p}"
    );
    // The local threads of a node that runs them are listed too.
    let t = TestServer::start();
    let (_, body) = t.get("/api/workers");
    let node = &body["processes"][0];
    assert_eq!(
        (node["worker"].is_null(), node["threads"].as_u64()),
        (true, Some(2)),
        "{body}"
    );
    assert_eq!(node["pid"], std::process::id(), "{body}");
}

#[test]
fn aborting_a_job_stops_its_command_on_a_remote_worker() {
    let mut cmd = String::new();
    let t = TestServer::start_node(|dir, opts| {
        // Marks the file only if it ran to its end.
        cmd = format!(
            "sleep 30; touch {}; cat",
            dir.join("ran-to-the-end").display()
        );
        opts.exec_allow = vec![cmd.clone()];
    });
    let id = t
        .client()
        .create(&json!({"kind": "exec", "properties": {"cmd": cmd}}))
        .unwrap();
    t.client().upload(id, &mut &b"a\nb\n"[..], None).unwrap();
    let worker = remote_worker(&t, 1, &[&cmd]);
    t.wait_until(id, |j| j.leases.iter().any(|l| l.slice.is_some()));
    let (status, body) = t.call("POST", &format!("/api/jobs/{id}/abort"), None, &[]);
    assert_eq!(status, 200, "{body}");
    // The heartbeat tells the worker its lease ended; exec stops the
    // command, the fenced commit changes nothing, and the node is idle.
    t.block_on(worker).unwrap().unwrap();
    assert!(
        !t.dir().join("ran-to-the-end").exists(),
        "the command was stopped, not run to its end"
    );
    let job = t.job(id);
    assert_eq!(
        (job.state, job.records_out),
        (JobState::Aborted, 0),
        "{job:?}"
    );
}

#[test]
fn simple_jobs_run_on_a_remote_worker_in_batches_with_their_results() {
    let t = TestServer::start_node(|_, _| {});
    let ids: Vec<u64> = (0..20)
        .map(|n| {
            let (status, body) = t.call(
                "POST",
                "/api/jobs",
                Some(&json!({"kind": "noop", "args": {"n": n}}).to_string()),
                &[],
            );
            assert_eq!(status, 201, "{body}");
            body["id"].as_u64().unwrap()
        })
        .collect();
    t.block_on(remote_worker(&t, 2, &[])).unwrap().unwrap();
    for (n, id) in ids.into_iter().enumerate() {
        let job = t.job(id);
        assert_eq!(job.state, JobState::Completed, "{job:?}");
        assert_eq!(
            job.result,
            Some(json!({"n": n})),
            "job {id} returned its args"
        );
    }
}

/// A remote worker's clock says when its jobs started; the node keeps
/// that start within the lease it gave (from its hand-out to the commit,
/// by the node's clock), so a skewed, old or lying worker never makes a
/// job start before it was created or after it completed.
#[test]
fn a_remote_simple_jobs_start_is_kept_within_its_lease() {
    let t = TestServer::start_node(|_, _| {});
    let ids: Vec<u64> = (0..2)
        .map(|n| {
            let (status, body) = t.call(
                "POST",
                "/api/jobs",
                Some(&json!({"kind": "noop", "args": {"n": n}}).to_string()),
                &[],
            );
            assert_eq!(status, 201, "{body}");
            body["id"].as_u64().unwrap()
        })
        .collect();
    let mut c = client(&t, None, None);
    let mut noop = hello(VERSION);
    noop.kinds = vec!["noop".into()];
    let joined = t.block_on(c.hello(noop)).unwrap();
    let who = Who {
        worker: joined.worker_id,
        session: joined.session,
    };
    let an_hour_ahead_us = 3_600_000_000
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
    let mut left = ids.clone();
    for _ in 0..10 {
        if left.is_empty() {
            break;
        }
        let Some(task) = lease(&t, &c, &who).unwrap().task else {
            continue;
        };
        let Some(proto::Work::Simple(batch)) = task.work else {
            panic!("only simple jobs were submitted");
        };
        let results = batch
            .jobs
            .iter()
            .map(|j| proto::SimpleResult {
                job: j.job,
                // The first job's clock says 1970, the second's an hour on.
                started_us: if j.job == ids[0] { 0 } else { an_hour_ahead_us },
                result_json: "null".into(),
                error: None,
            })
            .collect();
        let outcome = proto::Outcome::Simple(proto::SimpleResults { results });
        assert!(commit(&t, &c, &who, task.epoch, outcome).unwrap().accepted);
        left.retain(|id| !batch.jobs.iter().any(|j| j.job == *id));
    }
    assert!(left.is_empty(), "jobs {left:?} were never leased");
    for id in ids {
        let job = t.job(id);
        let started = job.started_at.expect("a start");
        let completed = job.completed_at.expect("done");
        assert!(
            job.created_at <= started && started <= completed,
            "job {id}: created {:?}, started {started:?}, completed {completed:?}",
            job.created_at
        );
    }
}

#[test]
fn hellos_past_the_remote_thread_limit_are_refused_saying_so() {
    let t = TestServer::start_node(|_, _| {});
    let mut c = client(&t, None, None);
    let mut big = hello(VERSION);
    big.threads = 1024;
    let joins = booster_runtime::MAX_REMOTE_THREADS / 1024;
    for _ in 0..joins {
        t.block_on(c.hello(big.clone())).unwrap();
    }
    let err = t.block_on(c.hello(hello(VERSION))).unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("at most 65536"), "{err:?}");
    assert_eq!(remote_workers(&t), joins);
}

/// A slice's records travel packed (protocol 3): the node checks what it
/// would store. A body that is not zstd, that decompresses to more or
/// fewer bytes than it says (a decompression bomb among them), says more
/// bytes than a message may hold, or whose lengths or count do not cut
/// its records exactly, is refused before anything is committed, and the
/// lease stays the worker's.
#[test]
fn a_commit_whose_record_lengths_do_not_fit_its_blob_changes_nothing() {
    let t = TestServer::start_node(|_, _| {});
    let id = copy_job(&t, "a\nb\n", None);
    let mut c = client(&t, None, None);
    let worker = join(&t, &mut c);
    let (epoch, slice) = lease_slice(&t, &c, &worker);
    let with = |main: proto::PackedRecords| {
        proto::Outcome::Slice(proto::SliceOutput {
            job: slice.job,
            slice: slice.slice,
            main: Some(main),
            ..Default::default()
        })
    };
    let good = packed(&[b"a", b"b"]).unwrap();
    let raw = |body: &[u8], count| proto::PackedRecords {
        body: body.to_vec().into(),
        raw_len: body.len() as u32,
        count,
        zstd: false,
    };
    let bomb = zstd::bulk::compress(&vec![0u8; 32 << 20], 1).unwrap();
    let limit = crate::fleet::node::max_message_bytes(t.runtime());
    let lines: Vec<&[u8]> = vec![b"a,line,that,repeats"; 100];
    let zstd = packed(&lines).unwrap();
    assert!(zstd.zstd);
    // A skippable frame before the records' frame: zstd decodes it to the
    // same records, the store would keep the padding.
    let mut padded = 0x184D_2A50u32.to_le_bytes().to_vec();
    padded.extend_from_slice(&64u32.to_le_bytes());
    padded.extend_from_slice(&[0; 64]);
    padded.extend_from_slice(&zstd.body);
    let hostile = [
        (
            "not zstd",
            "does not start with a standard zstd frame",
            proto::PackedRecords {
                body: vec![9; 40].into(),
                raw_len: 400,
                count: 1,
                zstd: true,
            },
        ),
        (
            "a bomb",
            "does not decode",
            proto::PackedRecords {
                body: bomb.clone().into(),
                raw_len: 1 << 20,
                count: 1,
                zstd: true,
            },
        ),
        (
            "over the limit",
            "over the node's limit",
            proto::PackedRecords {
                body: bomb.into(),
                raw_len: limit as u32 + 1,
                count: 1,
                zstd: true,
            },
        ),
        (
            "skippable padding",
            "does not start with a standard zstd frame",
            proto::PackedRecords {
                body: padded.into(),
                ..zstd.clone()
            },
        ),
        (
            "not smaller than its records",
            "not smaller than its",
            proto::PackedRecords {
                body: vec![0; zstd.raw_len as usize].into(),
                ..zstd.clone()
            },
        ),
        (
            "a length past the end",
            "runs past",
            raw(&[5, 0, 0, 0, b'a'], 1),
        ),
        (
            "bytes left over",
            "left over",
            raw(&[1, 0, 0, 0, b'a', b'b'], 1),
        ),
        (
            "more records than bytes",
            "do not fit in",
            raw(&[1, 0, 0, 0, b'a'], 2),
        ),
        (
            "a raw length that lies",
            "the uncompressed body is",
            proto::PackedRecords {
                raw_len: good.raw_len + 1,
                ..good.clone()
            },
        ),
    ];
    for (what, why, main) in hostile {
        let err = commit(&t, &c, &worker, epoch, with(main)).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(err.message().contains(why), "{what}: says {why:?}: {err:?}");
    }
    let job = t.job(id);
    assert_eq!(
        (job.state, job.records_out),
        (JobState::Running, 0),
        "{job:?}"
    );
    let reply = commit(&t, &c, &worker, epoch, with(good)).unwrap();
    assert!(reply.accepted, "the lease is untouched: {reply:?}");
    t.wait_until(id, |j| j.records_out == 2);
    let mut out = Vec::new();
    t.client().download(id, "main", &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "a\nb\n");
}

#[test]
fn a_commit_without_its_output_blob_changes_nothing() {
    let t = TestServer::start_node(|_, _| {});
    let id = copy_job(&t, "a\nb\n", None);
    let mut c = client(&t, None, None);
    let worker = join(&t, &mut c);
    let (epoch, slice) = lease_slice(&t, &c, &worker);
    // Not failed, and no `main`: a protocol-1 commit (its tags skipped),
    // or a lost blob; not a filter's empty output.
    let without = proto::Outcome::Slice(proto::SliceOutput {
        job: slice.job,
        slice: slice.slice,
        main: None,
        ..Default::default()
    });
    let err = commit(&t, &c, &worker, epoch, without).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("no packed records"),
        "says why: {err:?}"
    );
    let job = t.job(id);
    assert_eq!(
        (job.state, job.records_out),
        (JobState::Running, 0),
        "{job:?}"
    );
    let empty = proto::Outcome::Slice(proto::SliceOutput {
        job: slice.job,
        slice: slice.slice,
        main: Some(proto::PackedRecords::default()),
        ..Default::default()
    });
    let reply = commit(&t, &c, &worker, epoch, empty).unwrap();
    assert!(reply.accepted, "the lease is untouched: {reply:?}");
}

#[test]
fn a_commit_of_more_record_lengths_than_a_commit_may_write_is_refused_unbuilt() {
    let t = TestServer::start_node(|_, _| {});
    let id = copy_job(&t, "a\nb\n", None);
    let mut c = client(&t, None, None);
    let worker = join(&t, &mut c);
    let (epoch, slice) = lease_slice(&t, &c, &worker);
    let bound = t.runtime().max_commit_records();
    // Empty records, one byte each on the wire: split between main and a
    // category, the count passes the bound only together.
    let half = bound / 2 + 1;
    let zeros = |n: usize| proto::PackedRecords {
        body: Default::default(),
        raw_len: 4 * n as u32,
        count: n as u32,
        zstd: true,
    };
    let hostile = proto::Outcome::Slice(proto::SliceOutput {
        job: slice.job,
        slice: slice.slice,
        main: Some(zeros(half)),
        categories: vec![zeros(half)],
        ..Default::default()
    });
    let err = commit(&t, &c, &worker, epoch, hostile).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains(&format!("{} records,", 2 * half)),
        "refused by its count, before building records: {err:?}"
    );
    let job = t.job(id);
    assert_eq!(
        (job.state, job.records_out),
        (JobState::Running, 0),
        "{job:?}"
    );
    let reply = commit(
        &t,
        &c,
        &worker,
        epoch,
        proto::Outcome::Slice(proto::SliceOutput {
            job: slice.job,
            slice: slice.slice,
            main: packed(&[b"a", b"b"]),
            ..Default::default()
        }),
    )
    .unwrap();
    assert!(reply.accepted, "the lease is untouched: {reply:?}");
}

#[test]
fn bytes_that_are_no_commit_are_refused_and_change_nothing() {
    let t = TestServer::start_node(|_, _| {});
    let id = copy_job(&t, "a\nb\n", None);
    let mut c = client(&t, None, None);
    let worker = join(&t, &mut c);
    let (epoch, slice) = lease_slice(&t, &c, &worker);
    // Another message's bytes (a string where the commit has numbers),
    // sent to Commit.
    let garbage = proto::HelloRequest {
        version: "\u{0}\u{1}garbage".repeat(100),
        host: "x".into(),
        pid: 1,
        kinds: vec!["copy".into(); 3],
        threads: 7,
        allows: Vec::new(),
        protocol: 7,
        reads_after: false,
    };
    let url = t.url.clone();
    let err = t
        .block_on(async move {
            let channel = tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await.unwrap();
            let path =
                axum::http::uri::PathAndQuery::from_static("/booster.worker.v1.Worker/Commit");
            let codec =
                tonic_prost::ProstCodec::<proto::HelloRequest, proto::CommitReply>::default();
            grpc.unary(tonic::Request::new(garbage), path, codec).await
        })
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::Internal | Code::InvalidArgument),
        "refused: {err:?}"
    );
    let job = t.job(id);
    assert_eq!(
        (job.state, job.records_out),
        (JobState::Running, 0),
        "{job:?}"
    );
    let reply = commit(&t, &c, &worker, epoch, copy_of(&slice)).unwrap();
    assert!(reply.accepted, "the lease is untouched: {reply:?}");
}

#[test]
fn a_worker_naming_another_workers_id_without_its_session_is_refused() {
    let t = TestServer::start_node(|_, _| {});
    let id = copy_job(&t, "a\nb\n", None);
    let mut c = client(&t, None, None);
    let (owner, forger) = (join(&t, &mut c), join(&t, &mut c));
    let (epoch, slice) = lease_slice(&t, &c, &owner);
    // The forger knows the owner's id (ids are sequential), not its secret.
    let forged = Who {
        worker: owner.worker,
        session: forger.session.clone(),
    };
    let err = commit(&t, &c, &forged, epoch, copy_of(&slice)).unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("session"), "{err:?}");
    let err = lease(&t, &c, &forged).unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let beat = t.block_on(c.heartbeat(proto::HeartbeatRequest {
        worker_id: forged.worker,
        epochs: vec![epoch],
        session: forged.session.clone(),
        released: vec![epoch],
    }));
    assert_eq!(beat.unwrap_err().code(), Code::PermissionDenied);
    let job = t.job(id);
    assert_eq!(
        (job.state, job.records_out),
        (JobState::Running, 0),
        "{job:?}"
    );
    let reply = commit(&t, &c, &owner, epoch, copy_of(&slice)).unwrap();
    assert!(reply.accepted, "the owner's lease is untouched: {reply:?}");
    t.wait_until(id, |j| j.records_out == 2);
}

#[test]
fn oversized_hellos_and_heartbeats_are_refused_and_change_nothing() {
    let t = TestServer::start_node(|_, _| {});
    let mut c = client(&t, None, None);
    let mut huge = hello(VERSION);
    huge.host = "h".repeat(100_000);
    let err = t.block_on(c.hello(huge)).unwrap_err();
    assert_ne!(err.code(), Code::Ok, "a 100 KB Hello is not read: {err:?}");
    let mut long = hello(VERSION);
    long.host = "h".repeat(300);
    let err = t.block_on(c.hello(long)).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("host name of 300 bytes"), "{err:?}");
    let mut many = hello(VERSION);
    many.kinds = (0..300).map(|k| format!("k{k}")).collect();
    let err = t.block_on(c.hello(many)).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(remote_workers(&t), 0, "nobody joined");
    let who = join(&t, &mut c);
    let beat = |epochs: u64| {
        t.block_on(c.heartbeat(proto::HeartbeatRequest {
            worker_id: who.worker,
            epochs: (1..=epochs).collect(),
            session: who.session.clone(),
            released: Vec::new(),
        }))
    };
    let err = beat(1000).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("names 1000 leases"), "{err:?}");
    assert_eq!(beat(3).unwrap().ended, vec![1, 2, 3], "none of them is its");
}

/// A kind a worker process ran stays submittable while no process runs
/// it (a service's deploy, a node restart): the table has held jobs of
/// it, so its new jobs wait for the service instead of `POST /api/jobs`
/// refusing them. A kind never seen is still refused (a typo).
#[test]
fn a_kind_a_worker_process_ran_stays_submittable_after_a_node_restart() {
    let keep = tempfile::tempdir().unwrap();
    let data = keep.path().join("data");
    let create = |t: &TestServer, kind: &str| {
        let body = json!({ "kind": kind }).to_string();
        let (status, body) = t.call("POST", "/api/jobs", Some(&body), &[]);
        (status, body.to_string())
    };
    {
        let t = TestServer::start_on(data.clone());
        assert_eq!(create(&t, "service").0, 400, "no worker runs it yet");
        let hello = booster_runtime::RemoteHello {
            host: "w1".into(),
            pid: 42,
            version: VERSION.into(),
            kinds: vec!["service".into()],
            threads: 1,
            allows: Vec::new(),
            reads_after: true,
        };
        t.runtime().remote_join(hello).unwrap();
        assert_eq!(create(&t, "service").0, 201);
    }
    let t = TestServer::start_on(data);
    let (status, body) = create(&t, "service");
    assert_eq!(status, 201, "its jobs wait for the service: {body}");
    let (status, body) = create(&t, "servce");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("service"), "the kinds it names: {body}");
}

/// A `Hello` of no threads is a probe: the node says its version and
/// protocol and registers nothing. It was refused as malformed. (No
/// worker sends one now: see ARCHITECTURE, "Wire protocol 2".)
#[test]
fn a_hello_of_no_threads_is_answered_with_the_protocol_and_registers_nothing() {
    let t = TestServer::start();
    let mut c = client(&t, None, None);
    let probe = proto::HelloRequest {
        threads: 0,
        ..hello(VERSION)
    };
    let reply = t.block_on(c.hello(probe)).unwrap();
    assert_eq!(
        (reply.protocol, reply.worker_id, reply.version.as_str()),
        (booster_client::PROTOCOL, 0, VERSION)
    );
    assert_eq!(remote_workers(&t), 0, "a probe registers no worker");
}
