//! A plugin as built before ABI 1 gained the optional
//! `tickwatch_detector_state_options` symbol: it exports only the entry
//! symbol (no `export_detector!`). It declares `limit` scoring-only, but
//! such a plugin cannot say so, so the host must treat every option as
//! shaping its state, as its saved state was fingerprinted.

use tickwatch_plugin_api::abi::{PluginDescriptor, descriptor};
use tickwatch_plugin_api::{Detector, OptionSpec, Options, Summary, Value, Verdict};

pub struct Old {
    windows: u64,
}

impl Detector for Old {
    const NAME: &'static str = "oldabi";
    const VERSION: &'static str = "0.1.0";
    const STATE_VERSION: u32 = 1;

    fn options() -> Vec<OptionSpec> {
        vec![
            OptionSpec::with_default("size", Value::Int(10), "history length"),
            OptionSpec::with_default("limit", Value::Double(0.5), "threshold").scoring_only(),
        ]
    }

    fn new(_options: &Options) -> Result<Self, String> {
        Ok(Self { windows: 0 })
    }

    fn score(&mut self, _window: &[f64]) -> Option<Verdict> {
        self.windows += 1;
        Some(Verdict { pvalue: 0.5, anomalous: false, stats: Vec::new() })
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

/// The entry symbol only, as `export_detector!` expanded before.
#[unsafe(no_mangle)]
pub extern "C" fn tickwatch_detector_entry() -> *const PluginDescriptor {
    static DESCRIPTOR: PluginDescriptor = descriptor::<Old>();
    &DESCRIPTOR
}
