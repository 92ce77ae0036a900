//! The dashboard in a real headless browser over the real runtime: Debian's
//! `chromium` driven by `chromedriver` over the W3C WebDriver protocol
//! (plain HTTP + JSON). Skips, saying so, only when chromium or chromedriver
//! is not installed. Screenshots land in the temp dir (booster-dashboard-*.png).
//!
//! Job progress is made deterministic with a `gated` kind whose handler
//! takes one permit per record: the test releases a slice's worth at a time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use booster_runtime::{Runtime, RuntimeOptions};
use booster_tests::gate::{self, Gate};
use booster_tools::remote::{connect, RemoteOptions};
use booster_tools::serve::{start, ServeOptions, Server};
use serde_json::{json, Value};

/// How long the page may take to show something before the test fails.
/// Generous: this bounds a wait on a shared machine, it measures nothing.
const PATIENCE: Duration = Duration::from_secs(60);

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const TOKEN: &str = "browser-test-token-0123456789";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A chromedriver process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

impl Driver {
    fn start(chromedriver: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(PATIENCE))
            .build()
            .into();
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            agent,
        };
        wait_until("chromedriver to be ready", || {
            let resp = driver
                .agent
                .get(format!("{}/status", driver.url))
                .call()
                .ok()?;
            let body: Value =
                serde_json::from_str(&resp.into_body().read_to_string().ok()?).ok()?;
            body["value"]["ready"].as_bool().filter(|r| *r)
        });
        driver
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let uri = format!("{}{path}", self.url);
        let req = ureq::http::Request::builder().method(method).uri(uri);
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
        .map_err(|e| e.to_string())?;
        let ok = resp.status().is_success();
        let text = resp
            .into_body()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if ok {
            Ok(value["value"].clone())
        } else {
            Err(value["value"]["message"]
                .as_str()
                .unwrap_or(&text)
                .to_string())
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Session<'d> {
    driver: &'d Driver,
    id: String,
    _profile: tempfile::TempDir,
}

impl<'d> Session<'d> {
    fn new(driver: &'d Driver, chromium: &Path) -> Session<'d> {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1366,900",
            // The TLS test's server has a self-signed certificate.
            "--ignore-certificate-errors",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": chromium, "args": args}
        }}});
        let value = driver
            .send("POST", "/session", Some(caps))
            .expect("chromedriver could not start chromium");
        Session {
            driver,
            id: value["sessionId"].as_str().unwrap().to_string(),
            _profile: profile,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.driver
            .send(method, &format!("/session/{}{path}", self.id), body)
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .unwrap();
    }

    fn find(&self, css: &str) -> Option<String> {
        let found = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .ok()?;
        found[ELEMENT_KEY].as_str().map(str::to_string)
    }

    fn wait_for(&self, css: &str) -> String {
        wait_until(&format!("an element {css}"), || self.find(css))
    }

    fn text(&self, element: &str) -> String {
        let v = self
            .cmd("GET", &format!("/element/{element}/text"), None)
            .unwrap();
        v.as_str().unwrap_or_default().to_string()
    }

    fn attribute(&self, element: &str, name: &str) -> Option<String> {
        let v = self
            .cmd("GET", &format!("/element/{element}/attribute/{name}"), None)
            .ok()?;
        v.as_str().map(str::to_string)
    }

    /// Clicks the element `css` finds once there is one. The page redraws
    /// a table when the live events or its own refresh change it: an
    /// element found just before a redraw is stale by the click, so it is
    /// found again and clicked again (CI failed once on a stale "remove"
    /// button right after the "pause" that redrew its row).
    fn click_on(&self, css: &str) {
        wait_until(&format!("a click on {css}"), || {
            let element = self.find(css)?;
            match self.cmd(
                "POST",
                &format!("/element/{element}/click"),
                Some(json!({})),
            ) {
                Ok(_) => Some(()),
                Err(e) if e.contains("stale element") => None,
                Err(e) => panic!("clicking {css}: {e}"),
            }
        })
    }

    fn click(&self, element: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .unwrap();
    }

    fn type_into(&self, element: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .unwrap();
        self.cmd(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .unwrap();
    }

    fn script(&self, body: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": body, "args": []})),
        )
        .unwrap()
    }

    /// Runs `body` as an async script: it calls `done(value)` (the last
    /// argument WebDriver passes) with what the test gets back.
    fn script_async(&self, body: &str) -> Value {
        let wrapped = format!("const done = arguments[arguments.length - 1]; {body}");
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({"script": wrapped, "args": []})),
        )
        .unwrap()
    }

    /// The text of every element `css` matches, in page order.
    fn texts(&self, css: &str) -> Vec<String> {
        let v = self.script(&format!(
            "return Array.from(document.querySelectorAll({})).map(e => e.textContent);",
            json!(css)
        ));
        serde_json::from_value(v).unwrap()
    }

    /// The attribute `name` of the first element `css` matches, read in
    /// one step (a page that re-renders cannot make it stale).
    fn attr(&self, css: &str, name: &str) -> Option<String> {
        let v = self.script(&format!(
            "const e = document.querySelector({}); return e ? e.getAttribute({}) : null;",
            json!(css),
            json!(name)
        ));
        v.as_str().map(str::to_string)
    }

    /// The text of the first element `css` matches, read in one step.
    fn text_of(&self, css: &str) -> Option<String> {
        self.texts(css).into_iter().next()
    }

    /// `window.confirm` answers yes, as a person clicking OK.
    fn accept_confirms(&self) {
        self.script("window.confirm = () => true; return true;");
    }

    /// No script error happened on any page (chromedriver's log endpoint).
    fn assert_no_browser_errors(&self) {
        let log = self
            .cmd("POST", "/se/log", Some(json!({"type": "browser"})))
            .unwrap();
        let severe: Vec<&Value> = log
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .collect();
        assert!(severe.is_empty(), "browser errors: {severe:?}");
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.cmd("GET", "/screenshot", None).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self
            .driver
            .send("DELETE", &format!("/session/{}", self.id), None);
    }
}

fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (chromium, chromedriver), or None after saying why the test is skipped.
fn browser_programs(test: &str) -> Option<(PathBuf, PathBuf)> {
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = find_program(&["chromedriver"]);
    if chromium.is_none() || chromedriver.is_none() {
        if let Err(message) = missing_browser_verdict(test, std::env::var("CI").ok().as_deref()) {
            panic!("{message}");
        }
        // Straight to stderr: the test harness captures println! of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: chromium and chromedriver are not both on PATH \
             (Debian: apt-get install chromium chromium-driver)"
        );
    }
    Some((chromium?, chromedriver?))
}

/// Without chromium and chromedriver a local run skips the browser tests,
/// saying so; CI (`CI=true`) must have them, so there it is a failure.
fn missing_browser_verdict(test: &str, ci: Option<&str>) -> Result<(), String> {
    match ci {
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Err(format!(
            "{test}: chromium and chromedriver are not both on PATH, and CI={v} requires the \
             browser tests to run; install them (Debian: apt-get install chromium chromium-driver)"
        )),
        _ => Ok(()),
    }
}

#[test]
fn missing_browsers_fail_in_ci_and_skip_elsewhere() {
    assert!(missing_browser_verdict("t", Some("true")).is_err());
    assert!(missing_browser_verdict("t", Some("1")).is_err());
    assert!(missing_browser_verdict("t", None).is_ok());
    assert!(missing_browser_verdict("t", Some("false")).is_ok());
}

/// The runtime on a temp data directory with the built-in kinds and
/// `gated`, served on 127.0.0.1:0.
struct Served {
    rt: tokio::runtime::Runtime,
    runtime: Option<Runtime>,
    server: Option<Server>,
    gate: Arc<Gate>,
    client: booster_tools::remote::Client,
    url: String,
    dir: tempfile::TempDir,
}

impl Served {
    fn start(with_token: bool) -> Served {
        Served::start_with(with_token, false)
    }

    /// With `tls`: HTTPS with a self-signed certificate for 127.0.0.1
    /// (browsers then speak HTTP/2).
    fn start_with(with_token: bool, tls: bool) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut serve = ServeOptions {
            listen: "127.0.0.1:0".into(),
            ..ServeOptions::default()
        };
        if with_token {
            let path = dir.path().join("token");
            booster_tools::secret_file::write_private(&path, TOKEN.as_bytes()).unwrap();
            serve.token_file = Some(path);
        }
        if tls {
            let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
            let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            std::fs::write(&cert_path, cert.cert.pem()).unwrap();
            std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
            serve.tls_cert = Some(cert_path);
            serve.tls_key = Some(key_path);
        }
        let (runtime, gate, server) = rt.block_on(async {
            let mut opts = RuntimeOptions::new(dir.path().join("data"));
            opts.workers = 2;
            // The gated handler waits on the test; its lease must outlast that.
            opts.lease_timeout = gate::LEASE_TIMEOUT;
            let runtime = Runtime::open(opts).await.unwrap();
            booster_tools::kinds::register_builtin(&runtime);
            let gate = gate::register(&runtime);
            let server = start(runtime.clone(), &serve).await.unwrap();
            (runtime, gate, server)
        });
        let url = server.url();
        let client = connect(&RemoteOptions {
            server: url.clone(),
            token_file: serve.token_file.clone(),
            ca_cert: serve.tls_cert.clone(),
        })
        .unwrap();
        Served {
            rt,
            runtime: Some(runtime),
            server: Some(server),
            gate,
            client,
            url,
            dir,
        }
    }

    /// A sliced job of `records` numbered lines, slices of 100.
    /// `paused`: paused before its input arrives, so no worker starts on it.
    fn job(
        &self,
        kind: &str,
        description: &str,
        records: usize,
        extra: Value,
        paused: bool,
    ) -> u64 {
        let mut spec = json!({"kind": kind, "description": description, "slice_size": 100});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let id = self.client.create(&spec).unwrap();
        if paused {
            self.client.control(id, "pause", None).unwrap();
        }
        let mut input = Vec::new();
        for i in 0..records {
            writeln!(input, "record {i}").unwrap();
        }
        self.client.upload(id, &mut input.as_slice(), None).unwrap();
        id
    }

    /// A JSON Lines `copy` job of `records` lines, the first `bad` of them
    /// malformed (rejected at upload), run to its end.
    fn job_with_rejects(&self, records: usize, bad: usize) -> u64 {
        let spec = json!({"kind": "copy", "format": "jsonl", "description": "orders feed",
            "properties": {"input": "orders.jsonl"}});
        let id = self.client.create(&spec).unwrap();
        let mut input = String::new();
        for i in 0..records {
            if i < bad {
                input.push_str(&format!("{{broken {i}\n"));
            } else {
                input.push_str(&format!("{{\"n\":{i}}}\n"));
            }
        }
        self.client.upload(id, &mut input.as_bytes(), None).unwrap();
        self.rt
            .block_on(self.runtime.as_ref().unwrap().wait(id))
            .unwrap();
        id
    }

    fn state(&self, id: u64) -> String {
        serde_json::to_value(self.client.job(id).unwrap().state)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    fn wait_done_slices(&self, id: u64, slices: u64) {
        wait_until(&format!("job {id} to finish {slices} slices"), || {
            (self.client.job(id).ok()?.slices_done >= slices).then_some(())
        });
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.gate.open();
        let (server, runtime) = (self.server.take(), self.runtime.take());
        self.rt.block_on(async {
            if let Some(server) = server {
                let _ = server.shutdown(Duration::ZERO).await;
            }
            if let Some(runtime) = runtime {
                let _ = runtime.shutdown(Duration::from_secs(10)).await;
            }
        });
        let _ = &self.dir;
    }
}

const HOSTILE: &str = "<script>window.__xss=1</script><b>bold</b> & \"quoted\" <img src=x onerror=\"window.__xss=2\">";

#[test]
fn dashboard_shows_live_progress_edits_priority_and_escapes_text_in_a_real_browser() {
    let Some((chromium, chromedriver)) = browser_programs("dashboard browser test") else {
        return;
    };
    let t = Served::start(false);
    let done = t.job("copy", "nightly payroll export", 300, json!({}), false);
    let waiting = "customer import (waiting for approval)";
    t.job("gated", waiting, 500, json!({}), true);
    let id = t.job("gated", HOSTILE, 1000, json!({"max_workers": 1}), false);
    t.gate.release(100);
    t.wait_done_slices(id, 1);
    t.wait_done_slices(done, 3);

    let driver = Driver::start(&chromedriver);
    let s = Session::new(&driver, &chromium);

    // The jobs page: the running job's bar moves when slices complete,
    // through server-sent events, without reloading the page.
    s.go(&format!("{}/#/", t.url));
    let bar = s.wait_for(&format!("#job-row-{id} .bar"));
    assert_eq!(s.attribute(&bar, "aria-valuenow").as_deref(), Some("10.0"));
    wait_until("the live indicator", || s.find("#live.on"));
    t.gate.release(300);
    wait_until("the progress bar to reach 40%", || {
        let bar = s.find(&format!("#job-row-{id} .bar"))?;
        (s.attribute(&bar, "aria-valuenow")? == "40.0").then_some(())
    });
    let cell = s.wait_for(&format!("#job-row-{id} td.desc"));
    assert_eq!(s.text(&cell), HOSTILE, "the description renders as text");
    s.screenshot("booster-dashboard-jobs.png");

    // The job page: description as text, priority edited in place.
    s.go(&format!("{}/#/job/{id}", t.url));
    let description = s.wait_for("#job-description");
    assert_eq!(s.text(&description), HOSTILE);
    let injected = s.script(
        "return [typeof window.__xss, \
         document.querySelectorAll('#job-description *, #main script, #main img').length];",
    );
    assert_eq!(
        injected,
        json!(["undefined", 0]),
        "markup in a description must not become elements"
    );

    let input = s.wait_for("#priority-input");
    s.type_into(&input, "7");
    let save = s.wait_for("#priority-save");
    s.click(&save);
    wait_until("the page to confirm the new priority", || {
        let msg = s.find("#job-msg")?;
        s.text(&msg).contains("Priority is now 7").then_some(())
    });
    assert_eq!(
        t.client.job(id).unwrap().priority,
        7,
        "the API shows the priority set in the page"
    );
    wait_until("the lease on the job page", || s.find("#leases tbody tr"));
    s.screenshot("booster-dashboard-job.png");

    // Errors grouped by message, with the failing records as text.
    let bad = t.client.create(&json!({"kind": "copy", "format": "jsonl", "description": "orders feed", "collect_errors": true, "categories": ["review"]})).unwrap();
    let body = "{\"a\":1}\n{oops\n{\"b\":2}\n<script>x</script>\n";
    t.client.upload(bad, &mut body.as_bytes(), None).unwrap();
    s.go(&format!("{}/#/job/{bad}", t.url));
    let group = s.wait_for(".error-group");
    let text = s.text(&group);
    assert!(
        text.contains("2 ×") && text.contains("<script>x</script>"),
        "{text}"
    );
    s.screenshot("booster-dashboard-errors.png");
    // The job's own categories are counted where the counts are.
    let counts = s.script("return document.body.innerText;");
    assert!(
        counts
            .as_str()
            .unwrap_or_default()
            .contains("Records out: review"),
        "{counts}"
    );

    s.go(&format!("{}/#/workers", t.url));
    let busy = s.wait_for("#workers tbody tr a");
    assert_eq!(
        s.text(&busy),
        format!("job {id}"),
        "the gated job holds a worker"
    );
    s.screenshot("booster-dashboard-workers.png");

    // The cron page lists the entries, one row each.
    let runtime = t.runtime.as_ref().unwrap();
    let spec = booster_runtime::CronSpec {
        expr: "0 3 * * *".into(),
        tz: Some("Europe/Berlin".into()),
        job: booster_runtime::JobSpec::simple("noop", json!(null)),
    };
    t.rt.block_on(runtime.add_cron(spec)).unwrap();
    s.go(&format!("{}/#/cron", t.url));
    let row = s.wait_for("#crons tbody tr");
    let text = s.text(&row);
    assert!(
        text.contains("0 3 * * *") && text.contains("Europe/Berlin") && text.contains("active"),
        "{text}"
    );
    s.screenshot("booster-dashboard-cron.png");
    // Paused and resumed from the page, as `booster cron pause|resume` do.
    s.click_on("#crons tbody tr button.entry-pause");
    wait_until("the entry paused", || {
        runtime.crons().first().filter(|c| c.paused).map(|_| ())
    });
    s.click_on("#crons tbody tr button.entry-resume");
    wait_until("the entry resumed", || {
        runtime.crons().first().filter(|c| !c.paused).map(|_| ())
    });

    // The kinds page shows what applies, and sets a running limit that is
    // stored (what `booster kind limit copy 2` does).
    s.go(&format!("{}/#/kinds", t.url));
    let row = s.wait_for("#kinds tr[data-kind='copy']");
    assert!(s.text(&row).contains("no limit"), "{}", s.text(&row));
    let input = s.wait_for("#kinds tr[data-kind='copy'] input.limit");
    s.type_into(&input, "2");
    s.click_on("#kinds tr[data-kind='copy'] form.set-limit button");
    wait_until("the limit stored", || {
        let view = runtime
            .kinds_settings()
            .into_iter()
            .find(|k| k.kind == "copy")?;
        (view.stored.and_then(|st| st.max_running) == Some(2)).then_some(())
    });
    wait_until("the page shows it", || {
        s.text_of("#kinds tr[data-kind='copy'] td.limit-now")
            .filter(|t| t == "2")
    });
    // Then a retry policy and a processing window (what `booster kind
    // retry copy --max-retries 3 --backoff-ms 250` and `booster kind window
    // copy 22:00-06:00 --tz Europe/Berlin` do), each stored beside the limit.
    let retries = s.wait_for("#kinds tr[data-kind='copy'] input.retries");
    s.type_into(&retries, "3");
    s.type_into(
        &s.wait_for("#kinds tr[data-kind='copy'] input.backoff"),
        "250",
    );
    s.type_into(
        &s.wait_for("#kinds tr[data-kind='copy'] input.jitter"),
        "20",
    );
    s.click_on("#kinds tr[data-kind='copy'] form.set-retry button");
    wait_until("the retry policy stored", || {
        let view = runtime
            .kinds_settings()
            .into_iter()
            .find(|k| k.kind == "copy")?;
        let stored = view.stored?;
        ((
            stored.retry.max_retries,
            stored.retry.backoff_base_ms,
            stored.retry.jitter_percent,
        ) == (3, 250, 20)
            && stored.max_running == Some(2))
        .then_some(())
    });
    wait_until("the page shows the retries", || {
        s.text_of("#kinds tr[data-kind='copy'] td.retry-now")
            .filter(|t| t == "3 × 250 ms (+0-20%)")
    });
    s.type_into(
        &s.wait_for("#kinds tr[data-kind='copy'] input.window"),
        "22:00-06:00",
    );
    s.type_into(
        &s.wait_for("#kinds tr[data-kind='copy'] input.tz"),
        "Europe/Berlin",
    );
    s.click_on("#kinds tr[data-kind='copy'] form.set-window button");
    wait_until("the page shows the window", || {
        s.text_of("#kinds tr[data-kind='copy'] td.window-now")
            .filter(|t| t == "22:00-06:00 Europe/Berlin")
    });
    let stored = runtime
        .kinds_settings()
        .into_iter()
        .find(|k| k.kind == "copy")
        .and_then(|k| k.stored)
        .expect("copy's settings stored");
    assert_eq!(
        stored.window,
        Some(
            booster_runtime::ProcessingWindow::parse("22:00-06:00", Some("Europe/Berlin")).unwrap()
        )
    );
    // A bad window is refused on the page, with what to write.
    s.type_into(
        &s.wait_for("#kinds tr[data-kind='copy'] input.window"),
        "22-6",
    );
    s.click_on("#kinds tr[data-kind='copy'] form.set-window button");
    wait_until("the page says why", || {
        s.text_of("#kinds tr[data-kind='copy'] span.msg")
            .filter(|t| t.contains("HH:MM-HH:MM"))
    });
    s.screenshot("booster-dashboard-kinds.png");

    // The dirmon page lists the entries.
    let spec = booster_runtime::DirmonSpec {
        pattern: "/data/in/*.csv".into(),
        archive: "/data/done".into(),
        settle_ms: 5000,
        options: vec!["--kind".into(), "copy".into()],
    };
    t.rt.block_on(runtime.add_dirmon(spec)).unwrap();
    s.go(&format!("{}/#/dirmon", t.url));
    let row = s.wait_for("#dirmons tbody tr");
    let text = s.text(&row);
    assert!(
        text.contains("/data/in/*.csv") && text.contains("--kind copy") && text.contains("active"),
        "{text}"
    );
    // Paused, then removed (confirmed), as `booster dirmon pause|remove` do.
    s.click_on("#dirmons tbody tr button.entry-pause");
    wait_until("the dirmon entry paused", || {
        runtime.dirmons().first().filter(|d| d.paused).map(|_| ())
    });
    s.accept_confirms();
    s.click_on("#dirmons tbody tr button.entry-remove");
    wait_until("the dirmon entry removed", || {
        runtime.dirmons().is_empty().then_some(())
    });
    wait_until("the page says there are none", || {
        s.find("#dirmons").is_none().then_some(())
    });

    // A simple job's result, and a dependent singleton job's links.
    let spec = booster_runtime::JobSpec::simple("noop", serde_json::json!({"day": "2026-11-29"}));
    let first = t.rt.block_on(runtime.submit(spec)).unwrap();
    t.rt.block_on(runtime.wait(first)).unwrap();
    let spec = booster_runtime::JobSpec::simple("noop", serde_json::json!({}))
        .with_after(&[first], booster_runtime::DependencyFailure::Run)
        .with_singleton("nightly");
    let then = t.rt.block_on(runtime.submit(spec)).unwrap();
    s.go(&format!("{}/#/job/{first}", t.url));
    wait_until("the result shown", || {
        s.text_of("#job-result pre")
            .filter(|r| r.contains("\"day\": \"2026-11-29\""))
    });
    // A simple job has no slices or records to count.
    let stats = s.texts(".grid div");
    assert!(
        stats.iter().any(|t| t.contains("Attempts"))
            && !stats
                .iter()
                .any(|t| t.contains("Slices") || t.contains("Records")),
        "{stats:?}"
    );
    s.go(&format!("{}/#/job/{then}", t.url));
    let after = s.wait_for("#job-after");
    assert!(s.text(&after).contains("runs anyway"), "{}", s.text(&after));
    assert_eq!(
        s.attr("#job-after a", "href"),
        Some(format!("#/job/{first}"))
    );
    assert!(
        s.texts(".grid div")
            .iter()
            .any(|t| t.contains("Singleton") && t.contains("nightly")),
        "{:?}",
        s.texts(".grid div")
    );

    s.assert_no_browser_errors();
}

#[test]
fn dashboard_behind_a_token_asks_for_it_then_shows_jobs_live() {
    let Some((chromium, chromedriver)) = browser_programs("dashboard token browser test") else {
        return;
    };
    let t = Served::start(true);
    let id = t
        .client
        .create(&json!({"kind": "copy", "description": "behind a token"}))
        .unwrap();

    let driver = Driver::start(&chromedriver);
    let s = Session::new(&driver, &chromium);
    s.go(&format!("{}/#/", t.url));
    let input = s.wait_for("#token-input");
    assert!(
        s.find(&format!("#job-row-{id}")).is_none(),
        "no data before the token"
    );
    s.type_into(&input, TOKEN);
    let submit = s.wait_for("form.token button");
    s.click(&submit);
    let row = s.wait_for(&format!("#job-row-{id}"));
    assert!(s.text(&row).contains("behind a token"));
    wait_until("live events with the token", || s.find("#live.on"));

    // Behind a token a plain link cannot send it: the page fetches the
    // errors with the token and saves what came back.
    let bad = t.job_with_rejects(10, 3);
    s.go(&format!("{}/#/job/{bad}", t.url));
    wait_until("the errors, fetched with the token", || {
        (s.texts("#errors-table tbody tr").len() == 3).then_some(())
    });
    s.script(
        "window.__saved = null; const make = URL.createObjectURL; \
         URL.createObjectURL = (blob) => { window.__saved = blob; return make(blob); }; return true;",
    );
    s.click_on("#download-errors");
    let saved = s.script_async(
        "const wait = () => window.__saved ? window.__saved.text().then(done) : setTimeout(wait, 50); wait();",
    );
    let lines: Vec<&str> = saved.as_str().unwrap().lines().collect();
    assert_eq!(lines.len(), 3, "{saved}");
    assert!(
        lines.iter().all(|l| l.contains("\"record_number\"")),
        "{saved}"
    );
}

#[test]
fn dashboard_over_https_with_http2_can_change_a_job() {
    let Some((chromium, chromedriver)) = browser_programs("dashboard TLS browser test") else {
        return;
    };
    let t = Served::start_with(true, true);
    assert!(t.url.starts_with("https://"), "{}", t.url);
    let id = t.job("gated", "over https", 200, json!({}), true);

    let driver = Driver::start(&chromedriver);
    let s = Session::new(&driver, &chromium);
    s.go(&format!("{}/#/job/{id}", t.url));
    let input = s.wait_for("#token-input");
    s.type_into(&input, TOKEN);
    s.click_on("form.token button");
    let protocol = s
        .cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": "return performance.getEntriesByType('navigation')[0].nextHopProtocol", "args": []})),
        )
        .unwrap();
    assert_eq!(protocol, json!("h2"), "the browser speaks HTTP/2");
    // A change is a same-origin POST/PATCH: over HTTP/2 the authority is in
    // `:authority`, and the server must read it there.
    let prio = s.wait_for("#priority-input");
    s.type_into(&prio, "7");
    s.click_on("#priority-save");
    wait_until("the page to confirm the new priority", || {
        let msg = s.find("#job-msg")?;
        s.text(&msg).contains("Priority is now 7").then_some(())
    });
    assert_eq!(t.client.job(id).unwrap().priority, 7);
}

/// The share of its bar (percent) the page gives the fill `css`: the width
/// it set, not the one drawn, which a CSS transition may still be moving.
fn share_of(s: &Session<'_>, css: &str) -> f64 {
    s.script(&format!(
        "const e = document.querySelector({}); return e ? parseFloat(e.style.width) : -1;",
        json!(css)
    ))
    .as_f64()
    .unwrap()
}

#[test]
fn the_jobs_list_pages_newest_first_shows_failures_in_red_and_acts_in_bulk() {
    let Some((chromium, chromedriver)) = browser_programs("dashboard jobs list browser test")
    else {
        return;
    };
    let t = Served::start(false);
    let rejected = t.job_with_rejects(63, 42);
    let failed = t.job("gated", "to be failed", 200, json!({}), true);
    t.client.control(failed, "fail", Some("bad input")).unwrap();
    let paused_kind: Vec<u64> = (0..2)
        .map(|i| {
            t.job(
                "gated",
                &format!("gated {i}"),
                100,
                json!({"run_at_ms": 4_000_000_000_000u64}),
                false,
            )
        })
        .collect();
    for i in 0..50 {
        t.client
            .create(
                &json!({"kind": "noop", "args": {"n": i}, "description": format!("filler {i}")}),
            )
            .unwrap();
    }
    let newest = t
        .client
        .create(&json!({"kind": "noop", "args": {}, "description": "newest"}))
        .unwrap();

    let driver = Driver::start(&chromedriver);
    let s = Session::new(&driver, &chromium);
    s.go(&format!("{}/#/", t.url));
    s.wait_for(&format!("#job-row-{newest}"));
    let ids: Vec<u64> = s
        .texts("#jobs tbody tr td:first-child")
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 50, "one page holds 50 jobs");
    assert_eq!(ids[0], newest, "newest first");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert!(
        !ids.contains(&rejected),
        "the oldest jobs are on the next page"
    );

    s.click_on("#jobs-older");
    s.wait_for(&format!("#job-row-{rejected}"));
    assert!(s.find(&format!("#job-row-{newest}")).is_none());
    assert_eq!(
        s.texts(&format!("#job-row-{rejected} td.failed-count")),
        vec!["42"],
        "the rejected records are counted"
    );
    let bar = format!("#job-row-{rejected} .bar");
    assert_eq!(s.attr(&bar, "data-failed").as_deref(), Some("42"));
    let label = s.text_of(&format!("{bar} .label")).unwrap();
    assert!(label.contains("42 failed"), "{label}");
    let red = share_of(&s, &format!("#job-row-{rejected} .fill.bad"));
    let blue = share_of(&s, &format!("#job-row-{rejected} .fill:not(.bad)"));
    assert!(
        (red - 100.0 * 42.0 / 63.0).abs() < 0.1 && (red + blue - 100.0).abs() < 0.1,
        "two thirds of the bar is red, the rest blue: {red}% and {blue}%"
    );
    assert!(
        s.find(&format!("#job-row-{failed} .bar.failed")).is_some(),
        "a failed job's bar is marked failed"
    );
    assert_eq!(
        share_of(&s, &format!("#job-row-{failed} .fill.bad")),
        100.0,
        "nothing of a failed job will be done: all red"
    );
    s.screenshot("booster-dashboard-jobs-page2.png");
    s.click_on("#jobs-newer");
    s.wait_for(&format!("#job-row-{newest}"));

    // Bulk actions, confirmed as a person would.
    s.accept_confirms();
    s.click_on("#bulk-retry");
    wait_until("the retry to be reported", || {
        s.text_of("#bulk-msg")?
            .contains("Retried 1 failed job")
            .then_some(())
    });
    assert_ne!(t.state(failed), "failed", "the failed job was retried");
    let kind = s.wait_for("#bulk-kind");
    s.type_into(&kind, "gated");
    s.click_on("#bulk-pause-kind");
    wait_until("the pause to be reported", || {
        s.text_of("#bulk-msg")?.contains("Paused").then_some(())
    });
    for id in &paused_kind {
        assert_eq!(t.state(*id), "paused", "job {id} of kind gated");
    }
    s.screenshot("booster-dashboard-bulk.png");
    s.assert_no_browser_errors();
}

#[test]
fn the_job_page_pages_every_error_links_downloads_and_allows_only_what_the_state_allows() {
    let Some((chromium, chromedriver)) = browser_programs("dashboard job page browser test") else {
        return;
    };
    let t = Served::start(false);
    let bad = t.job_with_rejects(100, 70);
    let running = t.job("gated", "running", 1000, json!({"max_workers": 1}), false);
    t.gate.release(100);
    t.wait_done_slices(running, 1);

    let driver = Driver::start(&chromedriver);
    let s = Session::new(&driver, &chromium);
    s.go(&format!("{}/#/job/{bad}", t.url));
    s.wait_for("#job-details");
    let text = s.text_of("#job-details").unwrap();
    assert!(
        text.contains("orders.jsonl") && text.contains("jsonl"),
        "{text}"
    );
    let categories = s.script(
        "return Array.from(document.querySelectorAll('#downloads a')).map(a => a.dataset.category);",
    );
    assert_eq!(categories, json!(["main", "errors"]));
    // The errors link downloads every error, one per line.
    let lines = s.script_async(
        "fetch(document.querySelector('#download-errors').href).then(r => r.text())\
           .then(t => done(t.trim().split('\\n').length));",
    );
    assert_eq!(lines, json!(70));

    // Every error, 50 to a page.
    wait_until("the first page of errors", || {
        (s.texts("#errors-table tbody tr").len() == 50).then_some(())
    });
    let range = s.text_of("#errors-range").unwrap();
    assert!(range.contains("1–50 of 70"), "{range}");
    s.screenshot("booster-dashboard-job-errors.png");
    s.click_on("#errors-next");
    wait_until("the second page of errors", || {
        (s.texts("#errors-table tbody tr").len() == 20).then_some(())
    });
    let last = s.texts("#errors-table tbody tr:last-child td:nth-child(2)");
    assert_eq!(last, vec!["70"], "the last error is on line 70");
    assert_eq!(s.attr("#errors-next", "disabled").as_deref(), Some(""));
    assert!(
        s.attr("#action-destroy", "disabled").is_none(),
        "a completed job can be destroyed"
    );

    // A running job: no Destroy, and its throughput drawn as it moves.
    s.go(&format!("{}/#/job/{running}", t.url));
    // The page changed once its heading names the job.
    wait_until("the running job's page", || {
        s.text_of("h1")?
            .starts_with(&format!("Job {running} "))
            .then_some(())
    });
    assert_eq!(s.attr("#action-destroy", "disabled").as_deref(), Some(""));
    // The server samples the job each second while it runs; the page
    // draws its rate once it has two points, and the rate moved.
    for step in 2..=4u64 {
        t.gate.release(100);
        t.wait_done_slices(running, step);
    }
    wait_until("the throughput chart with the job's progress", || {
        let max_rate: f64 = s.attr("#throughput", "data-max-rate")?.parse().ok()?;
        (max_rate > 0.0).then_some(())?;
        s.find("#throughput-chart canvas")
    });
    s.screenshot("booster-dashboard-throughput.png");

    // History: per-minute counts drawn by the chart library the binary serves.
    s.go(&format!("{}/#/history", t.url));
    wait_until("the history charts", || {
        s.find("#chart-hour-records canvas")
    });
    wait_until("the history to count the rejected records", || {
        let failed = s.attr("#totals-hour", "data-records-failed")?;
        (failed.parse::<u64>().ok()? >= 70).then_some(())
    });
    assert!(s.find("#chart-day-jobs canvas").is_some());
    let foreign = s.script(&format!(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith({}));",
        json!(t.url)
    ));
    assert_eq!(foreign, json!([]), "nothing is loaded from elsewhere");
    assert_eq!(s.script("return typeof uPlot;"), json!("function"));
    s.screenshot("booster-dashboard-history.png");

    // Workers: where they run.
    s.go(&format!("{}/#/workers", t.url));
    s.wait_for("#workers tbody tr");
    let pids = s.texts("#workers tbody td.pid");
    assert_eq!(pids, vec![std::process::id().to_string(); 2]);
    let versions = s.texts("#workers tbody td.version");
    assert_eq!(versions, vec![env!("CARGO_PKG_VERSION").to_string(); 2]);
    assert!(s
        .texts("#workers tbody td.host")
        .iter()
        .all(|h| !h.is_empty() && h != "-"));
    // The processes that work: here the node itself, with its 2 threads.
    assert_eq!(
        s.texts("#processes tbody td.pid"),
        vec![std::process::id().to_string()]
    );
    assert_eq!(
        s.texts("#processes tbody td.threads"),
        vec!["2".to_string()]
    );
    s.screenshot("booster-dashboard-workers-hosts.png");
    s.assert_no_browser_errors();
}
