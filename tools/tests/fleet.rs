//! The fleet with real processes: a `booster serve --workers 0` node and
//! `booster --server URL work` processes. Every test ends in exact output
//! (each record once, in order) and reconciled counts.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use booster_tests::cli::Serving;
use common::*;

/// exec's command of the node restart test: slices take a while.
const SLOW_CAT: &str = "sleep 0.3; cat";
/// exec's command where a worker is killed or stopped once it holds a
/// slice: a second a slice, so it still holds it when the signal lands.
const SLOWER_CAT: &str = "sleep 1; cat";

fn remote(server: &Serving, sb: &Sandbox, args: &[&str]) -> std::process::Command {
    let mut all = vec!["--server", server.url.as_str()];
    all.extend_from_slice(args);
    sb.cmd(&all)
}

fn remote_json(server: &Serving, sb: &Sandbox, args: &[&str]) -> serde_json::Value {
    let out = remote(server, sb, &[&["--json"], args].concat())
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Submits `lines` to the node as one job of `kind` in slices of
/// `slice_size`; its id.
fn submit(server: &Serving, sb: &Sandbox, lines: &str, extra: &[&str]) -> u64 {
    let input = sb.write("in.txt", lines.as_bytes());
    let mut args = vec!["submit", "--input", s(&input)];
    args.extend_from_slice(extra);
    job_id(&remote_json(server, sb, &args))
}

/// The job's output downloaded from the node, and its JSON.
fn output_of(server: &Serving, sb: &Sandbox, id: u64) -> (String, serde_json::Value) {
    let out = sb.path(&format!("out-{id}.txt"));
    let id = id.to_string();
    let o = remote(server, sb, &["download", &id, "--output", s(&out)])
        .output()
        .unwrap();
    assert!(o.status.success(), "download: {}", stderr(&o));
    let job = remote_json(server, sb, &["job", "show", &id]);
    (std::fs::read_to_string(out).unwrap(), job)
}

/// Asserts G2 on the job: every record in is out, none failed.
fn assert_exact(job: &serde_json::Value, output: &str, input: &str) {
    assert_eq!(output, input, "each record once, in order");
    let n = input.lines().count() as u64;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["records_in"], n, "{job}");
    assert_eq!(job["records_out"], n, "{job}");
    assert_eq!(job["records_processed"], n, "{job}");
    assert_eq!(job["records_failed"].as_u64().unwrap_or(0), 0, "{job}");
}

/// `GET path` on the node (no token: it listens on loopback).
fn get(server: &Serving, path: &str) -> String {
    ureq::get(format!("{}{path}", server.url))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap()
}

/// A `booster work` process. Its stderr is read while it runs (a worker
/// that logs more than a pipe holds never blocks on it), and a test that
/// ends before it (a failed assertion) kills it, waking it first should
/// it be stopped: no test leaves a worker behind.
struct Worker {
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// What it wrote to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Worker {
    fn spawn(cmd: &mut Command) -> Worker {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let so_far = log.clone();
        let stderr = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut pipe, &mut buf) {
                bytes.extend_from_slice(&buf[..n]);
                *so_far.lock().unwrap() = String::from_utf8_lossy(&bytes).into_owned();
            }
            String::from_utf8_lossy(&bytes).into_owned()
        });
        Worker {
            child,
            stderr: Some(stderr),
            log,
        }
    }

    /// Waits until it has written `text` to stderr (a minute at most).
    fn wait_for_log(&self, text: &str) {
        wait_for(&format!("the worker to say {text:?}"), || {
            self.log.lock().unwrap().contains(text)
        });
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with a pid we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// kill -9, and reap it.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGCONT);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn worker(server: &Serving, sb: &Sandbox, args: &[&str]) -> Worker {
    let mut all = vec!["work"];
    all.extend_from_slice(args);
    Worker::spawn(&mut remote(server, sb, &all))
}

/// Waits for `w` to exit 0, failing after a minute; its stderr.
fn finishes(mut w: Worker, what: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            let err = w.stderr.take().unwrap().join().unwrap();
            assert!(status.success(), "{what} exited {status}: {err}");
            return err;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_copy_job_on_a_node_without_workers_is_done_by_a_remote_worker_exactly() {
    let sb = Sandbox::new();
    let server = serve(&sb, &["--workers", "0"]);
    let input = numbered_lines(200);
    let id = submit(
        &server,
        &sb,
        &input,
        &["--kind", "copy", "--slice-size", "7"],
    );
    let job = remote_json(&server, &sb, &["job", "show", &id.to_string()]);
    assert_eq!(
        job["state"], "queued",
        "the node runs nothing itself: {job}"
    );
    let w = worker(&server, &sb, &["--workers", "2", "--until-idle"]);
    let pid = w.id();
    finishes(w, "work --until-idle");
    let (output, job) = output_of(&server, &sb, id);
    assert_exact(&job, &output, &input);
    // The node still lists the process that did it.
    let listed = remote_json(&server, &sb, &["workers"]);
    let p = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"].as_u64() == Some(pid as u64))
        .unwrap_or_else(|| panic!("pid {pid} listed: {listed}"));
    assert_eq!(
        (p["threads"].as_u64(), p["leases"].as_u64()),
        (Some(2), Some(0)),
        "{p}"
    );
    assert!(
        p["kinds"].as_array().unwrap().contains(&"copy".into()),
        "{p}"
    );
    assert!(p["records_per_s"].as_f64().unwrap() > 0.0, "{p}");
    let table = remote(&server, &sb, &["workers"]).output().unwrap();
    let text = stdout(&table);
    assert!(
        text.starts_with("HOST") && text.contains(&pid.to_string()),
        "{text}"
    );
}

#[test]
fn a_remote_worker_killed_mid_slice_loses_nothing_and_its_slice_runs_again() {
    let sb = Sandbox::new();
    let (cmd, started) = marking(&sb, SLOWER_CAT);
    let server = serve(
        &sb,
        &[
            "--workers",
            "0",
            "--lease-timeout-ms",
            "1000",
            "--exec-allow",
            &cmd,
        ],
    );
    let input = numbered_lines(8);
    let id = submit(
        &server,
        &sb,
        &input,
        &["--kind", "exec", "--cmd", &cmd, "--slice-size", "2"],
    );
    let mut doomed = worker(&server, &sb, &["--workers", "1", "--exec-allow", &cmd]);
    // Once its handler runs a slice's command (the node showing the slice
    // leased is not enough: the lease may not have reached the worker
    // yet), kill -9 the process.
    wait_for("the doomed worker's handler to start its command", || {
        started.exists()
    });
    doomed.kill9();
    finishes(
        worker(
            &server,
            &sb,
            &["--workers", "2", "--until-idle", "--exec-allow", &cmd],
        ),
        "the second worker",
    );
    let (output, job) = output_of(&server, &sb, id);
    assert_exact(&job, &output, &input);
    assert!(
        lease_expiries(&server) >= 1,
        "the dead worker's lease expired"
    );
}

/// Waits until a thread of `child` holds a slice's lease on the node.
fn wait_for_slice_lease(server: &Serving, child: &Worker) {
    wait_for(&format!("a slice leased by pid {}", child.id()), || {
        let workers: serde_json::Value =
            serde_json::from_str(&get(server, "/api/workers")).unwrap();
        workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["lease"]["slice"].is_u64() && w["pid"].as_u64() == Some(child.id() as u64))
    });
}

/// Polls `done` until it holds, failing after a minute (a bound on a
/// hang, not a measurement).
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waited in vain for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `booster_lease_expiries_total` of the node's metrics.
fn lease_expiries(server: &Serving) -> u64 {
    let text = get(server, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("booster_lease_expiries_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The node's job `id` as the API shows it.
fn job_of(server: &Serving, id: u64) -> serde_json::Value {
    serde_json::from_str(&get(server, &format!("/api/jobs/{id}"))).unwrap()
}

/// Waits until the node's job `id` has completed (`what` names the wait).
fn wait_completed(server: &Serving, id: u64, what: &str) {
    wait_for(what, || job_of(server, id)["state"] == "completed");
}

/// exec's command `then` that first leaves the file `started` in the
/// sandbox, so a test knows a handler runs a slice. The node shows a slice
/// leased once it hands the lease out, before the worker has it or starts
/// it (a lease asked for ahead waits behind the job's `before_batch`
/// hook): a worker killed or stopped then has not started the slice, and
/// the test would prove less than it says (the stop test stopped it so in
/// 2 of 7 runs on a loaded machine).
fn marking(sb: &Sandbox, then: &str) -> (String, std::path::PathBuf) {
    let marker = sb.path("started");
    let cmd = format!("touch '{}'; {then}", marker.display());
    (cmd, marker)
}

#[test]
fn a_worker_stopped_past_its_deadline_has_its_late_commit_rejected() {
    let sb = Sandbox::new();
    // The command waits for `go`, made only once the worker is stopped:
    // however slow the machine, the worker cannot finish the slice first
    // (and be stopped between slices, holding nothing).
    let go = sb.path("go");
    let (cmd, started) = marking(
        &sb,
        &format!(
            "while [ ! -e '{}' ]; do sleep 0.05; done; cat",
            go.display()
        ),
    );
    let server = serve(
        &sb,
        &[
            "--workers",
            "0",
            "--lease-timeout-ms",
            "1000",
            "--exec-allow",
            &cmd,
        ],
    );
    let input = numbered_lines(6);
    let args = ["--kind", "exec", "--cmd", &cmd, "--slice-size", "2"];
    let id = submit(&server, &sb, &input, &args);
    let late = worker(
        &server,
        &sb,
        &["--workers", "1", "--until-idle", "--exec-allow", &cmd],
    );
    // Its handler runs a slice's command when the worker (its pid alone)
    // is stopped; the command, in a process group of its own, runs on
    // once let go and leaves its output in the pipe.
    wait_for("the worker's handler to start its command", || {
        started.exists()
    });
    late.signal(libc::SIGSTOP);
    std::fs::write(&go, b"").unwrap();
    wait_for("the stopped worker's lease to expire", || {
        lease_expiries(&server) >= 1
    });
    // Stopped a second more, then woken: long enough that its hang check
    // sees the gap (a look missed: more than 1.25 of its period, about
    // 0.94 s here) and gives its handler a whole timeout from the wake to
    // send the late commit; short enough that the node has not forgotten
    // the silent process (4 lease timeouts), which would refuse the
    // commit as a stranger's and say nothing of the fence. Woken, the
    // worker sends the commit whether its handler returns first (the
    // command's output) or the node's answer to its first heartbeat
    // (the lease ended: exec fails the slice saying so).
    std::thread::sleep(Duration::from_secs(1));
    late.signal(libc::SIGCONT);
    finishes(
        worker(
            &server,
            &sb,
            &["--workers", "2", "--until-idle", "--exec-allow", &cmd],
        ),
        "the second worker",
    );
    let (output, job) = output_of(&server, &sb, id);
    assert_exact(&job, &output, &input);
    let said = finishes(late, "the stopped worker");
    assert!(
        said.contains("fenced lease"),
        "its late commit was refused: {said}"
    );
    server.wait_for_log("fenced a commit of worker");
    let (again, job) = output_of(&server, &sb, id);
    assert_exact(&job, &again, &input);
}

/// exec's command that runs for twice the lease timeout of the test below
/// (heartbeating all along, as exec does while its command runs).
const TWO_LEASES_CAT: &str = "sleep 2; cat";

#[test]
fn a_lease_asked_for_ahead_stays_alive_while_the_thread_runs_a_long_slice() {
    let sb = Sandbox::new();
    let server = serve(
        &sb,
        &[
            "--workers",
            "0",
            "--lease-timeout-ms",
            "1000",
            "--exec-allow",
            TWO_LEASES_CAT,
        ],
    );
    let input = numbered_lines(4);
    let args = [
        "--kind",
        "exec",
        "--cmd",
        TWO_LEASES_CAT,
        "--slice-size",
        "2",
    ];
    let id = submit(&server, &sb, &input, &args);
    // One thread: it runs slice 0 for two lease timeouts while it holds
    // the lease of slice 1, asked for ahead. Each expiry of that lease
    // would count against slice 1 as if its handler hung (three fail it).
    finishes(
        worker(
            &server,
            &sb,
            &[
                "--workers",
                "1",
                "--until-idle",
                "--exec-allow",
                TWO_LEASES_CAT,
            ],
        ),
        "the worker",
    );
    assert_eq!(lease_expiries(&server), 0, "no lease expired");
    let (output, job) = output_of(&server, &sb, id);
    assert_exact(&job, &output, &input);
}

/// A thread busy with a long task hands back the lease it asked for ahead
/// once it has waited half a lease timeout unstarted, without an expiry
/// counted: a priority-1 job that lease carried runs on an idle worker,
/// not behind the long task (G5), however long its handler heartbeats.
/// The long task runs until the test lets it end, so the urgent job must
/// complete meanwhile.
#[test]
fn a_lease_asked_for_ahead_and_not_started_is_handed_back_to_an_idle_worker() {
    urgent_lease_ahead_handed_back("1000", None);
}

/// Known fault 10: the same, where the urgent job's kind bounds one lease
/// (`kind lease --timeout-ms`) below half the lease timeout. The node
/// ends such a lease at that bound from hand-out, heartbeats or not, so
/// the worker hands it back within a sixteenth of it (the node sends the
/// bound with the lease): before, it waited half the lease timeout and
/// the lease expired unstarted, counted against the job as a hang.
#[test]
fn a_lease_ahead_of_a_kind_with_a_shorter_bound_is_handed_back_within_that_bound() {
    // The bound stays below half the lease timeout, as the fault needs; it
    // is 3 s, not 2, so a loaded machine's stall does not reach it.
    urgent_lease_ahead_handed_back("12000", Some("3000"));
}

/// A busy worker's lease ahead carries a priority-1 copy job (bounded by
/// `copy_bound_ms`, if given, per lease); it is handed back unstarted
/// and an idle worker runs it, with no lease expired.
fn urgent_lease_ahead_handed_back(lease_timeout_ms: &str, copy_bound_ms: Option<&str>) {
    let sb = Sandbox::new();
    let gate = sb.dir.path().join("let-the-long-slice-end");
    // Bounded, so a failed run leaves no command behind for long.
    let long_cat = format!(
        "for _ in $(seq 1500); do [ -e {} ] && break; sleep 0.05; done; cat",
        gate.display()
    );
    let server = serve(
        &sb,
        &[
            "--workers",
            "0",
            "--lease-timeout-ms",
            lease_timeout_ms,
            "--exec-allow",
            &long_cat,
        ],
    );
    if let Some(bound) = copy_bound_ms {
        let args = [
            "kind",
            "lease",
            "copy",
            "--max-expiries",
            "3",
            "--timeout-ms",
            bound,
        ];
        let out = remote(&server, &sb, &args).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let input = numbered_lines(2);
    let long = submit(
        &server,
        &sb,
        &input,
        &["--kind", "exec", "--cmd", &long_cat],
    );
    let busy = worker(
        &server,
        &sb,
        &["--workers", "1", "--until-idle", "--exec-allow", &long_cat],
    );
    wait_for_slice_lease(&server, &busy);
    // Its thread runs the long slice and waits for its lease ahead: the
    // urgent job is the only work, so that lease carries it.
    let urgent_input = numbered_lines(3);
    let urgent = submit(
        &server,
        &sb,
        &urgent_input,
        &["--kind", "copy", "--priority", "1"],
    );
    let slot_of = |pid: u32| {
        let workers: serde_json::Value =
            serde_json::from_str(&get(&server, "/api/workers")).unwrap();
        workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["pid"].as_u64() == Some(pid as u64))
            .cloned()
            .unwrap_or_default()
    };
    wait_for("the urgent job leased ahead by the busy worker", || {
        slot_of(busy.id())["lease"]["job"].as_u64() == Some(urgent)
    });
    let idle = worker(&server, &sb, &["--workers", "1", "--until-idle"]);
    let idle_pid = idle.id();
    wait_for(
        "the urgent job to complete while the long slice runs",
        || job_of(&server, urgent)["state"] == "completed",
    );
    assert_eq!(
        slot_of(idle_pid)["slices_done"].as_u64(),
        Some(1),
        "the idle worker ran it"
    );
    assert_eq!(
        lease_expiries(&server),
        0,
        "a lease handed back is no expiry"
    );
    std::fs::write(&gate, b"").unwrap();
    finishes(busy, "the busy worker");
    finishes(idle, "the idle worker");
    let (output, job) = output_of(&server, &sb, urgent);
    assert_exact(&job, &output, &urgent_input);
    let (output, job) = output_of(&server, &sb, long);
    assert_exact(&job, &output, &input);
}

#[test]
fn a_node_killed_under_two_workers_and_restarted_finishes_the_job_exactly() {
    let sb = Sandbox::new();
    let args = [
        "--workers",
        "0",
        // Long enough that no lease expires under load: the test waits
        // for none.
        "--lease-timeout-ms",
        "3000",
        "--exec-allow",
        SLOW_CAT,
    ];
    let mut server = serve(&sb, &args);
    let listen = server.url.trim_start_matches("http://").to_string();
    let input = numbered_lines(24);
    let job = ["--kind", "exec", "--cmd", SLOW_CAT, "--slice-size", "2"];
    let id = submit(&server, &sb, &input, &job);
    let workers: Vec<Worker> = (0..2)
        .map(|_| {
            let flags = ["--workers", "1", "--until-idle", "--exec-allow", SLOW_CAT];
            worker(&server, &sb, &flags)
        })
        .collect();
    wait_for("some slices done before the kill", || {
        job_of(&server, id)["records_out"].as_u64() >= Some(4)
    });
    server.kill9();
    let server = serve_on(&sb, &listen, &args);
    for (i, w) in workers.into_iter().enumerate() {
        let said = finishes(w, &format!("worker {i}"));
        assert!(said.contains("joined again"), "worker {i} rejoined: {said}");
    }
    let (output, job) = output_of(&server, &sb, id);
    assert_exact(&job, &output, &input);
}

#[test]
fn a_token_file_rotated_and_read_again_on_sighup_takes_effect() {
    let sb = Sandbox::new();
    let (old, new) = ("old-admin-token-0123456789", "new-admin-token-0123456789");
    let tokens = sb.path("tokens");
    let write = |t: &str| {
        booster_tools::secret_file::write_private(&tokens, format!("{t}\n").as_bytes()).unwrap()
    };
    write(old);
    let server = serve(&sb, &["--token-file", s(&tokens)]);
    let status = |token: &str| status_with(&server, "/api/jobs", token);
    assert_eq!((status(old), status(new)), (200, 401));
    write(new);
    assert_eq!(status(old), 200, "no reload before the signal");
    server.signal(libc::SIGHUP);
    server.wait_for_log("token files read again");
    assert_eq!((status(old), status(new)), (401, 200));
}

/// A TCP proxy to the node that cuts every connection open once, when
/// `cut_at` bytes have gone from workers to the node: in the middle of the
/// first message that large (a commit). Connections after that pass.
struct CutProxy {
    url: String,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CutProxy {
    fn start(node_url: &str, cut_at: usize) -> CutProxy {
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        let node = node_url.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicUsize::new(0));
        let cuts = Arc::new(AtomicUsize::new(0));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, o) = (cuts.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(&node).unwrap();
                o.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                let pipe = |mut from: TcpStream, mut to: TcpStream, upstream: bool| {
                    let (sent, cuts, open) = (sent.clone(), c.clone(), o.clone());
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 4096];
                        loop {
                            let n = match std::io::Read::read(&mut from, &mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if upstream && cuts.load(Ordering::SeqCst) == 0 {
                                let before = sent.fetch_add(n, Ordering::SeqCst);
                                if before + n >= cut_at {
                                    cuts.store(1, Ordering::SeqCst);
                                    for s in open.lock().unwrap().drain(..) {
                                        let _ = s.shutdown(Shutdown::Both);
                                    }
                                    break;
                                }
                            }
                            if std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                };
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    true,
                );
                pipe(server, client, false);
            }
        });
        CutProxy { url, cuts }
    }
}

#[test]
fn a_connection_cut_in_the_middle_of_a_commit_loses_nothing_and_doubles_nothing() {
    let sb = Sandbox::new();
    let server = serve(&sb, &["--workers", "0", "--lease-timeout-ms", "2000"]);
    // Slices of about 160 KB that zstd halves at most (random hex): the
    // first commit, compressed on the wire (protocol 3), is still the
    // first message past the cut.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let input: String = (1..=20_000)
        .map(|i| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            format!("record {i} {x:016x}{:016x}\n", x.rotate_left(29))
        })
        .collect();
    let id = submit(
        &server,
        &sb,
        &input,
        &["--kind", "copy", "--slice-size", "4000"],
    );
    let proxy = CutProxy::start(&server.url, 50_000);
    let w = Worker::spawn(&mut sb.cmd(&[
        "--server",
        &proxy.url,
        "work",
        "--workers",
        "1",
        "--until-idle",
    ]));
    let said = finishes(w, "the worker behind the proxy");
    assert_eq!(
        proxy.cuts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "{said}"
    );
    assert!(
        said.contains("trying again"),
        "the worker noticed and retried: {said}"
    );
    // Every commit was accepted: the one cut midway was sent again in
    // time. (A lease reply the cut lost costs that lease its timeout.)
    assert!(
        !said.contains("dropped the commit") && !said.contains("fenced"),
        "the commit cut midway was sent again and accepted: {said}"
    );
    let (output, job) = output_of(&server, &sb, id);
    assert_exact(&job, &output, &input);
}

#[test]
fn serve_refuses_a_lease_timeout_under_a_second() {
    let sb = Sandbox::new();
    let out = sb
        .cmd(&["serve", "--workers", "0", "--lease-timeout-ms", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "refused");
    let err = stderr(&out);
    assert!(
        err.contains("--lease-timeout-ms") && err.contains("1000"),
        "{err}"
    );
}

/// The status of `GET path` on the node with `token`.
fn status_with(server: &Serving, path: &str, token: &str) -> u16 {
    ureq::get(format!("{}{path}", server.url))
        .header("Authorization", format!("Bearer {token}"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap()
        .status()
        .as_u16()
}

/// A node with an admin token file and a worker token file (`workers`).
fn node_with_worker_tokens(sb: &Sandbox, workers: &str) -> (Serving, std::path::PathBuf) {
    let admin = sb.path("admin");
    booster_tools::secret_file::write_private(&admin, format!("{ADMIN}\n").as_bytes()).unwrap();
    let file = sb.path("workers");
    booster_tools::secret_file::write_private(&file, workers.as_bytes()).unwrap();
    let server = serve(
        sb,
        &["--token-file", s(&admin), "--worker-token-file", s(&file)],
    );
    (server, file)
}

const ADMIN: &str = "admin-token-0123456789abcdef";
const WORKER: &str = "worker-token-0123456789abcdef";

#[test]
fn an_emptied_worker_token_file_read_again_on_sighup_revokes_the_last_worker_token() {
    let sb = Sandbox::new();
    let (server, file) = node_with_worker_tokens(&sb, &format!("{WORKER}\n"));
    // A worker token is known (403: it may not read the API), not unknown.
    assert_eq!(status_with(&server, "/api/jobs", WORKER), 403);
    booster_tools::secret_file::write_private(&file, b"# revoked\n").unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log("token files read again");
    assert_eq!(
        status_with(&server, "/api/jobs", WORKER),
        401,
        "the last worker token is revoked"
    );
    assert_eq!(status_with(&server, "/api/jobs", ADMIN), 200);
}

#[test]
fn a_token_file_that_cannot_be_parsed_on_sighup_keeps_the_tokens_and_says_so() {
    let sb = Sandbox::new();
    let (server, file) = node_with_worker_tokens(&sb, &format!("{WORKER}\n"));
    booster_tools::secret_file::write_private(&file, b"short\n").unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log("kept the tokens in force");
    assert_eq!(
        status_with(&server, "/api/jobs", WORKER),
        403,
        "the worker token stays in force"
    );
    let metrics = ureq::get(format!("{}/metrics", server.url))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("booster_token_reload_failures_total 1"),
        "{metrics}"
    );
}

#[test]
fn a_worker_started_before_its_node_waits_for_it_then_works() {
    let sb = Sandbox::new();
    let listen = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().to_string()
    };
    let url = format!("http://{listen}");
    let early = Worker::spawn(&mut sb.cmd(&["--server", &url, "work", "--workers", "1"]));
    early.wait_for_log("trying again");
    let server = serve_on(&sb, &listen, &["--workers", "0"]);
    let input = numbered_lines(50);
    let id = submit(
        &server,
        &sb,
        &input,
        &["--kind", "copy", "--slice-size", "10"],
    );
    wait_completed(&server, id, "the job done by the early worker");
    let (output, job) = output_of(&server, &sb, id);
    assert_exact(&job, &output, &input);
}

#[test]
fn a_worker_refused_at_hello_gives_up_at_once_saying_why() {
    let sb = Sandbox::new();
    let (server, _) = node_with_worker_tokens(&sb, &format!("{WORKER}\n"));
    let wrong = sb.path("wrong-token");
    booster_tools::secret_file::write_private(&wrong, b"not-a-token-of-this-node\n").unwrap();
    let out = remote(
        &server,
        &sb,
        &["--token-file", s(&wrong), "work", "--workers", "1"],
    )
    .output()
    .unwrap();
    assert!(!out.status.success(), "a refusal is not retried");
    let err = stderr(&out);
    assert!(
        err.contains("refused this worker") && err.contains("token"),
        "{err}"
    );
}

/// A worker whose token is revoked while it works (its file emptied and
/// read again on SIGHUP) ends, non-zero, saying the node refused it, so
/// its supervisor restarts it with a new token; it used to ask for leases
/// every 2 s for ever.
#[test]
fn a_working_worker_whose_token_is_revoked_ends_saying_so() {
    let sb = Sandbox::new();
    let (server, file) = node_with_worker_tokens(&sb, &format!("{WORKER}\n"));
    let token = sb.path("token");
    booster_tools::secret_file::write_private(&token, format!("{WORKER}\n").as_bytes()).unwrap();
    let mut w = Worker::spawn(&mut remote(
        &server,
        &sb,
        &["--token-file", s(&token), "work", "--workers", "1"],
    ));
    w.wait_for_log("booster work: worker");
    booster_tools::secret_file::write_private(&file, b"# revoked\n").unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log("token files read again");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = w.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the worker went on after its token was revoked: {}",
            w.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = w.stderr.take().unwrap().join().unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("refused this worker"), "{err}");
}

#[test]
fn refused_and_malformed_worker_calls_are_logged_on_the_node_without_a_flood() {
    use booster_tools::fleet::{client::NodeClient, proto};
    let sb = Sandbox::new();
    let server = serve(&sb, &["--workers", "0"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt
        .block_on(async { NodeClient::new(&server.url, None, None) })
        .unwrap();
    let lease = |session: Vec<u8>| proto::LeaseRequest {
        worker_id: 999,
        thread: 0,
        session,
    };
    for _ in 0..50 {
        let unknown = rt.block_on(client.lease(lease(vec![0; 16])));
        assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
        let beat = proto::HeartbeatRequest {
            worker_id: 999,
            epochs: vec![1],
            session: vec![0; 16],
            released: Vec::new(),
        };
        let unknown = rt.block_on(client.heartbeat(beat));
        assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
        // Past the 64 KiB a Lease may take: refused before it is read.
        let oversized = rt.block_on(client.lease(lease(vec![0; 100 << 10])));
        assert!(oversized.is_err());
    }
    server.wait_for_log("refused a Lease");
    server.wait_for_log("refused a Heartbeat");
    server.wait_for_log("refused a Lease (malformed)");
    server.wait_for_log("not logged");
    let refusals = server
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("refused a"))
        .count();
    assert!(refusals <= 15, "150 bad calls, {refusals} lines: bounded");
}

/// A joined worker that sends commits for leases it does not hold is
/// fenced each time, but the node's log says so a few times a minute, not
/// once a call.
#[test]
fn fenced_commits_of_a_worker_are_logged_without_a_flood() {
    use booster_tools::fleet::{client::NodeClient, proto};
    let sb = Sandbox::new();
    let server = serve(&sb, &["--workers", "0"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt
        .block_on(async { NodeClient::new(&server.url, None, None) })
        .unwrap();
    let joined = rt
        .block_on(client.hello(proto::HelloRequest {
            version: booster_tools::fleet::node::VERSION.to_string(),
            host: "test-host".into(),
            pid: 4242,
            kinds: vec!["copy".into()],
            threads: 1,
            allows: Vec::new(),
            protocol: booster_client::PROTOCOL,
            reads_after: true,
        }))
        .unwrap();
    for epoch in 1..=60 {
        let reply = rt
            .block_on(client.commit(proto::CommitRequest {
                worker_id: joined.worker_id,
                epoch,
                // Well formed (an empty output): fenced, not refused.
                outcome: Some(proto::Outcome::Slice(proto::SliceOutput {
                    main: Some(proto::PackedRecords::default()),
                    ..Default::default()
                })),
                session: joined.session.clone(),
            }))
            .unwrap();
        assert!(!reply.accepted, "epoch {epoch} is no lease of this worker");
    }
    server.wait_for_log("fenced a commit");
    server.wait_for_log("not logged");
    let fenced = server
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("fenced a commit"))
        .count();
    assert!(fenced <= 5, "60 fenced commits, {fenced} lines: bounded");
}

/// A service's own handler: upper-cases each record.
struct Upper;

impl booster_runtime::RecordHandler for Upper {
    fn process(
        &self,
        _: &booster_runtime::JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), booster_runtime::HandlerError> {
        out.push(record.to_ascii_uppercase());
        Ok(())
    }
}

/// A service joined to `server` with `Runtime::connect`, running `kind`
/// with `handler` on 2 threads until `stop`.
struct Service {
    rt: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    working: tokio::task::JoinHandle<Result<(), booster_client::ClientError>>,
    /// One service at a time in this test process, so its threads can be
    /// counted (`remote_threads`).
    _alone: std::sync::MutexGuard<'static, ()>,
}

static ONE_SERVICE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Threads of a connected runtime in this process (named
/// `booster-remote-N`; the kernel keeps 15 bytes of a name).
fn remote_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("booster-remote"))
        .count()
}

impl Service {
    fn join(
        server: &Serving,
        kind: &str,
        handler: std::sync::Arc<dyn booster_runtime::RecordHandler>,
    ) -> Service {
        Service::join_with(server, kind, booster_client::Handler::Sliced(handler))
    }

    fn join_with(server: &Serving, kind: &str, handler: booster_client::Handler) -> Service {
        Service::join_on(server, kind, handler, 2)
    }

    fn join_on(
        server: &Serving,
        kind: &str,
        handler: booster_client::Handler,
        threads: usize,
    ) -> Service {
        let alone = ONE_SERVICE.lock().unwrap_or_else(|e| e.into_inner());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut service = booster_client::Runtime::connect(&server.url, None).unwrap();
        service.register(kind, handler);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let opts = booster_client::WorkOptions {
            threads,
            ..Default::default()
        };
        let working = rt.spawn(service.work(opts, async {
            let _ = stopped.await;
        }));
        // The node takes a kind only once a connected worker runs it.
        wait_for("the service to join", || {
            get(server, "/api/workers").contains(kind)
        });
        Service {
            rt,
            stop,
            working,
            _alone: alone,
        }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        self.rt.block_on(self.working).unwrap().unwrap();
    }

    /// `stop`, failing if it has not returned within a minute (a bound on
    /// a hang: the runtime is then dropped without waiting for it).
    fn stop_within_a_minute(self) {
        let Service {
            rt, stop, working, ..
        } = self;
        let _ = stop.send(());
        let bound = Duration::from_secs(60);
        match rt.block_on(async { tokio::time::timeout(bound, working).await }) {
            Ok(stopped) => stopped.unwrap().unwrap(),
            Err(_) => {
                rt.shutdown_background();
                panic!("the stop did not return within a minute");
            }
        }
    }
}

#[test]
fn a_service_connected_with_runtime_connect_runs_its_own_kind_of_a_sliced_job_exactly() {
    let sb = Sandbox::new();
    let server = serve(&sb, &["--workers", "0", "--lease-timeout-ms", "3000"]);
    let service = Service::join(&server, "upper", std::sync::Arc::new(Upper));
    let input = numbered_lines(300);
    let id = submit(
        &server,
        &sb,
        &input,
        &["--kind", "upper", "--slice-size", "7"],
    );
    wait_completed(&server, id, "the service to finish the job");
    let (output, job) = output_of(&server, &sb, id);
    assert_exact(&job, &output.to_lowercase(), &input);
    assert_eq!(
        output,
        input.to_uppercase(),
        "its handler ran on each record"
    );
    service.stop();
}

/// Writes one output record of `HUGE_OUTPUT` bytes for each input record.
struct Balloon;

/// Past the node's message limit (twice the default 64 MiB
/// `max_slice_bytes`, plus 1 MiB).
const HUGE_OUTPUT: usize = 130 << 20;

impl booster_runtime::RecordHandler for Balloon {
    fn process(
        &self,
        _: &booster_runtime::JobContext<'_>,
        _: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), booster_runtime::HandlerError> {
        out.push(vec![b'x'; HUGE_OUTPUT]);
        Ok(())
    }
}

/// A slice whose output passes the node's message limit fails at once
/// with a reason naming the limit, as the node fails a local slice over
/// its cap. Sent whole, the commit was refused by the message limit and
/// dropped, so the lease expired and the slice ran again until it failed
/// as hung.
#[test]
fn a_remote_slice_whose_output_passes_the_message_limit_fails_at_once_naming_it() {
    let sb = Sandbox::new();
    let server = serve(&sb, &["--workers", "0", "--lease-timeout-ms", "3000"]);
    let service = Service::join(&server, "balloon", std::sync::Arc::new(Balloon));
    let id = submit(&server, &sb, "a\n", &["--kind", "balloon"]);
    wait_for("the job to fail", || {
        job_of(&server, id)["state"] == "failed"
    });
    let job = job_of(&server, id);
    assert!(job.to_string().contains("message limit"), "{job:#}");
    assert_eq!(lease_expiries(&server), 0, "{job:#}");
    service.stop();
}

/// A service's `work` future dropped before its end (a `select!` or a
/// timeout around it) stops its threads: they used to go on leasing, out
/// of the caller's reach, for the life of the process.
#[test]
fn a_service_whose_work_future_is_dropped_stops_its_threads() {
    let sb = Sandbox::new();
    let server = serve(&sb, &["--workers", "0", "--lease-timeout-ms", "3000"]);
    let service = Service::join(&server, "upper", std::sync::Arc::new(Upper));
    // The node lists the process at its `Hello`, a moment before its
    // threads start.
    wait_for("the service's threads to start", || remote_threads() == 2);
    service.working.abort();
    wait_for("the service's threads to end", || remote_threads() == 0);
}

/// A service's simple handler that returns its args; with `Some(region)`
/// it runs only jobs whose `region` property is that, and declines the
/// rest (`SimpleHandler::refuses`).
struct Regional(Option<&'static str>);

impl booster_runtime::SimpleHandler for Regional {
    fn perform(
        &self,
        _: &booster_runtime::JobContext<'_>,
        args: &serde_json::Value,
    ) -> Result<Option<serde_json::Value>, booster_runtime::HandlerError> {
        Ok(Some(args.clone()))
    }

    fn refuses(&self, job: &booster_runtime::JobContext<'_>) -> Option<String> {
        let only = self.0?;
        (job.properties["region"] != only).then(|| format!("this service runs only region {only}"))
    }
}

/// A remote handler's `refuses` is asked, as a local one's is: a job it
/// declines is handed back (no expiry counted), never leased to that
/// process again, and says why it waits; another process that takes it
/// runs it. The remote worker used to run every job it was leased.
#[test]
fn a_job_a_remote_handler_refuses_waits_saying_why_and_runs_where_it_is_taken() {
    let sb = Sandbox::new();
    let server = serve(&sb, &["--workers", "0", "--lease-timeout-ms", "3000"]);
    let eu_only = Service::join_with(
        &server,
        "regional",
        booster_client::Handler::Simple(std::sync::Arc::new(Regional(Some("eu")))),
    );
    let create = |region: &str| {
        let body = serde_json::json!({
            "kind": "regional",
            "args": {"region": region},
            "properties": {"region": region},
        });
        let out = ureq::post(format!("{}/api/jobs", server.url))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
            .as_u64()
            .unwrap()
    };
    let us = create("us");
    let eu = create("eu");
    wait_completed(&server, eu, "the eu job to complete");
    wait_for("the us job to say why it waits", || {
        job_of(&server, us)["waiting_reason"]
            .as_str()
            .is_some_and(|r| r.contains("this service runs only region eu"))
    });
    let job = job_of(&server, us);
    assert_eq!(job["state"], "queued", "{job:#}");
    assert_eq!(lease_expiries(&server), 0);
    eu_only.stop();
    let any = Service::join_with(
        &server,
        "regional",
        booster_client::Handler::Simple(std::sync::Arc::new(Regional(None))),
    );
    wait_completed(&server, us, "the us job to complete where it is taken");
    any.stop();
}

/// exec's command for a job with `after`: its own input, then the output
/// of the job it ran after (the pipe `BOOSTER_AFTER_OUTPUT_FDS` names).
const CAT_THEN_DEPENDENCY: &str = r#"cat; eval "cat <&$BOOSTER_AFTER_OUTPUT_FDS""#;

/// Issue 13's known fault: a job with `after` was never leased to a
/// remote worker, so a node without threads never ran it (it waited,
/// saying so). Its remote handler now reads what its dependency wrote
/// through the node, as a local handler reads it from the store, a chunk
/// at a time (review finding 5: with the default budget the whole
/// dependency came in one reply, so no cursor crossed the wire).
#[test]
fn a_job_with_after_on_a_node_without_workers_runs_on_a_remote_worker_reading_its_dependency() {
    let sb = Sandbox::new();
    // 200 bytes a reply: the dependency crosses the wire in dozens of
    // chunks, their cursors inside and at the ends of its slices.
    let mut cmd = sb.cmd(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "0",
        "--exec-allow",
        CAT_THEN_DEPENDENCY,
    ]);
    cmd.env("BOOSTER_OUTPUT_CHUNK_BYTES", "200");
    let server = booster_tests::cli::Serving::spawn(cmd);
    let input = numbered_lines(300);
    let first = submit(
        &server,
        &sb,
        &input,
        &["--kind", "copy", "--slice-size", "7"],
    );
    let own = "own line 1\nown line 2\n";
    let then = submit(
        &server,
        &sb,
        own,
        &[
            "--kind",
            "exec",
            "--cmd",
            CAT_THEN_DEPENDENCY,
            "--after",
            &first.to_string(),
        ],
    );
    let w = worker(
        &server,
        &sb,
        &[
            "--workers",
            "2",
            "--until-idle",
            "--exec-allow",
            CAT_THEN_DEPENDENCY,
        ],
    );
    finishes(w, "work --until-idle");
    let (output, job) = output_of(&server, &sb, first);
    assert_exact(&job, &output, &input);
    let (output, job) = output_of(&server, &sb, then);
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(
        output,
        format!("{own}{input}"),
        "its own input, then its dependency's output, each record once, in order"
    );
    assert_eq!(job["records_in"], 2, "{job}");
    assert_eq!(job["records_failed"].as_u64().unwrap_or(0), 0, "{job}");
    assert_eq!(lease_expiries(&server), 0, "{job}");
}

/// Hangs on the record `hang` (no heartbeat) while `hold` is set, once
/// per `arm`; copies every other record.
#[derive(Default)]
struct Hangs {
    armed: std::sync::atomic::AtomicBool,
    hold: std::sync::atomic::AtomicBool,
    /// Set while a handler hangs.
    hanging: std::sync::atomic::AtomicBool,
}

/// Lets a hung `Hangs` handler return when dropped: declared after the
/// service, it is dropped first should the test fail, so the service's
/// runtime does not wait on the hung thread for ever.
struct Release(std::sync::Arc<Hangs>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0
            .hold
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Hangs {
    fn arm(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.hold.store(true, SeqCst);
        self.armed.store(true, SeqCst);
    }
}

impl booster_runtime::RecordHandler for Hangs {
    fn process(
        &self,
        _: &booster_runtime::JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), booster_runtime::HandlerError> {
        use std::sync::atomic::Ordering::SeqCst;
        if record == b"hang" && self.armed.swap(false, SeqCst) {
            self.hanging.store(true, SeqCst);
            while self.hold.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.hanging.store(false, SeqCst);
        }
        out.push(record.to_vec());
        Ok(())
    }
}

/// A node without threads (1 s lease timeout) and a service of one
/// thread running `Hangs` (armed) for kind `hangs`.
fn hanging_service(sb: &Sandbox) -> (Serving, std::sync::Arc<Hangs>, Service, Release) {
    let server = serve(sb, &["--workers", "0", "--lease-timeout-ms", "1000"]);
    let hangs = std::sync::Arc::new(Hangs::default());
    hangs.arm();
    let handler = booster_client::Handler::Sliced(hangs.clone());
    let service = Service::join_on(&server, "hangs", handler, 1);
    let release = Release(hangs.clone());
    (server, hangs, service, release)
}

/// A remote thread whose handler hangs is replaced, as a node replaces a
/// local thread whose lease expired: the service's one thread used to stay
/// blocked, and every job behind the hung one waited for ever. The hung
/// slice runs again on the fresh thread (it hangs only once).
#[test]
fn a_service_thread_whose_handler_hangs_is_replaced_and_the_work_behind_it_runs() {
    use std::sync::atomic::Ordering::SeqCst;
    let sb = Sandbox::new();
    // Bound in this order, `release` is dropped before `service`.
    let (server, hangs, service, release) = hanging_service(&sb);
    let hung = submit(
        &server,
        &sb,
        "hang\n",
        &["--kind", "hangs", "--priority", "1"],
    );
    wait_for("the handler to hang", || hangs.hanging.load(SeqCst));
    let input = numbered_lines(20);
    let behind = submit(
        &server,
        &sb,
        &input,
        &["--kind", "hangs", "--slice-size", "7"],
    );
    wait_completed(&server, behind, "the job behind the hung one");
    let (output, job) = output_of(&server, &sb, behind);
    assert_exact(&job, &output, &input);
    wait_completed(&server, hung, "the hung slice, run again");
    let (output, job) = output_of(&server, &sb, hung);
    assert_exact(&job, &output, "hang\n");
    assert!(lease_expiries(&server) >= 1, "the hung lease expired");
    drop(release);
    service.stop();
}

/// A stop returns although a handler hangs (it used to wait for it for
/// ever), leaving it running: its lease expires on the node, and nothing
/// is committed for it, even once it returns. (The node would fence a
/// late commit here anyway, its lease expired: that a given-up thread
/// sends none is `booster_client`'s unit test
/// `a_given_up_lease_is_no_longer_held_and_its_handler_is_told_it_ended`.)
#[test]
fn a_service_stop_returns_while_a_handler_hangs_and_commits_nothing_for_it() {
    use std::sync::atomic::Ordering::SeqCst;
    let sb = Sandbox::new();
    // Bound in this order, `release` is dropped before `service`.
    let (server, hangs, service, release) = hanging_service(&sb);
    let hung = submit(&server, &sb, "hang\n", &["--kind", "hangs"]);
    wait_for("the handler to hang", || hangs.hanging.load(SeqCst));
    service.stop_within_a_minute();
    // Counted when the node expires it; gone from the job once the
    // slice's return to the queue is written, a moment later.
    wait_for("the hung lease to expire", || {
        lease_expiries(&server) >= 1
            && job_of(&server, hung)["leases"].as_array().map(Vec::len) == Some(0)
    });
    drop(release);
    wait_for("the handler to return", || !hangs.hanging.load(SeqCst));
    let job = job_of(&server, hung);
    let leases = job["leases"].as_array().map(Vec::len);
    assert_eq!(
        (
            job["slices_done"].as_u64(),
            job["slices_queued"].as_u64(),
            leases
        ),
        (Some(0), Some(1), Some(0)),
        "its slice waits for a worker, nothing committed: {job}"
    );
}
