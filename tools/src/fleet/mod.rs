//! The fleet (issue 13): worker processes on any host work on one node's
//! jobs. The node is `booster serve`; its worker service
//! `booster.worker.v1.Worker` (gRPC over HTTP/2, tonic with `prost`
//! messages, no `protoc`) shares `serve`'s listener, TLS and tokens.
//!
//! - [`proto`]: the messages.
//! - [`node`]: the service, calling `Runtime::remote_*`.
//! - `client`, `proto`: a worker's connection to a node and the messages
//!   (booster-client's, re-exported).
//! - `refusals`: the node's bounded log of the calls it refused.
//! - [`work`]: `booster --server URL work`, the worker process.
//!
//! ```text
//! booster serve --workers 0 --listen 0.0.0.0:7878 --token-file admin \
//!     --worker-token-file workers --tls-cert cert.pem --tls-key key.pem
//! BOOSTER_CA_CERT=cert.pem booster --server https://node:7878 \
//!     --token-file worker-token work --workers 8
//! ```

pub mod node;
mod refusals;
pub mod work;

/// The messages and the worker's channel live in booster-client, with
/// the worker loop: one definition for the node and every worker.
pub use booster_client::{node as client, proto};

use axum::http::StatusCode;
use axum::response::Response;

pub use booster_client::node::SERVICE_PATH;

/// A refusal of the auth layer (`serve/auth.rs`) as a gRPC status, so a
/// worker reads the same words an API client would.
pub fn refusal(code: StatusCode, message: String) -> Response {
    let status = match code {
        StatusCode::UNAUTHORIZED => tonic::Status::unauthenticated(message),
        StatusCode::FORBIDDEN => tonic::Status::permission_denied(message),
        _ => tonic::Status::invalid_argument(message),
    };
    status.into_http::<axum::body::Body>()
}
