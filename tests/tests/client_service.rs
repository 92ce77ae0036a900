//! A Rust service's use of the node's HTTP API with only booster-client's
//! JSON client (`booster_client::http`), against a real `booster serve`
//! process: submit, upload, watch, download and list, and the refusals a
//! service must be able to tell apart (a wrong token, an untrusted
//! certificate).

use std::path::{Path, PathBuf};

use booster_client::http::{Client, Connect, Error, Event, ListFilter};
use booster_runtime::{JobShape, JobSpec, JobState};
use booster_tests::cli::{Sandbox, Serving};

const SUBMITTER: &str = "submitter-token-0123456789abcdef";

/// A token file giving `SUBMITTER` the `submitter` role.
fn token_file(sb: &Sandbox) -> PathBuf {
    let path = sb.path("tokens");
    booster_tools::secret_file::write_private(&path, format!("submitter {SUBMITTER}\n").as_bytes())
        .expect("write the token file");
    path
}

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files
/// named `NAME.pem` and `NAME.key`.
fn self_signed(sb: &Sandbox, name: &str) -> (PathBuf, PathBuf) {
    self_signed_for(sb, name, "127.0.0.1")
}

/// A self-signed certificate for `host` and its key, as `NAME.pem` and
/// `NAME.key`.
fn self_signed_for(sb: &Sandbox, name: &str, host: &str) -> (PathBuf, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec![host.to_string()])
        .expect("a self-signed certificate");
    let (cert_path, key_path) = (
        sb.path(&format!("{name}.pem")),
        sb.path(&format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.cert.pem()).expect("write the certificate");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write the key");
    (cert_path, key_path)
}

/// `booster serve` with the token file and TLS from `cert` and `key`.
fn serve_tls(sb: &Sandbox, tokens: &Path, cert: &Path, key: &Path) -> Serving {
    let args = [
        "--token-file",
        s(tokens),
        "--tls-cert",
        s(cert),
        "--tls-key",
        s(key),
    ];
    Serving::start(sb, &args)
}

fn client(server: &Serving, token: &str, ca_cert: Option<&Path>) -> Client {
    Client::new(&Connect {
        server: server.url.clone(),
        token: Some(token.to_string()),
        ca_cert: ca_cert.map(Path::to_path_buf),
        timeout: None,
    })
    .expect("a client")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[test]
fn a_service_submits_uploads_watches_downloads_and_lists_with_the_client_alone() {
    let sb = Sandbox::new();
    let tokens = token_file(&sb);
    let server = Serving::start(&sb, &["--token-file", s(&tokens)]);
    let node = client(&server, SUBMITTER, None);

    let mut spec = JobSpec::sliced("copy");
    spec.shape = JobShape::Sliced {
        slice_size: Some(100),
        collect_errors: false,
    };
    spec.description = "from a service".to_string();
    let id = node.submit(&spec).expect("submit");
    let records: Vec<String> = (0..1000).map(|i| format!("record-{i:04}")).collect();
    let input = records.join("\n") + "\n";
    let uploaded = node
        .upload(id, &mut input.as_bytes(), None)
        .expect("upload");
    assert_eq!(uploaded.records_in, 1000);
    assert_eq!(uploaded.slices_total, 10);

    let mut events = Vec::new();
    node.watch_from_now(id, |event| {
        events.push(event.clone());
        true
    })
    .expect("watch");
    let Some(Event::Job(last)) = events.last() else {
        panic!("the watch saw no job event: {events:?}");
    };
    assert_eq!(
        (last.job, last.state),
        (id, JobState::Completed),
        "the watch ends when the job does: {events:?}"
    );

    let downloaded: Vec<String> = node
        .download_records(id, "main")
        .expect("download")
        .map(|r| String::from_utf8(r.expect("a whole record")).expect("UTF-8"))
        .collect();
    assert_eq!(downloaded, records, "each record once, in input order");

    let listed = node.jobs(&ListFilter::default()).expect("list");
    let job = listed
        .iter()
        .find(|j| j.id == id)
        .expect("the job is listed");
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.description, "from a service");
    assert_eq!((job.records_in, job.records_out), (1000, 1000));
    let completed = ListFilter {
        state: Some("completed"),
        ..Default::default()
    };
    assert_eq!(node.jobs(&completed).expect("list").len(), 1);
    let failed = ListFilter {
        state: Some("failed"),
        ..Default::default()
    };
    assert!(node.jobs(&failed).expect("list").is_empty());
}

#[test]
fn a_wrong_token_is_refused_as_unauthorized_and_a_missing_job_as_not_found() {
    let sb = Sandbox::new();
    let tokens = token_file(&sb);
    let server = Serving::start(&sb, &["--token-file", s(&tokens)]);

    let wrong = client(&server, "not-a-token-of-this-node-0123", None);
    let err = wrong.jobs(&ListFilter::default()).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("refused (401)"), "{err}");
    let err = wrong.submit(&JobSpec::sliced("copy")).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");

    let right = client(&server, SUBMITTER, None);
    assert!(right.jobs(&ListFilter::default()).expect("list").is_empty());
    let err = right.job(42).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NotFound {
                destroyed_state: None,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_node_whose_certificate_is_not_trusted_is_refused_as_untrusted() {
    let sb = Sandbox::new();
    let tokens = token_file(&sb);
    let (cert, key) = self_signed(&sb, "node");
    let server = serve_tls(&sb, &tokens, &cert, &key);
    assert!(server.url.starts_with("https://"), "{}", server.url);

    // The web's roots do not include a self-signed certificate.
    let err = client(&server, SUBMITTER, None)
        .jobs(&ListFilter::default())
        .unwrap_err();
    assert!(matches!(err, Error::UntrustedCertificate { .. }), "{err:?}");
    assert!(err.to_string().contains("CA certificate"), "{err}");

    // Nor does trusting another self-signed certificate.
    let (other, _) = self_signed(&sb, "other");
    let err = client(&server, SUBMITTER, Some(&other))
        .submit(&JobSpec::sliced("copy"))
        .unwrap_err();
    assert!(matches!(err, Error::UntrustedCertificate { .. }), "{err:?}");

    // Trusting the node's own certificate works.
    let trusting = client(&server, SUBMITTER, Some(&cert));
    let id = trusting.submit(&JobSpec::sliced("copy")).expect("submit");
    assert_eq!(trusting.job(id).expect("the job").id, id);
}

#[test]
fn a_node_whose_certificate_is_for_another_name_is_refused_with_its_reason() {
    let sb = Sandbox::new();
    let tokens = token_file(&sb);
    let (cert, key) = self_signed_for(&sb, "node", "node.example");
    let server = serve_tls(&sb, &tokens, &cert, &key);
    // Trusted, but not for 127.0.0.1: another CA certificate would not help.
    let err = client(&server, SUBMITTER, Some(&cert))
        .jobs(&ListFilter::default())
        .unwrap_err();
    assert!(matches!(err, Error::BadCertificate { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("node.example") && !text.contains("CA certificate"),
        "{text}"
    );
}

#[test]
fn a_job_submitted_to_run_later_waits_for_its_time() {
    let sb = Sandbox::new();
    let tokens = token_file(&sb);
    let server = Serving::start(&sb, &["--token-file", s(&tokens)]);
    let node = client(&server, SUBMITTER, None);

    let tomorrow = std::time::SystemTime::now() + std::time::Duration::from_secs(24 * 3600);
    let mut spec = JobSpec::sliced("copy");
    spec.run_at = Some(tomorrow);
    let id = node.submit(&spec).expect("submit");
    let job = node.job(id).expect("the job");
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.run_at_ms, Some(booster_client::view::unix_ms(tomorrow)));

    // What the API cannot take is refused, not dropped: no job is made.
    let mut spec = JobSpec::sliced("copy");
    spec.expires_at = Some(tomorrow);
    let err = node.submit(&spec).unwrap_err();
    assert!(matches!(err, Error::Spec(_)), "{err:?}");
    assert_eq!(node.jobs(&ListFilter::default()).expect("list").len(), 1);
}
