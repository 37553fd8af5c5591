//! Detector quality on the guide's printer (a benchmark, not a test).
//!
//! Runs each shipped detector, loaded from its `.so` by tickwatch's own
//! plugin loader (as `tickwatch serve` does, minus the protocol), over
//! generated printer days (`tickwatch_engine::scenario::printer_day`, seeds
//! 1..=20 by default) cut into 5-minute non-aligned windows as
//! `|window().period(5m).every(5m)` does, at `alpha = 0.001`, and prints
//! Markdown tables: per detector and field, the recall over the windows that
//! overlap an injected fault (`scenario::FAULTS`), on how many days each
//! fault was caught, and false alarms (anomalous windows that overlap no
//! fault) per day. docs/detectors.md holds the results.
//!
//! ```text
//! cargo run --release -p tickwatch-detector-quality [-- --days N]
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;

use std::sync::{Arc, OnceLock};

use tickwatch_engine::kapacitor::Windower;
use tickwatch_engine::node::{DetectorFactory, DetectorHandle};
use tickwatch_engine::plugin::{Plugin, Registry, registry::default_dirs};
use tickwatch_engine::scenario::{self, FAULTS, FIELDS, START_NS};
use tickwatch_plugin_api::{OptionSpec, Options, Value, Verdict};

const FIVE_MIN_NS: i64 = 300_000_000_000;
const ALPHA: f64 = 0.001;
/// The air's spread change the guide does not count as a fault (stddev 3 →
/// 5 from 03:00 to 20:00): false alarms there are also counted apart.
const AIR_SPREAD: (i64, i64) = (3 * 3600, 20 * 3600);
/// Its first half hour: a detector that flags an air window here saw it.
const AIR_SPREAD_ONSET: (i64, i64) = (3 * 3600, 3 * 3600 + 1800);

/// A loaded detector; a plugin failure ends the benchmark with its reason.
trait Scorer {
    fn score(&mut self, window: &[f64]) -> Option<Verdict>;
}

impl Scorer for Box<dyn DetectorHandle> {
    fn score(&mut self, window: &[f64]) -> Option<Verdict> {
        DetectorHandle::score(self.as_mut(), window).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The shipped plugins, found as `tickwatch` finds them (this binary lives
/// in the same Cargo target directory; the engine dependency builds them).
fn plugin(name: &str) -> Arc<Plugin> {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| Registry::discover(&default_dirs()));
    match registry.get(name) {
        Some(p) => Arc::clone(p),
        None => panic!("detector {name} not found (build the workspace: cargo build --release)"),
    }
}

/// One detector configuration: the detector's defaults, `alpha = 0.001`,
/// and `set` on top.
struct Config {
    label: String,
    alpha: f64,
    make: Box<dyn Fn() -> Box<dyn Scorer>>,
}

fn config(name: &str, set: &[(&str, Value)]) -> Config {
    let plugin = plugin(name);
    let mut values: Vec<(String, Value)> = Vec::new();
    for spec in plugin.options().iter().cloned() {
        let OptionSpec { name, default, .. } = spec;
        let v = set
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| (name == "alpha").then_some(Value::Double(ALPHA)))
            .or(default);
        if let Some(v) = v {
            values.push((name, v));
        }
    }
    let shown: Vec<String> = set.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let label =
        if shown.is_empty() { name.to_string() } else { format!("{name} {}", shown.join(" ")) };
    let options = Options::new(values);
    if let Err(e) = plugin.create(&options) {
        panic!("{label}: {e}");
    }
    let alpha = options.double("alpha").unwrap_or(ALPHA);
    Config {
        label,
        alpha,
        make: Box::new(move || match plugin.create(&options) {
            Ok(d) => Box::new(d),
            Err(e) => panic!("{e}"),
        }),
    }
}

/// One 5-minute window: its end (seconds into the day) and each field's values.
struct Window {
    end_s: i64,
    values: [Vec<f64>; 3],
}

fn day_windows(seed: u64) -> Vec<Window> {
    let mut windower = Windower::new(FIVE_MIN_NS, FIVE_MIN_NS, &[]);
    let tags = HashMap::new();
    let mut out = Vec::new();
    for r in scenario::printer_day(seed) {
        if let Some(batch) = windower.push(r.to_point(&tags)) {
            let values = FIELDS.map(|f| {
                batch.points.iter().filter_map(|p| p.fields_double.get(f).copied()).collect()
            });
            out.push(Window { end_s: (batch.end.tmax - START_NS) / 1_000_000_000, values });
        }
    }
    out
}

/// A p-value in the tables; 0 means it underflowed f64.
fn p(x: f64) -> String {
    if x == 0.0 { "< 1e-300".into() } else { format!("{x:.1e}") }
}

fn overlaps(end_s: i64, (from, to): (i64, i64)) -> bool {
    end_s > from && end_s - 300 < to
}

fn fault_span(field: &str) -> Option<(i64, i64)> {
    FAULTS.iter().find(|f| f.field == field).map(|f| (f.start_s, f.end_s))
}

#[derive(Default, Clone)]
struct Tally {
    fault_windows: u64,
    caught_windows: u64,
    days_caught: u64,
    false_alarms: u64,
    /// Of `false_alarms`, those in the air's 03:00–20:00 spread change.
    spread_change_alarms: u64,
    verdicts: u64,
    /// Days on which a window in `AIR_SPREAD_ONSET` was anomalous (air only).
    days_spread_seen: u64,
    /// Over days, the largest of each day's smallest p-value in the fault:
    /// every alpha above it would have caught the fault on every day.
    catch_all_alpha: f64,
}

fn run(config: &Config, days: &[Vec<Window>]) -> [Tally; 3] {
    let mut tallies: [Tally; 3] = Default::default();
    for windows in days {
        let mut detectors: Vec<Box<dyn Scorer>> = (0..3).map(|_| (config.make)()).collect();
        let mut caught = [false; 3];
        let mut best_p = [1.0f64; 3];
        let mut spread_seen = false;
        for w in windows {
            for (i, field) in FIELDS.iter().enumerate() {
                let fault = fault_span(field);
                let in_fault = fault.is_some_and(|span| overlaps(w.end_s, span));
                let t = &mut tallies[i];
                t.fault_windows += u64::from(in_fault);
                if w.values[i].is_empty() {
                    continue;
                }
                let Some(v) = detectors[i].score(&w.values[i]) else { continue };
                assert!(
                    v.pvalue.is_finite() && (0.0..=1.0).contains(&v.pvalue),
                    "{}: pvalue {}",
                    config.label,
                    v.pvalue
                );
                assert!(v.stats.iter().all(|(_, x)| x.is_finite()), "{}: {v:?}", config.label);
                t.verdicts += 1;
                if in_fault {
                    best_p[i] = best_p[i].min(v.pvalue);
                }
                if !v.anomalous {
                    continue;
                }
                if in_fault {
                    t.caught_windows += 1;
                    caught[i] = true;
                } else {
                    t.false_alarms += 1;
                    if *field == "air" && overlaps(w.end_s, AIR_SPREAD) {
                        t.spread_change_alarms += 1;
                        spread_seen |= overlaps(w.end_s, AIR_SPREAD_ONSET);
                    }
                }
            }
        }
        for ((t, c), p) in tallies.iter_mut().zip(caught).zip(best_p) {
            t.days_caught += u64::from(c);
            t.catch_all_alpha = t.catch_all_alpha.max(p);
        }
        tallies[2].days_spread_seen += u64::from(spread_seen);
    }
    tallies
}

fn table(title: &str, configs: &[Config], days: &[Vec<Window>]) -> String {
    let n_days = days.len() as f64;
    let mut out = String::new();
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(
        out,
        "| detector | field | fault windows caught (recall) | days caught | catches it every day at alpha above | false alarms/day | of which in the air's spread change |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    for c in configs {
        let tallies = run(c, days);
        for (field, t) in FIELDS.iter().zip(&tallies) {
            let spread = if *field == "air" {
                format!("{:.2}", t.spread_change_alarms as f64 / n_days)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {} | {field} | {}/{} ({:.0} %) | {}/{} | {} | {:.2} | {spread} |",
                c.label,
                t.caught_windows,
                t.fault_windows,
                100.0 * t.caught_windows as f64 / t.fault_windows.max(1) as f64,
                t.days_caught,
                days.len(),
                p(t.catch_all_alpha),
                t.false_alarms as f64 / n_days,
            );
        }
        let all_days = tallies.iter().all(|t| t.days_caught == days.len() as u64);
        let caught: u64 = tallies.iter().map(|t| t.caught_windows).sum();
        let faulty: u64 = tallies.iter().map(|t| t.fault_windows).sum();
        let fa: u64 = tallies.iter().map(|t| t.false_alarms).sum();
        let spread: u64 = tallies.iter().map(|t| t.spread_change_alarms).sum();
        let verdicts: u64 = tallies.iter().map(|t| t.verdicts).sum();
        let catch_all = tallies.iter().map(|t| t.catch_all_alpha).fold(0.0, f64::max);
        let spread_seen = tallies.iter().map(|t| t.days_spread_seen).sum::<u64>();
        summary.push(format!(
            "| {} | {} | {caught}/{faulty} ({:.0} %) | {} | {:.2} | {:.2} | {:.2} | {spread_seen}/{} |",
            c.label,
            if all_days { "yes" } else { "no" },
            100.0 * caught as f64 / faulty.max(1) as f64,
            p(catch_all),
            fa as f64 / n_days,
            (fa - spread) as f64 / n_days,
            c.alpha * (verdicts - caught) as f64 / n_days,
            days.len(),
        ));
    }
    let _ = writeln!(
        out,
        "\n| detector | every fault caught every day | recall | catches all at alpha above | false alarms/day | outside the air's spread change | alpha × verdicts/day | air spread change seen by 03:30 (days) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for line in summary {
        let _ = writeln!(out, "{line}");
    }
    out
}

fn main() {
    let mut days_n: u64 = 20;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().and_then(|n| n.parse().ok())) {
            ("--days", Some(n)) if n > 0 => days_n = n,
            _ => {
                eprintln!("usage: tickwatch-detector-quality [--days N]   (N > 0, default 20)");
                std::process::exit(2);
            }
        }
    }
    let days: Vec<Vec<Window>> = (1..=days_n).map(day_windows).collect();
    println!(
        "tickwatch detector quality: {days_n} generated printer days (seeds 1..={days_n}), \
         5-minute windows, alpha = {ALPHA}\n"
    );
    let shipped = [
        config("ttest", &[("size", Value::Int(3600))]),
        config("zscore", &[]),
        config("ewma", &[]),
        config("levelspread", &[]),
        config("seasonal", &[]),
    ];
    print!("{}", table("Shipped defaults (ttest as in the guide)", &shipped, &days));
    let variants = [
        config("ewma", &[("lambda", Value::Double(0.05))]),
        config("ewma", &[("lambda", Value::Double(0.01))]),
        config("ewma", &[("lambda", Value::Double(0.002))]),
        config("ewma", &[("lambda", Value::Double(0.0005))]),
        config("zscore", &[("size", Value::Int(900))]),
        config("zscore", &[("size", Value::Int(14400))]),
        config("levelspread", &[("rebaseline", Value::Int(7))]),
        config("levelspread", &[("rebaseline", Value::Int(12))]),
        config("ttest", &[("size", Value::Int(3600)), ("alpha", Value::Double(1e-6))]),
        config("zscore", &[("alpha", Value::Double(1e-6))]),
        config("ewma", &[("alpha", Value::Double(1e-6))]),
        config("levelspread", &[("alpha", Value::Double(1e-6)), ("rebaseline", Value::Int(7))]),
        config("seasonal", &[("alpha", Value::Double(1e-6))]),
    ];
    println!();
    print!("{}", table("Variants", &variants, &days));
}
