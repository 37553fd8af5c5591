//! A plugin as built before `min_window` was appended to the ABI 1
//! descriptor: its `descriptor_size` stops at `free_buf`. The bytes past it
//! say `min_window = 1`, which the host must not read: it loads the plugin
//! and takes the default, 2 (a stream node without `.period()` is refused).

use tickwatch_plugin_api::abi::{BASE_DESCRIPTOR_SIZE, PluginDescriptor, descriptor};
use tickwatch_plugin_api::{Detector, OptionSpec, Options, Summary, Verdict};

/// Says every window is normal.
pub struct Old;

impl Detector for Old {
    const NAME: &'static str = "old";
    const VERSION: &'static str = "0.1.0";
    const STATE_VERSION: u32 = 1;
    const MIN_WINDOW: u32 = 1;

    fn options() -> Vec<OptionSpec> {
        Vec::new()
    }
    fn new(_options: &Options) -> Result<Self, String> {
        Ok(Old)
    }
    fn score(&mut self, window: &[f64]) -> Option<Verdict> {
        (!window.is_empty()).then(|| Verdict { pvalue: 0.5, anomalous: false, stats: Vec::new() })
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

static DESCRIPTOR: PluginDescriptor = {
    let mut d = descriptor::<Old>();
    d.descriptor_size = BASE_DESCRIPTOR_SIZE as u32;
    d
};

/// The tickwatch entry symbol, with the older, shorter descriptor size.
#[unsafe(no_mangle)]
pub extern "C" fn tickwatch_detector_entry() -> *const PluginDescriptor {
    &DESCRIPTOR
}
