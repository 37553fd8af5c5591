//! The node's rules, in process: a small detector compiled into the test
//! stands in for a plugin behind the same `DetectorFactory` seam.

use std::collections::HashMap;

use tickwatch_plugin_api::{
    ByteReader, ByteWriter, Detector, OptionSpec, Options, Summary, Value, Verdict,
};
use tickwatch_proto::agent;
use tickwatch_state::{FieldState, Provenance, Snapshot, StateChange};

use super::config::validate;
use super::*;
use crate::kapacitor::options::opt;

/// Flags a window whose mean is more than `limit` away from the mean of
/// every value seen before; no verdict on the first window. Panics on 666.
struct Drift {
    limit: f64,
    sum: f64,
    n: u64,
}

impl Detector for Drift {
    const NAME: &'static str = "drift";
    const VERSION: &'static str = "1.0.0";
    const STATE_VERSION: u32 = 3;

    fn options() -> Vec<OptionSpec> {
        vec![OptionSpec::with_default("limit", Value::Double(1.0), "allowed drift")]
    }
    fn new(options: &Options) -> Result<Self, String> {
        let limit = options.double("limit")?;
        if limit <= 0.0 {
            return Err(format!("option limit must be > 0, got {limit}"));
        }
        Ok(Drift { limit, sum: 0.0, n: 0 })
    }
    fn score(&mut self, window: &[f64]) -> Option<Verdict> {
        assert!(!window.contains(&666.0), "drift panics on 666");
        let mean = window.iter().sum::<f64>() / window.len() as f64;
        let verdict = (self.n > 0).then(|| {
            let d = mean - self.sum / self.n as f64;
            let anomalous = d.abs() > self.limit;
            Verdict {
                pvalue: if anomalous { 0.0 } else { 1.0 },
                anomalous,
                stats: vec![("d".into(), d)],
            }
        });
        self.sum += window.iter().sum::<f64>();
        self.n += window.len() as u64;
        verdict
    }
    fn save(&self) -> Vec<u8> {
        let mut w = ByteWriter::new();
        w.f64(self.sum).u64(self.n);
        w.finish()
    }
    fn load(&mut self, state: &[u8]) -> Result<(), String> {
        let mut r = ByteReader::new(state);
        self.sum = r.f64()?;
        self.n = r.u64()?;
        r.finish()?;
        Ok(())
    }
    fn describe(&self) -> Summary {
        Summary::new().int("n", self.n as i64)
    }
}

fn config(fields: &[&str], extra: Vec<agent::Option>) -> NodeConfig {
    let mut padded: Vec<agent::OptionValue> = fields.iter().map(|f| opt::s(f)).collect();
    padded.resize(3, opt::s(""));
    let mut options = vec![opt::call("field", padded)];
    options.extend(extra);
    validate(&options, 3, &Drift::options()).unwrap()
}

fn node(fields: &[&str]) -> Node {
    Node::new(InProcess::<Drift>::factory(), config(fields, vec![]), "test").unwrap()
}

fn point(t: i64, fields: &[(&str, f64)]) -> agent::Point {
    agent::Point {
        time: t,
        fields_double: fields.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ..Default::default()
    }
}

/// A batch of `points` for `group` (`k=v,k=v` tags), as Kapacitor sends one.
pub(crate) fn batch(group: &str, tmax: i64, points: Vec<agent::Point>) -> Batch {
    let tags: HashMap<String, String> = group
        .split(',')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Batch {
        begin: agent::BeginBatch {
            name: "m".into(),
            group: group.into(),
            tags: tags.clone(),
            size: points.len() as i64,
            by_name: false,
        },
        points,
        end: agent::EndBatch { name: "m".into(), group: group.into(), tmax, tags, by_name: false },
        ..Default::default()
    }
}

fn flat(group: &str, tmax: i64, a: f64, b: f64) -> Batch {
    batch(group, tmax, (0..5).map(|i| point(tmax - 5 + i, &[("a", a), ("b", b)])).collect())
}

fn anomalous(p: &agent::Point) -> bool {
    p.fields_bool["anomalous"]
}

#[test]
fn process_scores_each_field_per_group_and_emits_after_the_first_window() {
    let mut n = node(&["a", "b"]);
    assert!(n.process(&flat("host=x", 10, 1.0, 5.0)).unwrap().points.is_empty());
    let out = n.process(&flat("host=x", 20, 1.2, 9.0)).unwrap();
    assert_eq!(out.points.len(), 2);
    let points = out.points.decode().unwrap();
    let by_field: HashMap<&str, &agent::Point> =
        points.iter().map(|p| (p.tags["field"].as_str(), p)).collect();
    assert!(!anomalous(by_field["a"]));
    assert!(anomalous(by_field["b"]));
    assert_eq!(by_field["a"].group, "field=a,host=x");
    assert_eq!(by_field["a"].time, 20);
    // Another group has its own state: its first window emits nothing.
    assert!(n.process(&flat("host=y", 20, 100.0, 100.0)).unwrap().points.is_empty());
    assert_eq!(n.stats(), NodeStats { batches: 3, emitted: 2, ..NodeStats::default() });
    assert_eq!(n.dirty_len(), 0, "no states unless asked");
    assert!(n.take_updates().unwrap().is_empty());
}

#[test]
fn unusable_values_are_skipped_and_counted_not_scored() {
    let mut n = node(&["a"]);
    let mut pts = vec![point(1, &[("a", 1.0)]), point(2, &[("a", f64::NAN)])];
    pts.push(agent::Point {
        time: 3,
        fields_string: HashMap::from([("a".into(), "x".into())]),
        ..Default::default()
    });
    pts.push(agent::Point {
        time: 4,
        fields_int: HashMap::from([("a".into(), 1)]),
        ..Default::default()
    });
    n.keep_states(true);
    n.process(&batch("", 5, pts)).unwrap();
    let states = n.take_updates().unwrap();
    assert_eq!(n.stats().skipped, 2);
    // Two usable values (1.0 and the int 1) reached the detector.
    let mut d = Drift::new(&Options::new(vec![("limit".into(), Value::Double(1.0))])).unwrap();
    let StateChange::Whole { state, .. } = &states[0].change else {
        panic!("a detector without save_changes hands over whole states")
    };
    d.load(state).unwrap();
    assert_eq!((d.n, d.sum), (2, 2.0));
    // A batch with no usable value for a field leaves it untouched.
    let out = n.process(&batch("", 6, vec![point(6, &[("other", 1.0)])])).unwrap();
    assert!(n.take_updates().unwrap().is_empty() && out.points.is_empty());
}

#[test]
fn kept_states_carry_their_provenance() {
    let mut n = Node::new(
        InProcess::<Drift>::factory(),
        config(&["a"], vec![opt::call("limit", vec![opt::d(2.0)])]),
        "test",
    )
    .unwrap();
    n.keep_states(true);
    n.process(&flat("", 10, 1.0, 0.0)).unwrap();
    let states = n.take_updates().unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(
        states[0].provenance,
        Provenance {
            detector: "drift".into(),
            detector_version: "1.0.0".into(),
            state_version: 3,
            options: r#"{"limit":2.0}"#.into(),
            last_time: 10,
        }
    );
}

#[test]
fn a_batch_grouped_by_the_field_tag_is_refused() {
    let mut n = node(&["a"]);
    let err = n.process(&flat("field=x", 10, 1.0, 1.0)).unwrap_err();
    assert!(matches!(err, NodeError::FieldTagCollision { ref tag } if tag == "field"), "{err}");
}

#[test]
fn a_panicking_detector_ends_the_stream_with_the_reason() {
    let mut n = node(&["a"]);
    let err = n.process(&batch("", 1, vec![point(0, &[("a", 666.0)])])).unwrap_err();
    assert!(err.to_string().contains("drift panics on 666"), "{err}");
    // The instance stays broken: it is not called again.
    let err = n.process(&flat("", 2, 1.0, 1.0)).unwrap_err();
    assert!(matches!(err, NodeError::Detector(DetectorError::Panicked { .. })), "{err}");
}

#[test]
fn invalid_detector_options_are_refused_at_creation() {
    let cfg = config(&["a"], vec![opt::call("limit", vec![opt::d(-1.0)])]);
    let err = Node::new(InProcess::<Drift>::factory(), cfg, "t").unwrap_err();
    assert_eq!(err.to_string(), "option limit must be > 0, got -1");
}

/// A node that has seen `batches` windows of `a` = 1.0 ending at 10, 20, …
fn trained(batches: i64) -> Node {
    let mut n = node(&["a"]);
    for i in 1..=batches {
        n.process(&flat("", i * 10, 1.0, 0.0)).unwrap();
    }
    n
}

fn state(n: &mut Node) -> FieldState {
    n.snapshot().unwrap().fields.remove(0)
}

#[test]
fn snapshot_restores_into_a_fresh_node_exactly() {
    let mut a = trained(3);
    let snap = a.snapshot().unwrap();
    let mut b = node(&["a"]);
    let plan = b.plan_restore(snap.clone()).unwrap();
    assert!(plan.aside.is_empty());
    assert_eq!(b.apply_restore(plan), 1);
    assert_eq!(b.snapshot().unwrap(), snap);
    let next = flat("", 40, 5.0, 0.0);
    let (pa, pb) = (a.process(&next).unwrap().points, b.process(&next).unwrap().points);
    assert_eq!(pa, pb);
    assert!(anomalous(&pa.decode().unwrap()[0]));
}

#[test]
fn restore_keeps_the_newer_state_and_the_node_wins_a_tie() {
    let mut old = trained(2); // last batch at 20
    let mut new = trained(4); // last batch at 40
    let (old_state, new_state) = (state(&mut old), state(&mut new));

    // A stale snapshot does not roll the node back.
    let mut n = trained(4);
    let plan = n.plan_restore(Snapshot { fields: vec![old_state.clone()] }).unwrap();
    assert_eq!(n.apply_restore(plan), 0);
    assert_eq!(state(&mut n), new_state);

    // A tie keeps the node's own state, whatever the snapshot's bytes.
    let mut tie = new_state.clone();
    tie.state = old_state.state.clone();
    let plan = n.plan_restore(Snapshot { fields: vec![tie] }).unwrap();
    assert_eq!(n.apply_restore(plan), 0);
    assert_eq!(state(&mut n), new_state);

    // A newer snapshot wins.
    let mut behind = trained(2);
    let plan = behind.plan_restore(Snapshot { fields: vec![new_state.clone()] }).unwrap();
    assert_eq!(plan.applied_states(), vec![new_state.clone()]);
    assert_eq!(behind.apply_restore(plan), 1);
    assert_eq!(state(&mut behind), new_state);

    // Fields only the snapshot knows are taken; the node's other fields stay.
    let mut other = new_state.clone();
    other.group = "host=z".into();
    let mut n = trained(1);
    let mine = state(&mut n);
    let plan = n.plan_restore(Snapshot { fields: vec![other.clone()] }).unwrap();
    assert_eq!(n.apply_restore(plan), 1);
    assert_eq!(n.snapshot().unwrap().fields, vec![mine, other]);
}

#[test]
fn state_this_node_could_not_have_built_is_set_aside_not_applied() {
    let mut donor = trained(3);
    let good = state(&mut donor);
    let variant = |f: &dyn Fn(&mut FieldState)| {
        let mut s = good.clone();
        f(&mut s);
        s
    };
    let cases = [
        (variant(&|s| s.provenance.detector = "ttest".into()), "detector ttest (node uses drift)"),
        (variant(&|s| s.provenance.state_version = 2), "state format 2 of drift 1.0.0"),
        (variant(&|s| s.provenance.options = r#"{"limit":5.0}"#.into()), "options {\"limit\":5.0}"),
        (variant(&|s| s.field = "zz".into()), "a field this node does not track"),
    ];
    for (s, why) in cases {
        let mut n = node(&["a"]);
        let plan = n.plan_restore(Snapshot { fields: vec![s.clone()] }).unwrap();
        assert_eq!(plan.aside.len(), 1, "{why}");
        assert!(plan.aside[0].1.starts_with("from a snapshot, built with"), "{}", plan.aside[0].1);
        assert!(plan.aside[0].1.contains(why), "{} lacks {why}", plan.aside[0].1);
        assert_eq!(n.apply_restore(plan), 0);
        assert!(n.snapshot().unwrap().fields.is_empty());

        let mut n = node(&["a"]);
        let adopted = n.adopt(vec![s.clone(), good.clone()]).unwrap();
        assert_eq!(adopted.loaded, 1);
        assert_eq!(adopted.aside.len(), 1);
        assert_eq!(adopted.aside[0].0, s);
        assert!(adopted.aside[0].1.starts_with("built with"), "{}", adopted.aside[0].1);
        assert_eq!(n.snapshot().unwrap().fields, vec![good.clone()]);
    }
}

#[test]
fn state_that_does_not_load_fails_and_changes_nothing() {
    let mut donor = trained(3);
    let mut bad = state(&mut donor);
    bad.state.truncate(3);
    let mut n = trained(1);
    let before = n.snapshot().unwrap();
    let err = n.adopt(vec![bad.clone()]).unwrap_err();
    assert!(err.to_string().starts_with("state of field a group \"\" does not load"), "{err}");
    assert!(n.plan_restore(Snapshot { fields: vec![bad] }).is_err());
    assert_eq!(n.snapshot().unwrap(), before);
}

/// `batch` with its points moved into `encoded`, as `serve`'s reader keeps
/// them: each through prost's encoding and the fast path.
fn in_place(mut b: Batch) -> Batch {
    use tickwatch_proto::agent::{Request, request};
    use tickwatch_proto::{Incoming, encode_frame, read_request_or_point};
    let mut buf = Vec::new();
    for p in std::mem::take(&mut b.points) {
        let frame = encode_frame(&Request { message: Some(request::Message::Point(p)) });
        match read_request_or_point(&mut frame.as_slice(), &mut buf, true) {
            Ok(Some(Incoming::Point(v))) => b.encoded.push(v),
            other => panic!("the fast path refused a point prost encoded: {other:?}"),
        }
    }
    b
}

#[test]
fn points_kept_as_bytes_score_as_decoded_points() {
    // The printer day, its windows through both nodes: same points, same
    // states, same skip count (the day has NaN-free doubles; a few are
    // made unusable and a few become ints).
    let mut w = crate::kapacitor::Windower::new(300_000_000_000, 300_000_000_000, &[]);
    let mut windows = Vec::new();
    for (i, r) in crate::scenario::printer_day(7).iter().enumerate().take(20_000) {
        let mut p = r.to_point(&HashMap::new());
        match i % 997 {
            1 => drop(p.fields_double.insert("hotend".into(), f64::NAN)),
            2 => {
                let v = p.fields_double.remove("bed").unwrap_or(0.0);
                p.fields_int.insert("bed".into(), v as i64);
            }
            3 => {
                p.fields_double.remove("air");
                p.fields_string.insert("air".into(), "n/a".into());
            }
            _ => {}
        }
        windows.extend(w.push(p));
    }
    assert!(windows.len() > 50);
    let fields = ["hotend", "bed", "air"];
    let (mut decoded, mut read, mut columns) = (node(&fields), node(&fields), node(&fields));
    decoded.keep_states(true);
    read.keep_states(true);
    columns.keep_states(true);
    for b in windows {
        let a = decoded.process(&b).unwrap();
        let by_columns = columns.process(&as_columns(b.clone(), &fields, false)).unwrap();
        let r = read.process(&in_place(b)).unwrap();
        let states = decoded.take_updates().unwrap();
        assert_eq!(a.points, r.points);
        assert_eq!(states, read.take_updates().unwrap());
        assert_eq!(a.points, by_columns.points);
        assert_eq!(states, columns.take_updates().unwrap());
        let counts = |t: &[FieldTally]| -> Vec<(u64, u64, u64)> {
            t.iter().map(|t| (t.values, t.skipped, t.verdicts)).collect()
        };
        assert_eq!(counts(&a.tally), counts(&by_columns.tally));
    }
    assert_eq!(decoded.stats(), read.stats());
    assert_eq!(decoded.stats(), columns.stats());
    assert!(decoded.stats().skipped > 0);
}

/// `batch` as `serve`'s reader hands it over once the node's fields are
/// known: its values read out as columns while each frame is checked (a
/// frame the fast path refuses, decoded by prost), the rows kept only with
/// `keep_rows`.
fn as_columns(mut b: Batch, fields: &[&str], keep_rows: bool) -> Batch {
    use tickwatch_proto::agent::{Request, request};
    use tickwatch_proto::{Incoming, decode_request_or_point, encode_frame};
    let names: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    let mut cols = values::Columns::new(names.into(), b.points.len());
    for (i, p) in std::mem::take(&mut b.points).into_iter().enumerate() {
        let framed = encode_frame(&Request { message: Some(request::Message::Point(p)) });
        let mut r = tickwatch_proto::FrameReader::new(framed.as_slice(), 64);
        let mut frame = r.next_request().unwrap().unwrap().to_vec();
        if i % 50 == 7 {
            // An unknown field: prost's to decode.
            frame.extend([0xf8, 0x01, 0x05]);
        }
        match cols.read_frame(&frame) {
            Some(v) => {
                if keep_rows {
                    b.encoded.push(v);
                }
            }
            None => match decode_request_or_point(&frame, false) {
                Ok(Incoming::Request(Request { message: Some(request::Message::Point(p)) })) => {
                    cols.push_point(&p);
                    if keep_rows {
                        b.encoded.push_point(&p);
                    }
                }
                other => panic!("prost refused a point: {other:?}"),
            },
        }
    }
    b.columns = Some(cols);
    b
}

#[test]
fn a_batch_read_as_columns_passes_its_rows_through_and_counts_them() {
    let fields = ["a", "b"];
    let pass_through = || {
        let c = config(&fields, vec![opt::call("passThrough", vec![])]);
        Node::new(InProcess::<Drift>::factory(), c, "test").unwrap()
    };
    let (mut pass, mut plain) = (pass_through(), pass_through());
    for k in 0..4 {
        let b = flat("", (k + 1) * 300, 1.0 + k as f64, 2.0);
        let want = plain.process(&b).unwrap();
        let cols = as_columns(b, &fields, true);
        assert_eq!(cols.len(), want.points.len());
        let got = pass.process(&cols).unwrap();
        // Input points passed through: their maps' entries in each map's
        // own order (prost's).
        assert_eq!(got.points.decode().unwrap(), want.points.decode().unwrap());
    }
    // Columns for other fields with the rows kept (values read for an Init
    // the node did not take): the node reads the rows.
    let (mut a, mut b) = (node(&["a"]), node(&["a"]));
    for k in 0..3 {
        let batch = flat("", (k + 1) * 300, 1.0 + k as f64, 2.0);
        let want = a.process(&batch).unwrap();
        let got = b.process(&as_columns(batch, &["b", "zz"], true)).unwrap();
        assert_eq!(got.points, want.points);
        assert_eq!(
            got.tally,
            want.tally
                .iter()
                .map(|t| FieldTally { score_ns: got.tally[0].score_ns, ..*t })
                .collect::<Vec<_>>()
        );
    }
    // Columns for other fields, rows not kept: refused, not scored as empty.
    let mut other = node(&["x"]);
    let err = other.process(&as_columns(flat("", 300, 1.0, 2.0), &fields, false)).unwrap_err();
    assert!(matches!(err, NodeError::ColumnsMismatch { .. }), "{err}");
}

/// Stream points of group `host=<h>` every 10 s from `from` s for `n`
/// points, with value `v(t)`.
fn stream_points(h: &str, from: i64, n: i64, v: impl Fn(i64) -> f64) -> Vec<agent::Point> {
    (0..n)
        .map(|k| {
            let t = (from + 10 * k) * 1_000_000_000;
            let mut p = point(t, &[("x", v(t))]);
            p.name = "m".into();
            p.tags = HashMap::from([("host".to_string(), h.to_string())]);
            p.dimensions = vec!["host".into()];
            p.group = format!("host={h}");
            p
        })
        .collect()
}

const MIN_NS: i64 = 60_000_000_000;

fn windowed(fields: &[&str], extra: Vec<agent::Option>) -> Node {
    let mut o = vec![
        opt::call("period", vec![opt::dur(5 * MIN_NS)]),
        opt::call("every", vec![opt::dur(5 * MIN_NS)]),
    ];
    o.extend(extra);
    Node::new(InProcess::<Drift>::factory(), config(fields, o), "test").unwrap()
}

#[test]
fn a_stream_node_equals_a_batch_node_fed_the_windows() {
    let wave = |t: i64| {
        ((t / 1_000_000_000) % 97) as f64 + if t > 3000 * 1_000_000_000 { 9.0 } else { 0.0 }
    };
    let mut points = stream_points("a", 0, 600, wave);
    points.extend(stream_points("b", 5, 600, wave));
    points.sort_by_key(|p| p.time);
    let mut stream = windowed(&["x"], vec![]);
    stream.stream_edges(3_600 * 1_000_000_000);
    let mut got = PointFrames::default();
    for p in points.clone() {
        got.append(stream.process_point(p).unwrap().points);
    }
    let mut w = crate::kapacitor::Windower::new(5 * MIN_NS, 5 * MIN_NS, &["host"]);
    let mut batch_node = node(&["x"]);
    let mut want = PointFrames::default();
    for p in points {
        if let Some(b) = w.push(p) {
            want.append(batch_node.process(&b).unwrap().points);
        }
    }
    let decoded = want.decode().unwrap();
    assert!(want.len() > 30 && decoded.iter().any(|p| p.fields_bool["anomalous"]));
    // Verdict points are encoded alike, byte for byte.
    assert_eq!(got, want);
}

#[test]
fn pass_through_releases_each_point_once_with_its_windows_verdict() {
    let mut n = windowed(&["x", "y"], vec![opt::call("passThrough", vec![])]);
    n.stream_edges(3_600 * 1_000_000_000);
    let points = stream_points("a", 0, 120, |t| (t / 1_000_000_000) as f64);
    let mut out = Vec::new();
    for p in points.clone() {
        out.extend(n.process_point(p).unwrap().points.decode().unwrap());
    }
    // 120 points over 20 minutes: windows end at 5, 10, 15 minutes; the
    // points of the last 5 minutes wait for a window that never closes.
    assert_eq!(out.len(), 90);
    for (o, i) in out.iter().zip(&points) {
        let mut stripped = o.clone();
        let had = stripped.fields_bool.remove("x_anomalous").is_some();
        stripped.fields_double.remove("x_pvalue");
        assert_eq!(&stripped, i);
        // The first window seeds: no verdict on its points; y is absent.
        assert_eq!(had, i.time >= 5 * MIN_NS);
        assert!(!o.fields_bool.contains_key("y_anomalous"));
    }
}

#[test]
fn per_point_scoring_and_idle_eviction_come_back_from_the_source() {
    #[derive(Clone, Default)]
    struct Store(std::sync::Arc<std::sync::Mutex<HashMap<(String, String), FieldState>>>);
    impl StateSource for Store {
        fn fetch(&self, group: &str, field: &str) -> Result<Option<FieldState>, String> {
            let m = self.0.lock().map_err(|e| e.to_string())?;
            Ok(m.get(&(group.to_string(), field.to_string())).cloned())
        }
    }
    let store = Store::default();
    let mut n = node(&["x"]);
    n.keep_states(true);
    n.stream_edges(600 * 1_000_000_000);
    n.state_source(Box::new(store.clone()));
    let feed = |n: &mut Node, points: Vec<agent::Point>| -> usize {
        let mut emitted = 0;
        for p in points {
            let s = n.process_point(p).unwrap();
            emitted += s.points.len();
            let mut m = store.0.lock().unwrap();
            for st in n.take_updates().unwrap() {
                let key = (st.group.clone(), st.field.clone());
                let mut bytes = m.get(&key).map(|f| f.state.clone()).unwrap_or_default();
                match st.change {
                    StateChange::Whole { state, .. } => bytes = state,
                    StateChange::Ranges(r) => r.apply(&mut bytes),
                }
                let f = FieldState {
                    group: st.group,
                    field: st.field,
                    provenance: st.provenance,
                    state: bytes,
                };
                m.insert(key, f);
            }
        }
        emitted
    };
    // One value per window: every point but a group's first is scored.
    assert_eq!(feed(&mut n, stream_points("a", 0, 10, |_| 1.0)), 9);
    assert_eq!(n.held(), 1);
    // b runs on for an hour: a (idle past 10 minutes) leaves memory.
    assert_eq!(feed(&mut n, stream_points("b", 100, 360, |_| 1.0)), 359);
    assert_eq!(n.held(), 1, "a was evicted");
    assert_eq!(n.stats().evicted, 1);
    // a comes back with its state: its first point is scored at once.
    assert_eq!(feed(&mut n, stream_points("a", 3700, 1, |_| 50.0)), 1);
    assert_eq!(n.held(), 2);
    // The snapshot of the node alone lacks nothing held.
    assert_eq!(n.snapshot().unwrap().fields.len(), 2);
    // b leaves memory in turn; a stale snapshot entry for it must not roll
    // its persisted state back, a newer one wins as for a held field.
    feed(&mut n, stream_points("a", 4400, 1, |_| 1.0));
    assert_eq!(n.held(), 1, "b was evicted");
    let stored = store.0.lock().unwrap()[&("host=b".to_string(), "x".to_string())].clone();
    let mut stale = stored.clone();
    stale.provenance.last_time -= 1;
    let plan = n.plan_restore(Snapshot { fields: vec![stale] }).unwrap();
    assert!(plan.applied_states().is_empty(), "a stale snapshot is not applied");
    let mut newer = stored;
    newer.provenance.last_time += 1;
    let plan = n.plan_restore(Snapshot { fields: vec![newer] }).unwrap();
    assert_eq!(plan.applied_states().len(), 1);
}

#[test]
fn window_options_are_checked_against_the_edge() {
    use super::stream::check_edge;
    let w = config(
        &["x"],
        vec![
            opt::call("period", vec![opt::dur(MIN_NS)]),
            opt::call("every", vec![opt::dur(MIN_NS)]),
        ],
    );
    let plain = config(&["x"], vec![]);
    assert!(
        check_edge(&w, Edge::Batch, "drift", 2).unwrap_err().to_string().contains("stream edges")
    );
    assert!(check_edge(&w, Edge::Stream, "drift", 2).is_ok());
    assert!(check_edge(&plain, Edge::Stream, "drift", 1).is_ok());
    let e = check_edge(&plain, Edge::Stream, "drift", 2).unwrap_err().to_string();
    assert!(e.contains("drift judges windows of at least 2 values"), "{e}");
    assert!(check_edge(&plain, Edge::Batch, "drift", 2).is_ok());
    let bad = |o: Vec<agent::Option>| {
        let mut options = vec![opt::call("field", vec![opt::s("x"), opt::s(""), opt::s("")])];
        options.extend(o);
        validate(&options, 3, &Drift::options()).unwrap_err().to_string()
    };
    assert!(
        bad(vec![opt::call("every", vec![opt::dur(MIN_NS)])]).starts_with("option every needs")
    );
    assert!(
        bad(vec![opt::call("period", vec![opt::dur(MIN_NS)])]).starts_with("option period needs")
    );
    assert!(
        bad(vec![
            opt::call("period", vec![opt::dur(0)]),
            opt::call("every", vec![opt::dur(MIN_NS)])
        ])
        .starts_with("option period must be positive")
    );
}

/// The (group, field)s a node lists for persisting: each once however
/// many windows scored it, each group's fields together (groups in order
/// of their names), none unless states are kept; taking them empties
/// the list, and the updates taken then are the state after every window.
#[test]
fn scored_fields_are_listed_once_each_group_together_until_taken() {
    let key = |g: &str, f: &str| FieldKey { group: g.into(), field: f.into() };
    let mut n = node(&["a", "b"]);
    n.keep_states(true);
    n.process(&batch("host=1", 5, vec![point(4, &[("a", 1.0)])])).unwrap();
    n.process(&flat("host=2", 10, 1.0, 2.0)).unwrap();
    // host=1 again: a once more, b for the first time (after host=2's).
    n.process(&flat("host=1", 20, 3.0, 4.0)).unwrap();
    n.process(&flat("host=1", 30, 5.0, 6.0)).unwrap();
    assert_eq!(n.dirty_len(), 4);
    let listed = n.take_dirty();
    assert_eq!(
        listed,
        [key("host=1", "a"), key("host=1", "b"), key("host=2", "a"), key("host=2", "b")]
    );
    assert_eq!(n.dirty_len(), 0);
    assert!(n.take_updates().unwrap().is_empty(), "taken once");
    // What is handed out now is the state after all the windows.
    let update = n.field_update(&key("host=1", "a"), false).unwrap();
    let StateChange::Whole { state, .. } = &update.change else { panic!("whole") };
    let mut d = Drift::new(&Options::new(vec![("limit".into(), Value::Double(1.0))])).unwrap();
    d.load(state).unwrap();
    assert_eq!((d.n, d.sum), (11, 1.0 + 5.0 * 3.0 + 5.0 * 5.0));
    assert_eq!(update.provenance.last_time, 30);
    // Scored again: listed again.
    n.process(&flat("host=2", 40, 1.0, 1.0)).unwrap();
    assert_eq!(n.take_dirty(), [key("host=2", "a"), key("host=2", "b")]);
}

/// A stream group idle past `idle` leaves memory only once its state was
/// taken for persisting: until then the store does not hold it.
#[test]
fn an_idle_stream_group_stays_until_its_state_is_taken() {
    struct Nothing;
    impl StateSource for Nothing {
        fn fetch(&self, _: &str, _: &str) -> Result<Option<FieldState>, String> {
            Ok(None)
        }
    }
    let mut n = node(&["x"]);
    n.keep_states(true);
    n.stream_edges(600 * 1_000_000_000);
    n.state_source(Box::new(Nothing));
    let feed = |n: &mut Node, points: Vec<agent::Point>| {
        points.into_iter().for_each(|p| {
            n.process_point(p).unwrap();
        })
    };
    feed(&mut n, stream_points("a", 0, 10, |_| 1.0));
    // b runs on for an hour; a's state was never taken: a stays.
    feed(&mut n, stream_points("b", 100, 360, |_| 1.0));
    assert_eq!((n.held(), n.stats().evicted), (2, 0), "a is held until taken");
    let taken = n.take_dirty();
    assert!(taken.iter().any(|k| k.group == "host=a"), "{taken:?}");
    // Taken (as a commit does): the next sweep lets it go.
    feed(&mut n, stream_points("b", 3700, 360, |_| 1.0));
    assert_eq!((n.held(), n.stats().evicted), (1, 1), "a was evicted");
}
