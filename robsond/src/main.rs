//! `robsond`: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    robsond::faults::setup();
    let cli = robsond::cli::Cli::parse();
    robsond::run_command(cli.into_command())
}
