//! uvarint-length framing, as Kapacitor's UDF host writes and reads it:
//! `uvarint(len) ++ protobuf bytes`, no footer, both directions.
//!
//! Kapacitor itself allocates whatever a length prefix claims; we cap it at
//! [`MAX_FRAME_LEN`] and never allocate a claimed size up front, so a corrupt
//! prefix costs nothing.

use std::io::{self, Read, Write};

use prost::Message;

use crate::FrameError;

/// The largest frame accepted (64 MiB). A Kapacitor batch of a million points
/// is a few dozen MiB of frames, each point its own frame, so a single frame
/// this large is always a corrupt or hostile stream.
pub const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;

/// The largest `RestoreRequest` frame accepted: a Restore carries back a
/// snapshot tickwatch wrote, and tickwatch never writes one whose payload
/// exceeds 1 GiB (`tickwatch_state::snapshot::MAX_PAYLOAD_LEN`); the extra
/// MiB covers the snapshot header and the protobuf wrapping.
pub const MAX_RESTORE_FRAME_LEN: usize = (1 << 30) + (1 << 20);

/// The first byte of a `Request` frame holding a `RestoreRequest`: field 5,
/// length-delimited (`5 << 3 | 2`).
const RESTORE_TAG: u8 = 5 << 3 | 2;
/// The first byte of a `Response` frame holding a `SnapshotResponse`: field
/// 4, length-delimited.
const SNAPSHOT_TAG: u8 = 4 << 3 | 2;

/// Reads one uvarint. `Ok(None)` on a clean end of stream before its first byte.
fn read_uvarint<R: Read>(r: &mut R) -> Result<Option<u64>, FrameError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let mut byte = [0u8; 1];
        let n = loop {
            match r.read(&mut byte) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated { expected: i + 1, got: i });
        }
        let b = byte[0];
        if i == 9 && b > 1 {
            return Err(FrameError::VarintOverflow);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(FrameError::VarintOverflow)
}

/// Reads one frame into `buf` (cleared first). `Ok(false)` on a clean end of
/// stream between frames.
pub fn read_frame<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
    buf.clear();
    let Some(len) = read_uvarint(r)? else {
        return Ok(false);
    };
    if len > MAX_FRAME_LEN as u64 {
        return Err(FrameError::TooLarge { len, max: MAX_FRAME_LEN });
    }
    read_body(r, len, buf)
}

/// Reads `len` more bytes onto `buf`.
fn read_body<R: Read>(r: &mut R, len: u64, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
    // `take` + `read_to_end` grows the buffer as bytes actually arrive.
    let got = r.take(len).read_to_end(buf)? as u64;
    if got != len {
        return Err(FrameError::Truncated { expected: len, got });
    }
    Ok(true)
}

/// Reads one `Request` frame into `buf`, with the cap for its type: every
/// request up to [`MAX_FRAME_LEN`], except a `RestoreRequest`, which may be
/// as large as the largest snapshot tickwatch writes
/// ([`MAX_RESTORE_FRAME_LEN`]). The type is known from the frame's first
/// byte, read before anything is allocated for the rest.
pub fn read_request_frame<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
    read_frame_allowing(r, buf, RESTORE_TAG)
}

/// Reads one frame; only a frame whose first byte is `big` (a message
/// carrying a snapshot) may exceed [`MAX_FRAME_LEN`], up to
/// [`MAX_RESTORE_FRAME_LEN`].
fn read_frame_allowing<R: Read>(r: &mut R, buf: &mut Vec<u8>, big: u8) -> Result<bool, FrameError> {
    buf.clear();
    let Some(len) = read_uvarint(r)? else {
        return Ok(false);
    };
    if len <= MAX_FRAME_LEN as u64 {
        return read_body(r, len, buf);
    }
    if len > MAX_RESTORE_FRAME_LEN as u64 {
        return Err(FrameError::TooLarge { len, max: MAX_RESTORE_FRAME_LEN });
    }
    read_body(r, 1, buf)?;
    if buf[0] != big {
        return Err(FrameError::TooLarge { len, max: MAX_FRAME_LEN });
    }
    read_body(r, len - 1, buf)
}

/// Reads and decodes one `Request`, capped by type (see
/// [`read_request_frame`]). `Ok(None)` on a clean end of stream.
pub fn read_request<R: Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Option<crate::agent::Request>, FrameError> {
    if !read_request_frame(r, buf)? {
        return Ok(None);
    }
    crate::agent::Request::decode(buf.as_slice())
        .map(Some)
        .map_err(|source| FrameError::Decode { len: buf.len(), source })
}

/// One request as a reader that can keep points in place takes it.
// Returned once and matched at once: boxing the request would add an
// allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A `Request{point}` read in place (see [`crate::view`]).
    Point(crate::PointView<'a>),
    /// Any other request, or a point the fast path leaves to prost.
    Request(crate::agent::Request),
}

/// [`read_request`], with the borrowed fast path for points when
/// `points_in_place`: a point frame it takes comes back as
/// [`Incoming::Point`], borrowing `buf`; everything else is decoded by prost,
/// with prost's errors.
pub fn read_request_or_point<'b, R: Read>(
    r: &mut R,
    buf: &'b mut Vec<u8>,
    points_in_place: bool,
) -> Result<Option<Incoming<'b>>, FrameError> {
    if !read_request_frame(r, buf)? {
        return Ok(None);
    }
    if points_in_place && let Some(p) = crate::PointView::from_request(buf) {
        return Ok(Some(Incoming::Point(p)));
    }
    crate::agent::Request::decode(buf.as_slice())
        .map(|r| Some(Incoming::Request(r)))
        .map_err(|source| FrameError::Decode { len: buf.len(), source })
}

/// Reads and decodes one message. `Ok(None)` on a clean end of stream.
pub fn read_message<M: Message + Default, R: Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Option<M>, FrameError> {
    if !read_frame(r, buf)? {
        return Ok(None);
    }
    M::decode(buf.as_slice())
        .map(Some)
        .map_err(|source| FrameError::Decode { len: buf.len(), source })
}

/// Encodes one message as a frame.
pub fn encode_frame<M: Message>(m: &M) -> Vec<u8> {
    m.encode_length_delimited_to_vec()
}

/// Writes one framed message (does not flush).
pub fn write_message<M: Message, W: Write>(w: &mut W, m: &M) -> io::Result<()> {
    w.write_all(&encode_frame(m))
}

/// Reads and decodes one `Response` (the Kapacitor side): a
/// `SnapshotResponse` may be as large as a Restore may be, everything else
/// is capped at [`MAX_FRAME_LEN`]. `Ok(None)` on a clean end of stream.
pub fn read_response<R: Read>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Option<crate::agent::Response>, FrameError> {
    if !read_frame_allowing(r, buf, SNAPSHOT_TAG)? {
        return Ok(None);
    }
    crate::agent::Response::decode(buf.as_slice())
        .map(Some)
        .map_err(|source| FrameError::Decode { len: buf.len(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{KeepaliveRequest, Request, request};

    fn keepalive(t: i64) -> Request {
        Request { message: Some(request::Message::Keepalive(KeepaliveRequest { time: t })) }
    }

    #[test]
    fn round_trips_several_frames_back_to_back() {
        let mut bytes = Vec::new();
        for t in [0, 1, 1 << 40, -5] {
            write_message(&mut bytes, &keepalive(t)).unwrap();
        }
        let mut r = bytes.as_slice();
        let mut buf = Vec::new();
        for t in [0, 1, 1 << 40, -5] {
            assert_eq!(read_message::<Request, _>(&mut r, &mut buf).unwrap(), Some(keepalive(t)));
        }
        assert_eq!(read_message::<Request, _>(&mut r, &mut buf).unwrap(), None);
    }

    #[test]
    fn refuses_oversized_prefix_without_allocating_it() {
        // uvarint for 2^62: ten bytes of claimed length, no body.
        let mut bytes = Vec::new();
        let mut v: u64 = 1 << 62;
        while v >= 0x80 {
            bytes.push((v as u8) | 0x80);
            v >>= 7;
        }
        bytes.push(v as u8);
        let mut buf = Vec::new();
        let err = read_frame(&mut bytes.as_slice(), &mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len, .. } if len == 1 << 62), "{err}");
        assert!(buf.capacity() < 1024);
        assert!(err.to_string().contains(&(1u64 << 62).to_string()));
    }

    #[test]
    fn reports_truncated_body_and_prefix() {
        let mut buf = Vec::new();
        let err = read_frame(&mut [5u8, 1, 2].as_slice(), &mut buf).unwrap_err();
        assert!(matches!(err, FrameError::Truncated { expected: 5, got: 2 }), "{err}");
        let err = read_frame(&mut [0x80u8].as_slice(), &mut buf).unwrap_err();
        assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
    }

    fn uvarint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_varint(v, &mut out);
        out
    }

    #[test]
    fn a_restore_may_exceed_the_frame_cap_and_nothing_else_may() {
        use crate::agent::RestoreRequest;
        // A real RestoreRequest just over 64 MiB goes through and decodes.
        let snapshot = vec![7u8; MAX_FRAME_LEN + 10];
        let restore = Request {
            message: Some(request::Message::Restore(RestoreRequest { snapshot: snapshot.clone() })),
        };
        let bytes = encode_frame(&restore);
        let mut buf = Vec::new();
        let got = read_request(&mut bytes.as_slice(), &mut buf).unwrap().unwrap();
        assert_eq!(got, restore);
        // The plain reader keeps the general cap.
        let err = read_frame(&mut bytes.as_slice(), &mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: MAX_FRAME_LEN, .. }), "{err}");
        // Any other request that large is refused after one byte.
        let mut other = uvarint(MAX_FRAME_LEN as u64 + 10);
        other.push(17 << 3 | 2); // a Point
        let mut buf = Vec::new();
        let err = read_request_frame(&mut other.as_slice(), &mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: MAX_FRAME_LEN, .. }), "{err}");
        assert!(buf.capacity() < 1024);
        // And no Restore beyond its own cap is read at all.
        let huge = uvarint(MAX_RESTORE_FRAME_LEN as u64 + 1);
        let err = read_request_frame(&mut huge.as_slice(), &mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: MAX_RESTORE_FRAME_LEN, .. }), "{err}");
    }

    #[test]
    fn rejects_overlong_varint() {
        let bytes = [0xffu8; 11];
        let err = read_frame(&mut bytes.as_slice(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, FrameError::VarintOverflow), "{err}");
    }

    #[test]
    fn reports_undecodable_body() {
        // A frame of 3 bytes that is not a valid Request (field 1, wire type 7).
        let bytes = [3u8, 0x0f, 0xff, 0xff];
        let err = read_message::<Request, _>(&mut bytes.as_slice(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err, FrameError::Decode { len: 3, .. }), "{err}");
    }
}
