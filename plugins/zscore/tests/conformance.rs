//! The plugin API's conformance suite, run against the z-score detector.

use tickwatch_plugin_api::conformance::check;
use tickwatch_plugin_api::{Options, Value};
use tickwatch_zscore::ZScore;

#[test]
fn zscore_conforms() {
    check::<ZScore>(&Options::new(vec![]));
    check::<ZScore>(&Options::new(vec![
        ("size".into(), Value::Int(2)),
        ("alpha".into(), Value::Double(0.5)),
        ("rebaseline".into(), Value::Int(1)),
    ]));
}
