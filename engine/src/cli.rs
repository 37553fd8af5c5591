//! The command line: flags and env → validated configs → run.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::serve::{self, ServeConfig};

/// tickwatch: anomaly detection for Kapacitor, as a UDF.
#[derive(Debug, Parser)]
#[command(name = "tickwatch", version, about, long_about = None)]
pub struct Cli {
    /// Log level for stderr (error, warn, info, debug, trace) or a tracing
    /// filter. Kapacitor copies a UDF's stderr into its own log.
    #[arg(long, env = "TICKWATCH_LOG", default_value = "info", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Kapacitor's UDF protocol (what kapacitor.conf runs).
    Serve(ServeArgs),
    /// Run the 3D-printer demo: a generated day of temperatures through one
    /// tickwatch node, over the real protocol.
    Demo(crate::demo::DemoArgs),
}

/// `tickwatch serve` flags.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The detector plugin to serve (e.g. `ttest`).
    #[arg(long)]
    pub detector: String,

    /// Listen on this unix socket instead of stdin/stdout.
    #[arg(long)]
    pub socket: Option<PathBuf>,

    /// How many STRING arguments `.field(...)` takes. Kapacitor requires
    /// exactly this many per call; pad with '' and call again for more.
    #[arg(long, default_value_t = 3)]
    pub field_arity: usize,

    /// Plugin directories, searched in order (default: the binary's own
    /// directory, then <exe dir>/plugins; run from a Cargo target dir,
    /// <exe dir>/deps first). In the env: colon-separated.
    #[arg(long = "plugin-dir", env = "TICKWATCH_PLUGIN_DIR", value_delimiter = ':')]
    pub plugin_dirs: Vec<PathBuf>,

    /// Where node state persists (used from the persistence release on).
    #[arg(long, env = "TICKWATCH_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Plugin dirs from flags/env, or the defaults.
pub fn plugin_dirs(given: &[PathBuf]) -> Vec<PathBuf> {
    if given.is_empty() { crate::plugin::registry::default_dirs() } else { given.to_vec() }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(a) => serve::run(&ServeConfig {
            plugin_dirs: plugin_dirs(&a.plugin_dirs),
            detector: a.detector,
            socket: a.socket,
            field_arity: a.field_arity,
            state_dir: a.state_dir,
        }),
        Command::Demo(a) => crate::demo::run(&a),
    }
}
