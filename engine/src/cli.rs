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
    /// State directory [env: TICKWATCH_STATE_DIR] (default:
    /// $XDG_STATE_HOME/tickwatch, else $HOME/.local/state/tickwatch).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
}

impl StateDirArg {
    /// The state directory in effect, if any can be named.
    pub fn resolve(&self) -> Option<PathBuf> {
        if let Some(d) = &self.state_dir {
            return Some(d.clone());
        }
        let nonempty = |k: &str| env_nonempty(k).map(PathBuf::from);
        nonempty("TICKWATCH_STATE_DIR")
            .or_else(|| nonempty("XDG_STATE_HOME").map(|d| d.join("tickwatch")))
            .or_else(|| nonempty("HOME").map(|h| h.join(".local/state/tickwatch")))
    }
}

/// An environment variable's value, or `None` when unset or empty.
///
/// Our env-backed flags are read here rather than by clap, because clap
/// refuses an empty value and kapacitor.conf users write `VAR = ""` to mean
/// "not set"; Kapacitor's Info process must not fail on that.
pub fn env_nonempty(key: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(key).filter(|v| !v.is_empty())
}

/// Plugin directory flag shared by commands that load detectors.
#[derive(Debug, Clone, clap::Args)]
pub struct PluginDirArg {
    /// Plugin directories, searched in order [env: TICKWATCH_PLUGIN_DIR,
    /// colon-separated] (default: the binary's own directory, then
    /// <exe dir>/plugins; run from a Cargo target dir, <exe dir>/deps first).
    #[arg(long = "plugin-dir", value_delimiter = ':', global = true)]
    pub plugin_dirs: Vec<PathBuf>,
}

impl PluginDirArg {
    /// The directories in effect.
    pub fn resolve(&self) -> Vec<PathBuf> {
        if !self.plugin_dirs.is_empty() {
            return self.plugin_dirs.clone();
        }
        match env_nonempty("TICKWATCH_PLUGIN_DIR") {
            Some(v) => std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect(),
            None => crate::plugin::registry::default_dirs(),
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
    /// [env: TICKWATCH_GROUP_COMMIT_MS]
    #[arg(long)]
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
            group_commit_ms: match a.group_commit_ms {
                Some(ms) => Some(ms),
                None => env_nonempty("TICKWATCH_GROUP_COMMIT_MS")
                    .map(|v| {
                        v.to_string_lossy().trim().parse::<u64>().map_err(|e| {
                            anyhow::anyhow!(
                                "TICKWATCH_GROUP_COMMIT_MS={v:?} is not a number of ms: {e}"
                            )
                        })
                    })
                    .transpose()?,
            },
        }),
        Command::Demo(a) => crate::demo::run(&a),
        Command::State(a) => crate::state_cli::run(&a),
        Command::Plugins(a) => crate::plugins_cli::plugins(&a),
        Command::Replay(a) => crate::replay::replay(&a),
        Command::Info(a) => crate::plugins_cli::info(&a),
    }
}
