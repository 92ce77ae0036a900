//! Encryption at rest through the `booster` command: with a key, marker
//! strings from the input never appear in any file under the data directory
//! after upload, processing, crash recovery and compaction (G6); a wrong or
//! missing key gives a clear error and changes no byte on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use booster_tests::cli::{assert_no_crash, describe, run_then_kill, Sandbox};
use booster_tests::rng::{seed, Rng};

const MARKER: &str = "ZEBRA-MARKER-7f3a9c";

/// A CSV whose every row carries the marker in its name and (in upper case,
/// so the normalised output differs from the input) in its email.
fn input(n: u64) -> String {
    let mut csv = String::from("id,name,email\n");
    for id in 1..=n {
        let email = if id % 11 == 4 {
            format!("{MARKER}-bad-email-{id}")
        } else {
            format!("{MARKER}{id}@EXAMPLE.COM")
        };
        csv.push_str(&format!("{id},Name {MARKER} {id},{email}\n"));
    }
    csv
}

/// Every regular file under `dir`, recursively, with its bytes. `LOCK` is
/// left out where `skip_lock`: it holds the pid of the last process that
/// opened the directory, which says nothing about the data.
fn files_in(dir: &Path, skip_lock: bool) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if skip_lock && p.file_name().is_some_and(|n| n == "LOCK") {
                continue;
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.insert(p, bytes);
            }
        }
    }
    out
}

/// Asserts no file under the data directory contains a marker, in any case.
fn assert_no_clear_text(sb: &Sandbox, when: &str) {
    let needles = [
        MARKER.to_string(),
        MARKER.to_lowercase(),
        "Name ZEBRA".to_string(),
    ];
    let files = files_in(&sb.data(), false);
    assert!(
        !files.is_empty(),
        "no files under the data directory {when}"
    );
    for (path, bytes) in files {
        for needle in &needles {
            let found = bytes
                .windows(needle.len())
                .position(|w| w == needle.as_bytes());
            assert!(
                found.is_none(),
                "{needle:?} in clear text in {} at byte {} {when}",
                path.display(),
                found.unwrap_or(0)
            );
        }
    }
}

#[test]
fn with_a_key_no_record_text_is_ever_stored_in_clear() {
    let seed = seed("with_a_key_no_record_text_is_ever_stored_in_clear");
    let mut rng = Rng::new(seed);
    let sb = Sandbox::encrypted();
    let path = sb.write("customers.csv", input(3000).as_bytes());
    let submit = |sb: &Sandbox| {
        let v = sb.json(&[
            "submit",
            "--kind",
            "validate-customers",
            "--collect-errors",
            "--slice-size",
            "20",
            "--input",
            path.to_str().unwrap(),
        ]);
        v["id"].as_u64().unwrap()
    };
    let first = submit(&sb);
    assert_no_clear_text(&sb, "after upload");
    // Crash recovery: work killed a few times (torn tails recovered), then finished.
    for _ in 0..5 {
        let _ = run_then_kill(
            sb.cmd(&["work", "--until-idle"]),
            Duration::from_millis(rng.range(0, 300)),
        );
        assert_no_clear_text(&sb, "after a killed work");
    }
    let out = sb.cmd(&["work", "--until-idle"]).output().unwrap();
    assert_no_crash("booster work", &out);
    assert_eq!(sb.job(first)["state"], "completed");
    assert_no_clear_text(&sb, "after processing");
    // The markers are real: they come back out of the job when decrypted.
    let out_path = sb.path("out.csv");
    let err_path = sb.path("errors.jsonl");
    let first_s = first.to_string();
    let out = sb.run(&[
        "download",
        &first_s,
        "--output",
        out_path.to_str().unwrap(),
        "--errors",
        err_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert!(text.contains(&MARKER.to_lowercase()) && text.contains(&format!("Name {MARKER}")));
    assert!(std::fs::read_to_string(&err_path).unwrap().contains(MARKER));
    assert_no_clear_text(&sb, "after download");
    let second = submit(&sb);
    sb.ok(&["job", "destroy", &first_s]);
    let _ = run_then_kill(
        sb.cmd(&["compact"]),
        Duration::from_millis(rng.range(0, 200)),
    );
    sb.ok(&["compact"]);
    assert_no_clear_text(&sb, "after compaction");
    let out = sb.cmd(&["work", "--until-idle"]).output().unwrap();
    assert_no_crash("booster work", &out);
    assert_eq!(sb.job(second)["state"], "completed");
    assert_no_clear_text(&sb, "at the end");
    sb.ok(&["verify"]);
}

#[test]
fn a_wrong_or_missing_key_is_a_clear_error_and_changes_nothing_on_disk() {
    let mut sb = Sandbox::encrypted();
    let path = sb.write("customers.csv", input(500).as_bytes());
    let v = sb.json(&[
        "submit",
        "--kind",
        "validate-customers",
        "--collect-errors",
        "--input",
        path.to_str().unwrap(),
    ]);
    let id = v["id"].as_u64().unwrap().to_string();
    // A second job half processed (killed), so recovery would have work to do.
    let _ = run_then_kill(
        sb.cmd(&["work", "--until-idle"]),
        Duration::from_millis(150),
    );
    let before = files_in(&sb.data(), true);
    let right_key = sb.key_file.clone();
    let wrong = sb.path("wrong.key");
    sb.key_file = None;
    sb.ok(&["keygen", "--out", wrong.to_str().unwrap()]);
    let out_path = sb.path("out.csv");
    let commands: Vec<Vec<&str>> = vec![
        vec!["work", "--until-idle"],
        vec!["job", "show", &id],
        vec!["jobs"],
        vec!["download", &id, "--output", out_path.to_str().unwrap()],
        vec![
            "submit",
            "--kind",
            "copy",
            "--input",
            path.to_str().unwrap(),
        ],
        vec!["compact"],
        vec!["job", "destroy", &id],
    ];
    for (key, expect) in [(Some(wrong.clone()), "wrong key"), (None, "--key-file")] {
        sb.key_file = key;
        for args in &commands {
            let out = sb.run(args);
            assert_no_crash("booster with a wrong key", &out);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && stderr.contains(expect),
                "booster {args:?} with key {:?} must fail saying {expect:?}\n{}",
                sb.key_file,
                describe(&out)
            );
        }
        let after = files_in(&sb.data(), true);
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "files appeared or vanished"
        );
        for (p, bytes) in &before {
            assert!(after[p] == *bytes, "{} changed", p.display());
        }
    }
    // The right key still works on the untouched data.
    sb.key_file = right_key;
    let out = sb.cmd(&["work", "--until-idle"]).output().unwrap();
    assert_no_crash("booster work", &out);
    assert_eq!(sb.job(id.parse().unwrap())["state"], "completed");
}
