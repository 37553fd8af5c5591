//! Info, Init option rules, framing and protocol errors, keepalives.

use std::process::Stdio;
use std::time::Duration;

use tickwatch_engine::kapacitor::Batch;
use tickwatch_engine::kapacitor::HostError;
use tickwatch_engine::node::DetectorFactory;
use tickwatch_proto::agent::{self, request};

use crate::support::{self, o};

#[test]
fn info_declares_batch_in_stream_out_and_all_options() {
    let mut udf = support::spawn(&[]);
    let info = udf.info().unwrap();
    assert_eq!(info.wants, agent::EdgeType::Batch as i32);
    assert_eq!(info.provides, agent::EdgeType::Stream as i32);
    let types = |name: &str| info.options.get(name).map(|o| o.value_types.clone());
    let s = agent::ValueType::String as i32;
    assert_eq!(types("field"), Some(vec![s, s, s]));
    assert_eq!(types("fieldTag"), Some(vec![s]));
    assert_eq!(types("size"), Some(vec![agent::ValueType::Int as i32]));
    assert_eq!(types("alpha"), Some(vec![agent::ValueType::Double as i32]));
    // Stream windows and pass-through (issue 12): declared on both edges,
    // refused at Init where they do not fit.
    let dur = agent::ValueType::Duration as i32;
    assert_eq!(types("period"), Some(vec![dur]));
    assert_eq!(types("every"), Some(vec![dur]));
    assert_eq!(types("passThrough"), Some(vec![]));
    assert_eq!(types("align"), Some(vec![]));
    // tickwatch's six options plus the detector's own (size, alpha, and any
    // optional ones with defaults).
    let ttest = tickwatch_engine::plugin::Plugin::load(
        &support::plugin_dir().join(format!("libtickwatch_ttest{}", std::env::consts::DLL_SUFFIX)),
    )
    .unwrap();
    assert_eq!(info.options.len(), 6 + ttest.options().len());
    // Kapacitor closes stdin after Info; the process must exit promptly and cleanly.
    let closed = udf.close().unwrap();
    assert!(closed.status.unwrap().success());
}

#[test]
fn field_arity_flag_changes_the_declared_arity() {
    let mut udf = support::spawn(&["--field-arity", "5"]);
    let info = udf.info().unwrap();
    assert_eq!(info.options["field"].value_types.len(), 5);
    let r = udf
        .init(
            "t",
            "n",
            vec![
                o::call("field", vec![o::s("a"), o::s("b"), o::s("c"), o::s("d"), o::s("")]),
                o::call("size", vec![o::i(10)]),
                o::call("alpha", vec![o::d(0.01)]),
            ],
        )
        .unwrap();
    assert!(r.success, "{}", r.error);
}

#[test]
fn info_touches_no_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bin = support::bin();
    let plugins = support::plugin_dir();
    let mut udf = tickwatch_engine::kapacitor::UdfClient::spawn(
        &bin,
        &["serve", "--detector", "ttest", "--plugin-dir", plugins.to_str().unwrap()],
        &[("TICKWATCH_STATE_DIR", state.to_str().unwrap())],
    )
    .unwrap();
    udf.info().unwrap();
    assert!(udf.close().unwrap().status.unwrap().success());
    assert!(!state.exists(), "Info must not create task state");
}

#[test]
fn kapacitor_rejects_wrong_arity_before_the_udf_sees_it() {
    let mut udf = support::spawn(&[]);
    udf.info().unwrap();
    let err = udf.init("t", "n", vec![o::call("field", vec![o::s("hotend")])]).unwrap_err();
    assert!(
        matches!(&err, HostError::Options(m) if m == "unexpected number of args to field, got 1 expected 3"),
        "{err}"
    );
}

fn init_error(options: Vec<agent::Option>) -> String {
    let mut udf = support::spawn(&[]);
    let r = udf.init_unchecked("t", "n", options).unwrap();
    assert!(!r.success, "init should fail");
    assert!(udf.close().unwrap().status.unwrap().success());
    r.error
}

#[test]
fn bad_options_fail_init_with_the_reason() {
    let fields = || support::field_calls(&["hotend"]);
    let with = |extra: Vec<agent::Option>| {
        let mut v = fields();
        v.extend(extra);
        v
    };
    let e =
        init_error(with(vec![o::call("size", vec![o::i(1)]), o::call("alpha", vec![o::d(0.01)])]));
    assert_eq!(e, "option size must be > 1, got 1");
    let e =
        init_error(with(vec![o::call("size", vec![o::i(10)]), o::call("alpha", vec![o::d(1.5)])]));
    assert_eq!(e, "option alpha must be in (0, 1), got 1.5");
    let e = init_error(with(vec![o::call("size", vec![o::i(10)])]));
    assert!(e.starts_with("option alpha is required"), "{e}");
    let e = init_error(with(vec![
        o::call("size", vec![o::i(10)]),
        o::call("alpha", vec![o::d(0.1)]),
        o::call("window", vec![o::i(3)]),
    ]));
    assert!(e.starts_with("unknown option window"), "{e}");
    let e = init_error(vec![
        o::call("field", vec![o::s("hotend"), o::s("bed"), o::s("")]),
        o::call("field", vec![o::s("bed"), o::s(""), o::s("")]),
        o::call("size", vec![o::i(10)]),
        o::call("alpha", vec![o::d(0.1)]),
    ]);
    assert_eq!(e, "option field names \"bed\" twice");
    let e = init_error(vec![
        o::call("field", vec![o::s(""), o::s(""), o::s("")]),
        o::call("size", vec![o::i(10)]),
        o::call("alpha", vec![o::d(0.1)]),
    ]);
    assert!(e.starts_with("no field to track"), "{e}");
    let e = init_error(with(vec![
        o::call("size", vec![o::d(10.0)]),
        o::call("alpha", vec![o::d(0.1)]),
    ]));
    assert_eq!(e, "option size argument 1 must be int, got double");
}

#[test]
fn repeated_field_calls_accumulate_and_padding_is_ignored() {
    let mut udf = support::spawn(&[]);
    udf.info().unwrap();
    let r = udf
        .init(
            "t",
            "n",
            vec![
                o::call("field", vec![o::s("hotend"), o::s(""), o::s("")]),
                o::call("field", vec![o::s("bed"), o::s("air"), o::s("")]),
                o::call("size", vec![o::i(3600)]),
                o::call("alpha", vec![o::d(0.001)]),
            ],
        )
        .unwrap();
    assert!(r.success, "{}", r.error);
    let batches = support::day_batches(&[("", 3)]);
    let points = support::run_all(udf, &batches[..3]);
    let fields: Vec<_> = points.iter().map(|p| p.tags["field"].clone()).collect();
    assert_eq!(fields, ["hotend", "bed", "air", "hotend", "bed", "air"]);
}

/// Sends raw bytes to a fresh, initialized node and returns (error text, exit success).
fn broken(bytes: &[u8]) -> (Option<String>, bool) {
    let mut udf = support::node(&["hotend"], 100, 0.01);
    udf.send_bytes(bytes).unwrap();
    let closed = udf.close().unwrap();
    (closed.error, closed.status.unwrap().success())
}

fn uvarint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

#[test]
fn oversized_frame_is_refused_naming_its_size() {
    let (err, ok) = broken(&uvarint(1 << 40));
    let err = err.expect("an ErrorResponse");
    assert!(err.contains("1099511627776"), "{err}");
    assert!(err.contains("limit"), "{err}");
    assert!(!ok, "must exit non-zero");
}

#[test]
fn truncated_frame_ends_with_error_and_non_zero_exit() {
    let mut bytes = uvarint(100);
    bytes.extend_from_slice(&[1, 2, 3]);
    let (err, ok) = broken(&bytes);
    assert!(err.expect("an ErrorResponse").contains("stream ended inside a frame"));
    assert!(!ok);
}

#[test]
fn undecodable_frame_ends_with_error_and_non_zero_exit() {
    let (err, ok) = broken(&[3, 0x0f, 0xff, 0xff]);
    assert!(err.expect("an ErrorResponse").contains("undecodable message"));
    assert!(!ok);
}

#[test]
fn point_outside_a_batch_is_a_protocol_error() {
    let mut udf = support::node(&["hotend"], 100, 0.01);
    udf.send(request::Message::Point(agent::Point::default())).unwrap();
    let closed = udf.close().unwrap();
    assert!(closed.error.expect("ErrorResponse").contains("point outside a batch"));
    assert!(!closed.status.unwrap().success());
}

#[test]
fn batch_before_init_is_a_protocol_error() {
    let mut udf = support::spawn(&[]);
    udf.send_batch(&support::day_batches(&[("", 1)])[0]).unwrap();
    let closed = udf.close().unwrap();
    assert!(closed.error.expect("ErrorResponse").contains("batch before a successful Init"));
    assert!(!closed.status.unwrap().success());
}

#[test]
fn keepalive_is_answered_while_a_batch_is_still_arriving() {
    let mut udf = support::node(&["hotend"], 3600, 0.001);
    let batches = support::day_batches(&[("", 5)]);
    udf.send_batch(&batches[0]).unwrap();
    let b = &batches[1];
    udf.send(request::Message::Begin(b.begin.clone())).unwrap();
    for p in &b.points[..100] {
        udf.send(request::Message::Point(p.clone())).unwrap();
    }
    // The batch is open: the echo must come now, not after EndBatch.
    udf.keepalive(42).unwrap();
    for p in &b.points[100..] {
        udf.send(request::Message::Point(p.clone())).unwrap();
    }
    udf.send(request::Message::End(b.end.clone())).unwrap();
    let points = support::run_all(udf, &[]);
    assert_eq!(points.len(), 1, "the second window is scored after the keepalive");
}

#[test]
fn keepalive_is_answered_behind_a_huge_batch() {
    let mut udf = support::node(&["hotend"], 1_000_000, 0.001);
    udf.set_timeout(Duration::from_secs(120));
    let mk = |n: usize, t0: i64| Batch {
        begin: agent::BeginBatch { name: "m".into(), size: n as i64, ..Default::default() },
        points: (0..n)
            .map(|i| agent::Point {
                time: t0 + i as i64,
                fields_double: [("hotend".to_string(), (i % 7) as f64)].into(),
                ..Default::default()
            })
            .collect(),
        end: agent::EndBatch { name: "m".into(), tmax: t0 + n as i64, ..Default::default() },
        ..Default::default()
    };
    udf.send_batch(&mk(300_000, 0)).unwrap();
    udf.send_batch(&mk(300_000, 1_000_000)).unwrap();
    udf.keepalive(7).unwrap();
    let snap = udf.snapshot().unwrap();
    assert!(!snap.is_empty());
    assert_eq!(udf.take_points().len(), 1, "snapshot answers after every earlier batch");
    let closed = udf.close().unwrap();
    assert!(closed.status.unwrap().success());
}

#[test]
fn exits_cleanly_when_stdin_closes_right_away() {
    let st = support::tickwatch()
        .args(["serve", "--detector", "ttest", "--plugin-dir"])
        .arg(support::plugin_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

/// kapacitor.conf users write `VAR = ""` for "not set": Kapacitor's Info
/// process must still start (clap used to refuse empty env values).
#[test]
fn empty_environment_values_mean_unset() {
    let mut udf = tickwatch_engine::kapacitor::UdfClient::spawn(
        &support::bin(),
        &["serve", "--detector", "ttest"],
        &[
            ("TICKWATCH_STATE_DIR", ""),
            ("TICKWATCH_PLUGIN_DIR", ""),
            ("TICKWATCH_GROUP_COMMIT_MS", ""),
            ("TICKWATCH_LOG", ""),
            ("HOME", "/nonexistent-home-for-test"),
            ("XDG_STATE_HOME", ""),
        ],
    )
    .unwrap();
    assert!(udf.info().unwrap().options.contains_key("size"));
    assert!(udf.close().unwrap().status.unwrap().success());
}
