//! The Kapacitor side of the UDF protocol, and the two Kapacitor concepts
//! the serving side shares with it: a [`Batch`] (BeginBatch, points,
//! EndBatch) and a group id ([`group_id`]).
//!
//! - [`client`]: spawn or connect to a UDF and drive it as Kapacitor does
//!   (Info, Init checked with Kapacitor's arity/type rule, optional Restore,
//!   batches with keepalives, Snapshot, close). Used by `replay`, `demo` and
//!   the end-to-end tests.
//! - [`window`]: cut a point stream into batches as `|window()` does.
//! - [`options`]: TICKscript option values and Kapacitor's rule for them.
//!
//! The behaviour matched is described in `docs/kapacitor-protocol.md`.
//! Nothing here knows detectors, state or the serving runtime.

pub mod client;
pub mod options;
pub mod window;

use std::collections::HashMap;

use tickwatch_proto::{EncodedPoints, agent};

use crate::node::values::Columns;

pub use client::{HostError, UdfClient};
pub use options::check_options;
pub use window::{ViewWindower, Windower};

/// One complete batch as a UDF receives it: BeginBatch, its points, EndBatch.
///
/// Its rows are `points` followed by `encoded`. A host (the windower, the
/// client, tests) fills `points`; `serve`'s reader keeps the points it reads
/// as their bytes in `encoded` (no allocation per point, see
/// `tickwatch_proto::view`). Once the node's fields are known, `serve`'s
/// reader also reads the tracked values out as it checks each point
/// (`columns`); then it keeps the rows themselves only when the node
/// passes them through, and `columns` counts them.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The BeginBatch.
    pub begin: agent::BeginBatch,
    /// The rows, decoded.
    pub points: Vec<agent::Point>,
    /// The rows read in place, after `points`.
    pub encoded: EncodedPoints,
    /// Every row's tracked values, read by `serve`'s reader (`None`: the
    /// node reads the rows).
    pub columns: Option<Columns>,
    /// The EndBatch.
    pub end: agent::EndBatch,
}

impl Batch {
    /// The batch's measurement name (EndBatch's, else BeginBatch's: Kapacitor
    /// fills both, test hosts sometimes only one).
    pub fn name(&self) -> &str {
        if self.end.name.is_empty() { &self.begin.name } else { &self.end.name }
    }

    /// The batch's group id, as [`Batch::name`].
    pub fn group(&self) -> &str {
        if self.end.group.is_empty() { &self.begin.group } else { &self.end.group }
    }

    /// How many rows the batch holds.
    pub fn len(&self) -> usize {
        match &self.columns {
            Some(c) => c.rows(),
            None => self.points.len() + self.encoded.len(),
        }
    }

    /// Whether it holds no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch's group-by tags, as [`Batch::name`].
    pub fn tags(&self) -> &HashMap<String, String> {
        if self.end.tags.is_empty() { &self.begin.tags } else { &self.end.tags }
    }
}

/// Kapacitor's group id (`models.ToGroupID`): `name\n` when grouped by
/// measurement, then `k=v` for each dimension in the order given (Kapacitor
/// sorts dimensions), joined by `,`; a missing tag counts as "".
pub fn group_id(
    name: &str,
    by_name: bool,
    dims: &[String],
    tags: &HashMap<String, String>,
) -> String {
    let mut id = String::new();
    let value = |d: &str| tags.get(d).map_or("", String::as_str);
    write_group_id(&mut id, name, by_name, dims.iter().map(|d| (d.as_str(), value(d))));
    id
}

/// [`group_id`] of the dimensions `pairs` gives with their values, in that
/// order, written over `id` (sized once; a reused `id` allocates nothing
/// once large enough).
pub fn write_group_id<'a>(
    id: &mut String,
    name: &str,
    by_name: bool,
    pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) {
    id.clear();
    let len = pairs.clone().map(|(d, v)| d.len() + v.len() + 2).sum::<usize>();
    id.reserve(len + if by_name { name.len() + 1 } else { 0 });
    if by_name {
        id.push_str(name);
        id.push('\n');
    }
    for (i, (d, v)) in pairs.enumerate() {
        if i > 0 {
            id.push(',');
        }
        id.push_str(d);
        id.push('=');
        id.push_str(v);
    }
}

/// A group id as people read it: `(ungrouped)` for "", the measurement
/// prefix's newline shown as a space.
pub fn group_label(id: &str) -> String {
    if id.is_empty() { "(ungrouped)".into() } else { id.replace('\n', " ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn group_id_matches_kapacitor() {
        let t = tags(&[("host", "a"), ("dc", "x"), ("field", "hotend")]);
        let dims = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(group_id("cpu", false, &[], &t), "");
        assert_eq!(group_id("cpu", false, &dims(&["dc", "host"]), &t), "dc=x,host=a");
        assert_eq!(group_id("cpu", true, &dims(&["dc", "host"]), &t), "cpu\ndc=x,host=a");
        assert_eq!(group_id("cpu", true, &[], &t), "cpu\n");
        // A dimension the point lacks is an empty value, not left out.
        assert_eq!(group_id("cpu", false, &dims(&["host", "rack"]), &t), "host=a,rack=");
    }

    #[test]
    fn group_label_reads_well() {
        assert_eq!(group_label(""), "(ungrouped)");
        assert_eq!(group_label("printer=a"), "printer=a");
        assert_eq!(group_label("cpu\nhost=a"), "cpu host=a");
    }

    #[test]
    fn batch_falls_back_to_begin() {
        let mut b = Batch::default();
        b.begin.name = "m".into();
        b.begin.group = "g".into();
        b.begin.tags = tags(&[("k", "v")]);
        assert_eq!((b.name(), b.group()), ("m", "g"));
        assert_eq!(b.tags().get("k").map(String::as_str), Some("v"));
        b.end.name = "n".into();
        assert_eq!(b.name(), "n");
    }
}
