//! Handlers that misbehave, in a real process (`fault-worker`, the runtime
//! embedded with test handlers and a short lease timeout): one that hangs
//! loses its lease and another worker finishes the slice, the late commit
//! is rejected and the output holds the slice once; one that always hangs
//! fails its slice as hung after three expired leases while the other slices
//! complete; one that panics has its
//! records accounted for in `errors` while other jobs run on; one that exits
//! the process loses nothing once the work is restarted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use booster_tests::cli::{describe, fault_worker_bin};
use serde_json::Value;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(fault_worker_bin())
            .arg(self.path("data"))
            .args(args)
            .output()
            .unwrap()
    }
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "fault-worker {args:?}\n{}",
            describe(&out)
        );
        out
    }
    /// Submits the lines as a sliced job of `kind`; returns its id.
    fn submit(&self, kind: &str, lines: &[String], slice: usize, collect: bool) -> u64 {
        let input = self.path(&format!("{kind}.txt"));
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        let mut args = vec!["submit", kind, input.to_str().unwrap()];
        let slice = slice.to_string();
        args.push(&slice);
        if collect {
            args.push("collect");
        }
        let out = self.ok(&args);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
    fn job(&self, id: u64) -> Value {
        let out = self.ok(&["jobs"]);
        let jobs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        jobs.into_iter()
            .find(|j| j["id"] == id)
            .unwrap_or_else(|| panic!("job {id} is not listed"))
    }
    /// (main, errors) records of a job.
    fn download(&self, id: u64) -> (Vec<String>, Vec<String>) {
        let (main, errors) = (self.path("main.out"), self.path("errors.out"));
        self.ok(&[
            "download",
            &id.to_string(),
            main.to_str().unwrap(),
            errors.to_str().unwrap(),
        ]);
        let read = |p: &Path| -> Vec<String> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        };
        (read(&main), read(&errors))
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.path("log.txt")).unwrap_or_default()
    }
}

fn lines(n: usize, special: &[(usize, &str)]) -> Vec<String> {
    (1..=n)
        .map(|i| match special.iter().find(|(at, _)| *at == i) {
            Some((_, tag)) => format!("rec-{i:04}-{tag}"),
            None => format!("rec-{i:04}"),
        })
        .collect()
}

#[test]
fn a_hung_handler_loses_its_lease_another_worker_finishes_and_the_slice_is_output_once() {
    let s = Setup::new();
    let input = lines(60, &[(23, "HANG")]);
    let id = s.submit("hang-once", &input, 5, false);
    let log = s.path("log.txt");
    // Lease timeout 500 ms; the hung record sleeps 3 s without a heartbeat.
    let out = s.ok(&["work", log.to_str().unwrap(), "500"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["lease_expiries"].as_u64().unwrap() >= 1,
        "the hung lease never expired: {report}"
    );
    let logged = s.log();
    assert_eq!(
        logged.matches("run rec-0023-HANG").count(),
        2,
        "the slice ran twice: {logged}"
    );
    assert_eq!(
        logged.matches("woke").count(),
        1,
        "the hung handler woke up: {logged}"
    );
    let job = s.job(id);
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["records_out"], 60, "{job}");
    assert_eq!(job["slices_done"], job["slices_total"], "{job}");
    let (main, errors) = s.download(id);
    assert_eq!(
        main, input,
        "the output must hold every record once, in order"
    );
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn a_handler_that_always_hangs_fails_its_slice_as_hung_after_three_expired_leases() {
    let s = Setup::new();
    let input = lines(30, &[(12, "HANG")]);
    let id = s.submit("hang-always", &input, 5, false);
    let log = s.path("log.txt");
    // Lease timeout 300 ms; the hung record never returns.
    let out = s.ok(&["work", log.to_str().unwrap(), "300"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["lease_expiries"], 3, "{report}");
    let logged = s.log();
    assert_eq!(
        logged.matches("run rec-0012-HANG").count(),
        3,
        "the slice ran once per lease: {logged}"
    );
    let job = s.job(id);
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(
        (job["slices_done"].as_u64(), job["slices_failed"].as_u64()),
        (Some(5), Some(1)),
        "{job}"
    );
    let message = job["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("hung: lease expired 3 times"), "{job}");
    let (main, _) = s.download(id);
    let want: Vec<String> = input[..10].iter().chain(&input[15..]).cloned().collect();
    assert_eq!(main, want, "every other slice is output once, in order");
}

#[test]
fn a_panicking_handler_is_accounted_for_and_other_jobs_are_unaffected() {
    let s = Setup::new();
    let panicky: Vec<(usize, &str)> = (1..=10).map(|k| (k * 10 - 3, "PANIC")).collect();
    let input = lines(100, &panicky);
    let bad = s.submit("panic-on", &input, 8, true);
    let other_input = lines(100, &[]);
    let other = s.submit("echo", &other_input, 8, false);
    s.ok(&["work", s.path("log.txt").to_str().unwrap()]);
    let job = s.job(bad);
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["records_in"], 100, "{job}");
    assert_eq!(job["records_out"], 90, "{job}");
    assert_eq!(job["records_errors"], 10, "{job}");
    let (main, errors) = s.download(bad);
    let want: Vec<String> = input
        .iter()
        .filter(|l| !l.contains("PANIC"))
        .cloned()
        .collect();
    assert_eq!(main, want);
    assert_eq!(errors.len(), 10, "{errors:?}");
    for (e, (at, _)) in errors.iter().zip(&panicky) {
        assert!(
            e.contains(&format!("rec-{at:04}-PANIC")),
            "error names the record: {e}"
        );
        assert!(
            e.to_lowercase().contains("panic"),
            "error says it panicked: {e}"
        );
    }
    let job = s.job(other);
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(s.download(other).0, other_input);
}

#[test]
fn a_handler_that_exits_the_process_loses_nothing_after_restart() {
    let s = Setup::new();
    let input = lines(100, &[(41, "EXIT")]);
    let id = s.submit("exit-once", &input, 10, false);
    let log = s.path("log.txt");
    let first = s.run(&["work", log.to_str().unwrap()]);
    assert_eq!(
        first.status.code(),
        Some(17),
        "the handler exited the process\n{}",
        describe(&first)
    );
    let job = s.job(id);
    assert_ne!(job["state"], "completed", "{job}");
    s.ok(&["work", log.to_str().unwrap()]);
    let job = s.job(id);
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["records_out"], 100, "{job}");
    assert_eq!(s.download(id).0, input);
}
