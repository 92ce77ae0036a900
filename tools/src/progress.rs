//! Progress on long work: indicatif bars when stderr is a terminal, plain
//! periodic lines where asked for (the demo, when piped), nothing in
//! `--json` or `-q` mode.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Off,
    Bars,
    /// A line on stderr at most every `LINE_INTERVAL`.
    Lines,
}

const LINE_INTERVAL: Duration = Duration::from_secs(1);

impl Mode {
    /// Bars on a terminal; when piped, `Lines` if `lines_when_piped`, else nothing.
    pub fn pick(json: bool, quiet: bool, lines_when_piped: bool) -> Mode {
        if json || quiet {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else if lines_when_piped {
            Mode::Lines
        } else {
            Mode::Off
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Records,
    Slices,
    Bytes,
}

struct LineState {
    last_print: Instant,
    last_position: u64,
    position: u64,
    length: Option<u64>,
}

/// One bar (or one stream of plain lines).
pub struct Progress {
    label: String,
    unit: Unit,
    bar: Option<ProgressBar>,
    lines: Option<Mutex<LineState>>,
}

impl Progress {
    pub fn new(mode: Mode, multi: Option<&MultiProgress>, label: &str, unit: Unit) -> Progress {
        let bar = (mode == Mode::Bars).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            match multi {
                Some(m) => m.add(bar),
                None => bar,
            }
        });
        Progress::with_bar(bar, mode, label, unit)
    }

    /// A bar drawn on `target` (tests draw on an in-memory terminal).
    #[cfg(test)]
    fn on_target(target: ProgressDrawTarget, label: &str, unit: Unit) -> Progress {
        let bar = ProgressBar::with_draw_target(None, target);
        Progress::with_bar(Some(bar), Mode::Bars, label, unit)
    }

    fn with_bar(bar: Option<ProgressBar>, mode: Mode, label: &str, unit: Unit) -> Progress {
        if let Some(bar) = &bar {
            // No length yet (stdin, a pipe): what was read and how fast,
            // never a bar, a total or an ETA it cannot know.
            bar.set_style(style(unit, false));
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        let lines = (mode == Mode::Lines).then(|| {
            Mutex::new(LineState {
                last_print: Instant::now(),
                last_position: 0,
                position: 0,
                length: None,
            })
        });
        Progress {
            label: label.to_string(),
            unit,
            bar,
            lines,
        }
    }

    /// A spinner for work of unknown length (bars mode only).
    pub fn spinner(mode: Mode, label: &str, message: &str) -> Progress {
        let bar = (mode == Mode::Bars).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg} ({elapsed})")
                    .expect("valid template"),
            );
            bar.set_prefix(label.to_string());
            bar.set_message(message.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress {
            label: label.to_string(),
            unit: Unit::Bytes,
            bar,
            lines: None,
        }
    }

    pub fn set_length(&self, length: u64) {
        if let Some(bar) = &self.bar {
            if bar.length().is_none() {
                bar.set_style(style(self.unit, true));
            }
            bar.set_length(length);
        }
        if let Some(lines) = &self.lines {
            lines.lock().unwrap_or_else(|p| p.into_inner()).length = Some(length);
        }
    }

    pub fn set_message(&self, message: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(message);
        }
    }

    pub fn set_position(&self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
        if let Some(lines) = &self.lines {
            let mut state = lines.lock().unwrap_or_else(|p| p.into_inner());
            state.position = position;
            if state.last_print.elapsed() >= LINE_INTERVAL {
                self.print_line(&mut state);
            }
        }
    }

    fn print_line(&self, state: &mut LineState) {
        let elapsed_s = state.last_print.elapsed().as_secs_f64().max(1e-3);
        let rate = (state.position.saturating_sub(state.last_position)) as f64 / elapsed_s;
        let unit = match self.unit {
            Unit::Records => "records",
            Unit::Slices => "slices",
            Unit::Bytes => "bytes",
        };
        let of = match state.length {
            Some(len) if len > 0 => format!(
                "/{} ({:.0}%)",
                crate::report::count(len),
                100.0 * state.position as f64 / len as f64
            ),
            _ => String::new(),
        };
        eprintln!(
            "{}: {}{of} {unit}, {}",
            self.label,
            crate::report::count(state.position),
            rate_text(rate).replace("/s", &format!(" {unit}/s"))
        );
        state.last_print = Instant::now();
        state.last_position = state.position;
    }

    pub fn finish(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(message.to_string());
        }
        if let Some(lines) = &self.lines {
            let mut state = lines.lock().unwrap_or_else(|p| p.into_inner());
            self.print_line(&mut state);
        }
    }

    /// Removes the bar from the screen.
    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The bar's look: with a known length a bar, the total and an ETA;
/// without, only the count and the rate.
fn style(unit: Unit, known_length: bool) -> ProgressStyle {
    let template = match (unit, known_length) {
        (Unit::Bytes, true) => {
            "{prefix:>10} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}"
        }
        (Unit::Bytes, false) => "{prefix:>10} {bytes} read, {bytes_per_sec} {msg}",
        (_, true) => "{prefix:>10} [{bar:32}] {human_pos}/{human_len} {rate} ETA {eta} {msg}",
        (_, false) => "{prefix:>10} {human_pos} {rate} {msg}",
    };
    ProgressStyle::with_template(template)
        .expect("valid template")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&rate_text(state.per_sec()));
            },
        )
        .progress_chars("=> ")
}

/// What a running job's bar says beside its counts: its failed slices as
/// they happen, not only at the end.
pub fn job_message(job: &booster_runtime::JobStatus) -> String {
    job_message_of(
        job.state.as_str(),
        job.priority,
        job.slices_failed,
        job.records_in_failed_slices,
        job.records_errors,
    )
}

fn job_message_of(
    state: &str,
    priority: u8,
    slices_failed: u64,
    records_in_failed_slices: u64,
    records_errors: u64,
) -> String {
    let mut parts = vec![format!("{state} p{priority}")];
    if slices_failed > 0 {
        parts.push(format!(
            "{} failed ({} records)",
            crate::report::plural(slices_failed, "slice"),
            crate::report::count(records_in_failed_slices)
        ));
    }
    if records_errors > 0 {
        parts.push(format!(
            "{} in errors",
            crate::report::plural(records_errors, "record")
        ));
    }
    parts.join(", ")
}

/// A rate as people read it: whole units, thousands grouped
/// ("111,695/s", never "111694.9215/s").
pub fn rate_text(per_s: f64) -> String {
    let whole = if per_s.is_finite() && per_s > 0.0 {
        per_s.round() as u64
    } else {
        0
    };
    format!("{}/s", crate::report::count(whole))
}

#[cfg(test)]
mod rate_tests {
    use super::*;
    use indicatif::InMemoryTerm;

    /// The screen once it shows `what` (the bar redraws on its steady
    /// tick, at most 20 times a second): polled, never a fixed sleep.
    fn screen_showing(term: &InMemoryTerm, what: &str) -> String {
        for _ in 0..500 {
            let shown = term.contents();
            if shown.contains(what) {
                return shown;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the screen never showed {what:?}: {:?}", term.contents());
    }

    #[test]
    fn an_input_of_unknown_length_shows_what_was_read_never_a_total_or_eta() {
        let term = InMemoryTerm::new(4, 120);
        let p = Progress::on_target(
            ProgressDrawTarget::term_like(Box::new(term.clone())),
            "upload",
            Unit::Bytes,
        );
        p.set_position(5 * 1024 * 1024);
        let shown = screen_showing(&term, "5.00 MiB read");
        assert!(
            !shown.contains("ETA") && !shown.contains('%') && !shown.contains('['),
            "{shown:?}"
        );
        // Once the length is known (a file), the bar and its ETA appear.
        p.set_length(10 * 1024 * 1024);
        let shown = screen_showing(&term, "5.00 MiB/10.00 MiB");
        assert!(shown.contains("ETA"), "{shown:?}");
    }

    #[test]
    fn a_running_job_s_bar_names_its_failed_slices_as_they_happen() {
        let term = InMemoryTerm::new(4, 160);
        let p = Progress::on_target(
            ProgressDrawTarget::term_like(Box::new(term.clone())),
            "process",
            Unit::Records,
        );
        p.set_length(10_000);
        p.set_position(4000);
        p.set_message(job_message_of("running", 50, 2, 2000, 0));
        let shown = screen_showing(&term, "2 slices failed (2,000 records)");
        assert!(shown.contains("4,000/10,000"), "{shown:?}");
    }

    #[test]
    fn rates_are_whole_numbers_grouped_by_thousands() {
        assert_eq!(rate_text(111_694.921_5), "111,695/s");
        assert_eq!(rate_text(0.4), "0/s");
        assert_eq!(rate_text(f64::NAN), "0/s");
    }
}
