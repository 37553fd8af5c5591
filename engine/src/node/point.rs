//! A verdict → the point a node emits for it, or, with `.passThrough()`,
//! verdict fields added to the input points ([`annotate`]).
//!
//! The point carries the batch's tags plus the field tag, all listed in
//! `dimensions`, so Kapacitor (which recomputes a point's group from
//! `dimensions` and tags) keeps one group, and one alert state, per field.

use std::collections::HashMap;

use tickwatch_plugin_api::Verdict;
use tickwatch_proto::agent;

use crate::kapacitor::{Batch, group_id};

/// Why a verdict cannot become a point.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pvalue {0} is not a probability")]
pub struct BadPvalue(pub f64);

/// The point for `field`'s verdict `v` on `batch`; `field_tag` must not be
/// one of the batch's tags (the node refuses such batches before scoring).
pub fn verdict_point(
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
    let mut dimensions = Vec::with_capacity(batch_tags.len() + 1);
    dimensions.extend(batch_tags.keys().cloned());
    dimensions.push(field_tag.to_string());
    // Distinct keys: an unstable sort orders them as a stable one.
    dimensions.sort_unstable();
    let mut fields_bool = HashMap::with_capacity(1);
    fields_bool.insert("anomalous".to_string(), v.anomalous);
    let by_name = batch.end.by_name;
    let group = verdict_group(name, by_name, &dimensions, (field_tag, field), batch_tags);
    let mut fields_double = HashMap::with_capacity(v.stats.len() + 1);
    fields_double.insert("pvalue".to_string(), v.pvalue);
    for (k, x) in v.stats {
        // InfluxDB refuses NaN and infinities; a plugin bug must not break writes.
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
        fields_bool,
        by_name,
        ..Default::default()
    })
}

/// [`group_id`] of a verdict point, whose tags are the batch's plus
/// `field_tag` (the pair): the same string, sized once and without
/// looking the field tag up in a map of the point's tags.
fn verdict_group(
    name: &str,
    by_name: bool,
    dims: &[String],
    (field_tag, field): (&str, &str),
    batch_tags: &HashMap<String, String>,
) -> String {
    crate::kapacitor::group_id_of(name, by_name, dims, |d| {
        if d == field_tag { field } else { batch_tags.get(d).map_or("", String::as_str) }
    })
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

/// Adds the verdicts (name pairs from [`pass_names`], verdict) to an input
/// point. Nothing else of the point changes. Returns whether a verdict
/// field replaced a field the point already had (the caller warns once).
pub fn annotate(p: &mut agent::Point, verdicts: &[((String, String), Verdict)]) -> bool {
    let mut replaced = false;
    for ((anomalous, pvalue), v) in verdicts {
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
        let p = verdict_point(&batch(false), "field", "hotend", verdict(0.001)).unwrap();
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
        let by_name = verdict_point(&batch(true), "metric", "bed", verdict(0.5)).unwrap();
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
            let p = verdict_point(&b, "field", "hotend", verdict(0.5)).unwrap();
            assert_eq!(p.group, group_id(&p.name, by_name, &p.dimensions, &p.tags), "{tags:?}");
            assert!(p.group.contains("field=hotend"));
        }
    }

    #[test]
    fn refuses_a_pvalue_outside_zero_one() {
        for bad in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
            assert!(verdict_point(&batch(false), "field", "x", verdict(bad)).is_err(), "{bad}");
        }
    }
}
