//! What a node needs from a detector implementation: a [`DetectorFactory`]
//! that makes one [`DetectorHandle`] per (group, field).
//!
//! The seam between the domain and anything dynamically loaded: a
//! dlopen'ed plugin implements these traits (`crate::plugin`), and so does
//! [`InProcess`], which wraps any `tickwatch_plugin_api::Detector` compiled
//! into the caller, so the node's rules run in unit tests without a `.so`.
//! Does not own: the C ABI or loading (`crate::plugin`).

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tickwatch_plugin_api::{Detector, OptionSpec, Options, StateChanges, Verdict};

/// A failure reported by a detector.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectorError {
    /// The detector refused (bad options, bad state bytes).
    #[error("{0}")]
    Refused(String),
    /// The detector panicked; its instance is unusable.
    #[error("detector {detector} panicked: {message}")]
    Panicked {
        /// Detector name.
        detector: String,
        /// The panic message.
        message: String,
    },
    /// The detector returned data the host cannot use.
    #[error("detector {detector} returned malformed data: {reason}")]
    BadReply {
        /// Detector name.
        detector: String,
        /// What is wrong.
        reason: String,
    },
}

/// One live detector (one per group and field).
pub trait DetectorHandle: Send {
    /// Scores one window of finite values; `None` is "no verdict yet".
    fn score(&mut self, window: &[f64]) -> Result<Option<Verdict>, DetectorError>;
    /// The detector's state bytes.
    fn save(&mut self) -> Result<Vec<u8>, DetectorError>;
    /// What changed in the state since generation `since`
    /// (`tickwatch_plugin_api::Detector::save_changes`); `None` when the
    /// detector cannot say (a plugin built before the call existed): take
    /// the whole state with [`DetectorHandle::save`].
    fn save_changes(&mut self, since: u64) -> Result<Option<StateChanges>, DetectorError> {
        let _ = since;
        Ok(None)
    }
    /// [`DetectorHandle::save_changes`], the ranges' bytes written into
    /// `buf` (emptied first; a buffer the caller reuses, so that taking a
    /// window's changes allocates nothing). The default lets `buf` go.
    fn save_changes_with(
        &mut self,
        since: u64,
        buf: Vec<u8>,
    ) -> Result<Option<StateChanges>, DetectorError> {
        drop(buf);
        self.save_changes(since)
    }
    /// Replaces the detector's state.
    fn load(&mut self, state: &[u8]) -> Result<(), DetectorError>;
    /// The detector's description of its state, as a JSON object.
    fn describe(&mut self) -> Result<String, DetectorError>;
}

/// Makes detectors of one kind; knows their name, versions and options.
pub trait DetectorFactory: Send + Sync {
    /// The detector's name (`--detector`).
    fn name(&self) -> &str;
    /// The detector's release version.
    fn version(&self) -> &str;
    /// The version of the detector's state format.
    fn state_version(&self) -> u32;
    /// The options it declares.
    fn options(&self) -> &[OptionSpec];
    /// The fewest values in a window it judges meaningfully
    /// (`Detector::MIN_WINDOW`): 1 lets a stream node score every point.
    fn min_window(&self) -> u32 {
        2
    }
    /// One detector instance for validated options.
    fn create(&self, options: &Options) -> Result<Box<dyn DetectorHandle>, DetectorError>;
}

/// A shared factory, as nodes, sessions and the control socket hold it.
pub type Factory = Arc<dyn DetectorFactory>;

/// The detector's description of `state` under `options`.
pub fn describe_state(
    factory: &dyn DetectorFactory,
    options: &Options,
    state: &[u8],
) -> Result<serde_json::Value, String> {
    let mut d = factory.create(options).map_err(|e| e.to_string())?;
    d.load(state).map_err(|e| e.to_string())?;
    let json = d.describe().map_err(|e| e.to_string())?;
    serde_json::from_str(&json).map_err(|e| format!("description is not JSON: {e}"))
}

/// A detector compiled into this process, behind the same traits as a
/// loaded plugin; panics become [`DetectorError::Panicked`] as at the ABI.
pub struct InProcess<D> {
    options: Vec<OptionSpec>,
    _detector: PhantomData<fn() -> D>,
}

impl<D: Detector> InProcess<D> {
    /// A factory for `D`.
    pub fn factory() -> Factory {
        Arc::new(InProcess::<D> { options: D::options(), _detector: PhantomData })
    }
}

impl<D> std::fmt::Debug for InProcess<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").field("options", &self.options).finish()
    }
}

/// The message of a caught panic.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

struct InProcessHandle<D> {
    detector: D,
    broken: Option<DetectorError>,
}

impl<D: Detector> InProcessHandle<D> {
    fn call<T>(&mut self, f: impl FnOnce(&mut D) -> Result<T, String>) -> Result<T, DetectorError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        match catch_unwind(AssertUnwindSafe(|| f(&mut self.detector))) {
            Ok(r) => r.map_err(DetectorError::Refused),
            Err(p) => {
                let e = DetectorError::Panicked {
                    detector: D::NAME.to_string(),
                    message: panic_text(p.as_ref()),
                };
                self.broken = Some(e.clone());
                Err(e)
            }
        }
    }
}

impl<D: Detector> DetectorHandle for InProcessHandle<D> {
    fn score(&mut self, window: &[f64]) -> Result<Option<Verdict>, DetectorError> {
        self.call(|d| Ok(d.score(window)))
    }
    fn save(&mut self) -> Result<Vec<u8>, DetectorError> {
        self.call(|d| Ok(d.save()))
    }
    fn save_changes(&mut self, since: u64) -> Result<Option<StateChanges>, DetectorError> {
        self.call(|d| Ok(Some(d.save_changes(since))))
    }
    fn load(&mut self, state: &[u8]) -> Result<(), DetectorError> {
        self.call(|d| d.load(state))
    }
    fn describe(&mut self) -> Result<String, DetectorError> {
        self.call(|d| Ok(d.describe().to_json()))
    }
}

impl<D: Detector> DetectorFactory for InProcess<D> {
    fn name(&self) -> &str {
        D::NAME
    }
    fn version(&self) -> &str {
        D::VERSION
    }
    fn state_version(&self) -> u32 {
        D::STATE_VERSION
    }
    fn options(&self) -> &[OptionSpec] {
        &self.options
    }
    fn min_window(&self) -> u32 {
        D::MIN_WINDOW
    }
    fn create(&self, options: &Options) -> Result<Box<dyn DetectorHandle>, DetectorError> {
        let detector = catch_unwind(|| D::new(options))
            .map_err(|p| DetectorError::Panicked {
                detector: D::NAME.to_string(),
                message: panic_text(p.as_ref()),
            })?
            .map_err(DetectorError::Refused)?;
        Ok(Box::new(InProcessHandle { detector, broken: None }))
    }
}
