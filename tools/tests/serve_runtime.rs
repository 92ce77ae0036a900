//! `booster serve`'s API over the real runtime (a data directory in a temp
//! dir, the built-in kinds): a job goes in over HTTP, runs, and comes out.

use std::io::Write;
use std::time::Duration;

use booster_runtime::{Runtime, RuntimeOptions};
use booster_tools::remote::{connect, RemoteOptions};
use booster_tools::serve::{start, ServeOptions};

#[test]
fn a_job_submitted_over_http_runs_on_the_runtime_and_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (runtime, server) = rt.block_on(async {
        let mut opts = RuntimeOptions::new(dir.path().join("data"));
        opts.workers = 2;
        let runtime = Runtime::open(opts).await.unwrap();
        booster_tools::kinds::register_builtin(&runtime);
        let serve = ServeOptions {
            listen: "127.0.0.1:0".into(),
            ..ServeOptions::default()
        };
        let server = start(runtime.clone(), &serve).await.unwrap();
        (runtime, server)
    });
    let client = connect(&RemoteOptions {
        server: server.url(),
        ..RemoteOptions::default()
    })
    .unwrap();

    let id = client
        .create(&serde_json::json!({"kind": "copy", "slice_size": 10, "priority": 3}))
        .unwrap();
    let mut input = Vec::new();
    for i in 0..95 {
        writeln!(input, "line {i}").unwrap();
    }
    let uploaded = client.upload(id, &mut input.as_slice(), None).unwrap();
    assert_eq!(uploaded.records_in, 95);
    assert_eq!(uploaded.slices_total, 10);

    let done = rt.block_on(runtime.wait(id)).unwrap();
    assert_eq!(done.records_out, 95);
    let job = client.job(id).unwrap();
    assert_eq!(job.percent, 100.0);
    assert_eq!(serde_json::to_value(job.state).unwrap(), "completed");
    assert_eq!(job.priority, 3);

    let mut out = Vec::new();
    client.download(id, "main", &mut out).unwrap();
    assert_eq!(out, input, "the output of copy is its input, in order");

    let err = client.control(id, "pause", None).unwrap_err().to_string();
    assert!(
        err.contains("409"),
        "pausing a completed job is refused: {err}"
    );

    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn job_watch_over_the_server_prints_the_job_until_it_completes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (runtime, server) = rt.block_on(async {
        let mut opts = RuntimeOptions::new(dir.path().join("data"));
        opts.workers = 2;
        let runtime = Runtime::open(opts).await.unwrap();
        booster_tools::kinds::register_builtin(&runtime);
        let serve = ServeOptions {
            listen: "127.0.0.1:0".into(),
            ..ServeOptions::default()
        };
        let server = start(runtime.clone(), &serve).await.unwrap();
        (runtime, server)
    });
    let client = connect(&RemoteOptions {
        server: server.url(),
        ..RemoteOptions::default()
    })
    .unwrap();
    let id = client
        .create(&serde_json::json!({"kind": "copy", "slice_size": 10}))
        .unwrap();
    // The watcher starts before the input is uploaded, so it sees the job run.
    let watcher = std::process::Command::new(env!("CARGO_BIN_EXE_booster"))
        .args(["--server", &server.url(), "job", "watch", &id.to_string()])
        .env_remove("BOOSTER_TOKEN_FILE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = Vec::new();
    for i in 0..50 {
        writeln!(input, "line {i}").unwrap();
    }
    client.upload(id, &mut input.as_slice(), None).unwrap();

    let out = watcher.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("job {id}: completed")),
        "the last line is the completed job: {stdout}"
    );
    assert!(
        last.contains("5/5") && last.contains("50 records out"),
        "{last}"
    );

    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

/// A server over a real runtime whose kinds are registered as `serve` does.
fn serve_with(
    dir: &std::path::Path,
    exec_allow: &[&str],
) -> (
    tokio::runtime::Runtime,
    Runtime,
    booster_tools::serve::Server,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let exec_allow: Vec<String> = exec_allow.iter().map(|c| c.to_string()).collect();
    let (runtime, server) = rt.block_on(async {
        let mut opts = RuntimeOptions::new(dir.join("data"));
        opts.workers = 2;
        let runtime = Runtime::open(opts).await.unwrap();
        let policy = booster_tools::kinds::ExecPolicy::Only(exec_allow.clone().into());
        booster_tools::kinds::register_builtin_with(&runtime, policy);
        let serve = ServeOptions {
            listen: "127.0.0.1:0".into(),
            exec_allow,
            ..ServeOptions::default()
        };
        let server = start(runtime.clone(), &serve).await.unwrap();
        (runtime, server)
    });
    (rt, runtime, server)
}

fn post_job(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(format!("{url}/api/jobs"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

#[test]
fn an_api_request_cannot_run_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let (rt, runtime, server) = serve_with(dir.path(), &[]);
    let cmd = format!("touch {}", marker.display());
    let (status, body) = post_job(
        &server.url(),
        &serde_json::json!({"kind": "exec", "properties": {"cmd": cmd}}),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("--exec-allow"),
        "{body}"
    );
    assert!(rt
        .block_on(runtime.jobs(Default::default()))
        .unwrap()
        .is_empty());
    assert!(!marker.exists(), "the command never ran");
    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn a_stored_exec_job_whose_command_the_server_does_not_allow_waits_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let (rt, runtime, server) = serve_with(dir.path(), &["tr a-z A-Z"]);
    // As if the CLI (or a forged record) had stored it: not through the API.
    let (refused, allowed) = rt.block_on(async {
        let mut ids = Vec::new();
        for cmd in [format!("touch {}", marker.display()), "tr a-z A-Z".into()] {
            let mut spec = booster_runtime::JobSpec::sliced("exec");
            spec.properties = serde_json::json!({ "cmd": cmd });
            let id = runtime.submit(spec).await.unwrap();
            let mut up = runtime.upload(id).await.unwrap();
            up.push(b"x".to_vec()).await.unwrap();
            up.finish().await.unwrap();
            ids.push(id);
        }
        (ids[0], ids[1])
    });
    // The allowed job submitted after it is not held up by it.
    let done = rt.block_on(runtime.wait(allowed)).unwrap();
    assert_eq!(done.state, booster_runtime::JobState::Completed);
    rt.block_on(runtime.wait_idle());
    let waiting = rt.block_on(runtime.job(refused)).unwrap();
    assert_eq!(waiting.state, booster_runtime::JobState::Queued);
    let reason = waiting.waiting_reason.clone().unwrap_or_default();
    assert!(reason.contains("not allowed by this server"), "{waiting:?}");
    assert!(!marker.exists(), "the command never ran");
    let shown: serde_json::Value = serde_json::from_str(
        &ureq::get(format!("{}/api/jobs/{refused}", server.url()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    assert!(
        shown["waiting_reason"]
            .as_str()
            .is_some_and(|r| r.contains("--exec-allow")),
        "the API shows why it waits: {shown}"
    );
    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn a_listing_with_a_limit_has_the_newest_jobs_and_counts_every_match() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, runtime, server) = serve_with(dir.path(), &[]);
    rt.block_on(async {
        for i in 0..10 {
            let kind = if i % 2 == 0 { "copy" } else { "noop" };
            let spec = if kind == "copy" {
                booster_runtime::JobSpec::sliced(kind)
            } else {
                booster_runtime::JobSpec::simple(kind, serde_json::json!(i))
            };
            runtime.submit(spec).await.unwrap();
        }
    });
    let filter = booster_runtime::JobFilter {
        kind: Some("copy".into()),
        ..Default::default()
    };
    let query = booster_runtime::JobQuery {
        filter,
        before: None,
        limit: 3,
    };
    let page = rt.block_on(runtime.jobs_page(query)).unwrap();
    assert_eq!(page.total, Some(5), "a small table's kind filter counts");
    let newest = page.jobs;
    let ids: Vec<u64> = newest.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        vec![5, 7, 9],
        "the three newest copy jobs, oldest first"
    );
    let text = ureq::get(format!("{}/api/jobs?kind=copy&limit=2", server.url()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed["total"], 5, "{listed}");
    let ids: Vec<u64> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![7, 9]);
    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn a_slice_size_over_the_runtimes_cap_is_a_400() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, runtime, server) = serve_with(dir.path(), &[]);
    let (status, body) = post_job(
        &server.url(),
        &serde_json::json!({"kind": "copy", "slice_size": 1_000_000}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("cap"), "{body}");
    assert!(rt
        .block_on(runtime.jobs(Default::default()))
        .unwrap()
        .is_empty());
    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn an_allowed_command_runs_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, runtime, server) = serve_with(dir.path(), &["tr a-z A-Z"]);
    let client = connect(&RemoteOptions {
        server: server.url(),
        ..RemoteOptions::default()
    })
    .unwrap();
    let id = client
        .create(&serde_json::json!({"kind": "exec", "properties": {"cmd": "tr a-z A-Z"}}))
        .unwrap();
    client
        .upload(id, &mut b"ab\ncd\n".as_slice(), None)
        .unwrap();
    let done = rt.block_on(runtime.wait(id)).unwrap();
    assert_eq!(done.records_out, 2, "{:?}", done.errors);
    let mut out = Vec::new();
    client.download(id, "main", &mut out).unwrap();
    assert_eq!(out, b"AB\nCD\n");
    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn an_unknown_kind_is_refused_at_submit_with_the_known_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (runtime, server) = rt.block_on(async {
        let runtime = Runtime::open(RuntimeOptions::new(dir.path().join("data")))
            .await
            .unwrap();
        booster_tools::kinds::register_builtin(&runtime);
        let serve = ServeOptions {
            listen: "127.0.0.1:0".into(),
            ..ServeOptions::default()
        };
        let server = start(runtime.clone(), &serve).await.unwrap();
        (runtime, server)
    });
    let client = connect(&RemoteOptions {
        server: server.url(),
        ..RemoteOptions::default()
    })
    .unwrap();
    let err = client
        .create(&serde_json::json!({"kind": "frobnicate"}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("400") && err.contains("frobnicate") && err.contains("copy, exec"),
        "{err}"
    );
    assert!(rt
        .block_on(runtime.jobs(Default::default()))
        .unwrap()
        .is_empty());
    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn categories_over_the_api_are_counted_in_the_job_and_download_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = r#"awk '{ print "valid\t" $0; print "main\t" $0 }'"#;
    let (rt, runtime, server) = serve_with(dir.path(), &[cmd]);
    let (status, body) = post_job(
        &server.url(),
        &serde_json::json!({"kind": "copy", "categories": ["Valid"]}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("a-z, 0-9"),
        "a bad name says the rules: {body}"
    );
    let client = connect(&RemoteOptions {
        server: server.url(),
        ..RemoteOptions::default()
    })
    .unwrap();
    let id = client
        .create(&serde_json::json!({
            "kind": "exec", "properties": {"cmd": cmd}, "categories": ["valid", "review"]
        }))
        .unwrap();
    client
        .upload(id, &mut b"ab\ncd\n".as_slice(), None)
        .unwrap();
    rt.block_on(runtime.wait(id)).unwrap();
    let job = client.job(id).unwrap();
    assert_eq!(job.records_out, 2);
    assert_eq!(
        serde_json::to_value(&job.records_out_by_category).unwrap(),
        serde_json::json!({"review": 0, "valid": 2})
    );
    let mut out = Vec::new();
    client.download(id, "valid", &mut out).unwrap();
    assert_eq!(out, b"ab\ncd\n");
    let err = client
        .download(id, "rejected", &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no category \"rejected\"") && err.contains("main, errors, valid, review"),
        "{err}"
    );
    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

/// `PUT .../input` of raw bytes with the input options as query parameters.
fn put_raw(url: &str, id: u64, query: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .put(format!("{url}/api/jobs/{id}/input?{query}"))
        .send(body)
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

#[test]
fn a_raw_upload_takes_the_input_options_as_query_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, runtime, server) = serve_with(dir.path(), &[]);
    let url = server.url();
    let client = connect(&RemoteOptions {
        server: url.clone(),
        ..RemoteOptions::default()
    })
    .unwrap();

    // latin-1, `|`-delimited, renamed columns: stored as UTF-8 records.
    let id = client.create(&serde_json::json!({"kind": "copy"})).unwrap();
    let (status, body) = put_raw(
        &url,
        id,
        "format=csv&delimiter=%7C&encoding=latin1&columns=k,v&required_columns=v",
        b"a|b\r\n1|x\xe9\r\n2|\r\n",
    );
    assert_eq!(status, 200, "{body}");
    let done = rt.block_on(runtime.wait(id)).unwrap();
    assert_eq!(
        (done.records_in, done.records_errors),
        (2, 1),
        "{:?}",
        done.errors
    );
    assert!(
        done.errors[0].message.contains("v"),
        "the empty required column is the error: {:?}",
        done.errors
    );
    let mut out = Vec::new();
    client.download(id, "main", &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "1|x\u{e9}\n");

    // A fixed-width layout from the job's properties; a short line an error.
    let layout = serde_json::json!({"fields": [
        {"name": "id", "start": 1, "width": 3}, {"name": "n", "start": 4, "width": 4}
    ]});
    let id = client
        .create(&serde_json::json!({
            "kind": "copy", "properties": {"format": "fixed", "fixed_layout": layout}
        }))
        .unwrap();
    let (status, body) = put_raw(&url, id, "format=fixed", b"001abcd\n002ef\n");
    assert_eq!(status, 200, "{body}");
    let done = rt.block_on(runtime.wait(id)).unwrap();
    assert_eq!(
        (done.records_in, done.records_errors),
        (2, 1),
        "{:?}",
        done.errors
    );

    // A bad option is a 400 that names it, before anything is stored.
    let id = client.create(&serde_json::json!({"kind": "copy"})).unwrap();
    let (status, body) = put_raw(&url, id, "format=csv&encoding=klingon", b"a\n");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("encoding"),
        "{body}"
    );
    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

/// One pump for every upload (issue 16): a `lines` body over HTTP keeps
/// each record's line, as `booster run` does, so a failed slice's records
/// come back in `errors` with the lines they had.
#[test]
fn a_lines_upload_over_http_keeps_each_record_s_line() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, runtime, server) = serve_with(dir.path(), &["false"]);
    let url = server.url();
    let client = connect(&RemoteOptions {
        server: url.clone(),
        ..RemoteOptions::default()
    })
    .unwrap();
    let id = client
        .create(&serde_json::json!({"kind": "exec", "properties": {"cmd": "false"}, "collect_errors": false}))
        .unwrap();
    let (status, body) = put_raw(&url, id, "format=lines", b"a\nb\nc\n");
    assert_eq!(status, 200, "{body}");
    let done = rt.block_on(runtime.wait(id)).unwrap();
    assert_eq!(done.state, booster_runtime::JobState::Failed, "{done:?}");
    let mut errors = Vec::new();
    client.download(id, "errors", &mut errors).unwrap();
    let lines: Vec<Option<u64>> = String::from_utf8(errors)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["line"].as_u64())
        .collect();
    assert_eq!(lines, vec![Some(1), Some(2), Some(3)]);
    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

/// `PUT /api/kinds/{kind}` stores a kind's settings (issue 14), as
/// `booster kind` does: a paused kind holds a new job, cleared it runs.
#[test]
fn kind_settings_are_stored_and_listed_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, runtime, server) = serve_with(dir.path(), &[]);
    let url = server.url();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let put = |body: &str| {
        let mut resp = agent
            .put(format!("{url}/api/kinds/copy"))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    };
    let paused = r#"{"max_running": 0, "retry": {"max_retries": 0, "backoff_base_ms": 1000}, "lease": null}"#;
    let (status, body) = put(paused);
    assert_eq!(status, 200, "{body}");
    let mut resp = agent.get(format!("{url}/api/kinds")).call().unwrap();
    let kinds: serde_json::Value =
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    let copy = kinds["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "copy")
        .unwrap()
        .clone();
    assert_eq!(copy["stored"]["max_running"], 0, "{kinds}");

    let client = connect(&RemoteOptions {
        server: url.clone(),
        ..RemoteOptions::default()
    })
    .unwrap();
    let id = client.create(&serde_json::json!({"kind": "copy"})).unwrap();
    client.upload(id, &mut b"a\nb\n".as_slice(), None).unwrap();
    let job = rt.block_on(runtime.job(id)).unwrap();
    let why = job.waiting_reason.unwrap_or_default();
    assert!(why.contains("paused"), "{why}");
    let (status, body) = put("null");
    assert_eq!(status, 200, "{body}");
    let done = rt.block_on(runtime.wait(id)).unwrap();
    assert_eq!(done.records_out, 2);
    let (status, body) = put(r#"{"max_running": 1, "retry": 7}"#);
    assert_eq!(status, 400, "a malformed body is refused: {body}");
    // A processing window is the same settings' `window` field.
    let nightly = r#"{"max_running": null, "retry": {"max_retries": 0, "backoff_base_ms": 1000}, "lease": null, "window": {"start": "22:00", "end": "06:00", "tz": "Europe/Berlin"}}"#;
    let (status, body) = put(nightly);
    assert_eq!(status, 200, "{body}");
    let view = runtime.kinds_settings();
    let copy = view.iter().find(|k| k.kind == "copy").unwrap();
    let window = copy.stored.and_then(|s| s.window).map(|w| w.to_string());
    assert_eq!(window.as_deref(), Some("22:00-06:00 Europe/Berlin"));
    let (status, body) = put(&nightly.replace("Europe/Berlin", "Mars/Base"));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("IANA name"),
        "an unknown zone says what to give: {body}"
    );
    rt.block_on(async {
        server.shutdown(Duration::ZERO).await.unwrap();
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}
