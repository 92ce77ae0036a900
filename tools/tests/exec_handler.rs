//! `exec` on the real runtime: it heartbeats while its command runs, and the
//! command's whole process group dies when the lease ends.

use std::path::Path;
use std::time::{Duration, Instant};

use booster_runtime::{JobSpec, JobState, Runtime, RuntimeOptions};

/// Polls `cond` every 20 ms for up to `limit` (a bound on a hang, not a
/// measured time: every condition here becomes true in milliseconds).
fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn runtime(dir: &Path, lease_timeout: Duration) -> (tokio::runtime::Runtime, Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runtime = rt.block_on(async {
        let mut opts = RuntimeOptions::new(dir.join("data"));
        opts.workers = 1;
        opts.lease_timeout = lease_timeout;
        let runtime = Runtime::open(opts).await.unwrap();
        booster_tools::kinds::register_builtin(&runtime);
        runtime
    });
    (rt, runtime)
}

fn exec_job(rt: &tokio::runtime::Runtime, runtime: &Runtime, cmd: &str) -> u64 {
    rt.block_on(async {
        let mut spec = JobSpec::sliced("exec");
        spec.properties = serde_json::json!({ "cmd": cmd });
        let id = runtime.submit(spec).await.unwrap();
        let mut up = runtime.upload(id).await.unwrap();
        up.push(b"a".to_vec()).await.unwrap();
        up.push(b"b".to_vec()).await.unwrap();
        up.finish().await.unwrap();
        id
    })
}

fn alive(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next();
    !stat.is_empty() && state != Some("Z")
}

#[test]
fn a_command_slower_than_the_lease_keeps_it_by_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    // The command outlives three leases; the lease is long enough that a
    // loaded machine's scheduling stall (the worker heartbeats every 100 ms)
    // does not end it: it failed once at 300 ms with a load of 7.5.
    let (rt, runtime) = runtime(dir.path(), Duration::from_millis(1000));
    let id = exec_job(&rt, &runtime, "sleep 3; tr a-z A-Z");
    let done = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), runtime.wait(id)).await })
        .expect("the job finishes")
        .unwrap();
    assert_eq!(done.state, JobState::Completed, "{:?}", done.errors);
    assert_eq!(done.records_out, 2);
    assert_eq!(
        runtime.metrics().lease_expiries,
        0,
        "heartbeats kept the one lease"
    );
    rt.block_on(runtime.shutdown(Duration::from_secs(5)))
        .unwrap();
}

#[test]
fn aborting_the_job_kills_the_commands_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, runtime) = runtime(dir.path(), Duration::from_secs(30));
    let pid_file = dir.path().join("pid");
    let cmd = format!("sleep 120 & echo $! > {}; wait", pid_file.display());
    let id = exec_job(&rt, &runtime, &cmd);
    let mut pid = String::new();
    eventually("the command started", Duration::from_secs(20), || {
        pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_default()
            .trim()
            .to_string();
        !pid.is_empty()
    });
    assert!(alive(&pid));
    rt.block_on(runtime.abort(id)).unwrap();
    eventually(
        "the abort killed the group",
        Duration::from_secs(20),
        || !alive(&pid),
    );
    rt.block_on(runtime.shutdown(Duration::from_secs(5)))
        .unwrap();
}

/// A job submitted with `after` gets each dependency's output as a pipe
/// named in `BOOSTER_AFTER_OUTPUT_FDS`, never a file: the command reads
/// them in order; a dependency bigger than a pipe's buffer does not hang
/// a command that never reads it.
#[test]
fn exec_reads_its_dependencies_output_from_the_fds_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, runtime) = runtime(dir.path(), Duration::from_secs(30));
    let (small, big) = rt.block_on(async {
        let mut ids = Vec::new();
        for lines in [2usize, 40_000] {
            let id = runtime.submit(JobSpec::sliced("copy")).await.unwrap();
            let mut up = runtime.upload(id).await.unwrap();
            for i in 0..lines {
                up.push(format!("dep{id} line {i}").into_bytes())
                    .await
                    .unwrap();
            }
            up.finish().await.unwrap();
            assert_eq!(runtime.wait(id).await.unwrap().state, JobState::Completed);
            ids.push(id);
        }
        (ids[0], ids[1])
    });
    let reader = |cmd: &str, after: &[u64]| {
        rt.block_on(async {
            let mut spec =
                JobSpec::sliced("exec").with_after(after, booster_runtime::DependencyFailure::Fail);
            spec.properties = serde_json::json!({ "cmd": cmd });
            let id = runtime.submit(spec).await.unwrap();
            let mut up = runtime.upload(id).await.unwrap();
            up.push(b"x".to_vec()).await.unwrap();
            up.finish().await.unwrap();
            let done = runtime.wait(id).await.unwrap();
            assert_eq!(done.state, JobState::Completed, "{:?}", done.failure_reason);
            let out: Vec<String> = runtime
                .download(id, booster_runtime::Category::Main)
                .unwrap()
                .map(|r| String::from_utf8(r.unwrap()).unwrap())
                .collect();
            out
        })
    };
    let out = reader(
        r#"cat >/dev/null; echo "$BOOSTER_AFTER_JOB_IDS|$BOOSTER_AFTER_OUTPUT_FDS"; for fd in $BOOSTER_AFTER_OUTPUT_FDS; do readlink /proc/self/fd/$fd | cut -c1-5; eval "cat <&$fd"; done"#,
        &[small],
    );
    assert_eq!(
        out,
        [
            format!("{small}|3"),
            "pipe:".to_string(),
            format!("dep{small} line 0"),
            format!("dep{small} line 1"),
        ]
    );
    // Both streams, in the order of `after`; the big one only counted.
    let out = reader(
        r#"cat >/dev/null; eval "cat <&3"; eval "wc -l <&4""#,
        &[small, big],
    );
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[2].trim(), "40000");
    // A command that never reads a 40,000-line dependency finishes.
    let out = reader("cat", &[big]);
    assert_eq!(out, ["x"]);
    rt.block_on(runtime.shutdown(Duration::from_secs(5)))
        .unwrap();
}
