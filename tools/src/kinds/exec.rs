//! `exec`: a slice's records go to a shell command's stdin, one per line; its
//! stdout lines are the slice's output. A non-zero exit fails the slice and
//! keeps the end of its stderr as the reason. This lets people process
//! records in any language.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use booster_runtime::{HandlerError, JobContext, RecordHandler, SliceOutcome};

use crate::formats::props;

/// How much of a failing command's stderr is kept in the failure reason.
const STDERR_KEPT_BYTES: usize = 4096;

pub struct Exec;

impl RecordHandler for Exec {
    fn process(
        &self,
        job: &JobContext<'_>,
        record: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), HandlerError> {
        match self.process_slice(job, &[record.to_vec()]) {
            SliceOutcome::Done { output, .. } => {
                out.extend(output);
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
        match run_command(cmd, job.id, records) {
            Ok(output) => SliceOutcome::Done {
                output,
                record_errors: Vec::new(),
            },
            Err(message) => SliceOutcome::Failed { message },
        }
    }
}

fn run_command(cmd: &str, job: u64, records: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("BOOSTER_JOB_ID", job.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `sh -c {cmd}`: {e}"))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    std::thread::scope(|scope| {
        // Feeding stdin and draining stderr on their own threads keeps a
        // command that writes before it reads from deadlocking on full pipes.
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
        let stderr_thread = scope.spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        let mut output = Vec::with_capacity(records.len());
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    output.push(line);
                }
                Err(e) => return Err(format!("reading the command's output: {e}")),
            }
        }
        let stderr = stderr_thread.join().unwrap_or_default();
        let status = child
            .wait()
            .map_err(|e| format!("waiting for the command: {e}"))?;
        if status.success() {
            return Ok(output);
        }
        let tail = &stderr[stderr.len().saturating_sub(STDERR_KEPT_BYTES)..];
        Err(format!(
            "command `{cmd}` {status}: {}",
            String::from_utf8_lossy(tail).trim()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_lines_are_the_output() {
        let out = run_command("tr a-z A-Z", 1, &[b"ab".to_vec(), b"c".to_vec()]).unwrap();
        assert_eq!(out, vec![b"AB".to_vec(), b"C".to_vec()]);
    }

    #[test]
    fn non_zero_exit_fails_with_stderr() {
        let err = run_command("echo boom >&2; exit 3", 1, &[b"x".to_vec()]).unwrap_err();
        assert!(err.contains("boom") && err.contains('3'), "{err}");
    }
}
