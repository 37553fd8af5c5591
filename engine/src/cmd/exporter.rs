//! `tickwatch exporter`: one Prometheus endpoint for every live node under
//! a state directory. Process-mode UDFs are one process per task, each with
//! its own control socket (`<state-dir>/control/`); on each scrape the
//! exporter asks every node that has one for its figures
//! (`Request::Metrics`), at most [`PARALLEL`] at a time and each within the
//! node timeout, and renders one page. A node that does not answer (it
//! died, is stuck, or speaks an older control protocol) is skipped and
//! counted (`tickwatch_exporter_nodes_unreachable`); a node without a
//! control socket is stopped and not shown.
//!
//! Nodes without a state directory have no control socket and cannot be
//! seen here.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use tickwatch_state::layout;

use crate::control::client::query_within;
use crate::control::{Request, Response};
use crate::metrics::encode::{self, ExporterFigures, Page, Proc};
use crate::metrics::http;

/// Nodes asked at once during a scrape.
pub const PARALLEL: usize = 8;

/// Validated `exporter` configuration.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// The state directory the nodes run under.
    pub state_dir: PathBuf,
    /// `host:port` to serve `/metrics` on.
    pub listen: String,
    /// How long a scrape waits for each node.
    pub node_timeout: Duration,
}

/// What the exporter remembers between scrapes.
#[derive(Debug, Default)]
struct Scraper {
    unreachable_total: AtomicU64,
    /// Control sockets that did not answer last time (to log changes once).
    failing: Mutex<HashSet<PathBuf>>,
}

enum Asked {
    Answered(Box<crate::control::protocol::Figures>),
    Unreachable(String),
}

fn ask(socket: &Path, timeout: Duration) -> Asked {
    match query_within(socket, Request::Metrics, timeout) {
        Ok(Some(Response::Metrics(f))) => Asked::Answered(f),
        Ok(Some(Response::Error(e))) => Asked::Unreachable(e),
        Ok(Some(_)) => Asked::Unreachable("an answer of another kind".into()),
        Ok(None) => Asked::Unreachable("nothing listens on its control socket".into()),
        Err(e) => Asked::Unreachable(e.to_string()),
    }
}

impl Scraper {
    /// Asks every live node under `state_dir` and renders the page.
    fn scrape(&self, state_dir: &Path, timeout: Duration) -> String {
        let sockets: Vec<(String, String, PathBuf)> = match layout::list_nodes(state_dir) {
            Ok(nodes) => nodes
                .into_iter()
                .filter_map(|(_, meta)| meta.ok())
                .map(|m| {
                    let s = layout::control_socket(state_dir, &m.task, &m.node);
                    (m.task, m.node, s)
                })
                .filter(|(_, _, s)| s.exists())
                .collect(),
            Err(e) => {
                tracing::warn!("cannot list nodes in {}: {e}", state_dir.display());
                Vec::new()
            }
        };
        let mut asked: Vec<Asked> = Vec::with_capacity(sockets.len());
        for chunk in sockets.chunks(PARALLEL) {
            std::thread::scope(|s| {
                let handles: Vec<_> =
                    chunk.iter().map(|(_, _, sock)| s.spawn(move || ask(sock, timeout))).collect();
                for h in handles {
                    asked.push(
                        h.join()
                            .unwrap_or_else(|_| Asked::Unreachable("the query panicked".into())),
                    );
                }
            });
        }
        let mut page = Page::default();
        let mut x = ExporterFigures::default();
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        for ((task, node, sock), a) in sockets.iter().zip(asked) {
            match a {
                Asked::Answered(f) => {
                    x.answered += 1;
                    if failing.remove(sock) {
                        tracing::info!("task {task} node {node} answers again");
                    }
                    page.processes.push(Proc {
                        node: Some((f.node.task.clone(), f.node.node.clone())),
                        figures: f.process,
                    });
                    page.nodes.push(f.node);
                }
                Asked::Unreachable(why) => {
                    x.unreachable += 1;
                    if failing.insert(sock.clone()) {
                        tracing::warn!("task {task} node {node}: skipped: {why}");
                    }
                }
            }
        }
        x.unreachable_total =
            self.unreachable_total.fetch_add(x.unreachable, Ordering::Relaxed) + x.unreachable;
        page.nodes.sort_by(|a, b| (&a.task, &a.node).cmp(&(&b.task, &b.node)));
        page.exporter = Some(x);
        encode::page(page)
    }
}

/// Serves until the process is stopped.
pub fn run(cfg: &ExporterConfig) -> anyhow::Result<()> {
    if cfg.node_timeout.is_zero() {
        anyhow::bail!("--node-timeout must be positive");
    }
    let scraper = Arc::new(Scraper::default());
    let state_dir = cfg.state_dir.clone();
    let timeout = cfg.node_timeout;
    let render: http::Render = Arc::new(move || scraper.scrape(&state_dir, timeout));
    let bound = http::serve(&cfg.listen, render)
        .with_context(|| format!("cannot listen on {} (--listen)", cfg.listen))?;
    tracing::info!(
        "metrics on http://{bound}/metrics for the nodes under {}",
        cfg.state_dir.display()
    );
    loop {
        std::thread::park();
    }
}
