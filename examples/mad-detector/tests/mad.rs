//! How an outside plugin author tests a detector: the API's conformance
//! suite plus the detector's own behaviour.

use tickwatch_example_mad::Mad;
use tickwatch_plugin_api::conformance::check;
use tickwatch_plugin_api::{Detector, Options, Value};

#[test]
fn conforms() {
    check::<Mad>(&Options::default());
    check::<Mad>(&Options::new(vec![("size".into(), Value::Int(2))]));
}

#[test]
fn flags_a_shifted_median_but_not_one_outlier() {
    let mut d = Mad::new(&Options::new(vec![
        ("size".into(), Value::Int(1000)),
        ("alpha".into(), Value::Double(0.001)),
    ]))
    .unwrap();
    let base: Vec<f64> = (0..300).map(|i| 100.0 + ((i * 37) % 11) as f64 * 0.1).collect();
    assert_eq!(d.score(&base), None);
    let mut outlier = base.clone();
    outlier[7] = 1e6;
    let v = d.score(&outlier).unwrap();
    assert!(!v.anomalous, "one wild reading must not move the median: {v:?}");
    let shifted: Vec<f64> = base.iter().map(|x| x + 2.0).collect();
    let v = d.score(&shifted).unwrap();
    assert!(v.anomalous && v.pvalue < 1e-6, "{v:?}");
}

#[test]
fn refuses_bad_options_by_name() {
    let e = Mad::new(&Options::new(vec![
        ("size".into(), Value::Int(1)),
        ("alpha".into(), Value::Double(0.1)),
    ]));
    assert_eq!(e.unwrap_err(), "option size must be > 1, got 1");
}
