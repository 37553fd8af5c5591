//! Detector quality on real metrics: the NAB development subset (a
//! benchmark, not a test; issue 9).
//!
//! Each shipped detector is loaded from its `.so` through tickwatch's own
//! plugin registry and run as a user would run it: only `.field('value')`
//! set (plus `.size(3600).alpha(0.001)` for `ttest`, which requires them, as
//! the guide writes it), options validated by the engine's own Init path, on
//! each file's own timestamps, cut by the engine's `Windower` into windows
//! of 6 sampling intervals sliding by one (`|window().period(30m).every(5m)`
//! on 5-minute data; the interval is the file's median timestamp step). A
//! row's anomaly score is that of the newest verdict whose window ends at or
//! before it (0 before the first verdict), a decreasing function of the
//! verdict's `pvalue`. NAB's scorer (`tickwatch_detector_quality::nab`)
//! then picks one threshold per profile for the whole subset.
//!
//! Two references run through the same scorer: `null` (never alarms: 0 by
//! construction) and `random` (a uniform random score per row, NAB's random
//! detector; NAB publishes 16.8 for it on all 58 files).
//!
//! ```text
//! cargo build --release            # the shipped .so files
//! cargo run --release -p tickwatch-detector-quality --bin nab [-- --data DIR]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use tickwatch_detector_quality::nab::corpus::{self, DataFile};
use tickwatch_detector_quality::nab::scorer::{self, FileLabels, Outcome, PROFILES, Profile};
use tickwatch_engine::kapacitor::Windower;
use tickwatch_engine::kapacitor::options::opt;
use tickwatch_engine::node::{DetectorFactory, config};
use tickwatch_engine::plugin::{Plugin, Registry, registry::default_dirs};
use tickwatch_plugin_api::Options;
use tickwatch_proto::agent;

/// Window period in sampling intervals (30 minutes of 5-minute data).
const PERIOD_STEPS: i64 = 6;
/// The field name the rows are written under.
const FIELD: &str = "value";
/// The random reference's seed in the table (NAB's random detector uses 42).
const RANDOM_SEED: u64 = 42;
/// Seeds for the random reference's spread, printed under the table.
const RANDOM_SEEDS: u64 = 20;
/// `--field-arity` as `tickwatch serve` defaults it: `.field('value')` is
/// sent as `.field('value', '', '')`.
const FIELD_ARITY: usize = 3;

/// What produces a row's anomaly scores.
enum Source {
    /// A shipped detector with its validated options.
    Detector { plugin: Arc<Plugin>, options: Options },
    /// Never alarms.
    Null,
    /// A uniform random score per row.
    Random,
}

struct Runner {
    label: String,
    source: Source,
}

/// The detector `name` as a user configures it: `.field('value')` plus
/// `extra`, validated and completed with defaults by the engine's Init path.
fn detector(
    registry: &Registry,
    name: &str,
    extra: Vec<agent::Option>,
    shown: &str,
) -> Result<Runner, String> {
    let plugin = registry.get(name).ok_or_else(|| {
        format!(
            "detector {name} not found: build the shipped plugins first (cargo build --release)"
        )
    })?;
    let mut options =
        vec![opt::call(config::FIELD_OPTION, vec![opt::s(FIELD), opt::s(""), opt::s("")])];
    options.extend(extra);
    let node = config::validate(&options, FIELD_ARITY, plugin.options())
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(Runner {
        label: format!("{name}{shown}"),
        source: Source::Detector { plugin: Arc::clone(plugin), options: node.detector_options },
    })
}

/// A window's anomaly score: `−log10(pvalue)` scaled into [0, 1] (p = 0 → 1,
/// p = 1 → 0). Only the order matters to NAB; the log keeps tiny p-values
/// apart where `1 − p` would round them all to 1.
fn anomaly_score(pvalue: f64) -> f64 {
    if pvalue.is_nan() {
        return 0.0;
    }
    // −log10 of the smallest positive f64 is 323.3.
    if pvalue <= 0.0 { 1.0 } else { (-pvalue.log10() / 324.0).clamp(0.0, 1.0) }
}

/// The inverse of [`anomaly_score`]: the p-value a threshold stands for.
fn pvalue_of(score: f64) -> f64 {
    10f64.powf(-324.0 * score)
}

/// One file's per-row anomaly scores, and how many verdicts the detector
/// gave and called anomalous (at its own `alpha`).
struct FileRun {
    scores: Vec<f64>,
    verdicts: usize,
    anomalous: usize,
}

/// Per-row scores of one file for one detector.
fn detector_scores(plugin: &Plugin, options: &Options, file: &DataFile) -> Result<FileRun, String> {
    let step = file.median_step();
    if step <= 0 {
        return Err(format!("{}: no sampling interval", file.name));
    }
    let mut windower = Windower::new(PERIOD_STEPS * step, step, &[]);
    let mut det = plugin.create(options).map_err(|e| format!("{}: {e}", file.name))?;
    let mut current = 0.0;
    let (mut verdicts, mut anomalous) = (0, 0);
    let mut out = Vec::with_capacity(file.values.len());
    for (&time, &value) in file.timestamps.iter().zip(&file.values) {
        let point = agent::Point {
            name: "nab".into(),
            time,
            fields_double: HashMap::from([(FIELD.to_string(), value)]),
            ..Default::default()
        };
        // The window this row closes ends at or before it: its verdict is
        // the newest one the row can be scored by.
        if let Some(batch) = windower.push(point) {
            let values: Vec<f64> =
                batch.points.iter().filter_map(|p| p.fields_double.get(FIELD).copied()).collect();
            if !values.is_empty() {
                let verdict = det
                    .score(&values)
                    .map_err(|e| format!("{} on {}: {e}", plugin.name(), file.name))?;
                if let Some(v) = verdict {
                    current = anomaly_score(v.pvalue);
                    verdicts += 1;
                    anomalous += usize::from(v.anomalous);
                }
            }
        }
        out.push(current);
    }
    Ok(FileRun { scores: out, verdicts, anomalous })
}

/// SplitMix64: a fixed, dependency-free stream for the random reference.
fn random_scores(rows: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..rows)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn scores(runner: &Runner, files: &[DataFile], seed: u64) -> Result<Vec<FileRun>, String> {
    let plain = |scores: Vec<f64>| FileRun { scores, verdicts: 0, anomalous: 0 };
    files
        .iter()
        .enumerate()
        .map(|(k, f)| match &runner.source {
            Source::Detector { plugin, options } => detector_scores(plugin, options, f),
            Source::Null => Ok(plain(vec![0.0; f.values.len()])),
            Source::Random => Ok(plain(random_scores(f.values.len(), seed * 1000 + k as u64))),
        })
        .collect()
}

/// One runner's results: per profile, the corpus threshold and the
/// outcome per category (plus "all").
struct Results {
    thresholds: Vec<f64>,
    by_profile: Vec<BTreeMap<String, Outcome>>,
}

fn evaluate(files: &[DataFile], runs: &[FileRun]) -> Results {
    let pairs: Vec<(&FileLabels, &[f64])> =
        files.iter().zip(runs).map(|(f, r)| (&f.labels, r.scores.as_slice())).collect();
    let mut thresholds = Vec::new();
    let mut by_profile = Vec::new();
    for profile in &PROFILES {
        let (threshold, _) = scorer::best_threshold(&pairs, profile);
        let mut by_cat: BTreeMap<String, Outcome> = BTreeMap::new();
        for (f, (_, s)) in files.iter().zip(&pairs) {
            let o = f.labels.score(|i| s[i] >= threshold, profile);
            *by_cat.entry("all".into()).or_default() += o;
            *by_cat.entry(f.category.clone()).or_default() += o;
        }
        thresholds.push(threshold);
        by_profile.push(by_cat);
    }
    Results { thresholds, by_profile }
}

fn cell(o: &Outcome) -> String {
    match o.normalised() {
        Some(s) => format!("{s:.1}"),
        // No window to normalise by: the raw cost of its false alarms.
        None => format!("raw {:.2}", o.raw),
    }
}

fn alarm_rule(runner: &Runner, threshold: f64) -> String {
    if threshold.is_infinite() {
        return "never".into();
    }
    match runner.source {
        Source::Detector { .. } => format!("p ≤ {:.1e}", pvalue_of(threshold)),
        _ => format!("score ≥ {threshold:.3}"),
    }
}

/// Writes each file's rows with their anomaly scores (as p-values) to
/// `dir/<detector>/<category>__<file>`: for looking at where a detector
/// gains and loses.
fn write_dump(
    dir: &std::path::Path,
    runner: &Runner,
    files: &[DataFile],
    runs: &[FileRun],
) -> Result<(), String> {
    let name = runner.label.split(' ').next().unwrap_or("detector");
    let out = dir.join(name);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (f, run) in files.iter().zip(runs) {
        let mut text = String::from("time,value,pvalue,window\n");
        let mut window_of = vec![-1i64; f.values.len()];
        for (k, w) in f.labels.windows().iter().enumerate() {
            for slot in &mut window_of[w.first..=w.last.min(f.values.len() - 1)] {
                *slot = k as i64;
            }
        }
        for (i, (t, v)) in f.timestamps.iter().zip(&f.values).enumerate() {
            let p = pvalue_of(run.scores[i]);
            text.push_str(&format!("{t},{v},{p:e},{}\n", window_of[i]));
        }
        let path = out.join(f.name.replace('/', "__"));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

const USAGE: &str = "usage: nab [--data NAB_DIR] [--only DETECTOR] [--per-file] [--dump DIR]   \
                     (default data ../shared/data/nab-dev)";

/// Each file's standard-profile outcome at the corpus threshold: where a
/// detector gains and loses (for development; the corpus score is what
/// counts).
fn print_per_file(files: &[DataFile], runs: &[FileRun], threshold: f64) {
    let standard = &PROFILES[0];
    for (f, run) in files.iter().zip(runs) {
        let o = f.labels.score(|i| run.scores[i] >= threshold, standard);
        println!(
            "|   {} | {}/{} | {} | raw {:.2} (null {:.2}, perfect {:.2}) |",
            f.name, o.caught, o.windows, o.false_positives, o.raw, o.null, o.perfect
        );
    }
}

fn run() -> Result<(), String> {
    let mut data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nab-dev");
    let mut only: Option<String> = None;
    let mut per_file = false;
    let mut dump: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--per-file" => per_file = true,
            "--dump" => dump = args.next().map(PathBuf::from),
            "--data" | "--only" => match (a.as_str(), args.next()) {
                ("--data", Some(d)) => data = PathBuf::from(d),
                (_, Some(name)) => only = Some(name),
                _ => return Err(format!("{a} needs an argument\n{USAGE}")),
            },
            _ => return Err(USAGE.into()),
        }
    }
    let files = corpus::load(&data).map_err(|e| e.to_string())?;
    let registry = Registry::discover(&default_dirs());
    let runners: Vec<Runner> = vec![
        detector(
            &registry,
            "ttest",
            vec![opt::call("size", vec![opt::i(3600)]), opt::call("alpha", vec![opt::d(0.001)])],
            " size=3600 alpha=0.001",
        )?,
        detector(&registry, "zscore", vec![], "")?,
        detector(&registry, "ewma", vec![], "")?,
        detector(&registry, "levelspread", vec![], "")?,
        detector(&registry, "seasonal", vec![], "")?,
        Runner { label: "null (reference)".into(), source: Source::Null },
        Runner { label: "random (reference)".into(), source: Source::Random },
    ]
    .into_iter()
    .filter(|r| only.as_ref().is_none_or(|o| r.label.split(' ').next() == Some(o.as_str())))
    .collect();

    let rows: usize = files.iter().map(|f| f.values.len()).sum();
    let windows: usize = files.iter().map(|f| f.labels.windows().len()).sum();
    println!(
        "NAB development subset ({}): {} files, {rows} rows, {windows} labelled windows; \
         windows of {PERIOD_STEPS} sampling intervals sliding by one; one threshold per \
         profile for the whole subset. Windows caught and false positives at the \
         standard profile's threshold; scores normalised (null 0, perfect 100).\n",
        data.display(),
        files.len()
    );
    let names: Vec<&str> = PROFILES.iter().map(|p: &Profile| p.name).collect();
    println!(
        "| detector | category | windows caught | false positives | {} | {} | {} | alarms at (standard) | verdicts anomalous at the detector's alpha |",
        names[0], names[1], names[2]
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for runner in &runners {
        let started = std::time::Instant::now();
        let runs = scores(runner, &files, RANDOM_SEED)?;
        let r = evaluate(&files, &runs);
        for (cat, o) in &r.by_profile[0] {
            let per_profile: Vec<String> = r.by_profile.iter().map(|b| cell(&b[cat])).collect();
            let rule =
                if cat == "all" { alarm_rule(runner, r.thresholds[0]) } else { String::new() };
            let (verdicts, anomalous) = files
                .iter()
                .zip(&runs)
                .filter(|(f, _)| cat == "all" || f.category == *cat)
                .fold((0, 0), |(v, a), (_, run)| (v + run.verdicts, a + run.anomalous));
            let storm = if verdicts == 0 {
                String::new()
            } else {
                format!("{:.0} % of {verdicts}", 100.0 * anomalous as f64 / verdicts as f64)
            };
            println!(
                "| {} | {cat} | {}/{} | {} | {} | {} | {} | {rule} | {storm} |",
                runner.label,
                o.caught,
                o.windows,
                o.false_positives,
                per_profile[0],
                per_profile[1],
                per_profile[2],
            );
        }
        if let Some(dir) = &dump {
            write_dump(dir, runner, &files, &runs)?;
        }
        if per_file {
            print_per_file(&files, &runs, r.thresholds[0]);
        }
        eprintln!("{}: {:.1} s", runner.label, started.elapsed().as_secs_f64());
    }
    // One random run is mostly luck (a few high scores that happen to land
    // early in windows): the spread over seeds says what a scorer bug would
    // have to hide in.
    let random = Runner { label: String::new(), source: Source::Random };
    let mut spread: Vec<Vec<f64>> = vec![Vec::new(); PROFILES.len()];
    for seed in 1..=RANDOM_SEEDS {
        let r = evaluate(&files, &scores(&random, &files, seed)?);
        for (k, b) in r.by_profile.iter().enumerate() {
            spread[k].push(b.get("all").and_then(Outcome::normalised).unwrap_or(0.0));
        }
    }
    let summary: Vec<String> = PROFILES
        .iter()
        .zip(&spread)
        .map(|(p, v)| {
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{} {mean:.1} ({lo:.1} to {hi:.1})", p.name)
        })
        .collect();
    println!(
        "\nrandom over seeds 1..={RANDOM_SEEDS}, all files, mean (min to max): {}",
        summary.join(", ")
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anomaly_score_decreases_with_pvalue_and_spans_0_to_1() {
        let ps = [1.0, 0.5, 1e-3, 1e-30, 1e-300, 5e-324, 0.0];
        let s: Vec<f64> = ps.iter().map(|&p| anomaly_score(p)).collect();
        assert_eq!(s[0], 0.0);
        assert_eq!(s[6], 1.0);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "{s:?}");
        assert!((pvalue_of(anomaly_score(1e-12)) / 1e-12 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn random_scores_are_uniform_and_reproducible() {
        let a = random_scores(10_000, 1);
        assert_eq!(a, random_scores(10_000, 1));
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
