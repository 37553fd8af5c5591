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
//! Zero standard error (both history and window constant): the guide's
//! Python produces NaN there. We define it instead: equal means give
//! `t = 0, pvalue = 1` (no evidence of change); different means give
//! `pvalue = 0` and `t = ±f64::MAX` (a certain change, kept finite because
//! InfluxDB refuses infinite fields).

mod welch;
mod window;

use tickwatch_plugin_api::{
    ByteReader, ByteWriter, Detector, OptionSpec, Options, Summary, ValueKind, Verdict,
    export_detector,
};

pub use welch::{WelchResult, welch_from_stats};
use window::{MovingWindow, mean_var};

/// State bytes format version (first byte of [`Detector::save`]).
const STATE_FORMAT: u8 = 1;

/// The t-test detector.
#[derive(Debug, Clone, PartialEq)]
pub struct TTest {
    alpha: f64,
    history: MovingWindow,
    windows_seen: u64,
    windows_anomalous: u64,
}

impl Detector for TTest {
    const NAME: &'static str = "ttest";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    /// Format 1: see `save`. Bump when a format change would misread old state.
    const STATE_VERSION: u32 = STATE_FORMAT as u32;

    fn options() -> Vec<OptionSpec> {
        vec![
            OptionSpec::required(
                "size",
                ValueKind::Int,
                "history length in values (a moving window of the last `size` values); > 1",
            ),
            OptionSpec::required(
                "alpha",
                ValueKind::Double,
                "significance level in (0, 1): pvalue < alpha is anomalous, and only windows \
                 with pvalue > alpha join the history",
            ),
        ]
    }

    fn new(options: &Options) -> Result<Self, String> {
        let size = options.int("size")?;
        if size <= 1 {
            return Err(format!("option size must be > 1, got {size}"));
        }
        let size = usize::try_from(size).map_err(|_| format!("option size {size} is too large"))?;
        let alpha = options.double("alpha")?;
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(format!("option alpha must be in (0, 1), got {alpha}"));
        }
        Ok(Self { alpha, history: MovingWindow::new(size), windows_seen: 0, windows_anomalous: 0 })
    }

    fn score(&mut self, window: &[f64]) -> Option<Verdict> {
        if window.is_empty() {
            return None;
        }
        if self.history.is_empty() {
            window.iter().for_each(|&x| self.history.push(x));
            return None;
        }
        let (batch_mean, batch_var) = mean_var(window);
        let r = welch_from_stats(
            self.history.mean(),
            self.history.variance(),
            self.history.len() as f64,
            batch_mean,
            batch_var,
            window.len() as f64,
        );
        self.windows_seen += 1;
        let anomalous = r.pvalue < self.alpha;
        if anomalous {
            self.windows_anomalous += 1;
        }
        if r.pvalue > self.alpha {
            window.iter().for_each(|&x| self.history.push(x));
        }
        Some(Verdict { pvalue: r.pvalue, anomalous, stats: vec![("t".into(), r.t)] })
    }

    fn save(&self) -> Vec<u8> {
        let mut w = ByteWriter::new();
        w.u8(STATE_FORMAT).u64(self.windows_seen).u64(self.windows_anomalous);
        self.history.write(&mut w);
        w.finish()
    }

    fn load(&mut self, state: &[u8]) -> Result<(), String> {
        let mut r = ByteReader::new(state);
        let format = r.u8()?;
        if format != STATE_FORMAT {
            return Err(format!(
                "unknown ttest state format {format} (this build reads {STATE_FORMAT})"
            ));
        }
        let windows_seen = r.u64()?;
        let windows_anomalous = r.u64()?;
        let history = MovingWindow::read(&mut r)?;
        r.finish()?;
        if history.cap() != self.history.cap() {
            return Err(format!(
                "state was saved with size {}, this detector has size {}",
                history.cap(),
                self.history.cap()
            ));
        }
        self.history = history;
        self.windows_seen = windows_seen;
        self.windows_anomalous = windows_anomalous;
        Ok(())
    }

    fn describe(&self) -> Summary {
        Summary::new()
            .int("n", self.history.len() as i64)
            .num("mean", self.history.mean())
            .num("stddev", self.history.variance().sqrt())
            .int("size", self.history.cap() as i64)
            .num("alpha", self.alpha)
            .int("windows_seen", self.windows_seen as i64)
            .int("windows_anomalous", self.windows_anomalous as i64)
    }
}

export_detector!(TTest);

#[cfg(test)]
mod tests {
    use tickwatch_plugin_api::Value;

    use super::*;

    fn ttest(size: i64, alpha: f64) -> Result<TTest, String> {
        TTest::new(&Options::new(vec![
            ("size".into(), Value::Int(size)),
            ("alpha".into(), Value::Double(alpha)),
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
        assert_eq!(d.history.len(), 6);
        let odd = d.score(&[50.0, 51.0, 52.0, 50.5]).unwrap();
        assert!(odd.anomalous && odd.pvalue < 0.01);
        assert_eq!(d.history.len(), 6, "anomalous window must not join the history");
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
}

#[cfg(test)]
mod extreme_tests {
    use super::*;

    #[test]
    fn overflowing_sums_give_no_evidence_instead_of_nan() {
        let r = welch_from_stats(f64::MAX, f64::INFINITY, 10.0, -f64::MAX, f64::INFINITY, 10.0);
        assert_eq!((r.t, r.pvalue), (0.0, 1.0));
        let r = welch_from_stats(1.0, f64::INFINITY, 10.0, 2.0, 1.0, 10.0);
        assert!(r.pvalue.is_finite() && r.t.is_finite());
        assert!(r.pvalue > 0.99);
    }
}
