//! A node with its persistence: the sled store it commits to and the control
//! socket `tickwatch state` reads it through.
//!
//! Owns the order that makes a crash lose nothing Kapacitor has seen: a
//! batch's new field states are committed (and, by default, flushed) before
//! its points are handed back for writing; restored state is committed
//! before the node adopts it. Several batches may share one commit (adaptive
//! group commit, [`Persisted::process_all`]): still, no point comes back
//! before the state of its batch is committed. Does not own: which state applies (the node's
//! rules) or the wire (the session).
//!
//! Every batch result passes through here, so this is where the node's
//! metrics (`crate::metrics`) are counted and its one debug line per batch
//! is logged.
#![deny(clippy::print_stdout)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickwatch_proto::{EncodedPoints, PointFrames};
use tickwatch_state::{
    FieldState, FieldUpdate, NodeMeta, Snapshot, StateError, StateStore, StoreOptions, layout,
};

use crate::control::ControlServer;
use crate::control::server::Source;
use crate::kapacitor::{Batch, group_label};
use crate::metrics::{self, NodeMetrics};
use crate::node::{DetectorError, Node, NodeError, StateSource};

/// Persistence settings.
#[derive(Debug, Clone)]
pub struct StateSettings {
    /// The state directory.
    pub dir: PathBuf,
    /// How long Init waits for another process to release a node's database
    /// (Kapacitor restarting a task while the old process still exits).
    pub wait: Duration,
    /// Group commit: flush at most this many ms after a batch instead of
    /// before its points are written (see `StoreOptions`).
    pub group_commit_ms: Option<u64>,
}

/// Why a persisted node failed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The node's own rules failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The database cannot be opened or read (locked, corrupt, unreadable).
    #[error(transparent)]
    Open(StateError),
    /// Writing the database failed.
    #[error("cannot persist state: {0}")]
    State(#[from] StateError),
    /// Persisted state does not load.
    #[error("{source} (persisted in {dir}; see `tickwatch state`)")]
    Stored {
        /// Why.
        source: Box<NodeError>,
        /// The node's state directory.
        dir: String,
    },
}

/// Bytes of persisted state per tracked field (by index) and group, with
/// running totals, for the state gauges.
#[derive(Debug, Default)]
struct StateSizes(Vec<(HashMap<String, u64>, u64)>);

impl StateSizes {
    fn new(fields: usize) -> StateSizes {
        StateSizes((0..fields).map(|_| (HashMap::new(), 0)).collect())
    }

    /// Records the size `len` of (`group`, `field`)'s state (or, with
    /// `gone`, its removal); returns its field's index.
    fn set(
        &mut self,
        fields: &[String],
        (group, field, len): Sized3<'_>,
        gone: bool,
    ) -> Option<usize> {
        let fi = fields.iter().position(|f| f == field)?;
        let (groups, total) = self.0.get_mut(fi)?;
        let old = if gone {
            groups.remove(group).unwrap_or(0)
        } else {
            match groups.get_mut(group) {
                Some(v) => std::mem::replace(v, len),
                None => {
                    groups.insert(group.to_string(), len);
                    0
                }
            }
        };
        *total = total.saturating_sub(old) + if gone { 0 } else { len };
        Some(fi)
    }

    fn publish(&self, m: &NodeMetrics, fi: usize) {
        if let Some((groups, total)) = self.0.get(fi) {
            m.state(fi, *total, groups.len() as u64);
        }
    }

    /// Records every state of `states` and publishes the fields touched.
    fn update<'a>(
        &mut self,
        m: &NodeMetrics,
        fields: &[String],
        states: impl IntoIterator<Item = Sized3<'a>>,
        gone: bool,
    ) {
        let mut touched = vec![false; fields.len()];
        for st in states {
            if let Some(fi) = self.set(fields, st, gone) {
                touched[fi] = true;
            }
        }
        for (fi, t) in touched.into_iter().enumerate() {
            if t {
                self.publish(m, fi);
            }
        }
    }
}

/// A field's group, name and state length, for [`StateSizes`].
type Sized3<'a> = (&'a str, &'a str, u64);

fn sized(st: &FieldState) -> Sized3<'_> {
    (&st.group, &st.field, st.state.len() as u64)
}

fn sized_update(u: &FieldUpdate) -> Sized3<'_> {
    (&u.group, &u.field, u.change.len())
}

/// A node and, when it has a state directory, its store and control socket.
pub struct Persisted {
    node: Node,
    metrics: Arc<NodeMetrics>,
    sizes: StateSizes,
    /// Dropped (closed) before the store.
    control: Option<ControlServer>,
    store: Option<StateStore>,
}

impl std::fmt::Debug for Persisted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persisted").field("node", &self.node).field("store", &self.store).finish()
    }
}

impl Persisted {
    /// The metrics of a node for `meta`, listed among the live nodes.
    fn new_metrics(node: &Node, meta: &NodeMeta) -> Arc<NodeMetrics> {
        let m = Arc::new(NodeMetrics::new(
            &meta.task,
            &meta.node,
            &meta.detector,
            &node.config().fields,
        ));
        metrics::live::register(&m);
        m
    }

    /// A node whose state lives only in Kapacitor's snapshots.
    pub fn in_memory(node: Node, meta: &NodeMeta) -> Persisted {
        let metrics = Self::new_metrics(&node, meta);
        let sizes = StateSizes::new(node.config().fields.len());
        Persisted { node, metrics, sizes, control: None, store: None }
    }

    /// Opens the node's database (opened here, at Init, never for Info),
    /// picks up its persisted state (setting aside what does not apply) and
    /// starts the control socket. Returns the node and how many field states
    /// it picked up.
    pub fn open(
        mut node: Node,
        settings: &StateSettings,
        meta: &NodeMeta,
    ) -> Result<(Persisted, usize), PersistError> {
        let opts = StoreOptions { wait: settings.wait, group_commit_ms: settings.group_commit_ms };
        let mut store = StateStore::open(&settings.dir, meta, opts).map_err(PersistError::Open)?;
        let dir = store.dir().display().to_string();
        let stored = store.load().map_err(PersistError::Open)?;
        let metrics = Self::new_metrics(&node, meta);
        let mut sizes = StateSizes::new(node.config().fields.len());
        sizes.update(&metrics, &node.config().fields, stored.iter().map(sized), false);
        let adopted = node.adopt(stored).map_err(|source| PersistError::Stored {
            source: Box::new(source),
            dir: dir.clone(),
        })?;
        for (state, why) in &adopted.aside {
            store.put_aside(state, why)?;
        }
        let aside = adopted.aside.iter().map(|(s, _)| sized(s));
        sizes.update(&metrics, &node.config().fields, aside, true);
        node.keep_states(true);
        let path = layout::control_socket(&settings.dir, &meta.task, &meta.node);
        let source = Source {
            reader: store.reader(),
            factory: node.factory().clone(),
            options: node.config().detector_options.clone(),
            task: meta.task.clone(),
            node: meta.node.clone(),
            metrics: Some(Arc::clone(&metrics)),
        };
        let control = match ControlServer::start(&path, source) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(
                    "task {} node {}: no control socket at {} ({e}); `tickwatch state` cannot \
                     read this node while it runs",
                    meta.task,
                    meta.node,
                    path.display()
                );
                None
            }
        };
        Ok((Persisted { node, metrics, sizes, control, store: Some(store) }, adopted.loaded))
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<NodeMetrics> {
        &self.metrics
    }

    /// What the store's commits wrote so far, if there is a store.
    #[cfg(test)]
    pub fn store_counts(&self) -> Option<tickwatch_state::CommitCounts> {
        self.store.as_ref().map(StateStore::counts)
    }

    /// Sets the most fields per sled batch of a commit (tests split small
    /// commits with a tiny bound).
    #[cfg(test)]
    pub fn set_batch_fields(&mut self, fields: usize) {
        if let Some(s) = self.store.as_mut() {
            s.set_batch_fields(fields);
        }
    }

    /// Whether the node has a store (commits its states).
    pub fn persists(&self) -> bool {
        self.store.is_some()
    }

    /// Where the state lives, if anywhere.
    pub fn dir(&self) -> Option<String> {
        self.store.as_ref().map(|s| s.dir().display().to_string())
    }

    /// Scores `batches` in order and commits all their new states once
    /// (by default flushed; each group's fields atomically): a field touched
    /// by several batches is written once, with its latest state. Returns
    /// the points of every batch scored and committed, which may be
    /// written once this returns; on a failure, also the error, and the
    /// points are those of the batches before the failing one (committed
    /// as well).
    #[cfg(test)]
    pub fn process_all(&mut self, batches: &[Batch]) -> (PointFrames, Option<PersistError>) {
        self.commit_each(batches.iter())
    }

    /// [`Persisted::process_all`] for batches taken as they come (runs
    /// pulled from the worker's queue): each batch is dropped once scored,
    /// so a group commit holds the points and states of its batches, not
    /// the batches.
    /// Takes no further run once what waits for the commit holds
    /// [`PENDING_BYTES`] (a run is always scored whole).
    pub fn process_runs(
        &mut self,
        runs: impl Iterator<Item = Vec<Batch>>,
    ) -> (PointFrames, Option<PersistError>) {
        self.commit_runs(runs, |me, pending, run| {
            run.into_iter().all(|b| me.score_into(pending, b))
        })
    }

    /// Stream edges: takes `points` in order (the node forms and scores
    /// the windows they close) and commits every new state once, as
    /// [`Persisted::process_all`] does: no point comes back before the
    /// state it depends on is committed.
    #[cfg(test)]
    pub fn process_points(
        &mut self,
        points: &[EncodedPoints],
    ) -> (PointFrames, Option<PersistError>) {
        self.commit_each(points.iter().flat_map(EncodedPoints::iter))
    }

    /// [`Persisted::process_points`] for runs of points taken as they come
    /// (each run dropped once scored, as [`Persisted::process_runs`]).
    pub fn process_point_runs(
        &mut self,
        runs: impl Iterator<Item = EncodedPoints>,
    ) -> (PointFrames, Option<PersistError>) {
        self.commit_runs(runs, |me, pending, run| run.iter().all(|p| me.score_into(pending, p)))
    }

    /// Scores runs as they come with `score_run` (`false`: a failure, and
    /// nothing after it is scored) until what waits holds
    /// [`PENDING_BYTES`] (a run is always scored whole), then commits once.
    fn commit_runs<R>(
        &mut self,
        runs: impl Iterator<Item = R>,
        mut score_run: impl FnMut(&mut Self, &mut Pending, R) -> bool,
    ) -> (PointFrames, Option<PersistError>) {
        let mut pending = Pending::new();
        for run in runs {
            if !score_run(self, &mut pending, run) || pending.held() >= PENDING_BYTES {
                break;
            }
        }
        self.commit(pending)
    }

    /// Scores `items` (a batch each, with its group; or a stream point,
    /// without), counts them in the metrics and commits once.
    #[cfg(test)]
    fn commit_each<T: Scorable>(
        &mut self,
        items: impl IntoIterator<Item = T>,
    ) -> (PointFrames, Option<PersistError>) {
        let mut pending = Pending::new();
        for item in items {
            if !self.score_into(&mut pending, item) {
                break;
            }
        }
        self.commit(pending)
    }

    /// Scores `item` into `pending`; `false` once scoring failed (the
    /// failure is in `pending`, and nothing after it may be scored).
    fn score_into<T: Scorable>(&mut self, pending: &mut Pending, item: T) -> bool {
        let scored = match item.score(&mut self.node) {
            Ok(scored) => scored,
            Err(e) => {
                pending.failed = Some(PersistError::Node(e));
                return false;
            }
        };
        let n = item.points();
        let (v, a, ns) = scored.tally.iter().fold((0, 0, 0), |(v, a, ns), t| {
            (v + t.verdicts, a + t.anomalies, ns + t.score_ns.unwrap_or(0))
        });
        match item.group() {
            Some(g) => {
                self.metrics.batch(n, &scored.tally);
                pending.batches += 1;
                if pending.debug {
                    pending.scored_batches.push((g.to_string(), n, v, a, ns));
                }
            }
            None if scored.tally.is_empty() => {
                self.metrics.points(n);
                pending.stream.0 += n;
            }
            None => {
                // A stream point that closed a window: the window counts as
                // a batch.
                self.metrics.batch(n, &scored.tally);
                let st = &mut pending.stream;
                *st = (st.0 + n, st.1 + 1, st.2 + v, st.3 + a, st.4 + ns);
            }
        }
        pending.points.append(scored.points);
        pending.fields = self.node.dirty_len();
        true
    }

    /// Commits what `pending` scored (once) and hands back its points.
    fn commit(&mut self, pending: Pending) -> (PointFrames, Option<PersistError>) {
        let Pending { points, failed, debug, scored_batches, batches, stream, .. } = pending;
        let mut commit_time = None;
        if self.store.is_some() && self.node.dirty_len() > 0 {
            let started = Instant::now();
            if let Err(e) = self.commit_dirty() {
                // Nothing of these batches may reach Kapacitor, and the
                // store may not hold what the detectors last handed out.
                self.node.forget_generations();
                return (PointFrames::default(), Some(e));
            }
            let took = started.elapsed();
            self.metrics.commit(took);
            commit_time = Some(took);
        }
        if debug {
            let commit = match commit_time {
                Some(t) if batches > 1 => {
                    format!("{:.3} ms (one commit for {batches} batches)", ms(t))
                }
                Some(t) => format!("{:.3} ms", ms(t)),
                None => "none".to_string(),
            };
            for (group, n, verdicts, anomalies, score_ns) in &scored_batches {
                tracing::debug!(
                    "{}: batch group {}: {n} points, {verdicts} verdicts ({anomalies} anomalous), \
                     score {:.3} ms, commit {commit}",
                    self.metrics.ids(),
                    group_label(group),
                    *score_ns as f64 / 1e6,
                );
            }
            let (n, windows, verdicts, anomalies, score_ns) = stream;
            if n > 0 {
                tracing::debug!(
                    "{}: stream: {n} points, {windows} windows closed, {verdicts} verdicts \
                     ({anomalies} anomalous), score {:.3} ms, commit {commit}",
                    self.metrics.ids(),
                    score_ns as f64 / 1e6,
                );
            }
        }
        (points, failed)
    }

    /// Persists the state of every (group, field) scored since the last
    /// commit, flushed once. Each field's changes are taken from its
    /// detector here, a part of the commit at a time (whole groups, up to
    /// the store's sled batch bounds), staged and let go before the next
    /// part is taken: a commit holds one part's changes, not all of them.
    fn commit_dirty(&mut self) -> Result<(), PersistError> {
        let Some(store) = self.store.as_mut() else { return Ok(()) };
        let keys = self.node.take_dirty();
        let mut part: Vec<FieldUpdate> = Vec::new();
        let mut part_bytes = 0usize;
        let mut at = 0;
        while at < keys.len() {
            // The next group's fields, taken whole.
            let group = &keys[at].group;
            let end = at + keys[at..].iter().take_while(|k| &k.group == group).count();
            for key in &keys[at..end] {
                let u = self.node.field_update(key, false).map_err(NodeError::Detector)?;
                part_bytes = part_bytes.saturating_add(u.change.bytes());
                part.push(u);
            }
            at = end;
            if at == keys.len()
                || part.len() >= tickwatch_state::SLED_BATCH_FIELDS
                || part_bytes >= tickwatch_state::SLED_BATCH_BYTES
            {
                stage_part(&mut self.node, store, &self.metrics, &mut self.sizes, &mut part)?;
                part_bytes = 0;
            }
        }
        store.finish_commit()?;
        Ok(())
    }

    /// At the end of the input: flushes what group commit left to sled's
    /// background flusher, so that a failure there (a full disk) ends the
    /// session with an error instead of only a log line of sled's.
    pub fn flush_pending(&mut self) -> Result<(), PersistError> {
        match self.store.as_mut() {
            Some(store) => Ok(store.flush_pending()?),
            None => Ok(()),
        }
    }

    /// Applies Kapacitor's snapshot (the node's rules decide per field);
    /// aside copies, then the winning states, are persisted before the node
    /// takes them, so on any error nothing changes. Returns how many field
    /// states were replaced.
    pub fn restore(&mut self, snapshot: Snapshot) -> Result<usize, PersistError> {
        let plan = self.node.plan_restore(snapshot)?;
        if let Some(store) = self.store.as_mut() {
            for (state, why) in &plan.aside {
                store.keep_aside(state, why)?;
            }
            let applied = plan.applied_states();
            store.commit(&applied)?;
            let applied = applied.iter().map(sized);
            self.sizes.update(&self.metrics, &self.node.config().fields, applied, false);
        }
        Ok(self.node.apply_restore(plan))
    }

    /// Every (group, field) state of the node, including stream groups
    /// evicted from memory while idle (read back from the store).
    pub fn snapshot(&mut self) -> Result<Snapshot, DetectorError> {
        let mut snap = self.node.snapshot()?;
        if self.node.evicted_any()
            && let Some(store) = &self.store
        {
            let stored = store
                .reader()
                .fields()
                .map_err(|e| DetectorError::Refused(format!("cannot read evicted state: {e}")))?;
            let held: std::collections::HashSet<(String, String)> =
                snap.fields.iter().map(|f| (f.group.clone(), f.field.clone())).collect();
            snap.fields.extend(
                stored.into_iter().filter(|f| !held.contains(&(f.group.clone(), f.field.clone()))),
            );
            snap.fields.sort_by(|a, b| (&a.group, &a.field).cmp(&(&b.group, &b.field)));
        }
        Ok(snap)
    }

    /// Serves stream edges (see `node::stream`): with a store, groups idle
    /// for `idle` ns of data time leave memory and come back from it.
    pub fn stream_edges(&mut self, idle: i64) {
        self.node.stream_edges(idle);
        if let Some(store) = &self.store {
            self.node.state_source(Box::new(StoreSource(store.reader())));
        }
    }
}

/// Most bytes one group commit holds while it gathers runs taken as they
/// come ([`Persisted::process_runs`]): its verdict points (their encoded
/// frames, about 110 bytes each since round 6) and, counted at
/// [`HELD_PER_FIELD`], the (group, field)s it will commit, all held until
/// it is written. Their new states are not held: each field's changes are
/// taken from its detector at the commit, one part at a time
/// ([`Persisted::commit_dirty`]; until round 9 they were taken after every
/// window and folded, about one state's bytes per field waiting). So what
/// a commit of thousands of groups holds is bounded: at 10,000 groups a
/// commit once took thousands of batches, about 20 MB at the peak
/// (docs/performance.md, "Round 6: memory"). The work queue and
/// `GROUP_COMMIT_COST` (session) bound a printer's commits first.
const PENDING_BYTES: usize = 2 << 20;

/// What a waiting (group, field) is taken to cost beyond its bytes: its
/// key in the node's list, its update's group, field and provenance.
const HELD_PER_FIELD: usize = 512;

/// What a group commit has scored so far, waiting for its commit.
struct Pending {
    /// The points scored, as the frames to write once the states are
    /// committed.
    points: PointFrames,
    /// (group, field)s scored, waiting for their states to be committed.
    fields: usize,
    failed: Option<PersistError>,
    /// Whether the debug lines are logged.
    debug: bool,
    /// Per batch scored: (group, points, verdicts, anomalies, score ns),
    /// for the debug line (kept only when it is logged).
    scored_batches: Vec<(String, usize, u64, u64, u64)>,
    /// Batches scored.
    batches: usize,
    /// Stream points, summed into one debug line: (points, windows
    /// closed, verdicts, anomalies, score ns).
    stream: (usize, u64, u64, u64, u64),
}

impl Pending {
    fn new() -> Pending {
        Pending {
            points: PointFrames::default(),
            fields: 0,
            failed: None,
            debug: tracing::enabled!(tracing::Level::DEBUG),
            scored_batches: Vec::new(),
            batches: 0,
            stream: (0, 0, 0, 0, 0),
        }
    }

    /// What the waiting commit holds, as [`PENDING_BYTES`] counts it.
    fn held(&self) -> usize {
        self.points.heap_bytes().saturating_add(self.fields.saturating_mul(HELD_PER_FIELD))
    }
}

/// What a group commit scores: a batch (borrowed or taken) or a stream
/// point.
trait Scorable {
    /// Scores it in `node`.
    fn score(&self, node: &mut Node) -> Result<crate::node::Scored, NodeError>;
    /// Points it holds.
    fn points(&self) -> usize;
    /// A batch's group; `None` for a stream point.
    fn group(&self) -> Option<&str>;
}

#[cfg(test)]
impl<T: Scorable> Scorable for &T {
    fn score(&self, node: &mut Node) -> Result<crate::node::Scored, NodeError> {
        (**self).score(node)
    }
    fn points(&self) -> usize {
        (**self).points()
    }
    fn group(&self) -> Option<&str> {
        (**self).group()
    }
}

impl Scorable for Batch {
    fn score(&self, node: &mut Node) -> Result<crate::node::Scored, NodeError> {
        node.process(self)
    }
    fn points(&self) -> usize {
        self.len()
    }
    fn group(&self) -> Option<&str> {
        Some(Batch::group(self))
    }
}

impl Scorable for tickwatch_proto::PointView<'_> {
    fn score(&self, node: &mut Node) -> Result<crate::node::Scored, NodeError> {
        node.process_view(*self)
    }
    fn points(&self) -> usize {
        1
    }
    fn group(&self) -> Option<&str> {
        None
    }
}

/// Stages one part of a commit (`part`, emptied; its buffers go back to
/// the node's pool). Changes against a state the store does not hold
/// (nothing of the part was written) are staged again as whole states.
fn stage_part(
    node: &mut Node,
    store: &mut StateStore,
    metrics: &NodeMetrics,
    sizes: &mut StateSizes,
    part: &mut Vec<FieldUpdate>,
) -> Result<(), PersistError> {
    let mut staged = store.stage_changes(part);
    if let Err(StateError::MissedCommit { .. }) = &staged {
        tracing::warn!(
            "{}: {}; committing the whole states instead",
            metrics.ids(),
            staged.as_ref().err().map(ToString::to_string).unwrap_or_default()
        );
        let whole = whole_states(node, part).map_err(|e| StateError::Write {
            path: store.dir().to_path_buf(),
            reason: e.to_string(),
        });
        staged = whole.and_then(|whole| {
            let r = store.stage_changes(&whole);
            let spare = node.spare();
            std::mem::replace(part, whole).into_iter().for_each(|u| spare.recycle(u.change));
            r
        });
    }
    staged?;
    sizes.update(metrics, &node.config().fields, part.iter().map(sized_update), false);
    let spare = node.spare();
    part.drain(..).for_each(|u| spare.recycle(u.change));
    Ok(())
}

/// The whole states of the fields `states` updates, from the node (a
/// commit's fields are all held: a dirty group is not evicted).
fn whole_states(
    node: &mut Node,
    states: &[FieldUpdate],
) -> Result<Vec<FieldUpdate>, DetectorError> {
    states
        .iter()
        .map(|u| {
            let key = crate::node::FieldKey { group: u.group.clone(), field: u.field.clone() };
            node.field_update(&key, true)
        })
        .collect()
}

/// The store as the node's [`StateSource`] for evicted groups.
struct StoreSource(tickwatch_state::StoreReader);

impl StateSource for StoreSource {
    fn fetch(&self, group: &str, field: &str) -> Result<Option<FieldState>, String> {
        self.0.field(group, field).map_err(|e| e.to_string())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Drop for Persisted {
    fn drop(&mut self) {
        // The control socket reads the store: close it first.
        self.control.take();
    }
}

#[cfg(test)]
mod tests {
    use tickwatch_state::Provenance;

    use super::*;

    fn st(group: &str, field: &str, len: usize) -> FieldState {
        FieldState {
            group: group.into(),
            field: field.into(),
            provenance: Provenance {
                detector: "d".into(),
                detector_version: "0".into(),
                state_version: 1,
                options: "{}".into(),
                last_time: 0,
            },
            state: vec![0; len],
        }
    }

    #[test]
    fn state_sizes_keep_running_totals_per_field() {
        let fields = vec!["a".to_string(), "b".to_string()];
        let m = NodeMetrics::new("t", "n", "d", &fields);
        let mut sizes = StateSizes::new(2);
        let all = [st("g1", "a", 10), st("g2", "a", 5), st("g1", "b", 7)];
        sizes.update(&m, &fields, all.iter().map(sized), false);
        // A group's new state replaces its old size; an unknown field is ignored.
        let next = [st("g1", "a", 3), st("g1", "zzz", 99)];
        sizes.update(&m, &fields, next.iter().map(sized), false);
        let f = m.figures();
        assert_eq!((f.fields[0].state_bytes, f.fields[0].state_groups), (8, 2));
        assert_eq!((f.fields[1].state_bytes, f.fields[1].state_groups), (7, 1));
        // Set aside: gone.
        sizes.update(&m, &fields, [st("g2", "a", 5)].iter().map(sized), true);
        let f = m.figures();
        assert_eq!((f.fields[0].state_bytes, f.fields[0].state_groups), (3, 1));
    }
}

#[cfg(test)]
#[path = "persist_ranges.rs"]
mod ranges_tests;
