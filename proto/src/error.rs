//! Errors of the framing layer.

use std::io;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix claims more than we accept; nothing was allocated.
    #[error("frame of {len} bytes exceeds the {max} byte limit")]
    TooLarge {
        /// Length the prefix claimed.
        len: u64,
        /// The cap ([`crate::MAX_FRAME_LEN`]).
        max: usize,
    },
    /// The length prefix is not a valid uvarint (more than 10 bytes).
    #[error("malformed length prefix: uvarint longer than 10 bytes")]
    VarintOverflow,
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes the frame needed.
        expected: u64,
        /// Bytes that arrived.
        got: u64,
    },
    /// The frame's bytes are not the expected protobuf message.
    #[error("undecodable message in a {len} byte frame: {source}")]
    Decode {
        /// Frame length.
        len: usize,
        /// What prost reported.
        source: prost::DecodeError,
    },
    /// The underlying reader failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}
