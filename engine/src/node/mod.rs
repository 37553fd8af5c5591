//! The domain: one UDF node's detectors, a detector instance per
//! [`FieldKey`] (Kapacitor group + tracked field), fed one batch at a time,
//! snapshotted and restored.
//!
//! Owns: validating Init options ([`config`]), pulling tracked values out of
//! batch points ([`values`]), verdict → point ([`point`]), and deciding which
//! state applies ([`restore`]: persisted state at Init, Kapacitor's snapshot
//! at Restore, the newer wins, the rest is set aside).
//! Does not own: sockets, threads, the database or dynamic loading. The node
//! reaches detectors through [`DetectorFactory`] (a loaded plugin, or an
//! in-process detector in tests) and hands the states to persist back to
//! its caller (`serve`), which commits them before it writes the points.

pub mod config;
pub mod detector;
pub mod point;
pub mod restore;
pub mod stream;
pub mod values;
pub mod watch;

use std::collections::BTreeMap;

use tickwatch_plugin_api::StateChanges;
use tickwatch_plugin_api::Verdict;
use tickwatch_plugin_api::changes::NO_GENERATION;
use tickwatch_proto::{PointFrames, PointView, agent};
use tickwatch_state::{FieldState, FieldUpdate, Provenance, Ranges, Snapshot, Spare, StateChange};

use crate::kapacitor::Batch;
pub use config::{ConfigError, NodeConfig};
pub use detector::{DetectorError, DetectorFactory, DetectorHandle, Factory, InProcess};
pub use restore::{Adopted, RestorePlan};
pub use stream::{Edge, StreamWindows};
use values::Reading;

/// Where a node finds the persisted state of a (group, field) it no longer
/// holds in memory (a stream group evicted while idle): the node's store,
/// behind a trait so the domain stays free of the database.
pub trait StateSource: Send {
    /// The committed state of (`group`, `field`), if any.
    fn fetch(&self, group: &str, field: &str) -> Result<Option<FieldState>, String>;
}

/// A Kapacitor group and one tracked field: the unit of detector state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldKey {
    /// Kapacitor's group id ("" when ungrouped).
    pub group: String,
    /// The tracked field.
    pub field: String,
}

struct Tracked {
    detector: Box<dyn DetectorHandle>,
    last_time: i64,
    /// The generation of the detector's state handed out last for
    /// persisting (`None`: none yet, or forgotten after a failed commit):
    /// the next state handed out is the changes since it.
    since: Option<u64>,
    /// Scored since its state was last handed out for persisting (listed
    /// in `Node::dirty`).
    dirty: bool,
}

impl Tracked {
    fn new(detector: Box<dyn DetectorHandle>, last_time: i64) -> Tracked {
        Tracked { detector, last_time, since: None, dirty: false }
    }
}

/// Counters a node keeps for its log lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NodeStats {
    /// Batches processed.
    pub batches: u64,
    /// Points emitted.
    pub emitted: u64,
    /// Values skipped (NaN, infinities, strings, bools in a tracked field).
    pub skipped: u64,
    /// Stream points received (stream edges).
    pub points_in: u64,
    /// Stream groups evicted from memory while idle.
    pub evicted: u64,
}

/// Why the node cannot go on (or could not start).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The Init options are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The detector refused the options (its reason is the whole message,
    /// as Kapacitor shows it when the task fails to start).
    #[error("{0}")]
    Options(DetectorError),
    /// A detector failed (panicked or misbehaved).
    #[error("detector failed: {0}")]
    Detector(#[from] DetectorError),
    /// Stored or snapshotted state does not load into a fresh detector.
    #[error("state of field {field} group {group:?} does not load: {reason}")]
    StateLoad {
        /// The field.
        field: String,
        /// The group id.
        group: String,
        /// The detector's reason.
        reason: DetectorError,
    },
    /// The batch's group-by tags include the tag that carries field names:
    /// emitted points would merge groups and alert states.
    #[error(
        "the data is grouped by a tag named {tag:?}, which is also the tag tickwatch writes \
         field names to; set .fieldTag('…') to another name"
    )]
    FieldTagCollision {
        /// The colliding tag.
        tag: String,
    },
    /// A batch's values were read for other fields than the node's, and its
    /// rows were not kept to read again (a bug of the caller's).
    #[error("internal error: batch values read for fields {read:?}, the node tracks {tracked:?}")]
    ColumnsMismatch {
        /// The fields the batch was read for.
        read: Vec<String>,
        /// The node's fields.
        tracked: Vec<String>,
    },
}

/// What one batch did to one tracked field (for metrics and the debug log).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FieldTally {
    /// Usable values handed to the detector.
    pub values: u64,
    /// Unusable values skipped (NaN, infinities, strings, bools).
    pub skipped: u64,
    /// Points emitted (0 or 1).
    pub verdicts: u64,
    /// Of those, points flagged anomalous.
    pub anomalies: u64,
    /// How long the detector's score call took, in ns (`None`: not called).
    pub score_ns: Option<u64>,
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct Scored {
    /// The points to emit, once `states` are persisted, as the frames
    /// Kapacitor reads.
    pub points: PointFrames,
    /// Per tracked field, in the order of the node's `fields`.
    pub tally: Vec<FieldTally>,
}

/// A node: configuration plus per-(group, field) detectors.
pub struct Node {
    factory: Factory,
    config: NodeConfig,
    /// `task T node N`, for log lines.
    label: String,
    tracked: BTreeMap<FieldKey, Tracked>,
    stats: NodeStats,
    warned_skip: bool,
    keep_states: bool,
    /// Where a watchdog sees the detector call in progress.
    progress: Option<std::sync::Arc<watch::Progress>>,
    /// Each tracked field's values in the batch being scored; reused per
    /// batch so scoring allocates nothing per point.
    columns: Vec<Vec<f64>>,
    /// Unusable values per tracked field in the batch being scored.
    skips: Vec<u64>,
    /// Reads the tracked fields of points kept as bytes.
    reader: values::ViewReader,
    /// Stream edges: the windows the node forms itself.
    stream: Option<StreamWindows>,
    /// Where evicted groups' state comes back from (a persisted node).
    source: Option<Box<dyn StateSource>>,
    /// Whether any (group, field) was evicted: only then can a miss be in
    /// the source rather than new.
    evicted_any: bool,
    /// `.passThrough()` names per tracked field (anomalous, pvalue).
    pass_names: Vec<(String, String)>,
    warned_overwrite: bool,
    /// Buffers for the changes handed out for persisting, given back by
    /// the caller once committed ([`Node::spare`]).
    spare: Spare,
    /// The (group, field)s scored since their states were last handed out
    /// for persisting, in the order first scored (kept states only).
    dirty: Vec<FieldKey>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("config", &self.config).field("stats", &self.stats).finish()
    }
}

impl Node {
    /// A node for validated options; checks once that the detector accepts them.
    pub fn new(factory: Factory, config: NodeConfig, label: &str) -> Result<Node, NodeError> {
        factory.create(&config.detector_options).map_err(NodeError::Options)?;
        Ok(Node {
            factory,
            config,
            label: label.to_string(),
            tracked: BTreeMap::new(),
            stats: NodeStats::default(),
            warned_skip: false,
            keep_states: false,
            progress: None,
            columns: Vec::new(),
            skips: Vec::new(),
            reader: values::ViewReader::default(),
            stream: None,
            source: None,
            evicted_any: false,
            pass_names: Vec::new(),
            warned_overwrite: false,
            spare: Spare::default(),
            dirty: Vec::new(),
        }
        .with_pass_names())
    }

    fn with_pass_names(mut self) -> Self {
        let n = self.config.fields.len();
        self.pass_names = self.config.fields.iter().map(|f| point::pass_names(f, n)).collect();
        self
    }

    /// Serves stream edges: the node forms its windows itself (see
    /// [`stream`]); groups idle for `idle` ns of data time leave memory
    /// (their detectors too, when a [`StateSource`] can bring them back).
    pub fn stream_edges(&mut self, idle: i64) {
        self.stream = Some(StreamWindows::new(&self.config, idle));
    }

    /// Where evicted groups' state is read back from.
    pub fn state_source(&mut self, source: Box<dyn StateSource>) {
        self.source = Some(source);
    }

    /// Whether a group was evicted since the node started (its state is
    /// then only in the store).
    pub fn evicted_any(&self) -> bool {
        self.evicted_any
    }

    /// (group, field) detectors held in memory.
    pub fn held(&self) -> usize {
        self.tracked.len()
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The detector factory.
    pub fn factory(&self) -> &Factory {
        &self.factory
    }

    /// Counters so far.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// Whether the node lists the (group, field)s it scores for persisting
    /// ([`Node::take_dirty`]; a node whose state is persisted needs them,
    /// one without a store does not pay for them).
    pub fn keep_states(&mut self, on: bool) {
        self.keep_states = on;
    }

    /// Publishes every detector call to `progress`, for a watchdog.
    pub fn watch(&mut self, progress: std::sync::Arc<watch::Progress>) {
        self.progress = Some(progress);
    }

    /// Scores one batch for every tracked field. An error means a detector
    /// failed or the batch is unusable: the node's stream is over.
    pub fn process(&mut self, batch: &Batch) -> Result<Scored, NodeError> {
        self.process_window(batch, None)
    }

    /// Takes one stream point (stream edges): scores the window it closes,
    /// if any, and evicts idle groups when a sweep is due. Without
    /// [`Node::stream_edges`] a point is a protocol error of the caller's.
    /// The point is encoded first: [`Node::process_view`] is the path the
    /// server takes.
    pub fn process_point(&mut self, p: agent::Point) -> Result<Scored, NodeError> {
        let mut one = tickwatch_proto::EncodedPoints::with_capacity(1);
        one.push_point(&p);
        match one.get(0) {
            Some(v) => self.process_view(v),
            None => Ok(Scored::default()),
        }
    }

    /// [`Node::process_point`] for a point kept as its bytes.
    pub fn process_view(&mut self, p: PointView<'_>) -> Result<Scored, NodeError> {
        self.stats.points_in += 1;
        let Some(stream) = self.stream.as_mut() else {
            return Ok(Scored::default());
        };
        let closed = stream.push(p);
        let sweep = stream.sweep();
        let mut out = match closed {
            Some(c) => {
                self.stats.batches += 1;
                self.process_window(&c.batch, Some(c.pass))?
            }
            None => Scored::default(),
        };
        if let Some((cutoff, released)) = sweep {
            self.stats.emitted += released.len() as u64;
            released.iter().for_each(|p| out.points.push_point(p));
            self.evict(cutoff);
        }
        Ok(out)
    }

    /// Drops from memory the detectors of groups the stream no longer holds
    /// whose last window ended before `cutoff` (their state is in the
    /// store); without a [`StateSource`] they stay, or their state would be
    /// lost.
    fn evict(&mut self, cutoff: i64) {
        if self.source.is_none() {
            return;
        }
        let Some(stream) = self.stream.as_ref() else { return };
        let before = self.tracked.len();
        let mut groups = std::collections::BTreeSet::new();
        self.tracked.retain(|k, t| {
            // A state not yet handed out for persisting stays until it is
            // (the store does not hold it yet): a later sweep takes it.
            let keep = t.dirty || t.last_time >= cutoff || stream.holds(&k.group);
            if !keep {
                groups.insert(k.group.clone());
            }
            keep
        });
        if self.tracked.len() < before {
            self.evicted_any = true;
            self.stats.evicted += groups.len() as u64;
            tracing::debug!(
                "{}: evicted {} idle group(s) ({} field states) from memory",
                self.label,
                groups.len(),
                before - self.tracked.len()
            );
        }
    }

    /// The detector of `key`: held, brought back from the store (an
    /// evicted group), or new.
    fn detector_for(&mut self, key: &FieldKey) -> Result<&mut Tracked, NodeError> {
        if !self.tracked.contains_key(key) {
            let mut fresh = None;
            if self.evicted_any
                && let Some(src) = &self.source
            {
                let stored =
                    src.fetch(&key.group, &key.field).map_err(|reason| NodeError::StateLoad {
                        field: key.field.clone(),
                        group: key.group.clone(),
                        reason: DetectorError::Refused(reason),
                    })?;
                if let Some(e) = stored
                    && self.mismatch(&e.provenance, &e.field).is_none()
                {
                    let detector = self.load_state(&e)?;
                    fresh = Some(Tracked::new(detector, e.provenance.last_time));
                }
            }
            let t = match fresh {
                Some(t) => t,
                None => Tracked::new(self.factory.create(&self.config.detector_options)?, 0),
            };
            self.tracked.insert(key.clone(), t);
        }
        self.tracked
            .get_mut(key)
            .ok_or_else(|| NodeError::Detector(DetectorError::Refused("detector vanished".into())))
    }

    /// Scores one window; with `.passThrough()` the output is `pass` (stream
    /// edges: the input points the window releases) or the batch's own
    /// points, each with the verdicts added.
    fn process_window(
        &mut self,
        batch: &Batch,
        pass: Option<Vec<agent::Point>>,
    ) -> Result<Scored, NodeError> {
        if self.stream.is_none() {
            self.stats.batches += 1;
        }
        if batch.tags().contains_key(&self.config.field_tag) && !self.config.pass_through {
            return Err(NodeError::FieldTagCollision { tag: self.config.field_tag.clone() });
        }
        let mut out = Scored {
            tally: vec![FieldTally::default(); self.config.fields.len()],
            ..Scored::default()
        };
        if let Some(p) = &self.progress {
            p.batch(batch.group());
        }
        self.collect(batch)?;
        // (tracked field's index, verdict), turned into points once all
        // fields are scored.
        let mut verdicts: Vec<(usize, Verdict)> = Vec::new();
        for fi in 0..self.config.fields.len() {
            out.tally[fi].skipped = self.skips[fi];
            out.tally[fi].values = self.columns[fi].len() as u64;
            if self.columns[fi].is_empty() {
                continue;
            }
            let key = FieldKey {
                group: batch.group().to_string(),
                field: self.config.fields[fi].clone(),
            };
            let progress = self.progress.clone();
            let keep_states = self.keep_states;
            let values = std::mem::take(&mut self.columns[fi]);
            let tracked = self.detector_for(&key)?;
            if let Some(p) = &progress {
                p.enter(fi);
            }
            let started = std::time::Instant::now();
            let verdict = tracked.detector.score(&values);
            out.tally[fi].score_ns =
                Some(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
            if let Some(p) = &progress {
                p.leave();
            }
            if verdict.is_ok() {
                tracked.last_time = batch.end.tmax;
            }
            if keep_states && !tracked.dirty {
                // Its changes are taken when they are persisted (once per
                // commit, however many windows it scores before).
                tracked.dirty = true;
                self.dirty.push(key);
            }
            self.columns[fi] = values;
            let verdict = verdict?;
            let field = &self.config.fields[fi];
            let Some(v) = verdict else { continue };
            if !(v.pvalue.is_finite() && (0.0..=1.0).contains(&v.pvalue)) {
                tracing::error!(
                    "{}: detector {} returned pvalue {} (not a probability) for field {}; \
                     verdict dropped",
                    self.label,
                    self.factory.name(),
                    v.pvalue,
                    field
                );
                continue;
            }
            verdicts.push((fi, v));
        }
        if !self.config.pass_through && !verdicts.is_empty() {
            let mut points = point::VerdictPoints::new(batch, &self.config.field_tag);
            for (i, (fi, v)) in verdicts.iter().enumerate() {
                let field = &self.config.fields[*fi];
                match points.push(field, v, &mut out.points) {
                    Ok(()) => {
                        if i == 0 {
                            // One allocation for the batch's points, each
                            // about the size of the first.
                            let first = out.points.as_bytes().len();
                            out.points.reserve(first * (verdicts.len() - 1));
                        }
                        out.tally[*fi].verdicts = 1;
                        out.tally[*fi].anomalies = u64::from(v.anomalous);
                    }
                    Err(e) => tracing::error!(
                        "{}: detector {} returned {e} for field {field}; point dropped",
                        self.label,
                        self.factory.name(),
                    ),
                }
            }
        }
        if self.config.pass_through {
            for (fi, v) in &verdicts {
                out.tally[*fi].verdicts = 1;
                out.tally[*fi].anomalies = u64::from(v.anomalous);
            }
            let mut points = match pass {
                Some(p) => p,
                None => batch
                    .points
                    .iter()
                    .map(|p| point::batch_point_as_stream(batch, p))
                    .chain(
                        batch
                            .encoded
                            .iter()
                            .map(|v| point::batch_point_as_stream(batch, &v.to_point())),
                    )
                    .collect(),
            };
            let mut replaced = false;
            for p in &mut points {
                replaced |= point::annotate(p, &self.pass_names, &verdicts);
                out.points.push_point(p);
            }
            if replaced && !self.warned_overwrite {
                self.warned_overwrite = true;
                tracing::warn!(
                    "{}: input points already carry a field named like a verdict field ({}); \
                     .passThrough() replaces it",
                    self.label,
                    self.pass_names
                        .iter()
                        .map(|(a, p)| format!("{a}, {p}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        self.stats.emitted += out.points.len() as u64;
        Ok(out)
    }

    /// Fills `self.columns` with each tracked field's usable values from
    /// the batch's rows, counting (and, the first time, logging) the
    /// unusable ones.
    fn collect(&mut self, batch: &Batch) -> Result<(), NodeError> {
        let fields = &self.config.fields;
        if let Some(c) = &batch.columns
            && c.fields() != fields.as_slice()
            && batch.points.len() + batch.encoded.len() != c.rows()
        {
            return Err(NodeError::ColumnsMismatch {
                read: c.fields().to_vec(),
                tracked: fields.clone(),
            });
        }
        self.columns.resize_with(fields.len(), Vec::new);
        self.columns.iter_mut().for_each(Vec::clear);
        self.skips.clear();
        self.skips.resize(fields.len(), 0);
        let mut take = |fi: usize, r: Reading| match r {
            Reading::Value(v) => self.columns[fi].push(v),
            Reading::Unusable => self.skips[fi] += 1,
            Reading::Absent => {}
        };
        match batch.columns.as_ref().filter(|c| c.fields() == fields.as_slice()) {
            // Read by `serve`'s reader while it checked the frames.
            Some(c) => {
                for fi in 0..fields.len() {
                    self.columns[fi].extend_from_slice(c.values(fi));
                    self.skips[fi] = c.skipped(fi);
                }
            }
            None => {
                for p in &batch.points {
                    for (fi, field) in fields.iter().enumerate() {
                        take(fi, values::read(p, field));
                    }
                }
                for p in batch.encoded.iter() {
                    for (fi, r) in self.reader.read(&p, fields).enumerate() {
                        take(fi, r);
                    }
                }
            }
        }
        self.stats.skipped += self.skips.iter().sum::<u64>();
        if self.warned_skip {
            return Ok(());
        }
        if let Some((fi, &skipped)) = self.skips.iter().enumerate().find(|(_, s)| **s > 0) {
            self.warned_skip = true;
            tracing::warn!(
                "{}: skipped {skipped} unusable value(s) of field {} (NaN, infinite, string \
                 or bool); further skips are counted without logging",
                self.label,
                fields[fi],
            );
        }
        Ok(())
    }

    /// Who builds this node's state: stored beside every field state.
    fn provenance(&self, last_time: i64) -> Provenance {
        Provenance {
            detector: self.factory.name().to_string(),
            detector_version: self.factory.version().to_string(),
            state_version: self.factory.state_version(),
            options: self.config.fingerprint.clone(),
            last_time,
        }
    }

    /// The provenance to save one tracked field under, and the field.
    fn tracked_with_provenance(
        &mut self,
        key: &FieldKey,
    ) -> Result<(Provenance, &mut Tracked), DetectorError> {
        let last_time = self.tracked.get(key).map_or(0, |t| t.last_time);
        let provenance = self.provenance(last_time);
        let t = self.tracked.get_mut(key).ok_or_else(|| {
            DetectorError::Refused(format!(
                "no state for field {} group {:?}",
                key.field, key.group
            ))
        })?;
        Ok((provenance, t))
    }

    /// The current state of one tracked field.
    fn field_state(&mut self, key: &FieldKey) -> Result<FieldState, DetectorError> {
        let (provenance, t) = self.tracked_with_provenance(key)?;
        Ok(FieldState {
            group: key.group.clone(),
            field: key.field.clone(),
            provenance,
            state: t.detector.save()?,
        })
    }

    /// The state of one tracked field for persisting: the changes since the
    /// state handed out last, when the detector reports them and `whole`
    /// is not asked for; otherwise the whole state.
    pub fn field_update(
        &mut self,
        key: &FieldKey,
        whole: bool,
    ) -> Result<FieldUpdate, DetectorError> {
        self.update_of(key.clone(), whole)
    }

    /// [`Node::field_update`] for a key of the caller's own, which the
    /// update takes.
    fn update_of(&mut self, key: FieldKey, whole: bool) -> Result<FieldUpdate, DetectorError> {
        // The bytes go into a buffer of the pool the commits give theirs
        // back to (see `Node::spare`), if it has one.
        let buf = self.spare.pop();
        let (provenance, t) = self.tracked_with_provenance(&key)?;
        let since = if whole { None } else { t.since };
        let change = match t.detector.save_changes_with(since.unwrap_or(NO_GENERATION), buf)? {
            Some(StateChanges { generation, ranges: Some(r) }) => match since {
                Some(base) => StateChange::Ranges(Ranges {
                    base,
                    generation,
                    len: r.len,
                    spans: r.spans,
                    data: r.data,
                }),
                // Ranges against a generation the host does not hold: a
                // detector bug; take no chances.
                None => StateChange::Whole { state: t.detector.save()?, generation: None },
            },
            Some(StateChanges { generation, ranges: None }) => StateChange::Whole {
                state: t.detector.save()?,
                generation: (generation != NO_GENERATION).then_some(generation),
            },
            None => StateChange::Whole { state: t.detector.save()?, generation: None },
        };
        t.since = change.generation();
        Ok(FieldUpdate { group: key.group, field: key.field, provenance, change })
    }

    /// Hands over the (group, field)s scored since their states were last
    /// handed out ([`Node::field_update`] gives each one's changes), each
    /// group's together, groups in order of their names. They are no
    /// longer listed: the caller persists them or, failing, forgets the
    /// generations ([`Node::forget_generations`]).
    pub fn take_dirty(&mut self) -> Vec<FieldKey> {
        let mut keys = std::mem::take(&mut self.dirty);
        for k in &keys {
            if let Some(t) = self.tracked.get_mut(k) {
                t.dirty = false;
            }
        }
        // Each group's fields together (a stable sort keeps their order).
        keys.sort_by(|a, b| a.group.cmp(&b.group));
        keys
    }

    /// How many (group, field)s wait for [`Node::take_dirty`].
    pub fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    /// The updates of every (group, field) scored since the last ones were
    /// handed out ([`Node::take_dirty`], then [`Node::field_update`]).
    pub fn take_updates(&mut self) -> Result<Vec<FieldUpdate>, DetectorError> {
        self.take_dirty().into_iter().map(|k| self.update_of(k, false)).collect()
    }

    /// The pool the buffers of handed-out changes come from: the caller
    /// gives their buffers back once committed.
    pub fn spare(&mut self) -> &mut Spare {
        &mut self.spare
    }

    /// Forgets which states were handed out for persisting (a commit
    /// failed): every field's next state is whole.
    pub fn forget_generations(&mut self) {
        self.tracked.values_mut().for_each(|t| t.since = None);
    }

    /// Every (group, field) state of the node, sorted by group then field.
    pub fn snapshot(&mut self) -> Result<Snapshot, DetectorError> {
        let keys: Vec<FieldKey> = self.tracked.keys().cloned().collect();
        let fields = keys.iter().map(|k| self.field_state(k)).collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot { fields })
    }
}

#[cfg(test)]
pub(crate) mod tests;
