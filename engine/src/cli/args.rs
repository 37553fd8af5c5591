//! Every flag, its environment variable and its default, as clap structs;
//! each converts itself into the validated config its command takes.

use std::path::PathBuf;

#[cfg(feature = "tools")]
use anyhow::anyhow;
use clap::Subcommand;

#[cfg(feature = "tools")]
use crate::cmd::replay::ReplayConfig;
#[cfg(feature = "tools")]
use crate::cmd::replay::chain;
#[cfg(feature = "tools")]
use crate::cmd::replay::lineproto::Precision;
use crate::cmd::state::{Selection, StateCommand};

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Kapacitor's UDF protocol (what kapacitor.conf runs).
    Serve(ServeArgs),
    /// Run the 3D-printer demo: a generated day of temperatures through one
    /// tickwatch node, over the real protocol.
    #[cfg(feature = "tools")]
    Demo(DemoArgs),
    /// Inspect, export, import or reset persisted node state.
    State(StateArgs),
    /// Replay recorded line protocol through a node, as Kapacitor would.
    #[cfg(feature = "tools")]
    Replay(ReplayArgs),
    /// Not in this build (no `tools` feature): says how to get it.
    #[cfg(not(feature = "tools"))]
    #[command(hide = true)]
    Demo(NotBuilt),
    /// Not in this build (no `tools` feature): says how to get it.
    #[cfg(not(feature = "tools"))]
    #[command(hide = true)]
    Replay(NotBuilt),
    /// List the detector plugins found, with their options.
    Plugins(PluginsArgs),
    /// How to use one detector: its TICKscript options, a kapacitor.conf
    /// section and a TICKscript to paste.
    Info(InfoArgs),
    /// Print a shell completion script (e.g. `tickwatch completions bash >
    /// /etc/bash_completion.d/tickwatch`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (troff), e.g. `tickwatch man > tickwatch.1`.
    Man,
    /// Serve Prometheus metrics of every live node under a state directory
    /// (process-mode UDFs), asked through their control sockets.
    Exporter(ExporterArgs),
}

/// An environment variable's value, or `None` when unset or empty.
///
/// Our env-backed flags are read here rather than by clap, because clap
/// refuses an empty value and kapacitor.conf users write `VAR = ""` to mean
/// "not set"; Kapacitor's Info process must not fail on that.
pub fn env_nonempty(key: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(key).filter(|v| !v.is_empty())
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
        let given = self.given();
        if given.is_empty() { crate::plugin::registry::default_dirs() } else { given }
    }

    /// The directories the user named, by flag or else by
    /// `TICKWATCH_PLUGIN_DIR` (empty when the defaults apply).
    pub fn given(&self) -> Vec<PathBuf> {
        if !self.plugin_dirs.is_empty() {
            return self.plugin_dirs.clone();
        }
        env_nonempty("TICKWATCH_PLUGIN_DIR")
            .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
            .unwrap_or_default()
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
    /// lose up to this much state that Kapacitor already saw, and a power
    /// loss more. Default: off: each batch is committed, flushed and
    /// fdatasync'ed before its points are written, so it survives a crash
    /// of the process, the kernel or the power.
    /// [env: TICKWATCH_GROUP_COMMIT_MS]
    #[arg(long)]
    pub group_commit_ms: Option<u64>,

    /// Socket mode: connections served at once; more are answered with an
    /// error and closed. Default: what the open-file limit allows (16
    /// descriptors a connection).
    #[arg(long)]
    pub max_connections: Option<usize>,

    /// Socket mode: close a connection that sends no Init within this time
    /// (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub init_timeout: i64,

    /// Watchdog: a detector call that runs longer than this (e.g. 5s) ends
    /// the task with an error naming the detector, field and group, so
    /// Kapacitor restarts it (its own --timeout never fires while tickwatch
    /// answers keepalives). Keep it under Kapacitor's UDF timeout. `off`
    /// disables it.
    #[arg(long, default_value = "5s", value_parser = parse_limit)]
    pub batch_timeout: Limit,

    /// Socket mode: serve Prometheus metrics at http://ADDR/metrics (e.g.
    /// 127.0.0.1:9105; port 0 picks a free one, logged at info). For
    /// process mode, run `tickwatch exporter` instead.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// Which edges the UDF wants: `batch` (windows from |window()) or
    /// `stream` (points; the node forms windows itself from
    /// .period().every(), or scores every point). One per
    /// [udf.functions.X] entry: `tickwatch info` prints both.
    #[arg(long, value_enum, default_value = "batch")]
    pub edge: EdgeArg,

    /// Stream edges: a group whose last point is this much older (in data
    /// time) than the newest point leaves memory; its state stays in the
    /// state directory and comes back with its next point. 1s to 366d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub idle_evict: i64,
}

/// `tickwatch exporter` flags.
#[derive(Debug, clap::Args)]
pub struct ExporterArgs {
    #[command(flatten)]
    pub state: StateDirArg,

    /// Serve Prometheus metrics at http://ADDR/metrics (port 0 picks a
    /// free one, logged at info).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,

    /// How long one scrape waits for each node's answer before skipping it
    /// (e.g. 2s).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub node_timeout: i64,
}

/// `--edge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EdgeArg {
    /// Batches from |window() (wants BATCH).
    Batch,
    /// Points one at a time (wants STREAM).
    Stream,
}

impl From<EdgeArg> for crate::node::Edge {
    fn from(e: EdgeArg) -> Self {
        match e {
            EdgeArg::Batch => crate::node::Edge::Batch,
            EdgeArg::Stream => crate::node::Edge::Stream,
        }
    }
}

/// A time limit in nanoseconds, or none (`off`).
#[derive(Debug, Clone, Copy)]
pub struct Limit(pub Option<i64>);

fn parse_limit(s: &str) -> Result<Limit, String> {
    if s == "off" { Ok(Limit(None)) } else { parse_duration(s).map(|ns| Limit(Some(ns))) }
}

/// A command left out of this build: takes any arguments, so the user gets
/// the reason instead of a usage error.
#[cfg(not(feature = "tools"))]
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct NotBuilt {
    /// Whatever was given.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<std::ffi::OsString>,
}

/// `tickwatch demo` flags.
#[cfg(feature = "tools")]
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// RNG seed for the generated day.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// One JSON object per emitted point (as `replay --json`) instead of the
    /// report.
    #[arg(long)]
    pub json: bool,
    /// Write an SVG plot here (as `replay --plot`).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Also keep the generated line protocol here.
    #[arg(long)]
    pub write_data: Option<PathBuf>,
    #[command(flatten)]
    pub plugins: PluginDirArg,
}

/// `tickwatch plugins` flags.
#[derive(Debug, clap::Args)]
pub struct PluginsArgs {
    #[command(flatten)]
    pub plugins: PluginDirArg,
    /// JSON for scripts: an array of objects with name, version, abi, path,
    /// options, and error for files that failed to load.
    #[arg(long)]
    pub json: bool,
}

/// `tickwatch info` flags.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// The detector to describe.
    #[arg(long)]
    pub detector: String,
    /// The `--field-arity` you will serve with.
    #[arg(long, default_value_t = 3)]
    pub field_arity: usize,
    #[command(flatten)]
    pub plugins: PluginDirArg,
}

/// `tickwatch replay` flags.
#[cfg(feature = "tools")]
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Line-protocol files (`-` for stdin; `.gz` is decompressed).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The detector to run.
    #[arg(long)]
    pub detector: String,
    /// The UDF's option chain as a TICKscript writes it, e.g.
    /// ".field('hotend','bed','air').size(3600).alpha(0.001)".
    #[arg(long)]
    pub udf: String,
    /// Window period, as `|window().period()`: a TICKscript duration (e.g.
    /// 5m, 300s; units ns, u, ms, s, m, h, d, w).
    #[arg(long, default_value = "5m", value_parser = chain::duration)]
    pub window: i64,
    /// Window every, as `|window().every()` (default: the period).
    #[arg(long, value_parser = chain::duration)]
    pub every: Option<i64>,
    /// Window ends on multiples of --every, as `|window().align()`.
    #[arg(long)]
    pub align: bool,
    /// Group by this tag (repeatable), as `|groupBy()`.
    #[arg(long = "group-by")]
    pub group_by: Vec<String>,
    /// Only lines of this measurement.
    #[arg(long)]
    pub measurement: Option<String>,
    /// Timestamp unit of the input: ns, us, ms or s.
    #[arg(long, default_value = "ns")]
    pub precision: Precision,
    /// One JSON object per emitted point instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Write an SVG plot here: values per field, p-values on a log scale,
    /// anomalous windows shaded.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The `--field-arity` the UDF is served with.
    #[arg(long, default_value_t = 3)]
    pub field_arity: usize,
    /// `stream`: send the points as a stream-edge task does (the node forms
    /// the windows from --window/--every, or the chain's .period().every());
    /// `batch`: send the windows, as after |window().
    #[arg(long, value_enum, default_value = "batch")]
    pub edge: EdgeArg,
    #[command(flatten)]
    pub plugins: PluginDirArg,
}

/// Parses `5m`, `300s`, `1h30m`… into nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    let ns = i64::try_from(d.as_nanos()).map_err(|_| format!("{s:?} is too long"))?;
    if ns <= 0 {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(ns)
}

#[cfg(feature = "tools")]
impl ReplayArgs {
    /// Checks the chain and builds the replay's config.
    pub fn into_config(self) -> anyhow::Result<ReplayConfig> {
        let options = chain::parse(&self.udf).map_err(|e| anyhow!("--udf: {e}"))?;
        Ok(ReplayConfig {
            files: self.files,
            detector: self.detector,
            options,
            period: self.window,
            every: self.every.unwrap_or(self.window),
            align: self.align,
            group_by: self.group_by,
            measurement: self.measurement,
            precision: self.precision,
            json: self.json,
            plot: self.plot,
            field_arity: self.field_arity,
            plugin_dirs: self.plugins.resolve(),
            edge: self.edge.into(),
        })
    }
}

/// `tickwatch state` flags.
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    #[command(flatten)]
    pub state: StateDirArg,
    #[command(flatten)]
    pub plugins: PluginDirArg,
    #[command(subcommand)]
    pub cmd: StateCmd,
}

/// Which node, and optionally which group and field.
#[derive(Debug, clap::Args)]
pub struct Select {
    /// Task id.
    #[arg(long)]
    task: String,
    /// Node id (e.g. tTest2).
    #[arg(long)]
    node: String,
    /// Only this group id ("" for ungrouped data).
    #[arg(long)]
    group: Option<String>,
    /// Only this field.
    #[arg(long)]
    field: Option<String>,
}

impl From<Select> for Selection {
    fn from(s: Select) -> Selection {
        Selection { task: s.task, node: s.node, group: s.group, field: s.field }
    }
}

/// `tickwatch state` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StateCmd {
    /// Every task/node with its fields, groups, detector and last batch time.
    List {
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Per (group, field): detector, last batch time and the detector's own
    /// description of its state.
    Show {
        #[command(flatten)]
        sel: Select,
        /// JSON for scripts: an array of objects with task, node, group,
        /// field, detector, last_time, last_time_ns, summary.
        #[arg(long)]
        json: bool,
    },
    /// State kept aside for inspection: not applied (another detector, state
    /// format or options) or reset by a user.
    Aside {
        /// Task id.
        #[arg(long)]
        task: String,
        /// Node id.
        #[arg(long)]
        node: String,
        /// JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// A node's exact state as JSON (stdout, or --output FILE).
    Export {
        /// Task id.
        #[arg(long)]
        task: String,
        /// Node id.
        #[arg(long)]
        node: String,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Loads an export back, exactly (the node must not be running).
    Import {
        /// The export file.
        file: PathBuf,
        /// Task id to import into (default: the export's).
        #[arg(long)]
        task: Option<String>,
        /// Node id to import into (default: the export's).
        #[arg(long)]
        node: Option<String>,
    },
    /// Brings state set aside back when it is compatible with the node's
    /// current configuration (same detector and state format, same
    /// state-shaping options, a tracked field): per (group, field) the
    /// newest compatible record. Refuses, with the reason per record, when
    /// none is. The node must not be running.
    Adopt {
        #[command(flatten)]
        sel: Select,
    },
    /// Resets a field (its state is set aside) or, without --group/--field, a
    /// whole node (its directory, even a corrupt one, is moved aside). Nothing
    /// is deleted. The node must not be running.
    Reset {
        #[command(flatten)]
        sel: Select,
    },
}

impl StateCmd {
    /// The command body's view of the subcommand.
    pub fn into_command(self) -> StateCommand {
        match self {
            StateCmd::List { json } => StateCommand::List { json },
            StateCmd::Show { sel, json } => StateCommand::Show { sel: sel.into(), json },
            StateCmd::Aside { task, node, json } => StateCommand::Aside { task, node, json },
            StateCmd::Export { task, node, output } => StateCommand::Export { task, node, output },
            StateCmd::Import { file, task, node } => StateCommand::Import { file, task, node },
            StateCmd::Reset { sel } => StateCommand::Reset { sel: sel.into() },
            StateCmd::Adopt { sel } => StateCommand::Adopt { sel: sel.into() },
        }
    }
}
