//! The plugin API's conformance suite, run against the seasonal detector.

use tickwatch_plugin_api::conformance::check;
use tickwatch_plugin_api::{Options, Value};
use tickwatch_seasonal::Seasonal;

#[test]
fn seasonal_conforms() {
    check::<Seasonal>(&Options::new(vec![]));
    check::<Seasonal>(&Options::new(vec![
        ("season".into(), Value::Int(2)),
        ("seasons".into(), Value::Int(1)),
        ("local".into(), Value::Int(1)),
        ("alpha".into(), Value::Double(0.5)),
    ]));
}
