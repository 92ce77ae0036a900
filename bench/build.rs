//! The commit the harness was built from, for every line it appends to
//! results.jsonl (issue 17, provenance). Taken at build time, not from
//! the directory a run starts in: a binary copied aside to compare old
//! and new code recorded "unknown", or the commit of whatever checkout it
//! ran in, not the code it measured.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    // Sources of every crate the harness measures: an edit there makes
    // the build dirty (a directory is scanned whole by cargo).
    for dir in [
        "src",
        "../runtime",
        "../store",
        "../tools",
        "../client",
        "../Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={dir}");
    }
    for (flag, file) in [
        ("--git-dir", "HEAD"),
        ("--git-dir", "index"),
        ("--git-common-dir", "packed-refs"),
        ("--git-common-dir", "refs/heads"),
    ] {
        if let Some(dir) = git(&["rev-parse", flag]) {
            let path = Path::new(&dir).join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            // The results file the harness appends to does not make a
            // build dirty.
            let dirty = git(&[
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ":/",
                ":(top,exclude)bench/results.jsonl",
            ])
            .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=BOOSTER_BENCH_COMMIT={commit}");
}
