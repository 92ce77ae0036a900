//! Every line the harness appends names the commit its code was built
//! from, wherever the run starts (issue 17, provenance): a binary copied
//! aside to compare old and new code, or run from another directory,
//! recorded "unknown" before.

use std::process::Command;

mod common;

#[test]
fn a_run_outside_the_repository_records_the_commit_it_was_built_from() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo)
        .output()
        .expect("git runs");
    assert!(
        head.status.success(),
        "the harness is built from a git checkout"
    );
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let outside = tempfile::tempdir().unwrap();
    let results = outside.path().join("results.jsonl");
    let data = outside.path().join("data");
    let args: Vec<&std::ffi::OsStr> = vec![
        "limit".as_ref(),
        "--quick".as_ref(),
        "--records".as_ref(),
        "1000".as_ref(),
        "--results".as_ref(),
        results.as_os_str(),
        "--dir".as_ref(),
        data.as_os_str(),
    ];
    common::run_harness(&args, outside.path());
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(text.lines().count() > 0, "the run appended its lines");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let commit = v["commit"].as_str().unwrap();
        assert!(
            commit == head || commit == format!("{head}-dirty"),
            "line names commit {commit:?}, the build's is {head}: {line}"
        );
    }
}
