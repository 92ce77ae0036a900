//! `booster --server URL jobs|job|submit|download|...`: what those
//! commands do on a local data directory, over a node's HTTP API, through
//! booster-client's JSON client (`booster_client::http`). This module only
//! turns the command's options into a connected client.

mod cli;

use std::path::{Path, PathBuf};

use anyhow::bail;

pub use booster_client::http::Client;
pub use cli::run;

/// How the command reaches a `booster serve`.
#[derive(Clone, Debug, Default)]
pub struct RemoteOptions {
    /// `http://127.0.0.1:7878` or `https://host:7878`.
    pub server: String,
    /// File holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// PEM certificate to trust (a self-signed server); default: the web's roots.
    pub ca_cert: Option<PathBuf>,
}

/// The client for `opts`: the token read from its file.
pub fn connect(opts: &RemoteOptions) -> anyhow::Result<Client> {
    // A URL not to use is refused before the token file is read.
    booster_client::check_server_url(opts.server.trim_end_matches('/'))?;
    let token = match &opts.token_file {
        None => None,
        Some(path) => Some(read_token(path)?),
    };
    Ok(Client::new(&booster_client::http::Connect {
        server: opts.server.clone(),
        token,
        ca_cert: opts.ca_cert.clone(),
        timeout: None,
    })?)
}

pub(crate) fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = crate::secret_file::read_private(path, "token file")?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    Ok(token.to_string())
}
