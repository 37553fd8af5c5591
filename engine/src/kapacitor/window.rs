//! `Windower`: Kapacitor's `|window().period(P).every(E)` over a point
//! stream, grouped by tags, producing the batches a UDF receives.
//!
//! Non-aligned windows (docs/kapacitor-protocol.md): a group's first window
//! ends at its first point's time + every; a window is emitted when a point
//! at or after its end arrives, holding that group's points in
//! `[end - period, end)`, with `tmax` = the end. Each group has its own
//! windows; a group id is `k=v,k=v` over the sorted group-by tags.

use std::collections::{BTreeMap, HashMap, VecDeque};

use tickwatch_proto::agent;

use super::{Batch, group_id};

struct GroupWindow {
    next_end: i64,
    tags: HashMap<String, String>,
    buf: VecDeque<agent::Point>,
}

/// Cuts points into batches.
pub struct Windower {
    period: i64,
    every: i64,
    group_by: Vec<String>,
    groups: BTreeMap<String, GroupWindow>,
}

impl std::fmt::Debug for Windower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Windower")
            .field("period", &self.period)
            .field("every", &self.every)
            .field("group_by", &self.group_by)
            .finish()
    }
}

impl Windower {
    /// `period` and `every` in nanoseconds; `group_by` tag names.
    pub fn new(period: i64, every: i64, group_by: &[&str]) -> Self {
        let mut group_by: Vec<String> = group_by.iter().map(|s| s.to_string()).collect();
        group_by.sort();
        Self { period, every, group_by, groups: BTreeMap::new() }
    }

    /// Feeds one point (named, with time, tags and fields, in time order per
    /// group); returns the window it closes, if any.
    pub fn push(&mut self, p: agent::Point) -> Option<Batch> {
        let group = group_id("", false, &self.group_by, &p.tags);
        let every = self.every;
        let w = self.groups.entry(group.clone()).or_insert_with(|| GroupWindow {
            next_end: p.time + every,
            tags: HashMap::new(),
            buf: VecDeque::new(),
        });
        if w.tags.is_empty() {
            w.tags = self
                .group_by
                .iter()
                .filter_map(|k| p.tags.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
        }
        let mut out = None;
        if p.time >= w.next_end {
            let end = w.next_end;
            let start = end - self.period;
            while w.buf.front().is_some_and(|q| q.time < start) {
                w.buf.pop_front();
            }
            let points: Vec<agent::Point> = w
                .buf
                .iter()
                .filter(|q| q.time < end)
                .map(|q| agent::Point {
                    time: q.time,
                    group: group.clone(),
                    tags: q.tags.clone(),
                    fields_double: q.fields_double.clone(),
                    fields_int: q.fields_int.clone(),
                    fields_string: q.fields_string.clone(),
                    fields_bool: q.fields_bool.clone(),
                    ..Default::default()
                })
                .collect();
            out = Some(Batch {
                begin: agent::BeginBatch {
                    name: p.name.clone(),
                    group: group.clone(),
                    tags: w.tags.clone(),
                    size: points.len() as i64,
                    by_name: false,
                },
                points,
                end: agent::EndBatch {
                    name: p.name.clone(),
                    group: group.clone(),
                    tmax: end,
                    tags: w.tags.clone(),
                    by_name: false,
                },
            });
            w.next_end += every;
            let keep_from = w.next_end - self.period;
            while w.buf.front().is_some_and(|q| q.time < keep_from) {
                w.buf.pop_front();
            }
        }
        w.buf.push_back(p);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(t: i64, printer: &str) -> agent::Point {
        agent::Point {
            name: "temperatures".into(),
            time: t,
            tags: HashMap::from([("printer".into(), printer.into())]),
            fields_double: HashMap::from([("hotend".into(), t as f64)]),
            ..Default::default()
        }
    }

    #[test]
    fn non_aligned_windows_per_group() {
        let mut w = Windower::new(10, 10, &["printer"]);
        let mut batches = Vec::new();
        for t in 3..40 {
            for printer in ["a", "b"] {
                if printer == "b" && t < 7 {
                    continue;
                }
                batches.extend(w.push(pt(t, printer)));
            }
        }
        let a: Vec<_> = batches.iter().filter(|b| b.end.group == "printer=a").collect();
        let b: Vec<_> = batches.iter().filter(|b| b.end.group == "printer=b").collect();
        // a: first point 3 → windows end 13, 23, 33 (emitted at 13, 23, 33).
        assert_eq!(a.iter().map(|b| b.end.tmax).collect::<Vec<_>>(), [13, 23, 33]);
        assert_eq!(b.iter().map(|b| b.end.tmax).collect::<Vec<_>>(), [17, 27, 37]);
        let times: Vec<i64> = a[1].points.iter().map(|p| p.time).collect();
        assert_eq!(times, (13..23).collect::<Vec<_>>());
        assert_eq!(a[0].points.len(), 10);
        assert_eq!(a[0].begin.size, 10);
        assert!(a[0].points.iter().all(|p| p.name.is_empty() && p.group == "printer=a"));
        assert_eq!(a[0].end.tags.get("printer").map(String::as_str), Some("a"));
    }
}
