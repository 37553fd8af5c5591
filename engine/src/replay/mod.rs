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

use crate::cli::PluginDirArg;
use crate::host::{HostError, UdfClient, Windower};
use crate::inspect::rfc3339;
use crate::options::{DEFAULT_FIELD_TAG, FIELD_TAG_OPTION};
use lineproto::Precision;

/// `tickwatch replay` flags.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Line-protocol files (`-` for stdin; `.gz` is decompressed).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The detector to run.
    #[arg(long)]
    pub detector: String,
    /// The UDF's option chain as a TICKscript writes it, e.g.
    /// ".field('hotend','bed','air').size(3600).alpha(0.001)".
    #[arg(long)]
    pub udf: String,
    /// Window period, as `|window().period()` (e.g. 5m, 300s).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub window: i64,
    /// Window every, as `|window().every()` (default: the period).
    #[arg(long, value_parser = parse_duration)]
    pub every: Option<i64>,
    /// Group by this tag (repeatable), as `|groupBy()`.
    #[arg(long = "group-by")]
    pub group_by: Vec<String>,
    /// Only lines of this measurement.
    #[arg(long)]
    pub measurement: Option<String>,
    /// Timestamp unit of the input.
    #[arg(long, value_enum, default_value = "ns")]
    pub precision: Precision,
    /// One JSON object per emitted point instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Write an SVG plot here: values per field, p-values on a log scale,
    /// anomalous windows shaded.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The `--field-arity` the UDF is served with.
    #[arg(long, default_value_t = 3)]
    pub field_arity: usize,
    #[command(flatten)]
    pub plugins: PluginDirArg,
}

/// Parses `5m`, `300s`, `1h30m`… into nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    let ns = i64::try_from(d.as_nanos()).map_err(|_| format!("{s:?} is too long"))?;
    if ns <= 0 {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(ns)
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
    /// Group-by tags.
    pub group_by: Vec<String>,
    /// `--field-arity` for the served UDF.
    pub field_arity: usize,
    /// Plugin directories for the served UDF.
    pub plugin_dirs: Vec<PathBuf>,
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
}

fn field_tag(options: &[agent::Option]) -> String {
    options
        .iter()
        .rev()
        .find(|o| o.name == FIELD_TAG_OPTION)
        .and_then(|o| o.values.first())
        .and_then(|v| match &v.value {
            Some(agent::option_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| DEFAULT_FIELD_TAG.to_string())
}

/// Runs `points` (time-ordered, named) through a served node.
pub fn run(plan: &Plan, points: Vec<agent::Point>) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe().context("cannot find the tickwatch binary")?;
    let state = tempfile::tempdir().context("cannot create a temporary state directory")?;
    let state_dir = state.path().to_str().context("temporary directory path is not UTF-8")?;
    let plugin_dirs = std::env::join_paths(&plan.plugin_dirs).context("plugin directory list")?;
    let arity = plan.field_arity.to_string();
    let args = [
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
    let plugin_env = plugin_dirs.to_string_lossy().into_owned();
    let mut udf = UdfClient::spawn(&exe, &args, &[("TICKWATCH_PLUGIN_DIR", &plugin_env)])
        .context("cannot start tickwatch serve")?;
    udf.info().map_err(|e| anyhow!("the UDF did not answer Info ({e}); see its error above"))?;
    let init = udf.init("replay", &plan.detector, plan.options.clone()).map_err(|e| match e {
        HostError::Options(m) => anyhow!("--udf rejected as Kapacitor would: {m}"),
        e => anyhow!(e),
    })?;
    if !init.success {
        bail!("--udf refused by the detector: {}", init.error);
    }
    let tracked = chain::fields(&plan.options);
    let mut out = Outcome { field_tag: field_tag(&plan.options), ..Default::default() };
    let group_by: Vec<&str> = plan.group_by.iter().map(String::as_str).collect();
    let mut windows = Windower::new(plan.period, plan.every, &group_by);
    let bar = progress(points.len() as u64);
    for (i, p) in points.into_iter().enumerate() {
        out.points += 1;
        out.skipped += tracked
            .iter()
            .filter(|f| p.fields_string.contains_key(*f) || p.fields_bool.contains_key(*f))
            .count() as u64;
        if let Some(batch) = windows.push(p) {
            out.windows += 1;
            if let Err(e) = udf.send_batch(&batch) {
                // The node ended its stream: its ErrorResponse says why.
                tracing::debug!("sending a window failed: {e}");
                break;
            }
        }
        if i % 4096 == 0 {
            bar.set_position(i as u64);
        }
    }
    bar.finish_and_clear();
    let closed = udf.close().context("finishing the replay")?;
    if let Some(e) = closed.error {
        bail!("the node failed: {e}");
    }
    if let Some(st) = closed.status.filter(|s| !s.success()) {
        bail!("tickwatch serve exited with {st}");
    }
    out.emitted = closed.points;
    drop(state);
    if out.windows == 0 {
        tracing::warn!(
            "no window closed: the data spans less than one --every ({} s), or --precision does \
             not match the timestamps",
            plan.every / 1_000_000_000
        );
    }
    Ok(out)
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

/// One emitted point as a JSON object: time (RFC 3339), name, tags (the
/// group's), field, pvalue, anomalous and the detector's statistics.
pub fn json_line(p: &agent::Point, field_tag: &str) -> serde_json::Value {
    let mut tags = p.tags.clone();
    let field = tags.remove(field_tag).unwrap_or_default();
    let mut obj = serde_json::Map::new();
    obj.insert("time".into(), rfc3339(p.time).into());
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

fn group_of(p: &agent::Point, field_tag: &str) -> String {
    let mut tags: Vec<(&String, &String)> =
        p.tags.iter().filter(|(k, _)| *k != field_tag).collect();
    tags.sort();
    let text: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if text.is_empty() { "(ungrouped)".into() } else { text.join(",") }
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
        for p in points {
            let mut stats: Vec<String> = p
                .fields_double
                .iter()
                .filter(|(k, _)| *k != "pvalue")
                .map(|(k, v)| format!("{k}={v:+.3}"))
                .collect();
            stats.sort();
            let _ = writeln!(
                s,
                "  CRITICAL  window {} – {}  pvalue={:.3e}  {}",
                rfc3339(p.time - period),
                rfc3339(p.time),
                p.fields_double.get("pvalue").copied().unwrap_or(f64::NAN),
                stats.join(" ")
            );
        }
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
pub fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let options = chain::parse(&args.udf).map_err(|e| anyhow!("--udf: {e}"))?;
    if chain::fields(&options).is_empty() {
        bail!("--udf names no field: add .field('name', …)");
    }
    let plan = Plan {
        detector: args.detector.clone(),
        options,
        period: args.window,
        every: args.every.unwrap_or(args.window),
        group_by: args.group_by.clone(),
        field_arity: args.field_arity,
        plugin_dirs: args.plugins.resolve(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let input = lineproto::read(&args.files, args.precision, args.measurement.as_deref(), now)?;
    if input.points.is_empty() {
        bail!("no points to replay ({} lines read, {} malformed)", input.lines, input.malformed);
    }
    let values = args.plot.as_ref().map(|_| {
        plot::Series::from_points(&input.points, &chain::fields(&plan.options), &plan.group_by)
    });
    let malformed = input.malformed;
    let out = run(&plan, input.points)?;
    emit(&out, plan.period, malformed, args.json)?;
    if let (Some(path), Some(values)) = (&args.plot, values) {
        plot::write(path, &values, &out, plan.period)?;
        tracing::info!("plot written to {}", path.display());
    }
    Ok(())
}

/// Prints JSON lines or the report. A closed stdout (`| head`) ends output
/// quietly.
pub fn emit(out: &Outcome, period: i64, malformed: u64, json: bool) -> anyhow::Result<()> {
    match emit_inner(out, period, malformed, json) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn emit_inner(out: &Outcome, period: i64, malformed: u64, json: bool) -> std::io::Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    if json {
        for p in &out.emitted {
            writeln!(w, "{}", json_line(p, &out.field_tag))?;
        }
    } else {
        w.write_all(report(out, period, malformed).as_bytes())?;
    }
    w.flush()
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
