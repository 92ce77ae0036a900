//! The servers peers run on, installed and started by the harness itself:
//! Debian packages through `apt-get` when a program is missing, a Redis
//! server on a free 127.0.0.1 port in a temp dir, stopped after.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::resp::Redis;

/// Installs the Debian `packages` unless every program in `programs` is on
/// PATH already. Needs root (the harness's machines run as root); says what
/// to run otherwise.
pub fn ensure_installed(programs: &[&str], packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let hint = format!("apt-get install -y {}", packages.join(" "));
    eprintln!(
        "booster-bench: {} missing; running `{hint}`",
        missing.join(", ")
    );
    let install = || {
        Command::new("timeout")
            .args(["600", "apt-get", "install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
    };
    let mut status = install().with_context(|| format!("running `{hint}`"))?;
    if !status.success() {
        // A stale package list is the usual cause: refresh it once.
        let _ = Command::new("timeout")
            .args(["300", "apt-get", "update", "-q"])
            .stdout(Stdio::null())
            .status();
        status = install().with_context(|| format!("running `{hint}`"))?;
    }
    let still: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect();
    if !status.success() || !still.is_empty() {
        bail!(
            "{} still missing after `{hint}` ({status}); run it as root",
            still.join(", ")
        );
    }
    Ok(())
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

pub fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// true if it exited within `limit`.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// How Redis keeps what it acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    Off,
    /// `appendonly yes`, `appendfsync everysec`: up to a second lost.
    AofEverySec,
    /// `appendonly yes`, `appendfsync always`: fsync before each reply batch.
    AofAlways,
}

impl Persistence {
    pub const ALL: [Persistence; 3] = [
        Persistence::Off,
        Persistence::AofEverySec,
        Persistence::AofAlways,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Persistence::Off => "redis_no_persistence",
            Persistence::AofEverySec => "redis_aof_everysec",
            Persistence::AofAlways => "redis_aof_always",
        }
    }
    pub fn durability(self) -> &'static str {
        match self {
            Persistence::Off => "none (redis persistence off)",
            Persistence::AofEverySec => "redis appendfsync everysec",
            Persistence::AofAlways => "redis appendfsync always",
        }
    }
    fn args(self) -> &'static [&'static str] {
        match self {
            Persistence::Off => &["--save", "", "--appendonly", "no"],
            Persistence::AofEverySec => &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ],
            Persistence::AofAlways => &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
        }
    }
}

/// A redis-server child on 127.0.0.1, its data in `dir`.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start(dir: &Path, mode: Persistence) -> anyhow::Result<RedisServer> {
        let port = free_loopback_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--protected-mode", "yes", "--daemonize", "no", "--dir"])
            .arg(dir)
            .args(["--logfile"])
            .arg(dir.join("redis.log"))
            .args(mode.args())
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        let mut server = RedisServer { child, port };
        let started = Instant::now();
        loop {
            if let Ok(mut r) = Redis::connect(port) {
                if r.command(&["PING"]).is_ok() {
                    return Ok(server);
                }
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = server.child.kill();
                let _ = server.child.wait();
                bail!(
                    "redis-server did not answer on 127.0.0.1:{port} within 10 s; see {}",
                    dir.join("redis.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn stop(mut self) {
        if let Ok(mut r) = Redis::connect(self.port) {
            let _ = r.command(&["SHUTDOWN", "NOSAVE"]);
        }
        if !wait_bounded(&mut self.child, Duration::from_secs(10)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn redis_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// A PostgreSQL server of its own (initdb in a temp dir, run as the
/// `postgres` user when the harness is root), listening on 127.0.0.1 at a
/// free port; `fsync` and `synchronous_commit` stay on (PostgreSQL's
/// defaults), so a commit is durable as Booster's acknowledgements are.
pub struct PostgresServer {
    _dir: tempfile::TempDir,
    data: PathBuf,
    pub port: u16,
}

impl PostgresServer {
    pub fn start(scratch: &Path) -> anyhow::Result<PostgresServer> {
        ensure_installed(&["initdb", "pg_ctl", "psql"], &["postgresql"])?;
        std::fs::create_dir_all(scratch)?;
        let dir = tempfile::tempdir_in(scratch)?;
        let data = dir.path().join("data");
        if is_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()))?;
        }
        let port = free_loopback_port()?;
        as_postgres(&mut Command::new("initdb"), |c| {
            c.args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(&data)
        })?;
        let server_opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            dir.path().display()
        );
        as_postgres(&mut Command::new("pg_ctl"), |c| {
            c.args(["-w", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(dir.path().join("postgres.log"))
                .args(["-o", &server_opts, "start"])
        })
        .with_context(|| format!("see {}", dir.path().join("postgres.log").display()))?;
        Ok(PostgresServer {
            _dir: dir,
            data,
            port,
        })
    }

    /// A fresh database for one run, and its URL.
    pub fn fresh_database(&self, name: &str) -> anyhow::Result<String> {
        run(Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}")))?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }

    pub fn stop(self) {
        let _ = as_postgres(&mut Command::new("pg_ctl"), |c| {
            c.args(["-w", "-t", "30", "-m", "fast", "-D"])
                .arg(&self.data)
                .arg("stop")
        });
    }
}

/// /proc/self belongs to the process's own user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `program` built by `args`, as the `postgres` user when root
/// (initdb refuses root), bounded to 120 s.
fn as_postgres(
    program: &mut Command,
    args: impl FnOnce(&mut Command) -> &mut Command,
) -> anyhow::Result<()> {
    args(program);
    let name = program.get_program().to_string_lossy().to_string();
    let argv: Vec<String> = program
        .get_args()
        .map(|a| a.to_string_lossy().to_string())
        .collect();
    let mut cmd = Command::new("timeout");
    cmd.arg("120");
    if is_root() {
        cmd.args(["runuser", "-u", "postgres", "--"]);
    }
    run(cmd.arg(&name).args(&argv))
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
