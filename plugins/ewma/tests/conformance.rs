//! The plugin API's conformance suite, run against the EWMA detector.

use tickwatch_ewma::Ewma;
use tickwatch_plugin_api::conformance::check;
use tickwatch_plugin_api::{Options, Value};

#[test]
fn ewma_conforms() {
    check::<Ewma>(&Options::new(vec![]));
    check::<Ewma>(&Options::new(vec![
        ("lambda".into(), Value::Double(1.0)),
        ("warmup".into(), Value::Int(2)),
        ("alpha".into(), Value::Double(0.5)),
        ("rebaseline".into(), Value::Int(1)),
    ]));
}
