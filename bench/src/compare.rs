//! Repeated, interleaved runs and what is read from them: each figure's
//! median and spread over the repetitions, ratios taken repetition by
//! repetition (A B A B in one process tree, so both sides see the same
//! moments of a shared machine), and whether the codec limit held as a
//! ceiling.

use serde_json::{json, Value};

use crate::report::Measurement;

/// Repetitions a comparison takes: at least 5, or 3 with `--quick`.
pub fn repetitions(quick: bool, asked: Option<usize>) -> usize {
    let least = if quick { 3 } else { 5 };
    asked.unwrap_or(least).max(least)
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// `params` with the spread of `values` added: repetitions, min, max and
/// every value in the order measured.
pub fn with_spread(params: &Value, values: &[f64]) -> Value {
    let mut p = match params {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    p.insert("repetitions".into(), json!(values.len()));
    p.insert("min".into(), json!(min));
    p.insert("max".into(), json!(max));
    p.insert("values".into(), json!(values));
    Value::Object(p)
}

/// One measurement per (scenario, metric) seen in `runs`, in first-seen
/// order: the median over the runs, with the spread in its params.
pub fn aggregate(runs: &[Vec<Measurement>]) -> Vec<Measurement> {
    let mut out: Vec<Measurement> = Vec::new();
    for m in runs.iter().flatten() {
        if out
            .iter()
            .any(|o| o.scenario == m.scenario && o.metric == m.metric)
        {
            continue;
        }
        let values = values_of(runs, &m.scenario, &m.metric);
        let mut a = m.clone();
        a.value = median(&values);
        a.params = with_spread(&m.params, &values);
        out.push(a);
    }
    out
}

/// The value of `scenario`/`metric` in each run that has it, in run order.
pub fn values_of(runs: &[Vec<Measurement>], scenario: &str, metric: &str) -> Vec<f64> {
    runs.iter()
        .filter_map(|run| {
            run.iter()
                .find(|m| m.scenario == scenario && m.metric == metric)
                .map(|m| m.value)
        })
        .collect()
}

/// `a[i] / b[i]` per repetition, as one measurement: median and spread.
pub fn ratio(scenario: &str, metric: &str, a: &[f64], b: &[f64], params: Value) -> Measurement {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    Measurement::new(scenario, metric, median(&ratios), "x").params(with_spread(&params, &ratios))
}

/// The phases `limit` and `sliced` both time, as (limit metric, sliced metric).
pub const LIMIT_PHASES: &[(&str, &str)] = &[
    ("upload_records_per_s", "zstd+aes_upload_records_per_s"),
    ("process_records_per_s", "zstd+aes_process_records_per_s"),
    ("download_records_per_s", "zstd+aes_download_records_per_s"),
    (
        "end_to_end_records_per_s",
        "zstd+aes_end_to_end_records_per_s",
    ),
];

/// `share_of_limit` (per repetition pair, median and spread) and
/// `limit_valid`: 1 when Booster's median stayed below the limit's median
/// in every phase, 0 when it beat the limit in one (the limit was then no
/// ceiling, and every share of it is void). `limit_runs[i]` and
/// `sliced_runs[i]` are one alternating pair.
pub fn limit_share(
    limit_runs: &[Vec<Measurement>],
    sliced_runs: &[Vec<Measurement>],
) -> Vec<Measurement> {
    let mut beaten = Vec::new();
    let mut phases = serde_json::Map::new();
    for (limit_metric, sliced_metric) in LIMIT_PHASES {
        let limit = median(&values_of(limit_runs, "limit", limit_metric));
        let sliced = median(&values_of(sliced_runs, "sliced", sliced_metric));
        if limit.is_nan() || sliced.is_nan() {
            continue;
        }
        phases.insert(
            limit_metric.to_string(),
            json!({ "limit": limit, "booster": sliced }),
        );
        if sliced > limit {
            beaten.push(limit_metric.to_string());
        }
    }
    if phases.is_empty() {
        return Vec::new();
    }
    let valid = beaten.is_empty();
    let mut out = vec![Measurement::new(
        "sliced",
        "limit_valid",
        if valid { 1.0 } else { 0.0 },
        "bool",
    )
    .params(json!({ "phases_where_booster_beat_the_limit": beaten, "medians": phases }))];
    let sliced = values_of(sliced_runs, "sliced", "zstd+aes_end_to_end_records_per_s");
    let limit = values_of(limit_runs, "limit", "end_to_end_records_per_s");
    if !sliced.is_empty() && sliced.len() == limit.len() {
        let mut share = ratio(
            "sliced",
            "share_of_limit",
            &sliced,
            &limit,
            json!({ "limit_valid": valid }),
        );
        share.value *= 100.0;
        share.unit = "%".into();
        for key in ["min", "max"] {
            if let Some(v) = share.params[key].as_f64() {
                share.params[key] = json!(v * 100.0);
            }
        }
        if let Some(values) = share.params["values"].as_array_mut() {
            for v in values.iter_mut() {
                *v = json!(v.as_f64().unwrap_or(f64::NAN) * 100.0);
            }
        }
        if let Some(p) = sliced_runs
            .iter()
            .flatten()
            .find(|m| m.metric == "zstd+aes_end_to_end_records_per_s")
        {
            share.durability = p.durability.clone();
            share.record_size_bytes = p.record_size_bytes;
            if let (Some(dst), Some(src)) = (share.params.as_object_mut(), p.params.as_object()) {
                for key in ["records", "slice_size", "workers", "codec"] {
                    if let Some(v) = src.get(key) {
                        dst.insert(key.into(), v.clone());
                    }
                }
            }
        }
        out.push(share);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(limit: [f64; 4], sliced: [f64; 4]) -> (Vec<Measurement>, Vec<Measurement>) {
        let l = LIMIT_PHASES
            .iter()
            .zip(limit)
            .map(|((m, _), v)| Measurement::new("limit", m, v, "records/s"))
            .collect();
        let s = LIMIT_PHASES
            .iter()
            .zip(sliced)
            .map(|((_, m), v)| Measurement::new("sliced", m, v, "records/s"))
            .collect();
        (l, s)
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn repetitions_are_at_least_five_or_three_when_quick() {
        assert_eq!(repetitions(false, None), 5);
        assert_eq!(repetitions(false, Some(2)), 5);
        assert_eq!(repetitions(true, None), 3);
        assert_eq!(repetitions(true, Some(7)), 7);
    }

    #[test]
    fn aggregate_gives_the_median_and_the_spread() {
        let runs: Vec<Vec<Measurement>> = [5.0, 1.0, 3.0]
            .iter()
            .map(|v| vec![Measurement::new("jobs", "burn_down", *v, "jobs/s")])
            .collect();
        let a = aggregate(&runs);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].value, 3.0);
        assert_eq!(a[0].params["min"], 1.0);
        assert_eq!(a[0].params["max"], 5.0);
        assert_eq!(a[0].params["repetitions"], 3);
        assert_eq!(a[0].params["values"], json!([5.0, 1.0, 3.0]));
    }

    #[test]
    fn ratio_is_taken_pair_by_pair() {
        let r = ratio(
            "peers",
            "x",
            &[10.0, 40.0, 90.0],
            &[1.0, 2.0, 3.0],
            json!({}),
        );
        assert_eq!(r.value, 20.0);
        assert_eq!(r.params["min"], 10.0);
        assert_eq!(r.params["max"], 30.0);
    }

    #[test]
    fn a_limit_beaten_in_one_phase_marks_the_run_invalid() {
        let (l, s) = run([10.0, 5.0, 20.0, 2.0], [8.0, 6.0, 10.0, 1.5]);
        let out = limit_share(&[l], &[s]);
        let valid = out.iter().find(|m| m.metric == "limit_valid").unwrap();
        assert_eq!(valid.value, 0.0);
        assert_eq!(
            valid.params["phases_where_booster_beat_the_limit"],
            json!(["process_records_per_s"])
        );
        let share = out.iter().find(|m| m.metric == "share_of_limit").unwrap();
        assert_eq!(share.params["limit_valid"], false);
    }

    #[test]
    fn a_limit_that_held_gives_a_valid_share_per_pair() {
        let (l1, s1) = run([10.0, 5.0, 20.0, 2.0], [8.0, 4.0, 10.0, 1.0]);
        let (l2, s2) = run([10.0, 5.0, 20.0, 2.0], [8.0, 4.0, 10.0, 1.5]);
        let out = limit_share(&[l1, l2], &[s1, s2]);
        assert_eq!(out[0].value, 1.0);
        let share = &out[1];
        assert_eq!(share.metric, "share_of_limit");
        assert!((share.value - 62.5).abs() < 1e-9);
        assert_eq!(share.params["min"], 50.0);
        assert_eq!(share.params["max"], 75.0);
    }
}
