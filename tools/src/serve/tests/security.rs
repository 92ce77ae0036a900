//! Exposure, tokens, TLS, origins and the page's escaping.

use std::path::{Path, PathBuf};

use super::{TestServer, TOKEN};
use crate::serve::{check_exposure, ServeOptions};

/// A self-signed certificate for 127.0.0.1 / localhost, written as PEM files.
pub fn write_self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn opts(listen: &str) -> ServeOptions {
    ServeOptions {
        listen: listen.to_string(),
        ..ServeOptions::default()
    }
}

#[test]
fn a_non_loopback_address_without_token_and_tls_is_refused_saying_why() {
    let err = check_exposure(&opts("0.0.0.0:7878"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("refusing to listen on 0.0.0.0:7878"), "{err}");
    assert!(
        err.contains("--token-file") && err.contains("--tls-cert"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    crate::secret_file::write_private(&token, TOKEN.as_bytes()).unwrap();
    let mut token_only = opts("192.168.1.5:7878");
    token_only.token_file = Some(token.clone());
    let err = check_exposure(&token_only).err().unwrap().to_string();
    assert!(
        err.contains("--tls-cert") && !err.contains("--token-file"),
        "{err}"
    );

    let (cert, key) = write_self_signed(dir.path());
    let mut both = token_only.clone();
    both.tls_cert = Some(cert);
    both.tls_key = Some(key);
    assert!(check_exposure(&both).is_ok());
    assert!(check_exposure(&opts("127.0.0.1:7878")).is_ok());
    assert!(check_exposure(&opts("[::1]:7878")).is_ok());
}

#[test]
fn a_short_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    crate::secret_file::write_private(&token, b"abc\n").unwrap();
    let mut o = opts("127.0.0.1:0");
    o.token_file = Some(token);
    let err = check_exposure(&o).err().unwrap().to_string();
    assert!(err.contains("at least 16 characters"), "{err}");
}

#[test]
fn with_a_token_every_data_request_needs_it() {
    let t = TestServer::start_with(true, false);
    let bearer = format!("Bearer {TOKEN}");
    for path in [
        "/api/jobs",
        "/healthz",
        "/metrics",
        "/api/workers",
        "/api/jobs/1",
        "/api/events",
    ] {
        let (status, body) = t.call("GET", path, None, &[]);
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
        let (status, _) = t.call(
            "GET",
            path,
            None,
            &[("Authorization", "Bearer wrong-token-0000000000")],
        );
        assert_eq!(status, 401, "{path}");
    }
    let (status, _) = t.call("POST", "/api/jobs", Some(r#"{"kind":"copy"}"#), &[]);
    assert_eq!(status, 401);
    let (status, _) = t.call("GET", "/api/jobs", None, &[("Authorization", &bearer)]);
    assert_eq!(status, 200);
    // The page shell carries no data and is what asks for the token.
    assert_eq!(t.call("GET", "/", None, &[]).0, 200);
    assert_eq!(t.call("GET", "/assets/app.js", None, &[]).0, 200);
}

#[test]
fn the_remote_client_speaks_https_with_a_token() {
    let t = TestServer::start_with(true, true);
    assert!(t.url.starts_with("https://127.0.0.1:"), "{}", t.url);
    let token_file = t.dir().join("token");
    let client = crate::remote::connect(&crate::remote::RemoteOptions {
        server: t.url.clone(),
        token_file: Some(token_file.clone()),
        ca_cert: Some(t.dir().join("cert.pem")),
    })
    .unwrap();
    let id = client.create(&serde_json::json!({"kind": "copy"})).unwrap();
    client.upload(id, &mut &b"a\nb\nc\n"[..], None).unwrap();
    assert_eq!(client.job(id).unwrap().records_in, 3);

    let no_token = crate::remote::connect(&crate::remote::RemoteOptions {
        server: t.url.clone(),
        token_file: None,
        ca_cert: Some(t.dir().join("cert.pem")),
    })
    .unwrap();
    let err = no_token.jobs(&Default::default()).unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");

    let untrusting = crate::remote::connect(&crate::remote::RemoteOptions {
        server: t.url.clone(),
        token_file: Some(token_file),
        ca_cert: None,
    })
    .unwrap();
    assert!(
        untrusting.jobs(&Default::default()).is_err(),
        "an unknown certificate must not be trusted"
    );
}

#[test]
fn a_request_from_another_origin_or_host_is_refused() {
    let t = TestServer::start();
    let (status, body) = t.call(
        "POST",
        "/api/jobs",
        Some(r#"{"kind":"copy"}"#),
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(status, 403, "{body}");
    let (status, _) = t.call("GET", "/api/jobs", None, &[("Host", "evil.example:7878")]);
    assert_eq!(
        status, 403,
        "DNS rebinding: a non-loopback Host on a loopback server"
    );
    let same_origin = t.url.clone();
    let (status, _) = t.call("GET", "/api/jobs", None, &[("Origin", &same_origin)]);
    assert_eq!(status, 200);
    assert!(t.get("/api/jobs").1["jobs"].as_array().unwrap().is_empty());
}

#[test]
fn the_page_is_served_with_a_policy_that_forbids_inline_script() {
    let t = TestServer::start();
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let mut resp = agent.get(format!("{}/", t.url)).call().unwrap();
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = resp.body_mut().read_to_string().unwrap();
    assert!(html.contains("<script src=\"/assets/app.js\"></script>"));
    // Every script of ours (uPlot is vendored and draws on a canvas).
    let ours = crate::serve::dashboard::ASSETS
        .iter()
        .filter(|(name, _, _)| name.ends_with(".js") && !name.starts_with("uPlot"));
    for (name, _, js) in ours {
        assert!(html.contains(&format!("<script src=\"/assets/{name}\"></script>")));
        for sink in [
            ".innerHTML",
            ".outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(
                !js.contains(sink),
                "{name} must build the page from text, found {sink}"
            );
        }
    }
}

/// One request over TLS with HTTP/2, as a browser sends it: the authority
/// only in `:authority`, no `Host` header. Returns the status.
fn h2_request(t: &TestServer, method: &str, path: &str, origin: &str, body: &str) -> u16 {
    use std::sync::Arc;
    let addr = t.url.trim_start_matches("https://").to_string();
    let pem = std::fs::read(t.dir().join("cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "HTTP/2 was negotiated"
        );
        let (mut send, conn) = h2::client::handshake(tls).await.unwrap();
        tokio::spawn(conn);
        let req = axum::http::Request::builder()
            .method(method)
            .uri(format!("https://{addr}{path}"))
            .header("origin", origin)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let (resp, mut stream) = send.send_request(req, false).unwrap();
        stream.send_data(bytes_of(body), true).unwrap();
        resp.await.unwrap().status().as_u16()
    })
}

fn bytes_of(s: &str) -> axum::body::Bytes {
    axum::body::Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn same_origin_over_tls_and_http2_reads_the_authority_pseudo_header() {
    let t = TestServer::start_with(true, true);
    let origin = t.url.clone();
    let job = r#"{"kind": "copy"}"#;
    assert_eq!(h2_request(&t, "POST", "/api/jobs", &origin, job), 201);
    assert_eq!(
        h2_request(&t, "POST", "/api/jobs", "https://evil.example", job),
        403,
        "another origin is still refused over HTTP/2"
    );
}
