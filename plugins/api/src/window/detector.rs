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
}

impl<T: BaselineTest> BaselineDetector<T> {
    /// `test` at significance level `alpha` against `baseline` (not `new`,
    /// which is [`Detector::new`]).
    pub fn from_parts(test: T, alpha: f64, baseline: Baseline<T::History>) -> Self {
        Self { test, alpha, baseline }
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
        self.baseline.load(T::FORMAT.reader(state)?)
    }

    fn describe(&self) -> Summary {
        self.baseline.describe(|s| self.test.settings(s, self.alpha))
    }
}
