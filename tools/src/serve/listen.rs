//! The exposure rule: loopback by default; any other address only with a
//! bearer token and TLS, since uploads carry the records the store encrypts
//! at rest and anyone on the network could otherwise read or change jobs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};

use super::roles::TokenSource;
use super::ServeOptions;

/// What `check_exposure` settled.
pub struct Exposure {
    pub listen: SocketAddr,
    pub tokens: Option<Arc<TokenSource>>,
    pub tls: Option<(PathBuf, PathBuf)>,
}

pub fn check_exposure(opts: &ServeOptions) -> anyhow::Result<Exposure> {
    let listen: SocketAddr = opts.listen.parse().with_context(|| {
        format!(
            "--listen {:?} is not an address and port, e.g. 127.0.0.1:7878",
            opts.listen
        )
    })?;
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together: pass both PEM files, or neither"),
    };
    if !listen.ip().is_loopback() {
        let mut missing = Vec::new();
        if opts.token_files().is_empty() {
            missing.push("--token-file FILE");
        }
        if tls.is_none() {
            missing.push("--tls-cert CERT.pem --tls-key KEY.pem");
        }
        if !missing.is_empty() {
            bail!(
                "refusing to listen on {}: it is not a loopback address, and serving beyond this \
                 machine needs {} (uploads carry sensitive records, and every request must prove \
                 who sent it); pass them, or keep the default --listen 127.0.0.1:7878",
                listen,
                missing.join(" and ")
            );
        }
    }
    let files = opts.token_files();
    let tokens = match files.is_empty() {
        true => None,
        false => Some(Arc::new(TokenSource::open(files)?)),
    };
    Ok(Exposure {
        listen,
        tokens,
        tls,
    })
}
