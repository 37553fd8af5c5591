//! Detector plugins, the FFI layer: which files may be loaded ([`trust`]),
//! loading `.so` files ([`loader`]), the name a file declares without being
//! loaded ([`section`]) and finding detectors by name ([`registry`]). A loaded [`Plugin`] is a
//! [`crate::node::DetectorFactory`]; nothing above this module sees the ABI.

pub mod loader;
pub mod registry;
pub mod section;
pub mod trust;

pub use loader::{DetectorInstance, LoadError, Plugin};
pub use registry::{Registry, RequireError};
