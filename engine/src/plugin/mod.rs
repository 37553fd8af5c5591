//! Detector plugins: loading `.so` files ([`loader`]) and finding detectors
//! by name ([`registry`]).

pub mod loader;
pub mod registry;

pub use loader::{DetectorInstance, LoadError, Plugin, PluginError};
pub use registry::Registry;
