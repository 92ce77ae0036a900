//! Processing windows (issue 14): a kind runs only between two times of day
//! in a time zone (`KindSettings::window`, `booster kind window KIND
//! 22:00-06:00 --tz Europe/Berlin`). A window whose end is before its start
//! wraps midnight.
//!
//! The window is read against the injected clock where a lease is picked
//! (`State::gate`): outside it no new lease of the kind starts (running
//! slices finish), its jobs show why they wait, and `is_idle` ignores them.
//! Nothing polls for the opening: the timer's tick wakes the workers, and
//! the first lease after the opening finds the window open.
//!
//! ```
//! use booster_runtime::ProcessingWindow;
//! let w = ProcessingWindow::parse("22:00-06:00", Some("Europe/Berlin")).unwrap();
//! assert_eq!(w.to_string(), "22:00-06:00 Europe/Berlin");
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::RuntimeError;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// Between `start` and `end` (minutes after local midnight, `end`
/// excluded) in `tz`; `end < start` wraps midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WindowJson", into = "WindowJson")]
pub struct ProcessingWindow {
    start_min: u16,
    end_min: u16,
    tz: Tz,
}

/// The window as the API and `kind show --json` carry it:
/// `{"start":"22:00","end":"06:00","tz":"Europe/Berlin"}` (tz absent: UTC).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowJson {
    start: String,
    end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tz: Option<String>,
}

impl ProcessingWindow {
    /// `span` is `HH:MM-HH:MM`; `tz` an IANA zone name (None: UTC).
    pub fn parse(span: &str, tz: Option<&str>) -> Result<ProcessingWindow, RuntimeError> {
        let bad = || {
            RuntimeError::Invalid(format!(
                "window {span:?} is not two times of day: give HH:MM-HH:MM, e.g. 22:00-06:00"
            ))
        };
        let (start, end) = span.split_once('-').ok_or_else(bad)?;
        let start_min = minute_of_day(start).ok_or_else(bad)?;
        let end_min = minute_of_day(end).ok_or_else(bad)?;
        Self::new(start_min, end_min, tz)
    }

    /// From minutes after local midnight (wire form and API).
    pub fn new(
        start_min: u16,
        end_min: u16,
        tz: Option<&str>,
    ) -> Result<ProcessingWindow, RuntimeError> {
        if start_min >= MINUTES_PER_DAY || end_min >= MINUTES_PER_DAY {
            return Err(RuntimeError::Invalid(
                "a window's times are 00:00 to 23:59".into(),
            ));
        }
        if start_min == end_min {
            return Err(RuntimeError::Invalid(
                "a window that starts when it ends is empty; give two different times, or `none` for no window".into(),
            ));
        }
        let tz = match tz {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                RuntimeError::Invalid(format!(
                    "unknown time zone {name:?}: give an IANA name such as Europe/Berlin or UTC"
                ))
            })?,
        };
        Ok(ProcessingWindow {
            start_min,
            end_min,
            tz,
        })
    }

    pub fn start_min(&self) -> u16 {
        self.start_min
    }
    pub fn end_min(&self) -> u16 {
        self.end_min
    }
    /// The zone's IANA name ("UTC" when none was given).
    pub fn tz_name(&self) -> &'static str {
        self.tz.name()
    }

    /// The kind may start work at `now_ms`.
    pub fn is_open(&self, now_ms: u64) -> bool {
        let local = self.local(now_ms);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        if self.start_min < self.end_min {
            (self.start_min..self.end_min).contains(&minute)
        } else {
            minute >= self.start_min || minute < self.end_min
        }
    }

    /// The first time at or after `now_ms` the window opens (ms since the
    /// epoch). A start that a daylight-saving jump skips opens at the
    /// jump's end.
    pub fn next_open_ms(&self, now_ms: u64) -> u64 {
        let local = self.local(now_ms);
        let start = NaiveTime::from_hms_opt(
            u32::from(self.start_min / 60),
            u32::from(self.start_min % 60),
            0,
        )
        .expect("checked in new");
        for days in 0..3 {
            let Some(date) = local.date_naive().checked_add_days(Days::new(days)) else {
                break;
            };
            let wall = date.and_time(start);
            // A skipped wall time (spring forward): an hour later exists.
            let at = self.tz.from_local_datetime(&wall).earliest().or_else(|| {
                let later = wall + chrono::Duration::hours(1);
                self.tz.from_local_datetime(&later).earliest()
            });
            if let Some(at) = at {
                let ms = at.timestamp_millis().max(0) as u64;
                // A window that a daylight-saving jump skips whole (02:00-
                // 03:00 on the spring-forward day) does not open that day.
                if ms >= now_ms && self.is_open(ms) {
                    return ms;
                }
            }
        }
        debug_assert!(false, "a start of day comes within three days");
        now_ms
    }

    fn local(&self, ms: u64) -> DateTime<Tz> {
        let utc = DateTime::<Utc>::from_timestamp_millis(ms as i64).unwrap_or_default();
        utc.with_timezone(&self.tz)
    }

    /// Why a queued job of `kind` waits at `now_ms`, naming the next opening
    /// in the window's zone.
    pub fn closed_reason(&self, kind: &str, now_ms: u64) -> String {
        self.closed_reason_of(&format!("kind {kind:?}"), now_ms)
    }

    /// Why a job with its own window (`JobSpec::window`) waits at `now_ms`.
    pub fn job_closed_reason(&self, now_ms: u64) -> String {
        self.closed_reason_of("this job", now_ms)
    }

    fn closed_reason_of(&self, who: &str, now_ms: u64) -> String {
        let next = self.local(self.next_open_ms(now_ms));
        format!(
            "{who} runs only {self}; next opens at {:04}-{:02}-{:02} {:02}:{:02} {}",
            next.year(),
            next.month(),
            next.day(),
            next.hour(),
            next.minute(),
            self.tz.name()
        )
    }
}

fn minute_of_day(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty()
        || h.len() > 2
        || m.len() != 2
        || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl fmt::Display for ProcessingWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{} {}",
            hh_mm(self.start_min),
            hh_mm(self.end_min),
            self.tz.name()
        )
    }
}

fn hh_mm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl From<ProcessingWindow> for WindowJson {
    fn from(w: ProcessingWindow) -> WindowJson {
        WindowJson {
            start: hh_mm(w.start_min),
            end: hh_mm(w.end_min),
            tz: Some(w.tz.name().to_string()),
        }
    }
}

impl TryFrom<WindowJson> for ProcessingWindow {
    type Error = String;
    fn try_from(w: WindowJson) -> Result<ProcessingWindow, String> {
        ProcessingWindow::parse(&format!("{}-{}", w.start, w.end), w.tz.as_deref())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-29 00:00:00 UTC (01:00 in Berlin, winter time).
    const MIDNIGHT_MS: u64 = 1_795_910_400_000;
    const HOUR_MS: u64 = 3_600_000;

    #[test]
    fn a_window_that_wraps_midnight_is_open_late_and_early_only() {
        let w = ProcessingWindow::parse("22:00-06:00", Some("Europe/Berlin")).unwrap();
        // Berlin is UTC+1 in November.
        let open_at_utc_h = [21, 22, 23, 0, 1, 2, 3, 4];
        for h in 0..24u64 {
            let ms = MIDNIGHT_MS + h * HOUR_MS;
            assert_eq!(
                w.is_open(ms),
                open_at_utc_h.contains(&h),
                "{h}:00 UTC ({}:00 Berlin)",
                (h + 1) % 24
            );
        }
    }

    #[test]
    fn next_opening_is_the_coming_start_in_the_windows_zone() {
        let w = ProcessingWindow::parse("22:00-06:00", Some("Europe/Berlin")).unwrap();
        // 12:00 UTC = 13:00 Berlin: opens at 22:00 Berlin = 21:00 UTC today.
        let noon = MIDNIGHT_MS + 12 * HOUR_MS;
        assert_eq!(w.next_open_ms(noon), MIDNIGHT_MS + 21 * HOUR_MS);
        // Just after the opening: the next one is a day later.
        let after = MIDNIGHT_MS + 21 * HOUR_MS + 1;
        assert_eq!(w.next_open_ms(after), MIDNIGHT_MS + 45 * HOUR_MS);
        assert_eq!(
            w.closed_reason("report", noon),
            "kind \"report\" runs only 22:00-06:00 Europe/Berlin; next opens at 2026-11-29 22:00 Europe/Berlin"
        );
    }

    #[test]
    fn bad_windows_are_refused_with_what_to_give() {
        for (span, tz, says) in [
            ("22-06", None, "HH:MM-HH:MM"),
            ("24:00-06:00", None, "HH:MM-HH:MM"),
            ("06:00-06:00", None, "empty"),
            ("22:00-06:00", Some("Mars/Olympus"), "IANA"),
            ("+2:00-06:00", None, "HH:MM-HH:MM"),
            ("22:00-06:+0", None, "HH:MM-HH:MM"),
        ] {
            let e = ProcessingWindow::parse(span, tz).unwrap_err().to_string();
            assert!(e.contains(says), "{span} {tz:?}: {e}");
        }
    }

    #[test]
    fn json_form_names_times_and_zone() {
        let w = ProcessingWindow::parse("09:30-17:00", None).unwrap();
        let j = serde_json::to_value(w).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"start": "09:30", "end": "17:00", "tz": "UTC"})
        );
        assert_eq!(serde_json::from_value::<ProcessingWindow>(j).unwrap(), w);
        // A misspelt key is refused, not read as "UTC".
        let typo =
            serde_json::json!({"start": "09:30", "end": "17:00", "timezone": "Europe/Berlin"});
        let e = serde_json::from_value::<ProcessingWindow>(typo).unwrap_err();
        assert!(e.to_string().contains("timezone"), "{e}");
    }

    #[test]
    fn a_window_a_daylight_saving_jump_skips_opens_the_next_day() {
        let w = ProcessingWindow::parse("02:00-03:00", Some("Europe/Berlin")).unwrap();
        let at = |d: u32, h: u32| {
            Utc.with_ymd_and_hms(2027, 3, d, h, 0, 0)
                .unwrap()
                .timestamp_millis() as u64
        };
        // 2027-03-28 springs forward in Berlin: 02:00-03:00 does not exist
        // that day, so the next opening is 02:00 CEST on the 29th.
        let next = w.next_open_ms(at(27, 12));
        assert_eq!(next, at(29, 0));
        assert!(w.is_open(next));
    }
}
