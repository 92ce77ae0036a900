//! `booster --server URL --token-file T work`: the built-in kinds on a
//! connected runtime (`booster_client::Runtime`), which holds the worker
//! loop; here only the command's flags and the kinds it registers.

use std::path::PathBuf;

use crate::kinds::ExecPolicy;

/// What `work --server` was asked for.
#[derive(Clone, Debug)]
pub struct WorkOptions {
    pub server: String,
    pub token_file: Option<PathBuf>,
    /// A PEM certificate to trust (`BOOSTER_CA_CERT`).
    pub ca_cert: Option<PathBuf>,
    pub threads: usize,
    /// Stop once nothing is leased to anyone and nothing queued is for it.
    pub until_idle: bool,
    /// The only commands `exec` jobs may run here; empty: no `exec`.
    pub exec_allow: Vec<String>,
    /// The version this worker says it is (tests say another).
    pub version: String,
}

/// Joins the node with the built-in kinds (`exec` only with
/// `--exec-allow`, and the node leases it only those commands) and works
/// until `stop` resolves, or until the node is idle for it.
pub async fn work(
    opts: WorkOptions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let token = match &opts.token_file {
        Some(path) => Some(crate::remote::read_token(path)?),
        None => None,
    };
    let mut runtime = booster_client::Runtime::connect(&opts.server, token.as_deref())?;
    let exec = ExecPolicy::Only(opts.exec_allow.clone().into());
    for (kind, handler) in crate::kinds::builtin(exec) {
        if kind != crate::kinds::EXEC || !opts.exec_allow.is_empty() {
            runtime.register(kind, handler);
        }
    }
    runtime.allow_only(
        crate::kinds::EXEC,
        crate::formats::props::CMD,
        opts.exec_allow.clone(),
    );
    let work = booster_client::WorkOptions {
        threads: opts.threads,
        until_idle: opts.until_idle,
        ca_cert: opts.ca_cert,
        version: opts.version,
        log: booster_client::Log::stderr(),
    };
    runtime.work(work, stop).await?;
    Ok(())
}

/// `booster --server URL work`: the flags that make sense for a remote
/// worker, checked, then [`work`] until Ctrl-C or, with `--until-idle`,
/// until the node is idle.
pub async fn run_cli(
    cli: &crate::cli::Cli,
    args: &crate::cli::WorkArgs,
    interrupt: &crate::commands::Interrupt,
) -> anyhow::Result<i32> {
    let local_only = [
        (args.max_lease_batch.is_some(), "--max-lease-batch"),
        (args.reserve.is_some(), "--reserve"),
        (!args.dirmon.dirmon_allow.is_empty(), "--dirmon-allow"),
    ];
    if let Some((_, flag)) = local_only.iter().find(|(given, _)| *given) {
        return Err(crate::exit::usage(format!(
            "{flag} is for `booster work` on the data directory; a remote worker's node decides it"
        )));
    }
    let opts = WorkOptions {
        server: cli.server.clone().unwrap_or_default(),
        token_file: cli.token_file.clone(),
        ca_cert: booster_client::ca_cert_from_env(),
        threads: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        until_idle: args.until_idle,
        exec_allow: args.exec_allow.clone(),
        version: super::node::VERSION.to_string(),
    };
    work(opts, interrupt.wait()).await?;
    Ok(crate::exit::OK)
}
