//! Dirmon through the `booster` binary (issue 14): entries added, listed,
//! paused and removed from the CLI survive restarts; `work
//! --dirmon-allow` turns each settled file into one job with the file's
//! records and moves the file into the archive; files still growing,
//! files not matching, and entries outside the allowlist are left alone.
//! The kill loop is `tests/tests/dirmon_kill_loop.rs`.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use booster_tests::cli::{describe, Sandbox};

/// A `booster work --dirmon-allow` in the background, stopped with SIGINT
/// (its watcher stops between files) when dropped.
struct Working(Child);

impl Working {
    fn start(sb: &Sandbox, allow: &Path) -> Working {
        let allow = allow.display().to_string();
        let child = sb
            .cmd(&["work", "--dirmon-allow", &allow, "--dirmon-rescan", "0.2"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn work");
        Working(child)
    }

    /// Stops it (SIGINT) and returns what it said on stderr.
    fn stop(mut self) -> String {
        self.interrupt();
        let child = std::mem::replace(&mut self.0, dummy());
        let out = child.wait_with_output().expect("wait work");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn interrupt(&self) {
        booster_tests::cli::interrupt(&self.0);
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        self.interrupt();
        let _ = self.0.wait();
    }
}

fn dummy() -> Child {
    std::process::Command::new("true")
        .spawn()
        .expect("spawn true")
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|l| {
            l.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn setup(sb: &Sandbox) -> (PathBuf, PathBuf, PathBuf) {
    let root = sb.path("feeds");
    let (inbox, done) = (root.join("in"), root.join("done"));
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&done).unwrap();
    (root, inbox, done)
}

fn add(sb: &Sandbox, inbox: &Path, done: &Path, extra: &[&str]) -> u64 {
    let pattern = format!("{}/*.csv", inbox.display());
    let archive = done.display().to_string();
    let mut args = vec![
        "dirmon",
        "add",
        "--pattern",
        &pattern,
        "--archive",
        &archive,
        "--kind",
        "copy",
    ];
    args.extend_from_slice(extra);
    sb.json(&args)["id"].as_u64().expect("an entry id")
}

#[test]
fn each_settled_file_becomes_one_job_with_its_records_and_is_archived() {
    let sb = Sandbox::new();
    let (root, inbox, done) = setup(&sb);
    let id = add(
        &sb,
        &inbox,
        &done,
        &["--settle", "300ms", "--priority", "7"],
    );
    std::fs::write(inbox.join("a.csv"), "name,n\nann,1\nbob,2\n").unwrap();
    std::fs::write(inbox.join("b.csv"), "name,n\ncy,3\n").unwrap();
    std::fs::write(inbox.join("notes.txt"), "not a csv\n").unwrap();
    let work = Working::start(&sb, &root);
    wait_until("both files archived", Duration::from_secs(60), || {
        names(&done).len() == 2
    });
    let said = work.stop();
    assert_eq!(names(&inbox), ["notes.txt"], "{said}");
    assert!(names(&done.join(".booster-inbox")).is_empty());
    let jobs = sb.jobs();
    assert_eq!(jobs.len(), 2, "{jobs:#?}\n{said}");
    for (file, records) in [("a.csv", 2), ("b.csv", 1)] {
        let source = inbox.join(file).display().to_string();
        let job = jobs
            .iter()
            .find(|j| j["properties"]["dirmon"]["source"] == source.as_str())
            .unwrap_or_else(|| panic!("no job for {file}: {jobs:#?}"));
        assert_eq!(job["properties"]["dirmon"]["entry"], id);
        assert_eq!(job["records_in"], records, "{job:#}");
        assert_eq!(job["priority"], 7);
        // The job is not left paused: it ran to the end.
        let id = job["id"].as_u64().unwrap();
        let shown = sb.job(id);
        assert_eq!(shown["state"], "completed", "{shown:#}");
        let archived = done.join(job["properties"]["dirmon"]["file"].as_str().unwrap());
        assert!(archived.exists(), "{} not archived", archived.display());
        let out = sb.path(&format!("{file}.out"));
        sb.ok(&[
            "download",
            &id.to_string(),
            "--output",
            &out.to_string_lossy(),
        ]);
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&archived).unwrap(),
            "the output of a copy is the file"
        );
    }
}

#[test]
fn a_file_still_growing_is_taken_only_once_it_settles() {
    let sb = Sandbox::new();
    let (root, inbox, done) = setup(&sb);
    add(&sb, &inbox, &done, &["--settle", "1500ms"]);
    let work = Working::start(&sb, &root);
    let path = inbox.join("slow.csv");
    let mut content = String::from("name,n\n");
    for i in 0..20 {
        content.push_str(&format!("row{i},{i}\n"));
        std::fs::write(&path, &content).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_until("the file archived", Duration::from_secs(60), || {
        names(&done).len() == 1
    });
    let said = work.stop();
    let jobs = sb.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:#?}\n{said}");
    assert_eq!(jobs[0]["records_in"], 20, "taken before it stopped growing");
}

#[test]
fn an_entry_outside_the_allowlist_is_not_watched_and_says_why() {
    let sb = Sandbox::new();
    let (_root, inbox, done) = setup(&sb);
    add(&sb, &inbox, &done, &["--settle", "100ms"]);
    std::fs::write(inbox.join("a.csv"), "name,n\nann,1\n").unwrap();
    let elsewhere = sb.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let work = Working::start(&sb, &elsewhere);
    let mut said = String::new();
    // Give it a few rescans: the file must stay where it is.
    std::thread::sleep(Duration::from_millis(1500));
    said.push_str(&work.stop());
    assert_eq!(names(&inbox), ["a.csv"], "{said}");
    assert!(said.contains("outside --dirmon-allow"), "{said}");
    assert!(sb.jobs().is_empty());
}

#[test]
fn entries_survive_a_restart_and_pause_resume_remove_from_the_cli() {
    let sb = Sandbox::new();
    let (_root, inbox, done) = setup(&sb);
    let id = add(&sb, &inbox, &done, &["--format", "csv"]);
    let list = sb.json(&["dirmon", "list"]);
    assert_eq!(list[0]["id"], id);
    assert_eq!(
        list[0]["spec"]["options"],
        serde_json::json!(["--kind", "copy", "--format", "csv"])
    );
    assert_eq!(list[0]["spec"]["settle_ms"], 5000);
    sb.ok(&["dirmon", "pause", &id.to_string()]);
    assert_eq!(sb.json(&["dirmon", "list"])[0]["paused"], true);
    sb.ok(&["compact"]);
    assert_eq!(
        sb.json(&["dirmon", "list"])[0]["paused"],
        true,
        "a compaction keeps the entry and its flag"
    );
    sb.ok(&["dirmon", "resume", &id.to_string()]);
    assert_eq!(sb.json(&["dirmon", "list"])[0]["paused"], false);
    sb.ok(&["dirmon", "remove", &id.to_string()]);
    assert_eq!(sb.json(&["dirmon", "list"]), serde_json::json!([]));
    let out = sb.expect(1, &["dirmon", "pause", &id.to_string()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dirmon list"),
        "{}",
        booster_tests::cli::describe(&out)
    );
}

#[test]
fn bad_entries_are_refused_with_what_to_do() {
    let sb = Sandbox::new();
    for (args, says) in [
        (
            vec![
                "--pattern",
                "/in/*.csv",
                "--archive",
                "/done",
                "--kind",
                "nope",
            ],
            "no job kind",
        ),
        (
            vec![
                "--pattern",
                "/in/*/x.csv",
                "--archive",
                "/done",
                "--kind",
                "copy",
            ],
            "wildcard",
        ),
        (vec!["--archive", "/done", "--kind", "copy"], "--pattern"),
        (
            vec![
                "--pattern",
                "/in/*.csv",
                "--archive",
                "/done",
                "--kind",
                "copy",
                "--input",
                "f",
            ],
            "--input",
        ),
    ] {
        let mut all = vec!["dirmon", "add"];
        all.extend(args.iter().copied());
        let out = sb.run(&all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{all:?}: {}",
            booster_tests::cli::describe(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{all:?}: {err}");
    }
    // Options a job of them would refuse are refused when the entry is
    // added, not at each file; so is an archive another entry uses.
    fn entry<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec![
            "dirmon",
            "add",
            "--pattern",
            "/in/*.txt",
            "--archive",
            "/done",
        ];
        all.extend_from_slice(extra);
        all
    }
    for (extra, says) in [
        (
            vec!["--kind", "copy", "--window", "25:00-06:00"],
            "HH:MM-HH:MM",
        ),
        (vec!["--kind", "copy", "--slice-size", "200000"], "slice"),
        (
            vec!["--kind", "copy", "--cmd", "cat"],
            "only for --kind exec",
        ),
        (vec!["--kind", "exec"], "--kind exec needs --cmd"),
        (vec!["--kind", "copy", "--format", "fixed"], "--layout"),
    ] {
        let all = entry(&extra);
        let out = sb.run(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {err}");
        assert!(err.contains(says), "{all:?}: {err}");
        assert!(sb.json(&["dirmon", "list"]).as_array().unwrap().is_empty());
    }
    sb.ok(&entry(&["--kind", "copy"]));
    let again = [
        "dirmon",
        "add",
        "--pattern",
        "/elsewhere/*.txt",
        "--archive",
        "/done",
        "--kind",
        "copy",
    ];
    let out = sb.expect(2, &again);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already archives into /done"),
        "{}",
        booster_tests::cli::describe(&out)
    );
    let feeds = [
        "dirmon",
        "add",
        "--pattern",
        "/done/*.txt",
        "--archive",
        "/out",
        "--kind",
        "copy",
    ];
    let out = sb.expect(2, &feeds);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("would take the other's files again"),
        "{}",
        booster_tests::cli::describe(&out)
    );
}

/// `booster serve` allowed to take files under `root`, rescanning often.
fn serve(sb: &Sandbox, root: &Path) -> booster_tests::cli::Serving {
    let allow = root.display().to_string();
    booster_tests::cli::Serving::start(
        sb,
        &[
            "--dirmon-allow",
            &allow,
            "--dirmon-rescan",
            "0.2",
            "--workers",
            "1",
        ],
    )
}

/// `POST` with a JSON body (or none), answering (status, JSON).
fn call(
    url: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("Content-Type", "application/json");
    let resp = agent
        .run(
            req.body(body.map(|b| b.to_string()).unwrap_or_default())
                .unwrap(),
        )
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

#[test]
fn serve_adds_entries_only_inside_its_allowlist_and_takes_their_files() {
    let sb = Sandbox::new();
    let (root, inbox, done) = setup(&sb);
    let outside = sb.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let served = serve(&sb, &root);
    let url = served.url.as_str();
    let entry = |archive: &Path, options: &[&str]| {
        serde_json::json!({
            "pattern": format!("{}/*.csv", inbox.display()),
            "archive": archive.display().to_string(),
            "settle_ms": 200,
            "options": options,
        })
    };
    let (status, body) = call(
        url,
        "POST",
        "/api/dirmons",
        Some(entry(&outside, &["--kind", "copy"])),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("--dirmon-allow"), "{body}");
    let (status, body) = call(
        url,
        "POST",
        "/api/dirmons",
        Some(entry(&done, &["--kind", "exec", "--cmd", "rm -rf /"])),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("--exec-allow"), "{body}");
    let (status, body) = call(
        url,
        "POST",
        "/api/dirmons",
        Some(entry(&done, &["--kind", "copy"])),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_u64().unwrap();
    std::fs::write(inbox.join("a.csv"), "name,n\nann,1\nbob,2\n").unwrap();
    wait_until("the file archived", Duration::from_secs(60), || {
        names(&done).len() == 1
    });
    let (_, jobs) = call(url, "GET", "/api/jobs", None);
    let jobs = jobs["jobs"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0]["properties"]["dirmon"]["entry"], id);
    assert_eq!(jobs[0]["records_in"], 2);
    let (status, body) = call(url, "POST", &format!("/api/dirmons/{id}/pause"), None);
    assert_eq!(
        (status, &body["dirmon"]["paused"]),
        (200, &serde_json::json!(true)),
        "{body}"
    );
    let (_, list) = call(url, "GET", "/api/dirmons", None);
    assert_eq!(list["dirmons"][0]["id"], id, "{list}");
}

/// `booster --server URL dirmon ...`: the same commands as on the data
/// directory, through the server's API; paths are the server's, so a
/// relative one is refused here, and the server's allowlist decides.
fn words(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn the_cli_adds_lists_pauses_and_removes_entries_through_a_server() {
    let sb = Sandbox::new();
    let (root, inbox, done) = setup(&sb);
    let outside = sb.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let served = serve(&sb, &root);
    let url = served.url.as_str();
    let pattern = format!("{}/*.csv", inbox.display());
    let add = |archive: &str| {
        vec![
            "--server",
            url,
            "dirmon",
            "add",
            "--pattern",
            &pattern,
            "--archive",
            archive,
            "--settle",
            "200ms",
            "--kind",
            "copy",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    let out = sb.run(&words(&add("done")));
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("paths on the server"),
        "{}",
        describe(&out)
    );
    let out = sb.run(&words(&add(&outside.display().to_string())));
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--dirmon-allow"),
        "{}",
        describe(&out)
    );
    let added = sb.json(&words(&add(&done.display().to_string())));
    let id = added["id"].as_u64().expect("the entry's id").to_string();
    assert_eq!(added["spec"]["pattern"], pattern.as_str(), "{added}");

    std::fs::write(inbox.join("a.csv"), "name,n\nann,1\nbob,2\n").unwrap();
    wait_until("the file archived", Duration::from_secs(60), || {
        names(&done).len() == 1
    });
    let listed = sb.json(&["--server", url, "dirmon", "list"]);
    assert_eq!(listed[0]["id"].to_string(), id, "{listed}");
    assert_eq!(listed[0]["paused"], false, "{listed}");
    let paused = sb.json(&["--server", url, "dirmon", "pause", &id]);
    assert_eq!(paused[0]["paused"], true, "{paused}");
    let resumed = sb.ok(&["--server", url, "dirmon", "resume", &id]);
    let text = String::from_utf8_lossy(&resumed.stdout);
    assert!(text.contains(&format!("dirmon {id}")), "{text}");
    sb.ok(&["-q", "--server", url, "dirmon", "remove", &id]);
    assert_eq!(
        sb.json(&["--server", url, "dirmon", "list"]),
        serde_json::json!([])
    );
    let jobs = sb.json(&["--server", url, "jobs"]);
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
}

#[test]
fn a_file_that_makes_no_job_is_moved_aside_with_why_and_a_symlink_is_never_read() {
    let sb = Sandbox::new();
    let (root, inbox, done) = setup(&sb);
    let pattern = format!("{}/*.csv", inbox.display());
    let archive = done.display().to_string();
    sb.ok(&[
        "dirmon",
        "add",
        "--pattern",
        &pattern,
        "--archive",
        &archive,
        "--settle",
        "100ms",
        "--kind",
        "validate-customers",
    ]);
    // A header without the columns validate-customers needs: no job.
    std::fs::write(inbox.join("bad.csv"), "who,what\nann,1\n").unwrap();
    // Not a plain file: never opened.
    std::os::unix::fs::symlink(sb.path("feeds"), inbox.join("link.csv")).unwrap();
    let work = Working::start(&sb, &root);
    let rejected = done.join(".booster-rejected");
    wait_until("the file moved aside", Duration::from_secs(60), || {
        names(&rejected).len() == 2
    });
    // A few more scans: nothing is taken again.
    std::thread::sleep(Duration::from_millis(600));
    let said = work.stop();
    let moved = names(&rejected);
    assert!(
        moved[0].ends_with("-bad.csv") && moved[1].ends_with("-bad.csv.why"),
        "{moved:?}"
    );
    let why = std::fs::read_to_string(rejected.join(&moved[1])).unwrap();
    assert!(why.contains("header"), "{why}");
    assert!(said.contains("made no job"), "{said}");
    assert_eq!(names(&inbox), ["link.csv"], "a symlink is left where it is");
    assert!(sb.jobs().is_empty());
}

#[test]
fn a_file_whose_job_was_destroyed_before_it_was_archived_is_never_taken_again() {
    use booster_runtime::{Runtime, RuntimeOptions};
    let dir = tempfile::tempdir().unwrap();
    let (inbox, done) = (dir.path().join("in"), dir.path().join("done"));
    std::fs::create_dir_all(done.join(booster_tools::dirmon::INBOX)).unwrap();
    std::fs::create_dir_all(&inbox).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut opts = RuntimeOptions::new(dir.path().join("data"));
        opts.workers = 1;
        let runtime = Runtime::open(opts).await.unwrap();
        booster_tools::kinds::register_builtin(&runtime);
        let entry = runtime
            .add_dirmon(booster_runtime::DirmonSpec {
                pattern: format!("{}/*.csv", inbox.display()),
                archive: done.display().to_string(),
                settle_ms: 50,
                options: vec!["--kind".into(), "copy".into()],
            })
            .await
            .unwrap();
        // What a crash after the upload and before the archive move leaves,
        // once someone destroyed the finished job meanwhile.
        let name = format!("1795932425572-{entry}-0-a.csv");
        std::fs::write(
            done.join(booster_tools::dirmon::INBOX).join(&name),
            "x\ny\n",
        )
        .unwrap();
        let mut spec = booster_runtime::JobSpec::sliced("copy");
        spec.properties = serde_json::json!({ "dirmon": { "entry": entry, "file": name } });
        let job = runtime.submit(spec).await.unwrap();
        let mut up = runtime.upload(job).await.unwrap();
        up.push(b"x".to_vec()).await.unwrap();
        up.finish().await.unwrap();
        runtime.wait(job).await.unwrap();
        runtime.destroy(job).await.unwrap();
        let watcher = booster_tools::dirmon::Watcher::spawn(
            runtime.clone(),
            booster_tools::dirmon::Config {
                allow: vec![dir.path().to_path_buf()],
                rescan: Duration::from_millis(50),
            },
        )
        .unwrap();
        let start = Instant::now();
        while !done.join(&name).exists() {
            assert!(start.elapsed() < Duration::from_secs(30), "not archived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        watcher.stop().await;
        let jobs = runtime
            .jobs(booster_runtime::JobFilter::default())
            .await
            .unwrap();
        assert!(jobs.is_empty(), "made again: {jobs:#?}");
        assert_eq!(runtime.dirmon_file_job(&name), None);
        runtime.shutdown(Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn an_entry_with_files_in_its_inbox_cannot_be_removed() {
    let sb = Sandbox::new();
    let (_root, inbox, done) = setup(&sb);
    let id = add(&sb, &inbox, &done, &[]);
    let inbox_dir = done.join(".booster-inbox");
    std::fs::create_dir_all(&inbox_dir).unwrap();
    std::fs::write(inbox_dir.join(format!("1795932425572-{id}-0-a.csv")), "x\n").unwrap();
    let out = sb.expect(1, &["dirmon", "remove", &id.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("still has 1 file"), "{err}");
    assert_eq!(sb.json(&["dirmon", "list"])[0]["id"], id);
}

/// A feeder who can write the archive puts a symlink where the inbox was,
/// pointing outside the allowlist. The watcher works through the
/// directories it opened and checked, never through a path: it takes
/// nothing while the inbox is a symlink, and says so; once the symlink is
/// gone it makes the inbox again and takes the file.
#[test]
fn an_inbox_replaced_by_a_symlink_out_of_the_allowlist_is_never_followed() {
    let sb = Sandbox::new();
    let (root, inbox, done) = setup(&sb);
    let outside = sb.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    add(&sb, &inbox, &done, &["--settle", "100ms"]);
    let working = Working::start(&sb, &root);
    let taken = done.join(".booster-inbox");
    wait_until(
        "the watcher opens its inbox",
        Duration::from_secs(60),
        || taken.join(".lock").exists(),
    );
    std::fs::rename(&taken, done.join(".moved-inbox")).unwrap();
    std::os::unix::fs::symlink(&outside, &taken).unwrap();
    std::fs::write(inbox.join("a.csv"), "name,n\nann,1\n").unwrap();
    // Many scans and settle times pass: the file stays where it arrived.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(names(&outside).is_empty(), "{:?}", names(&outside));
        assert_eq!(names(&inbox), ["a.csv"]);
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_file(&taken).unwrap();
    wait_until("the file archived", Duration::from_secs(60), || {
        names(&done).len() == 1
    });
    // The inbox made again is locked again (the old lock went with the
    // inbox that was moved away).
    assert!(taken.join(".lock").exists());
    let said = working.stop();
    assert!(said.contains("is it a symlink?"), "{said}");
    assert!(names(&outside).is_empty());
    assert_eq!(sb.jobs().len(), 1);
}

/// `booster --server URL kind ...` (issue 14: stored throttles change while
/// `serve` holds the data directory): the same settings and lines as the
/// local command, through `GET`/`PUT /api/kinds`.
#[test]
fn kind_settings_are_shown_and_changed_through_a_server() {
    let sb = Sandbox::new();
    let (root, _, _) = setup(&sb);
    let served = serve(&sb, &root);
    let url = served.url.as_str();
    let said = String::from_utf8_lossy(
        &sb.ok(&["--server", url, "kind", "limit", "copy", "2"])
            .stdout,
    )
    .into_owned();
    assert!(said.contains("at most 2 running"), "{said}");
    sb.ok(&[
        "-q",
        "--server",
        url,
        "kind",
        "retry",
        "copy",
        "--max-retries",
        "3",
        "--jitter-percent",
        "10",
    ]);
    sb.ok(&[
        "-q",
        "--server",
        url,
        "kind",
        "window",
        "copy",
        "22:00-06:00",
        "--tz",
        "Europe/Berlin",
    ]);
    let shown = sb.json(&["--server", url, "kind", "show", "copy"]);
    let stored = &shown[0]["stored"];
    assert_eq!(stored["max_running"], 2, "{shown}");
    assert_eq!(stored["retry"]["max_retries"], 3, "{shown}");
    assert_eq!(stored["retry"]["jitter_percent"], 10, "{shown}");
    assert_eq!(stored["window"]["tz"], "Europe/Berlin", "{shown}");
    sb.expect(2, &["--server", url, "kind", "window", "copy", "22-6"]);
    sb.ok(&["-q", "--server", url, "kind", "reset", "copy"]);
    let shown = sb.json(&["--server", url, "kind", "show", "copy"]);
    assert!(
        shown
            .as_array()
            .is_some_and(|v| v.is_empty() || v[0]["stored"].is_null()),
        "{shown}"
    );
}
