//! How jobs and numbers look: the JSON objects of `--json` and the human text.

use std::time::{Duration, SystemTime};

use booster_runtime::JobStatus;

/// A job as `--json` prints it: the same object as the HTTP API's
/// `GET /api/jobs/{id}` (`id`, `state`, `records_in`, `records_out`,
/// `records_failed`, ...; states lower-case, times in ms since the epoch).
pub fn job_json(status: &JobStatus) -> serde_json::Value {
    serde_json::to_value(crate::serve::view::job_view(status.clone())).expect("JobView serialises")
}

/// One line of `job watch --json`: the fields of an `/api/events` job event.
pub fn watch_json(status: &JobStatus, what: &str) -> serde_json::Value {
    serde_json::to_value(crate::serve::view::JobEventView::of_status(status, what))
        .expect("an event serialises")
}

/// One human line of `job watch`, from a `watch_json` object or an `/api/events` event.
pub fn watch_line(event: &serde_json::Value) -> String {
    format!(
        "job {}: {} {:.1}%, slices {}/{}, {} records out",
        event["job"],
        event["state"].as_str().unwrap_or("?"),
        event["percent"].as_f64().unwrap_or(0.0),
        event["slices_done"],
        event["slices_total"],
        count(event["records_out"].as_u64().unwrap_or(0)),
    )
}

pub fn print_json(value: &serde_json::Value) {
    outln!("{value}");
}

/// 1234567 -> "1,234,567".
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 1 -> "1 slice", 3 -> "3 slices", 1000 -> "1,000 slices".
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", count(n))
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// One kind's settings on one line: what applies, and whether it is
/// stored or the process's own.
pub fn kind_line(v: &booster_runtime::KindView) -> String {
    let e = &v.effective;
    let limit = match e.max_running {
        Some(0) => "paused (limit 0)".to_string(),
        Some(n) => format!("at most {n} running"),
        None => "no running limit".to_string(),
    };
    let jitter = match e.retry.jitter_percent {
        0 => String::new(),
        p => format!(" (+0-{p}%)"),
    };
    let retry = match e.retry.max_retries {
        0 => "no retries".to_string(),
        1 => format!("1 retry after {} ms{jitter}", e.retry.backoff_base_ms),
        n => format!(
            "{n} retries, the first after {} ms{jitter}, doubling",
            e.retry.backoff_base_ms
        ),
    };
    let lease = e.lease.map_or(String::new(), |l| {
        let bound = l.timeout.map_or(String::new(), |t| {
            format!(", {} ms a lease at most", t.as_millis())
        });
        format!("; hung after {} lease expiries{bound}", l.max_expiries)
    });
    let window = e
        .window
        .map_or(String::new(), |w| format!("; runs only {w}"));
    let window = match e.destroy_on_complete {
        true => format!("{window}; destroyed on completion"),
        false => window,
    };
    let source = if v.stored.is_some() {
        "stored"
    } else {
        "this process's"
    };
    format!("{:<24} {limit}; {retry}{lease}{window} ({source})", v.kind)
}

/// A period in its largest whole unit: `7d`, `12h`, `30m`, `90s`, `1500ms`
/// (what `booster retention` reads back).
pub fn period(ms: u64) -> String {
    let units = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ];
    for (unit, size) in units {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A time logged in milliseconds since the epoch, in UTC to the second.
pub fn utc_ms(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or(format!("{ms} ms"), |t| {
            t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        })
}

/// What `submit` says about a sliced job it made; `runner` is who runs it.
pub fn submitted_line(status: &JobStatus, runner: &str) -> String {
    format!(
        "job {}: {} records in {}, {} at priority {}; {runner} processes it{}",
        status.id,
        count(status.records_in),
        plural(status.slices_total, "slice"),
        status.state.as_str(),
        status.priority,
        window_note(status)
    )
}

/// ", inside its window W" for a job with its own window, else nothing.
pub fn window_note(status: &JobStatus) -> String {
    status
        .window
        .map_or(String::new(), |w| format!(", inside its window {w}"))
}

/// One cron entry on one line: id, schedule, kind, state, ticks, run.
pub fn cron_line(c: &booster_runtime::CronView) -> String {
    let tick = |t: Option<u64>| t.map_or("-".to_string(), utc_ms);
    format!(
        "cron {}  '{}' ({})  {}  {}  last {}  next {}{}{}",
        c.id,
        c.expr,
        c.tz.as_deref().unwrap_or("UTC"),
        c.kind,
        if c.paused { "paused" } else { "active" },
        tick(c.last_tick_ms),
        tick(c.next_tick_ms),
        c.window
            .map_or(String::new(), |w| format!("  runs only {w}")),
        c.running
            .map_or(String::new(), |j| format!("  running job {j}"))
    )
}

/// One dirmon entry on one line: id, pattern, archive, settle, state, job options.
pub fn dirmon_line(d: &booster_runtime::DirmonView) -> String {
    format!(
        "dirmon {}  '{}' -> {}  settle {} ms  {}  {}",
        d.id,
        d.spec.pattern,
        d.spec.archive,
        d.spec.settle_ms,
        if d.paused { "paused" } else { "active" },
        d.spec.options.join(" ")
    )
}

/// One incident recovery logged, on one line: when, what, where.
pub fn incident_line(i: &booster_runtime::Incident) -> String {
    let at = ago(i.at);
    let place = format!("segment {} ({}) at offset {}", i.segment, i.file, i.offset);
    match &i.kind {
        booster_runtime::IncidentKind::TornTail { bytes } => format!(
            "{at}  torn tail cut: {place}, {} of a write that was never acknowledged",
            plural(*bytes, "byte")
        ),
        booster_runtime::IncidentKind::Damaged {
            end,
            what,
            jobs,
            meta_lost,
            ..
        } => {
            let ids: Vec<String> = jobs.iter().map(|j| j.to_string()).collect();
            format!(
                "{at}  damaged: {place}..{end}: {what}{}; jobs affected: {}",
                if *meta_lost {
                    "; meta records lost"
                } else {
                    ""
                },
                if ids.is_empty() {
                    "none known".to_string()
                } else {
                    ids.join(", ")
                }
            )
        }
    }
}

pub fn ago(time: SystemTime) -> String {
    let elapsed = SystemTime::now()
        .duration_since(time)
        .unwrap_or(Duration::ZERO);
    format!("{} ago", duration(elapsed))
}

pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// `jobs`: newest first (ids grow with submission), at most `limit`.
/// `word` as one word of a POSIX shell command line: as it is when it
/// holds only characters no shell reads specially, else in single quotes.
pub fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.,:/=+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

pub fn table_header() -> String {
    format!(
        "{:>6}  {:<10} {:>3}  {:<20} {:>12} {:>9} {:>6}  {:>12} {:>10}  {}",
        "ID",
        "STATE",
        "PRI",
        "KIND",
        "CREATED",
        "DURATION",
        "DONE",
        "RECORDS",
        "FAILED",
        "DESCRIPTION"
    )
}

pub fn table_row(job: &JobStatus) -> String {
    let took = job.started_at.map_or(String::new(), |started| {
        let end = job.completed_at.unwrap_or_else(SystemTime::now);
        duration(end.duration_since(started).unwrap_or_default())
    });
    format!(
        "{:>6}  {:<10} {:>3}  {:<20} {:>12} {:>9} {:>5.1}%  {:>12} {:>10}  {}",
        job.id,
        job.state.as_str(),
        job.priority,
        job.kind,
        ago(job.created_at),
        took,
        job.percent,
        count(job.records_in),
        count(job.records_failed),
        if job.damage.is_empty() {
            job.description.clone()
        } else {
            format!(
                "DAMAGED ({}: `booster job show {}`) {}",
                plural(job.damage.len() as u64, "range"),
                job.id,
                job.description
            )
        }
    )
}

/// Where a job's records came from and what runs on them: the input file,
/// its format and the `exec` command, where its properties name them
/// (`job show` and the dashboard's job page).
pub fn job_origin(job: &JobStatus) -> Vec<(&'static str, &str)> {
    [
        ("input", crate::formats::props::INPUT),
        ("format", crate::formats::props::FORMAT),
        ("command", crate::formats::props::CMD),
    ]
    .into_iter()
    .filter_map(|(label, name)| Some((label, job.properties.get(name)?.as_str()?)))
    .collect()
}

/// `booster job show`: everything a person asks about a job.
/// `verbose` adds what only a person debugging the runtime needs (epochs).
pub fn job_details(job: &JobStatus, verbose: bool) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "job {}  {}  ({})",
        job.id,
        job.state.as_str(),
        job.kind
    ));
    if !job.description.is_empty() {
        line(format!("  description   {}", job.description));
    }
    for (label, value) in job_origin(job) {
        line(format!("  {label:<13} {}", escape(value)));
    }
    let workers = job
        .max_workers
        .map_or("no limit".to_string(), |w| w.to_string());
    line(format!(
        "  priority      {}   max workers {workers}",
        job.priority
    ));
    line(format!("  created       {}", ago(job.created_at)));
    if let Some(t) = job.started_at {
        line(format!("  started       {}", ago(t)));
    }
    if let Some(t) = job.completed_at {
        line(format!("  finished      {}", ago(t)));
    }
    if job.simple {
        // A simple job has no slices or records; its outcome is the
        // result (below) and how many times it ran.
        line(format!("  attempts      {}", job.attempts));
    } else {
        line(format!(
            "  slices        {}: {} queued, {} running, {} done, {} failed{}",
            plural(job.slices_total, "slice"),
            job.slices_queued,
            job.slices_running,
            job.slices_done,
            job.slices_failed,
            if job.upload_complete {
                ""
            } else {
                " (upload not complete)"
            }
        ));
        line(format!(
            "  records       {} in, {} processed, {} failed ({} errors, {} in failed slices); {} out",
            count(job.records_in),
            count(job.records_processed),
            count(job.records_failed),
            count(job.records_errors),
            count(job.records_in_failed_slices),
            count(job.records_out)
        ));
        if !job.records_out_by_category.is_empty() {
            let each: Vec<String> = job
                .records_out_by_category
                .iter()
                .map(|(name, n)| format!("{name} {}", count(*n)))
                .collect();
            line(format!(
                "  categories    {} (`booster download {} --category NAME --output FILE`)",
                each.join(", "),
                job.id
            ));
        }
        if job.records_out != job.records_processed {
            line(format!(
                "  output        {} written for {} processed: the count differs, as a filter's \
                 or a splitter's does{}",
                plural(job.records_out, "record"),
                count(job.records_processed),
                if job.kind == "exec" {
                    " (`--exec-one-to-one` makes that a slice failure)"
                } else {
                    ""
                }
            ));
        }
        let eta = job.eta_s.map_or(String::new(), |s| {
            format!(", ETA {}", duration(Duration::from_secs_f64(s.max(0.0))))
        });
        line(format!(
            "  progress      {:.1}%, {:.0} records/s{eta}",
            job.percent, job.records_per_s
        ));
    }
    if let Some(reason) = &job.failure_reason {
        line(format!("  failure       {reason}"));
    }
    if let Some(reason) = &job.waiting_reason {
        line(format!("  waiting       {reason}"));
    }
    for damage in &job.damage {
        line(format!("  damaged       {damage}"));
    }
    for lease in &job.leases {
        let slice = lease
            .slice
            .map_or("jobs".to_string(), |s| format!("slice {s}"));
        let epoch = if verbose {
            format!(" (epoch {})", lease.epoch)
        } else {
            String::new()
        };
        line(format!(
            "  lease         worker {} holds {slice}{epoch} since {}",
            lease.worker,
            ago(lease.since)
        ));
    }
    for group in &job.errors {
        line(format!(
            "  errors        {} x {}",
            count(group.count),
            group.message
        ));
        for sample in group.samples.iter().take(3) {
            let at = sample
                .line
                .map_or(format!("record {}", sample.record_number), |l| {
                    format!("line {l}")
                });
            line(format!(
                "                  {at}: {}",
                truncate(&escape(&sample.record), 100)
            ));
        }
    }
    if let Some(c) = &job.cron {
        line(format!(
            "  cron          run of entry {} for the tick at {}",
            c.cron,
            utc_ms(c.tick_ms)
        ));
    }
    if let Some(w) = &job.window {
        line(format!("  window        runs only {w}"));
    }
    if let Some(key) = &job.singleton {
        line(format!("  singleton     {key}"));
    }
    if !job.after.is_empty() {
        let ids: Vec<String> = job.after.iter().map(u64::to_string).collect();
        let policy = match job.on_dependency_failure {
            booster_runtime::DependencyFailure::Fail => "fails",
            booster_runtime::DependencyFailure::Abort => "is aborted",
            booster_runtime::DependencyFailure::Run => "runs anyway",
        };
        line(format!(
            "  after         jobs {} (if one does not complete, this job {policy})",
            ids.join(", ")
        ));
    }
    if let Some(result) = &job.result {
        line(format!("  result        {result}"));
    }
    out
}

/// A record on one line: line breaks, tabs and backslashes escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

pub fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max_chars).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
    }

    #[test]
    fn plurals_agree_with_their_count() {
        assert_eq!(plural(1, "slice"), "1 slice");
        assert_eq!(plural(0, "slice"), "0 slices");
        assert_eq!(plural(1200, "record"), "1,200 records");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }
}
