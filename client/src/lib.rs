//! booster-client: a service's connection to a Booster node (`booster
//! serve`), without a store of its own. Two halves:
//!
//! - [`http`]: the JSON client. Submit jobs, upload their records, watch
//!   them and download their output over the node's HTTP API; the
//!   `booster --server` command uses the same client.
//! - [`Runtime::connect`]: work the node's jobs with your own handlers,
//!   written against booster-runtime's handler traits, as a remote
//!   worker: the node keeps the store, the scheduler and every lease;
//!   records reach this process only inside the connection (TLS off
//!   loopback) and are never written to its disk.
//!
//! Submitting and collecting (blocking; from async code, inside
//! `tokio::task::spawn_blocking`):
//!
//! ```no_run
//! # fn f() -> Result<(), booster_client::http::Error> {
//! use booster_client::http::{Client, Connect};
//!
//! let node = Client::new(&Connect {
//!     server: "https://node:7878".into(),
//!     token: Some("submitter-token-0123456789".into()),
//!     ca_cert: Some("node-ca.pem".into()), // a self-signed node; None: the web's roots
//!     ..Default::default() // timeout: DEFAULT_ANSWER_TIMEOUT
//! })?;
//! let id = node.submit(&booster_runtime::JobSpec::sliced("copy"))?;
//! node.upload(id, &mut std::fs::File::open("in.txt").expect("input"), None)?;
//! // Ok only once the job has finished; a stream cut short is `BrokeOff`.
//! node.watch_from_now(id, |_| true)?;
//! let mut out = std::fs::File::create("out.txt").expect("output");
//! node.download(id, "main", &mut out)?;
//! # Ok(()) }
//! ```
//!
//! Working jobs:
//!
//! ```no_run
//! # async fn f() -> Result<(), booster_client::ClientError> {
//! use std::sync::Arc;
//! use booster_runtime::{HandlerError, JobContext, RecordHandler};
//!
//! struct Upper;
//! impl RecordHandler for Upper {
//!     fn process(&self, _: &JobContext<'_>, record: &[u8], out: &mut Vec<Vec<u8>>)
//!         -> Result<(), HandlerError> {
//!         out.push(record.to_ascii_uppercase());
//!         Ok(())
//!     }
//! }
//!
//! let mut service = booster_client::Runtime::connect("https://node:7878", Some("worker-token"))?;
//! service.register_sliced("upper", Arc::new(Upper));
//! let opts = booster_client::WorkOptions { threads: 4, ..Default::default() };
//! service.work(opts, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod codec;
pub mod http;
mod log;
pub mod node;
pub mod proto;
mod url;
pub mod view;
pub mod worker;

pub use log::Log;
pub use url::{check_server_url, is_loopback_host};
pub use worker::{Handler, Runtime, WorkOptions};

/// This crate's `booster` version: a worker and its node must match.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wire protocol of `booster.worker.v1.Worker` this build speaks; a
/// peer speaking another is refused at `Hello`, naming both. 3: a
/// slice's records packed as the store keeps them, zstd-compressed
/// (`proto::PackedRecords`), both ways; 2: as one `RecordBlob`; 1:
/// `repeated bytes`, one per record. Two builds of one `VERSION` can
/// differ in it.
pub const PROTOCOL: u32 = 3;

/// The zstd level a worker packs its output at: the store's default
/// (`RuntimeOptions::zstd_level`); a node of another level stores its
/// workers' output at this one (ARCHITECTURE.md, "Wire protocol 3").
pub const WIRE_ZSTD_LEVEL: i32 = 1;

/// The environment variable naming a PEM certificate to trust (a node
/// with a self-signed certificate): read by `WorkOptions::default` and
/// the `booster` CLI alike.
pub const CA_CERT_ENV: &str = "BOOSTER_CA_CERT";

/// The certificate `CA_CERT_ENV` names, if set.
pub fn ca_cert_from_env() -> Option<std::path::PathBuf> {
    ca_cert_from(std::env::var_os(CA_CERT_ENV))
}

/// The certificate a value of `CA_CERT_ENV` names: `None` unset (or set
/// empty, as unset).
pub fn ca_cert_from(value: Option<std::ffi::OsString>) -> Option<std::path::PathBuf> {
    value.filter(|v| !v.is_empty()).map(Into::into)
}

/// The protocol a `Hello` or its reply says; 0 is a peer from before the
/// field, which spoke protocol 1.
pub fn protocol_of(said: u32) -> u32 {
    said.max(1)
}

/// Why a connection to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL (`--server`) is not one to use.
    #[error("{0}")]
    Url(String),
    /// The CA certificate or the TLS setup.
    #[error("{0}")]
    Tls(String),
    /// The node answered and refused: trying again changes nothing.
    #[error("{0}")]
    Refused(String),
    /// The worker's threads could not start.
    #[error("cannot start the worker's threads: {0}")]
    Threads(#[from] std::io::Error),
}
