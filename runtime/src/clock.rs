//! Time of day, injected: every time the runtime takes from a clock (the
//! times its records carry, lease deadlines and heartbeats, `run_at`,
//! retry backoff, cron ticks) comes from the [`Clock`] in
//! `RuntimeOptions::clock`, so a test can move time with a [`ManualClock`]
//! instead of waiting for it. `State::apply` reads no clock at all: every
//! record carries its own time.
//!
//! Milliseconds since the Unix epoch for the job table's and the meta
//! records' times (they must mean the same after a restart); microseconds
//! for a job's `started_at` and `completed_at`, so a latency taken from them
//! is not truncated to whole milliseconds.
//!
//! ```
//! use std::sync::Arc;
//! use booster_runtime::{Clock, ManualClock, RuntimeOptions};
//! let clock = Arc::new(ManualClock::at_ms(1_000));
//! let mut opts = RuntimeOptions::new("./data");
//! opts.clock = clock.clone();
//! clock.advance_ms(60_000); // a minute passes, at once
//! assert_eq!(clock.now_ms(), 61_000);
//! ```

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the time of day, in microseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug + 'static {
    fn now_us(&self) -> u64;
    fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }
    fn now(&self) -> SystemTime {
        from_us(self.now_us())
    }
}

/// The system's wall clock: the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to: tests set and advance it.
#[derive(Debug, Default)]
pub struct ManualClock {
    us: AtomicU64,
}

impl ManualClock {
    pub fn at_ms(ms: u64) -> ManualClock {
        ManualClock {
            us: AtomicU64::new(ms_to_us(ms)),
        }
    }
    pub fn at_us(us: u64) -> ManualClock {
        ManualClock {
            us: AtomicU64::new(us),
        }
    }
    pub fn set_ms(&self, ms: u64) {
        self.us.store(ms_to_us(ms), Ordering::SeqCst);
    }
    pub fn advance_ms(&self, ms: u64) {
        self.us.fetch_add(ms_to_us(ms), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> u64 {
        self.us.load(Ordering::SeqCst)
    }
}

pub fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub fn from_us(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

/// A time logged in milliseconds, in microseconds (for records from before
/// times were logged in microseconds).
pub fn ms_to_us(ms: u64) -> u64 {
    ms.saturating_mul(1000)
}

/// `t` as an RFC 3339 time in UTC, to the second (`2026-11-29T23:40:00Z`),
/// for messages.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_ms(5);
        assert_eq!(clock.now_ms(), 5);
        clock.advance_ms(60_000);
        assert_eq!(clock.now_ms(), 60_005);
        clock.set_ms(7);
        assert_eq!((clock.now_ms(), clock.now_us()), (7, 7_000));
    }
}
