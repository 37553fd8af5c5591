//! The plugin API's conformance suite, run against the level-and-spread
//! detector.

use tickwatch_levelspread::LevelSpreadDetector;
use tickwatch_plugin_api::conformance::check;
use tickwatch_plugin_api::{Options, Value};

#[test]
fn levelspread_conforms() {
    check::<LevelSpreadDetector>(&Options::new(vec![]));
    check::<LevelSpreadDetector>(&Options::new(vec![
        ("size".into(), Value::Int(2)),
        ("alpha".into(), Value::Double(0.5)),
        ("rebaseline".into(), Value::Int(1)),
    ]));
}
