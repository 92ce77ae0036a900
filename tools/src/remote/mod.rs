//! The remote CLI: `booster --server URL jobs|job|submit|download` over the
//! HTTP API of `booster serve` (issue 5). Placeholder until that lands.

use crate::cli::Cli;

/// Runs `cli.command` against `cli.server` (with `cli.token_file`); returns
/// the exit code (see `crate::exit`).
pub async fn run(cli: &Cli) -> anyhow::Result<i32> {
    let _ = cli;
    anyhow::bail!("--server is not built yet")
}
