//! The Rust job queues a user of Booster would weigh, run by the
//! `booster-peers` binary of `bench/peers` (its own crate and workspace, so
//! the main build never compiles apalis, graphile_worker or sqlx): apalis
//! on SQLite (a file in the scratch directory) and on PostgreSQL, and
//! graphile_worker on PostgreSQL. That binary is built apart, once
//! (`build_command`, into `target/peers`); the harness starts PostgreSQL
//! itself (`services::PostgresServer`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use crate::services::PostgresServer;

/// The peers, as (metric name, `booster-peers` argument, backend).
///
/// graphile_worker (`booster-peers graphile-worker URL`) is left out of the
/// rounds: 0.14.1 on this machine finishes a few hundred jobs at full speed,
/// then about 7 a second (1,720 of 50,000 after 4 minutes, none locked, its
/// connections idle), so a round would run into the 20-minute limit; see
/// the note in `bench/peers/src/main.rs`. Run it by hand to look again.
pub const PEERS: &[(&str, &str, Backend)] = &[
    ("apalis_sqlite", "apalis-sqlite", Backend::Sqlite),
    ("apalis_postgres", "apalis-postgres", Backend::Postgres),
];

/// In-flight jobs each peer's worker runs at once (its setting).
pub const CONCURRENCY: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn durability(self) -> &'static str {
        match self {
            // apalis-sqlite's setup sets WAL and `synchronous = OFF`.
            Backend::Sqlite => {
                "sqlite WAL, synchronous=OFF as apalis-sqlite sets it (no fsync per commit)"
            }
            Backend::Postgres => "postgresql fsync=on synchronous_commit=on (commit durable)",
        }
    }
}

fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/Cargo.toml")
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers")
}

/// The command that builds the `booster-peers` binary (minutes, once).
pub fn build_command() -> String {
    format!(
        "cargo build --release --manifest-path {} --target-dir {}",
        manifest().display(),
        target_dir().display()
    )
}

/// The `booster-peers` binary. The harness does not build it in the middle
/// of a timed run (it takes many minutes on a small machine and would load
/// the CPUs the other figures share): a missing binary is an error naming
/// the command that builds it.
pub fn binary() -> anyhow::Result<PathBuf> {
    let bin = target_dir().join("release/booster-peers");
    if bin.is_file() {
        return Ok(bin);
    }
    if !manifest().is_file() {
        bail!(
            "{} is missing: the Rust peers' crate is not in this checkout",
            manifest().display()
        );
    }
    bail!(
        "{} is not built; build it first with `{}`",
        bin.display(),
        build_command()
    )
}

/// One burn-down of `peer` (its `booster-peers` argument); jobs/s.
pub fn burn_down(
    bin: &Path,
    peer: &str,
    target: &str,
    jobs: u64,
    spin_us: u64,
) -> anyhow::Result<f64> {
    let out = Command::new("timeout")
        .arg("1200")
        .arg(bin)
        .args([peer, &jobs.to_string(), &CONCURRENCY.to_string(), target])
        .arg(spin_us.to_string())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running booster-peers {peer}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "booster-peers {peer} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let line: serde_json::Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("booster-peers {peer} printed no result: {text:?}"))?;
    let drain_s = line["drain_s"]
        .as_f64()
        .with_context(|| format!("booster-peers {peer}: no drain_s in {line}"))?;
    Ok(jobs as f64 / drain_s)
}

/// Where a peer keeps its jobs for one run: a fresh SQLite file or a fresh
/// PostgreSQL database.
pub fn fresh_target(
    backend: Backend,
    scratch: &Path,
    postgres: Option<&PostgresServer>,
    run: usize,
) -> anyhow::Result<String> {
    match backend {
        Backend::Sqlite => Ok(scratch
            .join(format!("apalis-{run}.sqlite"))
            .display()
            .to_string()),
        Backend::Postgres => postgres
            .context("no PostgreSQL server")?
            .fresh_database(&format!("peers_{run}")),
    }
}
