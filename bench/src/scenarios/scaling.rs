//! `scaling`: `jobs` (burn-down) and `sliced` (compression + encryption on)
//! at 1, 2, 4, ... workers up to the cores present, each in its own child.

use crate::report::{cores, Measurement};
use crate::scenarios::Ctx;

/// 1, 2, 4, ... below `cores`, then `cores` itself.
pub fn worker_counts(cores: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |w| Some(w * 2))
        .take_while(|w| *w < cores)
        .collect();
    counts.push(cores.max(1));
    counts
}

pub fn run(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let mut out = Vec::new();
    for workers in worker_counts(cores()) {
        let mut c = ctx.clone();
        c.workers = workers;
        c.lean = true;
        // Ratios between worker counts need less than the headline sizes.
        c.records = Some(
            c.records
                .unwrap_or(if c.quick { 1_000_000 } else { 2_000_000 }),
        );
        c.jobs = Some(c.jobs.unwrap_or(if c.quick { 100_000 } else { 200_000 }));
        for (scenario, metric) in [
            ("jobs", "burn_down"),
            ("sliced", "zstd+aes_end_to_end_records_per_s"),
        ] {
            let results = crate::child::run_scenario(&c, scenario)?;
            if let Some(m) = results.into_iter().find(|m| m.metric == metric) {
                let mut m = m;
                m.scenario = "scaling".into();
                m.metric = format!("{scenario}_{metric}_workers_{workers}");
                out.push(m);
            }
        }
    }
    Ok(out)
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
}
