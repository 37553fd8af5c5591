//! The `ewma` detector plugin: each window's mean against an exponentially
//! weighted moving mean and variance (an EWMA control chart), in constant
//! memory.
//!
//! Per (group, field) it keeps four numbers (see [`ewstats`]): the count of
//! values absorbed, their exponentially weighted mean `μ` and variance `s²`
//! with weight `lambda` per value, and `Σ wᵢ²` (how many values the weighted
//! mean is "worth": `1/Σ wᵢ²`). No window of values is stored. For each
//! window with data:
//! - while fewer than `warmup` values have been absorbed, the window is
//!   absorbed and nothing is emitted;
//! - otherwise `z = (window mean − μ) / (s · √(1/n + Σ wᵢ²))` and its
//!   two-sided p-value (below). A verdict is emitted (anomalous when
//!   `pvalue < alpha`) and the window's values update the EWMA, value by
//!   value, only if it is not anomalous.
//!
//! # Choosing `lambda`
//! `lambda` is the weight of the newest value; the baseline's memory is about
//! `2/lambda` values (the weight halves every `0.69/lambda` values). Small
//! values give a steadier baseline (the window is compared with more data,
//! and `s` is estimated from more data); large values follow slow drifts
//! (daily temperature cycles) but make every verdict noisier. The default
//! `0.001` remembers about 2000 values (half-life 11.5 min of 1 s data). On
//! the guide's printer (the detector-quality benchmark, docs/detectors.md)
//! it catches every fault on every day with p-values below 1e-50 while
//! false alarms stay at `alpha`; `0.05` (about 40 values) misses air fault
//! windows and makes several false alarms a day. The first `1/lambda`
//! values are averaged plainly, so the baseline starts unbiased.
//!
//! # Why the standard error has `Σ wᵢ²` in it
//! A textbook "EWMA stddev / √n" treats the EWMA mean as exact. It is an
//! average of about `(2 − λ)/λ` values: 39 for `λ = 0.05`, where leaving its
//! own noise out makes `|z|` three times too large for a 300-value window
//! and a quarter of all windows "anomalous" at `alpha = 0.001`. With both
//! terms, `z` is standard normal under "nothing changed" (independent
//! values) *if* `s` were exact.
//!
//! # The p-value
//! `s` is itself estimated from about `1/Σ wᵢ² ≈ 2/lambda` values, so the
//! p-value is Student's t with `1/Σ wᵢ² − 1` degrees of freedom (Kish's
//! effective sample size; `n − 1` exactly while the first values are
//! averaged plainly). For the default `lambda` that is about 2000 degrees of
//! freedom: the normal p-value `erfc(|z|/√2)` to within 2 % at
//! `alpha = 0.001` (and computed exactly that way beyond 100 000). For
//! `lambda = 0.05` (about 38 degrees of freedom) the normal p-value would
//! make 2.2 times as many false alarms as `alpha` says.
//!
//! # Zero variance
//! A constant baseline has `s = 0`: a window with the same mean gives
//! `z = 0, pvalue = 1`; any other mean gives `pvalue = 0` and
//! `z = ±f64::MAX` (a certain change, kept finite because InfluxDB refuses
//! infinite fields). Constant data keeps an exact mean, so rounding cannot
//! fake a change. Sums that overflow `f64` (values near `1e308`) give
//! `z = 0, pvalue = 1`.
//!
//! # Rebaseline
//! With `rebaseline = k > 0`, anomalous windows feed a second, fresh EWMA
//! (same `lambda`). After `k` consecutive anomalous windows it replaces the
//! baseline, and that window's verdict carries `rebaselined = 1` (0 on every
//! other verdict; emitted only when `rebaseline > 0`). A non-anomalous window
//! ends the run and discards the second EWMA. If the run holds fewer than
//! `warmup` values, the new baseline warms up again before the next verdict.

pub mod ewstats;

use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::function::erf::erfc;
use tickwatch_plugin_api::window::finite;
use tickwatch_plugin_api::{
    ByteReader, ByteWriter, Detector, OptionSpec, Options, Summary, Value, Verdict, export_detector,
};

use ewstats::{EwStats, mean};

/// State bytes format version (first byte of [`Detector::save`]).
const STATE_FORMAT: u8 = 1;

/// `z` and its two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZResult {
    /// Window mean minus EWMA mean, in standard errors; finite.
    pub z: f64,
    /// Two-sided p-value, finite, in `[0, 1]`.
    pub pvalue: f64,
}

/// The control-chart test of a window mean (`win_n` values) against an
/// EWMA mean, variance and `Σ wᵢ²` (in `(0, 1]`).
pub fn ewma_z(ew_mean: f64, ew_var: f64, ew_w2: f64, win_mean: f64, win_n: f64) -> ZResult {
    let d = win_mean - ew_mean;
    let se2 = ew_var * (1.0 / win_n + ew_w2);
    if d.is_nan() || se2.is_nan() {
        return ZResult { z: 0.0, pvalue: 1.0 };
    }
    if se2 == 0.0 {
        // Documented in the crate docs: a constant baseline gives a definite answer.
        return if d == 0.0 {
            ZResult { z: 0.0, pvalue: 1.0 }
        } else {
            ZResult { z: f64::MAX.copysign(d), pvalue: 0.0 }
        };
    }
    let z = d / se2.sqrt();
    if z.is_nan() {
        return ZResult { z: 0.0, pvalue: 1.0 };
    }
    let z = z.clamp(-f64::MAX, f64::MAX);
    ZResult { z, pvalue: two_sided_t(z, 1.0 / ew_w2 - 1.0) }
}

/// `P(|T| ≥ |z|)` for Student's t with `df` degrees of freedom; the normal
/// limit beyond 100 000 degrees of freedom (where the two agree to 1e-4
/// relative in the tails that matter), and for an undefined `df`.
pub fn two_sided_t(z: f64, df: f64) -> f64 {
    if z == 0.0 {
        return 1.0;
    }
    let normal = || erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0);
    if !(df > 0.0 && df <= 1e5) {
        return normal();
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => (2.0 * t.sf(z.abs())).clamp(0.0, 1.0),
        Err(_) => normal(),
    }
}

/// The EWMA detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Ewma {
    lambda: f64,
    warmup: u64,
    alpha: f64,
    /// Consecutive anomalous windows that make a new baseline; 0 = never.
    rebaseline: u64,
    baseline: EwStats,
    /// The EWMA of the current run of anomalous windows (only fed when
    /// `rebaseline > 0`).
    candidate: EwStats,
    /// Length of the current run of anomalous windows.
    streak: u64,
    windows_seen: u64,
    windows_anomalous: u64,
    rebaselines: u64,
}

impl Ewma {
    /// Takes a scored window into the state; true if it rebaselined.
    fn absorb(&mut self, window: &[f64], anomalous: bool) -> bool {
        if !anomalous {
            self.baseline.extend(window, self.lambda);
            self.streak = 0;
            self.candidate = EwStats::default();
            return false;
        }
        self.windows_anomalous += 1;
        if self.rebaseline == 0 {
            return false;
        }
        self.streak += 1;
        self.candidate.extend(window, self.lambda);
        if self.streak < self.rebaseline {
            return false;
        }
        self.baseline = std::mem::take(&mut self.candidate);
        self.streak = 0;
        self.rebaselines += 1;
        true
    }
}

impl Detector for Ewma {
    const NAME: &'static str = "ewma";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    /// Format 1: see `save`. Bump when a format change would misread old state.
    const STATE_VERSION: u32 = STATE_FORMAT as u32;

    fn options() -> Vec<OptionSpec> {
        vec![
            OptionSpec::with_default(
                "lambda",
                Value::Double(0.001),
                "weight of each new value in (0, 1]: the baseline remembers about 2/lambda values",
            ),
            OptionSpec::with_default(
                "warmup",
                Value::Int(600),
                "values absorbed before the first verdict; >= 2",
            ),
            OptionSpec::with_default(
                "alpha",
                Value::Double(0.001),
                "significance level in (0, 1): pvalue < alpha is anomalous, and only windows \
                 that are not anomalous update the baseline",
            ),
            OptionSpec::with_default(
                "rebaseline",
                Value::Int(0),
                "after this many consecutive anomalous windows, accept the new level (the \
                 baseline restarts from those windows); 0 = never; >= 0",
            ),
        ]
    }

    fn new(options: &Options) -> Result<Self, String> {
        let lambda = options.double("lambda")?;
        if !(lambda > 0.0 && lambda <= 1.0) {
            return Err(format!("option lambda must be in (0, 1], got {lambda}"));
        }
        let warmup = options.int("warmup")?;
        if warmup < 2 {
            return Err(format!(
                "option warmup must be >= 2 (a spread needs two values), got {warmup}"
            ));
        }
        let alpha = options.probability("alpha")?;
        let rebaseline = options.count("rebaseline")?;
        Ok(Self {
            lambda,
            warmup: warmup as u64,
            alpha,
            rebaseline,
            baseline: EwStats::default(),
            candidate: EwStats::default(),
            streak: 0,
            windows_seen: 0,
            windows_anomalous: 0,
            rebaselines: 0,
        })
    }

    fn score(&mut self, window: &[f64]) -> Option<Verdict> {
        let window = &*finite(window);
        if window.is_empty() {
            return None;
        }
        if self.baseline.count() < self.warmup {
            self.baseline.extend(window, self.lambda);
            return None;
        }
        let r = ewma_z(
            self.baseline.mean(),
            self.baseline.variance(),
            self.baseline.mean_variance_factor(),
            mean(window),
            window.len() as f64,
        );
        self.windows_seen += 1;
        let anomalous = r.pvalue < self.alpha;
        let rebaselined = self.absorb(window, anomalous);
        let mut stats = vec![("z".to_string(), r.z)];
        if self.rebaseline > 0 {
            stats.push(("rebaselined".into(), if rebaselined { 1.0 } else { 0.0 }));
        }
        Some(Verdict { pvalue: r.pvalue, anomalous, stats })
    }

    /// Format 1: `u8` 1, `u64` windows seen, anomalous, rebaselines, streak;
    /// the baseline and the candidate as (`u64` count, `f64` mean, weighted
    /// squared deviations, `Σ wᵢ²`). 97 bytes, always.
    fn save(&self) -> Vec<u8> {
        let mut w = ByteWriter::new();
        w.u8(STATE_FORMAT)
            .u64(self.windows_seen)
            .u64(self.windows_anomalous)
            .u64(self.rebaselines)
            .u64(self.streak);
        self.baseline.write(&mut w);
        self.candidate.write(&mut w);
        w.finish()
    }

    fn load(&mut self, state: &[u8]) -> Result<(), String> {
        let mut r = ByteReader::new(state);
        let format = r.u8()?;
        if format != STATE_FORMAT {
            return Err(format!(
                "unknown ewma state format {format} (this build reads {STATE_FORMAT})"
            ));
        }
        let windows_seen = r.u64()?;
        let windows_anomalous = r.u64()?;
        let rebaselines = r.u64()?;
        let streak = r.u64()?;
        let baseline = EwStats::read(&mut r)?;
        let candidate = EwStats::read(&mut r)?;
        r.finish()?;
        let streak_ok = if self.rebaseline == 0 { streak == 0 } else { streak < self.rebaseline };
        if !streak_ok || (streak == 0) != candidate.is_empty() {
            return Err(format!(
                "state has a run of {streak} anomalous windows holding {} values, which \
                 rebaseline {} cannot produce",
                candidate.count(),
                self.rebaseline
            ));
        }
        self.baseline = baseline;
        self.candidate = candidate;
        self.streak = streak;
        self.windows_seen = windows_seen;
        self.windows_anomalous = windows_anomalous;
        self.rebaselines = rebaselines;
        Ok(())
    }

    fn describe(&self) -> Summary {
        let w2 = self.baseline.mean_variance_factor();
        Summary::new()
            .int("n", self.baseline.count() as i64)
            .num("mean", self.baseline.mean())
            .num("stddev", self.baseline.variance().sqrt())
            .num("effective_n", if w2 > 0.0 { 1.0 / w2 } else { 0.0 })
            .num("lambda", self.lambda)
            .int("warmup", self.warmup as i64)
            .num("alpha", self.alpha)
            .int("rebaseline", self.rebaseline as i64)
            .int("anomalous_run", self.streak as i64)
            .int("rebaselines", self.rebaselines as i64)
            .int("windows_seen", self.windows_seen as i64)
            .int("windows_anomalous", self.windows_anomalous as i64)
    }
}

export_detector!(Ewma);

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic normal samples (splitmix64 + Box–Muller).
    struct Gauss(u64);

    impl Gauss {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn window(&mut self, n: usize, mean: f64, sd: f64) -> Vec<f64> {
            (0..n)
                .map(|_| {
                    let (u, v) = (self.uniform(), self.uniform());
                    mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
                })
                .collect()
        }
    }

    fn ewma(lambda: f64, warmup: i64, alpha: f64, rebaseline: i64) -> Result<Ewma, String> {
        Ewma::new(&Options::new(vec![
            ("lambda".into(), Value::Double(lambda)),
            ("warmup".into(), Value::Int(warmup)),
            ("alpha".into(), Value::Double(alpha)),
            ("rebaseline".into(), Value::Int(rebaseline)),
        ]))
    }

    fn stat(v: &Verdict, name: &str) -> Option<f64> {
        v.stats.iter().find(|(n, _)| n == name).map(|(_, x)| *x)
    }

    #[test]
    fn declares_defaults_and_builds_from_them() {
        let defaults: Vec<(String, Value)> = Ewma::options()
            .iter()
            .map(|s| (s.name.clone(), s.default.clone().expect("every option has a default")))
            .collect();
        assert_eq!(
            defaults,
            [
                ("lambda".to_string(), Value::Double(0.001)),
                ("warmup".to_string(), Value::Int(600)),
                ("alpha".to_string(), Value::Double(0.001)),
                ("rebaseline".to_string(), Value::Int(0)),
            ]
        );
        let d = Ewma::new(&Options::new(defaults)).unwrap();
        assert_eq!((d.lambda, d.warmup, d.alpha, d.rebaseline), (0.001, 600, 0.001, 0));
    }

    #[test]
    fn refuses_out_of_range_options_naming_them() {
        assert_eq!(ewma(0.0, 600, 0.01, 0).unwrap_err(), "option lambda must be in (0, 1], got 0");
        assert!(ewma(1.5, 600, 0.01, 0).unwrap_err().starts_with("option lambda must be in"));
        assert!(ewma(f64::NAN, 600, 0.01, 0).unwrap_err().starts_with("option lambda"));
        assert!(ewma(1.0, 600, 0.01, 0).is_ok());
        assert_eq!(
            ewma(0.1, 1, 0.01, 0).unwrap_err(),
            "option warmup must be >= 2 (a spread needs two values), got 1"
        );
        assert_eq!(ewma(0.1, 10, 1.0, 0).unwrap_err(), "option alpha must be in (0, 1), got 1");
        assert_eq!(ewma(0.1, 10, 0.01, -3).unwrap_err(), "option rebaseline must be >= 0, got -3");
        let missing = Ewma::new(&Options::new(vec![("lambda".into(), Value::Double(0.1))]));
        assert_eq!(missing.unwrap_err(), "option warmup is required");
    }

    #[test]
    fn no_verdict_before_warmup_then_anomalies_leave_the_baseline_alone() {
        let mut g = Gauss(1);
        let mut d = ewma(0.001, 600, 0.001, 0).unwrap();
        assert_eq!(d.score(&[]), None);
        assert_eq!(d.score(&g.window(300, 220.0, 0.5)), None);
        assert_eq!(d.score(&g.window(299, 220.0, 0.5)), None);
        assert_eq!(d.baseline.count(), 599);
        assert_eq!(d.score(&g.window(300, 220.0, 0.5)), None, "599 < warmup");
        let first = d.score(&g.window(300, 220.0, 0.5)).unwrap();
        assert!(!first.anomalous, "{first:?}");
        assert_eq!(first.stats.len(), 1, "no rebaselined stat when rebaseline is off");
        assert_eq!(d.baseline.count(), 1199);
        let before = d.baseline.clone();
        let fault = d.score(&g.window(300, 218.5, 3.0)).unwrap();
        assert!(fault.anomalous && fault.pvalue < 1e-50, "{fault:?}");
        assert!(stat(&fault, "z").unwrap() < -10.0);
        assert_eq!(d.baseline, before, "an anomalous window must not update the baseline");
    }

    #[test]
    fn false_alarm_rate_matches_alpha_under_no_change() {
        // lambda 0.05 (memory ~40 values) against 60-value windows: the
        // EWMA mean's own noise dominates, and the test must still hold alpha.
        for (lambda, seed) in [(0.05, 2), (0.002, 3)] {
            let mut g = Gauss(seed);
            let mut d = ewma(lambda, 2000, 0.01, 0).unwrap();
            d.score(&g.window(2000, 5.0, 2.0));
            let n = 20_000;
            let alarms =
                (0..n).filter(|_| d.score(&g.window(60, 5.0, 2.0)).unwrap().anomalous).count();
            // Expected 200; ± 4.5 sd of a binomial(20000, 0.01) is ± 63.
            assert!((137..=263).contains(&alarms), "lambda {lambda}: {alarms} alarms in {n}");
        }
    }

    #[test]
    fn t_tail_matches_scipy() {
        // Reference values: 2 * scipy.stats.t.sf(z, df).
        for (z, df, p) in [
            (3.2905267314918945, 9.0, 0.00937046679092597),
            (3.2905267314918945, 3599.0, 0.001009636677150316),
            (10.0, 3599.0, 3.0556446407228576e-23),
            (5.0, 37.0, 1.4106054575085142e-05),
            (2.0, 1.0, 0.2951672353008665),
        ] {
            let got = two_sided_t(z, df);
            assert!(((got - p) / p).abs() < 1e-9, "z={z} df={df}: {got} vs {p}");
            assert_eq!(two_sided_t(-z, df), got);
        }
        assert_eq!(two_sided_t(f64::MAX, 2000.0), 0.0);
        // 2 * scipy.stats.norm.sf(4.0)
        assert!((two_sided_t(4.0, 1e9) / 6.334248366623973e-05 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn zero_variance_is_no_evidence_or_a_certain_change() {
        let mut d = ewma(0.1, 2, 0.01, 0).unwrap();
        d.score(&[5.0, 5.0]);
        let same = d.score(&[5.0, 5.0, 5.0]).unwrap();
        assert_eq!((same.pvalue, stat(&same, "z")), (1.0, Some(0.0)));
        let up = d.score(&[6.0]).unwrap();
        assert_eq!((up.pvalue, stat(&up, "z"), up.anomalous), (0.0, Some(f64::MAX), true));
        let mut d = ewma(0.001, 600, 0.001, 0).unwrap();
        d.score(&[0.1; 600]);
        for _ in 0..10 {
            let v = d.score(&[0.1; 300]).unwrap();
            assert_eq!((v.pvalue, stat(&v, "z")), (1.0, Some(0.0)));
        }
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let mut a = ewma(0.1, 2, 0.01, 0).unwrap();
        let mut b = ewma(0.1, 2, 0.01, 0).unwrap();
        for w in [vec![1.0, 2.0, 3.0], vec![2.0, 2.5, 1.0], vec![1.5, 9.0], vec![0.5, 1.5, 2.0]] {
            let mut dirty = w.clone();
            dirty.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
            assert_eq!(a.score(&w), b.score(&dirty));
        }
        assert_eq!(b.score(&[f64::NAN; 50]), None);
        assert_eq!(a.save(), b.save());
    }

    #[test]
    fn output_is_finite_for_one_value_and_huge_windows() {
        let mut d = ewma(0.5, 2, 0.01, 2).unwrap();
        d.score(&[1e308, -1e308, 1e308]);
        for w in [vec![1e308; 3], vec![-1e308], vec![0.0], vec![f64::MAX, f64::MAX]] {
            let v = d.score(&w).unwrap();
            assert!((0.0..=1.0).contains(&v.pvalue), "{v:?}");
            assert!(v.stats.iter().all(|(_, x)| x.is_finite()), "{v:?}");
        }
        let mut d = ewma(1.0, 2, 0.01, 0).unwrap();
        d.score(&[1.0, 2.0]);
        let v = d.score(&[2.0]).unwrap();
        assert!(v.pvalue == 1.0 && stat(&v, "z") == Some(0.0), "lambda 1 keeps the last value");
        let mut d = ewma(0.001, 600, 0.001, 0).unwrap();
        d.score(&vec![1.0; 300]);
        d.score(&vec![2.0; 300]);
        assert!(!d.score(&vec![1.5; 1_000_000]).unwrap().anomalous);
    }

    #[test]
    fn rebaseline_accepts_a_sustained_level_shift() {
        let mut g = Gauss(4);
        let mut d = ewma(0.001, 600, 0.001, 3).unwrap();
        for _ in 0..12 {
            d.score(&g.window(300, 90.0, 1.0));
        }
        let flags: Vec<(bool, f64)> = (0..6)
            .map(|_| {
                let v = d.score(&g.window(300, 95.0, 1.0)).unwrap();
                (v.anomalous, stat(&v, "rebaselined").unwrap())
            })
            .collect();
        assert_eq!(
            flags,
            [(true, 0.0), (true, 0.0), (true, 1.0), (false, 0.0), (false, 0.0), (false, 0.0)]
        );
        assert_eq!(d.rebaselines, 1);
        assert!((d.baseline.mean() - 95.0).abs() < 0.2);
        assert!(d.score(&g.window(300, 90.0, 1.0)).unwrap().anomalous);

        // A run shorter than warmup: the new baseline warms up first.
        let mut d = ewma(0.001, 600, 0.001, 1).unwrap();
        d.score(&g.window(600, 0.0, 1.0));
        let v = d.score(&g.window(100, 9.0, 1.0)).unwrap();
        assert_eq!((v.anomalous, stat(&v, "rebaselined")), (true, Some(1.0)));
        assert_eq!(d.score(&g.window(100, 9.0, 1.0)), None);

        // Off: the shift stays anomalous.
        let mut off = ewma(0.001, 600, 0.001, 0).unwrap();
        for _ in 0..12 {
            off.score(&g.window(300, 90.0, 1.0));
        }
        for _ in 0..10 {
            let v = off.score(&g.window(300, 95.0, 1.0)).unwrap();
            assert!(v.anomalous && stat(&v, "rebaselined").is_none());
        }
    }

    #[test]
    fn a_normal_window_breaks_the_anomalous_run() {
        let mut g = Gauss(5);
        let mut d = ewma(0.001, 600, 0.001, 2).unwrap();
        for _ in 0..6 {
            d.score(&g.window(300, 0.0, 1.0));
        }
        assert!(d.score(&g.window(300, 3.0, 1.0)).unwrap().anomalous);
        assert_eq!((d.streak, d.candidate.count()), (1, 300));
        assert!(!d.score(&g.window(300, 0.0, 1.0)).unwrap().anomalous);
        assert_eq!((d.streak, d.candidate.count()), (0, 0));
        let v = d.score(&g.window(300, 3.0, 1.0)).unwrap();
        assert_eq!(stat(&v, "rebaselined"), Some(0.0), "the run restarted at 1");
    }

    #[test]
    fn save_load_round_trips_exactly() {
        let mut g = Gauss(6);
        let mut d = ewma(0.002, 600, 0.001, 3).unwrap();
        for i in 0..10 {
            d.score(&g.window(300, if i < 8 { 0.0 } else { 4.0 }, 1.0));
        }
        assert_eq!(d.streak, 2);
        let bytes = d.save();
        assert_eq!(bytes.len(), 97);
        let mut e = ewma(0.002, 600, 0.001, 3).unwrap();
        e.load(&bytes).unwrap();
        assert_eq!(e, d);
        assert_eq!(e.save(), bytes, "bit-for-bit");
        let w = g.window(300, 4.0, 1.0);
        assert_eq!(d.score(&w), e.score(&w));
        assert_eq!(d.save(), e.save());

        assert!(e.load(&[7]).unwrap_err().contains("unknown ewma state format 7"));
        assert!(e.load(&bytes[..60]).unwrap_err().contains("malformed bytes at offset"));
        let mut off = ewma(0.002, 600, 0.001, 0).unwrap();
        assert!(off.load(&bytes).unwrap_err().contains("rebaseline 0"));
        assert_eq!(off, ewma(0.002, 600, 0.001, 0).unwrap(), "a refused load changes nothing");
    }
}
