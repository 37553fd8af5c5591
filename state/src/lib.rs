//! tickwatch persistence.
//!
//! Owns: the snapshot format a node hands Kapacitor ([`snapshot`]) and the
//! serialization behind it ([`codec`], the only module that names bincode).
//! Detector state is opaque bytes here; this crate never interprets it.
//! Does not own: deciding which state to apply (the engine's), sled-backed
//! storage (added with the persistence work).

pub mod codec;
pub mod error;
pub mod snapshot;

pub use error::StateError;
pub use snapshot::{FieldState, Snapshot};
