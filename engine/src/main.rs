//! The `tickwatch` binary: parse, set up logging, run, map to an exit code.

use std::process::ExitCode;

use clap::Parser;
use tickwatch_engine::cli::{self, Cli, logging};

/// A reader that stopped reading (`tickwatch plugins | head -1`) is not an
/// error: exit quietly with 0, as ripgrep and fd do.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.log);
    // A panic is logged as one error line like any other event; the code
    // that catches it (a session, the database guards) answers Kapacitor.
    std::panic::set_hook(Box::new(|info| tracing::error!("internal error: {info}")));
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR tickwatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}
