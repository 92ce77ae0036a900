//! Every API route, the happy path and its refusals.

use std::io::{BufRead, BufReader};

use booster_runtime::JobState;
use booster_tests::gate::GATED;
use serde_json::json;

use super::{eventually, TestServer};

#[test]
fn a_job_is_created_uploaded_processed_and_downloaded() {
    let t = TestServer::start();
    let spec = json!({"kind": GATED, "description": "nightly customers", "slice_size": 100});
    let id = t.client().create(&spec).unwrap();
    t.upload_numbered(id, 250);
    let (status, job) = t.get(&format!("/api/jobs/{id}"));
    assert_eq!(status, 200);
    assert_eq!(job["state"], "running");
    assert_eq!(job["records_in"], 250);
    assert_eq!(job["slices_total"], 3);
    assert_eq!(job["kind"], GATED);
    assert_eq!(job["description"], "nightly customers");
    assert_eq!(job["priority"], 50);
    assert!(job["max_workers"].is_null());

    assert_eq!(t.finish(id, 250), JobState::Completed);
    let job = t.client().job(id).unwrap();
    assert_eq!(job.percent, 100.0);
    assert_eq!(job.state.as_str(), "completed");

    let mut out = Vec::new();
    t.client().download(id, "main", &mut out).unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
    assert_eq!(lines.len(), 250);
    assert_eq!(lines[0], "record 0");
    assert_eq!(lines[249], "record 249");
}

#[test]
fn a_created_job_takes_changes_before_its_input_and_starts_when_the_upload_ends() {
    let t = TestServer::start();
    let (status, created) = t.call("POST", "/api/jobs", Some(r#"{"kind": "gated"}"#), &[]);
    assert_eq!(status, 201);
    let id = created["id"].as_u64().unwrap();
    assert_eq!(created["upload"], format!("/api/jobs/{id}/input"));

    let (status, job) = t.call(
        "PATCH",
        &format!("/api/jobs/{id}"),
        Some(r#"{"priority": 5, "max_workers": 2}"#),
        &[],
    );
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["priority"], 5);
    assert_eq!(job["max_workers"], 2);
    assert_eq!(job["upload_complete"], false);
    assert_eq!(job["records_in"], 0);
    assert_eq!(job["slices_total"], 0);
    // Queued, or running once a worker ran its `before_batch` hook: either
    // way it waits for its input.
    let state = job["state"].as_str().unwrap();
    assert!(state == "queued" || state == "running", "{job}");

    let (status, job) = t.call("PUT", &format!("/api/jobs/{id}/input"), Some("a\nb\n"), &[]);
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["upload_complete"], true);
    assert_eq!(job["state"], "running");
    assert_eq!(job["records_in"], 2);
    assert_eq!(job["slices_total"], 1);

    let (status, job) = t.call(
        "PATCH",
        &format!("/api/jobs/{id}"),
        Some(r#"{"max_workers": null}"#),
        &[],
    );
    assert_eq!(status, 200);
    assert!(job["max_workers"].is_null());
}

#[test]
fn jobs_are_listed_and_filtered_by_state_kind_and_text() {
    let t = TestServer::start();
    let a = t.job_with_records("alpha payroll", 10);
    let b = t.job_with_records("beta invoices", 10);
    t.call("POST", &format!("/api/jobs/{b}/pause"), None, &[]);
    // Waits for its input: queued, and the only `copy` job.
    let gamma = t
        .client()
        .create(&json!({"kind": "copy", "description": "gamma"}))
        .unwrap();

    let ids = |path: &str| -> Vec<u64> {
        let (status, body) = t.get(path);
        assert_eq!(status, 200, "{body}");
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids("/api/jobs"), vec![a, b, gamma]);
    assert_eq!(ids("/api/jobs?state=paused"), vec![b]);
    assert_eq!(ids("/api/jobs?kind=copy"), vec![gamma]);
    assert_eq!(ids("/api/jobs?q=payroll"), vec![a]);
    assert_eq!(ids("/api/jobs?state=&kind=&q="), vec![a, b, gamma]);

    let (_, body) = t.get("/api/jobs?limit=2");
    let newest: Vec<u64> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(newest, vec![b, gamma]);
    assert_eq!(body["total"], 3);

    let (status, body) = t.get("/api/jobs?state=sleeping");
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("sleeping"),
        "{body}"
    );
}

#[test]
fn a_priority_out_of_range_is_refused_with_400() {
    let t = TestServer::start();
    for bad in [
        r#"{"kind":"copy","priority":0}"#,
        r#"{"kind":"copy","priority":101}"#,
    ] {
        let (status, body) = t.call("POST", "/api/jobs", Some(bad), &[]);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("1 (first) to 100"),
            "{body}"
        );
    }
    let id = t.job_with_records("x", 1);
    for bad in [
        r#"{"priority":500}"#,
        r#"{"priority":-1}"#,
        r#"{"priority":"high"}"#,
    ] {
        let (status, body) = t.call("PATCH", &format!("/api/jobs/{id}"), Some(bad), &[]);
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(t.job(id).priority, 50, "a refused change changed nothing");
}

#[test]
fn other_bad_requests_are_refused_with_400_and_say_why() {
    let t = TestServer::start();
    let cases = [
        ("POST", "/api/jobs", Some(r#"{"kind":"nope"}"#), "nope"),
        (
            "POST",
            "/api/jobs",
            Some(r#"{"kind":"copy","colour":"red"}"#),
            "colour",
        ),
        ("POST", "/api/jobs", Some("not json"), ""),
        (
            "POST",
            "/api/jobs",
            Some(r#"{"kind":"copy","format":"xml"}"#),
            "xml",
        ),
        (
            "POST",
            "/api/jobs",
            Some(r#"{"kind":"copy","max_workers":0}"#),
            "max_workers",
        ),
        (
            "PATCH",
            "/api/jobs/1",
            Some(r#"{"state":"completed"}"#),
            "state",
        ),
        ("GET", "/api/jobs/abc", None, "not a number"),
        (
            "GET",
            "/api/jobs/..%2F..%2Fetc%2Fpasswd/output",
            None,
            "not a number",
        ),
        (
            "GET",
            "/api/jobs/1/output?category=../../x",
            None,
            "category",
        ),
    ];
    t.job_with_records("one", 1);
    for (method, path, body, needle) in cases {
        let (status, answer) = t.call(method, path, body, &[]);
        assert_eq!(status, 400, "{method} {path}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{method} {path}: {answer}");
    }
}

#[test]
fn an_unknown_job_is_404_on_every_job_route() {
    let t = TestServer::start();
    let cases = [
        ("GET", "/api/jobs/999", None),
        ("PATCH", "/api/jobs/999", Some(r#"{"priority":3}"#)),
        ("DELETE", "/api/jobs/999", None),
        ("POST", "/api/jobs/999/pause", None),
        ("POST", "/api/jobs/999/resume", None),
        ("POST", "/api/jobs/999/abort", None),
        ("POST", "/api/jobs/999/retry", None),
        ("POST", "/api/jobs/999/fail", None),
        ("PUT", "/api/jobs/999/input", Some("a\n")),
        ("GET", "/api/jobs/999/output?category=main", None),
    ];
    for (method, path, body) in cases {
        let (status, answer) = t.call(method, path, body, &[]);
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("999"),
            "{answer}"
        );
    }
    let (status, _) = t.call("POST", "/api/jobs/1/explode", None, &[]);
    assert_eq!(status, 404);
}

#[test]
fn an_illegal_transition_is_409_and_changes_nothing() {
    let t = TestServer::start();
    let id = t.job_with_records("x", 300);
    let (status, body) = t.call("POST", &format!("/api/jobs/{id}/resume"), None, &[]);
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("resume"), "{body}");
    let (status, _) = t.call("POST", &format!("/api/jobs/{id}/retry"), None, &[]);
    assert_eq!(status, 409);
    assert_eq!(t.finish(id, 300), JobState::Completed);
    let (status, _) = t.call("POST", &format!("/api/jobs/{id}/pause"), None, &[]);
    assert_eq!(status, 409);
    assert_eq!(t.get(&format!("/api/jobs/{id}")).1["state"], "completed");
}

#[test]
fn pause_resume_fail_retry_abort_and_destroy_move_the_job() {
    let t = TestServer::start();
    let id = t.job_with_records("x", 300);
    // Running once its before-batch hook ran: resume returns it there
    // (before that, a resumed job is queued again).
    t.wait_until(id, |j| j.state == JobState::Running);
    let step = |action: &str, body: Option<&str>, want: &str| {
        let (status, job) = t.call("POST", &format!("/api/jobs/{id}/{action}"), body, &[]);
        assert_eq!(status, 200, "{action}: {job}");
        assert_eq!(job["state"], want, "{action}");
        job
    };
    step("pause", None, "paused");
    step("resume", None, "running");
    let job = step("fail", Some(r#"{"reason":"bad feed"}"#), "failed");
    assert_eq!(job["failure_reason"], "bad feed");
    step("retry", None, "running");
    step("abort", None, "aborted");

    let (status, body) = t.call("DELETE", &format!("/api/jobs/{id}"), None, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(t.get(&format!("/api/jobs/{id}")).0, 404);
}

#[test]
fn a_jsonl_line_that_is_not_json_becomes_a_record_error() {
    let t = TestServer::start();
    let (_, created) = t.call(
        "POST",
        "/api/jobs",
        Some(r#"{"kind":"copy","format":"jsonl"}"#),
        &[],
    );
    let id = created["id"].as_u64().unwrap();
    let body = "{\"a\":1}\n{broken\n[2]\n";
    let (status, job) = t.call("PUT", &format!("/api/jobs/{id}/input"), Some(body), &[]);
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["records_in"], 3);
    assert_eq!(job["records_errors"], 1);
    assert_eq!(t.finish(id, 0), JobState::Completed);
    let mut errors = Vec::new();
    t.client().download(id, "errors", &mut errors).unwrap();
    // A JSON Lines job's errors file: one JSON object a rejected record.
    let errors: Vec<serde_json::Value> = errors
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["record"], "{broken");
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["record_number"], 2);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{errors:?}"
    );
}

#[test]
fn a_second_upload_is_refused_and_the_first_stays() {
    let t = TestServer::start();
    let id = t.job_with_records("x", 5);
    let (status, body) = t.call("PUT", &format!("/api/jobs/{id}/input"), Some("more\n"), &[]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(t.get(&format!("/api/jobs/{id}")).1["records_in"], 5);
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let t = TestServer::start();
    let description = "x".repeat(crate::serve::MAX_BODY_BYTES + 10);
    let body = json!({"kind": "copy", "description": description}).to_string();
    let (status, _) = t.call("POST", "/api/jobs", Some(&body), &[]);
    assert_eq!(status, 413);
}

#[test]
fn an_upload_is_not_held_to_the_body_limit() {
    let t = TestServer::start();
    let id = t.client().create(&json!({"kind": "copy"})).unwrap();
    let line = "y".repeat(1000);
    let records = 2 * crate::serve::MAX_BODY_BYTES / 1000;
    let mut input = Vec::new();
    for _ in 0..records {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    let job = t.client().upload(id, &mut input.as_slice(), None).unwrap();
    assert_eq!(job.records_in, records as u64);
}

#[test]
fn workers_health_and_metrics_answer() {
    let t = TestServer::start();
    let id = t.job_with_records("x", 300);
    t.release_until(id, 100, |j| j.slices_done == 1);

    // Both workers are listed, and the next slice's lease shows on the one
    // that took it (it waits on the gate): one worker at a time runs this
    // job, so once the first slice's lease is off the list, it is the only
    // lease there is.
    let leases = |body: &serde_json::Value| -> Vec<(u64, serde_json::Value)> {
        let workers = body["workers"].as_array().unwrap();
        assert_eq!(workers.len(), 2, "{body}");
        workers
            .iter()
            .filter(|w| !w["lease"].is_null())
            .map(|w| {
                (
                    w["lease"]["job"].as_u64().unwrap(),
                    w["lease"]["slice"].clone(),
                )
            })
            .collect()
    };
    eventually("the second slice's lease, alone, on a worker", || {
        let (status, body) = t.get("/api/workers");
        assert_eq!(status, 200);
        (leases(&body) == vec![(id, json!(1))]).then_some(())
    });

    let (status, body) = t.get("/healthz");
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");

    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let mut resp = agent.get(format!("{}/metrics", t.url)).call().unwrap();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = resp.body_mut().read_to_string().unwrap();
    assert!(
        text.contains("booster_jobs{state=\"running\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("booster_slices_processed_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE booster_commit_latency_seconds summary"),
        "{text}"
    );
}

#[test]
fn events_stream_job_progress_as_server_sent_events() {
    let t = TestServer::start();
    let id = t.job_with_records("x", 300);
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let resp = agent
        .get(format!("{}/api/events?job={id}", t.url))
        .call()
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut lines = BufReader::new(resp.into_body().into_reader()).lines();
    t.wait_for_event_streams(1);
    t.gate.release(100);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if let Some(data) = line.strip_prefix("data: ") {
            let ev: serde_json::Value = serde_json::from_str(data).unwrap();
            assert_eq!(ev["job"], id, "only the job asked for");
            if ev["what"] == "slice_done" {
                assert_eq!(ev["state"], "running");
                assert_eq!(ev["slices_done"], 1);
                assert_eq!(ev["slices_total"], 3);
                break;
            }
        }
    }
    assert!(seen.contains(&"event: job".to_string()), "{seen:?}");
}

#[test]
fn the_remote_client_watches_a_job_to_its_end() {
    let t = TestServer::start();
    let id = t.job_with_records("x", 200);
    let client = t.client();
    let watcher = std::thread::spawn(move || {
        let mut seen = Vec::new();
        client
            .watch(id, |ev| {
                let booster_client::http::Event::Job(ev) = ev else {
                    panic!("no event was missed: {ev:?}");
                };
                seen.push((
                    ev.what.clone(),
                    ev.state.as_str().to_string(),
                    json!(ev.slices_done),
                ));
                true
            })
            .unwrap();
        seen
    });
    t.wait_for_event_streams(1);
    t.gate.release(200);
    let seen = watcher.join().unwrap();
    let event = |what: &str, state: &str, done| (what.to_string(), state.to_string(), json!(done));
    // Each slice, then the job's end, where the watch stops.
    assert_eq!(
        seen,
        vec![
            event("slice_done", "running", 1),
            event("slice_done", "running", 2),
            event("state", "completed", 2),
        ]
    );
}

#[test]
fn the_remote_client_reports_the_servers_refusal() {
    let t = TestServer::start();
    let err = t.client().job(42).unwrap_err().to_string();
    assert!(
        err.contains("404") && err.contains("job 42 not found"),
        "{err}"
    );
    let id = t.job_with_records("x", 1);
    let err = t.client().set(id, Some(0), None).unwrap_err().to_string();
    assert!(err.contains("400") && err.contains("out of range"), "{err}");
    let job = t.client().set(id, Some(3), Some(Some(4))).unwrap();
    assert_eq!((job.priority, job.max_workers), (3, Some(4)));
    let job = t.client().control(id, "pause", None).unwrap();
    assert_eq!(job.state.as_str(), "paused");
    t.client().destroy(id).unwrap();
    assert!(t.client().jobs(&Default::default()).unwrap().is_empty());
}

#[test]
fn a_csv_upload_is_cut_by_the_cli_parser_and_its_header_checked() {
    let t = TestServer::start();
    let create = r#"{"kind":"copy","format":"csv","properties":{"csv_header":"id,name"}}"#;
    let (_, created) = t.call("POST", "/api/jobs", Some(create), &[]);
    let id = created["id"].as_u64().unwrap();
    let body = "id,name\n1,alice\n2,\"bob\nsmith\"\n";
    let (status, job) = t.call("PUT", &format!("/api/jobs/{id}/input"), Some(body), &[]);
    assert_eq!(status, 200, "{job}");
    assert_eq!(
        job["records_in"], 2,
        "a quoted newline stays inside its record"
    );
    assert_eq!(job["properties"]["format"], "csv");

    let (_, created) = t.call("POST", "/api/jobs", Some(create), &[]);
    let id = created["id"].as_u64().unwrap();
    let (status, answer) = t.call(
        "PUT",
        &format!("/api/jobs/{id}/input"),
        Some("x,y\n1,2\n"),
        &[],
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("CSV header"),
        "{answer}"
    );
    assert_eq!(t.get(&format!("/api/jobs/{id}")).1["state"], "failed");
}

#[test]
fn stopping_the_server_ends_event_streams_cleanly() {
    let mut t = TestServer::start();
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let resp = agent.get(format!("{}/api/events", t.url)).call().unwrap();
    let reader = std::thread::spawn(move || {
        let lines = BufReader::new(resp.into_body().into_reader()).lines();
        lines.map(|l| l.map(|_| ())).collect::<Result<Vec<()>, _>>()
    });
    // A stream still open when the grace period ends is cut off mid-body,
    // which the reader sees as an error rather than a clean end.
    t.stop(std::time::Duration::from_secs(30));
    let ended = reader.join().unwrap();
    assert!(ended.is_ok(), "the event stream was cut off: {ended:?}");
}

#[test]
fn an_upload_that_fills_the_disk_is_507_with_the_disk_full_message() {
    let Some(disk) = booster_tests::small_disk::SmallDisk::mount(8) else {
        return;
    };
    let t = TestServer::start_on(disk.data());
    // Gated: no worker writes output meanwhile, so the write that finds the
    // disk full is the upload's own (a worker's would be first to fail, and
    // the upload would then meet a store poisoned by it: 503).
    let id = t.client().create(&json!({"kind": GATED})).unwrap();
    // Lines of random hex: zstd cannot squeeze 24 MiB of them into 8 MiB.
    let seed = booster_tests::rng::seed("an_upload_that_fills_the_disk");
    let mut rng = booster_tests::rng::Rng::new(seed);
    let mut body = String::new();
    while body.len() < 24 << 20 {
        for _ in 0..8 {
            body.push_str(&format!("{:016x}", rng.next_u64()));
        }
        body.push('\n');
    }
    let (status, answer) = t.call("PUT", &format!("/api/jobs/{id}/input"), Some(&body), &[]);
    assert_eq!(status, 507, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("disk full"),
        "{answer}"
    );
}
