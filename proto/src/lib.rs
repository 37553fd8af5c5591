//! Kapacitor's UDF wire schema (proto package `agent`) and its framing.
//!
//! Owns: the generated message types ([`agent`]) and the uvarint length
//! framing ([`wire`]), a borrowed fast path for reading points in place
//! ([`view`]) and the point frames a UDF writes back, encoded from borrowed
//! parts ([`frames`]). Does not own: what a UDF does with the messages, how
//! it schedules reads and writes, or any engine types.

pub mod error;
pub mod frames;
pub mod view;
pub mod wire;

/// Messages generated from `udf.proto` (package `agent`).
#[allow(clippy::all, missing_docs)]
pub mod agent {
    include!(concat!(env!("OUT_DIR"), "/agent.rs"));
}

pub use error::FrameError;
pub use frames::{PointField, PointFields, PointFrames, PointWriter};
pub use view::{EncodedPoints, FieldValue, PointView};
pub use wire::{
    FrameReader, Incoming, MAX_FRAME_LEN, MAX_RESTORE_FRAME_LEN, decode_request_or_point,
    encode_frame, encode_point_responses, read_message, read_request, read_request_or_point,
    read_response, write_message,
};
