//! Metrics: what a running node has done, for Prometheus.
//!
//! - [`NodeMetrics`]: one live node's counters (batches, points, values
//!   skipped, verdicts, anomalies, score and commit latency histograms,
//!   queue depth, state bytes), updated where every batch result passes
//!   (`serve::persist`), read from any thread.
//! - [`NodeFigures`] / [`ProcessFigures`]: a snapshot of them, plain data
//!   that crosses the control socket (for `tickwatch exporter`) and is
//!   rendered by [`encode`] in the Prometheus text format.
//! - [`live`]: the nodes of this process, for `serve --metrics-listen`.
//! - [`http`]: the bounded `GET /metrics` endpoint both serve.
//!
//! The histograms are our own fixed-bucket atomics rather than
//! prometheus-client's `Histogram`, whose buckets cannot be read back: a
//! node's figures must be snapshotted and sent to the exporter, not only
//! encoded in-process. prometheus-client does the text format.
//!
//! Does not own: what a batch does (the node) or when it is committed
//! (`serve::persist`).

pub mod encode;
pub mod http;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Upper bounds (seconds) of the latency histograms' buckets: 10 µs to
/// 10 s in 1-2.5-5 steps, so a fast detector's tens of µs and a slow
/// fdatasync's tens of ms both land inside.
pub const LATENCY_BUCKETS: [f64; 19] = [
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram over [`LATENCY_BUCKETS`] (plus +Inf).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last is +Inf.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation of `ns` nanoseconds.
    pub fn observe_ns(&self, ns: u64) {
        let secs = ns as f64 / 1e9;
        let i = LATENCY_BUCKETS.iter().position(|&b| secs <= b).unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        self.observe_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The figures: cumulative bucket counts, as Prometheus wants them.
    pub fn figures(&self) -> HistogramFigures {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len());
        for (i, &le) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            buckets.push((le, cumulative));
        }
        let count = cumulative + self.counts[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        HistogramFigures {
            count,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            buckets,
        }
    }
}

/// A histogram's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramFigures {
    /// Observations.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_seconds: f64,
    /// (upper bound in seconds, observations at or below it), ascending;
    /// +Inf is `count`.
    pub buckets: Vec<(f64, u64)>,
}

/// One tracked field's counters.
#[derive(Debug)]
pub struct FieldMetrics {
    field: String,
    values: AtomicU64,
    skipped: AtomicU64,
    verdicts: AtomicU64,
    anomalies: AtomicU64,
    score: Histogram,
    state_bytes: AtomicU64,
    state_groups: AtomicU64,
}

/// How much a node's input queue holds now: (items, bytes), or `None`
/// once the queue is gone.
pub type QueueProbe = Box<dyn Fn() -> Option<(u64, u64)> + Send + Sync>;

/// One live node's counters. Cheap to update (relaxed atomics), read by
/// scrapes from other threads.
pub struct NodeMetrics {
    task: String,
    node: String,
    detector: String,
    batches: AtomicU64,
    points_in: AtomicU64,
    commit: Histogram,
    fields: Vec<FieldMetrics>,
    queue: OnceLock<QueueProbe>,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").field("task", &self.task).field("node", &self.node).finish()
    }
}

/// One tracked field's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldFigures {
    /// The field.
    pub field: String,
    /// Usable values scored.
    pub values: u64,
    /// Unusable values skipped.
    pub skipped: u64,
    /// Points emitted.
    pub verdicts: u64,
    /// Points emitted flagged anomalous.
    pub anomalies: u64,
    /// Detector score calls.
    pub score: HistogramFigures,
    /// Bytes of persisted detector state, over all groups.
    pub state_bytes: u64,
    /// Groups with persisted state.
    pub state_groups: u64,
}

/// One node's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFigures {
    /// Kapacitor task id.
    pub task: String,
    /// Kapacitor node id.
    pub node: String,
    /// The detector served.
    pub detector: String,
    /// Batches processed.
    pub batches: u64,
    /// Points received in batches.
    pub points_in: u64,
    /// Work waiting for the node: batches and requests.
    pub queue_items: u64,
    /// Work waiting for the node: bytes (frames plus a per-point cost).
    pub queue_bytes: u64,
    /// State commits (including the flush, unless group commit).
    pub commit: HistogramFigures,
    /// Per tracked field.
    pub fields: Vec<FieldFigures>,
}

impl NodeMetrics {
    /// Counters for a node tracking `fields`.
    pub fn new(task: &str, node: &str, detector: &str, fields: &[String]) -> NodeMetrics {
        NodeMetrics {
            task: task.to_string(),
            node: node.to_string(),
            detector: detector.to_string(),
            batches: AtomicU64::new(0),
            points_in: AtomicU64::new(0),
            commit: Histogram::default(),
            fields: fields
                .iter()
                .map(|f| FieldMetrics {
                    field: f.clone(),
                    values: AtomicU64::new(0),
                    skipped: AtomicU64::new(0),
                    verdicts: AtomicU64::new(0),
                    anomalies: AtomicU64::new(0),
                    score: Histogram::default(),
                    state_bytes: AtomicU64::new(0),
                    state_groups: AtomicU64::new(0),
                })
                .collect(),
            queue: OnceLock::new(),
        }
    }

    /// `task T node N`, as log lines name a node.
    pub fn ids(&self) -> String {
        format!("task {} node {}", self.task, self.node)
    }

    /// Where the queue depth is read from at scrape time (set once).
    pub fn watch_queue(&self, probe: QueueProbe) {
        let _ = self.queue.set(probe);
    }

    /// Counts one processed batch of `points` points and what it did to
    /// each field (`tally` in the node's field order).
    pub fn batch(&self, points: usize, tally: &[crate::node::FieldTally]) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.points_in.fetch_add(points as u64, Ordering::Relaxed);
        for (m, t) in self.fields.iter().zip(tally) {
            let add = |c: &AtomicU64, n: u64| {
                if n > 0 {
                    c.fetch_add(n, Ordering::Relaxed);
                }
            };
            add(&m.values, t.values);
            add(&m.skipped, t.skipped);
            add(&m.verdicts, t.verdicts);
            add(&m.anomalies, t.anomalies);
            if let Some(ns) = t.score_ns {
                m.score.observe_ns(ns);
            }
        }
    }

    /// Counts stream points that closed no window.
    pub fn points(&self, points: usize) {
        self.points_in.fetch_add(points as u64, Ordering::Relaxed);
    }

    /// Records one state commit's duration.
    pub fn commit(&self, d: Duration) {
        self.commit.observe(d);
    }

    /// Sets a field's persisted state size (bytes over `groups` groups);
    /// an untracked field is ignored.
    pub fn state(&self, field: usize, bytes: u64, groups: u64) {
        if let Some(m) = self.fields.get(field) {
            m.state_bytes.store(bytes, Ordering::Relaxed);
            m.state_groups.store(groups, Ordering::Relaxed);
        }
    }

    /// A snapshot of every counter.
    pub fn figures(&self) -> NodeFigures {
        let (queue_items, queue_bytes) = self.queue.get().and_then(|p| p()).unwrap_or((0, 0));
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NodeFigures {
            task: self.task.clone(),
            node: self.node.clone(),
            detector: self.detector.clone(),
            batches: get(&self.batches),
            points_in: get(&self.points_in),
            queue_items,
            queue_bytes,
            commit: self.commit.figures(),
            fields: self
                .fields
                .iter()
                .map(|m| FieldFigures {
                    field: m.field.clone(),
                    values: get(&m.values),
                    skipped: get(&m.skipped),
                    verdicts: get(&m.verdicts),
                    anomalies: get(&m.anomalies),
                    score: m.score.figures(),
                    state_bytes: get(&m.state_bytes),
                    state_groups: get(&m.state_groups),
                })
                .collect(),
        }
    }
}

/// The process's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessFigures {
    /// Process id.
    pub pid: u32,
    /// Resident set size, in bytes (0 where /proc cannot be read).
    pub rss_bytes: u64,
    /// Seconds since the process started serving.
    pub uptime_seconds: f64,
}

fn started() -> Instant {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// Marks the process start (uptime counts from the first call of this or
/// [`process`]); call it early.
pub fn mark_start() {
    started();
}

/// Resident set size from `/proc/self/statm` (its second number, in pages).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages.saturating_mul(u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096)))
}

/// This process's figures now.
pub fn process() -> ProcessFigures {
    ProcessFigures {
        pid: std::process::id(),
        rss_bytes: rss_bytes().unwrap_or(0),
        uptime_seconds: started().elapsed().as_secs_f64(),
    }
}

/// The live nodes of this process (what `serve --metrics-listen` shows).
/// Nodes register on start and are dropped from the list once gone.
pub mod live {
    use super::*;

    fn nodes() -> &'static Mutex<Vec<Weak<NodeMetrics>>> {
        static NODES: OnceLock<Mutex<Vec<Weak<NodeMetrics>>>> = OnceLock::new();
        NODES.get_or_init(|| Mutex::new(Vec::new()))
    }

    /// Lists `m` among the live nodes until its last `Arc` is dropped.
    pub fn register(m: &Arc<NodeMetrics>) {
        let mut list = nodes().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget the gone ones here, so the list stays as long as the nodes.
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(m));
    }

    /// Every live node's figures, sorted by task then node.
    pub fn figures() -> Vec<NodeFigures> {
        let alive: Vec<Arc<NodeMetrics>> = {
            let mut list = nodes().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        let mut all: Vec<NodeFigures> = alive.iter().map(|m| m.figures()).collect();
        all.sort_by(|a, b| (&a.task, &a.node).cmp(&(&b.task, &b.node)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::FieldTally;

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_is_the_count() {
        let h = Histogram::default();
        h.observe_ns(5_000); // 5 µs: first bucket
        h.observe_ns(1_000_000); // 1 ms: the 1e-3 bucket (le is inclusive)
        h.observe_ns(20_000_000_000); // 20 s: only +Inf
        let f = h.figures();
        assert_eq!(f.count, 3);
        assert_eq!(f.buckets[0], (1e-5, 1));
        let at = |le: f64| f.buckets.iter().find(|b| b.0 == le).map(|b| b.1);
        assert_eq!(at(5e-4), Some(1));
        assert_eq!(at(1e-3), Some(2));
        assert_eq!(at(10.0), Some(2));
        assert!((f.sum_seconds - 20.001005).abs() < 1e-9, "{}", f.sum_seconds);
    }

    #[test]
    fn a_batch_counts_per_field_and_live_lists_only_living_nodes() {
        let m = Arc::new(NodeMetrics::new("t-live", "n", "ttest", &["a".into(), "b".into()]));
        live::register(&m);
        let tally = [
            FieldTally { values: 3, skipped: 1, verdicts: 1, anomalies: 1, score_ns: Some(10) },
            FieldTally { values: 0, skipped: 2, ..FieldTally::default() },
        ];
        m.batch(4, &tally);
        m.batch(4, &tally);
        m.watch_queue(Box::new(|| Some((2, 300))));
        let f = live::figures().into_iter().find(|f| f.task == "t-live").unwrap();
        assert_eq!((f.batches, f.points_in, f.queue_items, f.queue_bytes), (2, 8, 2, 300));
        assert_eq!(
            (f.fields[0].values, f.fields[0].skipped, f.fields[0].verdicts, f.fields[0].anomalies),
            (6, 2, 2, 2)
        );
        assert_eq!(f.fields[0].score.count, 2);
        assert_eq!((f.fields[1].values, f.fields[1].skipped, f.fields[1].score.count), (0, 4, 0));
        drop(m);
        assert!(live::figures().iter().all(|f| f.task != "t-live"));
    }

    #[test]
    fn process_figures_read_proc() {
        let p = process();
        assert_eq!(p.pid, std::process::id());
        assert!(p.rss_bytes > 1 << 20, "a test process holds more than 1 MiB: {}", p.rss_bytes);
    }
}
