//! In-process tests of `booster serve`: the server runs on 127.0.0.1:0 over
//! a real `Runtime` on a temp dir, with the built-in kinds registered as
//! `serve` registers them and the `gated` kind (`booster_tests::gate`),
//! whose records wait for permits the test releases; the tests talk to it
//! over real HTTP.

mod api;
mod commands;
mod connections;
mod fleet;
mod remote_cli;
mod security;
mod settings;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use booster_runtime::{JobId, JobState, JobStatus, Runtime, RuntimeOptions};
use booster_tests::gate::{self, Gate, GATED};
use serde_json::Value;

use crate::serve::{start, ServeOptions, Server};

/// How long a test waits for the runtime to reach a state it has released
/// it to reach. Generous: it bounds a hang on a shared machine and
/// measures nothing.
const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `probe` until it answers (the runtime moves on its own threads);
/// fails the test after [`PATIENCE`], naming `what` it waited for.
pub fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(started.elapsed() < PATIENCE, "waited in vain for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A server on its own tokio runtime; the test thread stays synchronous and
/// speaks HTTP with blocking clients, as the remote CLI does.
pub struct TestServer {
    /// Lets `gated` records through: a gated job moves only when the test
    /// releases permits (one per record).
    pub gate: Arc<Gate>,
    pub url: String,
    runtime: Option<Runtime>,
    server: Option<Server>,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(false, false)
    }

    pub fn start_with(token: bool, tls: bool) -> TestServer {
        TestServer::start_configured(|dir, opts| {
            if token {
                let path = dir.join("token");
                crate::secret_file::write_private(&path, format!("{TOKEN}\n").as_bytes()).unwrap();
                opts.token_file = Some(path);
            }
            if tls {
                let (cert, key) = security::write_self_signed(dir);
                opts.tls_cert = Some(cert);
                opts.tls_key = Some(key);
            }
        })
    }

    /// A server whose options `configure` sets (given the test's temp dir).
    pub fn start_configured(
        configure: impl FnOnce(&std::path::Path, &mut ServeOptions),
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        TestServer::start_in(dir, data, 2, configure)
    }

    /// A node that runs no work itself (`serve --workers 0`): only remote
    /// workers lease its jobs.
    pub fn start_node(configure: impl FnOnce(&std::path::Path, &mut ServeOptions)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        TestServer::start_in(dir, data, 0, configure)
    }

    /// A server whose runtime keeps its data in `data` (e.g. on a small disk).
    pub fn start_on(data: std::path::PathBuf) -> TestServer {
        TestServer::start_in(tempfile::tempdir().unwrap(), data, 2, |_, _| {})
    }

    fn start_in(
        dir: tempfile::TempDir,
        data: std::path::PathBuf,
        workers: usize,
        configure: impl FnOnce(&std::path::Path, &mut ServeOptions),
    ) -> TestServer {
        let mut opts = ServeOptions {
            listen: "127.0.0.1:0".to_string(),
            ..ServeOptions::default()
        };
        configure(dir.path(), &mut opts);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (runtime, gate, server) = rt.block_on(async {
            let mut runtime_options = RuntimeOptions::new(data);
            runtime_options.workers = workers;
            // A gated handler waits on the test with its lease held.
            runtime_options.lease_timeout = gate::LEASE_TIMEOUT;
            let runtime = Runtime::open(runtime_options).await.unwrap();
            // As `booster serve` registers them: exec runs only what it allows.
            let allowed = crate::kinds::ExecPolicy::Only(opts.exec_allow.clone().into());
            crate::kinds::register_builtin_with(&runtime, allowed);
            let gate = gate::register(&runtime);
            let server = start(runtime.clone(), &opts).await.unwrap();
            (runtime, gate, server)
        });
        let url = server.url();
        TestServer {
            gate,
            url,
            runtime: Some(runtime),
            server: Some(server),
            rt,
            _dir: dir,
        }
    }

    /// Runs `f` on the server's tokio runtime (an async client's calls).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Spawns `f` on the server's tokio runtime (a worker process's loop).
    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.spawn(f)
    }

    pub fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().unwrap()
    }

    /// The job as the runtime has it (not through the API).
    pub fn job(&self, id: JobId) -> JobStatus {
        self.rt.block_on(self.runtime().job(id)).unwrap()
    }

    /// How many jobs the runtime holds.
    pub fn jobs_submitted(&self) -> usize {
        self.rt
            .block_on(self.runtime().jobs(Default::default()))
            .unwrap()
            .len()
    }

    /// Lets `records` more `gated` records through and waits until `done`
    /// holds of the job.
    pub fn release_until(&self, id: JobId, records: u64, done: impl Fn(&JobStatus) -> bool) {
        self.gate.release(records);
        self.wait_until(id, done);
    }

    /// Waits until `done` holds of the job (polling: the runtime moves it).
    pub fn wait_until(&self, id: JobId, done: impl Fn(&JobStatus) -> bool) {
        eventually(&format!("job {id} to get there"), || {
            done(&self.job(id)).then_some(())
        });
    }

    /// Lets the job's `records` through and waits for it to end.
    pub fn finish(&self, id: JobId, records: u64) -> JobState {
        self.gate.release(records);
        self.rt.block_on(self.runtime().wait(id)).unwrap().state
    }

    /// Waits until `n` event streams are open on the server (a client's
    /// stream is subscribed to the runtime's events once it counts here).
    pub fn wait_for_event_streams(&self, n: usize) {
        let server = self.server.as_ref().unwrap();
        eventually(&format!("{n} event streams to open"), || {
            (server.event_streams() >= n).then_some(())
        });
    }

    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// A raw request: (status, JSON body or Null). No token unless given.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let uri = format!("{}{path}", self.url);
        let mut req = ureq::http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = match body {
            Some(b) => agent.run(
                req.header("Content-Type", "application/json")
                    .body(b.to_string())
                    .unwrap(),
            ),
            None => agent.run(req.body(booster_tests::cli::NO_BODY).unwrap()),
        }
        .unwrap();
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, &[])
    }

    /// Creates a sliced `gated` job with `records` numbered lines uploaded,
    /// in slices of 100 and on one worker at a time, so each 100 records
    /// released finish exactly one slice. It runs no record until the test
    /// releases some.
    pub fn job_with_records(&self, description: &str, records: usize) -> u64 {
        let id = self
            .client()
            .create(&serde_json::json!({
                "kind": GATED, "description": description, "slice_size": 100,
                "max_workers": 1
            }))
            .unwrap();
        self.upload_numbered(id, records);
        id
    }

    /// Uploads `records` numbered lines (`record 0`, ...) into the job.
    pub fn upload_numbered(&self, id: u64, records: usize) {
        let mut input = Vec::new();
        for i in 0..records {
            writeln!(input, "record {i}").unwrap();
        }
        self.client()
            .upload(id, &mut input.as_slice(), None)
            .unwrap();
    }

    pub fn client(&self) -> crate::remote::Client {
        crate::remote::connect(&crate::remote::RemoteOptions {
            server: self.url.clone(),
            ..Default::default()
        })
        .unwrap()
    }
}

impl TestServer {
    /// Shuts the server down gracefully, waiting up to `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown(grace)).unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.gate.open();
        let (server, runtime) = (self.server.take(), self.runtime.take());
        self.rt.block_on(async {
            if let Some(server) = server {
                let _ = server.shutdown(Duration::ZERO).await;
            }
            if let Some(runtime) = runtime {
                let _ = runtime.shutdown(Duration::from_secs(10)).await;
            }
        });
    }
}
