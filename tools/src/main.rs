//! The `booster` command. Everything lives in the `booster_tools` library;
//! this parses the command line, runs it and turns the outcome into an exit
//! code (see `booster --help`).

use booster_tools::{cli, commands, exit};

// Slices are built from many small allocations on every worker thread;
// glibc malloc spent about a fifth of `booster run --kind copy` on them
// (perf), mimalloc a fraction of that (bench/RESULTS.md, "The allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // mimalloc's per-thread pages, each kept whole as a 2 MiB huge page,
    // grew RSS with the thread count (`booster_tools::huge_pages`).
    let _ = booster_tools::huge_pages::turn_off();
    let cli = cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(exit::ERROR);
        }
    };
    let code = match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            let code = exit::code_for(&e);
            match code {
                exit::BROKEN_PIPE => {}
                exit::INTERRUPTED => eprintln!("booster: {e:#}"),
                _ => eprintln!("{}", exit::error_line(&e)),
            }
            code
        }
    };
    // Handlers may still hold blocking threads (a hung `exec` command): do
    // not wait for them; everything acknowledged is already durable.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}
