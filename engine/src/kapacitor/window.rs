//! `Windower`: Kapacitor's `|window().period(P).every(E)` over a point
//! stream, grouped by tags, producing the batches a UDF receives.
//!
//! Matches Kapacitor's `windowByTime` without `.fillPeriod()`
//! (docs/kapacitor-protocol.md, "Batches from |window()"): a group's first
//! window ends at its first point's time + every; a window is emitted when a
//! point at or after its end arrives, holding that group's points in
//! `[end - period, end)`, with `tmax` = the end; the **next** end is then the
//! arriving point's time + every, not the previous end + every. So after a
//! gap in the data the windows restart from the data instead of trailing
//! behind it, and with irregular timestamps the window ends follow the
//! points. Each group has its own windows; a group id is `k=v,k=v` over the
//! sorted group-by tags.
//!
//! Groups are keyed by their id: [`Windower::push`] computes it from the
//! group-by tags (replay, tests), [`Windower::push_grouped`] takes the id
//! Kapacitor put on a stream point (a stream-edge node).
//!
//! `.align()` is covered ([`Windower::align`]). Not covered: `.fillPeriod()`, count windows, and `every = 0`
//! (which Kapacitor treats as "emit on every point"); callers pass a
//! positive `every` (replay's flags refuse anything else).

use std::collections::{BTreeMap, HashMap, VecDeque};

use tickwatch_proto::{EncodedPoints, PointView, agent};

use super::{Batch, group_id};

/// The end of the window a point at `t` opens: `t + every`, truncated to a
/// multiple of `every` when `align`ed (Kapacitor's `windowByTime`).
fn end_after(t: i64, every: i64, align: bool) -> i64 {
    let end = t.saturating_add(every);
    if !align {
        return end;
    }
    // Nanoseconds from Go's zero time (0001-01-01) to the Unix epoch.
    const GO_EPOCH_NS: i128 = 62_135_596_800 * 1_000_000_000;
    let every = i128::from(every);
    let rem = (i128::from(end) + GO_EPOCH_NS).rem_euclid(every);
    i64::try_from(i128::from(end) - rem).unwrap_or(end)
}

struct GroupWindow {
    next_end: i64,
    tags: HashMap<String, String>,
    buf: VecDeque<agent::Point>,
}

/// Cuts points into batches.
pub struct Windower {
    period: i64,
    every: i64,
    align: bool,
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
    /// `period` and `every` in nanoseconds (both positive); `group_by` tag
    /// names.
    pub fn new(period: i64, every: i64, group_by: &[&str]) -> Self {
        let mut group_by: Vec<String> = group_by.iter().map(|s| s.to_string()).collect();
        group_by.sort();
        Self { period, every, align: false, group_by, groups: BTreeMap::new() }
    }

    /// `.align()`: window ends fall on multiples of `every`, as Kapacitor
    /// truncates them (Go's `Time.Truncate`, counted from year 1, which is
    /// the Unix epoch for any `every` that divides a day).
    pub fn align(mut self, on: bool) -> Self {
        self.align = on;
        self
    }

    /// The end of the window a point at `t` opens: `t + every`, truncated
    /// to a multiple of `every` when aligned (Kapacitor's `windowByTime`).
    fn end_after(&self, t: i64) -> i64 {
        end_after(t, self.every, self.align)
    }

    /// Feeds one point (named, with time, tags and fields, in time order per
    /// group); returns the window it closes, if any. A point closes at most
    /// one window, as in Kapacitor.
    pub fn push(&mut self, p: agent::Point) -> Option<Batch> {
        let group = group_id("", false, &self.group_by, &p.tags);
        let group_by = &self.group_by;
        let tags = || {
            group_by.iter().filter_map(|k| p.tags.get(k).map(|v| (k.clone(), v.clone()))).collect()
        };
        let tags: HashMap<String, String> =
            if self.groups.contains_key(&group) { HashMap::new() } else { tags() };
        self.push_grouped(&group, tags, false, p)
    }

    /// Feeds one point of the Kapacitor group `group` (its id as Kapacitor
    /// computed it, e.g. a stream point's `group`), whose group-by tags are
    /// `tags` (read the first time the group is seen) and whose id carries
    /// the measurement when `by_name`; otherwise as [`Windower::push`].
    pub fn push_grouped(
        &mut self,
        group: &str,
        tags: HashMap<String, String>,
        by_name: bool,
        p: agent::Point,
    ) -> Option<Batch> {
        let next_end = self.end_after(p.time);
        if !self.groups.contains_key(group) {
            let w = GroupWindow { next_end, tags, buf: VecDeque::new() };
            self.groups.insert(group.to_string(), w);
        }
        let w = self.groups.get_mut(group)?;
        let mut out = None;
        if p.time >= w.next_end {
            let end = w.next_end;
            let start = end.saturating_sub(self.period);
            while w.buf.front().is_some_and(|q| q.time < start) {
                w.buf.pop_front();
            }
            // Points this window is the last to need (the leading ones
            // before the next window's start) are moved into it; the rest
            // are copied. Tumbling windows copy nothing.
            let keep_from = next_end.saturating_sub(self.period);
            let last_use = w.buf.iter().take_while(|q| q.time < keep_from).count();
            let mut points: Vec<agent::Point> = Vec::with_capacity(w.buf.len());
            points.extend(w.buf.drain(..last_use).filter(|q| q.time < end).map(|q| agent::Point {
                time: q.time,
                group: group.to_string(),
                tags: q.tags,
                fields_double: q.fields_double,
                fields_int: q.fields_int,
                fields_string: q.fields_string,
                fields_bool: q.fields_bool,
                ..Default::default()
            }));
            points.extend(w.buf.iter().filter(|q| q.time < end).map(|q| agent::Point {
                time: q.time,
                group: group.to_string(),
                tags: q.tags.clone(),
                fields_double: q.fields_double.clone(),
                fields_int: q.fields_int.clone(),
                fields_string: q.fields_string.clone(),
                fields_bool: q.fields_bool.clone(),
                ..Default::default()
            }));
            out = Some(Batch {
                begin: agent::BeginBatch {
                    name: p.name.clone(),
                    group: group.to_string(),
                    tags: w.tags.clone(),
                    size: points.len() as i64,
                    by_name,
                },
                points,
                end: agent::EndBatch {
                    name: p.name.clone(),
                    group: group.to_string(),
                    tmax: end,
                    tags: w.tags.clone(),
                    by_name,
                },
                ..Default::default()
            });
            // Kapacitor (`windowByTime.Insert`): the next emit time depends on
            // the point that closed this window, not on the last end, so a gap
            // closes one window and the next ones follow the data again.
            w.next_end = next_end;
        }
        w.buf.push_back(p);
        out
    }

    /// Forgets group `group`'s window (its buffered points are dropped, as
    /// Kapacitor drops an open window when a task stops); its next point
    /// starts it again, as a new group would.
    pub fn forget(&mut self, group: &str) {
        self.groups.remove(group);
    }

    /// How many groups have an open window.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Whether `group` has an open window.
    pub fn holds(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }
}

/// One group's open window of points kept as their bytes.
struct ViewGroup {
    next_end: i64,
    tags: HashMap<String, String>,
    /// Each buffered point's time, parallel to `points`.
    times: VecDeque<i64>,
    points: EncodedPoints,
}

/// [`Windower::push_grouped`] for points kept as their bytes (a
/// stream-edge node): the same windows, each a [`Batch`] whose rows are in
/// `encoded`, the points as they arrived (a node scores only their time and
/// fields). No allocation per point: a group's buffer and a window's rows
/// are one byte buffer each.
pub struct ViewWindower {
    period: i64,
    every: i64,
    align: bool,
    groups: HashMap<String, ViewGroup>,
}

impl std::fmt::Debug for ViewWindower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewWindower")
            .field("period", &self.period)
            .field("every", &self.every)
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl ViewWindower {
    /// As [`Windower::new`] without group-by tags (groups come with the
    /// points), and [`Windower::align`].
    pub fn new(period: i64, every: i64, align: bool) -> Self {
        ViewWindower { period, every, align, groups: HashMap::new() }
    }

    /// Feeds point `p` of the Kapacitor group `group` (its time `time`);
    /// `tags` is called for its group-by tags only when the group is new.
    /// Otherwise as [`Windower::push_grouped`].
    pub fn push(
        &mut self,
        group: &str,
        time: i64,
        tags: impl FnOnce() -> HashMap<String, String>,
        p: PointView<'_>,
    ) -> Option<Batch> {
        let next_end = end_after(time, self.every, self.align);
        let w = match self.groups.get_mut(group) {
            Some(w) => w,
            None => self.groups.entry(group.to_string()).or_insert(ViewGroup {
                next_end,
                tags: tags(),
                times: VecDeque::new(),
                points: EncodedPoints::default(),
            }),
        };
        let mut out = None;
        if time >= w.next_end {
            let end = w.next_end;
            let start = end.saturating_sub(self.period);
            let stale = w.times.iter().take_while(|&&t| t < start).count();
            w.times.drain(..stale);
            w.points.drain_front(stale);
            // Points no later window needs (before the next one's start).
            let keep_from = next_end.saturating_sub(self.period);
            let rows = if w.times.iter().all(|&t| t < end && t < keep_from) {
                // All of the buffer, needed by no later window (tumbling
                // windows): moved, not copied.
                w.times.clear();
                std::mem::take(&mut w.points)
            } else {
                let mut rows = EncodedPoints::with_capacity(w.times.len());
                for (i, &t) in w.times.iter().enumerate() {
                    if t < end
                        && let Some(v) = w.points.get(i)
                    {
                        rows.push(v);
                    }
                }
                let last_use = w.times.iter().take_while(|&&t| t < keep_from).count();
                w.times.drain(..last_use);
                w.points.drain_front(last_use);
                rows
            };
            let by_name = p.by_name();
            let name = p.name();
            out = Some(Batch {
                begin: agent::BeginBatch {
                    name: name.to_string(),
                    group: group.to_string(),
                    tags: w.tags.clone(),
                    size: rows.len() as i64,
                    by_name,
                },
                end: agent::EndBatch {
                    name: name.to_string(),
                    group: group.to_string(),
                    tmax: end,
                    tags: w.tags.clone(),
                    by_name,
                },
                encoded: rows,
                ..Default::default()
            });
            w.next_end = next_end;
        }
        w.times.push_back(time);
        w.points.push(p);
        out
    }

    /// As [`Windower::forget`].
    pub fn forget(&mut self, group: &str) {
        self.groups.remove(group);
    }

    /// Whether `group` has an open window.
    pub fn holds(&self, group: &str) -> bool {
        self.groups.contains_key(group)
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

    const MIN: i64 = 60_000_000_000;

    fn one(t: i64) -> agent::Point {
        agent::Point { name: "m".into(), time: t, ..Default::default() }
    }

    /// Feeds `times` (ungrouped) and returns each window as (tmax, point times).
    fn windows(period: i64, every: i64, times: &[i64]) -> Vec<(i64, Vec<i64>)> {
        let mut w = Windower::new(period, every, &[]);
        times
            .iter()
            .filter_map(|&t| w.push(one(t)))
            .map(|b| (b.end.tmax, b.points.iter().map(|p| p.time).collect()))
            .collect()
    }

    fn minutes(r: std::ops::Range<i64>) -> Vec<i64> {
        r.map(|m| m * MIN).collect()
    }

    /// Issue 9 item 5: the old windower stepped the next end by `every` and
    /// closed one overdue (mostly empty) window per arriving point after a gap.
    #[test]
    fn a_gap_of_an_hour_restarts_windows_from_the_data() {
        let mut times = minutes(0..60);
        times.extend(minutes(120..180));
        let got = windows(5 * MIN, 5 * MIN, &times);
        let ends: Vec<i64> = got.iter().map(|(e, _)| e / MIN).collect();
        // Before the gap: 5, 10, …, 55. The first point after it (120) closes
        // the window ending 60 (55..59); the next ends at 120 + 5.
        let mut want: Vec<i64> = (1..=12).map(|k| 5 * k).collect();
        want.extend((25..=35).map(|k| 5 * k));
        assert_eq!(ends, want);
        for (end, pts) in &got {
            assert_eq!(*pts, minutes(end / MIN - 5..end / MIN), "window ending {}", end / MIN);
        }
    }

    /// NAB's traffic files: 5-minute data, `every` = the sampling interval.
    /// Stepping by `every` never caught up after a gap there (one point, one
    /// window); Kapacitor's windows follow the data again at once.
    #[test]
    fn every_equal_to_the_sampling_step_keeps_up_after_a_gap() {
        let step = 5 * MIN;
        let mut times: Vec<i64> = (0..20).map(|k| k * step).collect();
        times.extend((32..52).map(|k| k * step));
        let got = windows(30 * MIN, step, &times);
        // Each window ends one step after the point that closed the one
        // before: ends 1..=19 (× step), then 20 (closed by the first point
        // after the gap), then 33..=51, never an overdue end.
        let ends: Vec<i64> = got.iter().map(|(e, _)| e / step).collect();
        let mut want: Vec<i64> = (1..=20).collect();
        want.extend(33..=51);
        assert_eq!(ends, want);
        // The window closed by the first point after the gap holds the last
        // 30 minutes before it; the next holds only that first point.
        assert_eq!(got[19].1, (14..20).map(|k| k * step).collect::<Vec<_>>());
        assert_eq!(got[20].1, [32 * step]);
        for (end, pts) in &got[20..] {
            assert_eq!(pts.last().copied(), Some(end - step));
            assert!(pts.iter().all(|&t| t >= 32 * step && t >= end - 30 * MIN));
        }
    }

    /// `|window().period(30m).every(5m)` on 1-minute data: the first window
    /// holds only the first 5 minutes, later ones grow to 30 minutes.
    #[test]
    fn sliding_windows_first_window_holds_only_its_first_every() {
        let got = windows(30 * MIN, 5 * MIN, &minutes(0..121));
        let ends: Vec<i64> = got.iter().map(|(e, _)| e / MIN).collect();
        assert_eq!(ends, (1..=24).map(|k| 5 * k).collect::<Vec<_>>());
        assert_eq!(got[0].1, minutes(0..5));
        for (end, pts) in &got {
            let e = end / MIN;
            assert_eq!(*pts, minutes((e - 30).max(0)..e), "window ending {e}");
        }
    }

    #[test]
    fn sliding_windows_after_a_gap_keep_the_period_and_restart_from_the_data() {
        let mut times = minutes(0..60);
        times.extend(minutes(120..180));
        let got = windows(30 * MIN, 5 * MIN, &times);
        let i = got.iter().position(|(e, _)| *e == 60 * MIN).expect("window ending at 60");
        assert_eq!(got[i].1, minutes(30..60));
        assert_eq!(got[i + 1].0, 125 * MIN);
        assert_eq!(got[i + 1].1, minutes(120..125));
        assert_eq!(got[i + 2].0, 130 * MIN);
        assert_eq!(got[i + 2].1, minutes(120..130));
    }

    /// Timestamps a little late each time: the ends follow the points.
    #[test]
    fn jittered_timestamps_move_the_window_ends() {
        let s = 1_000_000_000;
        let got = windows(60 * s, 60 * s, &[0, 61 * s, 122 * s, 183 * s, 244 * s]);
        let ends: Vec<i64> = got.iter().map(|(e, _)| e / s).collect();
        assert_eq!(ends, [60, 121, 182, 243]);
        let pts: Vec<Vec<i64>> =
            got.iter().map(|(_, p)| p.iter().map(|t| t / s).collect()).collect();
        assert_eq!(pts, [vec![0], vec![61], vec![122], vec![183]]);
    }

    /// `.align()`: ends on multiples of every, from the first point on and
    /// after a gap (Kapacitor truncates `t + every`).
    #[test]
    fn aligned_windows_end_on_multiples_of_every() {
        let mut w = Windower::new(5 * MIN, 5 * MIN, &[]).align(true);
        let mut times: Vec<i64> = (7..33).map(|m| m * MIN + 20_000_000_000).collect();
        times.extend((61..70).map(|m| m * MIN));
        let got: Vec<(i64, Vec<i64>)> = times
            .iter()
            .filter_map(|&t| w.push(one(t)))
            .map(|b| (b.end.tmax / MIN, b.points.iter().map(|p| p.time / MIN).collect()))
            .collect();
        // First point 7:20 → first end 10; then 15, 20, 25, 30; the point
        // at 61 (after the gap) closes the window ending 35 (30:20–32:20)
        // and the next ends at (61 + 5) truncated = 65.
        let ends: Vec<i64> = got.iter().map(|(e, _)| *e).collect();
        assert_eq!(ends, [10, 15, 20, 25, 30, 35, 65]);
        assert_eq!(got[0].1, [7, 8, 9]);
        assert_eq!(got[5].1, [30, 31, 32]);
        assert_eq!(got[6].1, [61, 62, 63, 64]);
        // Unaligned, the ends follow the first point: 12:20, 17:20, …
        let mut u = Windower::new(5 * MIN, 5 * MIN, &[]);
        let first = times.iter().find_map(|&t| u.push(one(t))).map(|b| b.end.tmax);
        assert_eq!(first, Some(12 * MIN + 20_000_000_000));
    }

    /// A point exactly at a window's end belongs to the next window.
    #[test]
    fn points_at_the_end_go_to_the_next_window() {
        let got = windows(10, 10, &[0, 5, 10, 10, 15, 20]);
        assert_eq!(got, [(10, vec![0, 5]), (20, vec![10, 10, 15])]);
    }

    /// One group's gap changes neither the other group's windows nor its own
    /// restart.
    #[test]
    fn a_gap_in_one_group_leaves_the_other_alone() {
        let mut w = Windower::new(30 * MIN, 5 * MIN, &["printer"]);
        let mut alone = Windower::new(30 * MIN, 5 * MIN, &["printer"]);
        let mut got: Vec<Batch> = Vec::new();
        let mut want_a: Vec<Batch> = Vec::new();
        for m in 0..180 {
            got.extend(w.push(pt(m * MIN, "a")));
            want_a.extend(alone.push(pt(m * MIN, "a")));
            if !(60..120).contains(&m) {
                got.extend(w.push(pt(m * MIN, "b")));
            }
        }
        let summary = |bs: &[&Batch]| -> Vec<(i64, Vec<i64>)> {
            bs.iter().map(|b| (b.end.tmax, b.points.iter().map(|p| p.time).collect())).collect()
        };
        let a: Vec<&Batch> = got.iter().filter(|b| b.end.group == "printer=a").collect();
        let b: Vec<&Batch> = got.iter().filter(|b| b.end.group == "printer=b").collect();
        assert_eq!(summary(&a), summary(&want_a.iter().collect::<Vec<_>>()));
        let b_ends: Vec<i64> = b.iter().map(|b| b.end.tmax / MIN).collect();
        let mut want: Vec<i64> = (1..=12).map(|k| 5 * k).collect();
        want.extend((25..=35).map(|k| 5 * k));
        assert_eq!(b_ends, want);
        assert!(b.iter().all(|x| x.points.iter().all(|p| p.group == "printer=b")));
    }

    /// The windows of points kept as bytes equal [`Windower::push_grouped`]'s,
    /// sliding, tumbling, aligned, with gaps and two groups.
    #[test]
    fn view_windows_equal_decoded_windows() {
        for (period, every, align) in
            [(5 * MIN, 5 * MIN, false), (30 * MIN, 5 * MIN, false), (7 * MIN, 3 * MIN, true)]
        {
            let mut plain = Windower::new(period, every, &[]).align(align);
            let mut view = ViewWindower::new(period, every, align);
            let (mut want, mut got) = (Vec::new(), Vec::new());
            for m in (0..90).chain(150..200) {
                for printer in ["a", "b"] {
                    if printer == "b" && (40..60).contains(&m) {
                        continue;
                    }
                    let mut p = pt(m * MIN + 7, printer);
                    p.group = format!("printer={printer}");
                    p.dimensions = vec!["printer".into()];
                    let mut enc = EncodedPoints::default();
                    enc.push_point(&p);
                    let tags = HashMap::from([("printer".to_string(), printer.to_string())]);
                    let group = p.group.clone();
                    let v = enc.get(0).expect("one point");
                    got.extend(view.push(&group, p.time, || tags.clone(), v));
                    let t = if plain.holds(&group) { HashMap::new() } else { tags.clone() };
                    want.extend(plain.push_grouped(&group, t, false, p));
                }
            }
            let summary = |b: &Batch| {
                let rows: Vec<(i64, Option<f64>)> = b
                    .points
                    .iter()
                    .cloned()
                    .chain(b.encoded.iter().map(|v| v.to_point()))
                    .map(|p| (p.time, p.fields_double.get("hotend").copied()))
                    .collect();
                (b.begin.clone(), b.end.clone(), rows)
            };
            assert!(!want.is_empty());
            assert_eq!(
                got.iter().map(summary).collect::<Vec<_>>(),
                want.iter().map(summary).collect::<Vec<_>>(),
                "period {period} every {every} align {align}"
            );
        }
    }
}
