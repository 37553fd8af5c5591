//! `tickwatch serve`: one node over stdin/stdout ([`stdio`]) or many over a
//! unix socket ([`socket`]).
#![deny(clippy::print_stdout)]

pub mod socket;
pub mod stdio;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::plugin::{Plugin, Registry};
use crate::session::{SessionConfig, StateSettings};

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
}

/// Finds the detector, failing with the list of those found.
pub fn find_plugin(detector: &str, dirs: &[PathBuf]) -> anyhow::Result<Arc<Plugin>> {
    let registry = Registry::discover(dirs);
    if let Some(reason) = registry.conflict(detector) {
        bail!("cannot serve detector {detector:?}: {reason}");
    }
    if let Some(p) = registry.get(detector) {
        for (path, reason) in registry.failures() {
            tracing::warn!("plugin file {} not loaded: {reason}", path.display());
        }
        return Ok(Arc::clone(p));
    }
    let dirs_text: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let mut msg = format!(
        "unknown detector {detector:?}; detectors found: {} (searched {})",
        if registry.names().is_empty() { "none".to_string() } else { registry.names().join(", ") },
        dirs_text.join(", ")
    );
    for (path, reason) in registry.failures() {
        msg.push_str(&format!("\n  could not load {}: {reason}", path.display()));
    }
    bail!(msg)
}

/// Runs `serve` to completion.
pub fn run(cfg: &ServeConfig) -> anyhow::Result<()> {
    if cfg.field_arity == 0 {
        bail!("--field-arity must be at least 1");
    }
    let plugin = find_plugin(&cfg.detector, &cfg.plugin_dirs)?;
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
    let session = SessionConfig { plugin, field_arity: cfg.field_arity, state };
    match &cfg.socket {
        None => stdio::serve(&session).context("serving on stdin/stdout"),
        Some(path) => socket::serve(path, &session)
            .with_context(|| format!("serving on socket {}", path.display())),
    }
}
