//! booster-bench: the benchmark harness for Booster, with Sidekiq on Redis
//! (and Rust job queues, from a `bench/peers` binary) side by side. The binary
//! (`cargo run --release -p booster-bench -- SCENARIO`) runs each scenario
//! in a child process of itself, prints a table or JSON lines, and appends
//! every figure to `bench/results.jsonl`.
//! The library half is what the binary and the criterion benches share.
//!
//! ```no_run
//! use booster_bench::codec::{round_trip, Codec};
//! let slice = booster_bench::records::records(0, 1000);
//! let mut codec = Codec::new(Some([7; 32]), Some(1));
//! assert_eq!(round_trip(&mut codec, 0, &slice), slice);
//! ```

pub mod alloc;
pub mod booster;
pub mod child;
pub mod codec;
pub mod compare;
pub mod handlers;
pub mod records;
pub mod report;
pub mod resp;
pub mod rss;
pub mod rust_peers;
pub mod scenarios;
pub mod services;
pub mod sidekiq;
pub mod stats;
pub mod targets;
pub mod threads;
