//! Stream edges: a node served with `--edge stream` gets Kapacitor's points
//! one at a time and forms its windows itself, per Kapacitor group, exactly
//! as `|window().period(P).every(E)` would have before a batch-edge node
//! (the same windows as [`crate::kapacitor::Windower`], over points kept
//! as their bytes, [`ViewWindower`]: time-based, catch-up after gaps as Kapacitor's
//! window node does). Without `.period()`, a detector that judges single
//! values (`MIN_WINDOW` 1) scores every point as a one-value window.
//!
//! Owns: the edge type and which options fit it ([`check_edge`]), the
//! per-group windows ([`StreamWindows`]), the input points held back for
//! `.passThrough()` until the window they fall in closes, and idle eviction
//! by data time. Does not own: scoring (the node), persistence or threads.
//!
//! Idle time is measured in data time, not wall time: a group whose last
//! point is more than `idle` older than the newest point of any group is
//! evicted. It is deterministic (replay and a live task agree), and when
//! every group stops nothing grows anyway.

use std::collections::{HashMap, VecDeque};

use tickwatch_proto::{EncodedPoints, PointView, agent};

use super::config::{ConfigError, NodeConfig, PERIOD_OPTION};
use crate::kapacitor::{Batch, ViewWindower};

/// Which edges a node is served with (`tickwatch serve --edge`): one per
/// UDF function, since Kapacitor's Info answer has a single `wants`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Edge {
    /// Windows from `|window()`, one batch at a time (the default).
    #[default]
    Batch,
    /// Points one at a time; the node forms its windows itself.
    Stream,
}

impl Edge {
    /// As the flag and the docs write it.
    pub fn name(self) -> &'static str {
        match self {
            Edge::Batch => "batch",
            Edge::Stream => "stream",
        }
    }
}

/// Refuses options that do not fit `edge` (at Init, with the reason):
/// `.period()`/`.every()` on batch edges (`|window()` already cut the
/// windows), and a stream node without `.period()` whose detector
/// (`detector`, judging at least `min_window` values) cannot score single
/// points.
pub fn check_edge(
    cfg: &NodeConfig,
    edge: Edge,
    detector: &str,
    min_window: u32,
) -> Result<(), ConfigError> {
    match (edge, cfg.window) {
        (Edge::Batch, Some(_)) => Err(ConfigError::Edge(format!(
            "option {PERIOD_OPTION}/every is for stream edges: this UDF wants batch edges, whose \
             windows |window() already cut; remove .period()/.every(), or use the function \
             served with --edge stream (`tickwatch info` prints both)"
        ))),
        (Edge::Stream, None) if min_window > 1 => Err(ConfigError::Edge(format!(
            "detector {detector} judges windows of at least {min_window} values, so on stream \
             edges it needs .period(…).every(…) (e.g. .period(5m).every(5m), as \
             |window().period(5m).every(5m)); only a detector that judges single values scores \
             every point"
        ))),
        _ => Ok(()),
    }
}

/// A window the stream closed: the batch to score and, with
/// `.passThrough()`, the input points to emit with its verdict.
#[derive(Debug)]
pub struct Closed {
    /// The window as a batch-edge node would have received it.
    pub batch: Batch,
    /// The input points (as they arrived) that this window releases:
    /// those before its end not released by an earlier window.
    pub pass: Vec<agent::Point>,
}

struct GroupSeen {
    last: i64,
    /// `.passThrough()`: points waiting for the window they fall in.
    held: VecDeque<agent::Point>,
}

/// The windows of one stream-edge node, per Kapacitor group.
pub struct StreamWindows {
    /// `None`: every point is its own window.
    windows: Option<ViewWindower>,
    pass_through: bool,
    groups: HashMap<String, GroupSeen>,
    idle: i64,
    newest: i64,
    next_sweep: i64,
}

impl std::fmt::Debug for StreamWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWindows")
            .field("windows", &self.windows)
            .field("groups", &self.groups.len())
            .field("idle", &self.idle)
            .finish()
    }
}

/// The group-by tags of a stream point: its `dimensions`' tags.
fn group_tags(p: &PointView<'_>) -> HashMap<String, String> {
    p.dimensions().filter_map(|d| p.tag(d).map(|v| (d.to_string(), v.to_string()))).collect()
}

impl StreamWindows {
    /// The windows for `cfg` (its `.period().every()`, or one per point);
    /// groups idle for more than `idle` ns of data time are evicted.
    pub fn new(cfg: &NodeConfig, idle: i64) -> Self {
        StreamWindows {
            windows: cfg.window.map(|w| ViewWindower::new(w.period, w.every, w.align)),
            pass_through: cfg.pass_through,
            groups: HashMap::new(),
            idle: idle.max(1),
            newest: i64::MIN,
            next_sweep: i64::MIN,
        }
    }

    /// Groups currently held in memory.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Whether `group` is held in memory.
    pub fn holds(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// Takes one stream point, kept as its bytes; returns the window it
    /// closes, if any (at most one, as in Kapacitor). The window's rows are
    /// in its batch's `encoded`; only `.passThrough()` decodes the point.
    pub fn push(&mut self, p: PointView<'_>) -> Option<Closed> {
        let (time, group) = p.time_and_group();
        self.newest = self.newest.max(time);
        let seen = match self.groups.get_mut(group) {
            Some(seen) => seen,
            None => self
                .groups
                .entry(group.to_string())
                .or_insert(GroupSeen { last: time, held: VecDeque::new() }),
        };
        seen.last = seen.last.max(time);
        let Some(windows) = self.windows.as_mut() else {
            // One-value windows: the point is its own batch, ending at its time.
            let tags = group_tags(&p);
            let pass = if self.pass_through { vec![p.to_point()] } else { Vec::new() };
            let (name, by_name) = (p.name(), p.by_name());
            let mut encoded = EncodedPoints::with_capacity(1);
            encoded.push(p);
            let batch = Batch {
                begin: agent::BeginBatch {
                    name: name.to_string(),
                    group: group.to_string(),
                    tags: tags.clone(),
                    size: 1,
                    by_name,
                },
                end: agent::EndBatch {
                    name: name.to_string(),
                    group: group.to_string(),
                    tmax: time,
                    tags,
                    by_name,
                },
                encoded,
                ..Batch::default()
            };
            return Some(Closed { batch, pass });
        };
        let held = self.pass_through.then(|| p.to_point());
        let closed = windows.push(group, time, || group_tags(&p), p);
        let mut pass = Vec::new();
        if let Some(b) = &closed {
            let end = b.end.tmax;
            while seen.held.front().is_some_and(|q| q.time < end) {
                pass.extend(seen.held.pop_front());
            }
        }
        if let Some(h) = held {
            seen.held.push_back(h);
        }
        closed.map(|batch| Closed { batch, pass })
    }

    /// When a sweep is due (every quarter of `idle` of data time), evicts
    /// the groups whose last point is more than `idle` older than the newest
    /// point seen. Returns the cut-off used (`None`: no sweep) and the
    /// points evicted groups still held for `.passThrough()` (emitted
    /// without a verdict: their window never closes).
    pub fn sweep(&mut self) -> Option<(i64, Vec<agent::Point>)> {
        if self.newest < self.next_sweep || self.newest == i64::MIN {
            return None;
        }
        self.next_sweep = self.newest.saturating_add((self.idle / 4).max(1));
        let cutoff = self.newest.saturating_sub(self.idle);
        let mut released = Vec::new();
        let windows = &mut self.windows;
        self.groups.retain(|group, g| {
            if g.last >= cutoff {
                return true;
            }
            released.extend(g.held.drain(..));
            if let Some(w) = windows.as_mut() {
                w.forget(group);
            }
            false
        });
        Some((cutoff, released))
    }
}
