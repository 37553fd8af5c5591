//! The snapshot a node returns to Kapacitor's `SnapshotRequest` and accepts
//! back in a `RestoreRequest`, possibly in a later tickwatch version.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 0..6 | magic `TWSNAP` |
//! | 6..8 | format version (u16), currently [`FORMAT_VERSION`] |
//! | 8..16 | payload length (u64) |
//! | 16..16+len | payload: [`Snapshot`] via [`crate::codec`] |
//! | last 4 | CRC-32 (IEEE) of every byte before it |
//!
//! A decoder is kept for every version ever written; `decode` dispatches on
//! the header's version.

use serde::{Deserialize, Serialize};

use crate::StateError;
use crate::codec;

/// Magic bytes opening every snapshot.
pub const MAGIC: &[u8; 6] = b"TWSNAP";
/// The format version this build writes.
pub const FORMAT_VERSION: u16 = 1;
const HEADER: usize = 16;
const TRAILER: usize = 4;

/// Every (group, field) state of one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// One entry per (group, field), sorted by group then field.
    pub fields: Vec<FieldState>,
}

/// Where a field's state came from: which detector built it, in which state
/// format, under which options, up to which batch. Stored beside the bytes
/// wherever state is kept (snapshots, the database, aside records, exports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Detector name that produced the state.
    pub detector: String,
    /// That detector's version (for inspection only).
    pub detector_version: String,
    /// The detector's state format version; state is applied only to a
    /// detector with the same one.
    pub state_version: u32,
    /// Canonical text of the detector options the state was built under.
    pub options: String,
    /// `tmax` (ns) of the last batch applied.
    pub last_time: i64,
}

/// The state of one tracked field in one Kapacitor group.
///
/// Encoded (bincode) as its fields in order, `provenance` inline: the bytes
/// are those of format v1, where the provenance fields stood directly here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldState {
    /// Kapacitor's group id ("" when ungrouped).
    pub group: String,
    /// The tracked field's name.
    pub field: String,
    /// Who built the state, and up to when.
    pub provenance: Provenance,
    /// The detector's own state bytes (opaque here).
    pub state: Vec<u8>,
}

impl Snapshot {
    /// Encodes with header and checksum.
    pub fn encode(&self) -> Result<Vec<u8>, StateError> {
        let payload = codec::encode(self).map_err(StateError::Payload)?;
        let mut out = Vec::with_capacity(HEADER + payload.len() + TRAILER);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Decodes any format version this build knows, verifying the checksum.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        if bytes.len() < HEADER + TRAILER {
            return Err(StateError::TooShort { len: bytes.len(), min: HEADER + TRAILER });
        }
        if &bytes[..6] != MAGIC {
            return Err(StateError::BadMagic { found: bytes[..6].to_vec() });
        }
        let version = u16::from_le_bytes([bytes[6], bytes[7]]);
        if version == 0 || version > FORMAT_VERSION {
            return Err(StateError::UnknownVersion { found: version, newest: FORMAT_VERSION });
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&bytes[8..16]);
        let declared = u64::from_le_bytes(len8);
        let actual = (bytes.len() - HEADER - TRAILER) as u64;
        if declared != actual {
            return Err(StateError::LengthMismatch { declared, actual });
        }
        let body_end = bytes.len() - TRAILER;
        let mut crc4 = [0u8; 4];
        crc4.copy_from_slice(&bytes[body_end..]);
        let stored = u32::from_le_bytes(crc4);
        let computed = crc32fast::hash(&bytes[..body_end]);
        if stored != computed {
            return Err(StateError::Checksum { stored, computed });
        }
        let payload = &bytes[HEADER..body_end];
        match version {
            1 => codec::decode::<Snapshot>(payload).map_err(StateError::Payload),
            _ => Err(StateError::UnknownVersion { found: version, newest: FORMAT_VERSION }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            fields: vec![FieldState {
                group: "printer=a".into(),
                field: "hotend".into(),
                provenance: Provenance {
                    detector: "ttest".into(),
                    detector_version: "0.1.0".into(),
                    state_version: 1,
                    options: "alpha=0.001,size=3600".into(),
                    last_time: 1_451_606_700_000_000_000,
                },
                state: vec![1, 2, 3, 255],
            }],
        }
    }

    #[test]
    fn round_trips() {
        let s = sample();
        assert_eq!(Snapshot::decode(&s.encode().unwrap()).unwrap(), s);
        let empty = Snapshot::default();
        assert_eq!(Snapshot::decode(&empty.encode().unwrap()).unwrap(), empty);
    }

    #[test]
    fn refuses_damage_with_a_reason() {
        let bytes = sample().encode().unwrap();
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(matches!(Snapshot::decode(&flipped), Err(StateError::Checksum { .. })));
        assert!(matches!(
            Snapshot::decode(b"garbage garbage garbage"),
            Err(StateError::BadMagic { .. })
        ));
        assert!(matches!(Snapshot::decode(&bytes[..10]), Err(StateError::TooShort { .. })));
        assert!(matches!(
            Snapshot::decode(&bytes[..bytes.len() - 1]),
            Err(StateError::LengthMismatch { .. })
        ));
        let mut future = bytes.clone();
        future[6] = 99;
        let e = Snapshot::decode(&future).unwrap_err();
        assert!(e.to_string().contains("version 99"), "{e}");
    }

    /// A snapshot written by format version 1, checked in, must keep decoding.
    #[test]
    fn decodes_checked_in_v1_fixture() {
        let bytes = include_bytes!("../tests/fixtures/snapshot_v1.bin");
        assert_eq!(Snapshot::decode(bytes).unwrap(), sample());
    }

    /// Writes the fixture (run with `--ignored` only when adding a version).
    #[test]
    #[ignore]
    fn write_v1_fixture() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/snapshot_v1.bin");
        std::fs::write(path, sample().encode().unwrap()).unwrap();
    }
}
