//! Ctrl-C (SIGINT) during `run` and `work`: a clean stop, nothing lost,
//! `booster work` picks up where it stopped.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

fn sigint(child: &Child) {
    // SAFETY: kill(2) with a pid we spawned and still own (not yet waited for).
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
}

/// Waits until the process holds the data directory (its pid is in LOCK),
/// so its signal handlers are installed.
fn wait_for_lock(sb: &Sandbox, child: &Child) {
    let pid = child.id().to_string();
    for _ in 0..1000 {
        let holder = std::fs::read_to_string(sb.data().join("LOCK")).unwrap_or_default();
        if holder.trim() == pid {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("process {pid} never took the lock");
}

/// A `work` started with SIGINT ignored (as a non-interactive shell
/// starts a background job, and as a CI runner may start the suite) and
/// interrupted the moment it starts: `interrupt` waits for its handler,
/// so the Ctrl-C stops it. Sent at once, as the dirmon kill loop's last
/// life was when it found nothing left to do, the signal met the ignored
/// disposition and was dropped, and that `work` never stopped.
#[test]
fn ctrl_c_right_after_start_stops_a_work_that_inherited_an_ignored_sigint() {
    use std::os::unix::process::CommandExt;
    let sb = Sandbox::new();
    let mut cmd = sb.cmd(&["work", "--workers", "1"]);
    // SAFETY: signal(2) between fork and exec only sets a disposition.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    booster_tests::cli::interrupt(&child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = child.try_wait().unwrap();
    if stopped.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stopped.is_some(), "work never stopped: {stderr}");
    assert!(stderr.contains("booster: stopping"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn ctrl_c_stops_work_cleanly_and_work_resumes() {
    let sb = Sandbox::new();
    let records = 40_000;
    let text = numbered_lines(records);
    let input = sb.write("in.txt", text.as_bytes());
    let job = sb.json(&[
        "submit",
        "--kind",
        "exec",
        "--cmd",
        "sleep 0.02; cat",
        "--slice-size",
        "100",
        "--input",
        s(&input),
    ]);
    let id = job_id(&job).to_string();

    let worker = sb
        .cmd(&["work", "--workers", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lock(&sb, &worker);
    sigint(&worker);
    let out = worker.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("stopped"), "{}", stdout(&out));

    // 400 slices of at least 20 ms each cannot be done yet.
    let stopped = sb.json(&["job", "show", &id]);
    assert_ne!(stopped["state"], "completed", "{stopped}");
    assert!(
        stopped["leases"].as_array().unwrap().is_empty(),
        "leases handed back: {stopped}"
    );

    sb.ok(&["work", "--until-idle"]);
    let output = sb.path("out.txt");
    sb.ok(&["download", &id, "--output", s(&output)]);
    assert!(
        std::fs::read_to_string(&output).unwrap() == text,
        "every record once, in order"
    );
}

#[test]
fn ctrl_c_during_an_upload_fails_the_job_and_exits_130() {
    let sb = Sandbox::new();
    // stdin stays open and empty: the upload waits for more input.
    let mut run = sb
        .cmd(&[
            "run",
            "--kind",
            "copy",
            "--input",
            "-",
            "--output",
            s(&sb.path("o.txt")),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = run.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"one\ntwo\n").unwrap();
    wait_for_lock(&sb, &run);
    sigint(&run);
    let out = run.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    let jobs = sb.json(&["jobs"]);
    assert_eq!(jobs[0]["state"], "failed", "{jobs}");
    assert!(!sb.path("o.txt").exists());
}

#[test]
fn sigterm_stops_serve_gracefully_and_releases_the_store() {
    use std::io::BufRead;
    let sb = Sandbox::new();
    let mut server = sb
        .cmd(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    assert!(
        banner.contains("dashboard and API on http://127.0.0.1:"),
        "{banner}"
    );
    // SAFETY: kill(2) with a pid we spawned and have not waited for.
    let rc = unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let mut status = None;
    for _ in 0..1500 {
        status = server.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some(status) = status else {
        let _ = server.kill();
        panic!("serve ignored SIGTERM");
    };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(status.code(), Some(0), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("booster serve: stopped")),
        "{rest:?}"
    );
    sb.ok(&["jobs"]);
}
