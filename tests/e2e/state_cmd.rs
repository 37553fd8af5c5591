//! `tickwatch state`: list/show on stopped and live nodes, export/import
//! round trip, reset, and refusals while a node runs.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support;

fn state(dir: &Path, args: &[&str]) -> Output {
    support::tickwatch()
        .arg("state")
        .args(args)
        .arg("--state-dir")
        .arg(dir)
        .arg("--plugin-dir")
        .arg(support::plugin_dir())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(state(dir, args))).unwrap()
}

/// A state dir with one stopped node (two printers, hotend and bed, 40
/// windows each).
fn stopped_node() -> std::path::PathBuf {
    let dir = support::fresh_state_dir();
    let batches = support::day_batches(&[("a", 81), ("b", 82)]);
    support::run_all(support::node_in(&dir, &["hotend", "bed"], 3600, 0.001), &batches[..80]);
    dir
}

fn check_show(rows: &Value, tmax: i64) {
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4, "2 printers × 2 fields");
    for r in rows {
        for key in ["task", "node", "group", "field", "detector", "last_time", "summary"] {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
        assert_eq!(r["task"], "print_temps");
        assert_eq!(r["node"], "tTest2");
        assert_eq!(r["detector"], "ttest");
        assert_eq!(r["last_time_ns"], tmax);
        let s = &r["summary"];
        assert_eq!(s["size"], 3600);
        assert_eq!(s["n"], 3600, "40 windows of 300 values fill the history");
        let (mean, sd) = (s["mean"].as_f64().unwrap(), s["stddev"].as_f64().unwrap());
        match r["field"].as_str().unwrap() {
            "hotend" => assert!((mean - 220.0).abs() < 0.1 && (sd - 0.5).abs() < 0.05, "{s}"),
            "bed" => assert!((mean - 90.0).abs() < 0.2 && (sd - 1.0).abs() < 0.1, "{s}"),
            f => panic!("unexpected field {f}"),
        }
    }
}

#[test]
fn list_and_show_a_stopped_node() {
    let dir = stopped_node();
    let tmax = support::day_batches(&[("a", 81), ("b", 82)])[79].end.tmax;
    let listed = json(&dir, &["list", "--json"]);
    let node = &listed.as_array().unwrap()[0];
    assert_eq!(
        (node["task"].as_str(), node["node"].as_str()),
        (Some("print_temps"), Some("tTest2"))
    );
    assert_eq!(node["running"], false);
    assert_eq!(node["fields"].as_array().unwrap().len(), 4);
    check_show(&json(&dir, &["show", "--task", "print_temps", "--node", "tTest2", "--json"]), tmax);
    let one = json(
        &dir,
        &[
            "show",
            "--task",
            "print_temps",
            "--node",
            "tTest2",
            "--field",
            "bed",
            "--group",
            "printer=b",
            "--json",
        ],
    );
    assert_eq!(one.as_array().unwrap().len(), 1);
    let human = ok(state(&dir, &["show", "--task", "print_temps", "--node", "tTest2"]));
    assert!(
        human.contains("GROUP") && human.contains("printer=a") && human.contains("n=3600"),
        "{human}"
    );
    let human = ok(state(&dir, &["list"]));
    assert!(human.contains("stopped") && human.contains("hotend"), "{human}");
}

#[test]
fn list_and_show_a_live_node_through_its_control_socket() {
    let dir = support::fresh_state_dir();
    let batches = support::day_batches(&[("a", 81), ("b", 82)]);
    let mut live = support::node_in(&dir, &["hotend", "bed"], 3600, 0.001);
    for b in &batches[..80] {
        live.send_batch(b).unwrap();
    }
    live.snapshot().unwrap(); // all 80 batches processed and committed
    assert_eq!(live.take_points().len(), 2 * 39 * 2, "2 printers × 39 scored windows × 2 fields");
    let listed = json(&dir, &["list", "--json"]);
    assert_eq!(listed[0]["running"], true);
    check_show(
        &json(&dir, &["show", "--task", "print_temps", "--node", "tTest2", "--json"]),
        batches[79].end.tmax,
    );
    // Changes are refused while it runs, and it keeps working.
    let out = state(&dir, &["reset", "--task", "print_temps", "--node", "tTest2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop its task first"));
    live.send_batch(&batches[80]).unwrap();
    let closed = live.close().unwrap();
    assert_eq!(closed.points.len(), 2, "one printer's window, two fields");
}

#[test]
fn export_reset_import_round_trips_exactly() {
    let dir = stopped_node();
    let exported = ok(state(&dir, &["export", "--task", "print_temps", "--node", "tTest2"]));
    let file = dir.join("export.json");
    std::fs::write(&file, &exported).unwrap();
    ok(state(
        &dir,
        &[
            "reset",
            "--task",
            "print_temps",
            "--node",
            "tTest2",
            "--field",
            "hotend",
            "--group",
            "printer=a",
        ],
    ));
    let after_reset = json(&dir, &["show", "--task", "print_temps", "--node", "tTest2", "--json"]);
    assert_eq!(after_reset.as_array().unwrap().len(), 3);
    ok(state(&dir, &["reset", "--task", "print_temps", "--node", "tTest2"]));
    assert!(json(&dir, &["list", "--json"]).as_array().unwrap().is_empty());
    ok(state(&dir, &["import", file.to_str().unwrap()]));
    let again = ok(state(&dir, &["export", "--task", "print_temps", "--node", "tTest2"]));
    assert_eq!(again, exported);
    // The imported state drives the node exactly as before.
    let batches = support::day_batches(&[("a", 81), ("b", 82)]);
    let want = support::verdicts(&support::run_all(
        support::node(&["hotend", "bed"], 3600, 0.001),
        &batches[..100],
    ));
    let got = support::verdicts(&support::run_all(
        support::node_in(&dir, &["hotend", "bed"], 3600, 0.001),
        &batches[80..100],
    ));
    assert_eq!(got, want[want.len() - got.len()..]);
    assert_eq!(got.len(), 20 * 2, "20 windows (10 per printer), 2 fields");
}

#[test]
fn missing_nodes_and_bad_imports_are_clear_errors() {
    let dir = support::fresh_state_dir();
    let out = state(&dir, &["show", "--task", "nope", "--node", "n"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no state for task \"nope\""));
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"format":"something-else","version":1,"task":"t","node":"n","fields":[]}"#,
    )
    .unwrap();
    let out = state(&dir, &["import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a tickwatch state export"));
}

#[test]
fn state_set_aside_is_listed_with_its_reason() {
    let dir = stopped_node();
    // Same task and node, new options: the old history is set aside.
    support::run_all(support::node_in(&dir, &["hotend", "bed"], 600, 0.01), &[]);
    let rows = json(&dir, &["aside", "--task", "print_temps", "--node", "tTest2", "--json"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4, "2 printers × 2 fields");
    for r in rows {
        assert_eq!(r["options"], serde_json::json!({"size": 3600}));
        assert!(r["reason"].as_str().unwrap().contains("size 3600 (node uses 600)"), "{r}");
    }
    let human = ok(state(&dir, &["aside", "--task", "print_temps", "--node", "tTest2"]));
    assert!(human.contains("WHY") && human.contains("printer=a"), "{human}");
    // The node itself starts fresh under its new options.
    assert!(
        json(&dir, &["show", "--task", "print_temps", "--node", "tTest2", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// Regression: a truncated database made sled panic inside `state list`
/// (exit 101). Every truncation point must now list the node, readable or
/// marked unreadable with the reason, and exit 0.
#[test]
fn state_list_marks_a_damaged_node_unreadable_and_carries_on() {
    let pristine = stopped_node();
    let db = Path::new("nodes").join("print_temps~tTest2").join("db").join("db");
    let used = {
        let bytes = std::fs::read(pristine.join(&db)).unwrap();
        bytes.iter().rposition(|b| *b != 0).unwrap_or(0) as u64
    };
    let mut unreadable = 0;
    for i in 0..12u64 {
        let at = (used * i / 10) & !4095;
        let dir = support::fresh_state_dir();
        support::copy_tree(&pristine, &dir);
        std::fs::OpenOptions::new().write(true).open(dir.join(&db)).unwrap().set_len(at).unwrap();
        let nodes = json(&dir, &["list", "--json"]);
        let node = &nodes.as_array().unwrap()[0];
        match node["error"].as_str() {
            Some(e) => {
                assert!(e.contains("corrupt or unreadable"), "truncated at {at}: {e}");
                unreadable += 1;
            }
            None => assert_eq!(node["node"], "tTest2", "truncated at {at}: {node}"),
        }
    }
    eprintln!("{unreadable} of 12 truncation points listed as unreadable");
}

fn aside_rows(dir: &Path) -> Vec<Value> {
    json(dir, &["aside", "--task", "print_temps", "--node", "tTest2", "--json"])
        .as_array()
        .unwrap()
        .clone()
}

/// Issue 11: `alpha` does not shape the t-test's history, `size` does.
/// A restart with another alpha keeps every field's history; one with
/// another size sets it aside; `state adopt` refuses it while the node is
/// configured with the other size, and brings it back once the size is
/// changed back.
#[test]
fn a_new_alpha_keeps_history_a_new_size_sets_it_aside_and_adopt_brings_it_back() {
    let dir = stopped_node(); // size 3600, alpha 0.001, batches[..80]
    let batches = support::day_batches(&[("a", 81), ("b", 82)]);
    let t = |v: &[support::Verdict]| v.iter().map(|v| (v.field.clone(), v.t)).collect::<Vec<_>>();
    let continuous = support::verdicts(&support::run_all(
        support::node(&["hotend", "bed"], 3600, 0.001),
        &batches[..82],
    ));

    // Another alpha: nothing is set aside and the history goes on: the
    // first two windows are scored against the same history as in an
    // uninterrupted run (the t statistic does not depend on alpha).
    let after = support::verdicts(&support::run_all(
        support::node_in(&dir, &["hotend", "bed"], 3600, 0.01),
        &batches[80..82],
    ));
    assert_eq!(after.len(), 4, "2 windows × 2 fields, scored from the first window");
    assert_eq!(t(&after), t(&continuous[continuous.len() - 4..]));
    assert!(aside_rows(&dir).is_empty());
    let kept_until = batches[81].end.tmax;

    // Another size: the 3600-value histories are set aside, with the reason.
    let fresh =
        support::run_all(support::node_in(&dir, &["hotend", "bed"], 600, 0.01), &batches[82..84]);
    assert!(fresh.is_empty(), "a fresh history seeds on its first window");
    let rows = aside_rows(&dir);
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert!(r["reason"].as_str().unwrap().contains("size 3600 (node uses 600)"), "{r}");
    }

    // Adopt refuses while the node is configured with size 600.
    let out = state(&dir, &["adopt", "--task", "print_temps", "--node", "tTest2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is compatible with its current configuration"), "{err}");
    assert!(err.contains("size 3600 (node uses 600)"), "{err}");

    // Back to size 3600: the 600-value states are set aside in turn, and
    // adopt brings the 3600-value history back (the field of one group
    // first, then the rest).
    support::run_all(support::node_in(&dir, &["hotend", "bed"], 3600, 0.01), &[]);
    assert_eq!(aside_rows(&dir).len(), 8);
    let one = ok(state(
        &dir,
        &[
            "adopt",
            "--task",
            "print_temps",
            "--node",
            "tTest2",
            "--group",
            "printer=a",
            "--field",
            "bed",
        ],
    ));
    assert!(one.contains("adopted field bed group printer=a"), "{one}");
    assert_eq!(one.lines().count(), 1, "{one}");
    let rest = ok(state(&dir, &["adopt", "--task", "print_temps", "--node", "tTest2"]));
    assert_eq!(rest.lines().filter(|l| l.starts_with("adopted field")).count(), 3, "{rest}");
    let shown = json(&dir, &["show", "--task", "print_temps", "--node", "tTest2", "--json"]);
    let shown = shown.as_array().unwrap();
    assert_eq!(shown.len(), 4);
    for r in shown {
        assert_eq!(r["summary"]["n"], 3600, "{r}");
        let last = r["last_time_ns"].as_i64().unwrap();
        assert!(last == kept_until || last == batches[80].end.tmax, "{r}");
    }
    // Only the 600-value states are left aside; adopting again refuses.
    let left = aside_rows(&dir);
    assert_eq!(left.len(), 4);
    assert!(
        left.iter().all(|r| r["reason"].as_str().unwrap().contains("size 600 (node uses 3600)")),
        "{left:?}"
    );
    assert!(!state(&dir, &["adopt", "--task", "print_temps", "--node", "tTest2"]).status.success());

    // The node picks the adopted history up: scored from the first window,
    // as in an uninterrupted run that never saw the windows the size-600
    // node had.
    let skipping: Vec<_> = batches[..82].iter().chain(&batches[84..86]).cloned().collect();
    let continuous = support::verdicts(&support::run_all(
        support::node(&["hotend", "bed"], 3600, 0.001),
        &skipping,
    ));
    let resumed = support::verdicts(&support::run_all(
        support::node_in(&dir, &["hotend", "bed"], 3600, 0.01),
        &batches[84..86],
    ));
    assert_eq!(t(&resumed), t(&continuous[continuous.len() - 4..]));
}

#[test]
fn adopt_refuses_a_running_node_and_nodes_without_state_aside() {
    let dir = stopped_node();
    let out = state(&dir, &["adopt", "--task", "print_temps", "--node", "tTest2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no state set aside"));
    let live = support::node_in(&dir, &["hotend", "bed"], 600, 0.001);
    let out = state(&dir, &["adopt", "--task", "print_temps", "--node", "tTest2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the node is running") && err.contains("kapacitor disable"), "{err}");
    live.close().unwrap();
}

/// Asserts `v` carries the time concept as RFC 3339 text (`key`) and as
/// integer nanoseconds (`key_ns`), naming the same instant.
fn assert_time(v: &Value, key: &str) {
    let text = v[key].as_str().unwrap_or_else(|| panic!("{key} is not a string in {v}"));
    let ns = v[format!("{key}_ns")].as_i64().unwrap_or_else(|| panic!("{key}_ns in {v}"));
    let t = humantime::parse_rfc3339(text).unwrap();
    assert_eq!(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64, ns, "{v}");
}

/// Issue 11: one JSON shape per concept across commands: `last_time` is
/// RFC 3339 text beside `last_time_ns` everywhere (`time`/`time_ns` for
/// replay's points), options are JSON objects (not JSON in a string), and
/// `plugins --json` keeps the detector's declaration order.
#[test]
fn every_json_output_has_one_shape_per_concept() {
    let dir = stopped_node();
    support::run_all(support::node_in(&dir, &["hotend", "bed"], 600, 0.01), &[]);
    support::run_all(
        support::node_in(&dir, &["hotend", "bed"], 600, 0.01),
        &support::day_batches(&[("a", 81), ("b", 82)])[..4],
    );
    let listed = json(&dir, &["list", "--json"]);
    for f in listed[0]["fields"].as_array().unwrap() {
        assert_time(f, "last_time");
    }
    for r in json(&dir, &["show", "--task", "print_temps", "--node", "tTest2", "--json"])
        .as_array()
        .unwrap()
    {
        assert_time(r, "last_time");
    }
    let aside = aside_rows(&dir);
    assert_eq!(aside.len(), 4);
    for r in &aside {
        assert_time(r, "last_time");
        assert_eq!(r["options"], serde_json::json!({"size": 3600}), "{r}");
    }
    let export: Value = serde_json::from_str(&ok(state(
        &dir,
        &["export", "--task", "print_temps", "--node", "tTest2"],
    )))
    .unwrap();
    assert_eq!(export["version"], 2);
    for f in export["fields"].as_array().unwrap() {
        assert_time(f, "last_time");
        assert_eq!(f["options"], serde_json::json!({"size": 600}), "{f}");
    }

    let plugins = support::tickwatch()
        .args(["plugins", "--json", "--plugin-dir"])
        .arg(support::plugin_dir())
        .output()
        .unwrap();
    let text = String::from_utf8(plugins.stdout).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    let ttest = all.as_array().unwrap().iter().find(|p| p["name"] == "ttest").unwrap();
    assert!(ttest["options"].is_object());
    // Declaration order (size, alpha, rebaseline), not sorted.
    let from = text.find("\"name\": \"ttest\"").unwrap();
    let at = |k: &str| from + text[from..].find(&format!("\"{k}\": {{")).unwrap();
    assert!(at("size") < at("alpha") && at("alpha") < at("rebaseline"), "{text}");

    let lp = dir.join("in.lp");
    let mut lines = String::new();
    for i in 0..1200i64 {
        lines.push_str(&format!(
            "temps hotend={} {}\n",
            220.0 + (i % 7) as f64 * 0.1,
            i * 1_000_000_000
        ));
    }
    std::fs::write(&lp, lines).unwrap();
    let out = support::tickwatch()
        .args(["replay", "--json", "--detector", "ttest", "--window", "5m", "--udf"])
        .arg(".field('hotend','','').size(600).alpha(0.001)")
        .arg("--plugin-dir")
        .arg(support::plugin_dir())
        .arg(&lp)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let points: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!points.is_empty());
    for p in &points {
        assert_time(p, "time");
    }
}
