//! `tickwatch demo`: the guide's printer day through one tickwatch node.
//!
//! Generates the day, writes it as line protocol, and replays it (the same
//! path as `tickwatch replay`: a `tickwatch serve --detector ttest` child
//! over the real protocol, 5-minute windows as
//! `|window().period(5m).every(5m)`) with the single
//! `.field('hotend','bed','air').size(3600).alpha(0.001)` node. Prints where
//! each field's anomalies were found next to where the faults were injected.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use tickwatch_proto::agent;

pub mod scenario;

use crate::cmd::replay::{self, Outcome, Plan, chain, lineproto, plot};
use crate::cmd::{out, outln};
use scenario::{FAULTS, FIELDS, START_NS};

const FIVE_MIN_NS: i64 = 5 * 60 * 1_000_000_000;
/// The demo's UDF chain, as in examples/print_temps.tick.
pub const CHAIN: &str = ".field('hotend','bed','air').size(3600).alpha(0.001)";

/// A `tickwatch demo`, validated.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// RNG seed for the generated day.
    pub seed: u64,
    /// JSON lines instead of the report.
    pub json: bool,
    /// SVG plot path.
    pub plot: Option<PathBuf>,
    /// Where to keep the generated line protocol.
    pub write_data: Option<PathBuf>,
    /// Plugin directories for the served UDF.
    pub plugin_dirs: Vec<PathBuf>,
}

fn hhmm(second: i64) -> String {
    format!("{:02}:{:02}", second / 3600, (second % 3600) / 60)
}

fn second(p: &agent::Point) -> i64 {
    (p.time - START_NS) / 1_000_000_000
}

/// The human report: per field, the injected fault and the anomalous windows.
pub fn report(seed: u64, out: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "tickwatch demo — one @tTest() node: {CHAIN}");
    let _ = writeln!(
        s,
        "generated printer day (seed {seed}): {} readings, {} five-minute windows, {} verdicts\n",
        out.points,
        out.windows,
        out.emitted.len()
    );
    for field in FIELDS {
        let fault = FAULTS.iter().find(|f| f.field == field);
        let hits: Vec<&agent::Point> = out
            .emitted
            .iter()
            .filter(|p| p.tags.get(&out.field_tag).map(String::as_str) == Some(field))
            .filter(|p| p.fields_bool.get("anomalous") == Some(&true))
            .collect();
        let in_fault = |p: &agent::Point| {
            fault.is_some_and(|x| second(p) > x.start_s && second(p) - 300 < x.end_s)
        };
        let caught = hits.iter().filter(|p| in_fault(p)).count();
        match fault {
            Some(x) => {
                let verdict =
                    if caught > 0 { format!("CAUGHT ({caught} windows)") } else { "MISSED".into() };
                let _ = writeln!(
                    s,
                    "{field:<7} fault injected {}–{}: {verdict}",
                    hhmm(x.start_s),
                    hhmm(x.end_s)
                );
            }
            None => {
                let _ = writeln!(s, "{field:<7} no fault injected");
            }
        }
        for p in &hits {
            let tag = if in_fault(p) { "fault" } else { "false alarm" };
            let _ = writeln!(
                s,
                "        anomaly in window {}–{}  p={:.2e} t={:+.2}  ({tag})",
                hhmm(second(p) - 300),
                hhmm(second(p)),
                p.fields_double.get("pvalue").copied().unwrap_or(f64::NAN),
                p.fields_double.get("t").copied().unwrap_or(f64::NAN)
            );
        }
    }
    s
}

/// Runs `tickwatch demo`.
pub fn run(args: &DemoConfig) -> anyhow::Result<()> {
    let day = scenario::printer_day(args.seed);
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let data = args.write_data.clone().unwrap_or_else(|| tmp.path().join("printer_day.lp"));
    replay::write_line_protocol(&data, day.iter().map(|r| r.line_protocol("", &[])))?;
    let input = lineproto::read(&[data], lineproto::Precision::S, None, 0)?;
    let options = chain::parse(CHAIN).map_err(|e| anyhow!("demo chain: {e}"))?;
    let plan = Plan {
        detector: "ttest".into(),
        options,
        period: FIVE_MIN_NS,
        every: FIVE_MIN_NS,
        align: false,
        group_by: Vec::new(),
        field_arity: 3,
        plugin_dirs: args.plugin_dirs.clone(),
        edge: crate::node::Edge::Batch,
    };
    let fields: Vec<String> = FIELDS.iter().map(|f| f.to_string()).collect();
    let series = args.plot.as_ref().map(|_| plot::Series::from_points(&input.points, &fields, &[]));
    let out = replay::run(&plan, input.points)?;
    if args.json {
        replay::emit(&out, plan.period, input.malformed, true)?;
    } else {
        out!("{}", report(args.seed, &out));
    }
    if let (Some(path), Some(series)) = (&args.plot, series) {
        plot::write(path, &series, &out, plan.period)?;
        if !args.json {
            outln!("\nplot written to {}", path.display());
        }
    }
    Ok(())
}
