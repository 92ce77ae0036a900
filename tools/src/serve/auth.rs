//! Who may talk to the server.
//!
//! - With a token (`--token-file`), every request must carry
//!   `Authorization: Bearer TOKEN`, reads included. The only exception is
//!   the dashboard's static shell (`/` and `/assets/...`): it holds no data
//!   and is what asks the person for the token; every request it makes for
//!   data carries the token like any other client.
//! - Always: a browser request from another origin (its `Origin` header does
//!   not name this server) is refused, so a web page elsewhere cannot drive
//!   the API through someone's browser. Without a token (loopback only) the
//!   `Host` header must be a loopback name too, which defeats DNS rebinding.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

#[derive(Clone)]
pub struct Guard {
    /// The bearer token, when one is configured.
    pub token: Option<Arc<str>>,
}

pub async fn check(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    if let Err(e) = check_origin(req.headers(), guard.token.is_none()) {
        return e.into_response();
    }
    let path = req.uri().path();
    let static_shell = path == "/" || path.starts_with("/assets/");
    if let (Some(token), false) = (&guard.token, static_shell) {
        if let Err(e) = check_token(req.headers(), token) {
            return e.into_response();
        }
    }
    next.run(req).await
}

fn check_token(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("this server needs a token: send Authorization: Bearer TOKEN (the CLI: --token-file FILE)"))?;
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("the Authorization header must be \"Bearer TOKEN\""))?;
    if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(unauthorized("the token is not this server's token"))
    }
}

/// Compares without an early exit, so response time says nothing about how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_origin(headers: &HeaderMap, loopback_only: bool) -> Result<(), ApiError> {
    let forbidden = |m: String| ApiError::new(StatusCode::FORBIDDEN, m);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or("");
        if authority != host {
            return Err(forbidden(format!(
                "cross-origin request from {origin:?} refused: use the dashboard this server serves"
            )));
        }
    }
    if loopback_only && !is_loopback_host(host) {
        return Err(forbidden(format!(
            "host {host:?} is not a loopback name; this server listens on loopback only"
        )));
    }
    Ok(())
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_are_recognised_and_others_are_not() {
        for h in ["localhost:7878", "127.0.0.1:1", "[::1]:80", "localhost"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example:7878",
            "10.0.0.1:7878",
            "",
            "127.0.0.1.evil.example",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
