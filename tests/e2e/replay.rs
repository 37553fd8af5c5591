//! `tickwatch demo` and `tickwatch replay`: faults found end to end from
//! line protocol, grouped and with integer fields; clear errors; plots.

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use tickwatch_engine::scenario::{self, FAULTS};

use crate::support;

fn run(args: &[&str]) -> Output {
    support::tickwatch().args(args).arg("--plugin-dir").arg(support::plugin_dir()).output().unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Seconds from the start of the day for an RFC 3339 time.
fn second(v: &Value) -> i64 {
    let t = humantime::parse_rfc3339(v["time"].as_str().unwrap()).unwrap();
    let ns = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    (ns - scenario::START_NS) / 1_000_000_000
}

/// Asserts each injected fault is flagged in `rows` (for one group).
fn assert_faults_flagged(rows: &[&Value], what: &str) {
    for f in FAULTS {
        let hit = rows.iter().any(|r| {
            r["field"] == f.field
                && r["anomalous"] == true
                && second(r) > f.start_s
                && second(r) - 300 < f.end_s
        });
        assert!(hit, "{what}: fault in {} at {}s not flagged", f.field, f.start_s);
    }
}

#[test]
fn demo_json_flags_each_fault() {
    let rows = json_lines(&run(&["demo", "--json"]));
    assert_eq!(rows.len(), 3 * 287);
    for r in &rows {
        for key in ["time", "tags", "field", "pvalue", "anomalous", "t"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
    assert_faults_flagged(&rows.iter().collect::<Vec<_>>(), "demo");
}

#[test]
fn demo_report_names_where_faults_were_found() {
    let out = run(&["demo"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "hotend  fault injected 01:00–01:05: CAUGHT",
        "bed     fault injected 08:00–08:15: CAUGHT",
        "air     fault injected 12:00–12:30: CAUGHT",
    ] {
        assert!(text.contains(line), "{text}");
    }
}

fn write_two_printers(path: &Path) {
    let a = scenario::printer_day(91);
    let b = scenario::printer_day(92);
    let mut text = String::new();
    for (ra, rb) in a.iter().zip(&b) {
        text.push_str(&ra.line_protocol("printer=a", &[]));
        text.push('\n');
        // Printer b reports its hot end in whole degrees, as integers.
        text.push_str(&rb.line_protocol("printer=b", &["hotend"]));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn replay_two_printers_grouped_flags_the_faults_per_printer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("printers.lp");
    write_two_printers(&file);
    let out = run(&[
        "replay",
        file.to_str().unwrap(),
        "--precision",
        "s",
        "--group-by",
        "printer",
        "--detector",
        "ttest",
        "--udf",
        ".field('hotend','bed','air').size(3600).alpha(0.001)",
        "--json",
    ]);
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 2 * 3 * 287);
    for printer in ["a", "b"] {
        let mine: Vec<&Value> = rows.iter().filter(|r| r["tags"]["printer"] == printer).collect();
        assert_eq!(mine.len(), 3 * 287);
        assert_faults_flagged(&mine, printer);
    }
}

#[test]
fn replay_report_lists_anomalies_and_a_summary_with_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("day.lp");
    let mut lines: Vec<String> =
        scenario::printer_day(93).iter().map(|r| r.line_protocol("", &[])).collect();
    lines.insert(2, "temperatures hotend=oops 1451606402".into());
    lines.insert(5, "temperatures hotend=\"a string\",bed=90,air=70 1451606404".into());
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = run(&[
        "replay",
        file.to_str().unwrap(),
        "--precision",
        "s",
        "--detector",
        "ttest",
        "--udf",
        ".field('hotend','bed','air').size(3600).alpha(0.001)",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("day.lp:3: malformed line skipped"), "{stderr}");
    assert!(
        stdout.contains("(ungrouped) hotend:")
            && stdout.contains("CRITICAL  window 2016-01-01T01:00:00"),
        "{stdout}"
    );
    assert!(
        stdout.contains("malformed lines: 1") && stdout.contains("skipped values: 1"),
        "{stdout}"
    );
}

#[test]
fn replay_errors_are_clear() {
    let missing = run(&[
        "replay",
        "/nonexistent/day.lp",
        "--detector",
        "ttest",
        "--udf",
        ".field('a','','').size(10).alpha(0.1)",
    ]);
    assert!(!missing.status.success());
    let e = String::from_utf8_lossy(&missing.stderr);
    assert!(e.contains("cannot open /nonexistent/day.lp"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.lp");
    std::fs::write(&file, "m a=1 1\nm a=2 400000000000\n").unwrap();
    let f = file.to_str().unwrap();
    let syntax =
        run(&["replay", f, "--detector", "ttest", "--udf", ".field('a','','').size(10 0)"]);
    assert!(!syntax.status.success());
    assert!(
        String::from_utf8_lossy(&syntax.stderr)
            .contains("--udf: column 27: expected ',' or ')', found '0'"),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let arity =
        run(&["replay", f, "--detector", "ttest", "--udf", ".field('a').size(10).alpha(0.1)"]);
    assert!(!arity.status.success());
    assert!(
        String::from_utf8_lossy(&arity.stderr)
            .contains("unexpected number of args to field, got 1 expected 3")
    );
    let refused =
        run(&["replay", f, "--detector", "ttest", "--udf", ".field('a','','').size(1).alpha(0.1)"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("option size must be > 1, got 1"));
}

#[test]
fn a_node_failing_mid_replay_is_reported_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.lp");
    let lines: Vec<String> = (0..2000).map(|i| format!("m,field=x a={} {}", i % 7, i)).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = run(&[
        "replay",
        file.to_str().unwrap(),
        "--precision",
        "s",
        "--window",
        "60s",
        "--group-by",
        "field",
        "--detector",
        "ttest",
        "--udf",
        ".field('a','','').size(10).alpha(0.1)",
    ]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("the node failed: the data is grouped by a tag named \"field\""), "{e}");
}

#[test]
fn plot_writes_a_valid_svg() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("day.svg");
    let out = run(&["demo", "--plot", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    for field in ["hotend", "bed", "air", "p-value"] {
        assert!(text.contains(&format!("\n{field}\n")), "no label {field}");
    }
    // Well-formed: every element opened is closed.
    let opens = text.matches("<text").count();
    assert_eq!(opens, text.matches("</text>").count());
    assert!(text.matches("<polyline").count() >= 6, "value and p-value lines per field");
}

/// Regression: second timestamps replayed without `--precision s` reported
/// "0 windows" and exited 0. Now: the unit is named, and no window is an error.
#[test]
fn replay_names_the_precision_the_timestamps_look_like() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("printers.lp");
    write_two_printers(&file);
    let out = run(&[
        "replay",
        file.to_str().unwrap(),
        "--detector",
        "ttest",
        "--udf",
        ".field('hotend','','').size(3600).alpha(0.001)",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no window closed"), "{stderr}");
    assert!(stderr.contains("look like --precision s, not ns"), "{stderr}");
}

#[test]
fn replay_warns_about_a_tracked_field_the_input_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("printers.lp");
    write_two_printers(&file);
    let out = run(&[
        "replay",
        file.to_str().unwrap(),
        "--precision",
        "s",
        "--detector",
        "ttest",
        "--udf",
        ".field('hotend','bedd','').size(3600).alpha(0.001)",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tracked field \"bedd\" appears in no point"), "{stderr}");
    assert!(!stderr.contains("\"hotend\" appears"), "{stderr}");
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

/// Issue 11: Ctrl-C during a replay left its temporary state directory
/// (and could leave its node) behind. A real replay reading a stdin that
/// stays open gets SIGINT: it exits 130, its node is gone and its
/// temporary directory removed.
#[test]
fn an_interrupted_replay_leaves_no_temporary_directory_or_node_behind() {
    use std::io::Write;
    let tmp = support::private_dir();
    let mut child = support::tickwatch()
        .args(["replay", "--precision", "s", "--detector", "ttest", "--udf"])
        .arg(".field('hotend','','').size(600).alpha(0.001)")
        .arg("--plugin-dir")
        .arg(support::plugin_dir())
        .arg("-")
        .env("TMPDIR", tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..1000 {
        writeln!(stdin, "t hotend={} {}", 220 + i % 3, 1_451_606_400 + i).unwrap();
    }
    stdin.flush().unwrap();
    // Wait (without a deadline of our own: the test harness has one) for
    // the node's temporary state directory to exist.
    let state_dir = loop {
        let entries: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
        if let Some(e) = entries.first() {
            break e.path();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let needle = state_dir.to_string_lossy().into_owned();
    while processes_mentioning(&needle).is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert!(!state_dir.exists(), "{} left behind", state_dir.display());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    assert_eq!(processes_mentioning(&needle), Vec::<String>::new(), "the node still runs");
}

#[test]
fn a_window_kapacitor_cannot_express_is_refused_with_the_reason() {
    let out =
        run(&["replay", "--detector", "ttest", "--udf", ".field('a')", "--window", "1 month", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no month or year unit") && err.contains("30d"), "{err}");
}

/// Issue 11: the plot of a grouped replay has a line at alpha, wall-clock
/// time, a legend naming each group, and each anomalous window shaded in
/// its own group's colour (the legend's colour for that group).
#[test]
fn a_grouped_plot_says_whose_anomaly_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("printers.lp");
    write_two_printers(&file);
    let svg = dir.path().join("two.svg");
    let out = run(&[
        "replay",
        file.to_str().unwrap(),
        "--precision",
        "s",
        "--group-by",
        "printer",
        "--detector",
        "ttest",
        "--udf",
        ".field('hotend','bed','air').size(3600).alpha(0.001)",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("alpha 0.001") && text.contains("time (UTC)"));
    assert!(text.contains("\n05:00\n"), "wall-clock labels");
    // Legend: a coloured stroke before each group's name.
    let legend_color = |group: &str| {
        let at = text.find(&format!("\n{group}\n")).unwrap_or_else(|| panic!("no {group}"));
        let stroke = text[..at].rfind("stroke=\"#").unwrap();
        text[stroke + 8..stroke + 15].to_string()
    };
    let (a, b) = (legend_color("printer=a"), legend_color("printer=b"));
    assert_ne!(a, b, "distinct colours per group");
    let shades: Vec<&str> =
        text.lines().filter(|l| l.starts_with("<rect") && l.contains("opacity=\"0.35\"")).collect();
    assert!(!shades.is_empty(), "anomalous windows are shaded");
    for s in &shades {
        assert!(
            s.contains(&format!("fill=\"{a}\"")) || s.contains(&format!("fill=\"{b}\"")),
            "{s}"
        );
    }
    // Both printers have faults, so both colours shade something.
    assert!(shades.iter().any(|s| s.contains(&a)) && shades.iter().any(|s| s.contains(&b)));
}
