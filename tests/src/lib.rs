//! booster-tests: whole-system fault tests for Booster.
//!
//! The tests live in `tests/tests/*.rs`; this library holds what they share:
//! a real on-disk corpus for the hostile-input tests ([`corpus`]), a file
//! layer that fails a chosen `fdatasync` or write ([`faulty_fs`]), an
//! allocator that measures the largest allocation ([`alloc`]), replayable
//! seeds ([`rng`]), a kind whose progress the test releases record by
//! record ([`gate`]), the job table as a runtime lists it ([`table`]) and
//! helpers to drive the built `booster` binary.
//!
//! ```no_run
//! let seed = booster_tests::rng::seed("my_test"); // prints the seed; BOOSTER_SEED replays it
//! let mut rng = booster_tests::rng::Rng::new(seed);
//! let cycles = booster_tests::rng::scale(20, 2000); // BOOSTER_LONG=1 runs the long version
//! assert!(rng.range(0, cycles) < cycles);
//! ```

pub mod alloc;
pub mod cli;
pub mod corpus;
pub mod data;
pub mod faulty_fs;
pub mod gate;
pub mod rng;
pub mod small_disk;
pub mod table;
