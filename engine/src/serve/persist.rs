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
#![deny(clippy::print_stdout)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tickwatch_proto::agent;
use tickwatch_state::{
    FieldState, NodeMeta, Snapshot, StateError, StateStore, StoreOptions, layout,
};

use crate::control::ControlServer;
use crate::control::server::Source;
use crate::kapacitor::Batch;
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

/// A node and, when it has a state directory, its store and control socket.
pub struct Persisted {
    node: Node,
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
    /// A node whose state lives only in Kapacitor's snapshots.
    pub fn in_memory(node: Node) -> Persisted {
        Persisted { node, control: None, store: None }
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
        let adopted = node.adopt(stored).map_err(|source| PersistError::Stored {
            source: Box::new(source),
            dir: dir.clone(),
        })?;
        for (state, why) in &adopted.aside {
            store.put_aside(state, why)?;
        }
        node.keep_states(true);
        let path = layout::control_socket(&settings.dir, &meta.task, &meta.node);
        let source = Source {
            reader: store.reader(),
            factory: node.factory().clone(),
            options: node.config().detector_options.clone(),
            task: meta.task.clone(),
            node: meta.node.clone(),
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
        Ok((Persisted { node, control, store: Some(store) }, adopted.loaded))
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Where the state lives, if anywhere.
    pub fn dir(&self) -> Option<String> {
        self.store.as_ref().map(|s| s.dir().display().to_string())
    }

    /// Scores `batches` in order and commits all their new states in one
    /// atomic (and, by default, flushed) commit: a field touched by several
    /// batches is written once, with its latest state. Returns the points of
    /// every batch scored and committed, which may be written once this
    /// returns; on a failure, also the error, and the points are those of
    /// the batches before the failing one (committed as well).
    pub fn process_all(&mut self, batches: &[Batch]) -> (Vec<agent::Point>, Option<PersistError>) {
        self.commit_each(batches, |node, b| node.process(b))
    }

    /// Stream edges: takes `points` in order (the node forms and scores
    /// the windows they close) and commits every new state once, as
    /// [`Persisted::process_all`] does: no point comes back before the
    /// state it depends on is committed.
    pub fn process_points(
        &mut self,
        points: Vec<Vec<agent::Point>>,
    ) -> (Vec<agent::Point>, Option<PersistError>) {
        self.commit_each(points.into_iter().flatten(), |node, p| node.process_point(p))
    }

    fn commit_each<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut score: impl FnMut(&mut Node, T) -> Result<crate::node::Scored, NodeError>,
    ) -> (Vec<agent::Point>, Option<PersistError>) {
        let mut points = Vec::new();
        let mut states: Vec<FieldState> = Vec::new();
        // (group, field) → index in `states`, so each field is written once.
        let mut latest: HashMap<(String, String), usize> = HashMap::new();
        let mut failed = None;
        for item in items {
            match score(&mut self.node, item) {
                Ok(scored) => {
                    points.extend(scored.points);
                    for st in scored.states {
                        match latest.get(&(st.group.clone(), st.field.clone())) {
                            Some(&i) => states[i] = st,
                            None => {
                                latest.insert((st.group.clone(), st.field.clone()), states.len());
                                states.push(st);
                            }
                        }
                    }
                }
                Err(e) => {
                    failed = Some(PersistError::Node(e));
                    break;
                }
            }
        }
        if let Some(store) = self.store.as_mut()
            && let Err(e) = store.commit(&states)
        {
            // Nothing of these batches may reach Kapacitor.
            return (Vec::new(), Some(e.into()));
        }
        (points, failed)
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
            store.commit(&plan.applied_states())?;
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

/// The store as the node's [`StateSource`] for evicted groups.
struct StoreSource(tickwatch_state::StoreReader);

impl StateSource for StoreSource {
    fn fetch(&self, group: &str, field: &str) -> Result<Option<FieldState>, String> {
        self.0.field(group, field).map_err(|e| e.to_string())
    }
}

impl Drop for Persisted {
    fn drop(&mut self) {
        // The control socket reads the store: close it first.
        self.control.take();
    }
}
