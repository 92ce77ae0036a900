//! The built-in job kinds. `register_builtin` registers them all on a
//! runtime; `booster serve`, the bench harness and tests call it too.
//!
//! ```no_run
//! # async fn f() -> Result<(), booster_runtime::RuntimeError> {
//! let rt = booster_runtime::Runtime::open(booster_runtime::RuntimeOptions::new("./d")).await?;
//! booster_tools::kinds::register_builtin(&rt);
//! # Ok(()) }
//! ```

mod copy;
mod exec;
mod noop;
mod validate;

use std::sync::Arc;

use booster_runtime::Runtime;

pub use copy::Copy;
pub use exec::{Exec, ExecPolicy, DEFAULT_MAX_OUTPUT_BYTES};
pub use noop::Noop;
pub use validate::{is_valid_email, ValidateCustomers, REQUIRED_COLUMNS};

/// Sliced: each record to the output unchanged.
pub const COPY: &str = "copy";
/// Sliced: each slice's records through a shell command (property `cmd`).
pub const EXEC: &str = "exec";
/// Sliced, CSV with a header: trim, lower-case emails, reject bad rows.
pub const VALIDATE_CUSTOMERS: &str = "validate-customers";
/// Simple: does nothing, returns its arguments.
pub const NOOP: &str = "noop";

/// Names of the sliced kinds, for `--help` and error messages.
pub const SLICED_KINDS: [&str; 3] = [COPY, EXEC, VALIDATE_CUSTOMERS];

/// Registers the built-in kinds with `exec` running any command: for the
/// CLI, where whoever submits a job is the operator.
pub fn register_builtin(runtime: &Runtime) {
    register_builtin_with(runtime, ExecPolicy::Any);
}

/// Registers the built-in kinds with `exec` running only what `exec` allows
/// (`booster serve` passes its `--exec-allow` list).
pub fn register_builtin_with(runtime: &Runtime, exec: ExecPolicy) {
    for (kind, handler) in builtin(exec) {
        match handler {
            Handler::Sliced(h) => runtime.register_sliced(kind, h),
            Handler::Simple(h) => runtime.register_simple(kind, h),
        }
    }
}

/// A kind's handler, of either shape (one type for this process and a
/// remote worker).
pub use booster_client::Handler;

/// The built-in kinds with `exec` running only what `exec` allows: what
/// a process registers, and what a remote worker runs.
pub fn builtin(exec: ExecPolicy) -> Vec<(&'static str, Handler)> {
    vec![
        (COPY, Handler::Sliced(Arc::new(Copy))),
        (EXEC, Handler::Sliced(Arc::new(Exec::new(exec)))),
        (
            VALIDATE_CUSTOMERS,
            Handler::Sliced(Arc::new(ValidateCustomers)),
        ),
        (NOOP, Handler::Simple(Arc::new(Noop))),
    ]
}
