//! Unusable values are skipped and counted, never fed to a detector; int
//! values count like doubles; points lacking a field are skipped for it.

use tickwatch_engine::kapacitor::Batch;
use tickwatch_proto::agent;

use crate::support::{self, verdicts};

/// Rewrites the hotend values of `b` through `f` (None removes the field).
fn rewrite(b: &Batch, f: impl Fn(usize, f64, &mut agent::Point)) -> Batch {
    let mut b = b.clone();
    for (i, p) in b.points.iter_mut().enumerate() {
        let v = p.fields_double.remove("hotend").unwrap();
        f(i, v, p);
    }
    b
}

#[test]
fn nan_inf_strings_and_bools_are_skipped_ints_are_used() {
    let batches = support::day_batches(&[("", 9)]);
    let bad: Vec<Batch> = batches
        .iter()
        .map(|b| {
            rewrite(b, |i, v, p| match i % 10 {
                0 => {
                    p.fields_double.insert("hotend".into(), f64::NAN);
                }
                1 => {
                    p.fields_double.insert("hotend".into(), f64::INFINITY);
                }
                2 => {
                    p.fields_string.insert("hotend".into(), "hot".into());
                }
                3 => {
                    p.fields_bool.insert("hotend".into(), true);
                }
                4 => {} // absent
                5 => {
                    p.fields_int.insert("hotend".into(), v.round() as i64);
                }
                _ => {
                    p.fields_double.insert("hotend".into(), v);
                }
            })
        })
        .collect();
    // The same windows with only the usable values, ints as doubles.
    let clean: Vec<Batch> = batches
        .iter()
        .map(|b| {
            rewrite(b, |i, v, p| match i % 10 {
                0..=4 => {}
                5 => {
                    p.fields_double.insert("hotend".into(), v.round());
                }
                _ => {
                    p.fields_double.insert("hotend".into(), v);
                }
            })
        })
        .collect();
    let got = verdicts(&support::run_all(support::node(&["hotend"], 3600, 0.001), &bad[..60]));
    let want = verdicts(&support::run_all(support::node(&["hotend"], 3600, 0.001), &clean[..60]));
    assert_eq!(got.len(), 59);
    assert_eq!(got, want);
}

#[test]
fn a_window_without_the_field_emits_nothing_for_it() {
    let batches = support::day_batches(&[("", 4)]);
    let mut stripped = batches[..5].to_vec();
    stripped[2] = rewrite(&stripped[2], |_, _, _| {});
    let points = support::run_all(support::node(&["hotend", "bed"], 3600, 0.001), &stripped);
    let v = verdicts(&points);
    let hot: Vec<_> = v.iter().filter(|v| v.field == "hotend").map(|v| v.time).collect();
    assert_eq!(hot, [batches[1].end.tmax, batches[3].end.tmax, batches[4].end.tmax]);
    assert_eq!(v.iter().filter(|v| v.field == "bed").count(), 4);
}
