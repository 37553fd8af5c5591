//! `serve-perf`: how much a Kapacitor host pays for `tickwatch serve`.
//!
//! Pre-encodes the request streams of issue 13 (the printer day: one node,
//! three fields, 86,402 points in 288 five-minute batches; and 4 days × 4
//! printers × 3 fields), pipes each into the real release binary as fast as
//! the pipe takes it, and prints one table: the child's CPU (user + sys from
//! `wait4`), wall time, input points per second and peak RSS (`ru_maxrss`),
//! with default durability, with `--group-commit-ms 100` and without a state
//! directory; plus Info latency (spawn → InfoResponse). The printer day
//! also runs on stream edges (issue 12: `--edge stream`, the same points
//! one at a time, windowed by the node with `.period(5m).every(5m)`). A last
//! row sends only Info and Init, then closes stdin: the fixed cost of a
//! node's start and exit. Each figure is the median of several runs. It
//! measures; it asserts nothing.
//!
//! A third stream measures memory per tracked series: 10,000 groups × 3
//! fields, `size` 360, each group sent 12 windows of 30 points so every
//! history is full; the table adds peak RSS per series and its ratio to a
//! full history's values (`size` × 8 bytes). Two more do it at the issue's
//! `size` 3600 (12 windows of 300 points, every history full): 1,000 groups,
//! in a table of the same shape, and 500 groups, for the marginal memory
//! per series (the slope between the two: what one more tracked series
//! costs, without the fixed costs a per-series average carries).
//!
//! A fourth table (`--only lead`) asks whether memory depends on how far
//! ahead the sender is, comparing like with like: the same four printers
//! for one day and for four days as fast as the pipe takes them, and for
//! four days paced (the sender never far ahead of the scoring), with a
//! state directory. The printer day against the 4 × 4 stream also differs
//! in the number of series (3 against 12); these rows do not.
//!
//! Run from the workspace root after building the binary and the ttest
//! plugin: `cargo build --release -p tickwatch-engine -p tickwatch-ttest &&
//! cargo run --release -p tickwatch-serve-perf`. `--bin PATH`,
//! `--plugin-dir DIR` and `--runs N` override the defaults, `--only streams`,
//! `--only series` or `--only lead` runs one of the tables; the encoded
//! streams are cached in `--streams DIR` (default `target/serve-perf`).
#![deny(clippy::print_stdout)]
#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tickwatch_engine::kapacitor::options::opt;
use tickwatch_engine::kapacitor::{Batch, Windower, group_id};
use tickwatch_engine::scenario;
use tickwatch_proto::agent::{self, request};
use tickwatch_proto::{read_response, write_message};

const FIVE_MIN: i64 = 300 * 1_000_000_000;
const DAY_NS: i64 = 86_400 * 1_000_000_000;
const FIELDS: [&str; 3] = ["hotend", "bed", "air"];

/// One pre-encoded request stream.
struct Stream {
    bytes: Vec<u8>,
    points: usize,
    batches: usize,
}

/// A stream: its table name, its file name, (printer, seed) pairs, days.
type Spec = (&'static str, &'static str, &'static [(&'static str, u64)], i64);

/// One run's measurements.
#[derive(Clone, Copy)]
struct Sample {
    cpu: f64,
    wall: f64,
    maxrss_kib: i64,
}

fn main() {
    let mut bin = PathBuf::from("target/release/tickwatch");
    let mut plugins = PathBuf::from("target/release");
    let mut streams_dir = PathBuf::from("target/serve-perf");
    let mut runs = 5usize;
    let mut encode_only = false;
    // `--only streams`, `series` or `lead`: one of the tables.
    let mut only = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--encode" {
            encode_only = true;
            continue;
        }
        match (a.as_str(), args.next()) {
            ("--bin", Some(v)) => bin = v.into(),
            ("--plugin-dir", Some(v)) => plugins = v.into(),
            ("--streams", Some(v)) => streams_dir = v.into(),
            ("--runs", Some(v)) => runs = v.parse().unwrap_or(5).max(1),
            ("--only", Some(v)) => only = v,
            _ => fail(
                "usage: serve-perf [--bin PATH] [--plugin-dir DIR] [--streams DIR] [--runs N] \
                     [--only streams|series|lead]",
            ),
        }
    }
    let specs: [Spec; 2] = [
        ("printer day", "day", &[("", 61)], 1),
        ("4 days x 4 printers", "4x4", &[("a", 1), ("b", 2), ("c", 3), ("d", 4)], 4),
    ];
    if encode_only {
        if let Err(e) = std::fs::create_dir_all(&streams_dir) {
            fail(&format!("cannot create {}: {e}", streams_dir.display()));
        }
        let all = specs.iter().map(|(_, f, p, d)| (*f, *p, *d, false));
        let stream_day = std::iter::once((STREAM_FILE, specs[0].2, 1, true));
        for (file, printers, days, stream_edges) in all.chain(stream_day) {
            let s = encode(printers, days, stream_edges);
            save(&streams_dir.join(file), &s);
        }
        for m in [&MANY, &FULL, &FULL_HALF] {
            save(&streams_dir.join(m.file), &encode_many(m));
        }
        save(&streams_dir.join(STARTUP_FILE), &encode_startup());
        save(&streams_dir.join(LEAD_DAY_FILE), &encode(specs[1].2, 1, false));
        return;
    }
    // The streams are encoded by a child process and read back from files:
    // a child inherits its parent's peak RSS at exec (Linux keeps maxrss
    // across exec), so the measuring process must never hold them whole.
    if [&MANY, &FULL, &FULL_HALF]
        .iter()
        .any(|m| !streams_dir.join(format!("{}.txt", m.file)).exists())
        || !streams_dir.join(STREAM_FILE).with_extension("txt").exists()
        || !streams_dir.join(STARTUP_FILE).with_extension("txt").exists()
        || !streams_dir.join(LEAD_DAY_FILE).with_extension("txt").exists()
    {
        let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("no current exe: {e}")));
        let ok = Command::new(exe).arg("--encode").arg("--streams").arg(&streams_dir).status();
        if !ok.is_ok_and(|s| s.success()) {
            fail("encoding the streams failed");
        }
    }
    let modes: [(&str, bool, &[&str]); 3] = [
        ("state, durable (default)", true, &[]),
        ("state, --group-commit-ms 100", true, &["--group-commit-ms", "100"]),
        ("no state directory", false, &[]),
    ];
    let mut out = String::new();
    if only == "lead" {
        out.push_str(&lead(&bin, &plugins, &streams_dir, runs));
    }
    if only != "series" && only != "lead" {
        out.push_str(
            "| stream | mode | CPU s (user+sys) | wall s | points/s | peak RSS MiB |\n\
             |---|---|---|---|---|---|\n",
        );
    }
    let rows = specs
        .iter()
        .map(|(name, file, _, _)| (*name, *file, &[][..]))
        .chain(std::iter::once(("printer day, stream edges", STREAM_FILE, STREAM_ARGS)))
        .chain(std::iter::once(("start-up only (Info, Init, EOF)", STARTUP_FILE, &[][..])));
    for (name, file, edge_args) in rows {
        if only == "series" || only == "lead" {
            break;
        }
        let path = streams_dir.join(file);
        let meta = std::fs::read_to_string(path.with_extension("txt")).unwrap_or_default();
        let mut counts = meta.split_whitespace().map(|x| x.parse::<usize>().unwrap_or(0));
        let (points, batches) = (counts.next().unwrap_or(0), counts.next().unwrap_or(0));
        let stream = path.with_extension("bin");
        let size = std::fs::metadata(&stream).map(|m| m.len()).unwrap_or(0);
        eprintln!("{name}: {points} points, {batches} batches, {:.1} MB", size as f64 / 1e6);
        for (mode, state, extra) in &modes {
            // The start-up row is short and noisy: five times the runs.
            let n = match points {
                0 => runs * 5,
                p if p > 1_000_000 => runs.div_ceil(2).max(3),
                _ => runs,
            };
            let extra: Vec<&str> = extra.iter().chain(edge_args).copied().collect();
            let samples: Vec<Sample> =
                (0..n).map(|_| run(&bin, &plugins, *state, &extra, &stream)).collect();
            let cpu = median(samples.iter().map(|x| x.cpu).collect());
            let wall = median(samples.iter().map(|x| x.wall).collect());
            let rss = median(samples.iter().map(|x| x.maxrss_kib as f64).collect());
            let rate = if points == 0 {
                "–".to_string()
            } else {
                format!("{:.2} M", points as f64 / wall / 1e6)
            };
            out.push_str(&format!(
                "| {} | {} | {:.4} | {:.4} | {} | {:.1} |\n",
                name,
                mode,
                cpu,
                wall,
                rate,
                rss / 1024.0
            ));
        }
    }
    if only != "streams" && only != "lead" {
        out.push_str(&many_groups(&MANY, &bin, &plugins, &streams_dir, runs).0);
        let (table, full) = many_groups(&FULL, &bin, &plugins, &streams_dir, runs);
        out.push_str(&table);
        let (_, half) = many_groups(&FULL_HALF, &bin, &plugins, &streams_dir, runs);
        out.push_str(&marginal(&FULL, &full, &FULL_HALF, &half));
    }
    let info = median((0..runs.max(5)).map(|_| info_latency(&bin, &plugins)).collect());
    out.push_str(&format!("\nInfo latency (spawn → InfoResponse), median: {:.1} ms\n", info * 1e3));
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
}

/// A many-groups stream: its file, groups, windows per group and points
/// per window; the `size` its Init asks for is windows × points, so every
/// history is full at the end (if no window is anomalous: the t-test keeps
/// those out of its history).
struct Many {
    file: &'static str,
    groups: usize,
    windows: usize,
    points: usize,
    /// Noise on a slow sine (`true`) or on a flat line. With 300-point
    /// windows the t-test finds the sine's drift anomalous in almost every
    /// window (and keeps those windows out of the history, which then
    /// never fills): the `size` 3600 streams are flat.
    drift: bool,
}

impl Many {
    fn size(&self) -> usize {
        self.windows * self.points
    }
}

/// 10,000 groups, `size` 360 (the table since round 3).
const MANY: Many =
    Many { file: "10k-groups", groups: 10_000, windows: 12, points: 30, drift: true };
/// 1,000 groups at the issue's `size` 3600.
const FULL: Many =
    Many { file: "1k-groups-3600", groups: 1_000, windows: 12, points: 300, drift: false };
/// 500 groups at `size` 3600: with [`FULL`], the marginal memory per series.
const FULL_HALF: Many =
    Many { file: "500-groups-3600", groups: 500, windows: 12, points: 300, drift: false };

fn save(path: &Path, s: &Stream) {
    let meta = format!("{} {}\n", s.points, s.batches);
    if let Err(e) = std::fs::write(path.with_extension("bin"), &s.bytes)
        .and_then(|()| std::fs::write(path.with_extension("txt"), meta))
    {
        fail(&format!("cannot write {}: {e}", path.display()));
    }
}

/// Info, Init (ttest, `size` windows × points) and, window after window,
/// one batch per group (`host=gNNNNN`), three fields of a noisy sine each.
fn encode_many(m: &Many) -> Stream {
    let mut bytes = Vec::new();
    frame(&mut bytes, request::Message::Info(agent::InfoRequest {}));
    frame(&mut bytes, request::Message::Init(init(m.size() as i64)));
    let mut points = 0;
    let mut noise: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in 0..m.windows {
        let tmax = (w as i64 + 1) * FIVE_MIN;
        for g in 0..m.groups {
            let host = format!("g{g:05}");
            let group = format!("host={host}");
            let tags = HashMap::from([("host".to_string(), host)]);
            frame(
                &mut bytes,
                request::Message::Begin(agent::BeginBatch {
                    name: "m".into(),
                    group: group.clone(),
                    tags: tags.clone(),
                    size: m.points as i64,
                    by_name: false,
                }),
            );
            for i in 0..m.points {
                let time = tmax - FIVE_MIN + (i as i64) * (FIVE_MIN / m.points as i64);
                let mut fields_double = HashMap::new();
                for (k, f) in FIELDS.iter().enumerate() {
                    // xorshift noise on a slow sine: deterministic, not flat.
                    noise ^= noise << 13;
                    noise ^= noise >> 7;
                    noise ^= noise << 17;
                    let drift = if m.drift { (time as f64 / 3e12).sin() } else { 0.0 };
                    let x = 50.0 * (k + 1) as f64 + drift + (noise % 1000) as f64 / 1000.0;
                    fields_double.insert(f.to_string(), x);
                }
                let p = agent::Point {
                    time,
                    name: "m".into(),
                    group: group.clone(),
                    tags: tags.clone(),
                    fields_double,
                    ..Default::default()
                };
                frame(&mut bytes, request::Message::Point(p));
                points += 1;
            }
            frame(
                &mut bytes,
                request::Message::End(agent::EndBatch {
                    name: "m".into(),
                    group,
                    tmax,
                    tags,
                    by_name: false,
                }),
            );
        }
    }
    Stream { bytes, points, batches: m.groups * m.windows }
}

/// The memory-per-series rows of `m`: peak RSS, with and without a state
/// directory, per tracked series (groups × fields). Also returns the peak
/// RSS (bytes) of each mode, for [`marginal`].
fn many_groups(
    m: &Many,
    bin: &Path,
    plugins: &Path,
    streams_dir: &Path,
    runs: usize,
) -> (String, [f64; 2]) {
    let stream = streams_dir.join(m.file).with_extension("bin");
    let series = (m.groups * FIELDS.len()) as f64;
    let history = m.size() as f64 * 8.0;
    eprintln!("{} groups x 3 fields: {} points", m.groups, m.groups * m.windows * m.points);
    let mut out = format!(
        "\n{} groups × 3 fields, size {} (every history full: {} B of \
         values per series):\n\n| mode | CPU s | wall s | peak RSS MiB | RSS per series | per \
         series / (size × 8 B) |\n|---|---|---|---|---|---|\n",
        m.groups,
        m.size(),
        history
    );
    let mut peaks = [0.0; 2];
    for (i, (mode, state)) in
        [("state, durable (default)", true), ("no state directory", false)].into_iter().enumerate()
    {
        let n = runs.div_ceil(2).max(1);
        let samples: Vec<Sample> = (0..n).map(|_| run(bin, plugins, state, &[], &stream)).collect();
        let cpu = median(samples.iter().map(|x| x.cpu).collect());
        let wall = median(samples.iter().map(|x| x.wall).collect());
        let rss = median(samples.iter().map(|x| x.maxrss_kib as f64 * 1024.0).collect());
        peaks[i] = rss;
        out.push_str(&format!(
            "| {mode} | {cpu:.2} | {wall:.2} | {:.1} | {:.0} B | {:.2} |\n",
            rss / 1048576.0,
            rss / series,
            rss / series / history
        ));
    }
    (out, peaks)
}

/// What one more tracked series costs: the slope of peak RSS between the
/// runs of `big` and `small` (same `size`), per mode, against a full
/// history's values.
fn marginal(big: &Many, big_rss: &[f64; 2], small: &Many, small_rss: &[f64; 2]) -> String {
    let extra = ((big.groups - small.groups) * FIELDS.len()) as f64;
    let history = big.size() as f64 * 8.0;
    let mut out = format!(
        "\nMarginal memory per series, size {} ({} against {} groups):\n\n| mode | per \
         series | per series / (size × 8 B) |\n|---|---|---|\n",
        big.size(),
        big.groups,
        small.groups
    );
    for (i, mode) in ["state, durable (default)", "no state directory"].into_iter().enumerate() {
        let slope = (big_rss[i] - small_rss[i]) / extra;
        out.push_str(&format!("| {mode} | {slope:.0} B | {:.2} |\n", slope / history));
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn frame(bytes: &mut Vec<u8>, m: request::Message) {
    // Writing into a Vec cannot fail.
    let _ = write_message(bytes, &agent::Request { message: Some(m) });
}

/// Info and the day's Init, then end of input: what a node's start and exit
/// cost without any data (the fixed costs: process start, plugin loading,
/// opening the store and its thread pool, the control socket, exit).
const STARTUP_FILE: &str = "startup";

fn encode_startup() -> Stream {
    let mut bytes = Vec::new();
    frame(&mut bytes, request::Message::Info(agent::InfoRequest {}));
    frame(&mut bytes, request::Message::Init(init(3600)));
    Stream { bytes, points: 0, batches: 0 }
}

/// The stream-edge printer day's file, and what it is served with.
const STREAM_FILE: &str = "day-stream";
const STREAM_ARGS: &[&str] = &["--edge", "stream"];

/// Info, Init for the three fields (ttest, size 3600, alpha 0.001) and the
/// windows of `days` days of each printer, as Kapacitor's window node cuts
/// them (grouped by `printer` unless the one printer has an empty name);
/// with `stream_edges`, the points one at a time as `|from()` sends them
/// and `.period(5m).every(5m)` in the Init (the same windows, cut by the
/// node).
fn encode(printers: &[(&str, u64)], days: i64, stream_edges: bool) -> Stream {
    let group_by: Vec<&str> =
        if printers.iter().any(|(p, _)| !p.is_empty()) { vec!["printer"] } else { vec![] };
    let mut w = Windower::new(FIVE_MIN, FIVE_MIN, &group_by);
    let mut batches: Vec<Batch> = Vec::new();
    let mut stream: Vec<agent::Point> = Vec::new();
    let mut points = 0;
    for d in 0..days {
        let readings: Vec<(HashMap<String, String>, Vec<scenario::Reading>)> = printers
            .iter()
            .map(|(p, seed)| {
                let tags = if p.is_empty() {
                    HashMap::new()
                } else {
                    HashMap::from([("printer".to_string(), p.to_string())])
                };
                (tags, scenario::printer_day(*seed + 1000 * d as u64))
            })
            .collect();
        // Days follow each other: every day but the last stops at midnight.
        let n = if d + 1 == days { scenario::READINGS } else { 86_400 };
        for i in 0..n {
            for (tags, day) in &readings {
                let mut p = day[i].to_point(tags);
                p.time += d * DAY_NS;
                points += 1;
                if stream_edges {
                    let mut sp = p.clone();
                    sp.dimensions = group_by.iter().map(|g| g.to_string()).collect();
                    sp.group = group_id("", false, &sp.dimensions, &sp.tags);
                    stream.push(sp);
                }
                batches.extend(w.push(p));
            }
        }
    }
    let mut bytes = Vec::new();
    frame(&mut bytes, request::Message::Info(agent::InfoRequest {}));
    let mut init = init(3600);
    if stream_edges {
        init.options.push(opt::call("period", vec![opt::dur(FIVE_MIN)]));
        init.options.push(opt::call("every", vec![opt::dur(FIVE_MIN)]));
    }
    frame(&mut bytes, request::Message::Init(init));
    for p in &stream {
        frame(&mut bytes, request::Message::Point(p.clone()));
    }
    for b in batches.iter().filter(|_| !stream_edges) {
        frame(&mut bytes, request::Message::Begin(b.begin.clone()));
        for p in &b.points {
            frame(&mut bytes, request::Message::Point(p.clone()));
        }
        frame(&mut bytes, request::Message::End(b.end.clone()));
    }
    Stream { bytes, points, batches: batches.len() }
}

/// Init for the three fields: ttest, `size`, alpha 0.001.
fn init(size: i64) -> agent::InitRequest {
    let mut options: Vec<agent::Option> =
        vec![opt::call("field", FIELDS.iter().map(|f| opt::s(f)).collect())];
    options.push(opt::call("size", vec![opt::i(size)]));
    options.push(opt::call("alpha", vec![opt::d(0.001)]));
    agent::InitRequest { task_id: "bench".into(), node_id: "tTest2".into(), options }
}

fn command(bin: &Path, plugins: &Path, state: Option<&Path>, extra: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(["serve", "--detector", "ttest", "--log", "warn"]).arg("--plugin-dir").arg(plugins);
    if let Some(dir) = state {
        c.arg("--state-dir").arg(dir);
    } else {
        // Without a flag, serve falls back to $TICKWATCH_STATE_DIR,
        // $XDG_STATE_HOME/tickwatch, then $HOME/.local/state/tickwatch: only
        // with none of them set does state live in memory alone.
        c.env_remove("TICKWATCH_STATE_DIR").env_remove("XDG_STATE_HOME").env("HOME", "");
    }
    c.args(extra).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    c
}

/// Reaps `pid` and returns its rusage (the child's own, not the bench's).
fn reap(pid: u32) -> libc::rusage {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    // SAFETY: `pid` is our unreaped child; `status` and `ru` are valid for writes.
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
    if r < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        fail(&format!("tickwatch did not exit cleanly (wait4 {r}, status {status:#x})"));
    }
    ru
}

fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

/// Pipes `bytes` in as fast as the child reads them, drains its output, and
/// measures the whole process life.
fn run(bin: &Path, plugins: &Path, state: bool, extra: &[&str], stream: &Path) -> Sample {
    run_paced(bin, plugins, state, extra, stream, None)
}

/// [`run`], the stream written at most `pace` bytes per second when given
/// (64 KiB at a time).
// The child is reaped by `wait4` (for its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_paced(
    bin: &Path,
    plugins: &Path,
    state: bool,
    extra: &[&str],
    stream: &Path,
    pace: Option<f64>,
) -> Sample {
    let mut file = std::fs::File::open(stream)
        .unwrap_or_else(|e| fail(&format!("cannot open {}: {e}", stream.display())));
    let dir =
        tempfile::tempdir().unwrap_or_else(|e| fail(&format!("cannot create a temp dir: {e}")));
    let start = Instant::now();
    let mut child = command(bin, plugins, state.then_some(dir.path()), extra)
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", bin.display())));
    let mut stdin = child.stdin.take().unwrap_or_else(|| fail("no stdin"));
    let mut stdout = child.stdout.take().unwrap_or_else(|| fail("no stdout"));
    let drained = std::thread::scope(|s| {
        s.spawn(move || {
            let written = match pace {
                None => std::io::copy(&mut file, &mut stdin).map(|_| ()),
                Some(rate) => copy_paced(&mut file, &mut stdin, rate),
            };
            if let Err(e) = written {
                eprintln!("warning: writing the stream failed: {e}");
            }
        });
        let mut sink = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while let Ok(n) = stdout.read(&mut sink) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let ru = reap(child.id());
    let wall = start.elapsed().as_secs_f64();
    if drained == 0 {
        eprintln!("warning: no output");
    }
    Sample { cpu: seconds(ru.ru_utime) + seconds(ru.ru_stime), wall, maxrss_kib: ru.ru_maxrss }
}

/// Copies `from` into `to` 64 KiB at a time, at most `rate` bytes per
/// second since the start.
fn copy_paced(from: &mut impl Read, to: &mut impl Write, rate: f64) -> std::io::Result<()> {
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 16];
    let mut sent = 0usize;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        sent += n;
        let due = Duration::from_secs_f64(sent as f64 / rate);
        if let Some(ahead) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

/// One day of the 4 × 4 stream's four printers, for [`lead`].
const LEAD_DAY_FILE: &str = "1x4";
/// The pace of [`lead`]'s paced row, in bytes per second: about 170,000
/// points per second, several times slower than a durable node scores
/// them, so the sender is never far ahead.
const LEAD_PACE: f64 = 16e6;

/// The lead table: peak RSS of the same four printers (twelve series) for
/// one day and four days as fast as the pipe takes them, and four days
/// paced, durable, with a state directory.
fn lead(bin: &Path, plugins: &Path, streams_dir: &Path, runs: usize) -> String {
    let mut out = String::from(
        "| four printers × 3 fields | fed | CPU s | wall s | peak RSS MiB (median) | \
         peak RSS MiB (min–max) |\n|---|---|---|---|---|---|\n",
    );
    let rows: [(&str, &str, &str, Option<f64>); 3] = [
        ("1 day", LEAD_DAY_FILE, "as fast as the pipe takes it", None),
        ("4 days", "4x4", "as fast as the pipe takes it", None),
        ("4 days", "4x4", "paced at 16 MB/s", Some(LEAD_PACE)),
    ];
    for (days, file, fed, pace) in rows {
        let stream = streams_dir.join(file).with_extension("bin");
        eprintln!("lead: {days}, {fed}");
        let samples: Vec<Sample> =
            (0..runs).map(|_| run_paced(bin, plugins, true, &[], &stream, pace)).collect();
        let rss: Vec<f64> = samples.iter().map(|x| x.maxrss_kib as f64 / 1024.0).collect();
        let (lo, hi) = rss.iter().fold((f64::MAX, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
        out.push_str(&format!(
            "| {days} | {fed} | {:.4} | {:.4} | {:.1} | {lo:.1}–{hi:.1} |\n",
            median(samples.iter().map(|x| x.cpu).collect()),
            median(samples.iter().map(|x| x.wall).collect()),
            median(rss),
        ));
    }
    out
}

/// Spawn → InfoResponse read, with a state directory as Kapacitor's start-up
/// Info process has.
fn info_latency(bin: &Path, plugins: &Path) -> f64 {
    let dir =
        tempfile::tempdir().unwrap_or_else(|e| fail(&format!("cannot create a temp dir: {e}")));
    let mut req = Vec::new();
    frame(&mut req, request::Message::Info(agent::InfoRequest {}));
    let start = Instant::now();
    let mut child = command(bin, plugins, Some(dir.path()), &[])
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", bin.display())));
    let mut stdin = child.stdin.take().unwrap_or_else(|| fail("no stdin"));
    let mut stdout = child.stdout.take().unwrap_or_else(|| fail("no stdout"));
    if let Err(e) = stdin.write_all(&req) {
        fail(&format!("cannot send Info: {e}"));
    }
    let mut buf = Vec::new();
    let got = read_response(&mut stdout, &mut buf);
    let t = start.elapsed().as_secs_f64();
    if !matches!(
        got,
        Ok(Some(agent::Response { message: Some(agent::response::Message::Info(_)) }))
    ) {
        eprintln!("warning: no InfoResponse: {got:?}");
    }
    drop(stdin);
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(10));
    t
}

fn fail(msg: &str) -> ! {
    eprintln!("serve-perf: {msg}");
    std::process::exit(1)
}
