//! Seeds that can be replayed: every randomised test prints its seed, and
//! `BOOSTER_SEED` replays one. `BOOSTER_LONG=1` turns on the long runs.

/// True when `BOOSTER_LONG=1`: run thousands of cycles instead of tens.
pub fn long_run() -> bool {
    std::env::var("BOOSTER_LONG").is_ok_and(|v| v == "1")
}

/// `short` normally, `long` under `BOOSTER_LONG=1`.
pub fn scale(short: u64, long: u64) -> u64 {
    if long_run() {
        long
    } else {
        short
    }
}

/// The seed of this run: `BOOSTER_SEED` when set, else from the clock.
/// Printed so a failing run can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("BOOSTER_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("BOOSTER_SEED={s:?} is not a u64")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    eprintln!("{test}: seed {seed} (replay with BOOSTER_SEED={seed})");
    seed
}

/// A proptest configuration whose random source is `seed(test)`: the seed
/// is printed, and `BOOSTER_SEED` replays the same cases. Failure files are
/// off (the seed is the replay). `short` cases normally, `long` under
/// `BOOSTER_LONG=1`.
pub fn proptest_config(test: &str, short: u32, long: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: scale(u64::from(short), u64::from(long)) as u32,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed(test)),
        ..proptest::test_runner::Config::default()
    }
}

/// splitmix64: small, fast, good enough to pick kill moments and bytes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (hi > lo).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(hi > lo, "empty range {lo}..{hi}");
        lo + self.next_u64() % (hi - lo)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }
}
