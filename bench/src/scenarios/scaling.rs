//! `scaling`: `jobs` (burn-down) and `sliced` (compression + encryption on)
//! at 1, 2, 4, ... workers up to the cores present, each in its own child.
//!
//! The worker counts are measured in cycles (1, 2, 4, ..., then again), one
//! cycle per repetition, so every count sees the same moments of the
//! machine. Each figure is the median over the cycles with its spread, and
//! each count's speed-up over 1 worker is taken cycle by cycle
//! (`..._speedup_workers_N`, median and spread).

use serde_json::json;

use crate::compare;
use crate::report::{cores, Measurement};
use crate::scenarios::Ctx;

/// The two figures measured at each worker count: (child scenario, its metric).
const FIGURES: [(&str, &str); 2] = [
    ("jobs", "burn_down"),
    ("sliced", "zstd+aes_end_to_end_records_per_s"),
];

/// 1, 2, 4, ... below `cores`, then `cores` itself.
pub fn worker_counts(cores: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |w| Some(w * 2))
        .take_while(|w| *w < cores)
        .collect();
    counts.push(cores.max(1));
    counts
}

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let counts = worker_counts(cores());
    let mut cycles: Vec<Vec<Measurement>> = Vec::new();
    for cycle in 1..=ctx.repetitions {
        eprintln!(
            "scaling: cycle {cycle} of {} over {counts:?} workers",
            ctx.repetitions
        );
        let mut run = Vec::new();
        for &workers in &counts {
            let c = sized(ctx, workers);
            for (scenario, metric) in FIGURES {
                let results = crate::child::run_scenario(&c, scenario)?;
                if let Some(mut m) = results.into_iter().find(|m| m.metric == metric) {
                    m.scenario = "scaling".into();
                    m.metric = figure_name(scenario, metric, workers);
                    run.push(m);
                }
            }
        }
        cycles.push(run);
    }
    let mut out = compare::aggregate(&cycles);
    out.extend(speedups(&cycles, &counts));
    Ok(out)
}

/// `ctx` at `workers` workers, at the sizes scaling runs.
fn sized(ctx: &Ctx, workers: usize) -> Ctx {
    let mut c = ctx.clone();
    c.workers = workers;
    c.lean = true;
    // Ratios between worker counts need less than the headline sizes.
    c.records = Some(
        c.records
            .unwrap_or(if c.quick { 1_000_000 } else { 2_000_000 }),
    );
    c.jobs = Some(c.jobs.unwrap_or(if c.quick { 100_000 } else { 200_000 }));
    c
}

fn figure_name(scenario: &str, metric: &str, workers: usize) -> String {
    format!("{scenario}_{metric}_workers_{workers}")
}

/// Each count's figure over the 1-worker figure of the same cycle.
fn speedups(cycles: &[Vec<Measurement>], counts: &[usize]) -> Vec<Measurement> {
    let mut out = Vec::new();
    for (scenario, metric) in FIGURES {
        let base = compare::values_of(cycles, "scaling", &figure_name(scenario, metric, 1));
        for &workers in counts.iter().filter(|w| **w > 1) {
            let at = compare::values_of(cycles, "scaling", &figure_name(scenario, metric, workers));
            if at.len() != base.len() || at.is_empty() {
                continue;
            }
            out.push(compare::ratio(
                "scaling",
                &format!("{scenario}_{metric}_speedup_workers_{workers}"),
                &at,
                &base,
                json!({ "workers": workers, "over_workers": 1 }),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_counts_double_up_to_the_cores() {
        assert_eq!(worker_counts(1), vec![1]);
        assert_eq!(worker_counts(2), vec![1, 2]);
        assert_eq!(worker_counts(6), vec![1, 2, 4, 6]);
        assert_eq!(worker_counts(8), vec![1, 2, 4, 8]);
    }

    fn figure(workers: usize, value: f64) -> Measurement {
        Measurement::new(
            "scaling",
            &figure_name("jobs", "burn_down", workers),
            value,
            "jobs/s",
        )
    }

    #[test]
    fn speedups_are_taken_cycle_by_cycle_over_one_worker() {
        let cycles = vec![
            vec![figure(1, 100.0), figure(2, 150.0), figure(4, 400.0)],
            vec![figure(1, 50.0), figure(2, 100.0), figure(4, 150.0)],
            vec![figure(1, 200.0), figure(2, 500.0), figure(4, 600.0)],
        ];
        let out = speedups(&cycles, &[1, 2, 4]);
        let names: Vec<&str> = out.iter().map(|m| m.metric.as_str()).collect();
        assert_eq!(
            names,
            [
                "jobs_burn_down_speedup_workers_2",
                "jobs_burn_down_speedup_workers_4"
            ]
        );
        // Cycle ratios 1.5, 2.0, 2.5 and 4.0, 3.0, 3.0: the medians.
        assert_eq!(out[0].value, 2.0);
        assert_eq!(out[1].value, 3.0);
        assert_eq!(out[0].params["min"], 1.5);
        assert_eq!(out[1].params["max"], 4.0);
    }

    #[test]
    fn a_count_missing_from_a_cycle_gives_no_speedup() {
        let cycles = vec![
            vec![figure(1, 100.0), figure(2, 150.0)],
            vec![figure(1, 90.0)],
        ];
        assert!(speedups(&cycles, &[1, 2]).is_empty());
    }
}
