//! The node's log of the worker service's refusals: a call it refused
//! (an unknown worker, a wrong session, a malformed or oversized message)
//! is logged, naming the method and why, but boundedly: at most
//! `PER_MINUTE` lines a minute for each method and status code, so one bad
//! client cannot flood the log; the rest are counted, and the count is
//! logged when the next minute's first one comes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::Code;

/// Lines a minute for one method and status code.
const PER_MINUTE: u32 = 5;
const WINDOW: Duration = Duration::from_secs(60);

struct Bucket {
    method: &'static str,
    code: Code,
    since: Instant,
    logged: u32,
    unlogged: u64,
}

/// One bucket per kind of line and code: a few kinds x 17 codes.
static BUCKETS: Mutex<Vec<Bucket>> = Mutex::new(Vec::new());

/// Logs that the node refused a `method` call with `code`, `why`
/// (`who` names the caller, when known), unless this minute's lines for
/// the method and code are spent.
pub fn log(method: &'static str, who: &str, code: Code, why: &str) {
    bounded(method, code, || format!("refused a {method}{who}: {why}"));
}

/// Logs `line()` (after "booster serve: "), unless this minute's lines
/// for `what` and `code` are spent: every line a worker's calls can cause
/// (a refusal, a fenced commit, a join) goes through here, so no client
/// can flood the log.
pub fn bounded(what: &'static str, code: Code, line: impl FnOnce() -> String) {
    let now = Instant::now();
    let mut buckets = BUCKETS.lock().unwrap_or_else(|e| e.into_inner());
    let i = match buckets
        .iter()
        .position(|b| b.method == what && b.code == code)
    {
        Some(i) => i,
        None => {
            buckets.push(Bucket {
                method: what,
                code,
                since: now,
                logged: 0,
                unlogged: 0,
            });
            buckets.len() - 1
        }
    };
    let b = &mut buckets[i];
    if now.duration_since(b.since) >= WINDOW {
        if b.unlogged > 0 {
            eprintln!(
                "booster serve: {} more {what} lines ({code:?}) were not logged in the last minute",
                b.unlogged
            );
        }
        (b.since, b.logged, b.unlogged) = (now, 0, 0);
    }
    match b.logged {
        n if n < PER_MINUTE => {
            b.logged += 1;
            eprintln!("booster serve: {}", line());
            if b.logged == PER_MINUTE {
                eprintln!(
                    "booster serve: further {what} lines ({code:?}) this minute are not logged, only counted"
                );
            }
        }
        _ => b.unlogged += 1,
    }
}

/// `text` as a log may show it: escaped (no line breaks a client could
/// forge lines with) and cut to `max` characters.
pub fn printable(text: &str, max: usize) -> String {
    let cut: String = text.chars().take(max).collect();
    let shown = format!("{cut:?}");
    if text.chars().count() > max {
        format!("{shown}...")
    } else {
        shown
    }
}
