//! Who may talk to the server.
//!
//! - With a token file (`--token-file`), every request must carry
//!   `Authorization: Bearer TOKEN`, reads included, and may do what the
//!   token's role allows (`roles.rs`): a worker token only the worker
//!   service (`fleet/`), whose refusals are gRPC statuses with the same
//!   words; every other token the API its role allows. The only exception is
//!   the dashboard's static shell (`/` and `/assets/...`): it holds no data
//!   and is what asks the person for the token; every request it makes for
//!   data carries the token like any other client.
//! - Always: a browser request from another origin (its `Origin` header does
//!   not name the authority the request addressed: `:authority` over
//!   HTTP/2, `Host` over HTTP/1.1) is refused, so a web page elsewhere cannot drive
//!   the API through someone's browser. Without a token (loopback only) the
//!   `Host` header must be a loopback name too, which defeats DNS rebinding.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::roles::{Role, TokenSource, Tokens};

#[derive(Clone)]
pub struct Guard {
    /// The accepted tokens with their roles, when a token file is configured.
    pub tokens: Option<Arc<TokenSource>>,
}

/// Resolves the caller's [`Role`] (put into the request's extensions for
/// the routes) and refuses what that role may not do.
pub async fn check(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let authority = request_authority(&req);
    let path = req.uri().path();
    let worker_service = path.starts_with(crate::fleet::SERVICE_PATH);
    let refuse = |e: ApiError| match worker_service {
        true => crate::fleet::refusal(e.status, e.message),
        false => e.into_response(),
    };
    if let Err(e) = check_origin(req.headers(), &authority, guard.tokens.is_none()) {
        return refuse(e);
    }
    let static_shell = path == "/" || path.starts_with("/assets/");
    let role = match (&guard.tokens, static_shell) {
        // Without tokens the server is on loopback only (the exposure rule).
        (None, _) => Role::Admin,
        (Some(_), true) => Role::ReadOnly,
        (Some(tokens), false) => match check_token(req.headers(), &tokens.current()) {
            Ok(role) => role,
            Err(e) => return refuse(e),
        },
    };
    if let Err(e) = allowed(role, worker_service, req.method()) {
        return refuse(e);
    }
    req.extensions_mut().insert(role);
    next.run(req).await
}

/// What `role` may call: the worker service (worker, admin), the API's
/// reads (all but worker), its changes (submitter, admin).
fn allowed(role: Role, worker_service: bool, method: &Method) -> Result<(), ApiError> {
    let forbidden = |m: String| ApiError::new(StatusCode::FORBIDDEN, m);
    let name = role.name();
    if worker_service {
        if !role.may_work() {
            return Err(forbidden(format!(
                "this token's role is {name}: it may not lease, heartbeat or commit work; \
                 a worker needs a worker or admin token (serve --worker-token-file)"
            )));
        }
        return Ok(());
    }
    if !role.may_read() {
        return Err(forbidden(format!(
            "this token's role is {name}: it may only lease, heartbeat and commit work \
             (booster --server URL work); use a read-only, submitter or admin token for the API"
        )));
    }
    let reads = matches!(*method, Method::GET | Method::HEAD);
    if !reads && !role.may_change() {
        return Err(forbidden(format!(
            "this token's role is {name}: it may only read (GET); use a submitter or admin token"
        )));
    }
    Ok(())
}

fn check_token(headers: &HeaderMap, tokens: &Tokens) -> Result<Role, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("this server needs a token: send Authorization: Bearer TOKEN (the CLI: --token-file FILE)"))?;
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("the Authorization header must be \"Bearer TOKEN\""))?;
    tokens
        .role_of(given.trim())
        .ok_or_else(|| unauthorized("the token is not one of this server's tokens"))
}

/// The authority the client addressed: HTTP/2's `:authority` (which hyper
/// puts in the URI, and browsers send instead of `Host`), else `Host`.
fn request_authority(req: &Request) -> String {
    if let Some(authority) = req.uri().authority() {
        return authority.as_str().to_string();
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn check_origin(headers: &HeaderMap, host: &str, loopback_only: bool) -> Result<(), ApiError> {
    let forbidden = |m: String| ApiError::new(StatusCode::FORBIDDEN, m);
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

/// `host` (a Host header or a URL's authority) names this machine.
pub(crate) use booster_client::is_loopback_host;

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
