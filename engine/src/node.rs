//! One UDF node's state: a detector instance per [`FieldKey`] (Kapacitor
//! group + tracked field), fed one batch at a time, snapshotted and restored.
//!
//! Owns: pulling tracked values out of batch points (skipping and counting
//! unusable ones), building the output points, the snapshot contents, and
//! deciding which state to apply: persisted state at Init, Kapacitor's
//! snapshot at Restore (the newer wins), and what is set aside.
//! Does not own: the wire (see `session`), the snapshot byte format and the
//! database (`tickwatch-state`).
//!
//! Durability: when the node has a store, every batch's new field states are
//! committed (and, by default, flushed) before `process` returns the points,
//! so nothing Kapacitor has seen can be lost by a crash.
#![deny(clippy::print_stdout)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tickwatch_plugin_api::Verdict;
use tickwatch_proto::agent;
use tickwatch_state::{FieldState, Snapshot, StateError, StateStore};

use crate::control::ControlServer;

use crate::options::NodeConfig;
use crate::plugin::{DetectorInstance, Plugin, PluginError};

/// A Kapacitor group and one tracked field: the unit of detector state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldKey {
    /// Kapacitor's group id ("" when ungrouped).
    pub group: String,
    /// The tracked field.
    pub field: String,
}

/// One complete batch as received: BeginBatch, its points, EndBatch.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The BeginBatch.
    pub begin: agent::BeginBatch,
    /// The rows.
    pub points: Vec<agent::Point>,
    /// The EndBatch.
    pub end: agent::EndBatch,
}

struct Tracked {
    detector: DetectorInstance,
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

/// Why a batch could not be processed; the node's stream is over.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A detector failed (panicked or misbehaved).
    #[error("detector failed: {0}")]
    Detector(#[from] PluginError),
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
    /// The batch's new state could not be persisted.
    #[error("cannot persist state: {0}")]
    State(#[from] StateError),
}

/// A node: configuration plus per-(group, field) detectors.
pub struct Node {
    /// Read-only query socket; dropped (closed) before the store.
    control: Option<ControlServer>,
    /// Where field states persist, if the node has a state directory.
    store: Option<StateStore>,
    /// `task T node N`, for log lines.
    label: String,
    plugin: Arc<Plugin>,
    config: NodeConfig,
    tracked: BTreeMap<FieldKey, Tracked>,
    stats: NodeStats,
    warned_skip: bool,
    /// Reused per batch so scoring allocates nothing per point.
    values: Vec<f64>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("config", &self.config).field("stats", &self.stats).finish()
    }
}

/// Kapacitor's group id for a set of dimensions: `k=v,k=v` over the sorted
/// dimension names, prefixed by `name\n` when grouped by measurement.
fn group_id(name: &str, by_name: bool, dims: &[String], tags: &HashMap<String, String>) -> String {
    let mut id = String::new();
    if by_name {
        id.push_str(name);
        id.push('\n');
    }
    for (i, d) in dims.iter().enumerate() {
        if i > 0 {
            id.push(',');
        }
        id.push_str(d);
        id.push('=');
        id.push_str(tags.get(d).map(String::as_str).unwrap_or(""));
    }
    id
}

impl Node {
    /// A node for validated options; checks once that the detector accepts them.
    pub fn new(plugin: Arc<Plugin>, config: NodeConfig, label: &str) -> Result<Node, String> {
        plugin.create(&config.detector_options).map_err(|e| e.to_string())?;
        Ok(Node {
            control: None,
            store: None,
            label: label.to_string(),
            plugin,
            config,
            tracked: BTreeMap::new(),
            stats: NodeStats::default(),
            warned_skip: false,
            values: Vec::new(),
        })
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// Scores one batch for every tracked field; returns the points to emit.
    /// An error means a detector failed (panicked or misbehaved): the stream
    /// is no longer meaningful for this node.
    pub fn process(&mut self, batch: &Batch) -> Result<Vec<agent::Point>, NodeError> {
        self.stats.batches += 1;
        let group = if batch.end.group.is_empty() { &batch.begin.group } else { &batch.end.group };
        let name = if batch.end.name.is_empty() { &batch.begin.name } else { &batch.end.name };
        let tags = if batch.end.tags.is_empty() { &batch.begin.tags } else { &batch.end.tags };
        if tags.contains_key(&self.config.field_tag) {
            return Err(NodeError::FieldTagCollision { tag: self.config.field_tag.clone() });
        }
        let mut out = Vec::new();
        let mut updated: Vec<FieldKey> = Vec::new();
        for fi in 0..self.config.fields.len() {
            let skipped_before = self.stats.skipped;
            self.collect(fi, &batch.points);
            let skipped = self.stats.skipped - skipped_before;
            if skipped > 0 && !self.warned_skip {
                self.warned_skip = true;
                tracing::warn!(
                    "{}: skipped {skipped} unusable value(s) of field {} (NaN, infinite, string or \
                     bool); further skips are counted without logging",
                    self.label,
                    self.config.fields[fi]
                );
            }
            if self.values.is_empty() {
                continue;
            }
            let key = FieldKey { group: group.clone(), field: self.config.fields[fi].clone() };
            let tracked = match self.tracked.get_mut(&key) {
                Some(t) => t,
                None => {
                    let detector = self.plugin.create(&self.config.detector_options)?;
                    self.tracked.entry(key.clone()).or_insert(Tracked { detector, last_time: 0 })
                }
            };
            let verdict = tracked.detector.score(&self.values)?;
            tracked.last_time = batch.end.tmax;
            if self.store.is_some() {
                updated.push(key.clone());
            }
            if let Some(v) = verdict
                && let Some(p) = self.point(name, tags, batch, &key.field, v)
            {
                out.push(p);
            }
        }
        if !updated.is_empty() {
            let states =
                updated.iter().map(|k| self.field_state(k)).collect::<Result<Vec<_>, _>>()?;
            if let Some(store) = self.store.as_mut() {
                store.commit(&states)?;
            }
        }
        self.stats.emitted += out.len() as u64;
        Ok(out)
    }

    /// The current state of one tracked field.
    fn field_state(&mut self, key: &FieldKey) -> Result<FieldState, PluginError> {
        let t = self.tracked.get_mut(key).ok_or_else(|| {
            PluginError::Refused(format!("no state for field {} group {:?}", key.field, key.group))
        })?;
        Ok(FieldState {
            group: key.group.clone(),
            field: key.field.clone(),
            detector: self.plugin.name().to_string(),
            detector_version: self.plugin.version().to_string(),
            state_version: self.plugin.state_version(),
            options: self.config.fingerprint.clone(),
            last_time: t.last_time,
            state: t.detector.save()?,
        })
    }

    /// Why stored or snapshotted state `e` must not be applied to this node,
    /// if it must not: a reused task name must not inherit old history.
    fn mismatch(&self, e: &FieldState) -> Option<String> {
        if e.detector != self.plugin.name() {
            Some(format!("detector {} (node uses {})", e.detector, self.plugin.name()))
        } else if e.state_version != self.plugin.state_version() {
            Some(format!(
                "state format {} of {} {} (node's {} {} uses format {})",
                e.state_version,
                e.detector,
                e.detector_version,
                self.plugin.name(),
                self.plugin.version(),
                self.plugin.state_version()
            ))
        } else if e.options != self.config.fingerprint {
            Some(format!("options {} (node uses {})", e.options, self.config.fingerprint))
        } else if !self.config.fields.contains(&e.field) {
            Some("a field this node does not track".to_string())
        } else {
            None
        }
    }

    /// A detector holding `e`'s state.
    fn load_state(&self, e: &FieldState) -> Result<DetectorInstance, String> {
        let mut detector = self
            .plugin
            .create(&self.config.detector_options)
            .map_err(|err| format!("cannot create detector for field {}: {err}", e.field))?;
        detector.load(&e.state).map_err(|err| {
            format!("state of field {} group {:?} does not load: {err}", e.field, e.group)
        })?;
        Ok(detector)
    }

    /// Gives the node its store and picks up the persisted field states:
    /// matching ones are loaded, others are set aside (kept for inspection)
    /// and those fields start fresh. Returns how many were loaded.
    pub fn attach_store(&mut self, mut store: StateStore) -> Result<usize, String> {
        let stored = store.load().map_err(|e| e.to_string())?;
        let mut loaded = BTreeMap::new();
        for e in stored {
            if let Some(why) = self.mismatch(&e) {
                tracing::info!(
                    "{}: persisted state of field {} group {:?} was built with {why}; it is set \
                     aside and the field starts fresh",
                    self.label,
                    e.field,
                    e.group
                );
                store.put_aside(&e, &format!("built with {why}")).map_err(|e| e.to_string())?;
                continue;
            }
            let detector = self.load_state(&e).map_err(|err| {
                format!("{err} (persisted in {}; see `tickwatch state`)", store.dir().display())
            })?;
            loaded.insert(
                FieldKey { group: e.group, field: e.field },
                Tracked { detector, last_time: e.last_time },
            );
        }
        let n = loaded.len();
        self.tracked = loaded;
        self.store = Some(store);
        Ok(n)
    }

    /// Starts the read-only query socket for `tickwatch state` (needs a store).
    pub fn start_control(&mut self, path: &std::path::Path, task: &str, node: &str) {
        let Some(store) = &self.store else { return };
        match ControlServer::start(
            path,
            store.reader(),
            Arc::clone(&self.plugin),
            self.config.detector_options.clone(),
            task,
            node,
        ) {
            Ok(c) => self.control = Some(c),
            Err(e) => tracing::warn!(
                "{}: no control socket at {} ({e}); `tickwatch state` cannot read this node \
                 while it runs",
                self.label,
                path.display()
            ),
        }
    }

    /// Fills `self.values` with field `fi`'s usable values from `points`.
    fn collect(&mut self, fi: usize, points: &[agent::Point]) {
        self.values.clear();
        let field = &self.config.fields[fi];
        for p in points {
            if let Some(&v) = p.fields_double.get(field) {
                if v.is_finite() {
                    self.values.push(v);
                } else {
                    self.stats.skipped += 1;
                }
            } else if let Some(&v) = p.fields_int.get(field) {
                self.values.push(v as f64);
            } else if p.fields_string.contains_key(field) || p.fields_bool.contains_key(field) {
                self.stats.skipped += 1;
            }
        }
    }

    fn point(
        &self,
        name: &str,
        batch_tags: &HashMap<String, String>,
        batch: &Batch,
        field: &str,
        v: Verdict,
    ) -> Option<agent::Point> {
        if !(v.pvalue.is_finite() && (0.0..=1.0).contains(&v.pvalue)) {
            tracing::error!(
                "{}: detector {} returned pvalue {} for field {field}; point dropped",
                self.label,
                self.plugin.name(),
                v.pvalue
            );
            return None;
        }
        let field_tag = &self.config.field_tag;
        let mut tags = batch_tags.clone();
        tags.insert(field_tag.clone(), field.to_string());
        let mut dimensions: Vec<String> = batch_tags.keys().cloned().collect();
        // `process` refused batches grouped by the field tag itself.
        dimensions.push(field_tag.clone());
        dimensions.sort();
        let mut fields_double = HashMap::with_capacity(v.stats.len() + 1);
        fields_double.insert("pvalue".to_string(), v.pvalue);
        for (k, x) in v.stats {
            // InfluxDB refuses NaN and infinities; a plugin bug must not break writes.
            if x.is_finite() && k != "pvalue" {
                fields_double.insert(k, x);
            }
        }
        let by_name = batch.end.by_name;
        Some(agent::Point {
            time: batch.end.tmax,
            name: name.to_string(),
            group: group_id(name, by_name, &dimensions, &tags),
            dimensions,
            tags,
            fields_double,
            fields_bool: HashMap::from([("anomalous".to_string(), v.anomalous)]),
            by_name,
            ..Default::default()
        })
    }

    /// Every (group, field) state of the node.
    pub fn snapshot(&mut self) -> Result<Snapshot, PluginError> {
        let keys: Vec<FieldKey> = self.tracked.keys().cloned().collect();
        let fields = keys.iter().map(|k| self.field_state(k)).collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot { fields })
    }

    /// Applies Kapacitor's snapshot. Per (group, field) the newer of the
    /// current (persisted) state and the snapshot wins, by the time of the
    /// last batch applied, so a stale snapshot never rolls state back; fields
    /// only one side knows keep that side's state. Entries for another
    /// detector, state format or options, or for an untracked field, are not
    /// applied (set aside when the node has a store). On any error nothing
    /// changes. Returns how many entries were applied.
    pub fn restore(&mut self, snapshot: Snapshot) -> Result<usize, String> {
        let mut applied: Vec<(FieldState, DetectorInstance)> = Vec::new();
        let mut aside: Vec<(FieldState, String)> = Vec::new();
        for e in snapshot.fields {
            if let Some(why) = self.mismatch(&e) {
                tracing::info!(
                    "{}: restore: not applying the snapshot's state of field {} group {:?}: it \
                     was built with {why}; the field keeps the node's own state, if any",
                    self.label,
                    e.field,
                    e.group
                );
                aside.push((e, format!("from a snapshot, built with {why}")));
                continue;
            }
            let key = FieldKey { group: e.group.clone(), field: e.field.clone() };
            if let Some(cur) = self.tracked.get(&key)
                && cur.last_time >= e.last_time
            {
                tracing::info!(
                    "{}: restore: field {} group {:?}: kept the persisted state (last batch at \
                     {}) over the snapshot's (last batch at {})",
                    self.label,
                    e.field,
                    e.group,
                    cur.last_time,
                    e.last_time
                );
                continue;
            }
            let detector = self.load_state(&e)?;
            tracing::info!(
                "{}: restore: field {} group {:?}: using the snapshot's state (last batch at {})",
                self.label,
                e.field,
                e.group,
                e.last_time
            );
            applied.push((e, detector));
        }
        if let Some(store) = self.store.as_mut() {
            // Aside copies first: if the commit then fails, nothing the node
            // uses has changed, on disk or in memory.
            for (e, why) in &aside {
                store.keep_aside(e, why).map_err(|e| e.to_string())?;
            }
            let states: Vec<FieldState> = applied.iter().map(|(e, _)| e.clone()).collect();
            store.commit(&states).map_err(|e| format!("cannot persist the restored state: {e}"))?;
        }
        let n = applied.len();
        for (e, detector) in applied {
            let key = FieldKey { group: e.group, field: e.field };
            self.tracked.insert(key, Tracked { detector, last_time: e.last_time });
        }
        Ok(n)
    }
}
