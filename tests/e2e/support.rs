//! The Kapacitor stand-in for every end-to-end test.
//!
//! Wraps `tickwatch_engine::kapacitor` (the Kapacitor side of the protocol: spawn,
//! Info → Init with Kapacitor's arity/type rule → Restore → batches with
//! keepalives → Snapshot → close) with test conveniences.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use tickwatch_engine::kapacitor::Batch;
use tickwatch_engine::kapacitor::UdfClient;
use tickwatch_engine::kapacitor::Windower;
use tickwatch_engine::kapacitor::options::opt;
use tickwatch_engine::scenario;
use tickwatch_proto::agent;

pub use tickwatch_engine::kapacitor::options::opt as o;

pub const FIVE_MIN: i64 = 5 * 60 * 1_000_000_000;

/// target/<profile>, where the binary and the plugin `.so` land.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-<hash>
    exe.parent().and_then(Path::parent).expect("target profile dir").to_path_buf()
}

static BUILD: Once = Once::new();

/// Path of the `tickwatch` binary, built (with the shipped plugins) in the same
/// profile as this test on first use so it is never stale.
pub fn bin() -> PathBuf {
    let dir = target_dir();
    BUILD.call_once(|| {
        let mut cmd = Command::new(env!("CARGO"));
        // The default members: the binary and every shipped plugin.
        cmd.args(["build", "-q"]).current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build");
        assert!(st.success(), "cargo build of tickwatch and its plugins failed");
    });
    let bin = dir.join("tickwatch");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

static TEST_PLUGINS: Once = Once::new();

/// A directory holding the misbehaving test plugins of tests/plugins
/// (detector `faulty`, and a plugin built for ABI 999), built on first use.
pub fn test_plugin_dir() -> PathBuf {
    let profile = target_dir().file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_string();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target").join("test-plugins");
    TEST_PLUGINS.call_once(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "--manifest-path"])
            .arg(root.join("tests/plugins/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target);
        if profile == "release" {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("run cargo build").success(), "building test plugins failed");
    });
    target.join(profile)
}

/// The plugin directory holding the built ttest `.so`.
pub fn plugin_dir() -> PathBuf {
    bin();
    target_dir()
}

static STATE_ROOT: Once = Once::new();
static NEXT_STATE: AtomicUsize = AtomicUsize::new(0);

/// A new, empty state directory under target/tmp (the whole tree is
/// cleared at the start of each test run).
pub fn fresh_state_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-state");
    STATE_ROOT.call_once(|| {
        let _ = std::fs::remove_dir_all(&root);
    });
    let dir = root.join(NEXT_STATE.fetch_add(1, Ordering::SeqCst).to_string());
    std::fs::create_dir_all(&dir).expect("create state dir");
    dir
}

/// A new private directory under target/tmp, for plugin files: plugins are
/// loaded only from directories whose every ancestor is safe, and /tmp
/// (world-writable, sticky) is not.
pub fn private_dir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-private");
    std::fs::create_dir_all(&base).expect("create target/tmp/e2e-private");
    tempfile::tempdir_in(base).expect("private temp dir")
}

/// `tickwatch` as a command, with a fresh state directory in its env.
pub fn tickwatch() -> Command {
    let mut cmd = Command::new(bin());
    cmd.env("TICKWATCH_STATE_DIR", fresh_state_dir());
    cmd
}

/// Spawns `tickwatch serve --detector ttest` with a fresh state directory.
pub fn spawn(extra: &[&str]) -> UdfClient {
    spawn_in(&fresh_state_dir(), extra)
}

/// Spawns `tickwatch serve --detector ttest` on `state_dir`.
pub fn spawn_in(state_dir: &Path, extra: &[&str]) -> UdfClient {
    spawn_detector("ttest", &plugin_dir(), state_dir, extra)
}

/// Spawns `tickwatch serve --detector NAME` from `plugins` on `state_dir`.
pub fn spawn_detector(
    detector: &str,
    plugins: &Path,
    state_dir: &Path,
    extra: &[&str],
) -> UdfClient {
    let bin = bin();
    let plugins = plugins.to_str().expect("utf-8 path");
    let state = state_dir.to_str().expect("utf-8 path");
    let mut args = vec![
        "serve",
        "--detector",
        detector,
        "--plugin-dir",
        plugins,
        "--state-dir",
        state,
        "--log",
        "warn",
    ];
    args.extend_from_slice(extra);
    UdfClient::spawn(&bin, &args, &[]).expect("spawn tickwatch serve")
}

/// `.field(...)` calls for `fields`, padded with '' to arity 3, as a user
/// would write them in a TICKscript.
pub fn field_calls(fields: &[&str]) -> Vec<agent::Option> {
    fields
        .chunks(3)
        .map(|c| {
            let mut v: Vec<agent::OptionValue> = c.iter().map(|f| opt::s(f)).collect();
            while v.len() < 3 {
                v.push(opt::s(""));
            }
            opt::call("field", v)
        })
        .collect()
}

/// The options of `@tTest().field(fields…).size(size).alpha(alpha)`.
pub fn ttest_options(fields: &[&str], size: i64, alpha: f64) -> Vec<agent::Option> {
    let mut o = field_calls(fields);
    o.push(opt::call("size", vec![opt::i(size)]));
    o.push(opt::call("alpha", vec![opt::d(alpha)]));
    o
}

/// Connects Info + Init on a client; panics unless Init succeeds.
pub fn init(udf: &mut UdfClient, fields: &[&str], size: i64, alpha: f64) {
    udf.info().expect("info");
    let r = udf.init("print_temps", "tTest2", ttest_options(fields, size, alpha)).expect("init");
    assert!(r.success, "init refused: {}", r.error);
}

/// A started process node for `fields`, with a fresh state directory.
pub fn node(fields: &[&str], size: i64, alpha: f64) -> UdfClient {
    node_in(&fresh_state_dir(), fields, size, alpha)
}

/// A started process node for `fields` on `state_dir`.
pub fn node_in(state_dir: &Path, fields: &[&str], size: i64, alpha: f64) -> UdfClient {
    let mut udf = spawn_in(state_dir, &[]);
    init(&mut udf, fields, size, alpha);
    udf
}

/// Windows of the printer day(s) as Kapacitor would send them: one printer
/// per (tag value, seed); ungrouped when `printers` has one entry with an
/// empty name.
pub fn day_batches(printers: &[(&str, u64)]) -> Vec<Batch> {
    let group_by: Vec<&str> =
        if printers.iter().any(|(p, _)| !p.is_empty()) { vec!["printer"] } else { vec![] };
    let mut w = Windower::new(FIVE_MIN, FIVE_MIN, &group_by);
    let days: Vec<(HashMap<String, String>, Vec<scenario::Reading>)> = printers
        .iter()
        .map(|(name, seed)| {
            let tags = if name.is_empty() {
                HashMap::new()
            } else {
                HashMap::from([("printer".to_string(), name.to_string())])
            };
            (tags, scenario::printer_day(*seed))
        })
        .collect();
    let mut out = Vec::new();
    for i in 0..scenario::READINGS {
        for (tags, day) in &days {
            out.extend(w.push(day[i].to_point(tags)));
        }
    }
    out
}

/// Sends all batches, closes, and returns the emitted points; asserts a
/// clean exit.
pub fn run_all(mut udf: UdfClient, batches: &[Batch]) -> Vec<agent::Point> {
    for b in batches {
        udf.send_batch(b).expect("send batch");
    }
    let closed = udf.close().expect("close");
    assert_eq!(closed.error, None, "unexpected ErrorResponse");
    if let Some(st) = closed.status {
        assert!(st.success(), "tickwatch exited with {st}");
    }
    closed.points
}

/// One verdict, flattened for comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub group: String,
    pub field: String,
    pub time: i64,
    pub pvalue: f64,
    pub t: f64,
    pub anomalous: bool,
}

pub fn verdicts(points: &[agent::Point]) -> Vec<Verdict> {
    verdicts_with(points, "t")
}

/// Verdicts whose main statistic is called `stat` (kept in `Verdict::t`).
pub fn verdicts_with(points: &[agent::Point], stat: &str) -> Vec<Verdict> {
    points
        .iter()
        .map(|p| Verdict {
            group: p.tags.get("printer").cloned().unwrap_or_default(),
            field: p.tags.get("field").cloned().expect("field tag"),
            time: p.time,
            pvalue: p.fields_double["pvalue"],
            t: p.fields_double[stat],
            anomalous: p.fields_bool["anomalous"],
        })
        .collect()
}

/// Seconds from the start of the day, for readable assertions.
pub fn second(time: i64) -> i64 {
    (time - scenario::START_NS) / 1_000_000_000
}

/// Copies a directory tree (regular files only: sockets and locks' holders
/// stay behind).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("dir entry");
        let target = to.join(e.file_name());
        let kind = e.file_type().expect("file type");
        if kind.is_dir() {
            copy_tree(&e.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(e.path(), &target).expect("copy file");
        }
    }
}
