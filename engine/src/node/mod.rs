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
pub mod values;
pub mod watch;

use std::collections::BTreeMap;

use tickwatch_proto::agent;
use tickwatch_state::{FieldState, Provenance, Snapshot};

use crate::kapacitor::Batch;
pub use config::{ConfigError, NodeConfig};
pub use detector::{DetectorError, DetectorFactory, DetectorHandle, Factory, InProcess};
pub use restore::{Adopted, RestorePlan};
use values::Reading;

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
    /// The points to emit, once `states` are persisted.
    pub points: Vec<agent::Point>,
    /// The new state of every field the batch touched (empty unless the node
    /// was asked to keep states, see [`Node::keep_states`]).
    pub states: Vec<FieldState>,
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
    /// Reused per batch so scoring allocates nothing per point.
    values: Vec<f64>,
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
            values: Vec::new(),
        })
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

    /// Whether [`Node::process`] returns the new states (a node whose state
    /// is persisted needs them; one without a store does not pay for them).
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
        self.stats.batches += 1;
        if batch.tags().contains_key(&self.config.field_tag) {
            return Err(NodeError::FieldTagCollision { tag: self.config.field_tag.clone() });
        }
        let mut out = Scored {
            tally: vec![FieldTally::default(); self.config.fields.len()],
            ..Scored::default()
        };
        if let Some(p) = &self.progress {
            p.batch(batch.group());
        }
        for fi in 0..self.config.fields.len() {
            out.tally[fi].skipped = self.collect(fi, &batch.points);
            out.tally[fi].values = self.values.len() as u64;
            if self.values.is_empty() {
                continue;
            }
            let key = FieldKey {
                group: batch.group().to_string(),
                field: self.config.fields[fi].clone(),
            };
            let tracked = match self.tracked.get_mut(&key) {
                Some(t) => t,
                None => {
                    let detector = self.factory.create(&self.config.detector_options)?;
                    self.tracked.entry(key.clone()).or_insert(Tracked { detector, last_time: 0 })
                }
            };
            if let Some(p) = &self.progress {
                p.enter(fi);
            }
            let started = std::time::Instant::now();
            let verdict = tracked.detector.score(&self.values);
            out.tally[fi].score_ns =
                Some(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
            if let Some(p) = &self.progress {
                p.leave();
            }
            let verdict = verdict?;
            tracked.last_time = batch.end.tmax;
            if self.keep_states {
                let state = self.field_state(&key)?;
                out.states.push(state);
            }
            let Some(v) = verdict else { continue };
            let anomalous = v.anomalous;
            match point::verdict_point(batch, &self.config.field_tag, &key.field, v) {
                Ok(p) => {
                    out.points.push(p);
                    out.tally[fi].verdicts = 1;
                    out.tally[fi].anomalies = u64::from(anomalous);
                }
                Err(e) => tracing::error!(
                    "{}: detector {} returned {e} for field {}; point dropped",
                    self.label,
                    self.factory.name(),
                    key.field
                ),
            }
        }
        self.stats.emitted += out.points.len() as u64;
        Ok(out)
    }

    /// Fills `self.values` with field `fi`'s usable values from `points`,
    /// counting (and, the first time, logging) the unusable ones; returns
    /// how many it skipped.
    fn collect(&mut self, fi: usize, points: &[agent::Point]) -> u64 {
        self.values.clear();
        let field = &self.config.fields[fi];
        let mut skipped = 0;
        for p in points {
            match values::read(p, field) {
                Reading::Value(v) => self.values.push(v),
                Reading::Unusable => skipped += 1,
                Reading::Absent => {}
            }
        }
        self.stats.skipped += skipped;
        if skipped > 0 && !self.warned_skip {
            self.warned_skip = true;
            tracing::warn!(
                "{}: skipped {skipped} unusable value(s) of field {field} (NaN, infinite, string \
                 or bool); further skips are counted without logging",
                self.label,
            );
        }
        skipped
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

    /// The current state of one tracked field.
    fn field_state(&mut self, key: &FieldKey) -> Result<FieldState, DetectorError> {
        let last_time = self.tracked.get(key).map_or(0, |t| t.last_time);
        let provenance = self.provenance(last_time);
        let t = self.tracked.get_mut(key).ok_or_else(|| {
            DetectorError::Refused(format!(
                "no state for field {} group {:?}",
                key.field, key.group
            ))
        })?;
        Ok(FieldState {
            group: key.group.clone(),
            field: key.field.clone(),
            provenance,
            state: t.detector.save()?,
        })
    }

    /// Every (group, field) state of the node, sorted by group then field.
    pub fn snapshot(&mut self) -> Result<Snapshot, DetectorError> {
        let keys: Vec<FieldKey> = self.tracked.keys().cloned().collect();
        let fields = keys.iter().map(|k| self.field_state(k)).collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot { fields })
    }
}

#[cfg(test)]
mod tests;
