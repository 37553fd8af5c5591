//! A detector that misbehaves on demand, for the engine's end-to-end tests:
//! `.mode('panic')` panics on the third window, `.mode('nan')` returns a NaN
//! p-value, `.mode('ok')` (default) answers p = 0.5.

use tickwatch_plugin_api::{Detector, OptionSpec, Options, Summary, Value, Verdict, export_detector};

pub struct Faulty {
    mode: String,
    windows: u64,
}

impl Detector for Faulty {
    const NAME: &'static str = "faulty";
    const VERSION: &'static str = "0.1.0";
    const STATE_VERSION: u32 = 1;

    fn options() -> Vec<OptionSpec> {
        vec![OptionSpec::with_default("mode", Value::String("ok".into()), "ok, panic or nan")]
    }

    fn new(options: &Options) -> Result<Self, String> {
        let mode = options.string("mode")?.to_string();
        if !["ok", "panic", "nan"].contains(&mode.as_str()) {
            return Err(format!("option mode must be ok, panic or nan, got {mode}"));
        }
        Ok(Self { mode, windows: 0 })
    }

    fn score(&mut self, _window: &[f64]) -> Option<Verdict> {
        self.windows += 1;
        if self.mode == "panic" && self.windows == 3 {
            panic!("faulty detector panics on window {}", self.windows);
        }
        let pvalue = if self.mode == "nan" { f64::NAN } else { 0.5 };
        Some(Verdict { pvalue, anomalous: false, stats: vec![("w".into(), self.windows as f64)] })
    }

    fn save(&self) -> Vec<u8> {
        self.windows.to_le_bytes().to_vec()
    }

    fn load(&mut self, state: &[u8]) -> Result<(), String> {
        let b: [u8; 8] = state.try_into().map_err(|_| "need 8 bytes".to_string())?;
        self.windows = u64::from_le_bytes(b);
        Ok(())
    }

    fn describe(&self) -> Summary {
        Summary::new().int("windows", self.windows as i64)
    }
}

export_detector!(Faulty);
