//! `robsond`: parse the command line and hand over to the library.

use clap::Parser;

/// jemalloc instead of the system's malloc: a catch-up allocates and frees
/// millions of small JSON nodes per second, which glibc's malloc paid
/// for in fastbin consolidation and chunk unlinking (docs/performance.md,
/// "jemalloc").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    robsond::faults::setup();
    let cli = robsond::cli::Cli::parse();
    robsond::run_command(cli.into_command())
}
