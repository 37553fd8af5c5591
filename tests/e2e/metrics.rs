//! Metrics, read the way a person (or Prometheus) reads them: a real HTTP
//! client against `serve --socket … --metrics-listen` and against `tickwatch
//! exporter` over process-mode nodes; and the `--log debug` lines.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tickwatch_engine::kapacitor::{Batch, UdfClient};
use tickwatch_proto::agent;

use crate::support;

/// A `tickwatch` process whose stderr lines are collected.
struct Logged {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The first "metrics on http://ADDR/metrics" address logged.
    url: mpsc::Receiver<String>,
}

impl Logged {
    fn spawn(mut cmd: Command) -> Logged {
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, url) = mpsc::channel();
        let keep = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.split("metrics on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
                keep.lock().unwrap().push(line);
            }
        });
        Logged { child, lines, url }
    }

    /// The metrics URL the process logged.
    fn url(&self) -> String {
        self.url.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
            panic!("no metrics address logged: {:?}", self.lines.lock().unwrap())
        })
    }

    /// Stops the process (SIGTERM) and returns every stderr line.
    fn stop(mut self) -> Vec<String> {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        // The reader thread drains the pipe once the process is gone.
        let start = Instant::now();
        let mut last = 0;
        loop {
            thread::sleep(Duration::from_millis(50));
            let n = self.lines.lock().unwrap().len();
            if n == last || start.elapsed() > Duration::from_secs(5) {
                break;
            }
            last = n;
        }
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn socket_server(socket: &Path, log: &str, extra: &[&str]) -> Logged {
    let mut cmd = support::tickwatch();
    cmd.args(["serve", "--detector", "ttest", "--log", log, "--plugin-dir"])
        .arg(support::plugin_dir())
        .arg("--socket")
        .arg(socket)
        .args(extra);
    let server = Logged::spawn(cmd);
    let start = Instant::now();
    while UdfClient::connect(socket).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "the socket never appeared");
        thread::sleep(Duration::from_millis(20));
    }
    server
}

/// GET with a real HTTP client; the body of a 200.
fn get(url: &str) -> String {
    let mut resp = ureq::get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200);
    let ct = resp.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    resp.body_mut().read_to_string().unwrap()
}

/// The page's samples: `name{labels}` → value.
fn samples(page: &str) -> HashMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn at(s: &HashMap<String, f64>, key: &str) -> f64 {
    *s.get(key).unwrap_or_else(|| panic!("no sample {key}"))
}

/// The hotend values of every 7th point become NaN (skipped and counted).
fn with_nans(batches: Vec<Batch>) -> Vec<Batch> {
    batches
        .into_iter()
        .map(|mut b| {
            for (i, p) in b.points.iter_mut().enumerate() {
                if i % 7 == 0 && p.fields_double.contains_key("hotend") {
                    p.fields_double.insert("hotend".into(), f64::NAN);
                }
            }
            b
        })
        .collect()
}

/// What a node was sent and what it emitted, per field.
#[derive(Debug, Default)]
struct Expected {
    batches: u64,
    points: u64,
    /// field → (usable values, skipped, score calls, verdicts, anomalies)
    fields: HashMap<String, (u64, u64, u64, u64, u64)>,
}

fn expected(fields: &[&str], batches: &[Batch], out: &[agent::Point]) -> Expected {
    let mut e = Expected { batches: batches.len() as u64, ..Expected::default() };
    for f in fields {
        let mut x = (0, 0, 0, 0, 0);
        for b in batches {
            let usable = b
                .points
                .iter()
                .filter(|p| p.fields_double.get(*f).is_some_and(|v| v.is_finite()))
                .count() as u64;
            x.0 += usable;
            x.1 += b
                .points
                .iter()
                .filter(|p| p.fields_double.get(*f).is_some_and(|v| v.is_nan()))
                .count() as u64;
            x.2 += u64::from(usable > 0);
        }
        for p in out.iter().filter(|p| p.tags.get("field").map(String::as_str) == Some(*f)) {
            x.3 += 1;
            x.4 += u64::from(p.fields_bool["anomalous"]);
        }
        e.fields.insert(f.to_string(), x);
    }
    e.points = batches.iter().map(|b| b.points.len() as u64).sum();
    e
}

/// Sends `batches` and waits until the node has processed them all (a
/// Snapshot is answered only after every batch before it); returns the
/// points emitted.
fn feed(udf: &mut UdfClient, batches: &[Batch]) -> Vec<agent::Point> {
    for b in batches {
        udf.send_batch(b).unwrap();
    }
    udf.snapshot().unwrap();
    udf.take_points()
}

fn check(s: &HashMap<String, f64>, task: &str, node: &str, e: &Expected) {
    let n = format!("task=\"{task}\",node=\"{node}\"");
    assert_eq!(at(s, &format!("tickwatch_batches_total{{{n}}}")), e.batches as f64);
    assert_eq!(at(s, &format!("tickwatch_points_in_total{{{n}}}")), e.points as f64);
    assert!(at(s, &format!("tickwatch_commit_seconds_count{{{n}}}")) >= 1.0);
    for (f, (values, skipped, scores, verdicts, anomalies)) in &e.fields {
        let l = format!("{n},field=\"{f}\"");
        assert_eq!(at(s, &format!("tickwatch_values_total{{{l}}}")), *values as f64, "{l}");
        assert_eq!(
            at(s, &format!("tickwatch_values_skipped_total{{{l}}}")),
            *skipped as f64,
            "{l}"
        );
        assert_eq!(at(s, &format!("tickwatch_score_seconds_count{{{l}}}")), *scores as f64, "{l}");
        assert_eq!(
            at(s, &format!("tickwatch_score_seconds_bucket{{{l},le=\"+Inf\"}}")),
            *scores as f64,
            "{l}"
        );
        assert_eq!(at(s, &format!("tickwatch_points_out_total{{{l}}}")), *verdicts as f64, "{l}");
        assert_eq!(at(s, &format!("tickwatch_anomalies_total{{{l}}}")), *anomalies as f64, "{l}");
        assert!(at(s, &format!("tickwatch_state_bytes{{{l}}}")) > 0.0, "{l}");
    }
}

/// Info on a connection of its own, then Init of `task`/`node`.
fn start_node(mut udf: UdfClient, task: &str, node: &str, fields: &[&str]) -> UdfClient {
    udf.info().unwrap();
    let r = udf.init(task, node, support::ttest_options(fields, 3600, 0.001)).unwrap();
    assert!(r.success, "{}", r.error);
    udf
}

#[test]
fn socket_mode_serves_every_nodes_figures_over_http() {
    let dir = support::private_dir();
    let socket = dir.path().join("tw.sock");
    let server = socket_server(&socket, "info", &["--metrics-listen", "127.0.0.1:0"]);
    let url = server.url();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"), "{url}");

    // Before any node: the page is there and says so.
    let s = samples(&get(&url));
    assert_eq!(at(&s, "tickwatch_nodes"), 0.0);
    assert!(at(&s, "tickwatch_process_resident_memory_bytes") > 1e6);

    let a_batches = with_nans(support::day_batches(&[("", 7)]));
    let b_batches = support::day_batches(&[("a", 8), ("b", 9)]);
    let mut a =
        start_node(UdfClient::connect(&socket).unwrap(), "print_temps", "tw_a", &["hotend", "bed"]);
    let mut b = start_node(UdfClient::connect(&socket).unwrap(), "print_temps", "tw_b", &["air"]);
    let a_out = feed(&mut a, &a_batches);
    let b_out = feed(&mut b, &b_batches);
    let a_want = expected(&["hotend", "bed"], &a_batches, &a_out);
    assert!(a_want.fields["hotend"].1 > 0 && a_want.fields["hotend"].4 > 0, "{a_want:?}");

    let page = get(&url);
    let s = samples(&page);
    assert_eq!(at(&s, "tickwatch_nodes"), 2.0);
    check(&s, "print_temps", "tw_a", &a_want);
    check(&s, "print_temps", "tw_b", &expected(&["air"], &b_batches, &b_out));
    assert!(at(&s, "tickwatch_process_uptime_seconds") > 0.0);
    assert_eq!(
        at(&s, "tickwatch_node_info{task=\"print_temps\",node=\"tw_a\",detector=\"ttest\"}"),
        1.0
    );
    // Idle nodes: nothing waits in their queues.
    assert_eq!(at(&s, "tickwatch_queue_items{task=\"print_temps\",node=\"tw_a\"}"), 0.0);

    // Only GET /metrics is served.
    let root = url.trim_end_matches("/metrics").to_string() + "/";
    match ureq::get(&root).call() {
        Err(ureq::Error::StatusCode(404)) => {}
        other => panic!("GET / should be 404: {other:?}"),
    }

    // A closed connection's node leaves the page.
    a.close().unwrap();
    let start = Instant::now();
    loop {
        let s = samples(&get(&url));
        if at(&s, "tickwatch_nodes") == 1.0 {
            assert!(!s.contains_key("tickwatch_batches_total{task=\"print_temps\",node=\"tw_a\"}"));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "node a never left the page");
        thread::sleep(Duration::from_millis(50));
    }
    drop(b);
    server.stop();
}

#[test]
fn metrics_listen_without_a_socket_is_refused_with_the_way_out() {
    let out = support::tickwatch()
        .args(["serve", "--detector", "ttest", "--metrics-listen", "127.0.0.1:0", "--plugin-dir"])
        .arg(support::plugin_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--metrics-listen needs --socket") && err.contains("tickwatch exporter"),
        "{err}"
    );
}

#[test]
fn the_exporter_shows_every_live_process_node_and_skips_a_dead_one() {
    let state = support::fresh_state_dir();
    let one_batches = with_nans(support::day_batches(&[("", 11)]));
    let two_batches = support::day_batches(&[("p1", 12)]);
    let mut one = start_node(support::spawn_in(&state, &[]), "task_one", "udf1", &["hotend"]);
    let mut two = start_node(support::spawn_in(&state, &[]), "task_two", "udf2", &["bed", "air"]);
    let one_out = feed(&mut one, &one_batches);
    let two_out = feed(&mut two, &two_batches[..100]);

    let mut cmd = Command::new(support::bin());
    cmd.args([
        "exporter",
        "--listen",
        "127.0.0.1:0",
        "--log",
        "info",
        "--node-timeout",
        "2s",
        "--state-dir",
    ])
    .arg(&state);
    let exporter = Logged::spawn(cmd);
    let url = exporter.url();
    let s = samples(&get(&url));
    assert_eq!(at(&s, "tickwatch_nodes"), 2.0);
    assert_eq!(at(&s, "tickwatch_exporter_nodes_answered"), 2.0);
    assert_eq!(at(&s, "tickwatch_exporter_nodes_unreachable"), 0.0);
    check(&s, "task_one", "udf1", &expected(&["hotend"], &one_batches, &one_out));
    check(&s, "task_two", "udf2", &expected(&["bed", "air"], &two_batches[..100], &two_out));
    // Each node is its own process: its RSS is labelled with its ids.
    assert!(
        at(&s, "tickwatch_process_resident_memory_bytes{task=\"task_one\",node=\"udf1\"}") > 1e6
    );

    // Counters move with the node between scrapes.
    let more = feed(&mut two, &two_batches[100..]);
    let s = samples(&get(&url));
    let mut all_out = two_out.clone();
    all_out.extend(more);
    check(&s, "task_two", "udf2", &expected(&["bed", "air"], &two_batches, &all_out));

    // SIGKILL leaves its control socket behind: skipped and counted.
    one.kill().unwrap();
    let s = samples(&get(&url));
    assert_eq!(at(&s, "tickwatch_exporter_nodes_answered"), 1.0);
    assert_eq!(at(&s, "tickwatch_exporter_nodes_unreachable"), 1.0);
    assert_eq!(at(&s, "tickwatch_exporter_unreachable_total"), 1.0);
    assert!(!s.contains_key("tickwatch_batches_total{task=\"task_one\",node=\"udf1\"}"));
    assert_eq!(
        at(&s, "tickwatch_batches_total{task=\"task_two\",node=\"udf2\"}"),
        two_batches.len() as f64
    );

    // A node that stopped cleanly removed its socket: not shown, not counted.
    support::run_all(two, &[]);
    let s = samples(&get(&url));
    assert_eq!(at(&s, "tickwatch_nodes"), 0.0);
    assert_eq!(at(&s, "tickwatch_exporter_nodes_unreachable"), 1.0);
    let log = exporter.stop();
    assert_eq!(
        log.iter().filter(|l| l.contains("task_one node udf1: skipped")).count(),
        1,
        "{log:#?}"
    );
}

#[test]
fn log_debug_is_one_line_per_batch_and_no_sled_chatter() {
    let dir = support::private_dir();
    let socket = dir.path().join("tw.sock");
    let server = socket_server(&socket, "debug", &[]);
    let batches: Vec<Batch> =
        support::day_batches(&[("a", 3), ("b", 4)]).into_iter().take(40).collect();
    let mut udf = start_node(
        UdfClient::connect(&socket).unwrap(),
        "print_temps",
        "logged",
        &["hotend", "bed"],
    );
    let out = feed(&mut udf, &batches);
    udf.close().unwrap();
    let lines = server.stop();
    let sled = lines.iter().filter(|l| l.to_lowercase().contains("sled")).count();
    assert!(sled <= 2, "{sled} sled lines of {}:\n{lines:#?}", lines.len());
    let per_batch: Vec<&String> = lines.iter().filter(|l| l.contains(": batch group ")).collect();
    assert_eq!(per_batch.len(), batches.len(), "{lines:#?}");
    for (line, b) in per_batch.iter().zip(&batches) {
        assert!(line.starts_with("DEBUG "), "{line}");
        assert!(line.contains("task print_temps node logged: batch group "), "{line}");
        assert!(
            line.contains(&format!("{}: {} points, ", b.group(), b.points.len())),
            "{line} vs {}",
            b.group()
        );
        assert!(line.contains(" verdicts (") && line.contains(" anomalous), score "), "{line}");
        assert!(
            line.contains(" ms, commit ") && line.ends_with(" ms") || line.contains("batches)"),
            "{line}"
        );
    }
    // The verdicts logged add up to the points emitted.
    let logged: usize = per_batch
        .iter()
        .map(|l| {
            l.split(" points, ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(logged, out.len());
    // Everything else is a handful of lifecycle lines, not per-point noise.
    assert!(lines.len() < per_batch.len() + 20, "{lines:#?}");
}

#[test]
fn stream_edges_count_points_and_the_windows_the_node_closes() {
    use tickwatch_engine::kapacitor::{Windower, group_id};
    use tickwatch_engine::scenario;

    let dir = support::private_dir();
    let socket = dir.path().join("tw.sock");
    let server =
        socket_server(&socket, "info", &["--edge", "stream", "--metrics-listen", "127.0.0.1:0"]);
    let url = server.url();
    // The printer day as |from().groupBy('printer') sends it, with NaNs.
    let tags = HashMap::from([("printer".to_string(), "a".to_string())]);
    let points: Vec<agent::Point> = scenario::printer_day(7)
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut p = r.to_point(&tags);
            if i % 7 == 0 {
                p.fields_double.insert("hotend".into(), f64::NAN);
            }
            p.dimensions = vec!["printer".into()];
            p.group = group_id(&p.name, false, &p.dimensions, &p.tags);
            p
        })
        .collect();
    // The windows the node cuts, as a batch-edge node would get them.
    let mut w = Windower::new(support::FIVE_MIN, support::FIVE_MIN, &["printer"]);
    let windows: Vec<Batch> = points.iter().filter_map(|p| w.push(p.clone())).collect();
    assert!(windows.len() > 200);

    let mut udf = UdfClient::connect(&socket).unwrap();
    udf.info().unwrap();
    let mut options = support::ttest_options(&["hotend", "bed"], 3600, 0.001);
    options.push(support::o::call("period", vec![support::o::dur(support::FIVE_MIN)]));
    options.push(support::o::call("every", vec![support::o::dur(support::FIVE_MIN)]));
    let r = udf.init("print_temps", "tw_stream", options).unwrap();
    assert!(r.success, "{}", r.error);
    for chunk in points.chunks(5000) {
        udf.send_points(chunk).unwrap();
    }
    udf.snapshot().unwrap();
    let out = udf.take_points();

    let mut want = expected(&["hotend", "bed"], &windows, &out);
    want.points = points.len() as u64;
    assert!(want.fields["hotend"].1 > 0 && want.fields["hotend"].3 > 0, "{want:?}");
    let s = samples(&get(&url));
    check(&s, "print_temps", "tw_stream", &want);
    drop(udf);
    server.stop();
}
