//! `exec`: a slice's records go to a shell command's stdin, one per line; its
//! stdout lines are the slice's output. A non-zero exit fails the slice and
//! keeps the end of its stderr as the reason. This lets people process
//! records in any language.
//!
//! The command is a well-behaved handler:
//! - it runs in its own process group, and the whole group is killed when
//!   the command exits (nothing it started outlives the slice), when the
//!   lease ends (expired, or the job was aborted, failed or destroyed), or
//!   when the handler gives up (output over the cap);
//! - the worker thread heartbeats while it runs, so a slow command keeps its
//!   lease and a hung one is visible only as long as it really runs;
//! - its output is read as it comes and capped per slice
//!   ([`DEFAULT_MAX_OUTPUT_BYTES`]); stderr keeps only its tail;
//! - it does not inherit `BOOSTER_KEY_FILE` or `BOOSTER_TOKEN_FILE`;
//! - a job submitted with `--after` reads each dependency's output as a
//!   stream, never as a file on this host's disk: file descriptors listed
//!   in `BOOSTER_AFTER_OUTPUT_FDS` (`"3 4"`, in the order of
//!   `BOOSTER_AFTER_JOB_IDS`), each a pipe the worker writes that job's
//!   `main` records into, one per line (`after_outputs`). Every slice's
//!   command gets the whole streams; a command that does not read them is
//!   fine (the writer stops when the command is done).
//!
//! Which commands may run is the operator's choice ([`ExecPolicy`]): the CLI
//! runs any (the person typing is the operator), `booster serve` only those
//! named by `--exec-allow`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use booster_runtime::{
    Category, Download, HandlerError, JobContext, Output, RecordHandler, SliceOutcome,
};

use crate::formats::props;

/// How much of a failing command's stderr is kept in the failure reason.
const STDERR_KEPT_BYTES: usize = 4096;

/// Output one slice's command may write before the slice fails.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// How often the worker heartbeats and checks its lease while the command runs.
const POLL: Duration = Duration::from_millis(100);

/// Environment variables a command never sees: they point at secrets.
const HIDDEN_ENV: [&str; 2] = ["BOOSTER_KEY_FILE", "BOOSTER_TOKEN_FILE"];

/// Which commands `exec` may run in this process.
#[derive(Clone, Debug)]
pub enum ExecPolicy {
    /// Any command: the CLI, where the job's submitter is the operator.
    Any,
    /// Only these commands, matched byte for byte (`booster serve --exec-allow`).
    Only(Arc<[String]>),
}

impl ExecPolicy {
    pub fn allows(&self, cmd: &str) -> bool {
        match self {
            ExecPolicy::Any => true,
            ExecPolicy::Only(list) => list.iter().any(|c| c == cmd),
        }
    }
}

pub struct Exec {
    pub policy: ExecPolicy,
    pub max_output_bytes: usize,
}

impl Exec {
    pub fn new(policy: ExecPolicy) -> Exec {
        Exec {
            policy,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
        }
    }
}

impl Exec {
    /// Why this process will not run `cmd`, or None when it may.
    fn not_allowed(&self, cmd: &str) -> Option<String> {
        (!self.policy.allows(cmd)).then(|| {
            format!(
                "command `{cmd}` is not allowed by this server; the operator allows a \
                 command by starting `booster serve --exec-allow 'COMMAND'`"
            )
        })
    }
}

impl RecordHandler for Exec {
    /// A job whose command this process does not allow is never leased
    /// here: it stays queued, and `job show` gives this reason.
    fn refuses(&self, job: &JobContext<'_>) -> Option<String> {
        let cmd = job.properties.get(props::CMD).and_then(|c| c.as_str())?;
        self.not_allowed(cmd)
    }

    fn process_to(
        &self,
        job: &JobContext<'_>,
        record: &[u8],
        out: &mut Output,
    ) -> Result<(), HandlerError> {
        match self.process_slice(job, &[record.to_vec()]) {
            SliceOutcome::Done { output, .. } => {
                out.main.extend(output);
                Ok(())
            }
            SliceOutcome::Categorized { output, .. } => {
                out.append(output);
                Ok(())
            }
            SliceOutcome::Failed { message } => Err(HandlerError(message)),
        }
    }

    fn process_slice(&self, job: &JobContext<'_>, records: &[Vec<u8>]) -> SliceOutcome {
        let Some(cmd) = job.properties.get(props::CMD).and_then(|c| c.as_str()) else {
            return SliceOutcome::Failed {
                message: "exec job has no `cmd` property; submit it with --cmd".into(),
            };
        };
        // Defence in depth: `refuses` keeps such a job from being leased.
        if let Some(message) = self.not_allowed(cmd) {
            return SliceOutcome::Failed { message };
        }
        let one_to_one = job
            .properties
            .get(props::EXEC_ONE_TO_ONE)
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let after = match after_outputs(job) {
            Ok(after) => after,
            Err(message) => return SliceOutcome::Failed { message },
        };
        match run_command(cmd, job.id, records, after, self.max_output_bytes) {
            Ok(output) if one_to_one && output.len() != records.len() => SliceOutcome::Failed {
                message: format!(
                    "command `{cmd}` wrote {} lines for {} records; the job asks for one \
                     line per record (--exec-one-to-one)",
                    output.len(),
                    records.len()
                ),
            },
            Ok(output) => match sort_lines(job, output) {
                Ok(output) => SliceOutcome::Categorized {
                    output,
                    record_errors: Vec::new(),
                },
                Err(message) => SliceOutcome::Failed { message },
            },
            Err(message) => SliceOutcome::Failed { message },
        }
    }
}

/// The command's stdout lines into the job's categories. A job without
/// categories takes every line as it is, as a record of `main`. In a job
/// with categories every line is `NAME<TAB>RECORD`, NAME one of the job's
/// own categories or `main`: a record can never be mistaken for a prefix
/// (a main record that itself starts with `review<TAB>` is written
/// `main<TAB>review<TAB>...`), and a line with no such prefix fails the
/// slice, naming the line, rather than landing anywhere silently.
fn sort_lines(job: &JobContext<'_>, lines: Vec<Vec<u8>>) -> Result<Output, String> {
    let mut output = Output::for_job(job);
    if job.categories.is_empty() {
        output.main = lines;
        return Ok(output);
    }
    for (n, line) in lines.into_iter().enumerate() {
        let prefix = memchr::memchr(b'\t', &line).and_then(|tab| {
            let name = std::str::from_utf8(&line[..tab]).ok()?;
            (name == "main" || job.categories.iter().any(|c| c == name))
                .then(|| (name.to_string(), tab))
        });
        let Some((name, tab)) = prefix else {
            return Err(format!(
                "line {} of the command's output has no category prefix: in a job with \
                 categories ({}) every line starts with `main<TAB>` or `NAME<TAB>`",
                n + 1,
                job.categories.join(", ")
            ));
        };
        let record = line[tab + 1..].to_vec();
        output.emit(&name, record).expect("the name is the job's");
    }
    Ok(output)
}

/// How reading the command's stdout ended.
enum Stdout {
    Lines(Vec<Vec<u8>>),
    OverCap,
    Failed(std::io::Error),
}

/// The `main` output of each job this one ran after, opened for reading.
fn after_outputs(job: &JobContext<'_>) -> Result<Vec<(u64, Download)>, String> {
    job.after()
        .into_iter()
        .map(|dep| {
            job.after_output(dep, Category::Main)
                .map(|d| (dep, d))
                .map_err(|e| {
                    format!("cannot read the output of job {dep}, which this job ran after: {e}")
                })
        })
        .collect()
}

/// A pipe whose read end the command gets at fd `3 + i`, and whose write
/// end a thread of the worker fills with one dependency's records.
struct AfterPipe {
    /// The read end, moved above every target fd (so setting up one target
    /// never closes another's source); close-on-exec, so only the dup
    /// the command gets survives `exec`.
    read: std::os::fd::OwnedFd,
    write: std::fs::File,
}

fn after_pipe(targets: usize) -> std::io::Result<AfterPipe> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, which we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors from pipe2, owned from here on.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let min = libc::c_int::try_from(3 + targets).unwrap_or(libc::c_int::MAX);
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor we own returns a new one.
    let high = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&read),
            libc::F_DUPFD_CLOEXEC,
            min,
        )
    };
    if high < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `high` is a fresh descriptor from fcntl; `read` is closed by its drop.
    let read = unsafe { OwnedFd::from_raw_fd(high) };
    Ok(AfterPipe {
        read,
        write: std::fs::File::from(write),
    })
}

fn run_command(
    cmd: &str,
    job: u64,
    records: &[Vec<u8>],
    after: Vec<(u64, Download)>,
    max_output_bytes: usize,
) -> Result<Vec<Vec<u8>>, String> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .env("BOOSTER_JOB_ID", job.to_string())
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in HIDDEN_ENV {
        command.env_remove(name);
    }
    let pipes = after
        .iter()
        .map(|_| after_pipe(after.len()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("cannot make the pipes for the outputs this job ran after: {e}"))?;
    if !after.is_empty() {
        let ids: Vec<String> = after.iter().map(|(id, _)| id.to_string()).collect();
        let fds: Vec<String> = (0..after.len()).map(|i| (3 + i).to_string()).collect();
        command
            .env("BOOSTER_AFTER_JOB_IDS", ids.join(" "))
            .env("BOOSTER_AFTER_OUTPUT_FDS", fds.join(" "));
        let sources: Vec<libc::c_int> = pipes
            .iter()
            .map(|p| std::os::fd::AsRawFd::as_raw_fd(&p.read))
            .collect();
        // SAFETY: the closure runs in the child between fork and exec and
        // calls only dup2, which is async-signal-safe; it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                for (i, &source) in sources.iter().enumerate() {
                    if libc::dup2(source, 3 + i as libc::c_int) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    // SAFETY: the closure runs in the child between fork and exec and
    // makes one prctl call (`restore_for_exec`): async-signal-safe, no
    // allocation. The command gets the huge-page setting this process
    // had before it turned them off for itself.
    unsafe {
        command.pre_exec(crate::huge_pages::restore_for_exec);
    }
    let spawned = command.spawn();
    // The command holds its own copies now: the worker keeps only the
    // write ends, so the command's exit ends every writer.
    let writers: Vec<(u64, Download, std::fs::File)> = after
        .into_iter()
        .zip(pipes)
        .map(|((id, download), pipe)| (id, download, pipe.write))
        .collect();
    let mut child = spawned.map_err(|e| format!("cannot start `sh -c {cmd}`: {e}"))?;
    let group = ProcessGroup(child.id());
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    std::thread::scope(|scope| {
        // Feeding stdin and draining stdout and stderr on their own threads
        // keeps a command that writes before it reads from deadlocking on
        // full pipes, and leaves this (the worker's) thread free to
        // heartbeat and watch its lease.
        scope.spawn(move || {
            for record in records {
                // A command that exits without reading everything closes the
                // pipe; its exit status says whether that was a failure.
                if stdin
                    .write_all(record)
                    .and_then(|()| stdin.write_all(b"\n"))
                    .is_err()
                {
                    break;
                }
            }
        });
        let feeders: Vec<_> = writers
            .into_iter()
            .map(|(id, download, file)| scope.spawn(move || feed_after(id, download, file)))
            .collect();
        let stderr_thread = scope.spawn(move || stderr_tail(stderr));
        let (done_tx, done_rx) = mpsc::channel();
        scope.spawn(move || {
            let _ = done_tx.send(read_lines(stdout, records.len(), max_output_bytes));
        });
        let ended = supervise(&mut child, &group, &done_rx);
        // Whatever happened, nothing the command started outlives the slice;
        // this also closes the pipes the readers wait on.
        group.kill();
        let stdout = match ended {
            Supervised::Read(stdout) => stdout,
            Supervised::LeaseEnded => {
                let _ = child.wait();
                return Err("the lease ended (expired, or the job was stopped); \
                            the command's process group was killed"
                    .to_string());
            }
        };
        let status = child
            .wait()
            .map_err(|e| format!("waiting for the command: {e}"))?;
        let stderr = stderr_thread.join().unwrap_or_default();
        for feeder in feeders {
            if let Ok(Err(message)) = feeder.join() {
                return Err(message);
            }
        }
        match stdout {
            Stdout::OverCap => {
                return Err(format!(
                    "command `{cmd}` wrote more than {max_output_bytes} bytes for one slice \
                     (the per-slice output cap); it was stopped. Submit smaller slices \
                     (--slice-size) or make the command write less"
                ))
            }
            Stdout::Failed(e) => return Err(format!("reading the command's output: {e}")),
            Stdout::Lines(output) if status.success() => return Ok(output),
            Stdout::Lines(_) => {}
        }
        Err(format!(
            "command `{cmd}` {status}: {}",
            String::from_utf8_lossy(&stderr).trim()
        ))
    })
}

/// Writes one dependency's records into the command's pipe, a line each.
/// A command that stops reading (it exited, or never read) ends it
/// quietly; a record the store cannot give is the slice's failure, never
/// a stream cut short without a word.
fn feed_after(id: u64, download: Download, file: std::fs::File) -> Result<(), String> {
    let mut out = std::io::BufWriter::new(file);
    for record in download {
        let record = record.map_err(|e| {
            format!("reading the output of job {id}, which this job ran after: {e}")
        })?;
        if out
            .write_all(&record)
            .and_then(|()| out.write_all(b"\n"))
            .is_err()
        {
            return Ok(());
        }
    }
    let _ = out.flush();
    Ok(())
}

enum Supervised {
    Read(Stdout),
    LeaseEnded,
}

/// Waits for the command's output on the worker thread, heartbeating, until
/// stdout is done or the lease ends. A shell that exited while something it
/// started still holds stdout open counts as done: the caller kills the
/// group, and the reader drains what was written.
fn supervise(child: &mut Child, group: &ProcessGroup, done: &mpsc::Receiver<Stdout>) -> Supervised {
    loop {
        booster_runtime::heartbeat();
        if booster_runtime::lease_ended() {
            group.kill();
            return Supervised::LeaseEnded;
        }
        match done.recv_timeout(POLL) {
            Ok(stdout) => return Supervised::Read(stdout),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Supervised::Read(Stdout::Failed(std::io::Error::other(
                    "the output reader stopped",
                )))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            group.kill();
            return match done.recv() {
                Ok(stdout) => Supervised::Read(stdout),
                Err(_) => Supervised::Read(Stdout::Failed(std::io::Error::other(
                    "the output reader stopped",
                ))),
            };
        }
    }
}

/// Reads stdout as lines, holding at most `max_bytes` of them.
fn read_lines(stdout: ChildStdout, expected: usize, max_bytes: usize) -> Stdout {
    let mut reader = BufReader::new(stdout);
    let mut output = Vec::with_capacity(expected);
    let mut line = Vec::new();
    let mut total = 0usize;
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) => break,
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Stdout::Failed(e),
        };
        let (take, end_of_line) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        total += take;
        if total > max_bytes {
            return Stdout::OverCap;
        }
        line.extend_from_slice(&buf[..take - usize::from(end_of_line)]);
        reader.consume(take);
        if end_of_line {
            output.push(std::mem::take(&mut line));
        }
    }
    if !line.is_empty() {
        output.push(line);
    }
    Stdout::Lines(output)
}

/// The last [`STDERR_KEPT_BYTES`] of stderr, read to its end.
fn stderr_tail(mut stderr: impl Read) -> Vec<u8> {
    let mut tail = Vec::with_capacity(2 * STDERR_KEPT_BYTES);
    let mut buf = [0u8; 8192];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * STDERR_KEPT_BYTES {
                    tail.drain(..tail.len() - STDERR_KEPT_BYTES);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    tail.split_off(tail.len().saturating_sub(STDERR_KEPT_BYTES))
}

/// The process group the command leads (its pgid is its pid).
struct ProcessGroup(u32);

impl ProcessGroup {
    /// SIGKILL to every process of the group; a group that is already gone
    /// (ESRCH) is the expected case after a clean exit.
    fn kill(&self) {
        use rustix::process::{kill_process_group, Pid, Signal};
        if let Some(pid) = Pid::from_raw(self.0 as i32) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cmd: &str, records: &[&[u8]]) -> Result<Vec<Vec<u8>>, String> {
        let records: Vec<Vec<u8>> = records.iter().map(|r| r.to_vec()).collect();
        run_command(cmd, 1, &records, Vec::new(), DEFAULT_MAX_OUTPUT_BYTES)
    }

    #[test]
    fn stdout_lines_are_the_output() {
        let out = run("tr a-z A-Z", &[b"ab", b"c"]).unwrap();
        assert_eq!(out, vec![b"AB".to_vec(), b"C".to_vec()]);
    }

    #[test]
    fn non_zero_exit_fails_with_stderr() {
        let err = run("echo boom >&2; exit 3", &[b"x"]).unwrap_err();
        assert!(err.contains("boom") && err.contains('3'), "{err}");
    }

    #[test]
    fn only_the_tail_of_a_long_stderr_is_kept() {
        let err = run(
            "head -c 100000 /dev/zero | tr '\\0' a >&2; echo END >&2; exit 1",
            &[],
        )
        .unwrap_err();
        assert!(err.ends_with("END"), "{}", &err[err.len() - 20..]);
        assert!(err.len() < STDERR_KEPT_BYTES + 200, "{} bytes", err.len());
    }

    #[test]
    fn output_past_the_cap_fails_the_slice_and_stops_the_command() {
        // `yes` never ends by itself: returning at all proves it was killed.
        let err = run_command("yes", 1, &[b"x".to_vec()], Vec::new(), 1 << 20).unwrap_err();
        assert!(
            err.contains("more than 1048576 bytes for one slice") && err.contains("--slice-size"),
            "{err}"
        );
    }

    #[test]
    fn a_line_without_newline_counts_toward_the_cap() {
        let err =
            run_command("head -c 3000000 /dev/zero", 1, &[], Vec::new(), 1 << 20).unwrap_err();
        assert!(err.contains("more than 1048576 bytes"), "{err}");
    }

    #[test]
    fn nothing_the_command_started_outlives_the_slice() {
        // One background sleep keeps stdout open (the slice still ends when
        // the shell exits), the other does not (it would outlive the slice
        // unnoticed): the handler kills the whole group either way.
        let out = run("sleep 60 & (exec >/dev/null; sleep 60) & echo $!", &[]).unwrap();
        let pid = String::from_utf8(out[0].clone()).unwrap();
        // SIGKILL was sent before this returned; the kernel finishes the
        // exit (closing its files, then the zombie state) a moment later.
        // The bound is on a hang, far above the milliseconds this takes.
        let running = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            !stat.is_empty() && state != Some("Z")
        };
        for _ in 0..500 {
            if !running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the background sleep {pid} still runs");
    }

    #[test]
    fn a_command_runs_with_the_huge_page_setting_from_before_booster_turned_it_off() {
        crate::huge_pages::turn_off().unwrap();
        let before = crate::huge_pages::off_before().expect("turn_off kept it");
        let out = run("grep THP_enabled /proc/self/status", &[]).unwrap();
        let enabled = if before { "0" } else { "1" };
        assert_eq!(out, vec![format!("THP_enabled:\t{enabled}").into_bytes()]);
    }

    #[test]
    fn a_command_the_policy_does_not_list_never_starts() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let cmd = format!("touch {}", marker.display());
        let exec = Exec::new(ExecPolicy::Only(vec!["cat".to_string()].into()));
        let props = serde_json::json!({ props::CMD: cmd });
        let ctx = JobContext::new(1, "exec", &props, &[]);
        match exec.process_slice(&ctx, &[b"x".to_vec()]) {
            SliceOutcome::Failed { message } => {
                assert!(message.contains("not allowed by this server"), "{message}")
            }
            SliceOutcome::Done { .. } | SliceOutcome::Categorized { .. } => {
                panic!("the command ran")
            }
        }
        assert!(!marker.exists());
    }
}
