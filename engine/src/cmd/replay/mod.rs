//! `tickwatch replay`: line-protocol files through a UDF node over the real
//! protocol, windowed as `|window().period().every()` does, with a readable
//! report, JSON, and an SVG plot. `demo` is a replay of a generated day.
//!
//! The node is a `tickwatch serve` child process driven by the same host
//! code the end-to-end tests use; it gets a fresh temporary state directory,
//! so every replay starts from nothing.

pub mod chain;
pub mod lineproto;
pub mod plot;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tickwatch_proto::agent;

use crate::cmd::out;
use crate::inspect::rfc3339;
use crate::kapacitor::{HostError, UdfClient, Windower, group_id, group_label};
use crate::node::Edge;
use crate::node::config::{self, PERIOD_OPTION, Tracking};
use crate::node::config::{ALIGN_OPTION, EVERY_OPTION, PASS_THROUGH_OPTION};
use crate::node::values::{self, Reading};
use lineproto::Precision;

/// A `tickwatch replay`, validated.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Line-protocol files (`-` for stdin).
    pub files: Vec<PathBuf>,
    /// Detector name.
    pub detector: String,
    /// Init options (the parsed chain).
    pub options: Vec<agent::Option>,
    /// Window period (ns).
    pub period: i64,
    /// Window every (ns).
    pub every: i64,
    /// `.align()` the windows.
    pub align: bool,
    /// Group-by tags.
    pub group_by: Vec<String>,
    /// Only lines of this measurement.
    pub measurement: Option<String>,
    /// Timestamp unit of the input.
    pub precision: Precision,
    /// JSON lines instead of the report.
    pub json: bool,
    /// SVG plot path.
    pub plot: Option<PathBuf>,
    /// `--field-arity` for the served UDF.
    pub field_arity: usize,
    /// Plugin directories for the served UDF.
    pub plugin_dirs: Vec<PathBuf>,
    /// Batch edges (replay cuts the windows) or stream edges (the served
    /// node does, from `.period().every()`).
    pub edge: Edge,
}

/// Everything a replay needs, validated.
#[derive(Debug)]
pub struct Plan {
    /// Detector name.
    pub detector: String,
    /// Init options (parsed chain).
    pub options: Vec<agent::Option>,
    /// Window period (ns).
    pub period: i64,
    /// Window every (ns).
    pub every: i64,
    /// `.align()` the windows.
    pub align: bool,
    /// Group-by tags.
    pub group_by: Vec<String>,
    /// `--field-arity` for the served UDF.
    pub field_arity: usize,
    /// Plugin directories for the served UDF.
    pub plugin_dirs: Vec<PathBuf>,
    /// Which edges the served node takes.
    pub edge: Edge,
}

/// What a replay produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Points the node emitted, in order.
    pub emitted: Vec<agent::Point>,
    /// Windows sent.
    pub windows: u64,
    /// Input points.
    pub points: u64,
    /// Tracked-field values the node skips (strings, booleans).
    pub skipped: u64,
    /// The tag carrying field names.
    pub field_tag: String,
    /// The chain's `.alpha()`, if it sets one (drawn on the plot).
    pub alpha: Option<f64>,
}

/// Runs `points` (time-ordered, named) through a served node.
pub fn run(plan: &Plan, points: Vec<agent::Point>) -> anyhow::Result<Outcome> {
    let bar = progress(points.len() as u64);
    let out = run_stream(plan, points, &mut |_, i| {
        if i % 4096 == 0 {
            bar.set_position(i);
        }
    });
    bar.finish_and_clear();
    out
}

/// Runs `points` (time-ordered, named, read lazily) through a served
/// node, calling `on_point` with each point and its index before it is
/// windowed. Windows are sent as time advances, so memory stays bounded by
/// the window and the node's own state, whatever the input's length.
pub fn run_stream(
    plan: &Plan,
    points: impl IntoIterator<Item = agent::Point>,
    on_point: &mut dyn FnMut(&agent::Point, u64),
) -> anyhow::Result<Outcome> {
    let out = run_node(plan, points, on_point);
    if out.is_err() {
        // The node's end may be the interrupt's doing (it kills the node):
        // then the interrupt reports and exits, not this error.
        interrupt::defer_to_cleanup();
    }
    out
}

/// [`run_stream`]'s work.
fn run_node(
    plan: &Plan,
    points: impl IntoIterator<Item = agent::Point>,
    on_point: &mut dyn FnMut(&agent::Point, u64),
) -> anyhow::Result<Outcome> {
    // The served child would fail the same way, but its error would reach
    // the user only as "the UDF did not answer Info": say it here first.
    let plugin = crate::plugin::Registry::require(&plan.detector, &plan.plugin_dirs)?;
    let exe = std::env::current_exe().context("cannot find the tickwatch binary")?;
    let state = tempfile::tempdir().context("cannot create a temporary state directory")?;
    let state_dir = state.path().to_str().context("temporary directory path is not UTF-8")?;
    let plugin_dirs = std::env::join_paths(&plan.plugin_dirs).context("plugin directory list")?;
    let arity = plan.field_arity.to_string();
    let mut args = vec![
        "serve",
        "--detector",
        &plan.detector,
        "--field-arity",
        &arity,
        "--state-dir",
        state_dir,
        "--log",
        "warn",
    ];
    let mut options = plan.options.clone();
    if plan.edge == Edge::Stream {
        args.extend(["--edge", "stream"]);
        // The stream node forms the windows itself: --window/--every become
        // its .period().every() unless the chain sets them.
        if !options.iter().any(|o| o.name == PERIOD_OPTION || o.name == EVERY_OPTION) {
            let dur = |ns: i64| agent::OptionValue {
                r#type: agent::ValueType::Duration as i32,
                value: Some(agent::option_value::Value::DurationValue(ns)),
            };
            options
                .push(agent::Option { name: PERIOD_OPTION.into(), values: vec![dur(plan.period)] });
            options
                .push(agent::Option { name: EVERY_OPTION.into(), values: vec![dur(plan.every)] });
            if plan.align {
                options.push(agent::Option { name: ALIGN_OPTION.into(), values: vec![] });
            }
        }
    }
    if options.iter().any(|o| o.name == PASS_THROUGH_OPTION) {
        bail!("--udf: replay reports verdicts; .passThrough() is for a Kapacitor task");
    }
    let plugin_env = plugin_dirs.to_string_lossy().into_owned();
    // Ctrl-C (or SIGTERM) from here on removes the temporary state
    // directory and, once it runs, stops the node before the process
    // exits. Armed before the node starts: a signal in between would
    // otherwise end this process by default and leave both behind.
    let armed = interrupt::arm(state.path());
    let mut udf = UdfClient::spawn(&exe, &args, &[("TICKWATCH_PLUGIN_DIR", &plugin_env)])
        .context("cannot start tickwatch serve")?;
    armed.child_started(udf.pid());
    udf.info().map_err(|e| anyhow!("the UDF did not answer Info ({e}); see its error above"))?;
    let init = udf.init("replay", &plan.detector, options).map_err(|e| match e {
        HostError::Options(m) => anyhow!("--udf rejected as Kapacitor would: {m}"),
        e => anyhow!(e),
    })?;
    if !init.success {
        bail!("--udf refused by the detector: {}", init.error);
    }
    let Tracking { fields: tracked, field_tag, .. } =
        config::tracking(&plan.options).map_err(|e| anyhow!("--udf: {e}"))?;
    let alpha = plan.options.iter().rev().find(|o| o.name == "alpha").and_then(|o| {
        match o.values.first()?.value.as_ref()? {
            agent::option_value::Value::DoubleValue(d) => Some(*d),
            _ => None,
        }
    });
    // Else the detector's default, if it declares an alpha.
    let alpha = alpha.or_else(|| {
        use crate::node::DetectorFactory as _;
        match plugin.options().iter().find(|o| o.name == "alpha")?.default.as_ref()? {
            tickwatch_plugin_api::Value::Double(d) => Some(*d),
            _ => None,
        }
    });
    let mut out = Outcome { field_tag, alpha, ..Default::default() };
    let group_by: Vec<&str> = plan.group_by.iter().map(String::as_str).collect();
    let mut windows = Windower::new(plan.period, plan.every, &group_by).align(plan.align);
    let mut dims: Vec<String> = plan.group_by.clone();
    dims.sort();
    dims.dedup();
    // Stream edges: points as |from().groupBy() sends them, in runs.
    let mut run: Vec<agent::Point> = Vec::new();
    for (i, p) in points.into_iter().enumerate() {
        on_point(&p, i as u64);
        out.points += 1;
        out.skipped +=
            tracked.iter().filter(|f| values::read(&p, f) == Reading::Unusable).count() as u64;
        if plan.edge == Edge::Stream {
            let mut sp = p.clone();
            sp.group = group_id("", false, &dims, &sp.tags);
            sp.dimensions.clone_from(&dims);
            run.push(sp);
            // The windows are counted here too, for the report.
            out.windows += u64::from(windows.push(p).is_some());
            if run.len() >= 4096 && udf.send_points(&std::mem::take(&mut run)).is_err() {
                break;
            }
        } else if let Some(batch) = windows.push(p) {
            out.windows += 1;
            if let Err(e) = udf.send_batch(&batch) {
                // The node ended its stream: its ErrorResponse says why.
                tracing::debug!("sending a window failed: {e}");
                break;
            }
        }
    }
    if !run.is_empty()
        && let Err(e) = udf.send_points(&run)
    {
        tracing::debug!("sending points failed: {e}");
    }
    // From here the child is waited for (and reaped) by `close`: the
    // interrupt cleanup must no longer signal its pid.
    armed.child_done();
    let closed = udf.close().context("finishing the replay")?;
    if let Some(e) = closed.error {
        bail!("the node failed: {e}");
    }
    if let Some(st) = closed.status.filter(|s| !s.success()) {
        bail!("tickwatch serve exited with {st}");
    }
    out.emitted = closed.points;
    drop(state);
    Ok(out)
}

/// At most this many distinct field names are remembered for the warning
/// below (a bound on hostile input).
const MAX_SEEN_FIELDS: usize = 10_000;

/// Adds `p`'s field names to `seen` (up to [`MAX_SEEN_FIELDS`]).
fn see_fields(seen: &mut std::collections::BTreeSet<String>, p: &agent::Point) {
    if seen.len() >= MAX_SEEN_FIELDS {
        return;
    }
    let names = p
        .fields_double
        .keys()
        .chain(p.fields_int.keys())
        .chain(p.fields_string.keys())
        .chain(p.fields_bool.keys());
    for n in names {
        if !seen.contains(n) {
            seen.insert(n.clone());
        }
    }
}

/// Warns about each tracked field no point carries (a typo such as `bedd`
/// would otherwise only show as a field with no verdicts), naming the
/// fields the input does have.
fn warn_missing_fields(seen: &std::collections::BTreeSet<String>, tracked: &[String]) {
    for f in tracked.iter().filter(|f| !seen.contains(f.as_str())) {
        let fields: Vec<&str> = seen.iter().map(String::as_str).collect();
        tracing::warn!(
            "tracked field {f:?} appears in no point of the input (its fields: {})",
            fields.join(", ")
        );
    }
}

/// Nanoseconds from 2000-01-01 to 2100-01-01: where real timestamps fall.
const PLAUSIBLE_NS: std::ops::RangeInclusive<i128> =
    946_684_800_000_000_000..=4_102_444_800_000_000_000;

/// The `--precision` the timestamps seem written in, when it is not the one
/// given: every point falls between 2000 and 2100 under that unit, and not
/// under the given one.
fn precision_hint(range: Option<(i64, i64)>, given: Precision) -> Option<&'static str> {
    let (min, max) = range?;
    let raw = |t: i64| i128::from(t) / i128::from(given.to_ns());
    let fits = |factor: i128| {
        PLAUSIBLE_NS.contains(&(raw(min) * factor)) && PLAUSIBLE_NS.contains(&(raw(max) * factor))
    };
    if fits(i128::from(given.to_ns())) {
        return None;
    }
    [("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000)]
        .into_iter()
        .find(|(_, f)| fits(*f))
        .map(|(unit, _)| unit)
}

/// A progress bar on stderr, drawn only when stderr is a terminal and the
/// input is large.
fn progress(len: u64) -> ProgressBar {
    use std::io::IsTerminal;
    if len < 100_000 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} points ({eta} left)") {
        bar.set_style(style);
    }
    bar
}

/// A progress bar over the input's bytes on stderr (a spinner counting
/// bytes when the length is unknown, as for stdin), drawn only when stderr
/// is a terminal.
fn reading_progress(total: u64) -> ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = if total > 0 {
        (
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "{bar:40} {bytes}/{total_bytes} read ({eta} left)",
        )
    } else {
        (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {bytes} read",
        )
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Cleanup when the user interrupts a replay: the served node is stopped
/// and its temporary state directory removed, then the process exits 130
/// (as a shell reports SIGINT). Without it, Ctrl-C left the directory
/// behind. One handler thread per process (signal-hook), armed while a
/// node runs.
mod interrupt {
    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, Once, OnceLock};

    static ARMED: Mutex<Option<(Option<u32>, PathBuf)>> = Mutex::new(None);
    static HANDLER: Once = Once::new();
    /// Set inside the signal handler itself (signal-hook's flag), before
    /// the handler thread cleans up and exits.
    static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    /// How long the main thread leaves the exit to the handler thread
    /// before exiting 130 itself (the handler may have died).
    const HANDLER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

    /// When an interrupt came (the flag is set inside the signal handler),
    /// waits for the handler thread to clean up and exit the process (130
    /// for SIGINT): the main thread, seeing its node killed by the
    /// cleanup, must not exit first with that failure (exit 1, and the
    /// directory perhaps not yet removed). If the handler thread has not
    /// exited after [`HANDLER_GRACE`], exits 130 itself. Returns after a
    /// short grace when no interrupt came.
    pub fn defer_to_cleanup() {
        let interrupted = || INTERRUPTED.get().is_some_and(|f| f.load(Ordering::SeqCst));
        if !interrupted() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if interrupted() {
            let start = std::time::Instant::now();
            while let Some(left) = HANDLER_GRACE.checked_sub(start.elapsed()) {
                std::thread::park_timeout(left);
            }
            std::process::exit(130);
        }
    }

    /// Disarms on drop (the normal end cleans up by itself).
    pub struct Armed;

    impl Drop for Armed {
        fn drop(&mut self) {
            if let Ok(mut a) = ARMED.lock() {
                *a = None;
            }
        }
    }

    impl Armed {
        /// The node `pid` runs: an interrupt now stops it too. (One that
        /// came before leaves it to exit at the end of its input, which
        /// closes with this process.)
        pub fn child_started(&self, pid: Option<u32>) {
            if let Ok(mut a) = ARMED.lock()
                && let Some((armed_pid, _)) = a.as_mut()
            {
                *armed_pid = pid;
            }
        }

        /// The child is about to be waited for: an interrupt now only
        /// removes the directory.
        pub fn child_done(&self) {
            if let Ok(mut a) = ARMED.lock()
                && let Some((pid, _)) = a.as_mut()
            {
                *pid = None;
            }
        }
    }

    /// Arms the cleanup of the state directory `dir` (and, once
    /// [`Armed::child_started`] says which, of its node).
    pub fn arm(dir: &Path) -> Armed {
        if let Ok(mut a) = ARMED.lock() {
            *a = Some((None, dir.to_path_buf()));
        }
        HANDLER.call_once(|| {
            use signal_hook::consts::{SIGINT, SIGTERM};
            let flag = INTERRUPTED.get_or_init(Arc::default);
            for sig in [SIGINT, SIGTERM] {
                if let Err(e) = signal_hook::flag::register(sig, Arc::clone(flag)) {
                    tracing::debug!("cannot flag signal {sig}: {e}");
                }
            }
            match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
                Ok(mut signals) => {
                    std::thread::spawn(move || {
                        if let Some(sig) = signals.forever().next() {
                            cleanup();
                            std::process::exit(128 + sig);
                        }
                    });
                }
                Err(e) => tracing::warn!(
                    "cannot handle Ctrl-C ({e}): an interrupted replay may \
                                          leave its temporary directory behind"
                ),
            }
        });
        Armed
    }

    fn cleanup() {
        let armed = ARMED.lock().ok().and_then(|mut a| a.take());
        let Some((pid, dir)) = armed else { return };
        if let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: plain syscalls on our own child's pid; nothing else
            // reaps the child while its pid is armed (the main thread waits
            // for it only after `child_done`), so the pid is still ours.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        // Not `eprintln!`: a closed stderr must not panic this thread
        // before it exits.
        let _ = writeln!(
            std::io::stderr(),
            "interrupted: the replay's node was stopped and {} removed",
            dir.display()
        );
    }
}

/// One emitted point as a JSON object: time (RFC 3339) and time_ns (the
/// same in nanoseconds, as `last_time`/`last_time_ns` in `tickwatch state`), name, tags (the
/// group's), field, pvalue, anomalous and the detector's statistics.
pub fn json_line(p: &agent::Point, field_tag: &str) -> serde_json::Value {
    let mut tags = p.tags.clone();
    let field = tags.remove(field_tag).unwrap_or_default();
    let mut obj = serde_json::Map::new();
    obj.insert("time".into(), rfc3339(p.time).into());
    obj.insert("time_ns".into(), p.time.into());
    obj.insert("name".into(), p.name.clone().into());
    obj.insert(
        "tags".into(),
        serde_json::to_value(tags.into_iter().collect::<BTreeMap<_, _>>()).unwrap_or_default(),
    );
    obj.insert("field".into(), field.into());
    let mut stats: Vec<(&String, &f64)> = p.fields_double.iter().collect();
    stats.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in stats {
        obj.insert(k.clone(), (*v).into());
    }
    for (k, v) in &p.fields_bool {
        obj.insert(k.clone(), (*v).into());
    }
    serde_json::Value::Object(obj)
}

/// The label of an emitted point's group without its field: the group the
/// replayed data was windowed by.
pub fn group_of(p: &agent::Point, field_tag: &str) -> String {
    let mut dims: Vec<String> = p.tags.keys().filter(|k| *k != field_tag).cloned().collect();
    dims.sort();
    group_label(&group_id(&p.name, false, &dims, &p.tags))
}

/// The alert-log style report: anomalous windows per group and field, then
/// a summary.
pub fn report(out: &Outcome, period: i64, malformed: u64) -> String {
    let mut s = String::new();
    let mut by: BTreeMap<(String, String), Vec<&agent::Point>> = BTreeMap::new();
    let mut per_field: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for p in &out.emitted {
        let field = p.tags.get(&out.field_tag).cloned().unwrap_or_default();
        let anomalous = p.fields_bool.get("anomalous").copied().unwrap_or(false);
        let e = per_field.entry(field.clone()).or_default();
        e.0 += 1;
        if anomalous {
            e.1 += 1;
            by.entry((group_of(p, &out.field_tag), field)).or_default().push(p);
        }
    }
    if by.is_empty() {
        let _ = writeln!(s, "no anomalous windows");
    }
    for ((group, field), points) in &by {
        let _ = writeln!(s, "{group} {field}: {} anomalous window(s)", points.len());
        let rows: Vec<Vec<String>> = points
            .iter()
            .map(|p| {
                let mut stats: Vec<String> = p
                    .fields_double
                    .iter()
                    .filter(|(k, _)| *k != "pvalue")
                    .map(|(k, v)| format!("{k}={v:+.3}"))
                    .collect();
                stats.sort();
                vec![
                    "  CRITICAL".to_string(),
                    format!("window {} – {}", rfc3339(p.time - period), rfc3339(p.time)),
                    format!(
                        "pvalue={:.3e}",
                        p.fields_double.get("pvalue").copied().unwrap_or(f64::NAN)
                    ),
                    stats.join(" "),
                ]
            })
            .collect();
        let text = crate::cmd::table::render(&["", "", "", ""], &rows, &[]);
        // Header-less: the group line above names the columns' subject.
        s.push_str(text.split_once('\n').map_or("", |(_, rest)| rest));
    }
    if !per_field.is_empty() {
        let rows: Vec<Vec<String>> = per_field
            .iter()
            .map(|(f, (n, a))| vec![f.clone(), n.to_string(), a.to_string()])
            .collect();
        let _ = writeln!(s);
        s.push_str(&crate::cmd::table::render(
            &["FIELD", "VERDICTS", "ANOMALOUS"],
            &rows,
            &[
                crate::cmd::table::Align::Left,
                crate::cmd::table::Align::Right,
                crate::cmd::table::Align::Right,
            ],
        ));
    }
    let anomalies: Vec<String> = per_field.iter().map(|(f, (_, a))| format!("{f} {a}")).collect();
    let _ = writeln!(
        s,
        "\nsummary: {} points, {} windows, {} verdicts; anomalous windows: {}; skipped values: {}; \
         malformed lines: {malformed}",
        out.points,
        out.windows,
        out.emitted.len(),
        if anomalies.is_empty() { "none".into() } else { anomalies.join(", ") },
        out.skipped
    );
    s
}

/// Runs `tickwatch replay`.
pub fn replay(cfg: &ReplayConfig) -> anyhow::Result<()> {
    let tracked = config::tracking(&cfg.options).map_err(|e| anyhow!("--udf: {e}"))?;
    let plan = Plan {
        detector: cfg.detector.clone(),
        options: cfg.options.clone(),
        period: cfg.period,
        every: cfg.every,
        align: cfg.align,
        group_by: cfg.group_by.clone(),
        field_arity: cfg.field_arity,
        plugin_dirs: cfg.plugin_dirs.clone(),
        edge: cfg.edge,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let mut stream =
        lineproto::Stream::open(&cfg.files, cfg.precision, cfg.measurement.as_deref(), now)?;
    let bar = reading_progress(stream.total);
    let bytes = stream.bytes.clone();
    let mut values = cfg.plot.as_ref().map(|_| plot::Series::new(&tracked.fields, &plan.group_by));
    let mut seen = std::collections::BTreeSet::new();
    let mut range: Option<(i64, i64)> = None;
    let out = run_stream(&plan, stream.by_ref(), &mut |p, i| {
        range = Some(range.map_or((p.time, p.time), |(lo, _)| (lo, p.time)));
        see_fields(&mut seen, p);
        if let Some(v) = values.as_mut() {
            v.add(p);
        }
        if i % 4096 == 0 {
            bar.set_position(bytes.get());
        }
    });
    bar.finish_and_clear();
    let out = out?;
    let input = &stream.input;
    if input.malformed > lineproto::REPORT_LIMIT {
        tracing::warn!(
            "{} malformed lines in all (the first {} are shown)",
            input.malformed,
            lineproto::REPORT_LIMIT
        );
    }
    if stream.late > 0 {
        tracing::warn!(
            "{} point(s) skipped: they came more than {} points after later ones (Kapacitor's \
             window does not reopen a window it emitted)",
            stream.late,
            lineproto::REORDER
        );
    }
    if out.points == 0 {
        bail!("no points to replay ({} lines read, {} malformed)", input.lines, input.malformed);
    }
    let hint = precision_hint(range, cfg.precision).map(|unit| {
        format!("the timestamps look like --precision {unit}, not {}", cfg.precision.name())
    });
    if let Some(h) = &hint {
        tracing::warn!("{h}");
    }
    warn_missing_fields(&seen, &tracked.fields);
    let malformed = input.malformed;
    if out.windows == 0 {
        bail!(
            "no window closed: the data spans less than one --every ({} s){}",
            plan.every / 1_000_000_000,
            hint.map(|h| format!(", or rather {h}")).unwrap_or_default()
        );
    }
    emit(&out, plan.period, malformed, cfg.json)?;
    if let (Some(path), Some(values)) = (&cfg.plot, values) {
        plot::write(path, &values, &out, plan.period)?;
        tracing::info!("plot written to {}", path.display());
    }
    Ok(())
}

/// Prints JSON lines or the report.
pub fn emit(out: &Outcome, period: i64, malformed: u64, json: bool) -> anyhow::Result<()> {
    if json {
        let mut text = String::new();
        for p in &out.emitted {
            let _ = writeln!(text, "{}", json_line(p, &out.field_tag));
        }
        out!("{text}");
    } else {
        out!("{}", report(out, period, malformed));
    }
    Ok(())
}

/// Writes `points` as line protocol (nanosecond timestamps).
pub fn write_line_protocol(path: &Path, lines: impl Iterator<Item = String>) -> anyhow::Result<()> {
    use std::io::Write;
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    for l in lines {
        writeln!(w, "{l}")?;
    }
    w.flush()?;
    Ok(())
}
