//! The API behind the dashboard's pages, over the real runtime: pages of
//! jobs, allowed actions, download links, every error page by page, bulk
//! actions and who may take them, per-minute history, where workers run.

use std::time::Duration;

use booster_runtime::{JobSpec, Runtime, RuntimeOptions};
use booster_tools::serve::{start, ServeOptions, Server};
use serde_json::{json, Value};

const ADMIN: &str = "admin-token-0123456789abcdef";
const SUBMITTER: &str = "submitter-token-0123456789abcdef";

/// The runtime with the built-in kinds, served on 127.0.0.1:0 with an
/// admin and a worker token.
struct Served {
    rt: tokio::runtime::Runtime,
    runtime: Option<Runtime>,
    server: Option<Server>,
    url: String,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start() -> Served {
        Served::start_with(|_| {})
    }

    /// `start`, the runtime's options changed by `tune` first.
    fn start_with(tune: impl FnOnce(&mut RuntimeOptions)) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let tokens = dir.path().join("tokens");
        booster_tools::secret_file::write_private(
            &tokens,
            format!("admin {ADMIN}\nsubmitter {SUBMITTER}\n").as_bytes(),
        )
        .unwrap();
        let (runtime, server) = rt.block_on(async {
            let mut opts = RuntimeOptions::new(dir.path().join("data"));
            opts.workers = 2;
            tune(&mut opts);
            let runtime = Runtime::open(opts).await.unwrap();
            booster_tools::kinds::register_builtin(&runtime);
            let serve = ServeOptions {
                listen: "127.0.0.1:0".into(),
                token_file: Some(tokens),
                ..ServeOptions::default()
            };
            let server = start(runtime.clone(), &serve).await.unwrap();
            (runtime, server)
        });
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Served {
            url: server.url(),
            rt,
            runtime: Some(runtime),
            server: Some(server),
            agent,
            _dir: dir,
        }
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().unwrap()
    }

    /// (status, JSON body) of a request with `token`.
    fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {token}"));
        let resp = match body {
            Some(b) => self.agent.run(
                req.header("Content-Type", "application/json")
                    .body(b.to_string())
                    .unwrap(),
            ),
            None => self
                .agent
                .run(req.body(booster_tests::cli::NO_BODY).unwrap()),
        }
        .unwrap();
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, ADMIN, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// A sliced job with `lines` as its input, run to its end.
    fn run_job(&self, kind: &str, properties: Value, lines: &[String], slice: usize) -> u64 {
        self.rt.block_on(async {
            let mut spec = JobSpec::sliced(kind);
            spec.shape = booster_runtime::JobShape::Sliced {
                slice_size: Some(slice),
                collect_errors: true,
            };
            // `properties.categories`: the job's own output categories.
            if let Some(names) = properties["categories"].as_array() {
                let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
                spec = spec.with_categories(&names);
            }
            spec.properties = properties;
            let rt = self.runtime();
            let id = rt.submit(spec).await.unwrap();
            let mut up = rt.upload(id).await.unwrap();
            for (i, line) in lines.iter().enumerate() {
                if line.starts_with('!') {
                    up.push_rejected(line.clone().into_bytes(), i as u64 + 1, "bad line".into())
                        .await
                        .unwrap();
                } else {
                    up.push_line(line.clone().into_bytes(), i as u64 + 1)
                        .await
                        .unwrap();
                }
            }
            up.finish().await.unwrap();
            rt.wait(id).await.unwrap();
            id
        })
    }

    /// A sliced job of `kind` scheduled an hour from now: it stays put.
    fn scheduled_job(&self, kind: &str) -> u64 {
        let mut spec = JobSpec::sliced(kind);
        spec.run_at = Some(std::time::SystemTime::now() + Duration::from_secs(3600));
        self.rt.block_on(self.runtime().submit(spec)).unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let (server, runtime) = (self.server.take(), self.runtime.take());
        self.rt.block_on(async {
            if let Some(server) = server {
                let _ = server.shutdown(Duration::ZERO).await;
            }
            if let Some(runtime) = runtime {
                let _ = runtime.shutdown(Duration::from_secs(10)).await;
            }
        });
    }
}

fn ids(list: &Value) -> Vec<u64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap_or_else(|| j.as_u64().unwrap()))
        .collect()
}

#[test]
fn job_pages_go_from_the_newest_to_the_oldest_with_before() {
    let t = Served::start();
    for _ in 0..7 {
        t.scheduled_job("copy");
    }
    let first = t.get("/api/jobs?limit=3");
    assert_eq!(ids(&first["jobs"]), vec![5, 6, 7], "{first}");
    assert_eq!(first["total"], 7);
    assert_eq!(first["next_before"], 5);
    let second = t.get("/api/jobs?limit=3&before=5");
    assert_eq!(ids(&second["jobs"]), vec![2, 3, 4]);
    assert_eq!(second["next_before"], 2);
    let last = t.get("/api/jobs?limit=3&before=2");
    assert_eq!(ids(&last["jobs"]), vec![1]);
    assert_eq!(last["next_before"], Value::Null, "the oldest page ends it");
    let (status, body) = t.call("GET", "/api/jobs?limit=0", ADMIN, None);
    assert_eq!(status, 400, "{body}");
    let all = t.get("/api/jobs");
    assert_eq!(
        ids(&all["jobs"]),
        (1..=7).collect::<Vec<_>>(),
        "no limit: the newest 100, in id order"
    );
}

#[test]
fn a_job_says_which_actions_its_state_allows() {
    let t = Served::start();
    let waiting = t.scheduled_job("copy");
    let done = t.run_job("copy", json!({}), &["a".into()], 10);
    let actions = |id: u64| t.get(&format!("/api/jobs/{id}"))["allowed_actions"].clone();
    assert_eq!(
        actions(waiting),
        json!(["pause", "abort", "fail", "destroy"])
    );
    assert_eq!(actions(done), json!(["destroy"]));
    let (status, _) = t.call("POST", &format!("/api/jobs/{waiting}/pause"), ADMIN, None);
    assert_eq!(status, 200);
    assert_eq!(
        actions(waiting),
        json!(["resume", "abort", "fail", "destroy"])
    );
}

#[test]
fn a_job_lists_its_origin_and_a_download_link_per_category() {
    let t = Served::start();
    let lines: Vec<String> = vec!["a".into(), "!b".into(), "c".into()];
    let props = json!({"input": "/data/customers.csv", "format": "lines"});
    let id = t.run_job("copy", props, &lines, 10);
    let job = t.get(&format!("/api/jobs/{id}"));
    assert_eq!(
        job["details"],
        json!([
            {"label": "input", "value": "/data/customers.csv"},
            {"label": "format", "value": "lines"}
        ])
    );
    let links: Vec<(String, u64)> = job["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["href"].as_str().unwrap().to_string(),
                l["records"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        links,
        vec![
            (format!("/api/jobs/{id}/output?category=main"), 2),
            (format!("/api/jobs/{id}/output?category=errors"), 1),
        ]
    );
}

#[test]
fn a_jobs_own_categories_are_downloads_between_the_output_and_the_errors() {
    let t = Served::start();
    let props = json!({"categories": ["review", "audit"]});
    let id = t.run_job("copy", props, &["a".into()], 10);
    let job = t.get(&format!("/api/jobs/{id}"));
    let categories: Vec<&str> = job["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["category"].as_str().unwrap())
        .collect();
    assert_eq!(categories, vec!["main", "audit", "review", "errors"]);
}

#[test]
fn every_error_of_a_job_pages_through_the_api_in_input_order() {
    let t = Served::start();
    let lines: Vec<String> = (1..=150)
        .map(|i| {
            if i % 5 == 0 {
                format!("ok {i}")
            } else {
                format!("!bad {i}")
            }
        })
        .collect();
    let id = t.run_job("copy", json!({}), &lines, 40);
    let mut seen = Vec::new();
    let mut offset = Some(0);
    while let Some(at) = offset {
        let page = t.get(&format!("/api/jobs/{id}/errors?offset={at}&limit=50"));
        assert_eq!(page["total"], 120, "{page}");
        for e in page["errors"].as_array().unwrap() {
            seen.push(e["line"].as_u64().unwrap());
            assert_eq!(e["message"], "bad line");
        }
        offset = page["next_offset"].as_u64();
    }
    let expected: Vec<u64> = (1..=150).filter(|i| i % 5 != 0).collect();
    assert_eq!(seen, expected, "every error once, in input order");
    let (status, body) = t.call(
        "GET",
        &format!("/api/jobs/{id}/errors?limit=0"),
        ADMIN,
        None,
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn retry_all_failed_takes_an_admin_and_retries_every_failed_job() {
    let t = Served::start();
    let (a, b, other) = (
        t.scheduled_job("copy"),
        t.scheduled_job("noop"),
        t.scheduled_job("copy"),
    );
    for id in [a, b] {
        let (status, body) = t.call("POST", &format!("/api/jobs/{id}/fail"), ADMIN, None);
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = t.call("POST", "/api/bulk/retry-failed", SUBMITTER, None);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("only an admin token"),
        "{body}"
    );
    let (status, body) = t.call(
        "POST",
        "/api/bulk/retry-failed",
        ADMIN,
        Some(json!({"kind": "copy"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retried"], json!([a]), "only the copy job");
    let (status, body) = t.call("POST", "/api/bulk/retry-failed", ADMIN, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retried"], json!([b]));
    assert_eq!(body["more"], false);
    let state = |id: u64| t.get(&format!("/api/jobs/{id}"))["state"].clone();
    assert_eq!(
        state(other),
        "scheduled",
        "a job that had not failed is untouched"
    );
}

/// A kind filter reads a bounded number of rows per call and answers a
/// cursor; the bulk actions follow it to the end, so jobs of a kind below
/// many newer jobs of another are reached, and `more` is false once none
/// is left (before, every request rescanned the newest rows and said
/// `more` for ever).
#[test]
fn bulk_actions_by_kind_reach_jobs_below_their_row_budget() {
    let t = Served::start_with(|opts| opts.listing_rows_per_call = 100);
    let scheduled = |kind: &str, n: usize| {
        let at = std::time::SystemTime::now() + Duration::from_secs(3600);
        let specs = (0..n)
            .map(|_| JobSpec {
                run_at: Some(at),
                ..JobSpec::sliced(kind)
            })
            .collect();
        t.rt.block_on(t.runtime().submit_many(specs)).unwrap()
    };
    let old = scheduled("validate-customers", 3);
    scheduled("copy", 1200);
    let (status, body) = t.call("POST", "/api/kinds/validate-customers/pause", ADMIN, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], json!(old), "{body}");
    assert_eq!(body["more"], false, "{body}");
    for id in &old {
        let (status, body) = t.call("POST", &format!("/api/jobs/{id}/fail"), ADMIN, None);
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = t.call(
        "POST",
        "/api/bulk/retry-failed",
        ADMIN,
        Some(json!({"kind": "validate-customers"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["retried"], &body["more"]),
        (&json!(old), &json!(false))
    );
}

#[test]
fn pause_kind_pauses_that_kinds_jobs_and_refuses_an_unknown_kind() {
    let t = Served::start();
    let (a, b, other) = (
        t.scheduled_job("copy"),
        t.scheduled_job("copy"),
        t.scheduled_job("validate-customers"),
    );
    let (status, body) = t.call("POST", "/api/kinds/copy/pause", SUBMITTER, None);
    assert_eq!(status, 403, "{body}");
    let (status, body) = t.call("POST", "/api/kinds/copy/pause", ADMIN, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], json!([a, b]));
    let state = |id: u64| t.get(&format!("/api/jobs/{id}"))["state"].clone();
    assert_eq!(state(a), "paused");
    assert_eq!(state(other), "scheduled", "another kind is untouched");
    let (status, body) = t.call("POST", "/api/kinds/frobnicate/pause", ADMIN, None);
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("frobnicate"),
        "{body}"
    );
    let (status, body) = t.call("POST", "/api/kinds/copy/stop", ADMIN, None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = t.call("POST", "/api/kinds/copy/resume", ADMIN, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resumed"], json!([a, b]));
    assert_eq!(state(b), "scheduled");
}

/// The sum of one column of `GET /api/history`.
fn history_sum(t: &Served, column: &str) -> u64 {
    let h = t.get("/api/history?range=hour");
    assert_eq!(h["minute_ms"].as_array().unwrap().len(), 60);
    h[column]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .sum()
}

#[test]
fn history_counts_the_records_and_jobs_processed_and_failed_since_start() {
    let t = Served::start();
    let lines: Vec<String> = (0..30)
        .map(|i| {
            if i < 10 {
                format!("!bad {i}")
            } else {
                format!("ok {i}")
            }
        })
        .collect();
    t.run_job("copy", json!({}), &lines, 10);
    let failed = t.scheduled_job("copy");
    t.call("POST", &format!("/api/jobs/{failed}/fail"), ADMIN, None);
    // The sampler reads the counters every second: wait for it to catch up.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while history_sum(&t, "jobs_failed") < 1 || history_sum(&t, "jobs_completed") < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "history never counted the jobs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(history_sum(&t, "jobs_completed"), 1);
    assert_eq!(history_sum(&t, "jobs_failed"), 1);
    assert_eq!(history_sum(&t, "records_failed"), 10);
    assert_eq!(history_sum(&t, "records_processed"), 20);
    assert_eq!(
        t.get("/api/history?range=day")["minute_ms"]
            .as_array()
            .unwrap()
            .len(),
        1440
    );
    let (status, _) = t.call("GET", "/api/history?range=week", ADMIN, None);
    assert_eq!(status, 400);
}

#[test]
fn workers_say_their_host_pid_and_version() {
    let t = Served::start();
    let workers = t.get("/api/workers");
    let list = workers["workers"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for w in list {
        assert_eq!(w["pid"], std::process::id(), "{w}");
        assert_eq!(w["version"], env!("CARGO_PKG_VERSION"));
        assert!(!w["host"].as_str().unwrap().is_empty(), "{w}");
    }
}

/// Cron entries over HTTP (issue 14): listed for any token; added, paused,
/// resumed and removed by an admin only; a bad expression is a 400 that
/// says what to write.
#[test]
fn cron_entries_are_listed_and_changed_by_an_admin_only() {
    let t = Served::start();
    let body = json!({
        "expr": "*/5 * * * *",
        "tz": "Europe/Berlin",
        "job": {"kind": "noop", "args": {"n": 1}},
    });
    let (status, answer) = t.call("POST", "/api/crons", SUBMITTER, Some(body.clone()));
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = t.call("POST", "/api/crons", ADMIN, Some(body));
    assert_eq!(status, 201, "{answer}");
    let id = answer["id"].as_u64().unwrap();
    assert_eq!(answer["cron"]["tz"], "Europe/Berlin", "{answer}");
    assert_eq!(answer["cron"]["kind"], "noop", "{answer}");
    let (status, listed) = t.call("GET", "/api/crons", SUBMITTER, None);
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["crons"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["crons"][0]["paused"], false);

    let pause = format!("/api/crons/{id}/pause");
    let (status, answer) = t.call("POST", &pause, SUBMITTER, None);
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = t.call("POST", &pause, ADMIN, None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["cron"]["paused"], true, "{answer}");
    let (status, answer) = t.call("POST", &format!("/api/crons/{id}/resume"), ADMIN, None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["cron"]["paused"], false, "{answer}");

    let bad = json!({"expr": "every day", "job": {"kind": "noop", "args": {}}});
    let (status, answer) = t.call("POST", "/api/crons", ADMIN, Some(bad));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("fields"),
        "{answer}"
    );

    let (status, answer) = t.call("POST", &format!("/api/crons/{id}/remove"), ADMIN, None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(t.get("/api/crons")["crons"], json!([]));
    // An entry that does not exist is a 404 that says how to find them.
    let (status, answer) = t.call("POST", &format!("/api/crons/{id}/pause"), ADMIN, None);
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("booster cron list"),
        "{answer}"
    );
}

/// `"after"` in `POST /api/jobs` (issue 14): the job waits for the jobs it
/// names; an unknown policy or job is a 400 that says what to send.
#[test]
fn a_job_posted_with_after_waits_and_bad_dependencies_are_refused() {
    let t = Served::start();
    let first = t.scheduled_job("noop");
    let body =
        json!({"kind": "noop", "args": {}, "after": [first], "on_dependency_failure": "run"});
    let (status, answer) = t.call("POST", "/api/jobs", SUBMITTER, Some(body));
    assert_eq!(status, 201, "{answer}");
    let id = answer["id"].as_u64().unwrap();
    assert_eq!(t.get(&format!("/api/jobs/{id}"))["state"], "waiting");
    let bad =
        json!({"kind": "noop", "args": {}, "after": [first], "on_dependency_failure": "maybe"});
    let (status, answer) = t.call("POST", "/api/jobs", SUBMITTER, Some(bad));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("fail, abort or run"),
        "{answer}"
    );
    let unknown = json!({"kind": "noop", "args": {}, "after": [999]});
    let (status, answer) = t.call("POST", "/api/jobs", SUBMITTER, Some(unknown));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("does not exist"),
        "{answer}"
    );
}

/// `"window"` in `POST /api/jobs` (issue 14): the job's own processing
/// window is stored and shown; a bad one is a 400 that says what to send.
#[test]
fn a_job_posted_with_a_window_keeps_it_and_a_bad_window_is_refused() {
    let t = Served::start();
    let body = json!({"kind": "noop", "args": {},
                      "window": {"start": "22:00", "end": "06:00", "tz": "Europe/Berlin"}});
    let (status, answer) = t.call("POST", "/api/jobs", SUBMITTER, Some(body));
    assert_eq!(status, 201, "{answer}");
    let id = answer["id"].as_u64().unwrap();
    let shown = t.get(&format!("/api/jobs/{id}"));
    assert_eq!(
        shown["window"],
        json!({"start": "22:00", "end": "06:00", "tz": "Europe/Berlin"}),
        "{shown}"
    );
    let bad = json!({"kind": "noop", "args": {}, "window": {"start": "22", "end": "06:00"}});
    let (status, answer) = t.call("POST", "/api/jobs", SUBMITTER, Some(bad));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("\"start\": \"22:00\""),
        "{answer}"
    );
}
