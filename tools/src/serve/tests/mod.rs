//! In-process tests of `booster serve`: the server runs on 127.0.0.1:0 over
//! the `FakeRuntime`, and the tests talk to it over real HTTP.

mod api;
mod commands;
mod connections;
pub(crate) mod fake;
mod remote_cli;
mod security;

use std::io::Write;

use serde_json::Value;

use self::fake::FakeRuntime;
use crate::serve::{start, ServeOptions, Server};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A server on its own tokio runtime; the test thread stays synchronous and
/// speaks HTTP with blocking clients, as the remote CLI does.
pub struct TestServer {
    pub fake: FakeRuntime,
    pub url: String,
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
        let fake = FakeRuntime::new();
        let server = rt.block_on(start(fake.clone(), &opts)).unwrap();
        let url = server.url();
        TestServer {
            fake,
            url,
            server: Some(server),
            rt,
            _dir: dir,
        }
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
            None => agent.run(req.body(()).unwrap()),
        }
        .unwrap();
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, &[])
    }

    /// Creates a sliced `copy` job with `records` numbered lines uploaded.
    pub fn job_with_records(&self, description: &str, records: usize) -> u64 {
        let client = self.client();
        let id = client
            .create(&serde_json::json!({
                "kind": "copy", "description": description, "slice_size": 100
            }))
            .unwrap();
        let mut input = Vec::new();
        for i in 0..records {
            writeln!(input, "record {i}").unwrap();
        }
        client.upload(id, &mut input.as_slice(), None).unwrap();
        id
    }

    pub fn client(&self) -> crate::remote::Client {
        crate::remote::Client::new(&crate::remote::RemoteOptions {
            server: self.url.clone(),
            ..Default::default()
        })
        .unwrap()
    }
}

impl TestServer {
    /// Shuts the server down gracefully, waiting up to `grace`.
    pub fn stop(&mut self, grace: std::time::Duration) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown(grace)).unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = self.rt.block_on(server.shutdown(std::time::Duration::ZERO));
        }
    }
}
