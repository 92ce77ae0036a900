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

/// One bucket per method and code: at most 5 methods x 17 codes.
static BUCKETS: Mutex<Vec<Bucket>> = Mutex::new(Vec::new());

/// Logs that the node refused a `method` call with `code`, `why`
/// (`who` names the caller, when known), unless this minute's lines for
/// the method and code are spent.
pub fn log(method: &'static str, who: &str, code: Code, why: &str) {
    let now = Instant::now();
    let mut buckets = BUCKETS.lock().unwrap_or_else(|e| e.into_inner());
    let i = match buckets
        .iter()
        .position(|b| b.method == method && b.code == code)
    {
        Some(i) => i,
        None => {
            buckets.push(Bucket {
                method,
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
                "booster serve: {} more refused {method} calls ({code:?}) were not logged in the last minute",
                b.unlogged
            );
        }
        (b.since, b.logged, b.unlogged) = (now, 0, 0);
    }
    match b.logged {
        n if n < PER_MINUTE => {
            b.logged += 1;
            eprintln!("booster serve: refused a {method}{who}: {why}");
            if b.logged == PER_MINUTE {
                eprintln!(
                    "booster serve: further refused {method} calls ({code:?}) this minute are not logged, only counted"
                );
            }
        }
        _ => b.unlogged += 1,
    }
}
