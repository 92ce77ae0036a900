//! The performance targets of DESIGN.md as code: each names the figure it
//! reads, the bound, and the parameters of the run it is judged on. A run of
//! another size leaves the target "not measured"; a figure from a run the
//! harness marked invalid (a codec limit that was beaten) is "invalid".

use serde_json::Value;

use crate::report::Measurement;

/// A parameter the run behind a figure must have for a target to judge it.
#[derive(Clone, Copy, Debug)]
pub enum Need {
    /// `params[name] == value` (a number).
    Equals(&'static str, f64),
    /// `params[name] >= value`.
    AtLeast(&'static str, f64),
    /// `params[name] == value` (a string).
    Text(&'static str, &'static str),
    /// `params[name] == value` (a flag).
    Flag(&'static str, bool),
}

impl Need {
    fn holds(&self, params: &Value) -> bool {
        match *self {
            Need::Equals(k, v) => params[k].as_f64() == Some(v),
            Need::AtLeast(k, v) => params[k].as_f64().is_some_and(|x| x >= v),
            Need::Text(k, v) => params[k].as_str() == Some(v),
            Need::Flag(k, v) => params[k].as_bool() == Some(v),
        }
    }
    fn describe(&self) -> String {
        match *self {
            Need::Equals(k, v) => format!("{k}={v}"),
            Need::AtLeast(k, v) => format!("{k}>={v}"),
            Need::Text(k, v) => format!("{k}={v}"),
            Need::Flag(k, v) => format!("{k}={v}"),
        }
    }
}

pub struct Target {
    pub name: &'static str,
    pub scenario: &'static str,
    pub metric: &'static str,
    pub bound: f64,
    /// true: the figure must be at least `bound`; false: at most.
    pub at_least: bool,
    pub unit: &'static str,
    /// The run the target names; any other leaves it "not measured".
    pub needs: &'static [Need],
    /// A params flag that, when false, voids the figure ("invalid").
    pub valid_if: Option<&'static str>,
}

const TEN_MILLION: f64 = 10_000_000.0;
const SLICED_RUN: &[Need] = &[
    Need::Equals("records", TEN_MILLION),
    Need::Equals("slice_size", 1000.0),
    Need::Text("codec", "zstd+aes"),
];

pub const TARGETS: &[Target] = &[
    Target {
        name: "sliced end to end (zstd+aes, durable, 10M records)",
        scenario: "sliced",
        metric: "zstd+aes_end_to_end_records_per_s",
        bound: 2_000_000.0,
        at_least: true,
        unit: "records/s",
        needs: SLICED_RUN,
        valid_if: None,
    },
    Target {
        name: "sliced as a share of the codec limit (10M records)",
        scenario: "sliced",
        metric: "share_of_limit",
        bound: 55.0,
        at_least: true,
        unit: "%",
        needs: SLICED_RUN,
        valid_if: Some("limit_valid"),
    },
    Target {
        name: "jobs burn-down (durable no-op jobs)",
        scenario: "jobs",
        metric: "burn_down",
        bound: 250_000.0,
        at_least: true,
        unit: "jobs/s",
        needs: &[
            Need::Text("codec", "zstd+aes"),
            Need::Equals("spin_us", 0.0),
        ],
        valid_if: None,
    },
    Target {
        name: "jobs vs the best durable Rust peer (apalis / graphile_worker on PostgreSQL)",
        scenario: "peers",
        metric: "booster_vs_best_rust_peer",
        bound: 10.0,
        at_least: true,
        unit: "x",
        needs: &[
            Need::AtLeast("jobs", 100_000.0),
            Need::Flag("same_jobs_both_sides", true),
            Need::AtLeast("repetitions", 5.0),
        ],
        valid_if: None,
    },
    Target {
        name: "jobs vs Sidekiq's best setting, Redis persistence off",
        scenario: "peers",
        metric: "booster_vs_sidekiq_redis_no_persistence",
        bound: 20.0,
        at_least: true,
        unit: "x",
        needs: &[
            Need::AtLeast("jobs", 100_000.0),
            Need::Flag("same_jobs_both_sides", true),
            Need::Flag("sidekiq_best_of_sweep", true),
            Need::AtLeast("repetitions", 5.0),
        ],
        valid_if: None,
    },
    Target {
        name: "jobs vs Sidekiq's best setting, Redis appendfsync always",
        scenario: "peers",
        metric: "booster_vs_sidekiq_redis_aof_always",
        bound: 20.0,
        at_least: true,
        unit: "x",
        needs: &[
            Need::AtLeast("jobs", 100_000.0),
            Need::Flag("same_jobs_both_sides", true),
            Need::Flag("sidekiq_best_of_sweep", true),
            Need::AtLeast("repetitions", 5.0),
        ],
        valid_if: None,
    },
    Target {
        name: "priority-1 submit to start p99 (workers saturated)",
        scenario: "priority",
        metric: "submit_to_start_p99",
        bound: 5.0,
        at_least: false,
        unit: "ms",
        needs: &[Need::Flag("saturated_throughout", true)],
        valid_if: None,
    },
    Target {
        name: "priority-1 Booster overhead p99 (after the first worker is free)",
        scenario: "priority",
        metric: "priority_overhead_p99",
        bound: 0.5,
        at_least: false,
        unit: "ms",
        needs: &[
            Need::Flag("saturated_throughout", true),
            Need::AtLeast("probes", 500.0),
        ],
        valid_if: None,
    },
    Target {
        name: "sliced peak RSS (10M records)",
        scenario: "sliced",
        metric: "zstd+aes_peak_rss",
        bound: 200.0,
        at_least: false,
        unit: "MB",
        needs: SLICED_RUN,
        valid_if: None,
    },
    Target {
        name: "reopen after kill -9 (10M records stored)",
        scenario: "recovery",
        metric: "reopen",
        bound: 1000.0,
        at_least: false,
        unit: "ms",
        needs: &[Need::Equals("records", TEN_MILLION)],
        valid_if: None,
    },
];

/// What a run says about one target.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Met; margin past the bound in %.
    Met { value: f64, margin: f64 },
    /// Missed; margin short of the bound in % (negative).
    Missed { value: f64, margin: f64 },
    /// No figure, or a figure from a run of other parameters (named).
    NotMeasured(String),
    /// The figure's run was marked invalid (named why).
    Invalid(String),
}

/// One verdict per target, in `TARGETS` order.
pub fn evaluate(results: &[Measurement]) -> Vec<(&'static Target, Verdict)> {
    TARGETS.iter().map(|t| (t, judge(t, results))).collect()
}

pub fn judge(t: &Target, results: &[Measurement]) -> Verdict {
    let Some(m) = results
        .iter()
        .find(|m| m.scenario == t.scenario && m.metric == t.metric)
    else {
        return Verdict::NotMeasured("not in this run".into());
    };
    let unmet: Vec<String> = t
        .needs
        .iter()
        .filter(|n| !n.holds(&m.params))
        .map(Need::describe)
        .collect();
    if !unmet.is_empty() {
        return Verdict::NotMeasured(format!("run lacks {}", unmet.join(", ")));
    }
    if let Some(flag) = t.valid_if {
        if m.params[flag].as_bool() != Some(true) {
            return Verdict::Invalid(format!("{flag} is not true for this run"));
        }
    }
    let margin = if t.at_least {
        100.0 * (m.value / t.bound - 1.0)
    } else {
        100.0 * (1.0 - m.value / t.bound)
    };
    let met = if t.at_least {
        m.value >= t.bound
    } else {
        m.value <= t.bound
    };
    if met {
        Verdict::Met {
            value: m.value,
            margin,
        }
    } else {
        Verdict::Missed {
            value: m.value,
            margin,
        }
    }
}

pub fn print(results: &[Measurement]) {
    println!();
    println!("| target | bound | measured | met | margin |");
    println!("|---|---:|---:|---|---:|");
    for (t, verdict) in evaluate(results) {
        let op = if t.at_least { ">=" } else { "<=" };
        let bound = format!("{op} {} {}", t.bound, t.unit);
        match verdict {
            Verdict::Met { value, margin } => println!(
                "| {} | {bound} | {value:.2} {} | yes | {margin:+.1}% |",
                t.name, t.unit
            ),
            Verdict::Missed { value, margin } => println!(
                "| {} | {bound} | {value:.2} {} | NO | {margin:+.1}% |",
                t.name, t.unit
            ),
            Verdict::NotMeasured(why) => {
                println!("| {} | {bound} | - | not measured ({why}) | |", t.name)
            }
            Verdict::Invalid(why) => println!("| {} | {bound} | - | INVALID ({why}) | |", t.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn target(metric: &str) -> &'static Target {
        TARGETS.iter().find(|t| t.metric == metric).unwrap()
    }

    #[test]
    fn a_miss_is_reported_with_a_negative_margin() {
        let results = vec![Measurement::new("jobs", "burn_down", 200_000.0, "jobs/s")
            .params(json!({ "codec": "zstd+aes", "spin_us": 0 }))];
        match judge(target("burn_down"), &results) {
            Verdict::Missed { value, margin } => {
                assert_eq!(value, 200_000.0);
                assert!((margin + 20.0).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_upper_bound_is_met_below_it() {
        let results = vec![Measurement::new("recovery", "reopen", 250.0, "ms")
            .params(json!({ "records": 10_000_000 }))];
        match judge(target("reopen"), &results) {
            Verdict::Met { margin, .. } => assert!((margin - 75.0).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_target_is_not_measured_on_a_run_of_the_wrong_size() {
        let quick = json!({ "records": 1_000_000, "slice_size": 1000, "codec": "zstd+aes" });
        let results = vec![
            Measurement::new("sliced", "zstd+aes_peak_rss", 90.0, "MB").params(quick.clone()),
            Measurement::new("recovery", "reopen", 90.0, "ms").params(quick),
        ];
        for metric in ["zstd+aes_peak_rss", "reopen"] {
            match judge(target(metric), &results) {
                Verdict::NotMeasured(why) => assert!(why.contains("records=10000000"), "{why}"),
                other => panic!("{metric}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_figure_is_not_measured() {
        assert!(matches!(
            judge(target("burn_down"), &[]),
            Verdict::NotMeasured(_)
        ));
    }

    #[test]
    fn a_share_of_a_beaten_limit_is_invalid() {
        let params = json!({ "records": 10_000_000, "slice_size": 1000, "codec": "zstd+aes", "limit_valid": false });
        let results = vec![Measurement::new("sliced", "share_of_limit", 120.0, "%").params(params)];
        assert!(matches!(
            judge(target("share_of_limit"), &results),
            Verdict::Invalid(_)
        ));
    }

    #[test]
    fn a_sidekiq_ratio_on_uneven_job_counts_is_not_measured() {
        let params = json!({ "jobs": 100_000, "same_jobs_both_sides": false, "repetitions": 5 });
        let results = vec![Measurement::new(
            "peers",
            "booster_vs_sidekiq_redis_no_persistence",
            30.0,
            "x",
        )
        .params(params)];
        assert!(matches!(
            judge(target("booster_vs_sidekiq_redis_no_persistence"), &results),
            Verdict::NotMeasured(_)
        ));
    }
}
