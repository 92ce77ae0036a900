//! booster-tools: the `booster` command as a library.
//!
//! - [`serve`]: `booster serve`, the HTTP API, events, metrics and dashboard.
//! - [`remote`]: the client the CLI uses with `--server URL`.

pub mod remote;
pub mod serve;
