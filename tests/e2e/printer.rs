//! The guide's printer day through tickwatch: faults found, fields and
//! groups independent, snapshot/restore continuing exactly.

use tickwatch_engine::scenario::FAULTS;

use crate::support::{self, Verdict, o, second, verdicts};

const FIELDS: [&str; 3] = ["hotend", "bed", "air"];

fn fault_window(v: &Verdict) -> bool {
    FAULTS
        .iter()
        .any(|f| f.field == v.field && second(v.time) > f.start_s && second(v.time) - 300 < f.end_s)
}

#[test]
fn one_node_flags_each_fault_of_the_day() {
    let batches = support::day_batches(&[("", 1)]);
    let vs = verdicts(&support::run_all(support::node(&FIELDS, 3600, 0.001), &batches));
    // 288 windows; the first seeds each field's history.
    assert_eq!(vs.len(), 3 * (batches.len() - 1));
    let flagged = |field: &str| -> Vec<i64> {
        vs.iter().filter(|v| v.field == field && v.anomalous).map(|v| second(v.time)).collect()
    };
    // The window [1:00, 1:05) holds the whole hotend fault.
    assert!(flagged("hotend").contains(&3900), "hotend: {:?}", flagged("hotend"));
    assert!(flagged("bed").iter().any(|&s| s > 28800 && s <= 29700), "bed: {:?}", flagged("bed"));
    assert!(flagged("air").iter().any(|&s| s > 43200 && s <= 45000), "air: {:?}", flagged("air"));
    // The guide expects about one false alarm a day at alpha = 0.001.
    let false_alarms: Vec<_> = vs.iter().filter(|v| v.anomalous && !fault_window(v)).collect();
    assert!(false_alarms.len() <= 4, "false alarms: {false_alarms:?}");
    assert!(vs.iter().all(|v| v.pvalue.is_finite() && v.t.is_finite()));
    assert!(vs.iter().all(|v| v.anomalous == (v.pvalue < 0.001)));
}

#[test]
fn three_fields_in_one_node_equal_three_single_field_nodes() {
    let batches = support::day_batches(&[("", 2)]);
    let together = verdicts(&support::run_all(support::node(&FIELDS, 3600, 0.001), &batches));
    for field in FIELDS {
        let alone = verdicts(&support::run_all(support::node(&[field], 3600, 0.001), &batches));
        let mine: Vec<_> = together.iter().filter(|v| v.field == field).cloned().collect();
        assert_eq!(mine, alone, "field {field}");
    }
}

#[test]
fn two_grouped_printers_equal_each_printer_alone() {
    let both = support::day_batches(&[("a", 11), ("b", 12)]);
    let points = support::run_all(support::node(&FIELDS, 3600, 0.001), &both);
    // Each point carries its group and field so Kapacitor keeps one alert per pair.
    for p in &points {
        assert_eq!(p.dimensions, ["field", "printer"]);
        assert_eq!(p.name, "temperatures");
        assert_eq!(p.group, format!("field={},printer={}", p.tags["field"], p.tags["printer"]));
    }
    let both = verdicts(&points);
    for (printer, seed) in [("a", 11), ("b", 12)] {
        let alone_batches = support::day_batches(&[(printer, seed)]);
        let alone =
            verdicts(&support::run_all(support::node(&FIELDS, 3600, 0.001), &alone_batches));
        let mine: Vec<_> = both.iter().filter(|v| v.group == printer).cloned().collect();
        assert_eq!(mine, alone, "printer {printer}");
        assert!(!alone.is_empty());
    }
}

#[test]
fn snapshot_at_midday_restores_into_a_fresh_process_identically() {
    let batches = support::day_batches(&[("a", 21), ("b", 22)]);
    let whole = verdicts(&support::run_all(support::node(&FIELDS, 3600, 0.001), &batches));

    let half = batches.len() / 2;
    let mut first = support::node(&FIELDS, 3600, 0.001);
    for b in &batches[..half] {
        first.send_batch(b).unwrap();
    }
    let snapshot = first.snapshot().unwrap();
    let mut got = verdicts(&first.take_points());
    assert!(first.close().unwrap().points.is_empty(), "snapshot answers after every batch");

    let mut second_proc = support::node(&FIELDS, 3600, 0.001);
    let r = second_proc.restore(snapshot).unwrap();
    assert!(r.success, "{}", r.error);
    got.extend(verdicts(&support::run_all(second_proc, &batches[half..])));
    assert_eq!(got, whole);
}

#[test]
fn garbage_snapshot_is_refused_and_the_node_continues_unchanged() {
    let batches = support::day_batches(&[("", 31)]);
    let whole = verdicts(&support::run_all(support::node(&["hotend"], 3600, 0.001), &batches));
    let mut udf = support::node(&["hotend"], 3600, 0.001);
    let half = batches.len() / 2;
    for b in &batches[..half] {
        udf.send_batch(b).unwrap();
    }
    let r = udf.restore(b"definitely not a snapshot".to_vec()).unwrap();
    assert!(!r.success);
    assert!(r.error.contains("not a tickwatch snapshot"), "{}", r.error);
    // A damaged real snapshot is refused by its checksum.
    let mut snap = udf.snapshot().unwrap();
    let mid = snap.len() / 2;
    snap[mid] ^= 0x40;
    let r = udf.restore(snap).unwrap();
    assert!(!r.success);
    assert!(r.error.contains("checksum"), "{}", r.error);
    let mut got = verdicts(&udf.take_points());
    got.extend(verdicts(&support::run_all(udf, &batches[half..])));
    assert_eq!(got, whole);
}

#[test]
fn snapshot_from_other_options_is_not_applied() {
    let batches = support::day_batches(&[("", 41)]);
    let mut old = support::node(&["hotend"], 600, 0.01);
    for b in &batches[..50] {
        old.send_batch(b).unwrap();
    }
    let snapshot = old.snapshot().unwrap();
    drop(old);
    // Same task name, new options: the old history must not leak in.
    let fresh =
        verdicts(&support::run_all(support::node(&["hotend"], 3600, 0.001), &batches[50..]));
    let mut udf = support::node(&["hotend"], 3600, 0.001);
    let r = udf.restore(snapshot).unwrap();
    assert!(r.success, "{}", r.error);
    assert_eq!(verdicts(&support::run_all(udf, &batches[50..])), fresh);
}

#[test]
fn field_tag_option_names_the_tag() {
    let mut udf = support::spawn(&[]);
    udf.info().unwrap();
    let mut opts = support::ttest_options(&["bed"], 3600, 0.001);
    opts.push(o::call("fieldTag", vec![o::s("metric")]));
    assert!(udf.init("t", "n", opts).unwrap().success);
    let batches = support::day_batches(&[("p1", 1)]);
    let points = support::run_all(udf, &batches[..3]);
    assert_eq!(points.len(), 2);
    for (p, b) in points.iter().zip(&batches[1..]) {
        assert_eq!(p.tags["metric"], "bed");
        assert_eq!(p.tags["printer"], "p1");
        assert_eq!(p.dimensions, ["metric", "printer"]);
        assert_eq!(p.time, b.end.tmax);
        assert!(p.fields_double.contains_key("pvalue") && p.fields_double.contains_key("t"));
        assert!(p.fields_bool.contains_key("anomalous"));
    }
}

#[test]
fn data_grouped_by_the_field_tag_name_is_refused_with_the_fix() {
    // Grouped by a tag called "field": emitted points would merge groups.
    let mut batches = support::day_batches(&[("a", 1)]);
    for b in &mut batches[..3] {
        let v = b.end.tags.remove("printer").unwrap();
        b.end.tags.insert("field".into(), v.clone());
        b.begin.tags = b.end.tags.clone();
    }
    let mut udf = support::node(&["hotend"], 3600, 0.001);
    // The node ends its stream at the first such batch, so later writes may
    // hit a closed pipe.
    for b in &batches[..3] {
        if udf.send_batch(b).is_err() {
            break;
        }
    }
    let closed = udf.close().unwrap();
    let err = closed.error.expect("ErrorResponse");
    assert!(
        err.contains("grouped by a tag named \"field\"") && err.contains(".fieldTag("),
        "{err}"
    );
    assert!(!closed.status.unwrap().success());
}
