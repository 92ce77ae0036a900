//! `booster serve`: the HTTP API and the web dashboard (issue 5).
//! Placeholder until the serve work lands; the CLI calls `run`.

use std::path::PathBuf;

use booster_runtime::RuntimeOptions;

/// What `booster serve` was asked for (besides the runtime's options).
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// e.g. "127.0.0.1:7878".
    pub listen: String,
    pub token_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// Opens the runtime (register the kinds with
/// `crate::kinds::register_builtin`) and serves until Ctrl-C.
pub async fn run(
    runtime_options: RuntimeOptions,
    serve_options: ServeOptions,
) -> anyhow::Result<()> {
    let _ = (runtime_options, serve_options);
    anyhow::bail!("`booster serve` is not built yet")
}
