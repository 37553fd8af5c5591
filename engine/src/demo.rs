//! `tickwatch demo`: the guide's printer day through one tickwatch node.
//!
//! Generates the day, cuts it into 5-minute windows as Kapacitor's
//! `|window().period(5m).every(5m)` does, and feeds them to a `tickwatch
//! serve --detector ttest` child over the real protocol, with the single
//! `.field('hotend','bed','air').size(3600).alpha(0.001)` node. Prints where
//! each field's anomalies were found next to where the faults were injected.

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::{Context, bail};
use tickwatch_proto::agent;

use crate::host::client::opt;
use crate::host::{UdfClient, Windower};
use crate::scenario::{self, FAULTS, FIELDS, START_NS};

const FIVE_MIN_NS: i64 = 5 * 60 * 1_000_000_000;
const ALPHA: f64 = 0.001;

/// `tickwatch demo` flags.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// RNG seed for the generated day.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object per emitted point instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// One emitted verdict, flattened.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    /// Window end, seconds from the start of the day.
    pub second: i64,
    /// Field.
    pub field: String,
    /// p-value.
    pub pvalue: f64,
    /// t statistic.
    pub t: f64,
    /// Anomalous?
    pub anomalous: bool,
}

fn hhmm(second: i64) -> String {
    format!("{:02}:{:02}", second / 3600, (second % 3600) / 60)
}

/// Runs the day for `seed` through a child `serve` process; returns every
/// emitted verdict in order.
pub fn run_day(seed: u64) -> anyhow::Result<Vec<Finding>> {
    let exe = std::env::current_exe().context("cannot find the tickwatch binary")?;
    // A fresh state directory: the demo day always starts from nothing.
    let state = tempfile::tempdir().context("cannot create a temporary state directory")?;
    let state_dir = state.path().to_str().context("temporary directory path is not UTF-8")?;
    let mut udf = UdfClient::spawn(
        &exe,
        &["serve", "--detector", "ttest", "--log", "warn", "--state-dir", state_dir],
        &[],
    )
    .context("cannot start tickwatch serve")?;
    udf.info().context("Info")?;
    let init = udf
        .init(
            "demo",
            "tTest2",
            vec![
                opt::call("field", vec![opt::s("hotend"), opt::s("bed"), opt::s("air")]),
                opt::call("size", vec![opt::i(3600)]),
                opt::call("alpha", vec![opt::d(ALPHA)]),
            ],
        )
        .context("Init")?;
    if !init.success {
        bail!("Init refused: {}", init.error);
    }
    let mut windows = Windower::new(FIVE_MIN_NS, FIVE_MIN_NS, &[]);
    let tags = HashMap::new();
    for r in scenario::printer_day(seed) {
        if let Some(batch) = windows.push(r.to_point(&tags)) {
            udf.send_batch(&batch).context("sending a window")?;
        }
    }
    let closed = udf.close().context("finishing")?;
    if let Some(e) = closed.error {
        bail!("the node failed: {e}");
    }
    if let Some(st) = closed.status.filter(|s| !s.success()) {
        bail!("tickwatch serve exited with {st}");
    }
    Ok(closed.points.iter().filter_map(finding).collect())
}

fn finding(p: &agent::Point) -> Option<Finding> {
    Some(Finding {
        second: (p.time - START_NS) / 1_000_000_000,
        field: p.tags.get("field")?.clone(),
        pvalue: *p.fields_double.get("pvalue")?,
        t: p.fields_double.get("t").copied().unwrap_or(0.0),
        anomalous: *p.fields_bool.get("anomalous")?,
    })
}

/// The human report for `findings`.
pub fn report(seed: u64, findings: &[Finding]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tickwatch demo — one @tTest() node: .field('hotend','bed','air').size(3600).alpha({ALPHA})"
    );
    let _ = writeln!(
        out,
        "generated printer day (seed {seed}), 5-minute windows, {} verdicts\n",
        findings.len()
    );
    for field in FIELDS {
        let fault = FAULTS.iter().find(|f| f.field == field);
        let hits: Vec<&Finding> =
            findings.iter().filter(|f| f.field == field && f.anomalous).collect();
        let in_fault =
            |f: &Finding| fault.is_some_and(|x| f.second > x.start_s && f.second - 300 < x.end_s);
        let caught = hits.iter().filter(|f| in_fault(f)).count();
        let _ = write!(out, "{field:<7} fault injected ");
        match fault {
            Some(x) => {
                let _ = writeln!(
                    out,
                    "{}–{}: {}",
                    hhmm(x.start_s),
                    hhmm(x.end_s),
                    if caught > 0 { format!("CAUGHT ({caught} windows)") } else { "MISSED".into() }
                );
            }
            None => {
                let _ = writeln!(out, "none");
            }
        }
        for f in &hits {
            let tag = if in_fault(f) { "fault" } else { "false alarm" };
            let _ = writeln!(
                out,
                "        anomaly in window {}–{}  p={:.2e} t={:+.2}  ({tag})",
                hhmm(f.second - 300),
                hhmm(f.second),
                f.pvalue,
                f.t
            );
        }
    }
    out
}

/// Runs `tickwatch demo`.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let findings = run_day(args.seed)?;
    if args.json {
        for f in &findings {
            println!("{}", serde_json::to_string(f)?);
        }
    } else {
        print!("{}", report(args.seed, &findings));
    }
    Ok(())
}
