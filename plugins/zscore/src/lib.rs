//! The `zscore` detector plugin: a z-test of each window's mean against a
//! moving history.
//!
//! Per (group, field) it keeps a moving history of the last `size` values
//! (a ring, as the `ttest` detector does). For each window with data:
//! - if the history is empty, the window seeds it and nothing is emitted;
//! - otherwise `z = (window mean − history mean) / se` with
//!   `se = history stddev · √(1/n + 1/N)` (`n` values in the window, `N` in
//!   the history), and its two-sided p-value (below). A verdict is emitted
//!   (anomalous when `pvalue < alpha`) and the window's values join the
//!   history only if it is not anomalous.
//!
//! Unlike the t-test, the spread comes from the history alone, which is
//! estimated from many more values than one window, and a window that is
//! noisier than the history counts as extra evidence: on the guide's faults
//! (which raise the spread too) `|z|` is 10 to 50 where Welch's `|t|` is 4
//! to 9, so the detector keeps catching them at a far smaller `alpha`. The
//! other side of the same coin: it assumes the window's spread equals the
//! history's, so a lasting rise in noise alone also inflates `|z|` until
//! the history has caught up (use the `ttest` or `levelspread` detector
//! where the spread changes).
//!
//! # Autocorrelated data (issue 9, round 2)
//! Once the history remembers [`MIN_WINDOWS`] windows, `s²` above is not
//! the values' variance but the between-window mean square of the
//! history's windows (`window::Windows`): the spread that window means
//! really have, which equals `s²` for independent values and grows with
//! the autocorrelation, with `K − 1` degrees of freedom; it is raised to
//! the square of the windows' largest standardised deviation over the
//! 95th percentile of the largest of `K` normals when that is larger (a
//! bursty series' tail; issue 9 round 3, before it the 99th percentile
//! over 2.576 from 100 windows: NAB development subset 43.2 → 47.9). From then on every window joins the history
//! (`Learn::EveryFrom`): a burst that recurs widens the tail and stops
//! alarming; one burst is one window of hundreds. With the guide's
//! 300-value windows and `size` 3600 the history holds 12 windows, so
//! there the test and the learning are exactly those below.
//!
//! # Why `√(1/n + 1/N)` and not `1/√n`, and the p-value
//! The history mean is itself an estimate. With `1/√n` alone, `z` is too
//! large by `√(1 + n/N)` (4 % for a 300-value window against 3600 values),
//! which at `alpha = 0.001` raises the false-alarm rate by about 60 %. With
//! both terms, `z` follows Student's t with `N − 1` degrees of freedom under
//! "nothing changed" (independent normal values), so that is the reference
//! distribution of the p-value. For a full default history (3600 values) it
//! is the two-sided normal p-value `erfc(|z|/√2)` to within 1 % at
//! `alpha = 0.001` (and computed exactly that way beyond 100 000 values);
//! for a short history the normal p-value would be far too small (ten
//! values: 0.001 where the truth is 0.0094).
//!
//! # Zero variance
//! A constant history has `se = 0`: a window with the same mean gives
//! `z = 0, pvalue = 1` (no evidence of change); any other mean gives
//! `pvalue = 0` and `z = ±f64::MAX` (a certain change, kept finite because
//! InfluxDB refuses infinite fields). Means of constant data are exact (a
//! window of 300 × `0.1` has mean `0.1`), so rounding cannot fake a change.
//! Sums that overflow `f64` (values near `1e308`) give `z = 0, pvalue = 1`.
//!
//! # Rebaseline
//! With `rebaseline = k > 0`, after `k` consecutive anomalous windows the
//! detector accepts the new level: the history is replaced by the values of
//! those `k` windows (the most recent `size` of them), and that window's
//! verdict carries `rebaselined = 1` (0 on every other verdict; the
//! statistic is emitted only when `rebaseline > 0`). A non-anomalous window
//! ends the run. The values of the current run are kept in a second ring of
//! at most `size` values, so memory at most doubles while a run lasts.
//!
//! # What lives where
//! What this crate owns is the z-test's standard error and degrees of
//! freedom; the p-value is `tickwatch_stats::ztest`'s, the history and the
//! rebaseline run are `tickwatch_plugin_api::window::Baseline`'s.

use tickwatch_plugin_api::options::preset;
use tickwatch_plugin_api::window::{
    Baseline, BaselineDetector, BaselineTest, History, Learn, MovingWindow, Quantised, Windows,
    mean,
};
use tickwatch_plugin_api::{OptionSpec, Options, StateFormat, export_detector};
use tickwatch_stats::{TAIL_CONFIDENCE, ZResult, largest_normal_at, z_from_stats};

/// The z-test of a window (mean, `win_n` values) against a history (mean,
/// sample variance, `hist_n` values); counts are at least 1. The standard
/// error and the degrees of freedom are the crate docs'.
pub fn z_test(hist_mean: f64, hist_var: f64, hist_n: f64, win_mean: f64, win_n: f64) -> ZResult {
    let se2 = hist_var * (1.0 / win_n + 1.0 / hist_n);
    z_from_stats(win_mean - hist_mean, se2, hist_n - 1.0)
}

/// Values the history holds before the first verdict (at most `size`): a
/// spread from fewer says little, and a sliding window's first windows hold
/// one, two, three … values.
pub const MIN_HISTORY: u64 = 30;

/// Windows the history must remember before their spread replaces the
/// values' variance: a mean square from fewer has too few degrees of
/// freedom to say more than the values do (with 300-value windows and the
/// default `size`, the history holds 12 windows and the test is the
/// independent-values one).
pub const MIN_WINDOWS: usize = 30;

/// The default `rebaseline`: after an hour of 5-minute windows (or of any
/// twelve windows in a row) flagged, the detector accepts the change as the
/// new normal, so a lasting change alerts for a while and then stops,
/// instead of for ever. Longer than the guide's longest fault (six
/// windows), which it keeps alerting throughout.
pub const REBASELINE: i64 = 12;

/// The history: the last `size` normal values with the data's resolution,
/// verdicts after [`MIN_HISTORY`] values.
pub fn robust_baseline(size: usize, rebaseline: u64) -> Baseline<ZHistory> {
    Baseline::of(Quantised::new(Windows::new(MovingWindow::new(size), size)), rebaseline)
        .with_warmup(MIN_HISTORY.min(size as u64))
        .with_learning(Learn::EveryFrom(MIN_WINDOWS as u64))
}

/// The history: the last `size` values, the windows they came in (for the
/// spread of window means) and the data's resolution.
pub type ZHistory = Quantised<Windows<MovingWindow>>;

/// The variance of one value that a window mean's standard error is built
/// from, and its degrees of freedom: the between-window mean square of the
/// history's windows once it holds two windows (the spread window means
/// really have, autocorrelation included; `s²` for independent values), or
/// the square of their largest standardised deviation over the 95th
/// percentile of the largest of as many normals if that is larger (the
/// tail of a bursty series; `tickwatch_stats::TAIL_CONFIDENCE`),
/// once it remembers [`MIN_WINDOWS`]; else the values' variance; floored
/// at the data's resolution.
pub fn mean_square(history: &ZHistory) -> (f64, f64) {
    let floor = history.variance_floor();
    match history.between().filter(|_| history.windows().unwrap_or(0) >= MIN_WINDOWS as u64) {
        Some((ms, dof)) => {
            let tail = history.deviation_largest().map_or(0.0, |(largest, k)| {
                (largest / largest_normal_at(k, TAIL_CONFIDENCE)).powi(2)
            });
            (ms.max(tail).max(floor), dof)
        }
        None => (history.variance().max(floor), history.len() as f64 - 1.0),
    }
}

/// The z-score detector: [`ZTest`] against a moving history.
pub type ZScore = BaselineDetector<ZTest>;

/// The z-test against a moving history, with the presets `size` (3600),
/// `alpha` (0.001) and `rebaseline`.
#[derive(Debug, Clone, PartialEq)]
pub struct ZTest;

impl BaselineTest for ZTest {
    /// Format 2: `u8` 2, then the baseline in `Layout::CountersFirst`
    /// (`u64` windows seen, anomalous, rebaselines, streak; the history
    /// ring and its `f64` resolution; the candidate ring and its
    /// resolution), so a window that joins the history changes only its
    /// slots and the headers. Format 1 (before the resolution) is not read:
    /// such state starts fresh. Bump when a format change would misread
    /// old state.
    /// Format 3 adds, after each ring of values, the windows behind it
    /// (`u64` count, then `u64` n, `f64` mean, `f64` variance each; see
    /// `window::Windows`). Formats 1 and 2 are not read: such state starts
    /// fresh.
    const FORMAT: StateFormat = StateFormat::new("zscore", 3);
    /// A single value is compared with the history (its spread comes from
    /// the history alone), so a stream node may score every point.
    const MIN_WINDOW: u32 = 1;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type History = ZHistory;

    /// `size` (3600), `alpha` (0.001), `rebaseline` ([`REBASELINE`]).
    fn options() -> Vec<OptionSpec> {
        vec![
            preset::size(Some(3600)),
            preset::alpha(Some(0.001)).scoring_only(),
            preset::rebaseline_with(REBASELINE),
        ]
    }

    fn build(options: &Options) -> Result<ZScore, String> {
        let size = options.length("size")?;
        let alpha = options.probability("alpha")?;
        let rebaseline = options.count("rebaseline")?;
        Ok(BaselineDetector::from_parts(ZTest, alpha, robust_baseline(size, rebaseline)))
    }

    fn test(&self, history: &ZHistory, window: &[f64]) -> (f64, Vec<(String, f64)>) {
        let (hist_n, win_n) = (history.len() as f64, window.len() as f64);
        let (var, dof) = mean_square(history);
        let se2 = var * (1.0 / win_n + 1.0 / hist_n);
        let r = z_from_stats(mean(window) - history.mean(), se2, dof);
        (r.pvalue, vec![("z".to_string(), r.z)])
    }
}

export_detector!(ZScore);

#[cfg(test)]
mod tests {
    use tickwatch_plugin_api::{Detector, Value, Verdict};
    use tickwatch_stats::testkit::Gauss;

    use super::*;

    fn zscore(size: i64, alpha: f64, rebaseline: i64) -> Result<ZScore, String> {
        ZScore::new(&Options::new(vec![
            ("size".into(), Value::Int(size)),
            ("alpha".into(), Value::Double(alpha)),
            ("rebaseline".into(), Value::Int(rebaseline)),
        ]))
    }

    fn stat(v: &Verdict, name: &str) -> Option<f64> {
        v.stats.iter().find(|(n, _)| n == name).map(|(_, x)| *x)
    }

    #[test]
    fn declares_defaults_and_builds_from_them() {
        let specs = ZScore::options();
        let defaults: Vec<(String, Value)> = specs
            .iter()
            .map(|s| (s.name.clone(), s.default.clone().expect("every option has a default")))
            .collect();
        assert_eq!(
            defaults,
            [
                ("size".to_string(), Value::Int(3600)),
                ("alpha".to_string(), Value::Double(0.001)),
                ("rebaseline".to_string(), Value::Int(12)),
            ]
        );
        let d = ZScore::new(&Options::new(defaults)).unwrap();
        assert_eq!(
            (d.baseline().history().cap(), d.alpha(), d.baseline().rebaseline()),
            (3600, 0.001, 12)
        );
    }

    #[test]
    fn refuses_out_of_range_options_naming_them() {
        assert_eq!(zscore(1, 0.01, 0).unwrap_err(), "option size must be > 1, got 1");
        assert_eq!(zscore(-5, 0.01, 0).unwrap_err(), "option size must be > 1, got -5");
        assert_eq!(zscore(10, 0.0, 0).unwrap_err(), "option alpha must be in (0, 1), got 0");
        assert!(zscore(10, 1.0, 0).unwrap_err().starts_with("option alpha must be in (0, 1)"));
        assert!(zscore(10, f64::NAN, 0).unwrap_err().starts_with("option alpha"));
        assert_eq!(zscore(10, 0.01, -1).unwrap_err(), "option rebaseline must be >= 0, got -1");
        let missing = ZScore::new(&Options::new(vec![("size".into(), Value::Int(5))]));
        assert_eq!(missing.unwrap_err(), "option alpha is required");
    }

    /// Issue 9: with a sliding window the first window holds one value; as
    /// the whole history it has no spread, and every later window was
    /// flagged for ever (198 of 198 in the repro).
    #[test]
    fn a_one_value_first_window_does_not_lock_the_detector() {
        let mut g = Gauss(11);
        let xs = g.window(200, 10.0, 1.0);
        let mut d = zscore(100, 0.001, 0).unwrap();
        let mut flagged = 0;
        for end in 1..=xs.len() {
            if let Some(v) = d.score(&xs[end.saturating_sub(60)..end]) {
                flagged += usize::from(v.anomalous);
            }
        }
        assert!(flagged <= 2, "{flagged} windows flagged");
    }

    #[test]
    fn first_window_seeds_then_anomalies_stay_out_of_history() {
        let mut g = Gauss(1);
        let mut d = zscore(3600, 0.001, 0).unwrap();
        assert_eq!(d.score(&[]), None);
        assert_eq!(d.score(&g.window(300, 220.0, 0.5)), None);
        assert_eq!(d.baseline().history().len(), 300);
        let normal = d.score(&g.window(300, 220.0, 0.5)).unwrap();
        assert!(!normal.anomalous && normal.pvalue > 0.001, "{normal:?}");
        assert_eq!(d.baseline().history().len(), 600);
        assert_eq!(normal.stats.len(), 1, "no rebaselined stat when rebaseline is off");
        // The guide's hotend fault: mean −1.5, stddev 3.
        let fault = d.score(&g.window(300, 218.5, 3.0)).unwrap();
        assert!(fault.anomalous && fault.pvalue < 1e-100, "{fault:?}");
        assert!(stat(&fault, "z").unwrap() < -20.0);
        assert_eq!(
            d.baseline().history().len(),
            600,
            "an anomalous window must not join the history"
        );
        assert_eq!((d.baseline().windows_seen(), d.baseline().windows_anomalous()), (2, 1));
    }

    /// Issue 9 (round 2): a daily cycle seen through 6-value sliding
    /// windows. Window means spread like the values, not like `s/√6`; with
    /// the between-window mean square the cycle is normal, and a recurring
    /// burst is learned once the history's tail holds it, while a level
    /// far outside anything seen is still flagged.
    #[test]
    fn an_autocorrelated_cycle_is_normal_and_a_real_jump_is_not() {
        let xs = tickwatch_stats::testkit::cycle_with_bursts(12);
        let mut d = zscore(3600, 0.001, 12).unwrap();
        let flagged = tickwatch_stats::testkit::sliding_flags(&xs, 6, 1000, |w| {
            d.score(w).map(|v| v.anomalous)
        });
        assert!(flagged <= 10, "{flagged} of 2000 windows flagged");
        let jump = d.score(&[60.0; 6]).unwrap();
        assert!(jump.anomalous, "{jump:?}");
    }

    #[test]
    fn sees_a_small_level_shift_that_keeps_the_spread() {
        let mut g = Gauss(2);
        let mut d = zscore(3600, 0.001, 0).unwrap();
        for _ in 0..12 {
            d.score(&g.window(300, 0.0, 1.0));
        }
        let v = d.score(&g.window(300, 0.4, 1.0)).unwrap();
        assert!(v.anomalous, "{v:?}");
        assert!(stat(&v, "z").unwrap() > 3.3);
    }

    #[test]
    fn false_alarm_rate_matches_alpha_under_no_change() {
        let mut g = Gauss(3);
        let mut d = zscore(600, 0.01, 0).unwrap();
        d.score(&g.window(600, 5.0, 2.0));
        let n = 20_000;
        let alarms = (0..n).filter(|_| d.score(&g.window(60, 5.0, 2.0)).unwrap().anomalous).count();
        // Expected 200; ± 4.5 sd of a binomial(20000, 0.01) is ± 63.
        assert!((137..=263).contains(&alarms), "{alarms} alarms in {n} windows at alpha 0.01");
    }

    /// Issue 9: a flat history (a sensor at idle, a value pinned) made any
    /// change "certain" (p = 0, z = ±f64::MAX): storms of p = 0. The
    /// variance is now floored at the data's resolution.
    #[test]
    fn a_flat_history_weighs_changes_by_the_data_resolution() {
        let mut d = zscore(10, 0.01, 0).unwrap();
        assert_eq!(d.score(&[5.0; 9]), None, "ten values before the first verdict");
        d.score(&[5.0]);
        let same = d.score(&[5.0, 5.0, 5.0]).unwrap();
        assert_eq!((same.pvalue, stat(&same, "z")), (1.0, Some(0.0)));
        let step = d.clone().score(&[6.0, 6.0]).unwrap();
        assert!(step.anomalous && step.pvalue > 1e-6, "one step, twice: {step:?}");
        let jump = d.clone().score(&[50.0, 50.0]).unwrap();
        assert!(jump.pvalue < step.pvalue * 1e-10 && jump.pvalue > 0.0, "{jump:?}");
        assert!(stat(&jump, "z").unwrap() < f64::MAX);
        let tick = d.clone().score(&[5.0, 5.0, 5.0, 5.0, 5.0, 6.0]).unwrap();
        assert!(!tick.anomalous, "a counter that ticks once: {tick:?}");
        // The flat history took the step in: it no longer has zero spread.
        d.score(&[6.0, 6.0]);
        assert!(d.baseline().history().variance() > 0.0);
    }

    #[test]
    fn constant_non_representable_values_are_not_a_change() {
        // 300 × 0.1 summed is not 30: a naive mean would differ from the
        // history's by an ulp and look like a certain change.
        let mut d = zscore(3600, 0.001, 0).unwrap();
        d.score(&[0.1; 300]);
        for _ in 0..20 {
            let v = d.score(&[0.1; 300]).unwrap();
            assert_eq!((v.pvalue, stat(&v, "z")), (1.0, Some(0.0)));
        }
    }

    #[test]
    fn non_finite_values_are_skipped() {
        let mut a = zscore(10, 0.01, 0).unwrap();
        let mut b = zscore(10, 0.01, 0).unwrap();
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
        let mut d = zscore(10, 0.01, 2).unwrap();
        d.score(&[1e308, -1e308, 1e308].repeat(4));
        for w in [vec![1e308; 3], vec![-1e308], vec![0.0], vec![f64::MAX, f64::MAX]] {
            let v = d.score(&w).unwrap();
            assert!((0.0..=1.0).contains(&v.pvalue), "{v:?}");
            assert!(v.stats.iter().all(|(_, x)| x.is_finite()), "{v:?}");
        }
        let mut d = zscore(3600, 0.001, 0).unwrap();
        d.score(&[1.0, 2.0].repeat(15));
        let one = d.score(&[1.5]).unwrap();
        assert_eq!((one.pvalue, stat(&one, "z")), (1.0, Some(0.0)));
        let big = d.score(&vec![3.0; 1_000_000]).unwrap();
        assert!(big.anomalous && big.pvalue > 0.0, "{big:?}");
    }

    #[test]
    fn rebaseline_accepts_a_sustained_level_shift() {
        let mut g = Gauss(4);
        let mut d = zscore(3600, 0.001, 3).unwrap();
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
        assert_eq!(d.baseline().rebaselines(), 1);
        // The new history is the run's 900 values, then the accepted windows.
        assert_eq!(d.baseline().history().len(), 900 + 3 * 300);
        assert!((d.baseline().history().mean() - 95.0).abs() < 0.2);
        // Back to the old level is now the change.
        assert!(d.score(&g.window(300, 90.0, 1.0)).unwrap().anomalous);

        // Off: the shift stays anomalous and the history keeps the old level.
        let mut off = zscore(3600, 0.001, 0).unwrap();
        for _ in 0..12 {
            off.score(&g.window(300, 90.0, 1.0));
        }
        for _ in 0..10 {
            let v = off.score(&g.window(300, 95.0, 1.0)).unwrap();
            assert!(v.anomalous && stat(&v, "rebaselined").is_none());
        }
        assert!((off.baseline().history().mean() - 90.0).abs() < 0.2);
    }

    #[test]
    fn a_normal_window_breaks_the_anomalous_run() {
        let mut g = Gauss(5);
        let mut d = zscore(3600, 0.001, 2).unwrap();
        for _ in 0..6 {
            d.score(&g.window(300, 0.0, 1.0));
        }
        assert!(d.score(&g.window(300, 3.0, 1.0)).unwrap().anomalous);
        assert_eq!((d.baseline().streak(), d.baseline().candidate().len()), (1, 300));
        assert!(!d.score(&g.window(300, 0.0, 1.0)).unwrap().anomalous);
        assert_eq!((d.baseline().streak(), d.baseline().candidate().len()), (0, 0));
        let v = d.score(&g.window(300, 3.0, 1.0)).unwrap();
        assert_eq!(stat(&v, "rebaselined"), Some(0.0), "the run restarted at 1");
    }

    #[test]
    fn save_load_round_trips_exactly() {
        let mut g = Gauss(6);
        let mut d = zscore(1000, 0.001, 3).unwrap();
        for i in 0..10 {
            d.score(&g.window(300, if i < 8 { 0.0 } else { 4.0 }, 1.0));
        }
        assert_eq!(d.baseline().streak(), 2);
        let bytes = d.save();
        let mut e = zscore(1000, 0.001, 3).unwrap();
        e.load(&bytes).unwrap();
        assert_eq!(e, d);
        assert_eq!(e.save(), bytes, "bit-for-bit");
        let w = g.window(300, 4.0, 1.0);
        assert_eq!(d.score(&w), e.score(&w));
        assert_eq!(d.save(), e.save());

        assert!(e.load(&[9]).unwrap_err().contains("unknown zscore state format 9"));
        assert!(e.load(&bytes[..40]).unwrap_err().contains("malformed bytes at offset"));
        let mut other = zscore(999, 0.001, 3).unwrap();
        assert!(other.load(&bytes).unwrap_err().contains("size 1000"));
        let mut off = zscore(1000, 0.001, 0).unwrap();
        assert!(off.load(&bytes).unwrap_err().contains("rebaseline 0"));
        assert_eq!(off, zscore(1000, 0.001, 0).unwrap(), "a refused load changes nothing");
    }

    #[test]
    fn a_new_window_changes_few_bytes_of_the_state() {
        let mut g = Gauss(7);
        let mut d = zscore(3600, 0.001, 0).unwrap();
        for _ in 0..20 {
            d.score(&g.window(300, 0.0, 1.0));
        }
        let before = d.save();
        assert!(!d.score(&g.window(300, 0.0, 1.0)).unwrap().anomalous);
        let after = d.save();
        assert_eq!(before.len(), after.len());
        let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert!(changed <= 300 * 8 + 64, "{changed} of {} bytes changed", after.len());
    }

    #[test]
    fn false_alarm_rate_matches_alpha_with_a_short_history() {
        // Ten values of history: the normal p-value would flag ~9x alpha.
        let mut g = Gauss(8);
        let mut d = zscore(10, 0.01, 0).unwrap();
        d.score(&g.window(10, 0.0, 1.0));
        let n = 20_000;
        let alarms = (0..n).filter(|_| d.score(&g.window(10, 0.0, 1.0)).unwrap().anomalous).count();
        assert!((137..=263).contains(&alarms), "{alarms} alarms in {n} windows at alpha 0.01");
    }
}
