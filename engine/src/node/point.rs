//! A verdict → the point a node emits for it, encoded straight into the
//! `Response{point}` frame Kapacitor reads ([`VerdictPoints`]), or, with
//! `.passThrough()`, verdict fields added to the input points ([`annotate`]).
//!
//! The point carries the batch's tags plus the field tag, all listed in
//! `dimensions`, so Kapacitor (which recomputes a point's group from
//! `dimensions` and tags) keeps one group, and one alert state, per field.
//!
//! A verdict point is never built as an `agent::Point`: its frame holds the
//! bytes prost writes for that point (`tickwatch_proto::frames`), with the
//! map entries in a fixed order: tags sorted by key (the order of
//! `dimensions`), `pvalue` then the detector's statistics in the order it
//! gave them. Prost wrote map entries in its `HashMap`'s iteration order,
//! which varied from run to run; a protobuf map has no order, and Kapacitor
//! decodes both into the same point.

use std::collections::HashMap;

use tickwatch_plugin_api::Verdict;
use tickwatch_proto::{PointField, PointFields, PointFrames, PointWriter, agent};

use crate::kapacitor::{Batch, group_id, write_group_id};

/// Why a verdict cannot become a point.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pvalue {0} is not a probability")]
pub struct BadPvalue(pub f64);

/// Statistics beyond which duplicate names are found through a hash map
/// rather than by looking through those kept so far.
const FEW_STATS: usize = 16;

/// The verdict points of one batch: what they share (name, time, the
/// batch's tags sorted with the field tag among them) worked out once, and
/// the buffers each point is put together in.
pub struct VerdictPoints<'a> {
    name: &'a str,
    time: i64,
    by_name: bool,
    /// The batch's tags and the field tag, sorted by key: the point's tags,
    /// and their keys its `dimensions`. The field tag's value is the field
    /// of the point being encoded.
    tags: Vec<(&'a str, &'a str)>,
    /// Where the field tag is in `tags`.
    field_at: usize,
    /// The group id of the point being encoded.
    group: String,
    /// The statistics kept for the point being encoded.
    stats: Vec<(&'a str, f64)>,
}

impl<'a> VerdictPoints<'a> {
    /// The verdict points of `batch`; `field_tag` must not be one of the
    /// batch's tags (the node refuses such batches before scoring; were it
    /// one, the field would replace its value).
    pub fn new(batch: &'a Batch, field_tag: &'a str) -> VerdictPoints<'a> {
        let batch_tags = batch.tags();
        let mut tags: Vec<(&str, &str)> = Vec::with_capacity(batch_tags.len() + 1);
        tags.extend(
            batch_tags
                .iter()
                .filter(|(k, _)| *k != field_tag)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        tags.push((field_tag, ""));
        // Distinct keys: an unstable sort orders them as a stable one.
        tags.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let field_at = tags.iter().position(|(k, _)| *k == field_tag).unwrap_or(0);
        VerdictPoints {
            name: batch.name(),
            time: batch.end.tmax,
            by_name: batch.end.by_name,
            tags,
            field_at,
            group: String::new(),
            stats: Vec::new(),
        }
    }

    /// Appends the frame of the point for `field`'s verdict `v` to `out`.
    pub fn push(
        &mut self,
        field: &'a str,
        v: &'a Verdict,
        out: &mut PointFrames,
    ) -> Result<(), BadPvalue> {
        if !(v.pvalue.is_finite() && (0.0..=1.0).contains(&v.pvalue)) {
            return Err(BadPvalue(v.pvalue));
        }
        if let Some(slot) = self.tags.get_mut(self.field_at) {
            slot.1 = field;
        }
        write_group_id(&mut self.group, self.name, self.by_name, self.tags.iter().copied());
        self.keep_stats(v);
        out.push(&VerdictFields { shared: self, pvalue: v.pvalue, anomalous: v.anomalous });
        Ok(())
    }

    /// The statistics of `v` a point carries, in `stats`: finite ones
    /// (InfluxDB refuses NaN and infinities; a plugin bug must not break
    /// writes) other than `pvalue`, each name once with its last value (as
    /// inserting them into a map kept them), where its name first came.
    fn keep_stats(&mut self, v: &'a Verdict) {
        self.stats.clear();
        let kept = v.stats.iter().filter(|(k, x)| x.is_finite() && k != "pvalue");
        if v.stats.len() <= FEW_STATS {
            for (k, x) in kept {
                match self.stats.iter_mut().find(|(name, _)| *name == k) {
                    Some(slot) => slot.1 = *x,
                    None => self.stats.push((k, *x)),
                }
            }
            return;
        }
        let mut at: HashMap<&str, usize> = HashMap::with_capacity(v.stats.len());
        for (k, x) in kept {
            match at.get(k.as_str()) {
                Some(&i) => self.stats[i].1 = *x,
                None => {
                    at.insert(k, self.stats.len());
                    self.stats.push((k, *x));
                }
            }
        }
    }
}

/// One verdict point's fields, in the order prost writes them.
struct VerdictFields<'p, 'a> {
    shared: &'p VerdictPoints<'a>,
    pvalue: f64,
    anomalous: bool,
}

impl PointFields for VerdictFields<'_, '_> {
    fn write_fields(&self, w: &mut PointWriter<'_>) {
        let s = self.shared;
        w.put(PointField::Time(s.time));
        w.put(PointField::Name(s.name));
        w.put(PointField::Group(&s.group));
        s.tags.iter().for_each(|(k, _)| w.put(PointField::Dimension(k)));
        s.tags.iter().for_each(|(k, v)| w.put(PointField::Tag(k, v)));
        w.put(PointField::Double("pvalue", self.pvalue));
        s.stats.iter().for_each(|(k, x)| w.put(PointField::Double(k, *x)));
        w.put(PointField::ByName(s.by_name));
        w.put(PointField::Bool("anomalous", self.anomalous));
    }
}

/// The names of the fields `.passThrough()` adds for one tracked field:
/// `anomalous` and `pvalue` when the node tracks one field, else prefixed
/// with the field's name (`hotend_anomalous`, `hotend_pvalue`).
pub fn pass_names(field: &str, tracked: usize) -> (String, String) {
    if tracked == 1 {
        ("anomalous".to_string(), "pvalue".to_string())
    } else {
        (format!("{field}_anomalous"), format!("{field}_pvalue"))
    }
}

/// Adds the verdicts (tracked field's index, verdict) to an input point,
/// under the names [`pass_names`] gave each field (`names`, by index).
/// Nothing else of the point changes. Returns whether a verdict field
/// replaced a field the point already had (the caller warns once).
pub fn annotate(
    p: &mut agent::Point,
    names: &[(String, String)],
    verdicts: &[(usize, Verdict)],
) -> bool {
    let mut replaced = false;
    for (fi, v) in verdicts {
        let Some((anomalous, pvalue)) = names.get(*fi) else { continue };
        replaced |= p.fields_bool.insert(anomalous.clone(), v.anomalous).is_some();
        replaced |= p.fields_double.insert(pvalue.clone(), v.pvalue).is_some();
        replaced |= p.fields_int.contains_key(anomalous) || p.fields_int.contains_key(pvalue);
    }
    replaced
}

/// A batch point as a stream point (`.passThrough()` on batch edges, whose
/// UDF provides a stream): the batch's name, its group-by tags as
/// `dimensions` (added to the point's tags where missing), the point's own
/// time, tags and fields.
pub fn batch_point_as_stream(batch: &Batch, p: &agent::Point) -> agent::Point {
    let name = batch.name();
    let batch_tags = batch.tags();
    let mut tags = p.tags.clone();
    for (k, v) in batch_tags {
        tags.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut dimensions: Vec<String> = batch_tags.keys().cloned().collect();
    dimensions.sort();
    let by_name = batch.end.by_name || batch.begin.by_name;
    agent::Point {
        time: p.time,
        name: name.to_string(),
        database: p.database.clone(),
        retention_policy: p.retention_policy.clone(),
        group: group_id(name, by_name, &dimensions, &tags),
        dimensions,
        tags,
        fields_double: p.fields_double.clone(),
        fields_int: p.fields_int.clone(),
        fields_string: p.fields_string.clone(),
        fields_bool: p.fields_bool.clone(),
        by_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The point as the node built it before its frames were encoded
    /// straight from the verdict (round 5): the reference the frames must
    /// decode to.
    fn reference_point(
        batch: &Batch,
        field_tag: &str,
        field: &str,
        v: Verdict,
    ) -> Result<agent::Point, BadPvalue> {
        if !(v.pvalue.is_finite() && (0.0..=1.0).contains(&v.pvalue)) {
            return Err(BadPvalue(v.pvalue));
        }
        let name = batch.name();
        let batch_tags = batch.tags();
        let mut tags = batch_tags.clone();
        tags.insert(field_tag.to_string(), field.to_string());
        let mut dimensions: Vec<String> = batch_tags.keys().cloned().collect();
        dimensions.push(field_tag.to_string());
        dimensions.sort_unstable();
        let by_name = batch.end.by_name;
        let group = group_id(name, by_name, &dimensions, &tags);
        let mut fields_double = HashMap::from([("pvalue".to_string(), v.pvalue)]);
        for (k, x) in v.stats {
            if x.is_finite() && k != "pvalue" {
                fields_double.insert(k, x);
            }
        }
        Ok(agent::Point {
            time: batch.end.tmax,
            name: name.to_string(),
            group,
            dimensions,
            tags,
            fields_double,
            fields_bool: HashMap::from([("anomalous".to_string(), v.anomalous)]),
            by_name,
            ..Default::default()
        })
    }

    /// The frame's bytes and the point prost reads back from them.
    fn encoded(
        batch: &Batch,
        field_tag: &str,
        field: &str,
        v: &Verdict,
    ) -> (Vec<u8>, agent::Point) {
        let mut out = PointFrames::default();
        VerdictPoints::new(batch, field_tag).push(field, v, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        let mut back = out.decode().unwrap();
        assert_eq!(back.len(), 1);
        (out.as_bytes().to_vec(), back.remove(0))
    }

    fn point(batch: &Batch, field_tag: &str, field: &str, v: &Verdict) -> agent::Point {
        encoded(batch, field_tag, field, v).1
    }

    fn batch(by_name: bool) -> Batch {
        let tags = HashMap::from([("printer".to_string(), "a".to_string())]);
        Batch {
            begin: agent::BeginBatch::default(),
            points: Vec::new(),
            end: agent::EndBatch {
                name: "temperatures".into(),
                group: "printer=a".into(),
                tmax: 300,
                tags,
                by_name,
            },
            ..Default::default()
        }
    }

    fn verdict(p: f64) -> Verdict {
        Verdict {
            pvalue: p,
            anomalous: p < 0.01,
            stats: vec![("t".into(), 2.5), ("nan".into(), f64::NAN), ("pvalue".into(), 9.0)],
        }
    }

    #[test]
    fn carries_the_field_as_a_dimension() {
        let p = point(&batch(false), "field", "hotend", &verdict(0.001));
        assert_eq!(p.time, 300);
        assert_eq!(p.name, "temperatures");
        assert_eq!(p.dimensions, ["field", "printer"]);
        assert_eq!(p.group, "field=hotend,printer=a");
        assert_eq!(p.tags.get("field").map(String::as_str), Some("hotend"));
        assert_eq!(p.tags.get("printer").map(String::as_str), Some("a"));
        assert_eq!(p.fields_bool.get("anomalous"), Some(&true));
        // pvalue is the verdict's; non-finite statistics are dropped.
        assert_eq!(p.fields_double.get("pvalue"), Some(&0.001));
        assert_eq!(p.fields_double.get("t"), Some(&2.5));
        assert!(!p.fields_double.contains_key("nan"));
        let by_name = point(&batch(true), "metric", "bed", &verdict(0.5));
        assert_eq!(by_name.group, "temperatures\nmetric=bed,printer=a");
        assert!(by_name.by_name);
    }

    #[test]
    fn the_verdict_group_is_the_group_id_of_the_point() {
        for (tags, by_name) in [
            (vec![], false),
            (vec![], true),
            (vec![("printer", "a")], false),
            (vec![("zone", ""), ("printer", "a"), ("a", "x=y")], true),
        ] {
            let mut b = batch(by_name);
            b.end.tags = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let p = point(&b, "field", "hotend", &verdict(0.5));
            assert_eq!(p.group, group_id(&p.name, by_name, &p.dimensions, &p.tags), "{tags:?}");
            assert!(p.group.contains("field=hotend"));
        }
    }

    #[test]
    fn refuses_a_pvalue_outside_zero_one() {
        for bad in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
            let (b, v) = (batch(false), verdict(bad));
            let mut out = PointFrames::default();
            let pushed = VerdictPoints::new(&b, "field").push("x", &v, &mut out);
            assert_eq!(pushed.map_err(|e| e.0.to_bits()), Err(bad.to_bits()));
            assert!(out.is_empty(), "{bad}");
        }
    }

    #[test]
    fn several_fields_of_one_batch_each_get_their_own_point() {
        let b = batch(false);
        let (a, c) = (verdict(0.5), verdict(0.001));
        let mut out = PointFrames::default();
        let mut points = VerdictPoints::new(&b, "field");
        points.push("hotend", &a, &mut out).unwrap();
        points.push("bed", &c, &mut out).unwrap();
        let want = [
            reference_point(&b, "field", "hotend", a.clone()).unwrap(),
            reference_point(&b, "field", "bed", c.clone()).unwrap(),
        ];
        assert_eq!(out.decode().unwrap(), want);
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        /// A short string from a small alphabet (names repeat), sometimes
        /// empty or multi-byte, sometimes long enough for a two-byte length.
        fn text(&mut self) -> String {
            match self.below(10) {
                0 => String::new(),
                1 => "ü".repeat(self.below(150) as usize),
                _ => (0..1 + self.below(5))
                    .map(|_| ['a', 'b', 'z', '=', ',', ' ', 'é', '\n'][self.below(8) as usize])
                    .collect(),
            }
        }

        fn double(&mut self) -> f64 {
            match self.below(9) {
                0 => 0.0,
                1 => -0.0,
                2 => f64::NAN,
                3 => f64::INFINITY,
                4 => f64::MIN_POSITIVE / 4.0,
                _ => (self.below(2_000_000) as f64 - 1e6) / 7.0,
            }
        }

        fn verdict(&mut self) -> Verdict {
            let pvalue = match self.below(5) {
                0 => 0.0,
                1 => 1.0,
                _ => self.below(1_000_001) as f64 / 1e6,
            };
            let n = match self.below(10) {
                0 => FEW_STATS as u64 + 1 + self.below(40),
                _ => self.below(6),
            };
            let stats = (0..n)
                .map(|_| {
                    let name = if self.below(8) == 0 { "pvalue".to_string() } else { self.text() };
                    (name, self.double())
                })
                .collect();
            Verdict { pvalue, anomalous: self.below(2) == 0, stats }
        }

        /// A batch: tags on EndBatch, BeginBatch or both, a name on either.
        fn batch(&mut self, field_tag: &str) -> Batch {
            let tags: HashMap<String, String> = (0..self.below(5))
                .map(|_| (self.text(), self.text()))
                .filter(|(k, _)| k != field_tag)
                .collect();
            let name = self.text();
            let mut b = Batch::default();
            match self.below(3) {
                0 => b.begin.tags = tags,
                1 => b.end.tags = tags,
                _ => {
                    b.begin.tags = HashMap::from([("ignored".to_string(), "x".to_string())]);
                    b.end.tags = tags;
                }
            }
            if self.below(2) == 0 {
                b.begin.name = name
            } else {
                b.end.name = name
            }
            b.end.tmax = match self.below(4) {
                0 => 0,
                1 => -(self.below(1 << 62) as i64),
                _ => self.below(1 << 62) as i64,
            };
            b.end.by_name = self.below(2) == 0;
            b.begin.by_name = self.below(2) == 0;
            b
        }
    }

    /// A `Point` encoding's top-level records (field number, bytes), with
    /// the entries of each map sorted: two encodings of one point that
    /// differ only in map order give the same records.
    fn records(mut b: &[u8]) -> Vec<(u64, Vec<u8>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut v = 0;
            for i in 0.. {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << (7 * i);
                if byte < 0x80 {
                    break;
                }
            }
            v
        }
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        while !b.is_empty() {
            let start = b;
            let key = varint(&mut b);
            match key & 7 {
                0 => {
                    varint(&mut b);
                }
                1 => b = &b[8..],
                2 => {
                    let len = varint(&mut b) as usize;
                    b = &b[len..];
                }
                w => panic!("wire type {w}"),
            }
            let record = start[..start.len() - b.len()].to_vec();
            // prost writes fields in field-number order.
            assert!(
                out.last().is_none_or(|(n, _)| *n <= key >> 3),
                "field {} out of order",
                key >> 3
            );
            out.push((key >> 3, record));
        }
        let map = |n: u64| [7, 8, 9, 10, 12].contains(&n);
        let mut i = 0;
        while i < out.len() {
            let n = out[i].0;
            let j = i + out[i..].iter().take_while(|(m, _)| *m == n).count();
            if map(n) {
                out[i..j].sort();
            }
            i = j;
        }
        out
    }

    /// The frame's `Point` body: the frame without its length prefix, the
    /// `Response.point` key and the point's length.
    fn body(frame: &[u8]) -> &[u8] {
        fn skip_varint(b: &[u8]) -> &[u8] {
            &b[b.iter().position(|x| *x < 0x80).unwrap() + 1..]
        }
        let b = skip_varint(frame);
        assert_eq!(b[0], 17 << 3 | 2);
        skip_varint(&b[2..])
    }

    #[test]
    fn frames_decode_to_the_points_built_before_and_hold_prosts_bytes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut seen_big_stats = 0;
        for case in 0..3000 {
            let field_tag = if rng.below(4) == 0 { rng.text() } else { "field".to_string() };
            let b = rng.batch(&field_tag);
            let fields: Vec<String> = (0..1 + rng.below(4)).map(|_| rng.text()).collect();
            let verdicts: Vec<Verdict> = fields.iter().map(|_| rng.verdict()).collect();
            seen_big_stats += verdicts.iter().filter(|v| v.stats.len() > FEW_STATS).count();
            let mut out = PointFrames::default();
            let mut points = VerdictPoints::new(&b, &field_tag);
            let mut want = Vec::new();
            for (f, v) in fields.iter().zip(&verdicts) {
                points.push(f, v, &mut out).unwrap();
                want.push(reference_point(&b, &field_tag, f, v.clone()).unwrap());
            }
            // What Kapacitor reads: the same points (-0.0 reads back as 0.0,
            // which compares equal, as prost's own encoding of -0.0 did).
            let got = out.decode().unwrap();
            assert_eq!(got, want, "case {case}");
            // And the same bytes prost writes, but for the order of map entries.
            let mut rest = out.as_bytes();
            for w in &want {
                let one = {
                    let mut f = PointFrames::default();
                    f.push_point(w);
                    f.as_bytes().to_vec()
                };
                let frame_len = {
                    let mut f = PointFrames::default();
                    f.push(w);
                    f.as_bytes().len()
                };
                assert_eq!(frame_len, one.len());
                let (mine, next) = rest.split_at(one.len());
                rest = next;
                assert_eq!(records(body(mine)), records(body(&one)), "case {case}");
            }
            assert!(rest.is_empty());
        }
        assert!(seen_big_stats > 100, "{seen_big_stats}");
    }

    #[test]
    fn a_repeated_statistic_keeps_its_last_finite_value_once() {
        for pad in [0, FEW_STATS] {
            let mut stats: Vec<(String, f64)> = (0..pad).map(|i| (format!("s{i}"), 1.0)).collect();
            stats.extend([
                ("t".to_string(), 1.0),
                ("u".to_string(), 2.0),
                ("t".to_string(), 3.0),
                ("t".to_string(), f64::NAN),
            ]);
            let v = Verdict { pvalue: 0.5, anomalous: false, stats };
            let (bytes, p) = encoded(&batch(false), "field", "x", &v);
            assert_eq!(p.fields_double.get("t"), Some(&3.0));
            assert_eq!(p.fields_double.len(), pad + 3);
            // Each name is written once: one entry (field 8) keyed "t".
            let t_entries = records(body(&bytes))
                .iter()
                .filter(|(n, r)| *n == 8 && r.get(2..5) == Some(&[0x0a, 1, b't'][..]))
                .count();
            assert_eq!(t_entries, 1);
        }
    }
}
