//! `booster-bench SCENARIO [--quick] [--json] [--workers N] ...`
//!
//! The parent process runs each scenario in a child process of itself
//! (`--child`), collects its JSON lines, adds the figures derived across
//! scenarios, prints them (table or `--json`), and appends them to the
//! results file.

use std::path::PathBuf;

use booster_bench::report::{self, Machine, Measurement};
use booster_bench::scenarios::{self, Ctx};
use booster_bench::{child, compare, targets};
use clap::{Parser, ValueEnum};

// The same allocator as the `booster` binary, so the harness measures what
// users run (bench/RESULTS.md, "The allocator"); it counts live heap bytes
// only when the soak asks (`alloc.rs`).
#[global_allocator]
static GLOBAL: booster_bench::alloc::CountingMimalloc = booster_bench::alloc::CountingMimalloc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Jobs,
    Sliced,
    Limit,
    Priority,
    Scaling,
    Recovery,
    Peers,
    /// Jobs at scale: `--jobs N` no-op jobs through enqueue and completion,
    /// finished jobs retained; RSS, reopen after SIGKILL, a page of 100.
    Soak,
    /// Issue 13: remote workers against the node's own on a copy job, and
    /// 1, 2, 4 worker processes where handlers wait (needs `booster` built
    /// beside the harness).
    Fleet,
    All,
    /// Internal: the process `recovery` kills.
    #[value(hide = true)]
    RecoveryChild,
    /// Internal: the process `soak` kills.
    #[value(hide = true)]
    SoakChild,
}

impl Scenario {
    /// The name on the command line.
    fn name(self) -> &'static str {
        match self {
            Scenario::Jobs => "jobs",
            Scenario::Sliced => "sliced",
            Scenario::Limit => "limit",
            Scenario::Priority => "priority",
            Scenario::Scaling => "scaling",
            Scenario::Recovery => "recovery",
            Scenario::Peers => "peers",
            Scenario::All => "all",
            Scenario::RecoveryChild => "recovery-child",
            Scenario::Soak => "soak",
            Scenario::Fleet => "fleet",
            Scenario::SoakChild => "soak-child",
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "Booster's benchmark harness, with Sidekiq on Redis side by side")]
struct Cli {
    scenario: Scenario,
    /// Sizes that run `all` in under two minutes.
    #[arg(long)]
    quick: bool,
    /// One JSON object per result on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Booster worker threads (and codec threads for `limit`). Default: the cores present.
    #[arg(long)]
    workers: Option<usize>,
    /// Booster's codec threads (`RuntimeOptions::codec_threads`: the upload
    /// pool, a download's readers; and `limit`'s upload and download
    /// threads). Default: the cores present, at least 2.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    codec_threads: Option<u64>,
    /// Records for sliced, limit, priority (big job) and recovery.
    #[arg(long)]
    records: Option<u64>,
    /// Jobs for jobs and peers; priority-1 probes for priority.
    #[arg(long)]
    jobs: Option<u64>,
    #[arg(long, default_value_t = 1000)]
    slice_size: usize,
    #[arg(long, default_value_t = 1)]
    zstd_level: i32,
    /// Scratch directory for data directories (on the disk being measured).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/booster-bench"))]
    dir: PathBuf,
    /// Results file, one JSON line per result appended.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results.jsonl"))]
    results: PathBuf,
    /// Do not append to the results file.
    #[arg(long)]
    no_results: bool,
    /// Sidekiq processes for `peers`; with --sidekiq-concurrency, replaces
    /// the sweep (1-4 processes x 5-25 threads) with this one setting.
    #[arg(long)]
    sidekiq_processes: Option<usize>,
    /// Threads per Sidekiq process; see --sidekiq-processes.
    #[arg(long)]
    sidekiq_concurrency: Option<usize>,
    /// Internal: run the scenario in this process and print JSON lines.
    #[arg(long, hide = true)]
    child: bool,
    /// Internal: only the headline variant.
    #[arg(long, hide = true)]
    lean: bool,
    /// `jobs`: each job spins its worker's CPU this many us (0: no-op jobs).
    #[arg(long, default_value_t = 0)]
    spin_us: u64,
    /// `jobs`: the most simple jobs one lease carries (1: batching off).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_lease_batch: Option<u64>,
    /// Automatic checkpoints off, to measure what they cost (the
    /// runtime's default is on; finished rows then stay in RAM).
    #[arg(long)]
    no_checkpoints: bool,
    /// Background compaction off (`RuntimeOptions::auto_compact`; the
    /// runtime's default is on), to measure what it costs and reclaims.
    #[arg(long)]
    no_auto_compact: bool,
    /// Background compaction's floor in MiB of dead bytes
    /// (`RuntimeOptions::auto_compact_min_dead_bytes`; default 1 GiB): a
    /// small one makes `soak` compact while it runs (it still waits for
    /// half the store to be dead).
    #[arg(long)]
    auto_compact_min_dead_mb: Option<u64>,
    /// `jobs`: only enqueue `--jobs N` no-op jobs while their kind is held
    /// (none runs), write a checkpoint, and measure the peak RSS of that
    /// many queued jobs (issue 12: 10M queued simple jobs in at most 1 GB).
    #[arg(long)]
    enqueue_only: bool,
    /// Alternating repetitions of each comparison (limit/sliced, Booster/peers,
    /// scaling's cycles over the worker counts):
    /// at least 5, or 3 with --quick. Default: that least.
    #[arg(long)]
    repetitions: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    // As the `booster` binary: mimalloc's per-thread pages kept whole as
    // 2 MiB huge pages grew RSS with the threads (`huge_pages`).
    let _ = booster_tools::huge_pages::turn_off();
    let cli = Cli::parse();
    let cores = report::cores();
    let ctx = Ctx {
        quick: cli.quick,
        workers: cli.workers.unwrap_or(cores).max(1),
        codec_threads: cli.codec_threads.map(|t| t as usize),
        dir: cli.dir.clone(),
        records: cli.records,
        jobs: cli.jobs,
        slice_size: cli.slice_size.max(1),
        zstd_level: cli.zstd_level,
        lean: cli.lean,
        spin_us: cli.spin_us,
        max_lease_batch: cli.max_lease_batch.map(|b| b as usize),
        no_checkpoints: cli.no_checkpoints,
        no_auto_compact: cli.no_auto_compact,
        auto_compact_min_dead_mb: cli.auto_compact_min_dead_mb,
        enqueue_only: cli.enqueue_only,
        repetitions: compare::repetitions(cli.quick, cli.repetitions),
        sidekiq_processes: cli.sidekiq_processes.map(|p| p.max(1)),
        sidekiq_concurrency: cli.sidekiq_concurrency.map(|c| c.max(1)),
    };
    if cli.child {
        let results = run_here(cli.scenario, &ctx)?;
        report::print_json(&results);
        return Ok(());
    }
    let machine = Machine::detect();
    let (results, failures) = run_in_children(cli.scenario, &ctx);
    if cli.json {
        report::print_json(&results);
    } else {
        report::print_table(&machine, &results);
        targets::print(&results);
    }
    if !cli.no_results && !results.is_empty() {
        report::append_results(&cli.results, &machine, &results)?;
    }
    for (scenario, error) in &failures {
        eprintln!("scenario {scenario} FAILED: {error:#}");
    }
    anyhow::ensure!(failures.is_empty(), "{} scenario(s) failed", failures.len());
    Ok(())
}

/// The order `all` runs in: limit and sliced first, alternating (the
/// ceiling every other figure is read against).
const ALL: &[Scenario] = &[
    Scenario::Sliced,
    Scenario::Jobs,
    Scenario::Priority,
    Scenario::Recovery,
    Scenario::Scaling,
    Scenario::Peers,
];

fn run_in_children(
    scenario: Scenario,
    ctx: &Ctx,
) -> (Vec<Measurement>, Vec<(String, anyhow::Error)>) {
    let list: Vec<Scenario> = match scenario {
        Scenario::All => ALL.to_vec(),
        other => vec![other],
    };
    let mut results: Vec<Measurement> = Vec::new();
    let mut failures = Vec::new();
    for s in list {
        let outcome = if s == Scenario::Sliced {
            limit_and_sliced(ctx)
        } else {
            eprintln!("booster-bench: running {}", s.name());
            child::run_scenario(ctx, s.name())
        };
        match outcome {
            Ok(r) => results.extend(r),
            Err(e) => failures.push((s.name().to_string(), e)),
        }
    }
    (results, failures)
}

/// `limit` and `sliced` (zstd+aes only) alternately, `ctx.repetitions`
/// times each, every run in its own child process: medians with their
/// spread, the share of the limit pair by pair, and whether the limit held.
fn limit_and_sliced(ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    let mut lean = ctx.clone();
    lean.lean = true;
    let (mut limit_runs, mut sliced_runs) = (Vec::new(), Vec::new());
    for rep in 1..=ctx.repetitions {
        eprintln!(
            "booster-bench: limit and sliced, repetition {rep} of {}",
            ctx.repetitions
        );
        limit_runs.push(child::run_scenario(&lean, Scenario::Limit.name())?);
        sliced_runs.push(child::run_scenario(&lean, Scenario::Sliced.name())?);
    }
    let mut out = compare::aggregate(&limit_runs);
    out.extend(compare::aggregate(&sliced_runs));
    out.extend(compare::limit_share(&limit_runs, &sliced_runs));
    Ok(out)
}

fn run_here(scenario: Scenario, ctx: &Ctx) -> anyhow::Result<Vec<Measurement>> {
    match scenario {
        Scenario::Jobs => scenarios::jobs::run(ctx),
        Scenario::Sliced => scenarios::sliced::run(ctx),
        Scenario::Limit => scenarios::limit::run(ctx),
        Scenario::Priority => scenarios::priority::run(ctx),
        Scenario::Scaling => scenarios::scaling::run(ctx),
        Scenario::Recovery => scenarios::recovery::run(ctx),
        Scenario::Peers => scenarios::peers::run(ctx),
        Scenario::RecoveryChild => scenarios::recovery::child(ctx),
        Scenario::Soak => scenarios::soak::run(ctx),
        Scenario::Fleet => scenarios::fleet::run(ctx),
        Scenario::SoakChild => scenarios::soak::child(ctx),
        Scenario::All => anyhow::bail!("`all` runs each scenario in its own child"),
    }
}
