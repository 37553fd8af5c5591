//! The plugin API's conformance suite, run against the t-test.

use tickwatch_plugin_api::conformance::check;
use tickwatch_plugin_api::{Options, Value};
use tickwatch_ttest::TTest;

#[test]
fn ttest_conforms() {
    check::<TTest>(&Options::new(vec![
        ("size".into(), Value::Int(3600)),
        ("alpha".into(), Value::Double(0.001)),
    ]));
    check::<TTest>(&Options::new(vec![
        ("size".into(), Value::Int(2)),
        ("alpha".into(), Value::Double(0.5)),
    ]));
}
