//! The Kapacitor side of the UDF protocol, for `demo` (and later `replay`) and the
//! end-to-end tests: spawn or connect to a UDF and drive it ([`client`]),
//! and cut a point stream into batches as `|window()` does ([`window`]).
//!
//! It follows docs/kapacitor-protocol.md (shared): Info, then Init checked
//! with Kapacitor's arity/type rule, optional Restore, batches with
//! keepalives, Snapshot, close.

pub mod client;
pub mod window;

pub use client::{HostError, UdfClient, check_options};
pub use window::Windower;
