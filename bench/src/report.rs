//! Results: one `Measurement` per figure, printed as a table or as JSON
//! lines, and appended to `bench/results.jsonl` with the machine it ran on.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One figure a scenario produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Measurement {
    pub scenario: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    /// Durability of the acknowledgements behind this figure, e.g.
    /// "fdatasync per group commit", "redis appendfsync always", "none".
    #[serde(default)]
    pub durability: String,
    /// Bytes per record where records are involved, else 0.
    #[serde(default)]
    pub record_size_bytes: f64,
    /// Everything else that shaped the run (sizes, workers, codec on/off).
    #[serde(default)]
    pub params: Value,
}

impl Measurement {
    pub fn new(scenario: &str, metric: &str, value: f64, unit: &str) -> Measurement {
        Measurement {
            scenario: scenario.to_string(),
            metric: metric.to_string(),
            value,
            unit: unit.to_string(),
            durability: String::new(),
            record_size_bytes: 0.0,
            params: json!({}),
        }
    }
    pub fn durability(mut self, durability: &str) -> Measurement {
        self.durability = durability.to_string();
        self
    }
    pub fn record_size(mut self, bytes: f64) -> Measurement {
        self.record_size_bytes = bytes;
        self
    }
    pub fn params(mut self, params: Value) -> Measurement {
        self.params = params;
        self
    }
}

/// Where and on what a run happened; stamped on every results line.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub hostname: String,
    pub cpu_model: String,
    pub cores: usize,
    pub git_commit: String,
    /// 1-minute load average when the run started: other work on the
    /// machine shows here (and in every figure).
    pub load_avg_1m: f64,
}

impl Machine {
    pub fn detect() -> Machine {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            hostname,
            cpu_model,
            cores: cores(),
            git_commit: git_commit(),
            load_avg_1m: load_avg_1m(),
        }
    }
}

fn load_avg_1m() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The commit the harness was built from (`build.rs`), "-dirty" when the
/// sources it measures differed from it; "unknown" when built outside git.
fn git_commit() -> String {
    env!("BOOSTER_BENCH_COMMIT").to_string()
}

/// Appends one JSON line per measurement to `path`, creating it if needed.
pub fn append_results(
    path: &Path,
    machine: &Machine,
    results: &[Measurement],
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| {
            format!(
                "opening results file {}; pass --results to write elsewhere",
                path.display()
            )
        })?;
    let unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut out = String::new();
    for m in results {
        let line = json!({
            "time_unix_s": unix_s,
            "scenario": m.scenario,
            "metric": m.metric,
            "value": m.value,
            "unit": m.unit,
            "machine": machine.hostname,
            "cpu": machine.cpu_model,
            "cores": machine.cores,
            "commit": machine.git_commit,
            "load_avg_1m_at_start": machine.load_avg_1m,
            "durability": m.durability,
            "record_size_bytes": m.record_size_bytes,
            "params": m.params,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    file.write_all(out.as_bytes())
        .with_context(|| format!("appending to {}", path.display()))?;
    Ok(())
}

/// `{"scenario":..,"metric":..,"value":..,"unit":..,...}` per line.
pub fn print_json(results: &[Measurement]) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for m in results {
        let _ = writeln!(out, "{}", serde_json::to_string(m).unwrap_or_default());
    }
}

/// A plain aligned table, with the machine on top.
pub fn print_table(machine: &Machine, results: &[Measurement]) {
    println!(
        "machine: {} ({}, {} cores), commit {}, load average {:.2} at start",
        machine.hostname, machine.cpu_model, machine.cores, machine.git_commit, machine.load_avg_1m
    );
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|m| {
            [
                m.scenario.clone(),
                m.metric.clone(),
                format_value(m.value),
                m.unit.clone(),
                short_params(&m.params),
            ]
        })
        .collect();
    let header = ["scenario", "metric", "value", "unit", "parameters"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "| {:<w0$} | {:<w1$} | {:>w2$} | {:<w3$} | {:<w4$} |",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        )
    };
    println!("{}", line(header));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!(
        "|-{}-|-{}-|-{}:|-{}-|-{}-|",
        rule[0], rule[1], rule[2], rule[3], rule[4]
    );
    for row in &rows {
        println!("{}", line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
}

fn format_value(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// `key=value ...`, numbers shortened; the per-repetition `values` and
/// nested objects are left to results.jsonl.
fn short_params(params: &Value) -> String {
    match params.as_object() {
        Some(map) => map
            .iter()
            .filter(|(k, v)| *k != "values" && !v.is_object())
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                Value::Number(n) => format!("{k}={}", format_value(n.as_f64().unwrap_or(f64::NAN))),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_carries_scenario_metric_value_unit() {
        let m = Measurement::new("jobs", "burn_down", 312000.0, "jobs/s");
        let v: Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["scenario"], "jobs");
        assert_eq!(v["metric"], "burn_down");
        assert_eq!(v["value"], 312000.0);
        assert_eq!(v["unit"], "jobs/s");
    }

    #[test]
    fn results_file_gets_one_line_per_measurement_with_machine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let machine = Machine::detect();
        let ms = vec![
            Measurement::new("a", "x", 1.0, "u"),
            Measurement::new("b", "y", 2.0, "u").durability("none"),
        ];
        append_results(&path, &machine, &ms).unwrap();
        append_results(&path, &machine, &ms[..1]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1]["durability"], "none");
        assert_eq!(lines[0]["cores"], machine.cores);
        assert!(lines[0]["cpu"].is_string());
    }
}
