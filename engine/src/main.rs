//! The `tickwatch` binary: parse, set up logging, run, map to an exit code.

use clap::Parser;
use tickwatch_engine::cli::{self, Cli};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tickwatch_engine::logging::init(&cli.log);
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR tickwatch: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
