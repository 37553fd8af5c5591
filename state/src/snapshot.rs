//! The snapshot a node returns to Kapacitor's `SnapshotRequest` and accepts
//! back in a `RestoreRequest`, possibly in a later tickwatch version.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 0..6 | magic `TWSNAP` |
//! | 6..8 | format version (u16), currently [`FORMAT_VERSION`] |
//! | 8..16 | body length (u64) |
//! | 16..16+len | body (below) |
//! | last 4 | CRC-32 (IEEE) of every byte before it |
//!
//! Body, version 1: the payload, [`Snapshot`] via [`crate::codec`].
//! Body, version 2: the payload's length (u64), a filter byte, then the
//! payload, filtered and deflate-compressed. Filter 0 is none; filter 1
//! byte-shuffles in 8-byte lanes (byte k of every 8-byte word together).
//! Detector state is mostly f64 values: full-precision noise compresses
//! better shuffled (its sign, exponent and high mantissa bytes repeat),
//! readings with few decimals better as they are (whole values repeat). The
//! encoder tries both on the first MiB and keeps the smaller.
//!
//! The payload is at most [`MAX_PAYLOAD_LEN`]: a node refuses to write a
//! larger snapshot (it could not be restored), so every snapshot tickwatch
//! writes fits the Restore frame cap. A decoder is kept for every version
//! ever written; `decode` dispatches on the header's version.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::StateError;
use crate::codec;

/// Magic bytes opening every snapshot.
pub const MAGIC: &[u8; 6] = b"TWSNAP";
/// The format version this build writes.
pub const FORMAT_VERSION: u16 = 2;
/// The largest payload (uncompressed) a snapshot may hold: 1 GiB, what one
/// decode may allocate. At `size(3600)` a field's history is about 28.8 KB,
/// so a node's snapshot holds up to about 37,000 (group, field) states.
pub const MAX_PAYLOAD_LEN: u64 = 1 << 30;
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
    /// Encodes with header and checksum, in the current format.
    pub fn encode(&self) -> Result<Vec<u8>, StateError> {
        let payload = codec::encode(self).map_err(StateError::Payload)?;
        if payload.len() as u64 > MAX_PAYLOAD_LEN {
            return Err(StateError::TooLarge { len: payload.len() as u64, max: MAX_PAYLOAD_LEN });
        }
        let sample = &payload[..payload.len().min(SAMPLE)];
        let shuffled =
            deflate(Vec::new(), &shuffle(sample))?.len() < deflate(Vec::new(), sample)?.len();
        let mut body = Vec::with_capacity(payload.len() / 2 + 9);
        body.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        body.push(if shuffled { FILTER_SHUFFLE } else { FILTER_NONE });
        let body =
            if shuffled { deflate(body, &shuffle(&payload))? } else { deflate(body, &payload)? };
        Ok(frame(FORMAT_VERSION, &body))
    }

    /// Encodes in format version 1 (uncompressed), as tickwatch 0.1 wrote.
    pub fn encode_v1(&self) -> Result<Vec<u8>, StateError> {
        let payload = codec::encode(self).map_err(StateError::Payload)?;
        Ok(frame(1, &payload))
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
        let body = &bytes[HEADER..body_end];
        match version {
            1 => codec::decode::<Snapshot>(body).map_err(StateError::Payload),
            2 => codec::decode::<Snapshot>(&inflate(body)?).map_err(StateError::Payload),
            _ => Err(StateError::UnknownVersion { found: version, newest: FORMAT_VERSION }),
        }
    }
}

/// Version 2 filters.
const FILTER_NONE: u8 = 0;
const FILTER_SHUFFLE: u8 = 1;
/// How much of the payload the encoder compresses both ways to choose.
const SAMPLE: usize = 1 << 20;

/// `bytes` deflated onto `out`.
fn deflate(out: Vec<u8>, bytes: &[u8]) -> Result<Vec<u8>, StateError> {
    let mut z = flate2::write::DeflateEncoder::new(out, flate2::Compression::fast());
    z.write_all(bytes).map_err(|e| StateError::Payload(e.to_string()))?;
    z.finish().map_err(|e| StateError::Payload(e.to_string()))
}

/// Header, body, checksum.
fn frame(version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len() + TRAILER);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A version 2 body back to the payload; allocates no more than the
/// declared length, itself at most [`MAX_PAYLOAD_LEN`].
fn inflate(body: &[u8]) -> Result<Vec<u8>, StateError> {
    let bad = |why: String| StateError::Payload(format!("compressed payload: {why}"));
    let (len, rest) = body.split_at_checked(8).ok_or_else(|| bad("too short".into()))?;
    let (&filter, compressed) = rest.split_first().ok_or_else(|| bad("too short".into()))?;
    if filter != FILTER_NONE && filter != FILTER_SHUFFLE {
        return Err(bad(format!("unknown filter {filter}")));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(len);
    let len = u64::from_le_bytes(len8);
    if len > MAX_PAYLOAD_LEN {
        return Err(StateError::TooLarge { len, max: MAX_PAYLOAD_LEN });
    }
    let mut shuffled = Vec::with_capacity(len as usize);
    flate2::read::DeflateDecoder::new(compressed)
        .take(len + 1)
        .read_to_end(&mut shuffled)
        .map_err(|e| bad(e.to_string()))?;
    if shuffled.len() as u64 != len {
        return Err(bad(format!("{} bytes, the header says {len}", shuffled.len())));
    }
    Ok(if filter == FILTER_SHUFFLE { unshuffle(&shuffled) } else { shuffled })
}

/// Byte k of every 8-byte word together (then the tail as it is).
fn shuffle(bytes: &[u8]) -> Vec<u8> {
    let words = bytes.len() / 8;
    let mut out = vec![0u8; bytes.len()];
    for k in 0..8 {
        for i in 0..words {
            out[k * words + i] = bytes[i * 8 + k];
        }
    }
    out[words * 8..].copy_from_slice(&bytes[words * 8..]);
    out
}

/// The inverse of [`shuffle`].
fn unshuffle(bytes: &[u8]) -> Vec<u8> {
    let words = bytes.len() / 8;
    let mut out = vec![0u8; bytes.len()];
    for k in 0..8 {
        for i in 0..words {
            out[i * 8 + k] = bytes[k * words + i];
        }
    }
    out[words * 8..].copy_from_slice(&bytes[words * 8..]);
    out
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
    fn shuffle_round_trips_any_length() {
        for n in [0usize, 1, 7, 8, 9, 64, 1001] {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            assert_eq!(unshuffle(&shuffle(&bytes)), bytes, "{n}");
        }
    }

    /// 50 fields of 3600 readings around 220 with noise, as a ttest keeps
    /// them, each rounded by `round`; returns (v1, v2) sizes.
    fn sizes(round: impl Fn(f64) -> f64) -> (usize, usize) {
        let mut x: u64 = 88172645463325252;
        let mut noise = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1_000_000) as f64 / 1_000_000.0
        };
        let fields = (0..50)
            .map(|i| FieldState { group: format!("printer={i}"), ..sample().fields[0].clone() })
            .map(|mut f| {
                f.state = (0..3600).flat_map(|_| round(220.0 + noise()).to_le_bytes()).collect();
                f
            })
            .collect();
        let snap = Snapshot { fields };
        let v1 = snap.encode_v1().unwrap();
        let v2 = snap.encode().unwrap();
        assert_eq!(Snapshot::decode(&v1).unwrap(), snap);
        assert_eq!(Snapshot::decode(&v2).unwrap(), snap);
        (v1.len(), v2.len())
    }

    #[test]
    fn version_2_is_compact_on_sensor_like_histories() {
        // Full-precision noise: only the sign, exponent and high mantissa
        // bytes repeat.
        let (v1, v2) = sizes(|v| v);
        assert!(v2 * 10 < v1 * 8, "full precision: v2 {v2} bytes vs v1 {v1}");
        // Readings as sensors report them (two decimals).
        let (v1, v2) = sizes(|v| (v * 100.0).round() / 100.0);
        assert!(v2 * 10 < v1 * 4, "two decimals: v2 {v2} bytes vs v1 {v1}");
    }

    #[test]
    fn a_compressed_length_lie_is_refused_without_allocating_it() {
        let mut body = (MAX_PAYLOAD_LEN + 1).to_le_bytes().to_vec();
        body.extend_from_slice(&[FILTER_NONE, 1, 2]);
        let e = Snapshot::decode(&frame(2, &body)).unwrap_err();
        assert!(matches!(e, StateError::TooLarge { .. }), "{e}");
        let mut body = 1000u64.to_le_bytes().to_vec();
        body.push(FILTER_SHUFFLE);
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&[1u8; 10]).unwrap();
        body.extend_from_slice(&z.finish().unwrap());
        let e = Snapshot::decode(&frame(2, &body)).unwrap_err();
        assert!(e.to_string().contains("10 bytes, the header says 1000"), "{e}");
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

    /// A snapshot written by format version 2, checked in, must keep decoding.
    #[test]
    fn decodes_checked_in_v2_fixture() {
        let bytes = include_bytes!("../tests/fixtures/snapshot_v2.bin");
        assert_eq!(Snapshot::decode(bytes).unwrap(), sample());
    }

    /// Version 1 as this build writes it is byte for byte the fixture.
    #[test]
    fn writes_version_1_exactly_as_before() {
        let bytes = include_bytes!("../tests/fixtures/snapshot_v1.bin");
        assert_eq!(sample().encode_v1().unwrap(), bytes);
    }

    /// Writes the fixtures (run with `--ignored` only when adding a version).
    #[test]
    #[ignore]
    fn write_fixtures() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        std::fs::write(format!("{dir}/snapshot_v2.bin"), sample().encode().unwrap()).unwrap();
    }
}
