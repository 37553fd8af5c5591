//! Which state a node applies, and what it sets aside.
//!
//! - At Init ([`Node::adopt`]), persisted states that this node could have
//!   built (same detector, state format and state-shaping options, see
//!   [`config::state_mismatch`], a tracked field) are
//!   loaded; the others are set aside, never applied: a reused task name
//!   must not inherit another configuration's history.
//! - At Restore ([`Node::plan_restore`], then [`Node::apply_restore`]), per
//!   (group, field) the newer of the node's own state and the snapshot's
//!   wins, by the time of the last batch applied; a tie keeps the node's
//!   own, so a stale snapshot never rolls state back. Fields only one side
//!   knows keep that side's state. Snapshot entries this node could not have
//!   built are set aside.
//!
//! Planning changes nothing, so the caller can persist the plan (aside
//! copies, then the applied states) before the node adopts it, and on any
//! error nothing the node uses has changed.

use tickwatch_state::{FieldState, Provenance, Snapshot};

use super::{DetectorHandle, FieldKey, Node, NodeError, Tracked, config};

/// What [`Node::adopt`] did with persisted state.
#[derive(Debug, Default)]
pub struct Adopted {
    /// States loaded into detectors.
    pub loaded: usize,
    /// States not applied, with the reason: the caller moves them aside.
    pub aside: Vec<(FieldState, String)>,
}

/// What a Restore will change, decided before anything changes.
pub struct RestorePlan {
    /// Snapshot states that win, loaded into fresh detectors.
    apply: Vec<(FieldState, Box<dyn DetectorHandle>)>,
    /// Snapshot states not applied, with the reason: the caller keeps a copy aside.
    pub aside: Vec<(FieldState, String)>,
}

impl std::fmt::Debug for RestorePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestorePlan")
            .field("apply", &self.apply.len())
            .field("aside", &self.aside.len())
            .finish()
    }
}

impl RestorePlan {
    /// The states that will replace the node's (to persist first).
    pub fn applied_states(&self) -> Vec<FieldState> {
        self.apply.iter().map(|(s, _)| s.clone()).collect()
    }
}

impl Node {
    /// Why state built as `p` for `field` must not be applied to this node,
    /// if it must not.
    pub(super) fn mismatch(&self, p: &Provenance, field: &str) -> Option<String> {
        let f = &self.factory;
        if p.detector != f.name() {
            Some(format!("detector {} (node uses {})", p.detector, f.name()))
        } else if p.state_version != f.state_version() {
            Some(format!(
                "state format {} of {} {} (node's {} {} uses format {})",
                p.state_version,
                p.detector,
                p.detector_version,
                f.name(),
                f.version(),
                f.state_version()
            ))
        } else if let Some(why) =
            config::state_mismatch(&p.options, f.options(), &self.config.detector_options)
        {
            Some(why)
        } else if !self.config.fields.iter().any(|x| x == field) {
            Some("a field this node does not track".to_string())
        } else {
            None
        }
    }

    /// Why `e` could not be applied to this node, if it could not: built
    /// with another detector, state format or state-shaping options, for a
    /// field the node does not track, or bytes the detector's `load`
    /// refuses. What `tickwatch state adopt` asks of state set aside.
    pub fn judge(&self, e: &FieldState) -> Option<String> {
        if let Some(why) = self.mismatch(&e.provenance, &e.field) {
            return Some(format!("built with {why}"));
        }
        self.load_state(e).err().map(|err| err.to_string())
    }

    /// A detector holding `e`'s state.
    pub(super) fn load_state(&self, e: &FieldState) -> Result<Box<dyn DetectorHandle>, NodeError> {
        let mut detector = self.factory.create(&self.config.detector_options)?;
        detector.load(&e.state).map_err(|reason| NodeError::StateLoad {
            field: e.field.clone(),
            group: e.group.clone(),
            reason,
        })?;
        Ok(detector)
    }

    /// Takes over persisted field states (at Init, before any batch): the
    /// matching ones replace the node's detectors, the rest are returned to
    /// be set aside. On error the node is unchanged.
    pub fn adopt(&mut self, stored: Vec<FieldState>) -> Result<Adopted, NodeError> {
        let mut loaded = Vec::new();
        let mut aside = Vec::new();
        for e in stored {
            if let Some(why) = self.mismatch(&e.provenance, &e.field) {
                tracing::info!(
                    "{}: persisted state of field {} group {:?} was built with {why}; it is set \
                     aside and the field starts fresh",
                    self.label,
                    e.field,
                    e.group
                );
                aside.push((e, format!("built with {why}")));
                continue;
            }
            let detector = self.load_state(&e)?;
            loaded.push((e, detector));
        }
        let n = loaded.len();
        for (e, detector) in loaded {
            let key = FieldKey { group: e.group, field: e.field };
            self.tracked.insert(key, Tracked::new(detector, e.provenance.last_time));
        }
        Ok(Adopted { loaded: n, aside })
    }

    /// Decides what Kapacitor's snapshot changes (see the module docs);
    /// changes nothing.
    pub fn plan_restore(&self, snapshot: Snapshot) -> Result<RestorePlan, NodeError> {
        let mut plan = RestorePlan { apply: Vec::new(), aside: Vec::new() };
        for e in snapshot.fields {
            if let Some(why) = self.mismatch(&e.provenance, &e.field) {
                tracing::info!(
                    "{}: restore: not applying the snapshot's state of field {} group {:?}: it \
                     was built with {why}; the field keeps the node's own state, if any",
                    self.label,
                    e.field,
                    e.group
                );
                plan.aside.push((e, format!("from a snapshot, built with {why}")));
                continue;
            }
            let key = FieldKey { group: e.group.clone(), field: e.field.clone() };
            // A stream group evicted while idle is only in the store: its
            // persisted state takes part in the comparison all the same.
            let evicted_time = if self.tracked.contains_key(&key) || !self.evicted_any {
                None
            } else {
                self.source.as_ref().and_then(|src| {
                    src.fetch(&key.group, &key.field).ok().flatten().and_then(|st| {
                        self.mismatch(&st.provenance, &st.field)
                            .is_none()
                            .then_some(st.provenance.last_time)
                    })
                })
            };
            if let Some(cur_time) = self.tracked.get(&key).map(|t| t.last_time).or(evicted_time)
                && cur_time >= e.provenance.last_time
            {
                tracing::info!(
                    "{}: restore: field {} group {:?}: kept the persisted state (last batch at \
                     {}) over the snapshot's (last batch at {})",
                    self.label,
                    e.field,
                    e.group,
                    cur_time,
                    e.provenance.last_time
                );
                continue;
            }
            let detector = self.load_state(&e)?;
            tracing::info!(
                "{}: restore: field {} group {:?}: using the snapshot's state (last batch at {})",
                self.label,
                e.field,
                e.group,
                e.provenance.last_time
            );
            plan.apply.push((e, detector));
        }
        Ok(plan)
    }

    /// Applies a plan from [`Node::plan_restore`]; returns how many field
    /// states it replaced.
    pub fn apply_restore(&mut self, plan: RestorePlan) -> usize {
        let n = plan.apply.len();
        for (e, detector) in plan.apply {
            let key = FieldKey { group: e.group, field: e.field };
            self.tracked.insert(key, Tracked::new(detector, e.provenance.last_time));
        }
        n
    }
}
