//! The `ttest` detector plugin: the Kapacitor guide's `TTestHandler`.
//!
//! Per (group, field) it keeps a moving history of the last `size` values.
//! For each window with data:
//! - if the history is empty, the window seeds it and nothing is emitted;
//! - otherwise Welch's two-sided t-test (unequal variances) of history vs
//!   window gives `t` and `pvalue`; a verdict is emitted (anomalous when
//!   `pvalue < alpha`) and the window's values join the history only if
//!   `pvalue > alpha`.
//!
//! # Serially dependent data (issue 9, round 4)
//! Welch's test takes a window's own spread `s_w` for the spread of its
//! values, which is right for independent normal values and badly wrong
//! for real metrics: six consecutive values of a series with a daily
//! cycle hardly vary, so `|t|` was huge on half of all windows. Beside
//! the history the detector records every window it sees (count, mean,
//! variance; [`record`]) and, once it has recorded [`MIN_WINDOWS`], checks
//! the guide's assumption on them ([`serial::scale`]: the one-way analysis
//! of variance of window means against the spread inside windows, and
//! Bartlett's test of equal window variances, each at [`SERIAL_LEVEL`]).
//! Where the data do not contradict it, and always in the guide's own use
//! (300-value windows and `size` 3600 record at most 13 windows), the
//! verdict, the learning rule and the saved history are the guide's, bit
//! for bit. Where they do, the window mean is judged by the spread window
//! means really have ([`serial::serial_test`]), the verdict carries
//! `serial = 1`, and every window joins the history (a scale learned from
//! the windows themselves is not captured by one burst, and learns a
//! recurring one).
//!
//! With `rebaseline = k > 0` (default 0: off, the guide's behaviour), after
//! `k` consecutive anomalous windows the detector accepts the new level: the
//! history is replaced by the values of those `k` windows (the most recent
//! `size` of them), and that window's verdict carries `rebaselined = 1`
//! (0 on every other verdict). A window that is not anomalous ends the run.
//! The values of the current run are kept in a second ring of at most `size`
//! values. With the option off, nothing changes: no `rebaselined` statistic.
//!
//! Degenerate histories (issue 9), where the guide's statistic is not
//! defined and it locked up: a sliding window's first window holds one
//! value, whose "stddev" the guide sets to 0. Windows are absorbed without
//! a verdict until the history holds [`MIN_HISTORY`] values, and while the
//! history has no spread at all (a flat start) every window joins it,
//! whatever its verdict (`tickwatch_plugin_api::window::Baseline`): a
//! zero-variance history cannot tell noise from change, and keeping the
//! first differing window out would leave every later one "certainly
//! changed". Wherever the history has spread, p-values, verdicts and the
//! `pvalue > alpha` rule are the guide's, unchanged.
//!
//! Zero standard error (both history and window constant): the guide's
//! Python produces NaN there. We define it instead: equal means give
//! `t = 0, pvalue = 1` (no evidence of change); different means give
//! `pvalue = 0` and `t = ±f64::MAX` (a certain change, kept finite because
//! InfluxDB refuses infinite fields).
//!
//! What this crate owns is the choice of test, the guide's rules and the
//! state layout; the history and the rebaseline run are
//! `tickwatch_plugin_api::window::Baseline`'s, the record
//! `window::Windows`', Welch's test `tickwatch_stats::welch`'s.

pub mod record;
pub mod serial;

use tickwatch_plugin_api::changes::{ChangeWriter, Checkpoints, StateChanges, Taken};
use tickwatch_plugin_api::options::preset;
use tickwatch_plugin_api::window::{
    Baseline, History, Joins, Layout, Learn, MovingWindow, finite, mean_var,
};
use tickwatch_plugin_api::{
    Detector, OptionSpec, Options, StateFormat, Summary, Verdict, export_detector,
};
use tickwatch_stats::welch_from_stats;

pub use record::WindowRecord;
pub use serial::{MIN_WINDOWS, SERIAL_LEVEL};

/// Values the history holds before the first verdict.
pub const MIN_HISTORY: u64 = 2;

/// The state's format: format 1's bytes, then the window record; see
/// [`TTest::save`].
pub const FORMAT: StateFormat = StateFormat::new("ttest", 2);

/// Format 1's header: what a `size` below [`MIN_WINDOWS`] saves, and what
/// format 2 continues.
const FORMAT_1: StateFormat = StateFormat::new("ttest", 1);

/// The t-test detector: the guide's Welch test against a moving history,
/// or, where the windows seen prove the guide's independent normal values
/// wrong, the test of [`serial`].
#[derive(Debug, Clone, PartialEq)]
pub struct TTest {
    alpha: f64,
    baseline: Baseline,
    /// `None` for a `size` below [`MIN_WINDOWS`], which can never record
    /// that many windows.
    record: Option<WindowRecord>,
    /// Which checkpoint of the state the host holds ([`Detector::save_changes`]).
    checkpoints: Checkpoints,
}

impl TTest {
    /// The significance level: `pvalue < alpha` is anomalous.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The baseline: the guide's history.
    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    /// The windows behind the last `size` values seen (`None` for a `size`
    /// below [`MIN_WINDOWS`]).
    pub fn record(&self) -> Option<&WindowRecord> {
        self.record.as_ref()
    }

    /// The serial scale in force ([`serial::scale`]), `None` in the guide's
    /// regime.
    pub fn serial(&self) -> Option<serial::Scale> {
        self.record.as_ref().and_then(serial::scale)
    }

    /// Sets the history's learning for the regime `scale` says is in
    /// force: the guide's (`Learn::Verdict`, with `Joins::AboveAlpha`) or
    /// the serial regime's ([`SERIAL_LEARNING`]).
    fn learn_for(&mut self, scale: Option<serial::Scale>) {
        let learning = if scale.is_some() { SERIAL_LEARNING } else { Learn::Verdict };
        if self.baseline.learning() != learning {
            let baseline = std::mem::replace(&mut self.baseline, Baseline::new(2, 0));
            self.baseline = baseline.with_learning(learning);
        }
    }

    /// The p-value and statistics of `window` against `history`: the
    /// guide's Welch test, or with a serial `scale` [`serial::serial_test`]
    /// (then with `serial = 1` among the statistics).
    /// `batch` is `mean_var(window)`.
    fn test(
        history: &MovingWindow,
        window: &[f64],
        (batch_mean, batch_var): (f64, f64),
        scale: Option<serial::Scale>,
    ) -> (f64, Vec<(String, f64)>) {
        let (hist_n, batch_n) = (history.len() as f64, window.len() as f64);
        let (hist_mean, hist_var) = (history.mean(), history.variance());
        match scale {
            None => {
                let r =
                    welch_from_stats(hist_mean, hist_var, hist_n, batch_mean, batch_var, batch_n);
                (r.pvalue, vec![("t".to_string(), r.t)])
            }
            Some(scale) => {
                let r = serial::serial_test(
                    (hist_mean, hist_n),
                    scale,
                    (batch_mean, batch_var, batch_n),
                );
                (r.pvalue, vec![("t".to_string(), r.t), ("serial".to_string(), 1.0)])
            }
        }
    }
}

/// How the history learns in the serial regime (the guide's regime:
/// `Learn::Verdict` with `Joins::AboveAlpha`): every window, as `zscore`
/// and `levelspread` from 30 windows (NAB development subset: 32.4, with
/// the guide's rule in this regime too 25.2).
pub const SERIAL_LEARNING: Learn = Learn::Every;

impl Detector for TTest {
    const NAME: &'static str = FORMAT.detector();
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    /// 1, although the bytes may be format 2: the engine sets aside saved
    /// state whose declared format differs from the detector's, and format
    /// 2 is format 1 with a section appended, which this build reads
    /// either way (an older build refuses format 2's bytes by their first
    /// byte: the state is set aside, not lost).
    const STATE_VERSION: u32 = 1;

    /// `size` and `alpha` are required, as in the guide's TICKscript.
    fn options() -> Vec<OptionSpec> {
        vec![preset::size(None), preset::alpha(None).scoring_only(), preset::rebaseline()]
    }

    fn new(options: &Options) -> Result<Self, String> {
        let size = options.length("size")?;
        let alpha = options.probability("alpha")?;
        let rebaseline = options.count("rebaseline")?;
        // Two values before the first verdict: the guide's stddev of one
        // value is a stand-in 0 (numpy's ddof=1 gives NaN), not a statistic.
        let baseline = Baseline::new(size, rebaseline)
            .with_warmup(MIN_HISTORY)
            .with_joins(Joins::AboveAlpha)
            .with_layout(Layout::HistoryFirst);
        let record = (size >= MIN_WINDOWS).then(|| record::record(size));
        Ok(Self { alpha, baseline, record, checkpoints: Checkpoints::new() })
    }

    fn score(&mut self, window: &[f64]) -> Option<Verdict> {
        let scale = self.serial();
        self.learn_for(scale);
        // The window's mean and variance, once for the test and the record.
        let mut batch = None;
        let verdict = self.baseline.score(window, self.alpha, |h, w| {
            let stats = mean_var(w);
            batch = Some(stats);
            Self::test(h, w, stats, scale)
        });
        if let Some(record) = &mut self.record {
            let values = finite(window);
            match batch {
                Some(stats) => record.extend_with_stats(&values, stats),
                None => record.extend(&values),
            }
        }
        verdict
    }

    /// Format 1: `u8` 1, `u64` windows seen and anomalous, the history
    /// ring; with `rebaseline > 0` only, then `u64` rebaselines and run
    /// length and the candidate ring (`Layout::HistoryFirst`). The options
    /// decide which (a snapshot entry is only loaded under the options it
    /// was saved with).
    ///
    /// Format 2 (issue 9 round 4), for a `size` of [`MIN_WINDOWS`] or
    /// more: `u8` 2, format 1's bytes after its first, then the window
    /// record (`u64` count, then `u64` n, `f64` mean, `f64` variance each;
    /// `window::Windows`). Appended, so every offset format 1 had stays
    /// where it was. A shorter history can never record [`MIN_WINDOWS`]
    /// windows, keeps no record and saves format 1 exactly.
    fn save(&self) -> Vec<u8> {
        let mut w = if self.record.is_some() { FORMAT.writer() } else { FORMAT_1.writer() };
        self.baseline.write(&mut w);
        if let Some(record) = &self.record {
            record.write(&mut w);
        }
        w.finish()
    }

    /// Reads format 2 and format 1 (then the record is empty: the field
    /// keeps its history and is judged by the guide's test until
    /// [`MIN_WINDOWS`] windows have been recorded). Changes nothing when it
    /// refuses.
    fn load(&mut self, state: &[u8]) -> Result<(), String> {
        let (mut r, with_record) = match (state.first(), &self.record) {
            (Some(1), _) => (FORMAT_1.reader(state)?, false),
            (_, Some(_)) => (FORMAT.reader(state)?, true),
            (_, None) => (FORMAT_1.reader(state)?, false),
        };
        let mut baseline = self.baseline.clone();
        baseline.read(&mut r)?;
        let record = match &self.record {
            Some(blank) if with_record => Some(blank.read_like(&mut r)?),
            other => other.as_ref().map(History::fresh),
        };
        r.finish()?;
        (self.baseline, self.record) = (baseline, record);
        self.checkpoints.reset();
        self.learn_for(self.serial());
        Ok(())
    }

    /// The format byte, then the history's changes (the header and the
    /// ring slots the new values landed in), then the record's (skipped
    /// when no window came or went, else written whole: it changes with
    /// every window). A load, a first call or a missed generation gives
    /// the whole state.
    fn save_changes(&mut self, since: u64) -> StateChanges {
        let mut w = ChangeWriter::new();
        self.save_changes_into(since, &mut w).into_changes(w)
    }

    /// [`Detector::save_changes`] into the host's reused writer.
    fn save_changes_into(&mut self, since: u64, w: &mut ChangeWriter) -> Taken {
        let ranges = self.checkpoints.can_report(since);
        if ranges {
            w.skip(1);
            self.baseline.write_changes(w);
            if let Some(record) = &self.record {
                record.write_changes(w);
            }
        }
        self.baseline.checkpoint();
        if let Some(record) = &mut self.record {
            record.checkpoint();
        }
        Taken { generation: self.checkpoints.advance(), ranges }
    }

    /// The history's figures, `alpha`, the counters, then `windows`
    /// (recorded) and `serial` (1 while verdicts use the spread of window
    /// means, [`serial`]).
    fn describe(&self) -> Summary {
        self.baseline
            .describe(|s| s.num("alpha", self.alpha))
            .int("windows", self.record.as_ref().map_or(0, |r| r.windows()) as i64)
            .int("serial", i64::from(self.serial().is_some()))
    }
}

export_detector!(TTest);

#[cfg(test)]
mod tests {
    use tickwatch_plugin_api::{Detector, Value};

    use super::*;

    fn ttest(size: i64, alpha: f64) -> Result<TTest, String> {
        ttest_rebaseline(size, alpha, 0)
    }

    fn ttest_rebaseline(size: i64, alpha: f64, rebaseline: i64) -> Result<TTest, String> {
        TTest::new(&Options::new(vec![
            ("size".into(), Value::Int(size)),
            ("alpha".into(), Value::Double(alpha)),
            ("rebaseline".into(), Value::Int(rebaseline)),
        ]))
    }

    #[test]
    fn refuses_out_of_range_options_naming_them() {
        assert_eq!(ttest(1, 0.01).unwrap_err(), "option size must be > 1, got 1");
        assert!(ttest(10, 0.0).unwrap_err().contains("option alpha must be in (0, 1)"));
        assert!(ttest(10, 1.0).unwrap_err().contains("alpha"));
        assert!(ttest(10, f64::NAN).unwrap_err().contains("alpha"));
        let missing = TTest::new(&Options::new(vec![("size".into(), Value::Int(5))]));
        assert_eq!(missing.unwrap_err(), "option alpha is required");
    }

    #[test]
    fn first_window_seeds_then_anomalies_stay_out_of_history() {
        let mut d = ttest(10, 0.01).unwrap();
        assert_eq!(d.score(&[1.0, 2.0, 3.0]), None);
        let normal = d.score(&[2.0, 1.5, 2.5]).unwrap();
        assert!(!normal.anomalous && normal.pvalue > 0.5);
        assert_eq!(d.baseline().history().len(), 6);
        let odd = d.score(&[50.0, 51.0, 52.0, 50.5]).unwrap();
        assert!(odd.anomalous && odd.pvalue < 0.01);
        assert_eq!(d.baseline().history().len(), 6, "anomalous window must not join the history");
        assert_eq!(d.score(&[]), None);
    }

    #[test]
    fn constant_data_never_yields_nan() {
        let mut d = ttest(10, 0.01).unwrap();
        d.score(&[5.0, 5.0]);
        let same = d.score(&[5.0, 5.0, 5.0]).unwrap();
        assert_eq!((same.pvalue, same.stats[0].1), (1.0, 0.0));
        let shifted = d.score(&[6.0, 6.0]).unwrap();
        assert_eq!(shifted.pvalue, 0.0);
        assert_eq!(shifted.stats[0].1, -f64::MAX);
        assert!(shifted.anomalous);
    }

    #[test]
    fn single_value_windows_are_scored_like_scipy() {
        let mut d = ttest(100, 0.001).unwrap();
        d.score(&[1.0, 2.0, 3.0, 4.0]);
        let v = d.score(&[2.5]).unwrap();
        assert!(v.pvalue.is_finite() && v.stats[0].1.is_finite());
        // scipy: ttest_ind_from_stats(2.5, std([1,2,3,4],ddof=1), 4, 2.5, 0, 1) → t=0, p=1.
        assert_eq!(v.pvalue, 1.0);
    }

    #[test]
    fn save_load_round_trips_exactly() {
        let mut d = ttest(5, 0.05).unwrap();
        for w in [[1.0, 2.0, 3.0], [2.0, 2.5, 1.0], [1.5, 1.7, 2.2]] {
            d.score(&w);
        }
        let mut e = ttest(5, 0.05).unwrap();
        e.load(&d.save()).unwrap();
        assert_eq!(e, d);
        assert_eq!(d.score(&[1.0, 3.0]), e.score(&[1.0, 3.0]));
        assert!(e.load(&[9]).unwrap_err().contains("unknown ttest state format 9"));
        assert!(e.load(&d.save()[..10]).is_err());
    }

    /// The guide's use: a 300-value window against `size` 3600 changes the
    /// header, the slots it landed in and the record, a few kB of 29 kB;
    /// applied to the state last taken they give exactly `save`.
    #[test]
    fn a_window_reports_only_what_it_changed() {
        let mut d = ttest(3600, 0.001).unwrap();
        let window = |k: usize| -> Vec<f64> {
            (0..300).map(|i| 200.0 + ((i * 7 + k * 13) % 17) as f64 * 0.1).collect()
        };
        for k in 0..14 {
            d.score(&window(k));
        }
        let first = d.save_changes(tickwatch_plugin_api::changes::NO_GENERATION);
        assert!(first.ranges.is_none(), "a first take is the whole state");
        let mut held = d.save();
        d.score(&window(14));
        let changes = d.save_changes(first.generation);
        let ranges = changes.ranges.expect("ranges after a take");
        let whole = d.save().len();
        assert!(ranges.data.len() < 3_000, "{} of {whole} bytes", ranges.data.len());
        ranges.apply(&mut held);
        assert_eq!(held, d.save());
        let bytes = d.save();
        d.load(&bytes).unwrap();
        assert!(d.save_changes(changes.generation).ranges.is_none(), "after a load");
    }
}

#[cfg(test)]
mod serial_regime_tests {
    use tickwatch_plugin_api::{Detector, SummaryValue, Value};
    use tickwatch_stats::testkit::Gauss;

    use super::*;

    fn ttest(size: i64, rebaseline: i64) -> TTest {
        TTest::new(&Options::new(vec![
            ("size".into(), Value::Int(size)),
            ("alpha".into(), Value::Double(0.001)),
            ("rebaseline".into(), Value::Int(rebaseline)),
        ]))
        .unwrap()
    }

    fn entry(d: &TTest, name: &str) -> Option<SummaryValue> {
        d.describe().entries().iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    /// A detector in the serial regime saves and loads exactly (history,
    /// run, record and the regime's learning), with or without a run.
    #[test]
    fn the_serial_regime_round_trips_exactly() {
        for rebaseline in [0, 3] {
            let mut g = Gauss(4);
            let mut x = 0.0;
            let xs: Vec<f64> = (0..1500)
                .map(|_| {
                    x = 0.95 * x + g.window(1, 0.0, 1.0)[0];
                    x
                })
                .collect();
            let mut d = ttest(600, rebaseline);
            for end in 1..=xs.len() {
                d.score(&xs[end.saturating_sub(6)..end]);
            }
            assert!(d.serial().is_some(), "AR(1) 0.95 proves serial dependence");
            assert_eq!(entry(&d, "serial"), Some(SummaryValue::Int(1)));
            assert_eq!(entry(&d, "windows"), Some(SummaryValue::Int(100)));
            let bytes = d.save();
            assert_eq!(bytes[0], 2);
            let mut e = ttest(600, rebaseline);
            e.load(&bytes).unwrap();
            assert_eq!(e, d);
            assert_eq!(e.save(), bytes);
            let w = [5.0, 6.0, 5.5, 7.0, 6.5, 6.0];
            assert_eq!(d.score(&w), e.score(&w));
            assert!(e.load(&bytes[..bytes.len() - 1]).is_err());
            assert_eq!(e, d, "a refused load changes nothing");
        }
    }

    /// Constant data contradict nothing: the guide's regime, and the flat
    /// rule, hold.
    #[test]
    fn constant_data_keep_the_guides_regime() {
        let mut d = ttest(3600, 0);
        for _ in 0..100 {
            d.score(&[3.0; 6]);
        }
        assert_eq!(d.serial(), None);
        let v = d.score(&[3.0; 6]).unwrap();
        assert_eq!((v.pvalue, v.stats.len()), (1.0, 1));
    }
}

#[cfg(test)]
mod rebaseline_tests {
    use tickwatch_plugin_api::{ByteWriter, Detector, Value, Verdict};

    use super::*;

    fn ttest(size: i64, alpha: f64, rebaseline: i64) -> Result<TTest, String> {
        TTest::new(&Options::new(vec![
            ("size".into(), Value::Int(size)),
            ("alpha".into(), Value::Double(alpha)),
            ("rebaseline".into(), Value::Int(rebaseline)),
        ]))
    }

    /// Deterministic values around `mean`, spread about ±1.
    fn window(seed: u64, n: usize, mean: f64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                mean + ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 3.4
            })
            .collect()
    }

    fn rebaselined(v: &Verdict) -> Option<f64> {
        v.stats.iter().find(|(n, _)| n == "rebaselined").map(|(_, x)| *x)
    }

    #[test]
    fn the_option_defaults_to_off_and_the_guide_options_stay_required() {
        let specs = TTest::options();
        let names: Vec<(&str, Option<&Value>)> =
            specs.iter().map(|s| (s.name.as_str(), s.default.as_ref())).collect();
        assert_eq!(names, [("size", None), ("alpha", None), ("rebaseline", Some(&Value::Int(0)))]);
        assert_eq!(ttest(10, 0.01, -2).unwrap_err(), "option rebaseline must be >= 0, got -2");
    }

    #[test]
    fn off_emits_no_rebaselined_stat_and_saves_the_old_format() {
        let mut d = ttest(5, 0.05, 0).unwrap();
        for (i, w) in [[1.0, 2.0, 3.0], [2.0, 2.5, 1.0], [9.0, 9.5, 9.2]].iter().enumerate() {
            if let Some(v) = d.score(w) {
                assert_eq!(v.stats.len(), 1, "window {i}: {v:?}");
            }
        }
        // Format 1 as before the option existed: header, counters, the ring.
        let bytes = d.save();
        let mut want = ByteWriter::new();
        want.u8(1).u64(2).u64(1);
        d.baseline().history().write(&mut want);
        assert_eq!(bytes, want.finish());
    }

    #[test]
    fn a_sustained_level_shift_is_accepted_after_k_windows() {
        let mut d = ttest(3600, 0.001, 3).unwrap();
        for i in 0..12 {
            d.score(&window(i, 300, 90.0));
        }
        let flags: Vec<(bool, Option<f64>)> = (0..6)
            .map(|i| {
                let v = d.score(&window(100 + i, 300, 92.0)).unwrap();
                (v.anomalous, rebaselined(&v))
            })
            .collect();
        assert_eq!(
            flags,
            [
                (true, Some(0.0)),
                (true, Some(0.0)),
                (true, Some(1.0)),
                (false, Some(0.0)),
                (false, Some(0.0)),
                (false, Some(0.0))
            ]
        );
        assert_eq!((d.baseline().rebaselines(), d.baseline().history().len()), (1, 1800));
        assert!((d.baseline().history().mean() - 92.0).abs() < 0.1);

        // A normal window ends a run.
        let mut d = ttest(3600, 0.001, 2).unwrap();
        for i in 0..6 {
            d.score(&window(i, 300, 0.0));
        }
        assert!(d.score(&window(50, 300, 2.0)).unwrap().anomalous);
        assert_eq!((d.baseline().streak(), d.baseline().candidate().len()), (1, 300));
        assert!(!d.score(&window(51, 300, 0.0)).unwrap().anomalous);
        assert_eq!((d.baseline().streak(), d.baseline().candidate().len()), (0, 0));
    }

    #[test]
    fn on_round_trips_exactly_and_refuses_state_of_the_other_setting() {
        let mut d = ttest(1000, 0.001, 3).unwrap();
        for i in 0..10 {
            d.score(&window(i, 300, if i < 8 { 0.0 } else { 3.0 }));
        }
        assert_eq!(d.baseline().streak(), 2);
        let bytes = d.save();
        let mut e = ttest(1000, 0.001, 3).unwrap();
        e.load(&bytes).unwrap();
        assert_eq!(e, d);
        assert_eq!(e.save(), bytes);
        let w = window(77, 300, 3.0);
        assert_eq!(d.score(&w), e.score(&w));
        assert_eq!(d.save(), e.save());
        let mut off = ttest(1000, 0.001, 0).unwrap();
        assert!(off.load(&bytes).unwrap_err().contains("trailing bytes"));
        let mut short = ttest(1000, 0.001, 2).unwrap();
        short.load(&d.save()).unwrap();
        let mut d = ttest(1000, 0.001, 3).unwrap();
        d.score(&window(1, 300, 0.0));
        d.score(&window(2, 300, 0.0));
        d.score(&window(3, 300, 5.0));
        d.score(&window(4, 300, 5.0));
        assert_eq!(d.baseline().streak(), 2);
        assert!(short.load(&d.save()).unwrap_err().contains("rebaseline 2"));
    }
}

#[cfg(test)]
mod regressions {
    use tickwatch_plugin_api::{Detector, Value};

    use super::*;

    fn guide() -> TTest {
        TTest::new(&Options::new(vec![
            ("size".into(), Value::Int(3600)),
            ("alpha".into(), Value::Double(0.001)),
            ("rebaseline".into(), Value::Int(0)),
        ]))
        .unwrap()
    }

    /// Issue 9: `|window().period(30m).every(5m)` starts with a window of one
    /// value. As the whole history it has "stddev 0", and with a sliding
    /// window the detector went on to flag every window for ever.
    #[test]
    fn a_one_value_first_window_does_not_lock_the_detector() {
        let mut d = guide();
        let mut s: u64 = 7;
        let mut noise = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            10.0 + ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 3.4
        };
        let xs: Vec<f64> = (0..400).map(|_| noise()).collect();
        assert_eq!(d.score(&xs[..1]), None, "one value is no history");
        let mut flagged = 0;
        for end in 2..xs.len() {
            if let Some(v) = d.score(&xs[end.saturating_sub(6)..end]) {
                flagged += usize::from(v.anomalous);
            }
        }
        assert!(flagged <= 2, "{flagged} of 398 windows flagged");
    }

    /// Issue 9: a flat start (a counter at zero) then one differing window
    /// was "certainly changed", kept out, and so was every window after.
    #[test]
    fn a_flat_start_learns_its_first_change() {
        let mut d = guide();
        d.score(&[0.0; 6]);
        assert!(d.score(&[0.0, 0.0, 0.0, 0.0, 0.0, 1.0]).is_some());
        assert_eq!(d.baseline().history().len(), 12, "a flat history takes every window");
        for _ in 0..50 {
            let v = d.score(&[0.0; 6]).unwrap();
            assert!(!v.anomalous, "{v:?}");
        }
    }

    /// `sum / n` of 300 copies of 0.1 is not 0.1: the window mean differed
    /// from the history mean by one rounding step and every window of a
    /// constant 0.1 series came out "certainly changed" (p ≈ 6e-47).
    #[test]
    fn constant_series_of_an_inexact_value_is_not_flagged() {
        let mut d = TTest::new(&Options::new(vec![
            ("size".into(), Value::Int(3600)),
            ("alpha".into(), Value::Double(0.001)),
            ("rebaseline".into(), Value::Int(0)),
        ]))
        .unwrap();
        assert_eq!(d.score(&[0.1; 300]), None);
        for _ in 0..20 {
            let v = d.score(&[0.1; 300]).unwrap();
            assert!(!v.anomalous && v.pvalue == 1.0, "{v:?}");
        }
    }

    /// Round 5: full windows of 300 values replace the oldest 300 of the
    /// history in one run update. A constant series keeps exactly 0
    /// variance through the ring's wrap and the exact recomputations (every
    /// 3600 values), so its windows stay at p = 1 and the flat rule holds;
    /// a step then is "certainly changed" as before, and joins (flat rule).
    #[test]
    fn a_constant_series_in_full_windows_stays_exactly_flat() {
        let mut d = TTest::new(&Options::new(vec![
            ("size".into(), Value::Int(3600)),
            ("alpha".into(), Value::Double(0.001)),
            ("rebaseline".into(), Value::Int(0)),
        ]))
        .unwrap();
        d.score(&[0.1; 300]);
        for i in 0..40 {
            let v = d.score(&[0.1; 300]).unwrap();
            assert!(!v.anomalous && v.pvalue == 1.0 && v.stats[0].1 == 0.0, "{i}: {v:?}");
            assert_eq!(d.baseline().history().mean_variance(), Some((0.1, 0.0)), "{i}");
        }
        let step = d.score(&[0.2; 300]).unwrap();
        assert!(step.anomalous && step.pvalue == 0.0, "{step:?}");
        let (mean, var) = d.baseline().history().mean_variance().unwrap();
        assert!(mean > 0.1 && var > 0.0, "the flat history took the step: {mean} {var}");
    }
}
