//! `GET /metrics`: the runtime's counters in the Prometheus text format
//! (version 0.0.4). Latencies come from the runtime as percentiles, so they
//! are exported as summaries with quantile labels.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use booster_runtime::Metrics;

use super::AppState;

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&app.runtime.metrics()) + &render_tokens(&app),
    )
}

/// What the server itself counts beside the runtime.
fn render_tokens(app: &AppState) -> String {
    let mut out = String::new();
    counter(
        &mut out,
        "booster_token_reload_failures_total",
        "Token file reloads (SIGHUP) that failed and kept the tokens in force.",
        app.tokens.as_ref().map_or(0, |t| t.reload_failures()),
    );
    out
}

pub fn render(m: &Metrics) -> String {
    let mut out = String::new();
    out.push_str("# HELP booster_jobs Jobs by state.\n# TYPE booster_jobs gauge\n");
    for state in booster_runtime::JobState::ALL {
        let n = m
            .jobs_by_state
            .iter()
            .filter(|(s, _)| *s == state)
            .map(|(_, n)| n)
            .sum::<u64>();
        let _ = writeln!(out, "booster_jobs{{state=\"{}\"}} {n}", state.as_str());
    }
    counter(
        &mut out,
        "booster_slices_processed_total",
        "Slices processed.",
        m.slices_processed,
    );
    counter(
        &mut out,
        "booster_records_processed_total",
        "Records processed.",
        m.records_processed,
    );
    counter(
        &mut out,
        "booster_lease_expiries_total",
        "Leases that expired before their slice was committed.",
        m.lease_expiries,
    );
    counter(
        &mut out,
        "booster_commits_fenced_total",
        "Late commits from expired leases, rejected.",
        m.commits_fenced,
    );
    for (name, help, value) in [
        (
            "booster_records_failed_total",
            "Records that ended in errors (rejected, failed, in failed slices) since start.",
            m.records_failed,
        ),
        (
            "booster_jobs_completed_total",
            "Jobs that completed since start.",
            m.jobs_completed,
        ),
        (
            "booster_jobs_failed_total",
            "Jobs that failed since start.",
            m.jobs_failed,
        ),
        (
            "booster_checkpoint_failures_total",
            "Checkpoints tried and not written since start.",
            m.checkpoint_failures,
        ),
        (
            "booster_background_compactions_total",
            "Background compactions finished since start.",
            m.auto_compactions,
        ),
        (
            "booster_background_compaction_failures_total",
            "Background compactions tried and failed since start.",
            m.auto_compaction_failures,
        ),
    ] {
        counter(&mut out, name, help, value);
    }
    let _ = writeln!(
        out,
        "# HELP booster_checkpoints_paused 1 while checkpoints fail or are paused (the reason \
         is logged; finished rows stay in RAM meanwhile).\n# TYPE booster_checkpoints_paused \
         gauge\nbooster_checkpoints_paused {}",
        u8::from(m.checkpoints_paused.is_some())
    );
    counter(
        &mut out,
        "booster_worker_restarts_total",
        "Workers replaced after a panic.",
        m.worker_restarts,
    );
    summary(
        &mut out,
        "booster_commit_latency_seconds",
        "Durable group commit latency (write + fdatasync).",
        &m.commit_latency_us,
    );
    summary(
        &mut out,
        "booster_enqueue_to_start_seconds",
        "Time from enqueue to the first lease.",
        &m.enqueue_to_start_us,
    );
    summary(
        &mut out,
        "booster_slice_processing_seconds",
        "Time to process one slice.",
        &m.slice_processing_us,
    );
    out
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

/// `percentiles` are (percentile, microseconds); the runtime may give the
/// percentile as 0..=100 or 0..=1, Prometheus wants 0..=1.
fn summary(out: &mut String, name: &str, help: &str, percentiles: &[(f64, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
    for (p, us) in percentiles {
        let q = if *p > 1.0 { p / 100.0 } else { *p };
        // 99.9 / 100 is 0.9990000000000001 in binary floating point.
        let q = (q * 1e6).round() / 1e6;
        let _ = writeln!(
            out,
            "{name}{{quantile=\"{q}\"}} {}",
            *us as f64 / 1_000_000.0
        );
    }
}

#[cfg(test)]
mod tests {
    use booster_runtime::{JobState, Metrics};

    #[test]
    fn jobs_and_failed_records_are_counted() {
        let m = Metrics {
            records_failed: 42,
            jobs_completed: 3,
            jobs_failed: 1,
            checkpoint_failures: 2,
            checkpoints_paused: Some("a page is damaged".into()),
            ..Metrics::default()
        };
        let text = super::render(&m);
        for line in [
            "booster_checkpoint_failures_total 2\n",
            "booster_checkpoints_paused 1\n",
            "booster_records_failed_total 42\n",
            "booster_jobs_completed_total 3\n",
            "booster_jobs_failed_total 1\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
    }

    #[test]
    fn every_state_is_exported_and_percentiles_become_quantiles() {
        let m = Metrics {
            jobs_by_state: vec![(JobState::Running, 2)],
            slices_processed: 7,
            commit_latency_us: vec![(99.0, 1500), (99.9, 2000)],
            ..Metrics::default()
        };
        let text = super::render(&m);
        assert!(
            text.contains("booster_jobs{state=\"running\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("booster_jobs{state=\"aborted\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("booster_slices_processed_total 7\n"),
            "{text}"
        );
        assert!(
            text.contains("booster_commit_latency_seconds{quantile=\"0.99\"} 0.0015\n"),
            "{text}"
        );
        assert!(
            text.contains("booster_commit_latency_seconds{quantile=\"0.999\"} 0.002\n"),
            "{text}"
        );
    }
}
