//! Stored settings over HTTP: retention periods and a kind's
//! `destroy_on_complete`, read by any API token, stored by an admin only.

use serde_json::{json, Value};

use super::commands::{bearer, with_roles, ADMIN, READER, SUBMITTER, WORKER};
use super::TestServer;

fn call(t: &TestServer, method: &str, path: &str, body: Option<&str>, token: &str) -> (u16, Value) {
    let auth = bearer(token);
    t.call(method, path, body, &[("Authorization", auth.as_str())])
}

const DAY_MS: u64 = 86_400_000;

#[test]
fn retention_is_read_by_any_api_token_and_stored_by_an_admin_only() {
    let t = with_roles(&[]);
    let path = "/api/settings/retention";
    let (status, now) = call(&t, "GET", path, None, READER);
    assert_eq!(status, 200, "{now}");
    let defaults =
        json!({"completed_ms": 7 * DAY_MS, "aborted_ms": 7 * DAY_MS, "failed_ms": 30 * DAY_MS});
    assert_eq!(now, defaults);
    let one_day = r#"{"completed_ms": 86400000}"#;
    for token in [READER, SUBMITTER, WORKER] {
        let (status, body) = call(&t, "PUT", path, Some(one_day), token);
        assert_eq!(status, 403, "{token}: {body}");
    }
    assert_eq!(call(&t, "GET", path, None, ADMIN).1, defaults);
    let (status, stored) = call(&t, "PUT", path, Some(one_day), ADMIN);
    assert_eq!(status, 200, "{stored}");
    let want = json!({"completed_ms": DAY_MS, "aborted_ms": 7 * DAY_MS, "failed_ms": 30 * DAY_MS});
    assert_eq!(stored, want);
    assert_eq!(call(&t, "GET", path, None, READER).1, want);
    assert_eq!(t.runtime().retention().completed_ms, DAY_MS);
    for (bad, says) in [
        (r#"{"failed_ms": -1}"#, "whole number of milliseconds"),
        (r#"{"failed_ms": "7d"}"#, "whole number of milliseconds"),
        (
            r#"{"failed": 5}"#,
            "give completed_ms, aborted_ms or failed_ms",
        ),
        ("[1]", "an object of periods in milliseconds"),
    ] {
        let (status, body) = call(&t, "PUT", path, Some(bad), ADMIN);
        assert_eq!(status, 400, "{bad}: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(says), "{bad}: {msg}");
    }
    assert_eq!(call(&t, "GET", path, None, READER).1, want);
}

#[test]
fn a_kind_s_destroy_on_complete_is_stored_by_an_admin_only() {
    let t = with_roles(&[]);
    let path = "/api/kinds/copy";
    let settings = r#"{"max_running": null, "retry": {"max_retries": 0, "backoff_base_ms": 1000, "jitter_percent": 0}, "lease": null, "destroy_on_complete": true}"#;
    for token in [READER, SUBMITTER] {
        let (status, body) = call(&t, "PUT", path, Some(settings), token);
        assert_eq!(status, 403, "{token}: {body}");
    }
    let (status, body) = call(&t, "PUT", path, Some(settings), ADMIN);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["stored"]["destroy_on_complete"], true);
    let (_, kinds) = call(&t, "GET", "/api/kinds", None, READER);
    assert_eq!(
        kinds["kinds"][0]["effective"]["destroy_on_complete"], true,
        "{kinds}"
    );
}
