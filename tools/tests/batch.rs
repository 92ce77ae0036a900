//! `booster batch` (issue 14): several files, a job each, and an
//! on-complete job made in the same commit, which runs once every job of
//! the batch has finished (a failed one included, and across a restart:
//! runtime/tests/behaviours/dependencies.rs).

use booster_tests::cli::Sandbox;

#[test]
fn a_batch_runs_its_on_complete_job_once_all_of_its_jobs_finished() {
    let sb = Sandbox::new();
    let a = sb.write("a.csv", b"name,n\nann,1\nbob,2\n");
    let b = sb.write("b.csv", b"who,what\nx,y\n");
    // b.csv has none of validate-customers' columns: refused before
    // anything is made.
    let out = sb.expect(
        1,
        &[
            "batch",
            "--input",
            &a.to_string_lossy(),
            "--input",
            &b.to_string_lossy(),
            "--kind",
            "validate-customers",
            "--on-complete-kind",
            "noop",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `id` column"));
    assert!(!sb.data().exists(), "nothing was made");
    let made = sb.json(&[
        "batch",
        "--input",
        &a.to_string_lossy(),
        "--input",
        &b.to_string_lossy(),
        "--kind",
        "copy",
        "--on-complete-kind",
        "noop",
        "--on-complete-args",
        r#"{"report": "q1"}"#,
    ]);
    let jobs: Vec<u64> = made["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_u64().unwrap())
        .collect();
    let then = made["on_complete"].as_u64().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(sb.job(then)["state"], "waiting");
    sb.ok(&["work", "--until-idle"]);
    let done = sb.job(then);
    assert_eq!(done["state"], "completed", "{done:#}");
    for id in &jobs {
        let job = sb.job(*id);
        assert_eq!(job["state"], "completed", "{job:#}");
        assert!(
            done["started_at_ms"].as_u64().unwrap() >= job["completed_at_ms"].as_u64().unwrap(),
            "job {id} finished after the on-complete job started"
        );
    }
    assert_eq!(sb.jobs().len(), 3);
}

#[test]
fn a_batch_without_inputs_or_on_complete_kind_is_refused() {
    let sb = Sandbox::new();
    let a = sb.write("a.csv", b"x\n");
    for (args, says) in [
        (
            vec!["batch", "--kind", "copy", "--on-complete-kind", "noop"],
            "--input",
        ),
        (
            vec!["batch", "--input", &a.to_string_lossy(), "--kind", "copy"],
            "--on-complete-kind",
        ),
        (
            vec![
                "batch",
                "--input",
                &a.to_string_lossy(),
                "--kind",
                "copy",
                "--on-complete-kind",
                "copy",
            ],
            "simple job",
        ),
    ] {
        let out = sb.expect(2, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
