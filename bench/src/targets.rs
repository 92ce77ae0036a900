//! The performance targets of DESIGN.md as code: each names the figure it
//! reads, the bound, and says whether this run met it and by how much.

use serde_json::json;

use crate::report::Measurement;

pub struct Target {
    pub name: &'static str,
    pub scenario: &'static str,
    pub metric: &'static str,
    pub bound: f64,
    /// true: the figure must be at least `bound`; false: at most.
    pub at_least: bool,
    pub unit: &'static str,
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "sliced end to end (zstd+aes, durable)",
        scenario: "sliced",
        metric: "zstd+aes_end_to_end_records_per_s",
        bound: 2_000_000.0,
        at_least: true,
        unit: "records/s",
    },
    Target {
        name: "sliced as a share of the codec limit",
        scenario: "sliced",
        metric: "share_of_limit",
        bound: 55.0,
        at_least: true,
        unit: "%",
    },
    Target {
        name: "jobs burn-down (durable)",
        scenario: "jobs",
        metric: "burn_down",
        bound: 250_000.0,
        at_least: true,
        unit: "jobs/s",
    },
    Target {
        name: "jobs vs Sidekiq, Redis persistence off",
        scenario: "peers",
        metric: "booster_vs_sidekiq_redis_no_persistence",
        bound: 20.0,
        at_least: true,
        unit: "x",
    },
    Target {
        name: "jobs vs Sidekiq, Redis appendfsync always",
        scenario: "peers",
        metric: "booster_vs_sidekiq_redis_aof_always",
        bound: 20.0,
        at_least: true,
        unit: "x",
    },
    Target {
        name: "priority-1 submit to start p99",
        scenario: "priority",
        metric: "submit_to_start_p99",
        bound: 5.0,
        at_least: false,
        unit: "ms",
    },
    Target {
        name: "sliced peak RSS (10M records)",
        scenario: "sliced",
        metric: "zstd+aes_peak_rss",
        bound: 200.0,
        at_least: false,
        unit: "MB",
    },
    Target {
        name: "reopen after kill -9",
        scenario: "recovery",
        metric: "reopen",
        bound: 1000.0,
        at_least: false,
        unit: "ms",
    },
];

/// Figures computed from others in the same run: sliced end to end as a
/// share of the codec ceiling measured in the same run.
pub fn derived(results: &[Measurement]) -> Vec<Measurement> {
    let find = |scenario: &str, metric: &str| {
        results
            .iter()
            .find(|m| m.scenario == scenario && m.metric == metric)
    };
    let mut out = Vec::new();
    if let (Some(sliced), Some(limit)) = (
        find("sliced", "zstd+aes_end_to_end_records_per_s"),
        find("limit", "end_to_end_records_per_s"),
    ) {
        out.push(
            Measurement::new(
                "sliced",
                "share_of_limit",
                100.0 * sliced.value / limit.value,
                "%",
            )
            .durability(&sliced.durability)
            .record_size(sliced.record_size_bytes)
            .params(json!({ "sliced": sliced.value, "limit": limit.value })),
        );
    }
    out
}

/// `(target, measured, met, margin)` rows for the targets this run measured.
/// Margin is how far past (positive) or short of (negative) the bound, in %.
pub fn evaluate(results: &[Measurement]) -> Vec<(&'static Target, f64, bool, f64)> {
    TARGETS
        .iter()
        .filter_map(|t| {
            let m = results
                .iter()
                .find(|m| m.scenario == t.scenario && m.metric == t.metric)?;
            let met = if t.at_least {
                m.value >= t.bound
            } else {
                m.value <= t.bound
            };
            let margin = if t.at_least {
                100.0 * (m.value / t.bound - 1.0)
            } else {
                100.0 * (1.0 - m.value / t.bound)
            };
            Some((t, m.value, met, margin))
        })
        .collect()
}

pub fn print(results: &[Measurement]) {
    let rows = evaluate(results);
    if rows.is_empty() {
        return;
    }
    println!();
    println!("| target | bound | measured | met | margin |");
    println!("|---|---:|---:|---|---:|");
    for (t, value, met, margin) in rows {
        let op = if t.at_least { ">=" } else { "<=" };
        println!(
            "| {} | {op} {} {} | {:.2} {} | {} | {:+.1}% |",
            t.name,
            t.bound,
            t.unit,
            value,
            t.unit,
            if met { "yes" } else { "NO" },
            margin
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_reported_with_a_negative_margin() {
        let results = vec![Measurement::new("jobs", "burn_down", 200_000.0, "jobs/s")];
        let rows = evaluate(&results);
        assert_eq!(rows.len(), 1);
        let (_, value, met, margin) = rows[0];
        assert_eq!(value, 200_000.0);
        assert!(!met);
        assert!((margin + 20.0).abs() < 1e-9);
    }

    #[test]
    fn an_upper_bound_is_met_below_it() {
        let results = vec![Measurement::new("recovery", "reopen", 250.0, "ms")];
        let (_, _, met, margin) = evaluate(&results)[0];
        assert!(met);
        assert!((margin - 75.0).abs() < 1e-9);
    }

    #[test]
    fn share_of_limit_is_derived_from_the_same_run() {
        let results = vec![
            Measurement::new(
                "sliced",
                "zstd+aes_end_to_end_records_per_s",
                1.0e6,
                "records/s",
            ),
            Measurement::new("limit", "end_to_end_records_per_s", 4.0e6, "records/s"),
        ];
        let d = derived(&results);
        assert_eq!(d.len(), 1);
        assert!((d[0].value - 25.0).abs() < 1e-9);
    }
}
