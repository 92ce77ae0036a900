//! A worker's connection to a node: the six calls of
//! `booster.worker.v1.Worker` over one tonic channel (HTTP/2; TLS for an
//! `https://` URL, trusting `BOOSTER_CA_CERT` or the web's roots), each
//! carrying the bearer token. The channel connects lazily and again after
//! a lost connection; a call made meanwhile fails `Unavailable`, and the
//! caller decides whether to try again.

use std::path::Path;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Status;

use crate::{proto, ClientError};

/// Every method of the worker service is under this path.
pub const SERVICE_PATH: &str = "/booster.worker.v1.Worker/";

/// Until `Hello` says the node's limit.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 << 20;

#[derive(Clone)]
pub struct NodeClient {
    channel: Channel,
    token: Option<MetadataValue<Ascii>>,
    max_message_bytes: usize,
}

impl NodeClient {
    /// A client of the node at `url` (`http://` or `https://`), sending
    /// `token`; `ca_cert` is a PEM certificate to trust (a self-signed
    /// node), else the web's roots. Call it inside a tokio runtime.
    pub fn new(
        url: &str,
        token: Option<&str>,
        ca_cert: Option<&Path>,
    ) -> Result<NodeClient, ClientError> {
        let url = url.trim_end_matches('/');
        let https = crate::check_server_url(url)?;
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| ClientError::Url(format!("--server {url:?} is not a URL: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(10));
        if https {
            let tls = match ca_cert {
                Some(path) => {
                    let pem = std::fs::read(path).map_err(|e| {
                        ClientError::Tls(format!(
                            "cannot read the CA certificate {}: {e}",
                            path.display()
                        ))
                    })?;
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
                }
                None => ClientTlsConfig::new().with_webpki_roots(),
            };
            endpoint = endpoint.tls_config(tls).map_err(|e| {
                ClientError::Tls(format!("cannot set up TLS for the node: {}", chain(&e)))
            })?;
        }
        let token = match token {
            None => None,
            Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| {
                ClientError::Url("the token holds characters a header cannot carry".into())
            })?),
        };
        Ok(NodeClient {
            channel: endpoint.connect_lazy(),
            token,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        })
    }

    pub async fn hello(&mut self, m: proto::HelloRequest) -> Result<proto::HelloReply, Status> {
        let reply: proto::HelloReply = self.call("Hello", m).await?;
        self.max_message_bytes = reply.max_message_bytes as usize;
        Ok(reply)
    }

    /// The largest message the node takes (its `Hello` says).
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// As a node's `Hello` of that limit would set it.
    #[cfg(test)]
    pub fn set_max_message_bytes(&mut self, bytes: usize) {
        self.max_message_bytes = bytes;
    }

    pub async fn lease(&self, m: proto::LeaseRequest) -> Result<proto::LeaseReply, Status> {
        self.call("Lease", m).await
    }

    pub async fn heartbeat(
        &self,
        m: proto::HeartbeatRequest,
    ) -> Result<proto::HeartbeatReply, Status> {
        self.call("Heartbeat", m).await
    }

    pub async fn commit(&self, m: proto::CommitRequest) -> Result<proto::CommitReply, Status> {
        self.call("Commit", m).await
    }

    pub async fn decline(&self, m: proto::DeclineRequest) -> Result<proto::DeclineReply, Status> {
        self.call("Decline", m).await
    }

    pub async fn output(&self, m: proto::OutputRequest) -> Result<proto::OutputReply, Status> {
        self.call("Output", m).await
    }

    async fn call<M1, M2>(&self, method: &str, m: M1) -> Result<M2, Status>
    where
        M1: prost::Message + Send + Sync + 'static,
        M2: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("cannot reach the node: {}", chain(&e))))?;
        let mut req = tonic::Request::new(m);
        if let Some(token) = &self.token {
            req.metadata_mut().insert("authorization", token.clone());
        }
        let path = PathAndQuery::try_from(format!("{SERVICE_PATH}{method}"))
            .map_err(|e| Status::internal(e.to_string()))?;
        let codec = crate::codec::SizedCodec::<M1, M2>::default();
        grpc.unary(req, path, codec).await.map(|r| r.into_inner())
    }
}

/// An error with its causes, as one line (a TLS error is several deep).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// A status as one line, with the transport's causes when it has them.
pub fn describe(status: &Status) -> String {
    match std::error::Error::source(status) {
        Some(cause) => format!("{}: {}", status.message(), chain(cause)),
        None => status.message().to_string(),
    }
}
