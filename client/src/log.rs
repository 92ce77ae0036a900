//! Where a connected runtime's messages go: joining, losing and finding
//! the node again, fenced or dropped commits, hung handlers. A service
//! hands its own logger to `WorkOptions::log`; by default they are
//! printed to stderr as `booster work: MESSAGE`, which is what the
//! `booster work` command shows.

use std::sync::Arc;

/// A receiver of the worker's messages, one line each (without the
/// `booster work:` prefix, which only the stderr default adds).
#[derive(Clone)]
pub struct Log(Arc<dyn Fn(&str) + Send + Sync>);

impl Log {
    /// Messages go to `receive` (called from the worker's threads and
    /// its tokio tasks: keep it quick).
    pub fn new(receive: impl Fn(&str) + Send + Sync + 'static) -> Log {
        Log(Arc::new(receive))
    }

    /// Messages go to stderr as `booster work: MESSAGE` (the default).
    pub fn stderr() -> Log {
        Log::new(|message| eprintln!("booster work: {message}"))
    }

    pub(crate) fn say(&self, message: &str) {
        (self.0)(message)
    }
}

impl Default for Log {
    fn default() -> Log {
        Log::stderr()
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Log")
    }
}
