//! A detector whose `score` calls a function no library defines, for the
//! engine's end-to-end tests: the loader must refuse it when it loads it
//! (every symbol bound at `dlopen`), not fail mid-stream at the first window.

use tickwatch_plugin_api::{Detector, OptionSpec, Options, Summary, Verdict, export_detector};

unsafe extern "C" {
    /// Defined nowhere: the `.so` links with it unresolved.
    fn tickwatch_test_missing_symbol() -> f64;
}

pub struct Unresolved;

impl Detector for Unresolved {
    const NAME: &'static str = "unresolved";
    const VERSION: &'static str = "0.1.0";
    const STATE_VERSION: u32 = 1;

    fn options() -> Vec<OptionSpec> {
        Vec::new()
    }

    fn new(_options: &Options) -> Result<Self, String> {
        Ok(Unresolved)
    }

    fn score(&mut self, _window: &[f64]) -> Option<Verdict> {
        // SAFETY: never runs: the loader refuses this library before any call.
        let pvalue = unsafe { tickwatch_test_missing_symbol() };
        Some(Verdict { pvalue, anomalous: false, stats: Vec::new() })
    }

    fn save(&self) -> Vec<u8> {
        Vec::new()
    }

    fn load(&mut self, _state: &[u8]) -> Result<(), String> {
        Ok(())
    }

    fn describe(&self) -> Summary {
        Summary::new()
    }
}

export_detector!(Unresolved);
