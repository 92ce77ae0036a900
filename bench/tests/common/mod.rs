//! What the harness's process tests share.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// Runs the harness binary with `args` in `cwd` and returns its stdout,
/// failing the test with its stderr when it did not succeed.
pub fn run_harness<S: AsRef<OsStr>>(args: &[S], cwd: &Path) -> String {
    let run = Command::new(env!("CARGO_BIN_EXE_booster-bench"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}
