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
    /// Inspect, export, import or reset persisted node state.
    State(crate::state_cli::StateArgs),
    /// Replay recorded line protocol through a node, as Kapacitor would.
    Replay(crate::replay::ReplayArgs),
    /// List the detector plugins found, with their options.
    Plugins(crate::plugins_cli::PluginsArgs),
    /// How to use one detector: its TICKscript options, a kapacitor.conf
    /// section and a TICKscript to paste.
    Info(crate::plugins_cli::InfoArgs),
}

/// Where state lives: flag/env, else `$XDG_STATE_HOME/tickwatch`, else
/// `$HOME/.local/state/tickwatch`.
#[derive(Debug, Clone, clap::Args)]
pub struct StateDirArg {
    /// State directory (default: $XDG_STATE_HOME/tickwatch, else
    /// $HOME/.local/state/tickwatch).
    #[arg(long, env = "TICKWATCH_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,
}

impl StateDirArg {
    /// The state directory in effect, if any can be named.
    pub fn resolve(&self) -> Option<PathBuf> {
        if let Some(d) = &self.state_dir {
            return Some(d.clone());
        }
        let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        nonempty("XDG_STATE_HOME")
            .map(|d| d.join("tickwatch"))
            .or_else(|| nonempty("HOME").map(|h| h.join(".local/state/tickwatch")))
    }
}

/// Plugin directory flag shared by commands that load detectors.
#[derive(Debug, Clone, clap::Args)]
pub struct PluginDirArg {
    /// Plugin directories, searched in order (default: the binary's own
    /// directory, then <exe dir>/plugins; run from a Cargo target dir,
    /// <exe dir>/deps first). In the env: colon-separated.
    #[arg(long = "plugin-dir", env = "TICKWATCH_PLUGIN_DIR", value_delimiter = ':', global = true)]
    pub plugin_dirs: Vec<PathBuf>,
}

impl PluginDirArg {
    /// The directories in effect.
    pub fn resolve(&self) -> Vec<PathBuf> {
        if self.plugin_dirs.is_empty() {
            crate::plugin::registry::default_dirs()
        } else {
            self.plugin_dirs.clone()
        }
    }
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

    #[command(flatten)]
    pub plugins: PluginDirArg,

    #[command(flatten)]
    pub state: StateDirArg,

    /// Group commit: flush state at most this many milliseconds after a
    /// batch instead of before its points are written. Faster; a crash may
    /// lose up to this much state that Kapacitor already saw. Default: off.
    #[arg(long, env = "TICKWATCH_GROUP_COMMIT_MS")]
    pub group_commit_ms: Option<u64>,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(a) => serve::run(&ServeConfig {
            plugin_dirs: a.plugins.resolve(),
            state_dir: a.state.resolve(),
            detector: a.detector,
            socket: a.socket,
            field_arity: a.field_arity,
            group_commit_ms: a.group_commit_ms,
        }),
        Command::Demo(a) => crate::demo::run(&a),
        Command::State(a) => crate::state_cli::run(&a),
        Command::Plugins(a) => crate::plugins_cli::plugins(&a),
        Command::Replay(a) => crate::replay::replay(&a),
        Command::Info(a) => crate::plugins_cli::info(&a),
    }
}
