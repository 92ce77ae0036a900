//! `booster --server URL ...`: the CLI's own commands over HTTP.

use std::io::Write;

use booster_runtime::JobState;
use booster_tests::gate::GATED;
use clap::Parser;

use super::TestServer;
use crate::cli::Cli;

fn booster(t: &TestServer, args: &[&str]) -> anyhow::Result<i32> {
    let mut argv = vec!["booster", "--server", &t.url];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(crate::remote::run(
        &cli,
        &crate::commands::Interrupt::never(),
    ))
}

#[test]
fn submit_priority_and_download_work_over_http_with_compressed_files() {
    let t = TestServer::start();
    let input = t.dir().join("in.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&input).unwrap(),
        flate2::Compression::fast(),
    );
    write!(gz, "id,name\n1,alice\n2,bob\n3,carol\n").unwrap();
    gz.finish().unwrap();

    let code = booster(
        &t,
        &[
            "submit",
            "--kind",
            GATED,
            "--input",
            input.to_str().unwrap(),
            "--priority",
            "20",
        ],
    )
    .unwrap();
    assert_eq!(code, 0);
    let jobs = t.client().jobs(&Default::default()).unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!((job.records_in, job.priority), (3, 20));
    assert_eq!(job.properties["csv_header"], "id,name");
    assert_eq!(job.properties["format"], "csv");

    assert_eq!(
        booster(&t, &["job", "priority", &job.id.to_string(), "4"]).unwrap(),
        0
    );
    assert_eq!(t.job(job.id).priority, 4);
    let id = job.id.to_string();
    let err = Cli::try_parse_from(["booster", "--server", &t.url, "job", "priority", &id, "0"])
        .unwrap_err();
    assert_eq!(err.exit_code(), crate::exit::USAGE, "{err}");
    assert_eq!(booster(&t, &["jobs", "--state", "running"]).unwrap(), 0);

    assert_eq!(t.finish(job.id, 3), JobState::Completed);
    let output = t.dir().join("out.csv.zst");
    let code = booster(
        &t,
        &[
            "download",
            &job.id.to_string(),
            "--output",
            output.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(code, 0);
    let text = zstd::decode_all(std::fs::File::open(&output).unwrap()).unwrap();
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "id,name\n1,alice\n2,bob\n3,carol\n"
    );
}

#[test]
fn an_unknown_job_over_http_says_so() {
    let t = TestServer::start();
    let err = booster(&t, &["job", "show", "77"]).unwrap_err().to_string();
    assert!(err.contains("job 77 not found"), "{err}");
}

#[test]
fn retention_destroy_on_complete_and_its_submit_flag_work_over_http() {
    let t = TestServer::start();
    assert_eq!(booster(&t, &["retention"]).unwrap(), 0);
    assert_eq!(
        booster(&t, &["retention", "--completed", "1d", "--failed", "90d"]).unwrap(),
        0
    );
    let day_ms = 86_400_000;
    let stored = t.runtime().retention();
    assert_eq!(
        (stored.completed_ms, stored.aborted_ms, stored.failed_ms),
        (day_ms, 7 * day_ms, 90 * day_ms)
    );
    let err = Cli::try_parse_from([
        "booster",
        "--server",
        &t.url,
        "retention",
        "--failed",
        "-3d",
    ])
    .unwrap_err();
    assert_eq!(err.exit_code(), crate::exit::USAGE, "{err}");
    assert!(
        err.to_string().contains("such as 7d, 12h, 30m or 90s"),
        "{err}"
    );

    assert_eq!(
        booster(&t, &["kind", "destroy-on-complete", "copy", "on"]).unwrap(),
        0
    );
    let views = t.runtime().kinds_settings();
    let copy = views.iter().find(|v| v.kind == "copy").unwrap();
    assert!(copy.stored.unwrap().destroy_on_complete);

    let input = t.dir().join("in.txt");
    std::fs::write(&input, "a\nb\n").unwrap();
    let code = booster(
        &t,
        &[
            "submit",
            "--kind",
            GATED,
            "--input",
            input.to_str().unwrap(),
            "--destroy-on-complete",
        ],
    )
    .unwrap();
    assert_eq!(code, 0);
    let id = t.client().jobs(&Default::default()).unwrap()[0].id;
    t.gate.release(2);
    // The wait answers the state the tombstone kept: a success.
    let waited = t.rt.block_on(t.runtime().wait(id)).unwrap();
    assert_eq!(waited.state, JobState::Completed);
    let err = booster(&t, &["job", "show", &id.to_string()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("it was completed, then destroyed at"), "{err}");
}
