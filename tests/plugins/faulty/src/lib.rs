//! A detector that misbehaves on demand, for the engine's end-to-end tests:
//! `.mode('panic')` panics on the third window, `.mode('nan')` returns a NaN
//! p-value, `.mode('slow')` sleeps `.delayMs(n)` ms (default 5) per window
//! before answering p = 0.5 (a detector slower than the sender, for the
//! backpressure tests), `.mode('ok')` (default) answers p = 0.5.

use tickwatch_plugin_api::{
    Detector, OptionSpec, Options, Summary, Value, Verdict, export_detector,
};

pub struct Faulty {
    mode: String,
    delay: std::time::Duration,
    windows: u64,
}

impl Detector for Faulty {
    const NAME: &'static str = "faulty";
    const VERSION: &'static str = "0.1.0";
    const STATE_VERSION: u32 = 1;

    fn options() -> Vec<OptionSpec> {
        vec![
            OptionSpec::with_default("mode", Value::String("ok".into()), "ok, panic, nan or slow"),
            OptionSpec::with_default("delayMs", Value::Int(5), "slow mode: ms per window"),
        ]
    }

    fn new(options: &Options) -> Result<Self, String> {
        let mode = options.string("mode")?.to_string();
        if !["ok", "panic", "nan", "slow"].contains(&mode.as_str()) {
            return Err(format!("option mode must be ok, panic, nan or slow, got {mode}"));
        }
        let delay_ms = options.int_in("delayMs", 0, 600_000)?;
        let delay = std::time::Duration::from_millis(delay_ms as u64);
        Ok(Self { mode, delay, windows: 0 })
    }

    fn score(&mut self, _window: &[f64]) -> Option<Verdict> {
        self.windows += 1;
        if self.mode == "panic" && self.windows == 3 {
            panic!("faulty detector panics on window {}", self.windows);
        }
        if self.mode == "slow" {
            std::thread::sleep(self.delay);
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
