//! Write tickwatch detector plugins.
//!
//! A detector is a type implementing [`Detector`]. tickwatch keeps one
//! instance per (Kapacitor group, tracked field), hands it each window's
//! values, and emits a point for every [`Verdict`] it returns. Build the crate
//! as a `cdylib`, call [`export_detector!`] once, and drop the `.so` into
//! tickwatch's plugin directory.
//!
//! # A complete minimal detector
//!
//! ```
//! use tickwatch_plugin_api::{
//!     ByteReader, ByteWriter, Detector, OptionSpec, Options, Summary, Value, Verdict,
//!     export_detector,
//! };
//!
//! /// Flags a window whose mean is above a fixed threshold.
//! pub struct Threshold {
//!     limit: f64,
//!     windows: u64,
//! }
//!
//! impl Detector for Threshold {
//!     const NAME: &'static str = "threshold";
//!     const VERSION: &'static str = "0.1.0";
//!     const STATE_VERSION: u32 = 1;
//!
//!     fn options() -> Vec<OptionSpec> {
//!         vec![OptionSpec::with_default("limit", Value::Double(100.0), "alert above this mean")]
//!     }
//!
//!     fn new(options: &Options) -> Result<Self, String> {
//!         let limit = options.double("limit")?;
//!         if !limit.is_finite() {
//!             return Err("option limit must be finite".into());
//!         }
//!         Ok(Self { limit, windows: 0 })
//!     }
//!
//!     fn score(&mut self, window: &[f64]) -> Option<Verdict> {
//!         // The host sends finite values only; staying total anyway keeps
//!         // the conformance suite (and direct callers) happy.
//!         let finite: Vec<f64> = window.iter().copied().filter(|x| x.is_finite()).collect();
//!         let mean = finite.iter().sum::<f64>() / finite.len() as f64;
//!         if finite.is_empty() || !mean.is_finite() {
//!             return None;
//!         }
//!         self.windows += 1;
//!         let anomalous = mean > self.limit;
//!         Some(Verdict {
//!             pvalue: if anomalous { 0.0 } else { 1.0 },
//!             anomalous,
//!             stats: vec![("mean".into(), mean)],
//!         })
//!     }
//!
//!     fn save(&self) -> Vec<u8> {
//!         let mut w = ByteWriter::new();
//!         w.u64(self.windows);
//!         w.finish()
//!     }
//!
//!     fn load(&mut self, state: &[u8]) -> Result<(), String> {
//!         let mut r = ByteReader::new(state);
//!         self.windows = r.u64()?;
//!         r.finish()?;
//!         Ok(())
//!     }
//!
//!     fn describe(&self) -> Summary {
//!         Summary::new().num("limit", self.limit).int("windows", self.windows as i64)
//!     }
//! }
//!
//! export_detector!(Threshold);
//! ```
//!
//! A detector that scores each window against a history of normal values
//! can leave the bookkeeping to [`window`]: [`window::Baseline`] (history,
//! rebaseline, saving) and [`window::BaselineDetector`] (the whole
//! [`Detector`] around a test of yours).
//!
//! # Stability
//! The boundary is versioned by [`abi::ABI_VERSION`]; see `docs/plugin-abi.md`
//! in the tickwatch repository for the promise that goes with it.

pub mod abi;
pub mod changes;
pub mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod options;
pub mod verdict;
pub mod window;

pub use changes::{ChangeWriter, Checkpoints, Ranges, StateChanges};
pub use codec::{ByteReader, ByteWriter, CodecError, StateFormat};
pub use options::{OptionSpec, Options, Value, ValueKind};
pub use verdict::{Summary, SummaryValue, Verdict};

/// An anomaly detector: one instance per (group, field).
///
/// Calls on one instance never overlap; different instances may run on
/// different threads, hence `Send`.
pub trait Detector: Sized + Send + 'static {
    /// The name users pass to `--detector`. Lowercase, no spaces.
    const NAME: &'static str;
    /// The detector's version (semver), shown to users and kept beside its
    /// state for inspection. Changing it does not invalidate saved state.
    const VERSION: &'static str;
    /// The version of what [`Detector::save`] writes. State saved under
    /// another `STATE_VERSION` is never handed to [`Detector::load`]: the
    /// host starts that field fresh instead. Bump it only when old state
    /// would be misread; releases that keep the format keep their history.
    const STATE_VERSION: u32;
    /// The fewest values in a window the detector judges meaningfully. `1`
    /// says it scores single values (a z-score against a baseline does):
    /// on stream edges without `.period()` tickwatch then scores every
    /// point. The default `2` (a test of a window's spread, as Welch's
    /// t-test, needs two values) makes such a node refuse Init and ask for
    /// `.period()`. Host-side only: windows of fewer values still reach
    /// [`Detector::score`] (a sliding window's first window may hold one).
    const MIN_WINDOW: u32 = 2;

    /// The options a TICKscript may set (besides tickwatch's own `field` and
    /// `fieldTag`). Each takes exactly one argument of the declared kind.
    fn options() -> Vec<OptionSpec>;

    /// Builds a detector from validated options. Return an error naming the
    /// option and the reason for anything out of range; Kapacitor shows it
    /// when the task fails to start.
    fn new(options: &Options) -> Result<Self, String>;

    /// Scores one window of finite values (NaN and infinities are filtered
    /// out by the host) and updates the detector's state. `None` means "no
    /// verdict yet" (warming up, or an empty window); nothing is emitted.
    fn score(&mut self, window: &[f64]) -> Option<Verdict>;

    /// The detector's whole state as bytes, for snapshots and persistence.
    fn save(&self) -> Vec<u8>;

    /// Replaces the state with bytes from [`Detector::save`] of the same
    /// [`Detector::STATE_VERSION`] (the host never hands over others).
    /// Refuse malformed bytes with a reason.
    fn load(&mut self, state: &[u8]) -> Result<(), String>;

    /// Optional: what changed in the state since generation `since` (see
    /// [`changes`]), so that the host persists in proportion to the new data
    /// rather than to the whole history. Answer `ranges: None` ("take the
    /// whole state") unless `since` is the generation you last returned and
    /// you tracked every change since; in every case start tracking anew
    /// and return the new generation. The host calls [`Detector::save`]
    /// right after a `None`, with nothing in between.
    ///
    /// The default never reports ranges: the host then takes the whole state
    /// every time, as before this call existed. Detectors built on
    /// [`window::BaselineDetector`] report ranges already; the conformance
    /// suite checks that ranges applied to the last state give `save()`.
    fn save_changes(&mut self, since: u64) -> StateChanges {
        let _ = since;
        StateChanges::whole()
    }

    /// Optional: [`Detector::save_changes`] written into `w` (empty, at
    /// offset 0, stable), a writer the host reuses window after window, so
    /// that taking a window's changes allocates nothing. Same rules; the
    /// ranges are what `w` holds when [`changes::Taken::ranges`] is true.
    ///
    /// The default asks [`Detector::save_changes`] and copies its ranges.
    /// A detector that writes its changes with a [`ChangeWriter`] anyway
    /// overrides this and answers `save_changes` with
    /// `self.save_changes_into(since, &mut ChangeWriter::new())` turned into
    /// [`StateChanges`] ([`changes::Taken::into_changes`]), as
    /// [`window::BaselineDetector`] does.
    fn save_changes_into(&mut self, since: u64, w: &mut ChangeWriter) -> changes::Taken {
        let c = self.save_changes(since);
        if let Some(r) = &c.ranges {
            w.copy_from(r);
        }
        changes::Taken { generation: c.generation, ranges: c.ranges.is_some() }
    }

    /// The state in a few named numbers, shown to users inspecting node state.
    fn describe(&self) -> Summary;
}

/// Exports `$t` (a [`Detector`]) as this `cdylib`'s plugin entry point.
///
/// Call it exactly once per plugin crate.
#[macro_export]
macro_rules! export_detector {
    ($t:ty) => {
        /// tickwatch plugin entry point (see `tickwatch_plugin_api::abi`).
        #[unsafe(no_mangle)]
        pub extern "C" fn tickwatch_detector_entry() -> *const $crate::abi::PluginDescriptor {
            static DESCRIPTOR: $crate::abi::PluginDescriptor = $crate::abi::descriptor::<$t>();
            &DESCRIPTOR
        }

        /// The detector's name, readable from the file without loading it
        /// (see `tickwatch_plugin_api::abi::NAME_SECTION`).
        #[unsafe(link_section = ".tickwatch_detector")]
        #[used]
        static TICKWATCH_DETECTOR_NAME: [u8; <$t as $crate::Detector>::NAME.len()] =
            $crate::abi::name_bytes::<{ <$t as $crate::Detector>::NAME.len() }>(
                <$t as $crate::Detector>::NAME,
            );

        /// Which options shape the detector's state (see
        /// `tickwatch_plugin_api::abi::STATE_OPTIONS_SYMBOL`).
        #[unsafe(no_mangle)]
        pub extern "C" fn tickwatch_detector_state_options() -> $crate::abi::RawResult {
            $crate::abi::state_options::<$t>()
        }

        /// What changed in a detector's state (see
        /// `tickwatch_plugin_api::abi::SAVE_CHANGES_SYMBOL`).
        ///
        /// # Safety
        /// `handle` must come from this plugin's `create` and not be used
        /// concurrently.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn tickwatch_detector_save_changes(
            handle: *mut ::std::ffi::c_void,
            since: u64,
        ) -> $crate::abi::RawResult {
            // SAFETY: the host's guarantees, passed on.
            unsafe { $crate::abi::save_changes::<$t>(handle, since) }
        }

        /// What changed in a detector's state, borrowed from the plugin
        /// (see `tickwatch_plugin_api::abi::SAVE_CHANGES_VIEW_SYMBOL`).
        ///
        /// # Safety
        /// `handle` must come from this plugin's `create` and not be used
        /// concurrently; `out` must be valid for a write.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn tickwatch_detector_save_changes_view(
            handle: *mut ::std::ffi::c_void,
            since: u64,
            out: *mut $crate::abi::RawChanges,
        ) -> $crate::abi::RawResult {
            // SAFETY: the host's guarantees, passed on.
            unsafe { $crate::abi::save_changes_view::<$t>(handle, since, out) }
        }
    };
}
