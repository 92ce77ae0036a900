//! `booster job watch JOB` on a local data directory: polls the job and
//! prints a line whenever it changed, until it ends. (With --server the
//! remote client follows `/api/events` instead: `crate::remote`.)

use std::time::Duration;

use booster_runtime::{JobId, Runtime};

use super::{with_runtime, Ctx};
use crate::exit;
use crate::report;

const POLL_INTERVAL: Duration = Duration::from_millis(500);

pub async fn watch(ctx: &Ctx, runtime: Runtime, id: JobId) -> anyhow::Result<i32> {
    let ctx = ctx.clone();
    with_runtime(runtime.clone(), async move {
        let mut last: Option<serde_json::Value> = None;
        loop {
            let status = match runtime.job(id).await {
                Ok(status) => status,
                // Destroyed once it finished (destroy-on-complete): `wait`
                // answers the final state its tombstone kept; any other
                // missing job stays an error.
                Err(booster_runtime::RuntimeError::NotFound(..)) => runtime.wait(id).await?,
                Err(e) => return Err(e.into()),
            };
            let event = report::watch_json(&status, "poll");
            if last.as_ref() != Some(&event) {
                print_event(&ctx, &event);
                last = Some(event);
            }
            if status.state.is_finished() {
                return Ok(super::exit_code(&status));
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = ctx.interrupt.wait() => return Err(exit::Interrupted.into()),
            }
        }
    })
    .await
}

/// `--json`: the event object; `-q`: nothing; else one human line.
fn print_event(ctx: &Ctx, event: &serde_json::Value) {
    if ctx.json {
        report::print_json(event);
    } else {
        ctx.say(report::watch_line(event));
    }
}
