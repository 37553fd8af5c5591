//! Incremental persistence against whole states, on a real sled database:
//! the same random windows go through a node whose detectors report their
//! changed ranges and through one whose detectors hand over whole states
//! (the same detector without `save_changes`); after group commits of
//! random sizes, a restore and stream evictions, the two databases must
//! hold the same bytes and the reopened nodes must give the same verdicts
//! (the first applying each group commit as one sled batch per group).
//! The t-test stands for the window-based detectors here (one plugin crate
//! per test binary: each exports the same entry symbols); the others'
//! ranges are checked against their `save` by the conformance suite.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tickwatch_plugin_api::{Detector, OptionSpec, Options, Summary, Verdict};
use tickwatch_proto::{EncodedPoints, agent};
use tickwatch_state::{FieldState, NodeMeta, StateStore, StoreOptions};

use super::{Persisted, StateSettings};
use crate::kapacitor::Batch;
use crate::kapacitor::options::opt;
use crate::node::config::validate;
use crate::node::{InProcess, Node};

/// `D` without `save_changes`: the host takes its whole state every time,
/// as from a plugin built before the call existed.
struct Whole<D>(D);

impl<D: Detector> Detector for Whole<D> {
    const NAME: &'static str = D::NAME;
    const VERSION: &'static str = D::VERSION;
    const STATE_VERSION: u32 = D::STATE_VERSION;
    const MIN_WINDOW: u32 = D::MIN_WINDOW;
    fn options() -> Vec<OptionSpec> {
        D::options()
    }
    fn new(options: &Options) -> Result<Self, String> {
        D::new(options).map(Whole)
    }
    fn score(&mut self, window: &[f64]) -> Option<Verdict> {
        self.0.score(window)
    }
    fn save(&self) -> Vec<u8> {
        self.0.save()
    }
    fn load(&mut self, state: &[u8]) -> Result<(), String> {
        self.0.load(state)
    }
    fn describe(&self) -> Summary {
        self.0.describe()
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn settings(dir: &Path) -> StateSettings {
    StateSettings { dir: dir.to_path_buf(), wait: Duration::from_secs(2), group_commit_ms: None }
}

fn meta(detector: &str) -> NodeMeta {
    NodeMeta::new("t", "n", detector)
}

fn open<D: Detector>(dir: &Path, extra: &[agent::Option]) -> Persisted {
    let mut options = vec![opt::call("field", vec![opt::s("a"), opt::s("b"), opt::s("")])];
    options.extend_from_slice(extra);
    let config = validate(&options, 3, &D::options()).unwrap();
    let node = Node::new(InProcess::<D>::factory(), config, "test").unwrap();
    Persisted::open(node, &settings(dir), &meta(D::NAME)).unwrap().0
}

fn batch(group: &str, tmax: i64, values: &[(f64, f64)]) -> Batch {
    let points = values
        .iter()
        .enumerate()
        .map(|(i, (a, b))| agent::Point {
            time: tmax - values.len() as i64 + i as i64,
            fields_double: HashMap::from([("a".to_string(), *a), ("b".to_string(), *b)]),
            ..Default::default()
        })
        .collect();
    crate::node::tests::batch(group, tmax, points)
}

/// Random windows for two groups: sizes 1 to 400, levels that shift now
/// and then (alarms, rebaselines), a value missing here and there.
fn windows(rng: &mut Rng, n: usize, t0: i64) -> Vec<Batch> {
    (0..n)
        .map(|k| {
            let group = if rng.below(3) == 0 { "host=b" } else { "host=a" };
            let size = [1, 2, 30, 300, 400][rng.below(5) as usize];
            let level = if (k / 15) % 4 == 3 { 90.0 } else { 20.0 };
            let values: Vec<(f64, f64)> = (0..size)
                .map(|_| {
                    let a = level + rng.below(1000) as f64 * 0.01;
                    let b = if rng.below(50) == 0 { f64::NAN } else { rng.below(7) as f64 };
                    (a, b)
                })
                .collect();
            batch(group, t0 + 1_000 * k as i64, &values)
        })
        .collect()
}

/// Feeds `batches` to both nodes in group commits of 1 to 5 batches;
/// their points must agree.
fn feed(rng: &mut Rng, ranged: &mut Persisted, whole: &mut Persisted, batches: &[Batch]) {
    let mut at = 0;
    while at < batches.len() {
        let n = (1 + rng.below(5) as usize).min(batches.len() - at);
        let (p1, e1) = ranged.process_all(&batches[at..at + n]);
        let (p2, e2) = whole.process_all(&batches[at..at + n]);
        assert!(e1.is_none() && e2.is_none(), "{e1:?} {e2:?}");
        assert_eq!(p1, p2);
        at += n;
    }
}

fn stored(dir: &Path, detector: &str) -> Vec<FieldState> {
    let opts = StoreOptions { wait: Duration::from_secs(2), group_commit_ms: None };
    // sled's IO threads may hold the dropped node's database a moment.
    for _ in 0..100 {
        if let Ok(mut s) = StateStore::open(dir, &meta(detector), opts) {
            return s.load().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut s = StateStore::open(dir, &meta(detector), opts).unwrap();
    s.load().unwrap()
}

fn same_after_reopen<D: Detector>(extra: &[agent::Option], seed: u64) {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut rng = Rng(seed);
    let mut ranged = open::<D>(d1.path(), extra);
    let mut whole = open::<Whole<D>>(d2.path(), extra);
    // The ranged node applies each group of a group commit as its own sled
    // batch (a tiny bound), the other one each commit as one.
    ranged.set_batch_fields(2);
    let w = windows(&mut rng, 120, 1_000_000);
    feed(&mut rng, &mut ranged, &mut whole, &w);
    // A restore (Kapacitor's snapshot, newer than what the nodes hold) in
    // the middle: the restored fields start over with whole states.
    let mut snap = whole.snapshot().unwrap();
    snap.fields.retain(|f| f.group == "host=a");
    snap.fields.iter_mut().for_each(|f| f.provenance.last_time += 1_000_000_000);
    assert_eq!(ranged.restore(snap.clone()).unwrap(), 2);
    assert_eq!(whole.restore(snap).unwrap(), 2);
    let w = windows(&mut rng, 120, 3_000_000_000);
    feed(&mut rng, &mut ranged, &mut whole, &w);
    let (c1, c2) = (ranged.store_counts().unwrap(), whole.store_counts().unwrap());
    assert!(c1.ranges > c1.whole * 4, "mostly ranges: {c1:?}");
    assert_eq!(c2.ranges, 0);
    assert!(c1.chunks <= c2.chunks, "no more chunks written: {c1:?} {c2:?}");
    assert!(c1.sled_batches > c2.sled_batches, "commits split: {c1:?} {c2:?}");
    drop((ranged, whole));
    let (s1, s2) = (stored(d1.path(), D::NAME), stored(d2.path(), D::NAME));
    assert_eq!(s1.len(), 4);
    assert_eq!(s1, s2, "the same bytes");
    // Reopened (whole states loaded, then changes again): same verdicts.
    let mut ranged = open::<D>(d1.path(), extra);
    let mut whole = open::<Whole<D>>(d2.path(), extra);
    // The ranged node applies each group of a group commit as its own sled
    // batch (a tiny bound), the other one each commit as one.
    ranged.set_batch_fields(2);
    let w = windows(&mut rng, 60, 5_000_000_000);
    feed(&mut rng, &mut ranged, &mut whole, &w);
    drop((ranged, whole));
    assert_eq!(stored(d1.path(), D::NAME), stored(d2.path(), D::NAME));
}

#[test]
fn range_commits_store_what_whole_commits_store_ttest() {
    let extra = [
        opt::call("size", vec![opt::i(900)]),
        opt::call("alpha", vec![opt::d(0.01)]),
        opt::call("rebaseline", vec![opt::i(3)]),
    ];
    for seed in [1, 2, 3] {
        same_after_reopen::<tickwatch_ttest::TTest>(&extra, seed);
    }
    let extra = [opt::call("size", vec![opt::i(3600)]), opt::call("alpha", vec![opt::d(0.001)])];
    same_after_reopen::<tickwatch_ttest::TTest>(&extra, 4);
}

/// Stream edges with eviction: a group idle past `idle` leaves memory and
/// comes back from the store (whole state, then changes again).
#[test]
fn range_commits_survive_eviction_and_reload() {
    type T = tickwatch_ttest::TTest;
    let extra = [opt::call("size", vec![opt::i(500)]), opt::call("alpha", vec![opt::d(0.01)])];
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ranged = open::<T>(d1.path(), &extra);
    let mut whole = open::<Whole<T>>(d2.path(), &extra);
    let idle = 600 * 1_000_000_000;
    ranged.stream_edges(idle);
    whole.stream_edges(idle);
    let mut rng = Rng(11);
    let mut evicted = 0;
    for phase in 0..6i64 {
        // Host a streams for a while, then b for over ten minutes: a is
        // evicted, and comes back in the next phase.
        for (host, n) in [("a", 80), ("b", 100)] {
            let from = phase * 10_000 + if host == "a" { 0 } else { 1_000 };
            let mut points = EncodedPoints::with_capacity(n);
            for k in 0..n as i64 {
                let t = (from + 10 * k) * 1_000_000_000;
                let v = 20.0 + rng.below(100) as f64 * 0.1 + if phase == 3 { 50.0 } else { 0.0 };
                points.push_point(&agent::Point {
                    time: t,
                    name: "m".into(),
                    group: format!("host={host}"),
                    dimensions: vec!["host".into()],
                    tags: HashMap::from([("host".to_string(), host.to_string())]),
                    fields_double: HashMap::from([("a".to_string(), v), ("b".to_string(), 1.0)]),
                    ..Default::default()
                });
            }
            // A commit every 10 points or so.
            let mut rest = points;
            while !rest.is_empty() {
                let n = (5 + rng.below(10) as usize).min(rest.len());
                let mut part = EncodedPoints::with_capacity(n);
                (0..n).filter_map(|i| rest.get(i)).for_each(|p| part.push(p));
                rest.drain_front(n);
                let (p1, e1) = ranged.process_points(std::slice::from_ref(&part));
                let (p2, e2) = whole.process_points(std::slice::from_ref(&part));
                assert!(e1.is_none() && e2.is_none(), "{e1:?} {e2:?}");
                assert_eq!(p1, p2);
            }
        }
        evicted = ranged.node().stats().evicted;
    }
    let counts = ranged.store_counts().unwrap();
    assert!(counts.ranges > counts.whole, "{counts:?}");
    assert!(evicted >= 4, "evicted {evicted} times");
    drop((ranged, whole));
    let s1 = stored(d1.path(), T::NAME);
    assert_eq!(s1.len(), 4);
    assert_eq!(s1, stored(d2.path(), T::NAME));
}
