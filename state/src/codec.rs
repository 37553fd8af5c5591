//! The one place that names the serialization crate (bincode 2.0.x, serde
//! mode, standard config). Swap it here and nowhere else.
//!
//! bincode's standard config is varint-encoded little-endian; its encoding of
//! a given type is stable within 2.0.x, which is why the version is pinned.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Upper bound on what one decode may allocate (guards a corrupt length that
/// slipped past the checksum).
const DECODE_LIMIT: usize = 1 << 30;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Serializes `value`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| e.to_string())
}

/// Deserializes a whole buffer; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!("{} trailing bytes after the payload", bytes.len() - used));
    }
    Ok(value)
}
