//! The command line, the only module that knows clap and the environment:
//! flags and env ([`args`]) → validated configs → the command bodies in
//! `crate::cmd` and `crate::serve`, which never import this module.

pub mod args;
pub mod logging;

use anyhow::anyhow;
use clap::Parser;

use crate::cmd;
use crate::serve::{self, ServeConfig};
use args::{Command, env_nonempty};

/// The optional features of this build, as `--version` shows them.
#[cfg(feature = "tools")]
macro_rules! features {
    () => {
        "tools"
    };
}
#[cfg(not(feature = "tools"))]
macro_rules! features {
    () => {
        "none (serving only)"
    };
}

/// `tickwatch --version`: the release, the plugin ABI it loads (a unit
/// test keeps the number equal to `tickwatch_plugin_api::abi::ABI_VERSION`)
/// and the cargo features it was built with.
pub const LONG_VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (plugin ABI 1; features: ", features!(), ")");

/// tickwatch: anomaly detection for Kapacitor, as a UDF.
#[derive(Debug, Parser)]
#[command(name = "tickwatch", version = LONG_VERSION, about, long_about = None)]
pub struct Cli {
    /// Log level for stderr (error, warn, info, debug, trace) or a tracing
    /// filter. Kapacitor copies a UDF's stderr into its own log.
    #[arg(long, env = "TICKWATCH_LOG", default_value = "info", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

/// `TICKWATCH_GROUP_COMMIT_MS`, when the flag is not given.
fn group_commit_env() -> anyhow::Result<Option<u64>> {
    env_nonempty("TICKWATCH_GROUP_COMMIT_MS")
        .map(|v| {
            v.to_string_lossy()
                .trim()
                .parse::<u64>()
                .map_err(|e| anyhow!("TICKWATCH_GROUP_COMMIT_MS={v:?} is not a number of ms: {e}"))
        })
        .transpose()
}

/// Why `tickwatch demo`/`replay` is missing, and how to get it.
#[cfg(not(feature = "tools"))]
fn not_built(command: &str) -> anyhow::Error {
    anyhow!(
        "tickwatch {command} is not in this build: it was built without the `tools` feature \
         (a serving-only binary: serve, state, plugins, info). Install the tickwatch package \
         or scripts/install.sh, or build with `cargo build --release -p tickwatch-engine` \
         (`tools` is on by default); see docs/install.md"
    )
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut cmd, "tickwatch", &mut out);
            Ok(())
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout().lock())?;
            Ok(())
        }
        Command::Serve(a) => serve::run(&ServeConfig {
            plugin_dirs: a.plugins.resolve(),
            state_dir: a.state.resolve(),
            detector: a.detector,
            socket: a.socket,
            field_arity: a.field_arity,
            group_commit_ms: match a.group_commit_ms {
                Some(ms) => Some(ms),
                None => group_commit_env()?,
            },
            max_connections: a.max_connections,
            init_timeout: std::time::Duration::from_nanos(a.init_timeout.unsigned_abs()),
            batch_timeout: a
                .batch_timeout
                .0
                .map(|ns| std::time::Duration::from_nanos(ns.unsigned_abs())),
            metrics_listen: a.metrics_listen,
            edge: a.edge.into(),
            idle_evict: a.idle_evict,
        }),
        Command::Exporter(a) => cmd::exporter::run(&cmd::exporter::ExporterConfig {
            state_dir: a.state.resolve().ok_or_else(|| {
                anyhow!("no state directory: pass --state-dir or set TICKWATCH_STATE_DIR")
            })?,
            listen: a.listen,
            node_timeout: std::time::Duration::from_nanos(a.node_timeout.unsigned_abs()),
        }),
        #[cfg(feature = "tools")]
        Command::Demo(a) => cmd::demo::run(&cmd::demo::DemoConfig {
            seed: a.seed,
            json: a.json,
            plot: a.plot,
            write_data: a.write_data,
            plugin_dirs: a.plugins.resolve(),
        }),
        Command::State(a) => {
            let state_dir = a.state.resolve().ok_or_else(|| {
                anyhow!("no state directory: pass --state-dir or set TICKWATCH_STATE_DIR")
            })?;
            cmd::state::run(&state_dir, &a.plugins.resolve(), a.cmd.into_command())
        }
        Command::Plugins(a) => cmd::plugins::plugins(&a.plugins.resolve(), a.json),
        #[cfg(feature = "tools")]
        Command::Replay(a) => cmd::replay::replay(&a.into_config()?),
        #[cfg(not(feature = "tools"))]
        Command::Demo(_) => Err(not_built("demo")),
        #[cfg(not(feature = "tools"))]
        Command::Replay(_) => Err(not_built("replay")),
        Command::Info(a) => cmd::plugins::info(&cmd::plugins::InfoConfig {
            plugin_dirs: a.plugins.resolve(),
            given_dirs: a.plugins.given(),
            detector: a.detector,
            field_arity: a.field_arity,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_names_the_plugin_abi_it_loads() {
        let abi = tickwatch_plugin_api::abi::ABI_VERSION;
        assert!(LONG_VERSION.contains(&format!("(plugin ABI {abi}; ")), "{LONG_VERSION}");
    }

    #[test]
    fn the_version_names_the_build_features() {
        assert_eq!(
            LONG_VERSION.contains("features: tools)"),
            cfg!(feature = "tools"),
            "{LONG_VERSION}"
        );
    }
}
