//! `BaselineDetector`: a whole [`Detector`] made of a [`BaselineTest`] (the
//! statistical test and its options), a significance level and a
//! [`Baseline`]. A detector that scores each window against a baseline
//! implements `BaselineTest` only; scoring, saving, loading and describing
//! are written here once, for every such detector.
//!
//! ```
//! use tickwatch_plugin_api::export_detector;
//! use tickwatch_plugin_api::window::{BaselineDetector, BaselineTest, MovingWindow, mean};
//! use tickwatch_plugin_api::{Options, StateFormat};
//!
//! /// Flags a window whose mean is more than one history stddev off.
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct OneSigma;
//!
//! impl BaselineTest for OneSigma {
//!     const FORMAT: StateFormat = StateFormat::new("onesigma", 1);
//!     const VERSION: &'static str = "0.1.0";
//!     type History = MovingWindow;
//!
//!     fn build(options: &Options) -> Result<BaselineDetector<Self>, String> {
//!         BaselineDetector::from_presets(OneSigma, options)
//!     }
//!
//!     fn test(&self, history: &MovingWindow, window: &[f64]) -> (f64, Vec<(String, f64)>) {
//!         let off = (mean(window) - history.mean()).abs() / history.variance().sqrt();
//!         (if off > 1.0 { 0.0 } else { 1.0 }, vec![])
//!     }
//! }
//!
//! pub type OneSigmaDetector = BaselineDetector<OneSigma>;
//! export_detector!(OneSigmaDetector);
//! ```

use std::fmt::Debug;

use super::{Baseline, History, MovingWindow};
use crate::changes::{ChangeWriter, Checkpoints, StateChanges, Taken};
use crate::options::preset;
use crate::{Detector, OptionSpec, Options, StateFormat, Summary, Verdict};

/// The part of a baseline detector that is its own: the test, its options
/// and its state format. [`BaselineDetector`] makes it a [`Detector`].
pub trait BaselineTest: Debug + Clone + PartialEq + Send + 'static {
    /// The detector's name ([`Detector::NAME`]) and state format
    /// ([`Detector::STATE_VERSION`] is its version).
    const FORMAT: StateFormat;
    /// [`Detector::VERSION`].
    const VERSION: &'static str;
    /// [`Detector::MIN_WINDOW`] (default 2).
    const MIN_WINDOW: u32 = 2;
    /// What the baseline keeps.
    type History: History + Debug + PartialEq + Send + 'static;

    /// [`Detector::options`]; by default the presets `size` (3600),
    /// `alpha` (0.001) and `rebaseline`, as
    /// [`BaselineDetector::from_presets`] reads them. `alpha` is
    /// [scoring-only](OptionSpec::scoring_only): the [`Baseline`]'s saved
    /// state (history, run, counters) is valid under any alpha; `size` and
    /// `rebaseline` shape it.
    fn options() -> Vec<OptionSpec> {
        vec![
            preset::size(Some(3600)),
            preset::alpha(Some(0.001)).scoring_only(),
            preset::rebaseline(),
        ]
    }

    /// [`Detector::new`]: the detector for validated options.
    fn build(options: &Options) -> Result<BaselineDetector<Self>, String>;

    /// The p-value and statistics of a window's finite values (at least
    /// one) against the history (warmed up).
    fn test(&self, history: &Self::History, window: &[f64]) -> (f64, Vec<(String, f64)>);

    /// Adds the detector's settings to its description, between the
    /// history's figures and the counters; by default `alpha`.
    fn settings(&self, summary: Summary, alpha: f64) -> Summary {
        summary.num("alpha", alpha)
    }
}

/// A [`Detector`] that scores each window with `T`'s test against a
/// [`Baseline`] (see the module docs). Its state is `T::FORMAT`'s byte,
/// then the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineDetector<T: BaselineTest> {
    test: T,
    alpha: f64,
    baseline: Baseline<T::History>,
    checkpoints: Checkpoints,
}

impl<T: BaselineTest> BaselineDetector<T> {
    /// `test` at significance level `alpha` against `baseline` (not `new`,
    /// which is [`Detector::new`]).
    pub fn from_parts(test: T, alpha: f64, baseline: Baseline<T::History>) -> Self {
        Self { test, alpha, baseline, checkpoints: Checkpoints::new() }
    }

    /// The test.
    pub fn test(&self) -> &T {
        &self.test
    }

    /// The significance level: `pvalue < alpha` is anomalous.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The baseline.
    pub fn baseline(&self) -> &Baseline<T::History> {
        &self.baseline
    }
}

impl<T: BaselineTest<History = MovingWindow>> BaselineDetector<T> {
    /// `test` over a [`Baseline::new`] built from the presets, read in this
    /// order: `size`, `alpha`, `rebaseline`.
    pub fn from_presets(test: T, options: &Options) -> Result<Self, String> {
        let size = options.length("size")?;
        let alpha = options.probability("alpha")?;
        let rebaseline = options.count("rebaseline")?;
        Ok(Self::from_parts(test, alpha, Baseline::new(size, rebaseline)))
    }
}

impl<T: BaselineTest> Detector for BaselineDetector<T> {
    const NAME: &'static str = T::FORMAT.detector();
    const VERSION: &'static str = T::VERSION;
    const STATE_VERSION: u32 = T::FORMAT.version() as u32;
    const MIN_WINDOW: u32 = T::MIN_WINDOW;

    fn options() -> Vec<OptionSpec> {
        T::options()
    }

    fn new(options: &Options) -> Result<Self, String> {
        T::build(options)
    }

    fn score(&mut self, window: &[f64]) -> Option<Verdict> {
        let test = &self.test;
        self.baseline.score(window, self.alpha, |history, values| test.test(history, values))
    }

    fn save(&self) -> Vec<u8> {
        self.baseline.save(T::FORMAT.writer())
    }

    fn load(&mut self, state: &[u8]) -> Result<(), String> {
        self.checkpoints.reset();
        self.baseline.load(T::FORMAT.reader(state)?)
    }

    /// The format byte never changes; the baseline reports its own.
    fn save_changes(&mut self, since: u64) -> StateChanges {
        let mut w = ChangeWriter::new();
        self.save_changes_into(since, &mut w).into_changes(w)
    }

    fn save_changes_into(&mut self, since: u64, w: &mut ChangeWriter) -> Taken {
        let ranges = self.checkpoints.can_report(since);
        if ranges {
            w.skip(1);
            self.baseline.write_changes(w);
        }
        self.baseline.checkpoint();
        Taken { generation: self.checkpoints.advance(), ranges }
    }

    fn describe(&self) -> Summary {
        self.baseline.describe(|s| self.test.settings(s, self.alpha))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::NO_GENERATION;
    use crate::window::{Joins, Layout, Quantised, Windows, mean};

    /// Flags a window whose mean is more than three history stddevs off.
    #[derive(Debug, Clone, PartialEq)]
    struct ThreeSigma;

    impl BaselineTest for ThreeSigma {
        const FORMAT: StateFormat = StateFormat::new("threesigma", 1);
        const VERSION: &'static str = "0.0.1";
        type History = MovingWindow;

        fn build(_: &Options) -> Result<BaselineDetector<Self>, String> {
            Err("built by hand".into())
        }

        fn test(&self, history: &MovingWindow, window: &[f64]) -> (f64, Vec<(String, f64)>) {
            let sd = history.variance().sqrt().max(1e-9);
            let off = (mean(window) - history.mean()).abs() / sd;
            (if off > 3.0 { 0.0 } else { 0.5 }, vec![])
        }
    }

    /// The same test over the history zscore and levelspread keep.
    #[derive(Debug, Clone, PartialEq)]
    struct Robust;

    impl BaselineTest for Robust {
        const FORMAT: StateFormat = StateFormat::new("robust", 1);
        const VERSION: &'static str = "0.0.1";
        type History = Quantised<Windows<MovingWindow>>;

        fn build(_: &Options) -> Result<BaselineDetector<Self>, String> {
            Err("built by hand".into())
        }

        fn test(&self, history: &Self::History, window: &[f64]) -> (f64, Vec<(String, f64)>) {
            ThreeSigma.test(history, window)
        }
    }

    fn windows(n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut s = seed;
        (0..n)
            .map(|k| {
                let level = if (k / 25) % 4 == 3 { 80.0 } else { 20.0 };
                (0..300)
                    .map(|_| {
                        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        level + (s >> 40) as f64 / (1u64 << 24) as f64
                    })
                    .collect()
            })
            .collect()
    }

    /// Takes changes after every window; returns the largest ranges (bytes)
    /// once the history is full, checking the host's copy every time.
    fn ranges_track_save<T: BaselineTest>(mut d: BaselineDetector<T>) -> usize {
        let mut held = Vec::new();
        let mut since = NO_GENERATION;
        let mut largest = 0;
        for (k, w) in windows(120, 7).iter().enumerate() {
            let before = d.baseline().rebaselines();
            d.score(w);
            let rebuilt = d.baseline().rebaselines() != before;
            let c = d.save_changes(since);
            since = c.generation;
            match c.ranges {
                Some(r) => {
                    if k > 20 && !rebuilt {
                        largest = largest.max(r.data.len());
                    }
                    r.apply(&mut held);
                }
                None => held = d.save(),
            }
            assert_eq!(held, d.save(), "window {k}");
        }
        largest
    }

    #[test]
    fn a_full_ring_reports_a_window_of_slots_not_the_history() {
        for layout in [Layout::HistoryFirst, Layout::CountersFirst] {
            for rebaseline in [0, 5] {
                let b = Baseline::new(3600, rebaseline).with_layout(layout);
                let d = BaselineDetector::from_parts(ThreeSigma, 0.01, b);
                let full = d.save().len();
                let largest = ranges_track_save(d);
                // A window of 300 values, the header and the counters; a
                // run of anomalous windows adds its own ring's slots.
                assert!(largest <= 2 * 300 * 8 + 200, "{largest} of {full} bytes");
                assert!(largest >= 300 * 8, "{largest}");
            }
        }
        let h = Quantised::new(Windows::new(MovingWindow::new(3600), 3600));
        let b = Baseline::of(h, 0).with_joins(Joins::NotAnomalous);
        let largest = ranges_track_save(BaselineDetector::from_parts(Robust, 0.01, b));
        assert!(largest <= 300 * 8 + 1000, "{largest}");
    }

    #[test]
    fn a_stale_generation_or_a_load_asks_for_the_whole_state() {
        let b = Baseline::new(100, 0);
        let mut d = BaselineDetector::from_parts(ThreeSigma, 0.01, b);
        d.score(&[1.0, 2.0]);
        let first = d.save_changes(NO_GENERATION);
        assert!(first.ranges.is_none());
        d.score(&[1.5]);
        let second = d.save_changes(first.generation);
        assert!(second.ranges.is_some());
        d.score(&[1.5]);
        assert!(d.save_changes(first.generation).ranges.is_none(), "a missed commit");
        let g = d.save_changes(NO_GENERATION).generation;
        let bytes = d.save();
        d.load(&bytes).unwrap();
        assert!(d.save_changes(g).ranges.is_none(), "loaded");
    }
}
