//! The JSON client: submit, upload, watch and download over a node's
//! HTTP API (`booster serve`), for a service and for the `booster
//! --server` command alike.
//!
//! ```no_run
//! # fn f() -> Result<(), booster_client::http::Error> {
//! use booster_client::http::{Client, Connect, Event, ListFilter};
//!
//! let node = Client::new(&Connect {
//!     server: "https://node:7878".into(),
//!     token: Some("submitter-token-0123456789".into()),
//!     ca_cert: Some("node-ca.pem".into()),
//!     ..Default::default()
//! })?;
//! let id = node.submit(&booster_runtime::JobSpec::sliced("copy"))?;
//! node.upload(id, &mut &b"a\nb\nc\n"[..], None)?;
//! node.watch_from_now(id, |event| {
//!     if let Event::Job(e) = event {
//!         println!("job {}: {} {:.0}%", e.job, e.state.as_str(), e.percent);
//!     }
//!     true // until the job ends
//! })?; // Ok only once the job has finished: its output is whole
//! for record in node.download_records(id, "main")? {
//!     let record = record?;
//!     println!("{}", String::from_utf8_lossy(&record));
//! }
//! let failed = node.jobs(&ListFilter { state: Some("failed"), ..Default::default() })?;
//! # Ok(()) }
//! ```
//!
//! Blocking (ureq with rustls): an upload streams from any `Read` and a
//! download into any `Write` or record iterator without holding a file
//! in memory. A tokio service calls it inside
//! `tokio::task::spawn_blocking`; a `Client` is cheap to clone and its
//! clones share one connection pool.

mod error;
pub mod framing;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use ureq::http::Response;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Body;

use booster_runtime::{
    CronView, DirmonView, JobQuery, JobShape, JobSpec, KindSettings, KindView, Retention,
    Separators,
};

use crate::view::{JobEventView, JobView, JobsPageView, ProcessView, WorkerView};

pub use error::Error;
use framing::{FramedRecords, SeparatedRecords, LENGTH_FRAMING, SEPARATORS_HEADER};

/// What a call of the client gives.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to reach a node.
#[derive(Clone, Default)]
pub struct Connect {
    /// `http://127.0.0.1:7878` or `https://host:7878` (`http://` only to
    /// a loopback host).
    pub server: String,
    /// The bearer token (its role decides what the node allows); None
    /// for a node without tokens (loopback only).
    pub token: Option<String>,
    /// A PEM certificate to trust, and only it (a node with a
    /// self-signed certificate); None: the web's roots.
    pub ca_cert: Option<PathBuf>,
    /// How long a JSON call waits for the node's answer, and then for
    /// its body, before it gives up with [`Error::NoAnswer`]; None:
    /// [`DEFAULT_ANSWER_TIMEOUT`]. The bodies of `watch` and the
    /// downloads have none (a quiet job, a long download); their
    /// answer's headers have it.
    pub timeout: Option<Duration>,
}

/// A JSON call's wait for the answer, unless `Connect::timeout` says
/// otherwise: 60 s (a node answers in milliseconds; an upload's answer
/// comes once its last records are committed).
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("ca_cert", &self.ca_cert)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The filters of `GET /api/jobs` (None: any).
#[derive(Clone, Copy, Debug, Default)]
pub struct ListFilter<'a> {
    /// A state as the CLI spells it (`queued`, `running`, `failed`, ...).
    pub state: Option<&'a str>,
    pub kind: Option<&'a str>,
    /// Text in the description or kind.
    pub text: Option<&'a str>,
}

/// One event of a watch.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The job changed (or, first in `watch_from_now`, the job as it is:
    /// `what` is `"current"`).
    Job(JobEventView),
    /// The stream fell behind and `missed` events were dropped (the job's
    /// final one among them, maybe): the watch reads the job next and
    /// hands it on as a `"current"` event, which ends the watch if the
    /// job has finished.
    Lagged { missed: u64 },
}

/// A job's `main` records with the separators their input had.
pub type SeparatedDownload = Box<dyn Iterator<Item = Result<(Vec<u8>, Separators)>> + Send>;

/// A job's records, each whole; an error (`BrokeOff`) where the download
/// broke off.
pub type RecordDownload = Box<dyn Iterator<Item = Result<Vec<u8>>> + Send>;

/// Error answers are small JSON objects; anything larger is not ours.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;
/// Job lists can be long, but not unbounded.
const MAX_JSON_BODY_BYTES: u64 = 256 * 1024 * 1024;

/// A connection to a node's HTTP API. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(connect: &Connect) -> Result<Client> {
        let base = connect.server.trim_end_matches('/').to_string();
        crate::check_server_url(&base).map_err(|e| Error::Setup(e.to_string()))?;
        let answer_timeout = connect.timeout.unwrap_or(DEFAULT_ANSWER_TIMEOUT);
        let mut tls = TlsConfig::builder();
        if let Some(path) = &connect.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Setup(format!(
                    "cannot read the CA certificate {}: {e}",
                    path.display()
                ))
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                Error::Setup(format!("{} is not a PEM certificate: {e}", path.display()))
            })?;
            tls = tls.root_certs(RootCerts::new_with_certs(&[cert]));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            // A node that takes the request and never answers must not
            // hold a caller's thread for ever. The streams (`follow`,
            // `output`) lift the body's limit: a quiet job or a long
            // download is no stall.
            .timeout_recv_response(Some(answer_timeout))
            .timeout_recv_body(Some(answer_timeout))
            // The server closes a connection idle for its header timeout
            // (10 s by default); never reuse one that old.
            .max_idle_age(Duration::from_secs(5))
            .tls_config(tls.build())
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            base,
            token: connect.token.clone(),
        })
    }

    /// The node's URL, without a trailing slash.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// Every job matching `filter`, ascending id: page after page of
    /// `GET /api/jobs`.
    pub fn jobs(&self, filter: &ListFilter<'_>) -> Result<Vec<JobView>> {
        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let page = self.jobs_page(filter, JobQuery::MAX_LIMIT, before)?;
            pages.push(page.jobs);
            match page.next_before {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        Ok(pages.into_iter().rev().flatten().collect())
    }

    /// One page of `GET /api/jobs`: the newest `limit` jobs matching
    /// `filter` below `before`, in id order.
    pub fn jobs_page(
        &self,
        filter: &ListFilter<'_>,
        limit: usize,
        before: Option<u64>,
    ) -> Result<JobsPageView> {
        let mut req = self
            .agent
            .get(self.url("/api/jobs"))
            .query("limit", limit.to_string());
        if let Some(b) = before {
            req = req.query("before", b.to_string());
        }
        let named = [
            ("state", filter.state),
            ("kind", filter.kind),
            ("q", filter.text),
        ];
        for (name, value) in named {
            if let Some(v) = value {
                req = req.query(name, v);
            }
        }
        self.json(self.auth(req).call())
    }

    pub fn job(&self, id: u64) -> Result<JobView> {
        let req = self.agent.get(self.url(&format!("/api/jobs/{id}")));
        self.json(self.auth(req).call())
    }

    /// Submits `spec` (`POST /api/jobs`); returns the new job's id. A
    /// sliced job then waits for its [`Client::upload`].
    ///
    /// On [`Error::NoAnswer`] the node may have created the job: look it
    /// up (e.g. [`Client::jobs`] with its description) before submitting
    /// again, or give the spec a `singleton` key, so that a second
    /// submit is refused (409) while the first job is unfinished.
    /// [`Error::Unreachable`] sent nothing; submitting again is safe.
    pub fn submit(&self, spec: &JobSpec) -> Result<u64> {
        self.create(&job_body(spec)?)
    }

    /// `POST /api/jobs` with a body like `{"kind": "copy", "priority": 10}`;
    /// returns the new job's id.
    pub fn create(&self, body: &Value) -> Result<u64> {
        let answer: Value = self.post_json(&self.url("/api/jobs"), body)?;
        answer["id"].as_u64().ok_or_else(|| Error::Answer {
            server: self.base.clone(),
            reason: format!("no job id in {answer}"),
        })
    }

    /// Streams `input` into the job's upload (`format`: `lines`, `csv`,
    /// `jsonl`, ...; None: what the job was created with, else lines);
    /// the job starts when it ends.
    pub fn upload(&self, id: u64, input: &mut dyn Read, format: Option<&str>) -> Result<JobView> {
        let mut req = self.agent.put(self.url(&format!("/api/jobs/{id}/input")));
        if let Some(f) = format {
            req = req.query("format", f);
        }
        let req = self
            .auth(req)
            .header("Content-Type", "application/octet-stream");
        self.json(req.send(ureq::SendBody::from_reader(input)))
    }

    /// Streams one category of the job's records into `out`, one a line;
    /// returns the bytes written.
    pub fn download(&self, id: u64, category: &str, out: &mut dyn Write) -> Result<u64> {
        let mut body = self.download_reader(id, category)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => return Ok(written),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(download_broke_off(source)),
            };
            out.write_all(&buf[..n]).map_err(Error::Output)?;
            written += n as u64;
        }
    }

    /// One category of the job's records, one a line, as a reader.
    pub fn download_reader(&self, id: u64, category: &str) -> Result<impl Read + Send + 'static> {
        let resp = self.output(id, category, &[])?;
        Ok(resp.into_body().into_with_config().reader())
    }

    /// One category of the job's records, each once, whole and in order
    /// (`framing=length`: a record holding a newline stays one record).
    /// A stream cut short ends with an error (`BrokeOff`), never early.
    /// The node sends what a running job has so far: download once a
    /// watch has returned `Ok`.
    pub fn download_records(&self, id: u64, category: &str) -> Result<RecordDownload> {
        let resp = self.output(id, category, &[("framing", LENGTH_FRAMING)])?;
        let records = FramedRecords::new(resp.into_body().into_with_config().reader());
        Ok(Box::new(records.map(|r| r.map_err(download_broke_off))))
    }

    /// The job's `main` records with their separators
    /// (`framing=length&separators=true`); a server that does not send
    /// them gives the usual ones.
    pub fn download_separated(&self, id: u64) -> Result<SeparatedDownload> {
        let query = [("framing", LENGTH_FRAMING), ("separators", "true")];
        let resp = self.output(id, "main", &query)?;
        let separated = resp.headers().contains_key(SEPARATORS_HEADER);
        let reader = resp.into_body().into_with_config().reader();
        let records: Box<dyn Iterator<Item = std::io::Result<_>> + Send> = if separated {
            Box::new(SeparatedRecords::new(reader))
        } else {
            Box::new(
                FramedRecords::new(reader).map(|r| r.map(|record| (record, Separators::default()))),
            )
        };
        Ok(Box::new(records.map(|r| r.map_err(download_broke_off))))
    }

    /// `GET /api/jobs/{id}/output?category=...` with `extra` parameters.
    fn output(&self, id: u64, category: &str, extra: &[(&str, &str)]) -> Result<Response<Body>> {
        let mut req = self
            .agent
            .get(self.url(&format!("/api/jobs/{id}/output")))
            .query("category", category);
        for (name, value) in extra {
            req = req.query(*name, *value);
        }
        self.ok(self.auth(unlimited_body(req)).call())
    }

    /// Changes priority and/or worker limit (`Some(None)` lifts the limit).
    pub fn set(
        &self,
        id: u64,
        priority: Option<i64>,
        max_workers: Option<Option<u32>>,
    ) -> Result<JobView> {
        let mut body = json!({});
        if let Some(p) = priority {
            body["priority"] = json!(p);
        }
        if let Some(w) = max_workers {
            body["max_workers"] = json!(w);
        }
        let req = self.agent.patch(self.url(&format!("/api/jobs/{id}")));
        self.json(
            self.auth(req)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        )
    }

    /// `pause`, `resume`, `abort`, `retry` or `fail` (with a reason).
    pub fn control(&self, id: u64, action: &str, reason: Option<&str>) -> Result<JobView> {
        let url = self.url(&format!("/api/jobs/{id}/{action}"));
        match reason {
            Some(r) => self.post_json(&url, &json!({ "reason": r })),
            None => self.json(
                self.auth(self.agent.post(url))
                    .header("Content-Type", "application/json")
                    .send_empty(),
            ),
        }
    }

    pub fn destroy(&self, id: u64) -> Result<()> {
        let req = self.agent.delete(self.url(&format!("/api/jobs/{id}")));
        self.ok(self.auth(req).call())?;
        Ok(())
    }

    /// `GET /api/crons`.
    pub fn crons(&self) -> Result<Vec<CronView>> {
        self.get_field("/api/crons", "crons")
    }

    /// `POST /api/crons` with `{"expr", "tz", "job": {...}}` (`job`: as
    /// [`job_body()`] makes it): the new entry.
    pub fn add_cron(&self, body: &Value) -> Result<CronView> {
        let answer: Value = self.post_json(&self.url("/api/crons"), body)?;
        self.field(answer, "cron")
    }

    /// `POST /api/crons/{id}/{action}`: pause, resume or remove.
    pub fn cron_action(&self, id: u64, action: &str) -> Result<()> {
        self.entry_action("crons", id, action)
    }

    /// `GET /api/kinds`: every kind's stored and effective settings.
    pub fn kinds(&self) -> Result<Vec<KindView>> {
        self.get_field("/api/kinds", "kinds")
    }

    /// `PUT /api/kinds/{kind}` with the kind's whole settings (None
    /// clears them): the kind's view after.
    pub fn store_kind(
        &self,
        kind: &str,
        settings: Option<&KindSettings>,
    ) -> Result<Option<KindView>> {
        let url = self.url(&format!("/api/kinds/{}", url_path_segment(kind)));
        let body = serde_json::to_value(settings).expect("kind settings serialise");
        let answer: Value = self.json(
            self.auth(self.agent.put(url))
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        )?;
        self.field(answer, "settings")
    }

    /// `GET /api/settings/retention`: the periods that apply.
    pub fn retention(&self) -> Result<Retention> {
        let req = self.agent.get(self.url("/api/settings/retention"));
        self.json(self.auth(req).call())
    }

    /// `PUT /api/settings/retention` with the periods to change (the
    /// server keeps the others): the periods stored.
    pub fn set_retention(&self, changes: &Value) -> Result<Retention> {
        let req = self.agent.put(self.url("/api/settings/retention"));
        self.json(
            self.auth(req)
                .header("Content-Type", "application/json")
                .send(changes.to_string()),
        )
    }

    /// `GET /api/dirmons`.
    pub fn dirmons(&self) -> Result<Vec<DirmonView>> {
        self.get_field("/api/dirmons", "dirmons")
    }

    /// `POST /api/dirmons` with `{"pattern", "archive", "settle_ms",
    /// "options"}`: the new entry.
    pub fn add_dirmon(&self, body: &Value) -> Result<DirmonView> {
        let answer: Value = self.post_json(&self.url("/api/dirmons"), body)?;
        self.field(answer, "dirmon")
    }

    /// `POST /api/dirmons/{id}/{action}`: pause, resume or remove.
    pub fn dirmon_action(&self, id: u64, action: &str) -> Result<()> {
        self.entry_action("dirmons", id, action)
    }

    /// `POST /api/{entries}/{id}/{action}` of a cron or dirmon entry.
    fn entry_action(&self, entries: &str, id: u64, action: &str) -> Result<()> {
        let req = self
            .agent
            .post(self.url(&format!("/api/{entries}/{id}/{action}")));
        self.ok(self.auth(req).send_empty())?;
        Ok(())
    }

    /// The node's worker slots (`GET /api/workers`).
    pub fn workers(&self) -> Result<Vec<WorkerView>> {
        self.get_field("/api/workers", "workers")
    }

    /// The processes working on the node's jobs (`GET /api/workers`).
    pub fn processes(&self) -> Result<Vec<ProcessView>> {
        self.get_field("/api/workers", "processes")
    }

    /// Follows the job's events until `on_event` returns false or the job
    /// has finished (`booster job watch JOB`). `Ok` means one of the two:
    /// a stream that ends before the job has finished (the node
    /// stopped, a proxy cut it) is [`Error::BrokeOff`], never taken for
    /// the job's end.
    pub fn watch(&self, id: u64, on_event: impl FnMut(&Event) -> bool) -> Result<()> {
        self.follow(id, false, on_event)
    }

    /// As `watch`, but once the stream is open it first hands `on_event` the
    /// job as it is now (`what: "current"`), so a job that ended before the
    /// stream opened still ends the watch.
    pub fn watch_from_now(&self, id: u64, on_event: impl FnMut(&Event) -> bool) -> Result<()> {
        self.follow(id, true, on_event)
    }

    fn follow(
        &self,
        id: u64,
        current_first: bool,
        mut on_event: impl FnMut(&Event) -> bool,
    ) -> Result<()> {
        let req = self
            .agent
            .get(self.url("/api/events"))
            .query("job", id.to_string());
        let resp = self.ok(self.auth(unlimited_body(req)).call())?;
        // Whether the watch goes on after `event` (None: the job was
        // destroyed once it finished).
        let mut goes_on = |event: Option<Event>| {
            let Some(event) = event else { return false };
            let finished = matches!(&event, Event::Job(e) if e.state.is_finished());
            on_event(&event) && !finished
        };
        // The server subscribed before answering: nothing after this read is missed.
        if current_first && !goes_on(self.current(id)?) {
            return Ok(());
        }
        let reader = BufReader::new(resp.into_body().into_with_config().reader());
        let mut name = String::new();
        for line in reader.lines() {
            let line = line.map_err(|source| Error::BrokeOff {
                what: "the event stream",
                source,
            })?;
            // A blank line ends an event; the next names its own (SSE).
            if line.is_empty() {
                name.clear();
                continue;
            }
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_string();
                continue;
            }
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            // An event this build does not know is not one to stop on.
            let Some(event) = sse_event(&name, data) else {
                continue;
            };
            let lagged = matches!(event, Event::Lagged { .. });
            if !goes_on(Some(event)) {
                return Ok(());
            }
            // The dropped events may hold the job's last one: ask.
            if lagged && !goes_on(self.current(id)?) {
                return Ok(());
            }
        }
        // The stream ended, but the node never said the job did: it may
        // have stopped, or a proxy cut the stream. Only the job can say.
        let source = match self.current(id) {
            Ok(event) => {
                if !goes_on(event) {
                    return Ok(());
                }
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the node closed it before the job finished",
                )
            }
            Err(e) => std::io::Error::other(e),
        };
        Err(Error::BrokeOff {
            what: "the event stream",
            source,
        })
    }

    /// The job as it is now, as a `"current"` event; None for a job
    /// destroyed once it finished (it has ended; its counts went with
    /// it).
    fn current(&self, id: u64) -> Result<Option<Event>> {
        match self.job(id) {
            Ok(view) => Ok(Some(Event::Job(JobEventView::of_status(
                &view.into(),
                "current",
            )))),
            Err(e) if e.destroyed_finished().is_some() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    /// `GET path`, then the answer's `field`.
    fn get_field<T: serde::de::DeserializeOwned>(&self, path: &str, field: &str) -> Result<T> {
        let answer: Value = self.json(self.auth(self.agent.get(self.url(path))).call())?;
        self.field(answer, field)
    }

    /// `POST url` with a JSON body, and the JSON answer.
    fn post_json<T: serde::de::DeserializeOwned>(&self, url: &str, body: &Value) -> Result<T> {
        self.json(
            self.auth(self.agent.post(url))
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        )
    }

    fn field<T: serde::de::DeserializeOwned>(&self, mut answer: Value, field: &str) -> Result<T> {
        serde_json::from_value(answer[field].take()).map_err(|e| self.unexpected(e))
    }

    /// A 2xx response, or the server's `{"error": ...}` as the error.
    fn ok(
        &self,
        result: std::result::Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>> {
        let resp = result.map_err(|e| error::transport(&self.base, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp
            .into_body()
            .into_with_config()
            .limit(MAX_ERROR_BODY_BYTES)
            .read_to_string()
            .unwrap_or_default();
        let body = serde_json::from_str::<Value>(&text).ok();
        let field = |name: &str| body.as_ref().and_then(|v| v[name].as_str());
        let message = field("error").unwrap_or(&text).to_string();
        let destroyed = field("destroyed_state").and_then(|s| s.parse().ok());
        Err(error::refusal(
            &self.base,
            status.as_u16(),
            message,
            destroyed,
        ))
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        result: std::result::Result<Response<Body>, ureq::Error>,
    ) -> Result<T> {
        let resp = self.ok(result)?;
        let text = resp
            .into_body()
            .into_with_config()
            .limit(MAX_JSON_BODY_BYTES)
            .read_to_string()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => self.unexpected(format!("cannot read it: {e}")),
                // A stall or a break in the answer: the request went out.
                e => error::transport(&self.base, e),
            })?;
        serde_json::from_str(&text).map_err(|e| self.unexpected(e))
    }

    fn unexpected(&self, reason: impl std::fmt::Display) -> Error {
        Error::Answer {
            server: self.base.clone(),
            reason: reason.to_string(),
        }
    }
}

/// The body of `POST /api/jobs` for `spec`, or [`Error::Spec`] for a
/// spec that sets what the API does not take: `expires_at` (a node-side
/// setting) and `cron` (the node sets it on a cron entry's runs).
pub fn job_body(spec: &JobSpec) -> Result<Value> {
    if spec.expires_at.is_some() {
        return Err(Error::Spec(
            "expires_at cannot be set through the HTTP API; leave it None".to_string(),
        ));
    }
    if spec.cron.is_some() {
        return Err(Error::Spec(
            "cron is the node's to set on a cron entry's runs; leave it None \
             and add a cron entry instead (Client::add_cron)"
                .to_string(),
        ));
    }
    let (args, slice_size, collect_errors) = match &spec.shape {
        JobShape::Sliced {
            slice_size,
            collect_errors,
        } => (None, *slice_size, Some(*collect_errors)),
        JobShape::Simple { args } => (Some(args.clone()), None, None),
    };
    Ok(json!({
        "kind": spec.kind,
        "priority": spec.priority,
        "description": spec.description,
        "max_workers": spec.max_workers,
        "slice_size": slice_size,
        "collect_errors": collect_errors,
        "args": args,
        "properties": spec.properties,
        "categories": spec.categories,
        "singleton": spec.singleton,
        "after": spec.after,
        "on_dependency_failure": spec.on_dependency_failure,
        "window": spec.window,
        "destroy_on_complete": spec.destroy_on_complete,
        "run_at_ms": spec.run_at.map(crate::view::unix_ms),
    }))
}

/// One SSE event of `GET /api/events`: `name` from its `event:` line,
/// `data` after `data:`. None: not one this build knows.
fn sse_event(name: &str, data: &str) -> Option<Event> {
    match name {
        "lagged" => serde_json::from_str::<Value>(data.trim())
            .ok()
            .and_then(|v| v["missed"].as_u64())
            .map(|missed| Event::Lagged { missed }),
        _ => serde_json::from_str(data.trim()).ok().map(Event::Job),
    }
}

/// `req` without the agent's limit on the answer's body: a stream.
fn unlimited_body(
    req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
    req.config().timeout_recv_body(None).build()
}

/// A download's read error as the error that says it is incomplete.
fn download_broke_off(source: std::io::Error) -> Error {
    Error::BrokeOff {
        what: "the download",
        source,
    }
}

/// `text` as one URL path segment: every byte but unreserved ones
/// percent-encoded (a kind name may hold `/`, `?`, spaces).
fn url_path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
