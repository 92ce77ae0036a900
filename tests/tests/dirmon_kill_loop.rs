//! A dirmon directory fed files while `booster work --dirmon-allow` is
//! killed with SIGKILL at seeded random moments (issue 14): in the end
//! every file is exactly one job, completed, with all of its records, and
//! is in the archive, once; nothing is left in the watched directory or
//! the inbox. A kill can land in any step of taking a file: the claim, the
//! submit, the upload, the resume, the archive move.
//!
//! Short by default; `BOOSTER_LONG=1` runs hundreds of cycles.
//! `BOOSTER_SEED=<n>` replays a run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use booster_tests::cli::{describe, interrupt, run_then_kill, Ending, Sandbox};
use booster_tests::rng::{scale, seed, Rng};

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|l| {
            l.flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn files_fed_while_work_is_killed_at_random_each_become_exactly_one_job() {
    let seed = seed("files_fed_while_work_is_killed_at_random_each_become_exactly_one_job");
    let mut rng = Rng::new(seed);
    let sb = Sandbox::new();
    let root = sb.path("feeds");
    let (inbox, done) = (root.join("in"), root.join("done"));
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&done).unwrap();
    let pattern = format!("{}/*.csv", inbox.display());
    let archive = done.display().to_string();
    sb.ok(&[
        "dirmon",
        "add",
        "--pattern",
        &pattern,
        "--archive",
        &archive,
        "--settle",
        "30ms",
        "--kind",
        "copy",
        "--format",
        "lines",
        "--slice-size",
        "40",
    ]);
    let allow = root.display().to_string();
    let work = || {
        sb.cmd(&[
            "work",
            "--dirmon-allow",
            &allow,
            "--dirmon-rescan",
            "0.1",
            "--workers",
            "2",
        ])
    };

    // Every file fed: its name and its contents.
    let mut fed: BTreeMap<String, String> = BTreeMap::new();
    let mut kills = 0;
    for cycle in 0..scale(10, 250) {
        for _ in 0..rng.range(1, 4) {
            let name = format!("f{cycle:04}-{}.csv", fed.len());
            let lines = rng.range(1, 400);
            let body: String = (0..lines).map(|i| format!("{name} line {i}\n")).collect();
            // Written whole under a skipped name, then moved in: a feeder
            // that writes in place is what --settle is for.
            let tmp = inbox.join(format!("{name}.tmp"));
            std::fs::write(&tmp, &body).unwrap();
            std::fs::rename(&tmp, inbox.join(&name)).unwrap();
            fed.insert(name, body);
        }
        match run_then_kill(work(), Duration::from_millis(rng.range(40, 700))) {
            Ending::Killed { .. } => kills += 1,
            Ending::Finished(out) => panic!("work ended on its own: {}", describe(&out)),
        }
    }

    // A last life with no kill: it takes what is left and settles the inbox.
    let mut last = work()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !(listing(&inbox).is_empty() && listing(&done.join(".booster-inbox")).is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "files left: in {:?}, inbox {:?}",
            listing(&inbox),
            listing(&done.join(".booster-inbox"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Once its handler is installed: a SIGINT sent before it (the inbox
    // can be empty the moment the life starts) is dropped where the test
    // runs with SIGINT ignored, and the life never stops.
    interrupt(&last);
    let status = last.wait().unwrap();
    assert!(status.success() || status.code() == Some(130), "{status:?}");
    sb.ok(&["work", "--until-idle"]);

    let jobs = sb.jobs();
    eprintln!("{} files, {} jobs, {kills} kills", fed.len(), jobs.len());
    let mut by_file: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for job in &jobs {
        let source = job["properties"]["dirmon"]["source"]
            .as_str()
            .unwrap_or_else(|| panic!("a job not made by dirmon: {job:#}"));
        let name = Path::new(source).file_name().unwrap().to_string_lossy();
        by_file.entry(name.into_owned()).or_default().push(job);
    }
    let archived = listing(&done);
    assert_eq!(archived.len(), fed.len(), "archive: {archived:?}");
    for (name, body) in &fed {
        let jobs = by_file.get(name).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(jobs.len(), 1, "{name}: {jobs:#?}");
        let job = jobs[0];
        assert_eq!(job["state"], "completed", "{name}: {job:#}");
        assert_eq!(job["records_in"], body.lines().count(), "{name}: {job:#}");
        assert_eq!(job["records_out"], body.lines().count(), "{name}: {job:#}");
        let file = job["properties"]["dirmon"]["file"].as_str().unwrap();
        assert!(file.ends_with(&format!("-{name}")), "{file} for {name}");
        assert_eq!(
            &std::fs::read_to_string(done.join(file)).unwrap(),
            body,
            "{file}"
        );
    }
    assert_eq!(
        by_file.len(),
        fed.len(),
        "jobs for files never fed: {by_file:#?}"
    );
}
