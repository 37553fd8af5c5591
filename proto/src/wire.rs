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
    decode_request_or_point(buf, points_in_place).map(Some)
}

/// Decodes one `Request` frame body as [`read_request_or_point`] does: a
/// point the fast path takes (when `points_in_place`) borrows `frame`,
/// everything else is decoded by prost, with prost's errors.
pub fn decode_request_or_point(
    frame: &[u8],
    points_in_place: bool,
) -> Result<Incoming<'_>, FrameError> {
    if points_in_place && let Some(p) = crate::PointView::from_request(frame) {
        return Ok(Incoming::Point(p));
    }
    crate::agent::Request::decode(frame)
        .map(Incoming::Request)
        .map_err(|source| FrameError::Decode { len: frame.len(), source })
}

/// Reads `Request` frames straight out of one buffer of its own: each
/// frame comes back borrowed where it landed, so a point read in place
/// costs the kernel's copy into the buffer and nothing more (no copy into
/// a frame buffer, no allocation). The buffer holds `chunk` bytes, grows
/// only while one frame is larger (up to the frame's cap, as its bytes
/// arrive, never to a claimed size up front) and shrinks back after it.
/// Caps and errors are those of [`read_request_frame`].
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// First byte not yet handed out.
    start: usize,
    /// End of the bytes read into `buf`.
    end: usize,
    chunk: usize,
}

impl<R: Read> FrameReader<R> {
    /// A reader filling `chunk` bytes at a time (at least 64).
    pub fn new(inner: R, chunk: usize) -> FrameReader<R> {
        let chunk = chunk.max(64);
        FrameReader { inner, buf: vec![0; chunk], start: 0, end: 0, chunk }
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Whether the bytes already read hold the whole next frame (reading it
    /// will not block).
    pub fn holds_a_frame(&self) -> bool {
        match parse_uvarint(&self.buf[self.start..self.end]) {
            Prefix::Done(len, n) => (self.end - self.start - n) as u64 >= len,
            _ => false,
        }
    }

    /// Reads more bytes after `end`. Called only when the unread bytes do
    /// not hold a whole frame: they move to the front first (a partial
    /// frame, usually a few dozen bytes), the buffer shrinks back to `chunk`
    /// after a larger frame, and grows (doubling, up to `need` bytes) only
    /// while the unread bytes fill it. Returns how many bytes arrived (0:
    /// end of input).
    fn fill(&mut self, need: usize) -> Result<usize, FrameError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() > self.chunk && self.end < self.chunk && need <= self.chunk {
            self.buf.truncate(self.chunk);
            self.buf.shrink_to_fit();
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(need.max(self.buf.len() + 1));
            self.buf.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next `Request` frame's body, without its length prefix;
    /// `Ok(None)` on a clean end of stream between frames.
    #[inline]
    pub fn next_request(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let (len, prefix) = loop {
            match parse_uvarint(&self.buf[self.start..self.end]) {
                Prefix::Done(len, n) => break (len, n),
                Prefix::Overflow => return Err(FrameError::VarintOverflow),
                Prefix::Short(got) => {
                    if self.fill(got + 1)? == 0 {
                        if got == 0 {
                            return Ok(None);
                        }
                        let got = got as u64;
                        return Err(FrameError::Truncated { expected: got + 1, got });
                    }
                }
            }
        };
        if len > MAX_RESTORE_FRAME_LEN as u64 {
            return Err(FrameError::TooLarge { len, max: MAX_RESTORE_FRAME_LEN });
        }
        // At most `MAX_RESTORE_FRAME_LEN`: fits in `usize`.
        let want = len as usize;
        loop {
            // `start` moves when `fill` makes room: the body starts after
            // the prefix, wherever that is now.
            let have = self.end - self.start - prefix;
            // Only a Restore may pass the general cap: known from its
            // first byte, before anything is allocated for the rest.
            if len > MAX_FRAME_LEN as u64
                && have > 0
                && self.buf[self.start + prefix] != RESTORE_TAG
            {
                return Err(FrameError::TooLarge { len, max: MAX_FRAME_LEN });
            }
            if have >= want {
                break;
            }
            if self.fill(prefix + want)? == 0 {
                // As `read_request_frame` counts: a frame above the general
                // cap is read as its first byte, then the rest.
                let (expected, got) = match (len > MAX_FRAME_LEN as u64, have as u64) {
                    (false, got) => (len, got),
                    (true, 0) => (1, 0),
                    (true, got) => (len - 1, got - 1),
                };
                return Err(FrameError::Truncated { expected, got });
            }
        }
        let body = self.start + prefix;
        self.start = body + want;
        Ok(Some(&self.buf[body..body + want]))
    }
}

/// A length prefix at the start of some bytes.
enum Prefix {
    /// The value and how many bytes it took.
    Done(u64, usize),
    /// Not all of it yet: this many bytes of it so far.
    Short(usize),
    /// More than 10 bytes, or a 10th byte above 1.
    Overflow,
}

// Inlined: a point's length prefix is one byte, read once per frame.
#[inline(always)]
fn parse_uvarint(b: &[u8]) -> Prefix {
    if let Some(&first) = b.first()
        && first < 0x80
    {
        return Prefix::Done(u64::from(first), 1);
    }
    parse_uvarint_long(b)
}

#[cold]
fn parse_uvarint_long(b: &[u8]) -> Prefix {
    let mut value = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return Prefix::Overflow;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Prefix::Done(value, i + 1);
        }
    }
    if b.len() >= 10 { Prefix::Overflow } else { Prefix::Short(b.len()) }
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

/// `Response.point`: field 17.
const RESPONSE_POINT: u32 = 17;

/// Appends a `Response{point}` frame for each of `points` to `out`: the
/// bytes [`write_message`] writes for each, with each point's encoded
/// length computed once (prost's `encode_length_delimited` computes it
/// for the frame's length and again for the point's) and no buffer per
/// frame.
pub fn encode_point_responses(points: &[crate::agent::Point], out: &mut Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
    for p in points {
        let len = p.encoded_len();
        let body = key_len(RESPONSE_POINT) + encoded_len_varint(len as u64) + len;
        out.reserve(encoded_len_varint(body as u64) + body);
        encode_varint(body as u64, out);
        encode_key(RESPONSE_POINT, WireType::LengthDelimited, out);
        encode_varint(len as u64, out);
        // What `Message::encode` does after its own `encoded_len` (prost
        // is pinned; `encode_raw` is its public, if hidden, trait method).
        p.encode_raw(out);
    }
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
    fn point_responses_are_the_bytes_write_message_writes() {
        use std::collections::HashMap;

        use crate::agent::{Point, Response, response};
        let long = "x".repeat(200);
        let mut points = vec![Point::default()];
        for i in 0..40i64 {
            let s = |n: i64| if n % 7 == 0 { long.clone() } else { format!("k{n}") };
            points.push(Point {
                time: i * 1_000_000_007 - 20,
                name: s(i),
                group: format!("field=f{i}"),
                dimensions: (0..i % 3).map(s).collect(),
                tags: (0..i % 4).map(|n| (s(n), s(n + i))).collect(),
                fields_double: HashMap::from([
                    ("pvalue".into(), 1.0 / (i as f64 + 1.0)),
                    (s(i), -0.0),
                ]),
                fields_int: (0..i % 2).map(|n| (s(n), n - i)).collect(),
                fields_string: HashMap::from([(s(i + 1), s(i + 2))]),
                fields_bool: HashMap::from([("anomalous".into(), i % 2 == 0)]),
                by_name: i % 5 == 0,
                ..Default::default()
            });
        }
        let mut got = Vec::new();
        encode_point_responses(&points, &mut got);
        // A clone's maps keep the original's layout, so iterate alike.
        let mut want = Vec::new();
        for p in &points {
            let r = Response { message: Some(response::Message::Point(p.clone())) };
            write_message(&mut want, &r).unwrap();
        }
        assert_eq!(got, want);
        let mut r = got.as_slice();
        let mut buf = Vec::new();
        for p in &points {
            let back = read_response(&mut r, &mut buf).unwrap();
            assert_eq!(back, Some(Response { message: Some(response::Message::Point(p.clone())) }));
        }
        assert!(r.is_empty());
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

    /// A reader that hands out at most `step` bytes per call, with an
    /// interruption now and then, as a slow pipe does.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
        calls: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(7) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.step.min(out.len()).min(self.bytes.len());
            out[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// Every frame and the final outcome, as text, read one way or the other.
    fn outcomes(bytes: &[u8], step: usize, chunk: Option<usize>) -> Vec<String> {
        let mut out = Vec::new();
        let trickle = Trickle { bytes, step, calls: 0 };
        match chunk {
            Some(chunk) => {
                let mut r = FrameReader::new(trickle, chunk);
                loop {
                    let holds = r.holds_a_frame();
                    match r.next_request() {
                        Ok(Some(f)) => out.push(format!("{holds} {f:?}")),
                        Ok(None) => return out,
                        Err(e) => {
                            out.push(e.to_string());
                            return out;
                        }
                    }
                }
            }
            None => {
                let mut r = std::io::BufReader::with_capacity(step.max(1), trickle);
                let mut buf = Vec::new();
                loop {
                    let holds = {
                        let b = r.buffer();
                        matches!(parse_uvarint(b), Prefix::Done(len, n) if (b.len() - n) as u64 >= len)
                    };
                    match read_request_frame(&mut r, &mut buf) {
                        Ok(true) => out.push(format!("{holds} {buf:?}")),
                        Ok(false) => return out,
                        Err(e) => {
                            out.push(e.to_string());
                            return out;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_frame_reader_reads_what_read_request_frame_reads() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        for case in 0..400 {
            let mut bytes = Vec::new();
            for _ in 0..rng.random_range(0..12) {
                // Frames from empty to a few times the smallest chunk.
                let len = match rng.random_range(0..4) {
                    0 => 0,
                    1 => rng.random_range(1..10),
                    2 => rng.random_range(60..140),
                    _ => rng.random_range(200..700),
                };
                bytes.extend(uvarint(len as u64));
                bytes.extend((0..len).map(|i| (i * 31 + case) as u8));
            }
            match rng.random_range(0..5) {
                // A cut anywhere: a truncated prefix or body.
                0 if !bytes.is_empty() => bytes.truncate(rng.random_range(0..bytes.len())),
                1 => bytes.extend([0xff; 11]),
                2 => bytes.extend(uvarint(MAX_RESTORE_FRAME_LEN as u64 + 1)),
                3 => bytes.extend([0x80, 0x80]),
                _ => {}
            }
            let step = rng.random_range(1..300);
            let want = outcomes(&bytes, step, None);
            let frames_only = |v: &[String]| -> Vec<String> {
                v.iter().map(|s| s.split_once(' ').map_or(s.clone(), |x| x.1.to_string())).collect()
            };
            for chunk in [64, 100, 4096] {
                let got = outcomes(&bytes, step, Some(chunk));
                // Whether a frame was already buffered depends on the
                // buffer's size; what was read does not.
                assert_eq!(frames_only(&got), frames_only(&want), "case {case} chunk {chunk}");
            }
        }
    }

    #[test]
    fn the_frame_reader_says_when_a_whole_frame_is_buffered() {
        let mut bytes = Vec::new();
        for len in [3usize, 5, 2] {
            bytes.extend(uvarint(len as u64));
            bytes.extend(vec![1u8; len]);
        }
        // One read takes everything: each frame but the first was buffered.
        let mut r = FrameReader::new(bytes.as_slice(), 4096);
        assert!(!r.holds_a_frame());
        assert_eq!(r.next_request().unwrap(), Some(&[1u8; 3][..]));
        assert!(r.holds_a_frame());
        assert_eq!(r.next_request().unwrap(), Some(&[1u8; 5][..]));
        assert!(r.holds_a_frame());
        assert_eq!(r.next_request().unwrap(), Some(&[1u8; 2][..]));
        assert!(!r.holds_a_frame());
        assert_eq!(r.next_request().unwrap(), None);
    }

    /// A length above the general cap with its body cut short: both readers
    /// report the same truncation (found by the seeded mutations in e2e).
    #[test]
    fn a_cut_large_frame_is_reported_as_read_request_frame_reports_it() {
        let len = MAX_FRAME_LEN as u64 + 160_000_000;
        for body in [vec![], vec![RESTORE_TAG], vec![RESTORE_TAG, 1, 2, 3]] {
            let mut bytes = uvarint(len);
            bytes.extend(&body);
            let want = read_request_frame(&mut bytes.as_slice(), &mut Vec::new()).unwrap_err();
            let got = FrameReader::new(bytes.as_slice(), 64).next_request().unwrap_err();
            assert_eq!(got.to_string(), want.to_string(), "body {body:?}");
        }
    }

    #[test]
    fn the_frame_reader_grows_for_a_restore_only_and_shrinks_after() {
        use crate::agent::RestoreRequest;
        let snapshot = vec![7u8; MAX_FRAME_LEN + 10];
        let restore = Request {
            message: Some(request::Message::Restore(RestoreRequest { snapshot: snapshot.clone() })),
        };
        let mut bytes = encode_frame(&restore);
        bytes.extend(encode_frame(&keepalive(3)));
        let mut r = FrameReader::new(bytes.as_slice(), 1024);
        let body = r.next_request().unwrap().unwrap().to_vec();
        assert_eq!(Request::decode(body.as_slice()).unwrap(), restore);
        let body = r.next_request().unwrap().unwrap().to_vec();
        assert_eq!(Request::decode(body.as_slice()).unwrap(), keepalive(3));
        assert!(r.buf.len() <= 1024, "{}", r.buf.len());
        // Any other request that large is refused after its first byte.
        let mut other = uvarint(MAX_FRAME_LEN as u64 + 10);
        other.push(17 << 3 | 2);
        other.extend([0u8; 100]);
        let mut r = FrameReader::new(other.as_slice(), 1024);
        let err = r.next_request().unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: MAX_FRAME_LEN, .. }), "{err}");
        assert!(r.buf.len() <= 1024);
    }
}
