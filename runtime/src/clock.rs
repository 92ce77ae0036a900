//! Wall-clock time since the Unix epoch: milliseconds for the job table's
//! and the meta records' times (they must mean the same after a restart);
//! microseconds for a job's `started_at` and `completed_at`, so a latency
//! taken from them is not truncated to whole milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    to_ms(SystemTime::now())
}

pub fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

pub fn from_us(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

/// A time logged in milliseconds, in microseconds (for records from before
/// times were logged in microseconds).
pub fn ms_to_us(ms: u64) -> u64 {
    ms.saturating_mul(1000)
}
