//! The remote CLI's HTTP client: `booster --server URL jobs|job|submit|download`
//! do over the API what they do on a local data directory.
//!
//! ```text
//! let client = Client::new(&RemoteOptions { server: "https://host:7878".into(), .. })?;
//! let id = client.create(&json!({"kind": "copy", "priority": 10}))?;
//! client.upload(id, &mut File::open("in.csv")?, None)?;
//! client.download(id, "main", &mut stdout())?;
//! ```
//!
//! Blocking (ureq with rustls): the CLI is a one-shot process, and uploads
//! and downloads stream straight from a `Read` to a `Write` without ever
//! holding a file in memory.

mod cli;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use ureq::http::Response;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Body;

use booster_runtime::JobQuery;

use crate::serve::view::{JobView, WorkerView};

pub use cli::run;

/// The filters of `GET /api/jobs` (None: any).
#[derive(Clone, Copy, Debug, Default)]
pub struct ListFilter<'a> {
    pub state: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub text: Option<&'a str>,
}

/// `GET /api/jobs`'s answer: one page in id order, where the next
/// (older) one starts, and how many match (null with a kind or text
/// filter).
#[derive(Debug, serde::Deserialize)]
pub struct JobsPageView {
    pub jobs: Vec<JobView>,
    pub next_before: Option<u64>,
    pub total: Option<u64>,
}

/// The server's 404 for a job destroyed while its tombstone is kept
/// (`"destroyed_state"`): the state it was destroyed in, so a watch knows
/// how a job that its kind destroys on complete ended.
#[derive(Debug)]
pub struct JobDestroyed {
    pub state: booster_runtime::JobState,
    message: String,
}

impl JobDestroyed {
    /// The state `e` says its job finished in, if it is a `JobDestroyed`
    /// of a job that finished before it was destroyed.
    pub fn finished(e: &anyhow::Error) -> Option<booster_runtime::JobState> {
        e.downcast_ref::<JobDestroyed>()
            .map(|d| d.state)
            .filter(|s| s.is_finished())
    }
}

impl std::fmt::Display for JobDestroyed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JobDestroyed {}

/// How to reach a `booster serve`.
#[derive(Clone, Debug, Default)]
pub struct RemoteOptions {
    /// `http://127.0.0.1:7878` or `https://host:7878`.
    pub server: String,
    /// File holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// PEM certificate to trust (a self-signed server); default: the web's roots.
    pub ca_cert: Option<PathBuf>,
}

/// Error answers are small JSON objects; anything larger is not ours.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;
/// Job lists can be long, but not unbounded.
const MAX_JSON_BODY_BYTES: u64 = 256 * 1024 * 1024;

pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(opts: &RemoteOptions) -> anyhow::Result<Client> {
        let base = opts.server.trim_end_matches('/').to_string();
        booster_client::check_server_url(&base)?;
        let token = match &opts.token_file {
            None => None,
            Some(path) => Some(read_token(path)?),
        };
        let mut tls = TlsConfig::builder();
        if let Some(path) = &opts.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| anyhow!("{} is not a PEM certificate: {e}", path.display()))?;
            tls = tls.root_certs(RootCerts::new_with_certs(&[cert]));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            // The server closes a connection idle for its header timeout
            // (10 s by default); never reuse one that old.
            .max_idle_age(Duration::from_secs(5))
            .tls_config(tls.build())
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            base,
            token,
        })
    }

    /// Every job matching the filters, ascending id: page after page of
    /// `GET /api/jobs`.
    pub fn jobs(
        &self,
        state: Option<&str>,
        kind: Option<&str>,
        text: Option<&str>,
    ) -> anyhow::Result<Vec<JobView>> {
        let filter = ListFilter { state, kind, text };
        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let page = self.jobs_page(&filter, JobQuery::MAX_LIMIT, before)?;
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
    ) -> anyhow::Result<JobsPageView> {
        let mut req = self
            .agent
            .get(format!("{}/api/jobs", self.base))
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
        let body: Value = self.json(self.auth(req).call())?;
        Ok(serde_json::from_value(body)?)
    }

    pub fn job(&self, id: u64) -> anyhow::Result<JobView> {
        let req = self.agent.get(format!("{}/api/jobs/{id}", self.base));
        self.json(self.auth(req).call())
    }

    /// `POST /api/jobs` with a body like `{"kind": "copy", "priority": 10}`;
    /// returns the new job's id.
    pub fn create(&self, spec: &Value) -> anyhow::Result<u64> {
        let req = self.agent.post(format!("{}/api/jobs", self.base));
        let body: Value = self.json(
            self.auth(req)
                .header("Content-Type", "application/json")
                .send(spec.to_string()),
        )?;
        body["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("the server answered without a job id: {body}"))
    }

    /// Streams `input` into the job's upload; the job starts when it ends.
    pub fn upload(
        &self,
        id: u64,
        input: &mut dyn Read,
        format: Option<&str>,
    ) -> anyhow::Result<JobView> {
        let mut req = self.agent.put(format!("{}/api/jobs/{id}/input", self.base));
        if let Some(f) = format {
            req = req.query("format", f);
        }
        let req = self
            .auth(req)
            .header("Content-Type", "application/octet-stream");
        self.json(req.send(ureq::SendBody::from_reader(input)))
    }

    /// Streams one category of the job's records into `out`; returns the bytes written.
    pub fn download(&self, id: u64, category: &str, out: &mut dyn Write) -> anyhow::Result<u64> {
        let mut body = self.download_reader(id, category)?;
        let n = std::io::copy(&mut body, out).context(
            "the download broke off before its end; the output is incomplete, download again",
        )?;
        Ok(n)
    }

    /// One category of the job's records, one per line, as a reader.
    pub fn download_reader(&self, id: u64, category: &str) -> anyhow::Result<impl Read> {
        let req = self
            .agent
            .get(format!("{}/api/jobs/{id}/output", self.base))
            .query("category", category);
        let resp = self.ok(self.auth(req).call())?;
        Ok(resp.into_body().into_with_config().reader())
    }

    /// One category of the job's records, each whole (`framing=length`:
    /// a record holding a newline stays one record).
    pub fn download_records(
        &self,
        id: u64,
        category: &str,
    ) -> anyhow::Result<crate::formats::FramedRecords<impl Read>> {
        let req = self
            .agent
            .get(format!("{}/api/jobs/{id}/output", self.base))
            .query("category", category)
            .query("framing", crate::formats::LENGTH_FRAMING);
        let resp = self.ok(self.auth(req).call())?;
        Ok(crate::formats::FramedRecords::new(
            resp.into_body().into_with_config().reader(),
        ))
    }

    /// The job's `main` records with their separators
    /// (`framing=length&separators=true`); a server that does not send
    /// them gives the usual ones.
    pub fn download_separated(
        &self,
        id: u64,
    ) -> anyhow::Result<crate::commands::SeparatedFeed<'static>> {
        let req = self
            .agent
            .get(format!("{}/api/jobs/{id}/output", self.base))
            .query("category", "main")
            .query("framing", crate::formats::LENGTH_FRAMING)
            .query("separators", "true");
        let resp = self.ok(self.auth(req).call())?;
        let separated = resp
            .headers()
            .contains_key(crate::formats::SEPARATORS_HEADER);
        let reader = resp.into_body().into_with_config().reader();
        Ok(if separated {
            Box::new(
                crate::formats::SeparatedRecords::new(reader)
                    .map(|r| r.map_err(anyhow::Error::from)),
            )
        } else {
            Box::new(crate::formats::FramedRecords::new(reader).map(|r| {
                r.map(|record| (record, booster_runtime::Separators::default()))
                    .map_err(anyhow::Error::from)
            }))
        })
    }

    /// Changes priority and/or worker limit (`Some(None)` lifts the limit).
    pub fn set(
        &self,
        id: u64,
        priority: Option<i64>,
        max_workers: Option<Option<u32>>,
    ) -> anyhow::Result<JobView> {
        let mut body = json!({});
        if let Some(p) = priority {
            body["priority"] = json!(p);
        }
        if let Some(w) = max_workers {
            body["max_workers"] = json!(w);
        }
        let req = self.agent.patch(format!("{}/api/jobs/{id}", self.base));
        self.json(
            self.auth(req)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        )
    }

    /// `pause`, `resume`, `abort`, `retry` or `fail` (with a reason).
    pub fn control(&self, id: u64, action: &str, reason: Option<&str>) -> anyhow::Result<JobView> {
        let req = self
            .agent
            .post(format!("{}/api/jobs/{id}/{action}", self.base));
        let req = self.auth(req).header("Content-Type", "application/json");
        let result = match reason {
            Some(r) => req.send(json!({ "reason": r }).to_string()),
            None => req.send_empty(),
        };
        self.json(result)
    }

    /// `GET /api/crons`.
    pub fn crons(&self) -> anyhow::Result<Vec<booster_runtime::CronView>> {
        let req = self.agent.get(format!("{}/api/crons", self.base));
        let body: Value = self.json(self.auth(req).call())?;
        Ok(serde_json::from_value(body["crons"].clone())?)
    }

    /// `POST /api/crons` with `{"expr", "tz", "job": {...}}`: the new entry.
    pub fn add_cron(&self, body: &Value) -> anyhow::Result<booster_runtime::CronView> {
        let req = self.agent.post(format!("{}/api/crons", self.base));
        let answer: Value = self.json(
            self.auth(req)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        )?;
        Ok(serde_json::from_value(answer["cron"].clone())?)
    }

    /// `POST /api/crons/{id}/{action}`: pause, resume or remove.
    pub fn cron_action(&self, id: u64, action: &str) -> anyhow::Result<()> {
        self.entry_action("crons", id, action)
    }

    /// `GET /api/kinds`: every kind's stored and effective settings.
    pub fn kinds(&self) -> anyhow::Result<Vec<booster_runtime::KindView>> {
        let req = self.agent.get(format!("{}/api/kinds", self.base));
        let body: Value = self.json(self.auth(req).call())?;
        Ok(serde_json::from_value(body["kinds"].clone())?)
    }

    /// `PUT /api/kinds/{kind}` with the kind's whole settings (None
    /// clears them): the kind's view after.
    pub fn store_kind(
        &self,
        kind: &str,
        settings: Option<&booster_runtime::KindSettings>,
    ) -> anyhow::Result<Option<booster_runtime::KindView>> {
        let path: String = url_path_segment(kind);
        let req = self.agent.put(format!("{}/api/kinds/{path}", self.base));
        let answer: Value = self.json(
            self.auth(req)
                .header("Content-Type", "application/json")
                .send(serde_json::to_string(&settings)?),
        )?;
        Ok(serde_json::from_value(answer["settings"].clone())?)
    }

    /// `GET /api/settings/retention`: the periods that apply.
    pub fn retention(&self) -> anyhow::Result<booster_runtime::Retention> {
        let req = self
            .agent
            .get(format!("{}/api/settings/retention", self.base));
        Ok(serde_json::from_value(self.json(self.auth(req).call())?)?)
    }

    /// `PUT /api/settings/retention` with the periods to change (the
    /// server keeps the others): the periods stored.
    pub fn set_retention(&self, changes: &Value) -> anyhow::Result<booster_runtime::Retention> {
        let req = self
            .agent
            .put(format!("{}/api/settings/retention", self.base));
        let answer = self.json(
            self.auth(req)
                .header("Content-Type", "application/json")
                .send(changes.to_string()),
        )?;
        Ok(serde_json::from_value(answer)?)
    }

    /// `GET /api/dirmons`.
    pub fn dirmons(&self) -> anyhow::Result<Vec<booster_runtime::DirmonView>> {
        let req = self.agent.get(format!("{}/api/dirmons", self.base));
        let body: Value = self.json(self.auth(req).call())?;
        Ok(serde_json::from_value(body["dirmons"].clone())?)
    }

    /// `POST /api/dirmons` with `{"pattern", "archive", "settle_ms",
    /// "options"}`: the new entry.
    pub fn add_dirmon(&self, body: &Value) -> anyhow::Result<booster_runtime::DirmonView> {
        let req = self.agent.post(format!("{}/api/dirmons", self.base));
        let answer: Value = self.json(
            self.auth(req)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        )?;
        Ok(serde_json::from_value(answer["dirmon"].clone())?)
    }

    /// `POST /api/dirmons/{id}/{action}`: pause, resume or remove.
    pub fn dirmon_action(&self, id: u64, action: &str) -> anyhow::Result<()> {
        self.entry_action("dirmons", id, action)
    }

    /// `POST /api/{entries}/{id}/{action}` of a cron or dirmon entry.
    fn entry_action(&self, entries: &str, id: u64, action: &str) -> anyhow::Result<()> {
        let req = self
            .agent
            .post(format!("{}/api/{entries}/{id}/{action}", self.base));
        self.ok(self.auth(req).send_empty())?;
        Ok(())
    }

    pub fn destroy(&self, id: u64) -> anyhow::Result<()> {
        let req = self.agent.delete(format!("{}/api/jobs/{id}", self.base));
        self.ok(self.auth(req).call())?;
        Ok(())
    }

    pub fn workers(&self) -> anyhow::Result<Vec<WorkerView>> {
        let req = self.agent.get(format!("{}/api/workers", self.base));
        let body: Value = self.json(self.auth(req).call())?;
        Ok(serde_json::from_value(body["workers"].clone())?)
    }

    /// The processes working on the node's jobs (`GET /api/workers`).
    pub fn processes(&self) -> anyhow::Result<Vec<crate::serve::view::ProcessView>> {
        let req = self.agent.get(format!("{}/api/workers", self.base));
        let body: Value = self.json(self.auth(req).call())?;
        Ok(serde_json::from_value(body["processes"].clone())?)
    }

    /// Follows the job's events until `on_event` returns false or the job
    /// ends (`booster job watch JOB`). Each event is the JSON of one SSE.
    pub fn watch(&self, id: u64, on_event: impl FnMut(&Value) -> bool) -> anyhow::Result<()> {
        self.follow(id, false, on_event)
    }

    /// As `watch`, but once the stream is open it first hands `on_event` the
    /// job as it is now (`"what": "current"`), so a job that ended before the
    /// stream opened still ends the watch.
    pub fn watch_from_now(
        &self,
        id: u64,
        on_event: impl FnMut(&Value) -> bool,
    ) -> anyhow::Result<()> {
        self.follow(id, true, on_event)
    }

    fn follow(
        &self,
        id: u64,
        current_first: bool,
        mut on_event: impl FnMut(&Value) -> bool,
    ) -> anyhow::Result<()> {
        let req = self
            .agent
            .get(format!("{}/api/events", self.base))
            .query("job", id.to_string());
        let resp = self.ok(self.auth(req).call())?;
        let is_end = |event: &Value| {
            event["state"]
                .as_str()
                .and_then(|s| s.parse::<booster_runtime::JobState>().ok())
                .is_some_and(booster_runtime::JobState::is_finished)
        };
        if current_first {
            // The server subscribed before answering: nothing after this read is missed.
            let status: booster_runtime::JobStatus = match self.job(id) {
                Ok(view) => view.into(),
                // Destroyed once it finished: it has ended.
                Err(e) if JobDestroyed::finished(&e).is_some() => return Ok(()),
                Err(e) => return Err(e),
            };
            let event = crate::report::watch_json(&status, "current");
            if !on_event(&event) || is_end(&event) {
                return Ok(());
            }
        }
        let reader = BufReader::new(resp.into_body().into_with_config().reader());
        for line in reader.lines() {
            let line = line.context("the event stream broke off")?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
                continue;
            };
            if !on_event(&event) || is_end(&event) {
                break;
            }
        }
        Ok(())
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    /// A 2xx response, or the server's `{"error": ...}` as the error.
    fn ok(&self, result: Result<Response<Body>, ureq::Error>) -> anyhow::Result<Response<Body>> {
        let resp = result.map_err(|e| anyhow!("cannot reach {}: {e}", self.base))?;
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
        let message = format!(
            "{} refused ({}): {}",
            self.base,
            status.as_u16(),
            field("error").unwrap_or(&text)
        );
        match field("destroyed_state").and_then(|s| s.parse().ok()) {
            Some(state) => Err(JobDestroyed { state, message }.into()),
            None => Err(anyhow!(message)),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        result: Result<Response<Body>, ureq::Error>,
    ) -> anyhow::Result<T> {
        let resp = self.ok(result)?;
        let text = resp
            .into_body()
            .into_with_config()
            .limit(MAX_JSON_BODY_BYTES)
            .read_to_string()
            .context("cannot read the server's answer")?;
        serde_json::from_str(&text).with_context(|| format!("unexpected answer from {}", self.base))
    }
}

pub(crate) fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = crate::secret_file::read_private(path, "token file")?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    Ok(token.to_string())
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
