//! Driving the built `booster` binary (and this crate's `fault-worker`)
//! from tests: where the binaries are, a sandbox with its own data
//! directory, JSON output, and SIGKILL at a chosen moment.
//!
//! `cargo test --workspace` builds `target/<profile>/booster` with every
//! binary of the workspace; `cargo test -p booster-tests` alone does not,
//! so [`booster_bin`] runs `cargo build -p booster-tools --bin booster`
//! once per test binary (a no-op when it is fresh). `BOOSTER_BIN` points
//! at another binary instead.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// target/<profile>/, from the path of the running test executable
/// (target/<profile>/deps/<test>-<hash>).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test executable has a parent");
    deps.parent().expect("deps has a parent").to_path_buf()
}

fn build_once(package: &str, bin: &str, env_override: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env_override) {
        return PathBuf::from(path);
    }
    let dir = profile_dir();
    let release = dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Drop what `cargo test` set for this test process (CARGO_PKG_*,
    // CARGO_MANIFEST_DIR, ...): build scripts that watch such variables
    // would otherwise rebuild on every alternation with the outer cargo.
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR" {
            cmd.env_remove(&var);
        }
    }
    cmd.args(["build", "-q", "-p", package, "--bin", bin]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(
        status.success(),
        "cargo build -p {package} --bin {bin} failed"
    );
    let path = dir.join(bin);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The `booster` binary, built if needed.
pub fn booster_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_once("booster-tools", "booster", "BOOSTER_BIN"))
}

/// This crate's `fault-worker` binary (the runtime embedded with test
/// handlers), built if needed.
pub fn fault_worker_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_once("booster-tests", "fault-worker", "BOOSTER_FAULT_WORKER_BIN"))
}

/// A temporary directory holding a data directory and the test's files.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// Passed as --key-file when set.
    pub key_file: Option<PathBuf>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
            key_file: None,
        }
    }

    /// A sandbox with a fresh key from `booster keygen`.
    pub fn encrypted() -> Sandbox {
        let mut sb = Sandbox::new();
        let key = sb.path("master.key");
        sb.ok(&["keygen", "--out", &key.to_string_lossy()]);
        sb.key_file = Some(key);
        sb
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn data(&self) -> PathBuf {
        self.path("data")
    }

    pub fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).expect("write sandbox file");
        path
    }

    /// `booster --data <sandbox>/data [--key-file K] ARGS`, environment cleaned.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(booster_bin());
        for var in [
            "BOOSTER_DATA",
            "BOOSTER_KEY_FILE",
            "BOOSTER_SERVER",
            "BOOSTER_TOKEN_FILE",
        ] {
            cmd.env_remove(var);
        }
        cmd.arg("--data").arg(self.data());
        if let Some(key) = &self.key_file {
            cmd.arg("--key-file").arg(key);
        }
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn booster")
    }

    /// Runs and asserts the exit code, showing the output when it differs.
    pub fn expect(&self, code: i32, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "booster {args:?}\n{}",
            describe(&out)
        );
        out
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        self.expect(0, args)
    }

    /// `booster --json ARGS` (exit 0 or `code`), parsed.
    pub fn json_with_code(&self, code: i32, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.expect(code, &all);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("booster {args:?}: {e}\n{}", describe(&out)))
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        self.json_with_code(0, args)
    }

    /// `booster --json job show ID`.
    pub fn job(&self, id: u64) -> serde_json::Value {
        self.json(&["job", "show", &id.to_string()])
    }

    /// `booster --json jobs`.
    pub fn jobs(&self) -> Vec<serde_json::Value> {
        match self.json(&["jobs"]) {
            serde_json::Value::Array(list) => list,
            other => panic!("`jobs --json` is not an array: {other}"),
        }
    }
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts that a process ended by itself without crashing: no panic (exit
/// 101, "panicked" on stderr) and no signal (it was not killed by us).
pub fn assert_no_crash(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.signal().is_none()
            && out.status.code() != Some(101)
            && !stderr.contains("panicked"),
        "{what} crashed\n{}",
        describe(out)
    );
}

/// How a process spawned by [`run_then_kill`] ended.
#[derive(Debug)]
pub enum Ending {
    /// It finished before the kill: its output.
    Finished(Output),
    /// SIGKILL hit it (and its children) while running.
    Killed { stderr: String },
}

/// A request without a body, sent with `content-length: 0`. ureq sends a
/// `()` body as chunked, its `0\r\n\r\n` end in a second write: a route
/// that answers without reading the body (a 403) can finish before that
/// end arrives, and hyper then closes the connection after its answer,
/// unannounced, so the next request on it met "Peer disconnected"
/// (dashboard_api failed that way about 1 run in 12 under load).
pub const NO_BODY: &[u8] = &[];

/// Sends SIGINT to `child` once it handles SIGINT, as an operator's
/// Ctrl-C after the command started. Sent earlier, the signal meets the
/// disposition the process inherited: the default ends it, but an
/// ignored SIGINT (a child of a non-interactive shell's background job,
/// as CI may be) is dropped, and the command, which installs its handler
/// a moment later, never hears it. Whether it handles SIGINT is read from
/// `/proc/PID/status` (`SigCgt`); a process that ended is not signalled.
pub fn interrupt(child: &Child) {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !catches_sigint(pid).unwrap_or(true) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) with a pid we spawned and have not waited for.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
}

/// Whether process `pid` has a SIGINT handler installed; None once it
/// has ended (no status, or a zombie).
fn catches_sigint(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    if field("State:").is_some_and(|s| s.starts_with('Z') || s.starts_with('X')) {
        return None;
    }
    let caught = u64::from_str_radix(field("SigCgt:")?, 16).ok()?;
    Some(caught & (1 << (libc::SIGINT - 1)) != 0)
}

/// Spawns `cmd` in its own process group, waits up to `after`, then SIGKILLs
/// the group (the process and any handler processes it started).
pub fn run_then_kill(mut cmd: Command, after: Duration) -> Ending {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.process_group(0);
    let mut child: Child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + after;
    loop {
        if let Some(_status) = child.try_wait().expect("try_wait") {
            return Ending::Finished(child.wait_with_output().expect("collect output"));
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let pgid = child.id() as i32;
    // SAFETY: kill(2) with a negative pid signals the process group we
    // created for this child (process_group(0) above); no memory involved.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let out = child.wait_with_output().expect("reap killed child");
    if out.status.signal() == Some(libc::SIGKILL) {
        Ending::Killed {
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    } else {
        // It exited between the last poll and the kill.
        Ending::Finished(out)
    }
}

/// Exit status helper: the code, or 128 + signal.
pub fn code_of(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// A `booster serve --listen 127.0.0.1:0` on a sandbox's data directory,
/// stopped with SIGTERM (then SIGKILL) when dropped. Its stderr is read to
/// the end, so it never fills, and kept for [`Serving::wait_for_log`].
pub struct Serving {
    child: Child,
    /// Where it listens (`http://` or `https://`), without a trailing slash.
    pub url: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Serving {
    /// Starts it with `extra` serve options and waits for its URL.
    pub fn start(sb: &Sandbox, extra: &[&str]) -> Serving {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Serving::spawn(sb.cmd(&args))
    }

    /// Runs `cmd`, a `booster ... serve` command line made elsewhere (the
    /// tools' own test sandboxes), and waits for its URL.
    pub fn spawn(mut cmd: Command) -> Serving {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn booster serve");
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut seen = Vec::new();
        let url = lines.by_ref().map_while(Result::ok).find_map(|line| {
            let at = line.find("http://").or_else(|| line.find("https://"));
            let url = at.map(|at| {
                line[at..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string()
            });
            seen.push(line);
            url
        });
        let Some(url) = url else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve printed no URL: {seen:?}");
        };
        let log = std::sync::Arc::new(std::sync::Mutex::new(seen));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().expect("log lock").push(line);
            }
        });
        Serving {
            child,
            url: url.trim_end_matches('/').to_string(),
            log,
        }
    }

    /// Waits until serve has logged a line holding `text`; fails after a
    /// minute (it bounds a hang, it measures nothing).
    pub fn wait_for_log(&self, text: &str) {
        let started = Instant::now();
        loop {
            let log = self.log.lock().expect("log lock");
            if log.iter().any(|l| l.contains(text)) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve never logged {text:?}: {log:?}"
            );
            drop(log);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every line serve has logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// kill -9, and waits until the process is gone (its data directory
    /// lock with it).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` to the server process.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with a pid we spawned and have not waited for.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a pid we spawned and have not waited for.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..500 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
