//! G13: no request runs a command it names, and tokens have roles.

use serde_json::json;

use super::TestServer;

pub(super) const ADMIN: &str = "admin-token-0123456789abcdef";
pub(super) const SUBMITTER: &str = "submitter-token-0123456789abcdef";
pub(super) const WORKER: &str = "worker-token-0123456789abcdef";
pub(super) const READER: &str = "reader-token-0123456789abcdef";

fn exec_job(cmd: &str) -> String {
    json!({"kind": "exec", "properties": {"cmd": cmd}}).to_string()
}

pub(super) fn with_roles(exec_allow: &[&str]) -> TestServer {
    TestServer::start_configured(|dir, opts| {
        let path = dir.join("tokens");
        let text =
            format!("# role token\nadmin {ADMIN}\nsubmitter {SUBMITTER}\nread-only {READER}\n");
        crate::secret_file::write_private(&path, text.as_bytes()).unwrap();
        opts.token_file = Some(path);
        let workers = dir.join("workers");
        crate::secret_file::write_private(&workers, format!("{WORKER}\n").as_bytes()).unwrap();
        opts.worker_token_file = Some(workers);
        opts.exec_allow = exec_allow.iter().map(|c| c.to_string()).collect();
    })
}

pub(super) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn exec_jobs_are_refused_when_the_server_allows_no_commands() {
    let t = TestServer::start();
    let (status, body) = t.call("POST", "/api/jobs", Some(&exec_job("id")), &[]);
    assert_eq!(status, 403, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("runs no commands") && msg.contains("--exec-allow"),
        "{msg}"
    );
    assert!(t.jobs_submitted() == 0, "nothing was submitted");
}

#[test]
fn only_a_listed_command_matched_exactly_may_be_submitted() {
    let t = TestServer::start_configured(|_, opts| {
        opts.exec_allow = vec!["tr a-z A-Z".to_string()];
    });
    for cmd in ["tr a-z A-Z ", "tr a-z A-Z; id", "TR a-z A-Z", "id"] {
        let (status, body) = t.call("POST", "/api/jobs", Some(&exec_job(cmd)), &[]);
        assert_eq!(status, 403, "{cmd:?}: {body}");
        assert!(body["error"]
            .as_str()
            .unwrap()
            .contains("not one this server allows"));
    }
    let (status, body) = t.call("POST", "/api/jobs", Some(r#"{"kind":"exec"}"#), &[]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(t.jobs_submitted(), 0);
    let (status, body) = t.call("POST", "/api/jobs", Some(&exec_job("tr a-z A-Z")), &[]);
    assert_eq!(status, 201, "{body}");
}

#[test]
fn only_admin_tokens_may_submit_exec_jobs() {
    let t = with_roles(&["tr a-z A-Z"]);
    let job = exec_job("tr a-z A-Z");
    let (status, body) = t.call(
        "POST",
        "/api/jobs",
        Some(&job),
        &[("Authorization", &bearer(SUBMITTER))],
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("role is submitter"),
        "{body}"
    );
    let (status, body) = t.call(
        "POST",
        "/api/jobs",
        Some(&job),
        &[("Authorization", &bearer(ADMIN))],
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_read_only_token_reads_but_changes_nothing() {
    let t = with_roles(&[]);
    let copy = r#"{"kind":"copy"}"#;
    let (status, _) = t.call(
        "POST",
        "/api/jobs",
        Some(copy),
        &[("Authorization", &bearer(SUBMITTER))],
    );
    assert_eq!(
        status, 201,
        "a submitter token submits jobs that run no command"
    );
    let reader = [("Authorization", bearer(READER))];
    let reader: Vec<(&str, &str)> = reader.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(t.call("GET", "/api/jobs", None, &reader).0, 200);
    assert_eq!(t.call("GET", "/api/jobs/1", None, &reader).0, 200);
    for (method, path, body) in [
        ("POST", "/api/jobs", Some(copy)),
        ("POST", "/api/jobs/1/pause", None),
        ("PATCH", "/api/jobs/1", Some(r#"{"priority": 1}"#)),
        ("DELETE", "/api/jobs/1", None),
        ("PUT", "/api/jobs/1/input", Some("x")),
    ] {
        let (status, resp) = t.call(method, path, body, &reader);
        assert_eq!(status, 403, "{method} {path}: {resp}");
        assert!(
            resp["error"].as_str().unwrap().contains("read-only"),
            "{resp}"
        );
    }
    assert_eq!(t.jobs_submitted(), 1);
}

#[test]
fn a_worker_token_may_not_read_or_change_anything_through_the_api() {
    let t = with_roles(&[]);
    let worker = [("Authorization", bearer(WORKER))];
    let worker: Vec<(&str, &str)> = worker.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (method, path, body) in [
        ("GET", "/api/jobs", None),
        ("GET", "/api/workers", None),
        ("GET", "/metrics", None),
        ("POST", "/api/jobs", Some(r#"{"kind":"copy"}"#)),
        ("POST", "/api/bulk/retry-failed", None),
    ] {
        let (status, resp) = t.call(method, path, body, &worker);
        assert_eq!(status, 403, "{method} {path}: {resp}");
        assert!(
            resp["error"]
                .as_str()
                .unwrap()
                .contains("may only lease, heartbeat and commit"),
            "{resp}"
        );
    }
    assert_eq!(t.jobs_submitted(), 0);
}
