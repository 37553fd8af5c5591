//! Stream edges (issue 12): `tickwatch serve --edge stream` takes points
//! one at a time and forms Kapacitor's windows itself. Checked against a
//! batch-edge node fed the windows `|window()` would cut from the same
//! points: equal verdicts, with gaps, many groups and idle eviction, and
//! across a restart (and a SIGKILL) mid-stream; `.passThrough()` gives every
//! input point back unchanged but for the verdict fields.

use std::collections::HashMap;
use std::path::Path;

use tickwatch_engine::kapacitor::{Batch, UdfClient, Windower, group_id};
use tickwatch_engine::scenario;
use tickwatch_proto::agent;

use crate::support::{self, FIVE_MIN, Verdict, o, verdicts};

const FIELDS: [&str; 3] = ["hotend", "bed", "air"];
const MIN: i64 = 60_000_000_000;

/// `.period(period).every(every)` on top of `@tTest().field(…).size().alpha()`.
fn stream_options(fields: &[&str], period: i64, every: i64) -> Vec<agent::Option> {
    let mut opts = support::ttest_options(fields, 3600, 0.001);
    opts.push(o::call("period", vec![o::dur(period)]));
    opts.push(o::call("every", vec![o::dur(every)]));
    opts
}

/// A started stream-edge ttest node on `state_dir`.
fn stream_node(state_dir: &Path, options: Vec<agent::Option>, extra: &[&str]) -> UdfClient {
    let mut args = vec!["--edge", "stream"];
    args.extend_from_slice(extra);
    let mut udf = support::spawn_in(state_dir, &args);
    let info = udf.info().expect("info");
    assert_eq!(info.wants, agent::EdgeType::Stream as i32);
    assert_eq!(info.provides, agent::EdgeType::Stream as i32);
    let r = udf.init("print_temps", "tTestStream2", options).expect("init");
    assert!(r.success, "init refused: {}", r.error);
    udf
}

/// The printer day(s) as Kapacitor's `|from().groupBy('printer')` sends
/// them on a stream edge: named points with their group id and dimensions,
/// interleaved by time. `keep` drops readings (gaps).
fn day_points(printers: &[(&str, u64)], keep: impl Fn(&str, i64) -> bool) -> Vec<agent::Point> {
    let days: Vec<(String, Vec<scenario::Reading>)> = printers
        .iter()
        .map(|(name, seed)| (name.to_string(), scenario::printer_day(*seed)))
        .collect();
    let mut out = Vec::new();
    for i in 0..scenario::READINGS {
        for (name, day) in &days {
            let tags = HashMap::from([("printer".to_string(), name.clone())]);
            let mut p = day[i].to_point(&tags);
            if !keep(name, p.time) {
                continue;
            }
            p.dimensions = vec!["printer".into()];
            p.group = group_id(&p.name, false, &p.dimensions, &p.tags);
            out.push(p);
        }
    }
    out
}

/// The windows `|window().period().every()` cuts from `points` (grouped by
/// printer), as a batch-edge node receives them.
fn windows_of(points: &[agent::Point], period: i64, every: i64) -> Vec<Batch> {
    let mut w = Windower::new(period, every, &["printer"]);
    points.iter().filter_map(|p| w.push(p.clone())).collect()
}

/// Sends `points` in chunks (a live stream, not one write), closes, and
/// returns what came out; asserts a clean end.
fn run_stream(mut udf: UdfClient, points: &[agent::Point]) -> Vec<agent::Point> {
    for chunk in points.chunks(5000) {
        udf.send_points(chunk).expect("send points");
    }
    let closed = udf.close().expect("close");
    assert_eq!(closed.error, None, "unexpected ErrorResponse");
    if let Some(st) = closed.status {
        assert!(st.success(), "tickwatch exited with {st}");
    }
    closed.points
}

/// `assert_eq!` for long verdict lists: names the first difference.
fn same(got: &[Verdict], want: &[Verdict], what: &str) {
    if let Some(i) = got.iter().zip(want).position(|(g, w)| g != w) {
        panic!("{what}: verdict {i} differs: got {:?}, want {:?}", got[i], want[i]);
    }
    assert_eq!(got.len(), want.len(), "{what}: verdict counts differ");
}

fn sorted(mut v: Vec<Verdict>) -> Vec<Verdict> {
    v.sort_by(|a, b| (&a.group, &a.field, a.time).cmp(&(&b.group, &b.field, b.time)));
    v
}

/// Verdicts of a batch-edge node fed `batches`.
fn batch_verdicts(batches: &[Batch]) -> Vec<Verdict> {
    sorted(verdicts(&support::run_all(support::node(&FIELDS, 3600, 0.001), batches)))
}

#[test]
fn stream_mode_equals_batch_mode_fed_the_same_windows() {
    let points = day_points(&[("a", 21), ("b", 22)], |_, _| true);
    for (period, every) in [(FIVE_MIN, FIVE_MIN), (15 * MIN, FIVE_MIN)] {
        let want = batch_verdicts(&windows_of(&points, period, every));
        let udf =
            stream_node(&support::fresh_state_dir(), stream_options(&FIELDS, period, every), &[]);
        let out = run_stream(udf, &points);
        for p in &out {
            assert_eq!(p.dimensions, ["field", "printer"]);
            assert_eq!(p.group, format!("field={},printer={}", p.tags["field"], p.tags["printer"]));
        }
        let got = sorted(verdicts(&out));
        assert!(want.len() > 500, "too few verdicts to compare: {}", want.len());
        same(&got, &want, &format!("period {period} every {every}"));
    }
}

#[test]
fn gaps_restart_the_windows_from_the_data_as_kapacitor_does() {
    // Printer a misses an hour and a quarter, b five minutes and a second.
    let gap = |name: &str, t: i64| {
        let s = (t - scenario::START_NS) / 1_000_000_000;
        match name {
            "a" => !(7200..11700).contains(&s),
            _ => !(30000..30301).contains(&s),
        }
    };
    let points = day_points(&[("a", 31), ("b", 32)], gap);
    let want = batch_verdicts(&windows_of(&points, FIVE_MIN, FIVE_MIN));
    // A gap longer than --idle-evict would evict a's open window (see
    // many_groups_with_idle_eviction…); this one stays under it.
    let udf = stream_node(
        &support::fresh_state_dir(),
        stream_options(&FIELDS, FIVE_MIN, FIVE_MIN),
        &["--idle-evict", "2h"],
    );
    let got = sorted(verdicts(&run_stream(udf, &points)));
    same(&got, &want, "gaps");
    // The window closed by a's first point after the gap ends one every
    // after the last point before it; the next one follows the data.
    let a_hotend: Vec<i64> = got
        .iter()
        .filter(|v| v.group == "a" && v.field == "hotend")
        .map(|v| support::second(v.time))
        .collect();
    assert!(a_hotend.contains(&7200), "{a_hotend:?}");
    assert!(a_hotend.contains(&(11700 + 300)), "{a_hotend:?}");
    assert!(!a_hotend.iter().any(|s| (7201..12000).contains(s)), "{a_hotend:?}");
}

/// The fields of a pass-through point without the verdict fields.
fn strip(p: &agent::Point, names: &[String]) -> agent::Point {
    let mut q = p.clone();
    for n in names {
        q.fields_bool.remove(n);
        q.fields_double.remove(n);
    }
    q
}

#[test]
fn pass_through_keeps_every_input_point_and_field_unchanged() {
    let points = day_points(&[("a", 41), ("b", 42)], |_, _| true);
    let mut opts = stream_options(&FIELDS, FIVE_MIN, FIVE_MIN);
    opts.push(o::call("passThrough", vec![]));
    let udf = stream_node(&support::fresh_state_dir(), opts, &[]);
    let out = run_stream(udf, &points);
    let names: Vec<String> =
        FIELDS.iter().flat_map(|f| [format!("{f}_anomalous"), format!("{f}_pvalue")]).collect();
    // Each group's last open window (from its last every boundary) is never
    // closed, as Kapacitor's window node drops it at task stop; every other
    // point comes back, in order, unchanged but for the verdict fields.
    let batches = windows_of(&points, FIVE_MIN, FIVE_MIN);
    for printer in ["a", "b"] {
        let group = format!("printer={printer}");
        let last_end = batches.iter().filter(|b| b.end.group == group).map(|b| b.end.tmax).max();
        let last_end = last_end.expect("windows");
        let sent: Vec<&agent::Point> =
            points.iter().filter(|p| p.group == group && p.time < last_end).collect();
        let back: Vec<&agent::Point> = out.iter().filter(|p| p.group == group).collect();
        assert_eq!(back.len(), sent.len(), "printer {printer}");
        for (s, b) in sent.iter().zip(&back) {
            assert_eq!(&strip(b, &names), *s);
        }
    }
    // The verdict on each point is its window's, as a batch node gives it.
    let want = batch_verdicts(&batches);
    let by_window: HashMap<(String, String, i64), &Verdict> =
        want.iter().map(|v| ((v.group.clone(), v.field.clone(), v.time), v)).collect();
    let mut checked = 0;
    for p in &out {
        let end = p.time - (p.time - scenario::START_NS) % FIVE_MIN + FIVE_MIN;
        for f in FIELDS {
            let key = (p.tags["printer"].clone(), f.to_string(), end);
            match by_window.get(&key) {
                Some(v) => {
                    assert_eq!(p.fields_bool[&format!("{f}_anomalous")], v.anomalous);
                    assert_eq!(p.fields_double[&format!("{f}_pvalue")], v.pvalue);
                    checked += 1;
                }
                // The first window seeds the history: no verdict to add.
                None => assert!(!p.fields_bool.contains_key(&format!("{f}_anomalous"))),
            }
        }
    }
    assert!(checked > 100_000, "{checked}");
}

#[test]
fn pass_through_on_batch_edges_and_one_field_uses_plain_names() {
    let batches = support::day_batches(&[("a", 43)]);
    let mut udf = support::spawn(&[]);
    udf.info().expect("info");
    let mut opts = support::ttest_options(&["hotend"], 3600, 0.001);
    opts.push(o::call("passThrough", vec![]));
    let r = udf.init("t", "n", opts).expect("init");
    assert!(r.success, "{}", r.error);
    let out = support::run_all(udf, &batches);
    let sent: Vec<&agent::Point> = batches.iter().flat_map(|b| &b.points).collect();
    assert_eq!(out.len(), sent.len());
    let names = ["anomalous".to_string(), "pvalue".to_string()];
    let mut flagged = 0;
    for (b, s) in out.iter().zip(sent) {
        let q = strip(b, &names);
        assert_eq!((q.time, &q.tags, &q.fields_double), (s.time, &s.tags, &s.fields_double));
        assert_eq!(b.name, "temperatures");
        assert_eq!(b.dimensions, ["printer"]);
        assert_eq!(b.group, "printer=a");
        flagged += usize::from(b.fields_bool.get("anomalous") == Some(&true));
    }
    assert!(flagged >= 300, "the hotend fault's window is flagged: {flagged}");
}

#[test]
fn init_refuses_window_options_that_do_not_fit_the_edge() {
    let refused = |edge: &[&str], opts: Vec<agent::Option>| -> String {
        let mut udf = support::spawn(edge);
        udf.info().expect("info");
        let r = udf.init("t", "n", opts).expect("init");
        assert!(!r.success);
        r.error
    };
    let e = refused(&[], stream_options(&FIELDS, FIVE_MIN, FIVE_MIN));
    assert!(e.contains("for stream edges") && e.contains("--edge stream"), "{e}");
    let e = refused(&["--edge", "stream"], support::ttest_options(&FIELDS, 3600, 0.001));
    assert!(e.contains("detector ttest judges windows of at least 2 values"), "{e}");
    let mut only_every = support::ttest_options(&FIELDS, 3600, 0.001);
    only_every.push(o::call("every", vec![o::dur(FIVE_MIN)]));
    let e = refused(&["--edge", "stream"], only_every);
    assert!(e.starts_with("option every needs .period() too"), "{e}");
    let e = refused(&["--edge", "stream"], stream_options(&FIELDS, -FIVE_MIN, FIVE_MIN));
    assert!(e.starts_with("option period must be positive"), "{e}");
}

#[test]
fn a_batch_on_a_stream_edge_ends_the_task_with_the_reason() {
    let mut udf =
        stream_node(&support::fresh_state_dir(), stream_options(&FIELDS, FIVE_MIN, FIVE_MIN), &[]);
    let batches = support::day_batches(&[("a", 1)]);
    udf.send_batch(&batches[0]).expect("send");
    let closed = udf.close().expect("close");
    let e = closed.error.expect("an ErrorResponse");
    assert!(e.contains("served with --edge stream"), "{e}");
    assert!(!closed.status.expect("status").success());
}

#[test]
fn zscore_scores_every_point_when_no_period_is_given() {
    let points: Vec<agent::Point> =
        day_points(&[("a", 51)], |_, t| (t - scenario::START_NS) < 3 * 3600 * 1_000_000_000);
    let opts = || {
        let mut o = support::field_calls(&["hotend"]);
        o.push(o::call("size", vec![o::i(600)]));
        o
    };
    let dir = support::fresh_state_dir();
    let mut udf =
        support::spawn_detector("zscore", &support::plugin_dir(), &dir, &["--edge", "stream"]);
    udf.info().expect("info");
    let r = udf.init("t", "z", opts()).expect("init");
    assert!(r.success, "{}", r.error);
    let got = verdicts_with_field(&run_stream(udf, &points));
    // The same as a batch-edge node fed one-point windows.
    let one_point: Vec<Batch> = points
        .iter()
        .map(|p| {
            let tags = HashMap::from([("printer".to_string(), "a".to_string())]);
            Batch {
                begin: agent::BeginBatch {
                    name: p.name.clone(),
                    group: p.group.clone(),
                    tags: tags.clone(),
                    size: 1,
                    by_name: false,
                },
                points: vec![agent::Point { name: String::new(), ..p.clone() }],
                end: agent::EndBatch {
                    name: p.name.clone(),
                    group: p.group.clone(),
                    tmax: p.time,
                    tags,
                    by_name: false,
                },
                ..Batch::default()
            }
        })
        .collect();
    let mut batch =
        support::spawn_detector("zscore", &support::plugin_dir(), &support::fresh_state_dir(), &[]);
    batch.info().expect("info");
    assert!(batch.init("t", "z", opts()).expect("init").success);
    let want = verdicts_with_field(&support::run_all(batch, &one_point));
    assert!(want.len() > points.len() / 2, "{} verdicts", want.len());
    assert_eq!(got, want);
}

/// (time, pvalue, anomalous) per emitted point.
fn verdicts_with_field(points: &[agent::Point]) -> Vec<(i64, String, f64, bool)> {
    points
        .iter()
        .map(|p| {
            (p.time, p.tags["field"].clone(), p.fields_double["pvalue"], p.fields_bool["anomalous"])
        })
        .collect()
}

/// Stops an hour in (5 m windows): the stream sent to the node that is
/// restarted. Points of [STOP - 5 m, STOP) are in its open window when it
/// stops, so they are lost with it, exactly as a gap there would lose them.
const STOP_S: i64 = 3 * 3600;

fn before_stop(t: i64) -> bool {
    (t - scenario::START_NS) / 1_000_000_000 < STOP_S
}

#[test]
fn a_restart_mid_stream_continues_from_the_persisted_state() {
    restart_mid_stream(false);
}

#[test]
fn a_sigkill_mid_stream_loses_nothing_that_was_emitted() {
    restart_mid_stream(true);
}

fn restart_mid_stream(kill: bool) {
    let points = day_points(&[("a", 61), ("b", 62)], |_, _| true);
    let (first, rest): (Vec<_>, Vec<_>) = points.into_iter().partition(|p| before_stop(p.time));
    // One node without a stop, whose input has the gap the stop makes.
    let gapped: Vec<agent::Point> = first
        .iter()
        .filter(|p| (p.time - scenario::START_NS) / 1_000_000_000 < STOP_S - 300)
        .chain(&rest)
        .cloned()
        .collect();
    let opts = || stream_options(&FIELDS, FIVE_MIN, FIVE_MIN);
    let want = sorted(verdicts(&run_stream(
        stream_node(&support::fresh_state_dir(), opts(), &[]),
        &gapped,
    )));
    let expected_first = want
        .iter()
        .filter(|v| (v.time - scenario::START_NS) / 1_000_000_000 <= STOP_S - 300)
        .count();
    let dir = support::fresh_state_dir();
    let mut udf = stream_node(&dir, opts(), &[]);
    udf.send_points(&first).expect("send");
    let mut got = if kill {
        // Everything emitted is committed: a SIGKILL right after loses none of it.
        udf.wait_points(expected_first).expect("points before the kill");
        let pts = udf.take_points();
        udf.kill().expect("kill");
        verdicts(&pts)
    } else {
        verdicts(&udf.close().expect("close").points)
    };
    assert_eq!(got.len(), expected_first);
    got.extend(verdicts(&run_stream(stream_node(&dir, opts(), &[]), &rest)));
    same(&sorted(got), &want, "restart");
}

#[test]
fn many_groups_with_idle_eviction_come_back_with_their_state() {
    // 60 printers over 4 hours of 10 s readings; printers 0–19 pause from
    // 1:00 to 2:30, longer than --idle-evict 30m, and come back.
    let start = scenario::START_NS;
    let sec = 1_000_000_000;
    let point = |printer: usize, t: i64| {
        let name = format!("p{printer:02}");
        let wave = ((t - start) as f64 / 600e9 + printer as f64).sin();
        let mut p = agent::Point {
            name: "temperatures".into(),
            time: t,
            tags: HashMap::from([("printer".to_string(), name)]),
            fields_double: HashMap::from([
                ("hotend".to_string(), 210.0 + wave + (t / sec % 7) as f64 * 0.1),
                ("bed".to_string(), 60.0 + wave * 0.5 + (t / sec % 5) as f64 * 0.1),
            ]),
            ..Default::default()
        };
        p.dimensions = vec!["printer".into()];
        p.group = group_id(&p.name, false, &p.dimensions, &p.tags);
        p
    };
    let paused =
        |printer: usize, t: i64| printer < 20 && (3600..9000).contains(&((t - start) / sec));
    let mut points = Vec::new();
    for k in 0..(4 * 360) {
        let t = start + k * 10 * sec;
        for printer in 0..60 {
            if !paused(printer, t) {
                points.push(point(printer, t));
            }
        }
    }
    let dir = support::fresh_state_dir();
    let opts = || {
        let mut o = support::ttest_options(&["hotend", "bed"], 600, 0.001);
        o.push(o::call("period", vec![o::dur(FIVE_MIN)]));
        o.push(o::call("every", vec![o::dur(FIVE_MIN)]));
        o
    };
    let mut udf = stream_node(&dir, opts(), &["--idle-evict", "30m"]);
    let split = points.partition_point(|p| p.time < start + 2 * 3600 * sec);
    udf.send_points(&points[..split]).expect("send");
    // A snapshot taken while 20 groups are evicted still holds every
    // (group, field): the evicted ones are read back from the store.
    let snap = udf.snapshot().expect("snapshot");
    let decoded = tickwatch_state::Snapshot::decode(&snap).expect("decode");
    assert_eq!(decoded.fields.len(), 60 * 2);
    // `tickwatch state show` on the live node (its control socket) lists
    // them too, evicted ones from the store.
    let out = support::tickwatch()
        .args(["state", "show", "--task", "print_temps", "--node", "tTestStream2", "--json"])
        .arg("--state-dir")
        .arg(&dir)
        .arg("--plugin-dir")
        .arg(support::plugin_dir())
        .output()
        .expect("tickwatch state");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 60 * 2);
    assert!(rows.iter().any(|r| r["group"] == "printer=p00" && r["field"] == "bed"));
    udf.send_points(&points[split..]).expect("send");
    let closed = udf.close().expect("close");
    assert_eq!(closed.error, None);
    let got = sorted(verdicts(&closed.points));
    // The batch node's view: an evicted group's window starts afresh from
    // its next point (its open window left memory with it), so its windows
    // are those of two separate streams; its detector state is the same.
    let mut batches = Vec::new();
    let mut w = Windower::new(FIVE_MIN, FIVE_MIN, &["printer"]);
    let mut after = Windower::new(FIVE_MIN, FIVE_MIN, &["printer"]);
    for p in &points {
        let printer: usize = p.tags["printer"][1..].parse().expect("printer number");
        let back = printer < 20 && (p.time - start) / sec >= 9000;
        batches.extend(if back { after.push(p.clone()) } else { w.push(p.clone()) });
    }
    let mut batch = support::spawn_in(&support::fresh_state_dir(), &[]);
    batch.info().expect("info");
    let bopts = support::ttest_options(&["hotend", "bed"], 600, 0.001);
    assert!(batch.init("t", "n", bopts).expect("init").success);
    let want = sorted(verdicts(&support::run_all(batch, &batches)));
    same(&got, &want, "eviction");
    // Evicted groups came back with their history: verdicts right after
    // their return (a fresh detector would only seed its history).
    let back_at = start + 9000 * sec + FIVE_MIN;
    assert!(got.iter().any(|v| v.group == "p00" && v.time == back_at), "p00 resumes at once");
}

#[test]
fn replay_in_stream_mode_prints_what_batch_mode_prints() {
    let dir = support::private_dir();
    let data = dir.path().join("two.lp");
    let mut lines = String::new();
    for (printer, seed) in [("a", 71u64), ("b", 72)] {
        // From 00:00:20, so that --align moves the window ends.
        for r in scenario::printer_day(seed).iter().skip(20).take(6 * 3600) {
            lines.push_str(&r.line_protocol(&format!("printer={printer}"), &["bed"]));
            lines.push('\n');
        }
    }
    std::fs::write(&data, lines).expect("write data");
    let run = |extra: &[&str]| {
        let out = support::tickwatch()
            .args(["replay", data.to_str().expect("utf-8"), "--precision", "s"])
            .args(["--detector", "ttest", "--group-by", "printer", "--json"])
            .args(["--udf", ".field('hotend','bed','air').size(3600).alpha(0.001)"])
            .args(extra)
            .arg("--plugin-dir")
            .arg(support::plugin_dir())
            .output()
            .expect("run replay");
        assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let aligned = run(&["--window", "5m", "--align"]);
    assert_ne!(aligned, run(&["--window", "5m"]), "--align moves the window ends");
    for window in [
        &["--window", "5m"][..],
        &["--window", "15m", "--every", "5m"],
        &["--window", "5m", "--align"],
    ] {
        let batch = run(window);
        let stream = run(&[window, &["--edge", "stream"][..]].concat());
        assert!(batch.lines().count() > 300, "{batch}");
        assert_eq!(stream, batch, "{window:?}");
    }
}

#[test]
fn a_plugin_built_before_min_window_loads_and_windows_only() {
    let plugins = support::test_plugin_dir();
    let dir = support::fresh_state_dir();
    let init = |extra: Vec<agent::Option>| {
        let mut udf = support::spawn_detector("old", &plugins, &dir, &["--edge", "stream"]);
        udf.info().expect("info");
        let mut opts = support::field_calls(&["x"]);
        opts.extend(extra);
        let r = udf.init("t", "old", opts).expect("init");
        drop(udf.close());
        r
    };
    // Its bytes past the descriptor size say 1; the host reads the default.
    let r = init(vec![]);
    assert!(!r.success);
    assert!(r.error.contains("detector old judges windows of at least 2 values"), "{}", r.error);
    let r = init(vec![
        o::call("period", vec![o::dur(FIVE_MIN)]),
        o::call("every", vec![o::dur(FIVE_MIN)]),
    ]);
    assert!(r.success, "{}", r.error);
}

#[test]
fn socket_mode_serves_stream_edges_on_every_connection() {
    let server =
        crate::socket::Server::start_args("ttest", &support::plugin_dir(), &["--edge", "stream"]);
    let points = day_points(&[("a", 91), ("b", 92)], |_, t| {
        t - scenario::START_NS < 6 * 3600 * 1_000_000_000
    });
    let want = batch_verdicts(&windows_of(&points, FIVE_MIN, FIVE_MIN));
    for node in ["s1", "s2"] {
        let mut c = server.connect();
        let info = c.info().expect("info");
        assert_eq!(info.wants, agent::EdgeType::Stream as i32);
        let r = c.init("t", node, stream_options(&FIELDS, FIVE_MIN, FIVE_MIN)).expect("init");
        assert!(r.success, "{}", r.error);
        let got = sorted(verdicts(&run_stream(c, &points)));
        same(&got, &want, node);
    }
}

#[test]
fn aligned_stream_windows_equal_window_align() {
    // The first reading at 00:00:20: aligned windows end on 5-minute marks.
    let points = day_points(&[("a", 95), ("b", 96)], |_, t| {
        let s = (t - scenario::START_NS) / 1_000_000_000;
        (20..6 * 3600).contains(&s)
    });
    let mut w = Windower::new(FIVE_MIN, FIVE_MIN, &["printer"]).align(true);
    let batches: Vec<Batch> = points.iter().filter_map(|p| w.push(p.clone())).collect();
    assert_eq!((batches[0].end.tmax - scenario::START_NS) % FIVE_MIN, 0);
    let want = batch_verdicts(&batches);
    let mut opts = stream_options(&FIELDS, FIVE_MIN, FIVE_MIN);
    opts.push(o::call("align", vec![]));
    let udf = stream_node(&support::fresh_state_dir(), opts, &[]);
    let got = sorted(verdicts(&run_stream(udf, &points)));
    same(&got, &want, "aligned");
    assert!(got.iter().all(|v| (v.time - scenario::START_NS) % FIVE_MIN == 0));
}
