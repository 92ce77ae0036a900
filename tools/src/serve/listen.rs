//! The exposure rule: loopback by default; any other address only with a
//! bearer token and TLS, since uploads carry the records the store encrypts
//! at rest and anyone on the network could otherwise read or change jobs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};

use super::ServeOptions;

/// A token shorter than this is refused as guessable.
pub const MIN_TOKEN_CHARS: usize = 16;

/// What `check_exposure` settled.
pub struct Exposure {
    pub listen: SocketAddr,
    pub token: Option<Arc<str>>,
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
        if opts.token_file.is_none() {
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
    let token = match &opts.token_file {
        None => None,
        Some(path) => Some(read_token(path)?),
    };
    Ok(Exposure { listen, token, tls })
}

fn read_token(path: &std::path::Path) -> anyhow::Result<Arc<str>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.trim();
    if token.chars().count() < MIN_TOKEN_CHARS || token.contains(char::is_whitespace) {
        bail!(
            "the token in {} must be one word of at least {MIN_TOKEN_CHARS} characters; \
             make one with: head -c 32 /dev/urandom | base64 > {}",
            path.display(),
            path.display()
        );
    }
    Ok(Arc::from(token))
}
