//! `tickwatch serve`, what Kapacitor runs: one node over stdin/stdout
//! ([`stdio`]) or many over a unix socket ([`socket`]), each connection a
//! [`session`] whose node is wired to its store and control socket
//! ([`persist`]).
//!
//! stdout belongs to the protocol: every module here denies `print_stdout`.
#![deny(clippy::print_stdout)]

pub mod persist;
mod queue;
pub mod session;
pub mod socket;
pub mod stdio;

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::node::DetectorFactory;
use crate::plugin::Registry;
use persist::StateSettings;
use session::SessionConfig;

/// How long Init waits for another process to release a node's database:
/// well inside Kapacitor's usual 10 s UDF timeout.
pub const STATE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Validated `serve` configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Detector name.
    pub detector: String,
    /// Directories searched for plugins.
    pub plugin_dirs: Vec<PathBuf>,
    /// Unix socket to listen on; stdin/stdout when `None`.
    pub socket: Option<PathBuf>,
    /// STRING arguments of `field`.
    pub field_arity: usize,
    /// State directory; `None` keeps state only in Kapacitor's snapshots.
    pub state_dir: Option<PathBuf>,
    /// Group commit interval (ms); `None` flushes every batch before its points.
    pub group_commit_ms: Option<u64>,
    /// Socket mode: connections served at once (`None`: what the fd limit allows).
    pub max_connections: Option<usize>,
    /// Socket mode: how long a connection may stay silent before its Init.
    pub init_timeout: std::time::Duration,
    /// The watchdog's limit for one detector call (`None`: no watchdog).
    pub batch_timeout: Option<std::time::Duration>,
    /// Socket mode: serve Prometheus metrics on this address (`host:port`).
    pub metrics_listen: Option<String>,
    /// Batch or stream edges (`--edge`).
    pub edge: crate::node::Edge,
    /// Stream edges: evict a group idle this long (ns of data time).
    pub idle_evict: i64,
}

/// Bounds of `--idle-evict`: a second to a year of data time.
pub const IDLE_EVICT_RANGE: std::ops::RangeInclusive<i64> =
    1_000_000_000..=366 * 24 * 3600 * 1_000_000_000;

/// Runs `serve` to completion.
pub fn run(cfg: &ServeConfig) -> anyhow::Result<()> {
    if cfg.field_arity == 0 {
        bail!("--field-arity must be at least 1");
    }
    if cfg.max_connections == Some(0) {
        bail!("--max-connections must be at least 1");
    }
    if cfg.init_timeout.is_zero() {
        bail!("--init-timeout must be positive");
    }
    if cfg.metrics_listen.is_some() && cfg.socket.is_none() {
        bail!(
            "--metrics-listen needs --socket: a process-mode node is one process per task; \
             run `tickwatch exporter --state-dir DIR --listen ADDR` once to see them all"
        );
    }
    crate::metrics::mark_start();
    if !IDLE_EVICT_RANGE.contains(&cfg.idle_evict) {
        bail!("--idle-evict must be between 1s and 366 days");
    }
    let plugin = Registry::require(&cfg.detector, &cfg.plugin_dirs)?;
    tracing::debug!(
        "detector {} {} from {}",
        plugin.name(),
        plugin.version(),
        plugin.path().display()
    );
    let state = cfg.state_dir.as_ref().map(|dir| StateSettings {
        dir: dir.clone(),
        wait: STATE_LOCK_WAIT,
        group_commit_ms: cfg.group_commit_ms,
    });
    let session = SessionConfig {
        factory: plugin,
        field_arity: cfg.field_arity,
        state,
        batch_timeout: cfg.batch_timeout,
        edge: cfg.edge,
        idle_evict: cfg.idle_evict,
    };
    match &cfg.socket {
        None => stdio::serve(&session).context("serving on stdin/stdout"),
        Some(path) => {
            if let Some(addr) = &cfg.metrics_listen {
                metrics_endpoint(addr)?;
            }
            let limits = socket::Limits {
                max_connections: cfg
                    .max_connections
                    .unwrap_or_else(socket::default_max_connections),
                init_timeout: cfg.init_timeout,
            };
            socket::serve(path, &session, limits)
                .with_context(|| format!("serving on socket {}", path.display()))
        }
    }
}

/// Starts `GET /metrics` on `addr` for every node this process serves.
fn metrics_endpoint(addr: &str) -> anyhow::Result<()> {
    use crate::metrics::{self, encode};
    let render: metrics::http::Render = std::sync::Arc::new(|| {
        encode::page(encode::Page {
            nodes: metrics::live::figures(),
            processes: vec![encode::Proc { node: None, figures: metrics::process() }],
            exporter: None,
        })
    });
    let bound = metrics::http::serve(addr, render)
        .with_context(|| format!("cannot listen for metrics on {addr} (--metrics-listen)"))?;
    tracing::info!("metrics on http://{bound}/metrics");
    Ok(())
}
