//! Why a call of the JSON client failed: one variant per thing the caller
//! does differently about it, each message saying what to do.

use booster_runtime::JobState;

/// An error of [`super::Client`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client could not be set up: a server URL not to use, a CA
    /// certificate that cannot be read or is not PEM.
    #[error("{0}")]
    Setup(String),
    /// No connection: the node is down, the address is wrong, or the
    /// network is. The request never left, so trying it again later is
    /// safe.
    #[error("cannot reach {server}: {reason}; nothing was sent, try again later")]
    Unreachable { server: String, reason: String },
    /// The request was sent (or may have been) but no whole answer came:
    /// the link broke, the node stopped, or it did not answer within
    /// the client's timeout. The node may have done what was asked: a
    /// `submit` may have created the job. Look before sending it again
    /// (see [`super::Client::submit`]).
    #[error(
        "sent to {server}, but no answer came ({reason}); it may have taken effect \
         (a submitted job may exist): look before sending it again"
    )]
    NoAnswer { server: String, reason: String },
    /// The node's TLS certificate is not signed by one this client
    /// trusts (rustls: unknown issuer, bad signature).
    #[error(
        "cannot reach {server}: its TLS certificate is not trusted ({reason}); \
         pass the certificate that signed it as the CA certificate \
         (`Connect::ca_cert`; for the booster command, BOOSTER_CA_CERT)"
    )]
    UntrustedCertificate { server: String, reason: String },
    /// The node's TLS certificate is signed by one this client trusts
    /// but is not good for this connection: made for another name,
    /// expired, revoked. The node's certificate needs mending (or the
    /// client must use a name the certificate holds); another CA
    /// certificate does not help.
    #[error(
        "cannot reach {server}: its TLS certificate is refused ({reason}); \
         the node needs a certificate valid now and for this name, or connect by a name it holds"
    )]
    BadCertificate { server: String, reason: String },
    /// 401: no token, or one the node does not know.
    #[error("{server} refused (401): {message}")]
    Unauthorized { server: String, message: String },
    /// 403: the token's role may not do this, or the node's settings
    /// forbid it (a command not allowed, another origin).
    #[error("{server} refused (403): {message}")]
    Forbidden { server: String, message: String },
    /// 404: no such job (or entry). `destroyed_state` is the state a
    /// destroyed job was in when it was destroyed, while its tombstone is
    /// kept: a job its kind destroys on complete says how it ended.
    #[error("{server} refused (404): {message}")]
    NotFound {
        server: String,
        message: String,
        destroyed_state: Option<JobState>,
    },
    /// Any other refusal (400 bad request, 409 conflict, 503 busy, ...):
    /// the node's message says why.
    #[error("{server} refused ({status}): {message}")]
    Refused {
        server: String,
        status: u16,
        message: String,
    },
    /// A stream (an upload, a download, the events) broke off before its
    /// end: what came is incomplete, never to be taken for the whole.
    /// `source` (the error's source) says how.
    #[error("{what} broke off before its end; {what} is incomplete, try again")]
    BrokeOff {
        what: &'static str,
        source: std::io::Error,
    },
    /// The download could not be written where the caller asked (a full
    /// disk, a closed pipe): the node changed nothing.
    #[error("cannot write the download: {0}; the node still has it, download again")]
    Output(std::io::Error),
    /// A [`booster_runtime::JobSpec`] with a field `POST /api/jobs` does
    /// not take; nothing was sent. The message says what to do instead.
    #[error("cannot submit this job spec: {0}")]
    Spec(String),
    /// An answer that is not the API's (another server on that port, or
    /// a node of another version).
    #[error("unexpected answer from {server}: {reason}")]
    Answer { server: String, reason: String },
}

impl Error {
    /// The HTTP status of a refusal; None for an error that is not one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::NotFound { .. } => Some(404),
            Error::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The state a job finished in before it was destroyed, if this is
    /// the 404 of such a job.
    pub fn destroyed_finished(&self) -> Option<JobState> {
        match self {
            Error::NotFound {
                destroyed_state: Some(state),
                ..
            } if state.is_finished() => Some(*state),
            _ => None,
        }
    }
}

/// The variant for a refusal with `status` and the server's message.
pub(super) fn refusal(
    server: &str,
    status: u16,
    message: String,
    destroyed_state: Option<JobState>,
) -> Error {
    let server = server.to_string();
    match status {
        401 => Error::Unauthorized { server, message },
        403 => Error::Forbidden { server, message },
        404 => Error::NotFound {
            server,
            message,
            destroyed_state,
        },
        status => Error::Refused {
            server,
            status,
            message,
        },
    }
}

/// A transport failure as the variant that says what to do about it: a
/// certificate refused, no connection made (nothing sent), or no answer
/// to a request that went out (or may have).
pub(super) fn transport(server: &str, e: ureq::Error) -> Error {
    let server = server.to_string();
    if let Some(refused) = certificate_refused(&e) {
        return match refused {
            rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature => {
                Error::UntrustedCertificate {
                    server,
                    reason: format!("{refused:?}"),
                }
            }
            _ => Error::BadCertificate {
                server,
                reason: refused.to_string(),
            },
        };
    }
    let reason = e.to_string();
    if never_sent(&e) {
        Error::Unreachable { server, reason }
    } else {
        Error::NoAnswer { server, reason }
    }
}

/// Whether `e` certainly came before the request left: no address, no
/// connection. Anything else (a TLS failure too: rustls cannot say
/// whether it came in the handshake or later) may have come after the
/// node read the request, so it is not called safe to repeat.
fn never_sent(e: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    match e {
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Tls(_)
        | ureq::Error::BadUri(_) => true,
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Resolve | ureq::Timeout::Connect),
        ureq::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::AddrNotAvailable
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
        ),
        _ => false,
    }
}

/// Why rustls refused the server's certificate, if it did: ureq reports
/// it as its own `Rustls` error, or inside an I/O error from the
/// handshake.
fn certificate_refused(e: &ureq::Error) -> Option<&rustls::CertificateError> {
    let rustls_error = match e {
        ureq::Error::Rustls(inner) => Some(inner),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    match rustls_error? {
        rustls::Error::InvalidCertificate(why) => Some(why),
        _ => None,
    }
}
