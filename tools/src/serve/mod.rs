//! `booster serve`: the runtime plus an HTTP server on the same tokio
//! runtime: the JSON control API, server-sent job events, Prometheus
//! metrics and the dashboard page.
//!
//! ```text
//! booster serve                                   # http://127.0.0.1:7878/
//! booster serve --listen 0.0.0.0:7878 --token-file token \
//!     --tls-cert cert.pem --tls-key key.pem       # reachable from elsewhere
//! ```
//!
//! Routes call the `Runtime` directly; the tests run them over a real one
//! (`serve/tests/`), moving jobs step by step with a gated kind.

mod api;
pub(crate) mod auth;
mod bulk;
mod connections;
mod cron;
pub(crate) mod dashboard;
mod dirmon;
mod download;
mod error;
mod events;
mod history;
mod listen;
mod metrics;
pub mod roles;
mod settings;
mod throughput;
mod upload;
pub mod view;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use booster_runtime::{Runtime, RuntimeOptions};

pub use connections::ConnectionLimits;
pub use listen::check_exposure;

/// Bodies other than an upload may not exceed this.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long in-flight requests get to finish on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What `booster serve` was asked for (besides the runtime's options).
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// e.g. "127.0.0.1:7878". Anything but loopback needs a token and TLS.
    pub listen: String,
    /// File holding the bearer token every request must carry (admin), or
    /// `ROLE TOKEN` lines.
    pub token_file: Option<PathBuf>,
    /// Worker tokens, one a line (`--worker-token-file`): the worker
    /// service only.
    pub worker_token_file: Option<PathBuf>,
    /// Read-only tokens, one a line (`--read-token-file`).
    pub read_token_file: Option<PathBuf>,
    /// PEM certificate chain for HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    pub tls_key: Option<PathBuf>,
    /// The only commands `exec` jobs may run (`--exec-allow`, exact
    /// strings). Empty: this server runs no commands.
    pub exec_allow: Vec<String>,
    /// Connection limits and timeouts.
    pub limits: ConnectionLimits,
    /// The dirmon watcher (`--dirmon-allow`); None: no files are taken.
    pub dirmon: Option<crate::dirmon::Config>,
}

impl ServeOptions {
    pub fn token_files(&self) -> roles::TokenFiles {
        roles::TokenFiles {
            admin: self.token_file.clone(),
            worker: self.worker_token_file.clone(),
            read: self.read_token_file.clone(),
        }
    }
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            listen: "127.0.0.1:7878".to_string(),
            token_file: None,
            worker_token_file: None,
            read_token_file: None,
            tls_cert: None,
            tls_key: None,
            exec_allow: Vec::new(),
            limits: ConnectionLimits::default(),
            dirmon: None,
        }
    }
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    /// The commands `exec` jobs may run (`--exec-allow`).
    pub exec_allow: Arc<[String]>,
    /// Where dirmon entries added over HTTP may watch and archive
    /// (`--dirmon-allow`, resolved); empty: none may be added.
    pub dirmon_allow: Arc<[std::path::PathBuf]>,
    /// Turns true when the server stops, so event streams end instead of
    /// holding the graceful shutdown open.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Per-minute counts for the dashboard's charts (restarts empty).
    pub history: Arc<history::History>,
    /// Running jobs' recent throughput (restarts empty).
    pub throughput: Arc<throughput::Throughput>,
    /// The tokens in force, when the server has token files (the metrics
    /// count their failed reloads).
    pub tokens: Option<Arc<roles::TokenSource>>,
}

/// The whole HTTP surface over `runtime`; with `tokens`, every data
/// request needs one and may do what its role allows.
pub fn router(
    runtime: Runtime,
    tokens: Option<Arc<roles::TokenSource>>,
    exec_allow: Arc<[String]>,
    dirmon_allow: Arc<[std::path::PathBuf]>,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Router {
    let history = Arc::new(history::History::new(history::now_ms()));
    let throughput = Arc::new(throughput::Throughput::default());
    history::spawn_sampler(
        runtime.clone(),
        history.clone(),
        throughput.clone(),
        stopping.clone(),
    );
    let state = AppState {
        runtime,
        exec_allow,
        dirmon_allow,
        stopping,
        history,
        throughput,
        tokens: tokens.clone(),
    };
    let guard = auth::Guard { tokens };
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/jobs", get(api::list).post(api::create))
        .route(
            "/api/jobs/{id}",
            get(api::show).patch(api::patch).delete(api::destroy),
        )
        .route(
            "/api/jobs/{id}/input",
            put(upload::put_input).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/jobs/{id}/output", get(download::get_output))
        .route("/api/jobs/{id}/errors", get(download::get_errors))
        .route("/api/jobs/{id}/throughput", get(throughput::get_throughput))
        .route("/api/jobs/{id}/{action}", post(api::action))
        .route("/api/workers", get(api::workers))
        .route("/api/history", get(history::get_history))
        .route("/api/bulk/retry-failed", post(bulk::retry_failed))
        .route("/api/kinds", get(bulk::kinds))
        .route("/api/kinds/{kind}", axum::routing::put(bulk::store_kind))
        .route("/api/kinds/{kind}/{action}", post(bulk::kind_action))
        .route(
            "/api/settings/retention",
            get(settings::retention).put(settings::store_retention),
        )
        .route("/api/incidents", get(api::incidents))
        .route("/api/crons", get(cron::list).post(cron::create))
        .route("/api/crons/{id}/{action}", post(cron::action))
        .route("/api/batches", post(api::create_batch))
        .route("/api/dirmons", get(dirmon::list).post(dirmon::create))
        .route("/api/dirmons/{id}/{action}", post(dirmon::action))
        .route("/api/events", get(events::events))
        .route(
            "/booster.worker.v1.Worker/Hello",
            post(crate::fleet::node::hello),
        )
        .route(
            "/booster.worker.v1.Worker/Lease",
            post(crate::fleet::node::lease),
        )
        .route(
            "/booster.worker.v1.Worker/Heartbeat",
            post(crate::fleet::node::heartbeat),
        )
        .route(
            "/booster.worker.v1.Worker/Commit",
            post(crate::fleet::node::commit),
        )
        .route(
            "/booster.worker.v1.Worker/Decline",
            post(crate::fleet::node::decline),
        )
        .route(
            "/booster.worker.v1.Worker/Output",
            post(crate::fleet::node::output),
        )
        .fallback(|| async {
            error::ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such route")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(guard, auth::check))
        .with_state(state)
}

/// A running HTTP server.
pub struct Server {
    pub addr: SocketAddr,
    pub tls: bool,
    handle: axum_server::Handle<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    pools: connections::Pools,
    tokens: Option<Arc<roles::TokenSource>>,
}

impl Server {
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// How many event streams (`GET /api/events`) are open now; a stream
    /// counted here is subscribed to the runtime's events.
    pub fn event_streams(&self) -> usize {
        self.pools.event_streams()
    }

    /// Reads the token files again (SIGHUP): new tokens work and removed
    /// ones are refused from the next request on. On an error the tokens
    /// in force stay. False: this server has no token files.
    pub fn reload_tokens(&self) -> anyhow::Result<bool> {
        match &self.tokens {
            Some(tokens) => tokens.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// Notes on role files that hold no token (`TokenSource::empty_roles`).
    pub fn empty_roles(&self) -> Vec<String> {
        self.tokens
            .as_ref()
            .map_or_else(Vec::new, |t| t.empty_roles())
    }

    /// Stops accepting, ends the event streams, and lets requests in flight
    /// finish for up to `grace`.
    pub async fn shutdown(self, grace: Duration) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.handle.graceful_shutdown(Some(grace));
        self.task.await.context("the HTTP server task panicked")??;
        Ok(())
    }
}

/// Checks the exposure rules, binds, and serves `runtime` in the background.
pub async fn start(runtime: Runtime, opts: &ServeOptions) -> anyhow::Result<Server> {
    let exposure = check_exposure(opts)?;
    let listener = std::net::TcpListener::bind(exposure.listen).with_context(|| {
        format!(
            "cannot listen on {}; is another server running there? pass another --listen",
            exposure.listen
        )
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let exec_allow: Arc<[String]> = opts.exec_allow.clone().into();
    let limits = opts.limits;
    let dirmon_allow = match &opts.dirmon {
        Some(config) => crate::dirmon::resolve_allow(&config.allow)?.into(),
        None => Vec::new().into(),
    };
    let tokens = exposure.tokens.clone();
    let router = router(runtime, exposure.tokens, exec_allow, dirmon_allow, stopping);
    let pools = connections::Pools::new(&limits);
    let app = connections::Gate::new(router, pools.clone());
    let idle = connections::IdleAcceptor {
        idle: limits.idle_timeout,
    };
    let handle = axum_server::Handle::new();
    let task = match &exposure.tls {
        None => {
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(idle)
                .handle(handle.clone())
                .first_request_timeout(limits.header_read_timeout);
            apply_timeouts(server.http_builder(), &limits);
            tokio::spawn(server.serve(app))
        }
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load the TLS certificate {} and key {}; both must be PEM files",
                        cert.display(),
                        key.display()
                    )
                })?;
            let mut server = axum_server::from_tcp_rustls(listener, config)?
                .map(|tls| {
                    tls.handshake_timeout(limits.header_read_timeout)
                        .acceptor(idle)
                })
                .handle(handle.clone())
                .first_request_timeout(limits.header_read_timeout);
            apply_timeouts(server.http_builder(), &limits);
            tokio::spawn(server.serve(app))
        }
    };
    Ok(Server {
        addr,
        tls: exposure.tls.is_some(),
        handle,
        task,
        stop,
        pools,
        tokens,
    })
}

/// hyper's own timeout: a request head must arrive within the header
/// timeout (also after a keep-alive response). HTTP/2 gets no keep-alive
/// pings: they would keep an idle connection from ever being idle, and a
/// dead peer is found by the idle timeout instead.
fn apply_timeouts(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    limits: &ConnectionLimits,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
}

/// `SERVE` in the data directory: "PID URL" of the `booster serve` holding
/// it, so a command refused by the lock can name `--server URL`. Best
/// effort (a hint, not a guarantee); removed when the server stops.
pub struct ServeNote(Option<std::path::PathBuf>);

pub const SERVE_NOTE: &str = "SERVE";

impl ServeNote {
    fn write(data_dir: &std::path::Path, url: &str) -> ServeNote {
        let path = data_dir.join(SERVE_NOTE);
        let text = format!("{} {url}\n", std::process::id());
        ServeNote(std::fs::write(&path, text).ok().map(|()| path))
    }

    /// The URL of the server whose process is `pid`, if its note says so.
    pub fn url_of(data_dir: &std::path::Path, pid: &str) -> Option<String> {
        let text = std::fs::read_to_string(data_dir.join(SERVE_NOTE)).ok()?;
        let (holder, url) = text.trim().split_once(' ')?;
        (holder == pid.trim()).then(|| url.to_string())
    }
}

impl Drop for ServeNote {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `booster serve`: opens the runtime on the data directory with the
/// built-in kinds (`exec` limited to `--exec-allow`) and serves it until
/// `stop` resolves (Ctrl-C or SIGTERM), then stops gracefully: no new
/// connections, event streams end, requests in flight and running slices
/// get [`SHUTDOWN_GRACE`], and the store is sealed and unlocked.
pub async fn run(
    runtime_options: RuntimeOptions,
    serve_options: ServeOptions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // Refuse a bad exposure before the data directory is even opened.
    check_exposure(&serve_options)?;
    let mut serve_options = serve_options;
    serve_options.limits = serve_options.limits.fit_to_descriptor_limit();
    let data_dir = runtime_options.data_dir.clone();
    let runtime = Runtime::open(runtime_options).await?;
    crate::commands::report_recovery(&data_dir, &runtime);
    let allowed = crate::kinds::ExecPolicy::Only(serve_options.exec_allow.clone().into());
    crate::kinds::register_builtin_with(&runtime, allowed);
    let watcher = match serve_options.dirmon.clone() {
        Some(config) => Some(crate::dirmon::Watcher::spawn(runtime.clone(), config)?),
        None => None,
    };
    let server = start(runtime.clone(), &serve_options).await?;
    let note = ServeNote::write(&data_dir, &server.url());
    eprintln!("booster serve: dashboard and API on {}/", server.url());
    if serve_options.exec_allow.is_empty() {
        eprintln!("booster serve: exec jobs are refused (no --exec-allow)");
    } else {
        eprintln!(
            "booster serve: exec jobs may run only: {:?}",
            serve_options.exec_allow
        );
    }
    server
        .empty_roles()
        .iter()
        .for_each(|n| eprintln!("booster serve: {n}"));
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(()) = async { hangup.as_mut()?.recv().await } => match server.reload_tokens() {
                Ok(true) => {
                    eprintln!("booster serve: SIGHUP: token files read again");
                    server.empty_roles().iter().for_each(|n| eprintln!("booster serve: {n}"));
                }
                Ok(false) => eprintln!("booster serve: SIGHUP: no token files to read"),
                Err(e) => eprintln!(
                    "booster serve: SIGHUP: WARNING: kept the tokens in force, the token \
                     files were not taken: {e:#}; fix the file and send SIGHUP again"
                ),
            },
        }
    }
    drop(note);
    eprintln!("booster serve: stopping");
    if let Some(watcher) = watcher {
        watcher.stop().await;
    }
    server.shutdown(SHUTDOWN_GRACE).await?;
    runtime
        .shutdown(SHUTDOWN_GRACE)
        .await
        .context("the runtime did not shut down cleanly")?;
    eprintln!("booster serve: stopped");
    Ok(())
}
