//! tickwatch persistence.
//!
//! Owns: the snapshot format a node hands Kapacitor ([`snapshot`]), the
//! serialization behind it ([`codec`], the only module that names bincode),
//! the state directory layout ([`layout`]) and each node's sled database
//! with its key layout ([`store`]). Detector state is opaque bytes here; this
//! crate never interprets it. Does not own: deciding which state to apply
//! (the engine's).

pub mod change;
pub mod codec;
pub mod error;
pub mod layout;
pub mod snapshot;
pub mod store;

/// Tests' random numbers: a xorshift generator from `seed` (not 0), each
/// call giving a value below `n` (0 when `n` is 0).
#[cfg(test)]
pub(crate) fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if n == 0 { 0 } else { x % n }
    }
}

pub use change::{FieldUpdate, Ranges, Spare, StateChange};
pub use error::StateError;
pub use layout::NodeMeta;
pub use snapshot::{FieldState, Provenance, Snapshot};
pub use store::{
    CommitCounts, SLED_BATCH_BYTES, SLED_BATCH_FIELDS, StateStore, StoreOptions, StoreReader,
};
