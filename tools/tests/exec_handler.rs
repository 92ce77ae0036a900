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
    let (rt, runtime) = runtime(dir.path(), Duration::from_millis(300));
    let id = exec_job(&rt, &runtime, "sleep 1; tr a-z A-Z");
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
