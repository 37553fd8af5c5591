//! The conformance suite every detector plugin runs (feature
//! `conformance`): declared options are consistent, `save`/`load`
//! round-trips exactly, state loads under another value of every option
//! declared scoring-only, and scoring never panics on empty, constant,
//! NaN-laden, extreme or very large windows, always answering with a finite
//! p-value in `[0, 1]` and finite statistics, and `save_changes` ranges
//! applied to the state last taken always give what `save` gives.
//!
//! ```ignore
//! #[test]
//! fn conformance() {
//!     tickwatch_plugin_api::conformance::check::<MyDetector>(&Options::new(vec![]));
//! }
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::options::RESERVED_OPTION_NAMES;
use crate::{Detector, Options, Value, Verdict};

/// `options` completed with the declared defaults (what the host passes).
fn with_defaults<D: Detector>(options: &Options) -> Options {
    let mut pairs: Vec<(String, Value)> = Vec::new();
    for spec in D::options() {
        if let Some(v) = options.get(&spec.name).cloned().or(spec.default.clone()) {
            pairs.push((spec.name.clone(), v));
        }
    }
    Options::new(pairs)
}

fn check_verdict(what: &str, v: &Option<Verdict>, failures: &mut Vec<String>) {
    let Some(v) = v else { return };
    if !(v.pvalue.is_finite() && (0.0..=1.0).contains(&v.pvalue)) {
        failures.push(format!("{what}: pvalue {} is not finite in [0, 1]", v.pvalue));
    }
    for (name, x) in &v.stats {
        if !x.is_finite() {
            failures.push(format!("{what}: statistic {name} = {x} is not finite"));
        }
        if name.is_empty() {
            failures.push(format!("{what}: a statistic has an empty name"));
        }
    }
}

/// Runs the whole suite against `D` built from `options` (plus defaults);
/// panics listing every failure.
pub fn check<D: Detector>(options: &Options) {
    let mut failures = Vec::new();
    check_options::<D>(&mut failures);
    let opts = with_defaults::<D>(options);
    match D::new(&opts) {
        Err(e) => failures.push(format!("new() refuses the given options: {e}")),
        Ok(_) => {
            check_windows::<D>(&opts, &mut failures);
            check_round_trip::<D>(&opts, &mut failures);
            check_scoring_only::<D>(&opts, &mut failures);
            check_bad_state::<D>(&opts, &mut failures);
            check_changes::<D>(&opts, &mut failures);
        }
    }
    assert!(failures.is_empty(), "{} fails conformance:\n  {}", D::NAME, failures.join("\n  "));
}

/// Plays a host persisting with [`Detector::save_changes`] (and, every
/// other take, [`Detector::save_changes_into`]): windows of
/// varied sizes and levels (shifts that alarm, runs that rebaseline, NaN),
/// sometimes several between two takes (now and then dozens: the host
/// takes changes once per commit, after every window a commit scored),
/// sometimes a stale generation or a load in between; after every take, the host's copy (ranges applied to
/// the last state) must be the bytes `save` gives.
pub fn check_changes<D: Detector>(opts: &Options, failures: &mut Vec<String>) {
    let Ok(mut d) = D::new(opts) else { return };
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut held: Vec<u8> = Vec::new();
    let mut since = crate::changes::NO_GENERATION;
    let mut ranged = 0;
    let mut writer = crate::changes::ChangeWriter::new();
    // Windows left to score before the next take, in a long run.
    let mut run = 0u64;
    for step in 0..600 {
        let n = [1, 2, 7, 30, 300][(rand() % 5) as usize];
        let level = match (step / 40) % 3 {
            0 => 10.0,
            1 => 50.0 + (step % 7) as f64,
            _ => -3.0,
        };
        let window: Vec<f64> = (0..n)
            .map(|i| {
                if rand() % 97 == 0 {
                    f64::NAN
                } else {
                    level + ((rand() % 1000) as f64) * 0.01 + i as f64 * 1e-3
                }
            })
            .collect();
        if catch_unwind(AssertUnwindSafe(|| d.score(&window))).is_err() {
            failures.push(format!("save_changes check: score panicked at window {step}"));
            return;
        }
        if run > 0 {
            run -= 1;
            continue;
        }
        if rand() % 37 == 0 {
            run = 10 + rand() % 50; // a commit of many windows
            continue;
        }
        if rand() % 3 == 0 {
            continue; // several windows between two takes
        }
        if rand() % 41 == 0 {
            since = since.wrapping_sub(1); // a commit the host missed
        }
        if rand() % 53 == 0 {
            let bytes = d.save();
            if let Err(e) = d.load(&bytes) {
                failures.push(format!("save_changes check: load of own state: {e}"));
                return;
            }
        }
        // Both ways of taking changes, in turn: the second into one writer
        // reused window after window, as the host's view does.
        let changes = if step % 2 == 0 {
            d.save_changes(since)
        } else {
            writer.reset();
            let taken = d.save_changes_into(since, &mut writer);
            crate::changes::StateChanges {
                generation: taken.generation,
                ranges: taken.ranges.then(|| crate::changes::Ranges {
                    len: writer.offset(),
                    spans: writer.spans().to_vec(),
                    data: writer.data().to_vec(),
                }),
            }
        };
        since = changes.generation;
        match changes.ranges {
            Some(r) => {
                r.apply(&mut held);
                ranged += 1;
            }
            None => held = d.save(),
        }
        if held != d.save() {
            failures.push(format!(
                "save_changes: after window {step} the ranges applied to the last state differ \
                 from save()"
            ));
            return;
        }
    }
    let _ = ranged;
}

fn check_options<D: Detector>(failures: &mut Vec<String>) {
    if D::NAME.is_empty() || D::NAME.contains(char::is_whitespace) {
        failures.push(format!("NAME {:?} must be non-empty without spaces", D::NAME));
    }
    let specs = D::options();
    for (i, s) in specs.iter().enumerate() {
        if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            failures.push(format!("option {:?}: names are ASCII letters, digits and _", s.name));
        }
        if RESERVED_OPTION_NAMES.contains(&s.name.as_str()) {
            failures.push(format!("option {:?} is reserved by tickwatch", s.name));
        }
        if specs[..i].iter().any(|o| o.name == s.name) {
            failures.push(format!("option {:?} is declared twice", s.name));
        }
        if let Some(d) = &s.default
            && d.kind() != s.kind
        {
            failures.push(format!(
                "option {}: default is {}, declared {}",
                s.name,
                d.kind(),
                s.kind
            ));
        }
        if s.help.trim().is_empty() {
            failures.push(format!("option {}: no help text", s.name));
        }
    }
    let defaults = with_defaults::<D>(&Options::default());
    let missing: Vec<&str> =
        specs.iter().filter(|s| s.default.is_none()).map(|s| s.name.as_str()).collect();
    if missing.is_empty()
        && let Err(e) = D::new(&defaults)
    {
        failures.push(format!("new() refuses its own defaults: {e}"));
    }
}

/// Windows the suite feeds: ordinary, then awkward.
fn windows() -> Vec<(&'static str, Vec<f64>)> {
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = |mean: f64, sd: f64, n: usize| -> Vec<f64> {
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                mean + sd * (u - 0.5) * 3.4
            })
            .collect()
    };
    let mut out = Vec::new();
    for i in 0..12 {
        out.push(("ordinary", noise(100.0, 1.0, 300 + i)));
    }
    out.push(("empty", Vec::new()));
    out.push(("single value", vec![100.0]));
    out.push(("two equal values", vec![100.0, 100.0]));
    for _ in 0..4 {
        out.push(("constant", vec![5.0; 300]));
    }
    out.push(("constant, shifted", vec![6.0; 300]));
    let mut nan = noise(100.0, 1.0, 300);
    for (i, v) in nan.iter_mut().enumerate() {
        if i % 3 == 0 {
            *v = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][i % 9 / 3];
        }
    }
    out.push(("NaN-laden", nan));
    out.push(("all NaN", vec![f64::NAN; 50]));
    out.push(("huge magnitudes", vec![1e300, -1e300, 1e300, f64::MAX, f64::MIN]));
    out.push(("tiny magnitudes", vec![1e-300, 5e-324, 0.0, -5e-324]));
    out.push(("very large", noise(100.0, 1.0, 1_000_000)));
    out.push(("level shift", noise(150.0, 1.0, 300)));
    out.push(("spread change", noise(100.0, 20.0, 300)));
    out.push(("ordinary again", noise(100.0, 1.0, 300)));
    out
}

fn check_windows<D: Detector>(opts: &Options, failures: &mut Vec<String>) {
    let Ok(mut d) = D::new(opts) else { return };
    for (what, w) in windows() {
        match catch_unwind(AssertUnwindSafe(|| d.score(&w))) {
            Ok(v) => check_verdict(&format!("{what} window"), &v, failures),
            Err(_) => {
                failures.push(format!("score() panicked on a {what} window of {} values", w.len()));
                // The instance may be broken now; start over for the rest.
                match D::new(opts) {
                    Ok(fresh) => d = fresh,
                    Err(_) => return,
                }
            }
        }
        if catch_unwind(AssertUnwindSafe(|| d.describe().to_json())).is_err() {
            failures.push(format!("describe() panicked after a {what} window"));
        }
    }
}

/// An option declared scoring-only must not change what `load` accepts:
/// state saved under one value loads into a detector built with another
/// (the value halved, or one more, or flipped, when `new` accepts it).
fn check_scoring_only<D: Detector>(opts: &Options, failures: &mut Vec<String>) {
    let Ok(mut a) = D::new(opts) else { return };
    let all = windows();
    let _ = catch_unwind(AssertUnwindSafe(|| {
        for (_, w) in all.iter().filter(|(n, _)| n.starts_with("ordinary")).take(8) {
            a.score(w);
        }
    }));
    let saved = a.save();
    for spec in D::options().iter().filter(|s| !s.shapes_state) {
        let other = match opts.get(&spec.name) {
            Some(Value::Double(d)) => Value::Double(d * 0.5),
            Some(Value::Int(i)) => Value::Int(i.saturating_add(1)),
            Some(Value::Duration(i)) => Value::Duration(i.saturating_add(1_000_000_000)),
            Some(Value::Bool(b)) => Value::Bool(!b),
            _ => continue,
        };
        let changed = Options::new(
            opts.iter()
                .map(|(n, v)| {
                    (n.to_string(), if n == spec.name { other.clone() } else { v.clone() })
                })
                .collect(),
        );
        let Ok(mut b) = D::new(&changed) else { continue };
        if let Err(e) = b.load(&saved) {
            failures.push(format!(
                "option {} is declared scoring-only, but state saved under one value does not \
                 load under {other}: {e}",
                spec.name
            ));
        }
    }
}

fn check_round_trip<D: Detector>(opts: &Options, failures: &mut Vec<String>) {
    let (Ok(mut a), Ok(mut fresh)) = (D::new(opts), D::new(opts)) else { return };
    let all = windows();
    // Warm up on ordinary data, then compare a restored copy window by window.
    let ordinary: Vec<&Vec<f64>> =
        all.iter().filter(|(w, _)| w.starts_with("ordinary")).map(|(_, v)| v).collect();
    let _ = catch_unwind(AssertUnwindSafe(|| {
        for w in &ordinary[..ordinary.len() / 2] {
            a.score(w);
        }
    }));
    let saved = a.save();
    if let Err(e) = fresh.load(&saved) {
        failures.push(format!("load() refuses bytes from save(): {e}"));
        return;
    }
    if fresh.save() != saved {
        failures.push("save() after load(save()) gives different bytes".into());
    }
    if fresh.describe() != a.describe() {
        failures.push("describe() differs after load(save())".into());
    }
    let same = catch_unwind(AssertUnwindSafe(|| {
        ordinary[ordinary.len() / 2..].iter().all(|w| {
            let (x, y) = (a.score(w), fresh.score(w));
            x.as_ref().map(|v| (v.pvalue.to_bits(), v.anomalous))
                == y.as_ref().map(|v| (v.pvalue.to_bits(), v.anomalous))
        })
    }));
    if !matches!(same, Ok(true)) {
        failures.push("a restored detector scores differently from the original".into());
    }
}

fn check_bad_state<D: Detector>(opts: &Options, failures: &mut Vec<String>) {
    let Ok(mut d) = D::new(opts) else { return };
    let good = {
        let Ok(mut w) = D::new(opts) else { return };
        for (_, v) in windows().iter().take(3) {
            w.score(v);
        }
        w.save()
    };
    let mut bad: Vec<(String, Vec<u8>)> =
        vec![("empty".into(), Vec::new()), ("garbage".into(), vec![0xff; 64])];
    for cut in [1, good.len() / 2, good.len().saturating_sub(1)] {
        if cut < good.len() {
            bad.push((format!("truncated to {cut} bytes"), good[..cut].to_vec()));
        }
    }
    let mut extra = good.clone();
    extra.push(0);
    bad.push(("with a trailing byte".into(), extra));
    for (what, bytes) in bad {
        match catch_unwind(AssertUnwindSafe(|| d.load(&bytes))) {
            Ok(Ok(())) => failures.push(format!("load() accepted {what} state")),
            Ok(Err(_)) => {}
            Err(_) => failures.push(format!("load() panicked on {what} state")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OptionSpec, Summary, ValueKind};

    /// Breaks most rules on purpose.
    struct Sloppy {
        n: u64,
    }

    impl Detector for Sloppy {
        const NAME: &'static str = "sloppy";
        const VERSION: &'static str = "0.0.0";
        const STATE_VERSION: u32 = 1;
        fn options() -> Vec<OptionSpec> {
            vec![
                OptionSpec::with_default("field", Value::Int(1), "clashes with tickwatch"),
                OptionSpec {
                    name: "k".into(),
                    kind: ValueKind::Int,
                    default: Some(Value::Double(1.0)),
                    help: String::new(),
                    shapes_state: true,
                },
            ]
        }
        fn new(_: &Options) -> Result<Self, String> {
            Ok(Self { n: 0 })
        }
        fn score(&mut self, w: &[f64]) -> Option<Verdict> {
            self.n += 1;
            let mean = w.iter().sum::<f64>() / w.len() as f64;
            assert!(w.len() < 500_000, "too many values");
            Some(Verdict { pvalue: mean, anomalous: false, stats: vec![("m".into(), mean)] })
        }
        fn save(&self) -> Vec<u8> {
            Vec::new()
        }
        fn load(&mut self, _: &[u8]) -> Result<(), String> {
            Ok(())
        }
        fn describe(&self) -> Summary {
            Summary::new().int("n", self.n as i64)
        }
    }

    #[test]
    fn a_sloppy_detector_fails_with_every_reason() {
        let err = catch_unwind(|| check::<Sloppy>(&Options::default())).unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        for expected in [
            "option \"field\" is reserved",
            "option k: default is double, declared int",
            "option k: no help text",
            "empty window: pvalue NaN",
            "ordinary window: pvalue 100",
            "score() panicked on a very large window",
            "load() accepted garbage state",
            "describe() differs after load(save())",
        ] {
            assert!(msg.contains(expected), "missing {expected:?} in:\n{msg}");
        }
    }

    /// Saves its `size` and refuses state of another size, yet declares
    /// `size` scoring-only: the suite must say so.
    struct Mislabelled {
        size: i64,
    }

    impl Detector for Mislabelled {
        const NAME: &'static str = "mislabelled";
        const VERSION: &'static str = "0.0.0";
        const STATE_VERSION: u32 = 1;
        fn options() -> Vec<OptionSpec> {
            vec![OptionSpec::with_default("size", Value::Int(3), "history length").scoring_only()]
        }
        fn new(o: &Options) -> Result<Self, String> {
            Ok(Self { size: o.int("size")? })
        }
        fn score(&mut self, _: &[f64]) -> Option<Verdict> {
            None
        }
        fn save(&self) -> Vec<u8> {
            self.size.to_le_bytes().to_vec()
        }
        fn load(&mut self, state: &[u8]) -> Result<(), String> {
            let b: [u8; 8] = state.try_into().map_err(|_| "need 8 bytes".to_string())?;
            if i64::from_le_bytes(b) != self.size {
                return Err("saved with another size".into());
            }
            Ok(())
        }
        fn describe(&self) -> Summary {
            Summary::new().int("size", self.size)
        }
    }

    #[test]
    fn an_option_mislabelled_scoring_only_fails() {
        let err = catch_unwind(|| check::<Mislabelled>(&Options::default())).unwrap_err();
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains(
                "option size is declared scoring-only, but state saved under one value \
                          does not load under 4: saved with another size"
            ),
            "{msg}"
        );
    }
}
