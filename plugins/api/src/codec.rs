//! A small little-endian byte codec: for detector state bytes and for the
//! data that crosses the plugin boundary.
//!
//! Plugins depend on this crate alone, so it carries the few primitives a
//! detector needs to save its state without pulling in a serialization crate,
//! and [`StateFormat`], the one-byte format number a detector's state starts
//! with (written and checked in one place rather than in every detector).

use std::fmt;

/// Why bytes could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// Byte offset where reading failed.
    pub offset: usize,
    /// What was expected there.
    pub what: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed bytes at offset {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for CodecError {}

impl From<CodecError> for String {
    fn from(e: CodecError) -> Self {
        e.to_string()
    }
}

/// Appends values to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct ByteWriter {
    buf: Vec<u8>,
}

impl ByteWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self { buf: Vec::with_capacity(n) }
    }

    /// Makes room for `n` more bytes (saves growing step by step when the
    /// size is known).
    pub fn reserve(&mut self, n: usize) -> &mut Self {
        self.buf.reserve(n);
        self
    }

    /// Appends raw bytes, with no length prefix.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a bool as one byte.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// Appends a u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends an i64.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends an f64, bit-exact.
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
        self
    }

    /// Appends each of `vs` as [`ByteWriter::f64`] does, in one go.
    pub fn f64s(&mut self, vs: &[f64]) -> &mut Self {
        #[cfg(target_endian = "little")]
        {
            // SAFETY: an f64 is 8 plain bytes, no padding, and a u8 needs
            // no alignment; on a little-endian target they are
            // `to_le_bytes` of its bits already, so this is one copy.
            let bytes =
                unsafe { std::slice::from_raw_parts(vs.as_ptr().cast::<u8>(), vs.len() * 8) };
            self.buf.extend_from_slice(bytes);
        }
        #[cfg(not(target_endian = "little"))]
        self.buf.extend(vs.iter().flat_map(|v| v.to_bits().to_le_bytes()));
        self
    }

    /// Appends length-prefixed bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends a length-prefixed UTF-8 string.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far, borrowed.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets the bytes written, keeping the buffer (to write again
    /// without allocating); a buffer grown past `keep` bytes is given back
    /// down to that.
    pub fn clear(&mut self, keep: usize) {
        self.buf.clear();
        self.buf.shrink_to(keep);
    }
}

/// Reads values written by [`ByteWriter`], refusing short or malformed input.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    /// Reads from `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// An error at the current offset, for checks of the caller's own
    /// (`"history holds 12 values, more than its size 10"`).
    pub fn error(&self, what: &str) -> CodecError {
        CodecError { offset: self.pos, what: what.into() }
    }

    fn err(&self, what: &str) -> CodecError {
        self.error(what)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.err(&format!("{what}: need {n} bytes, {} left", self.remaining())));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CodecError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>("u8")?[0])
    }

    /// Reads a bool (0 or 1).
    pub fn bool(&mut self) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => {
                self.pos -= 1;
                Err(self.err(&format!("bool must be 0 or 1, got {b}")))
            }
        }
    }

    /// Reads a u32.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array("u32")?))
    }

    /// Reads a u64.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array("u64")?))
    }

    /// Reads an i64.
    pub fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_le_bytes(self.array("i64")?))
    }

    /// Reads an f64, bit-exact.
    pub fn f64(&mut self) -> Result<f64, CodecError> {
        Ok(f64::from_bits(u64::from_le_bytes(self.array("f64")?)))
    }

    /// Reads `n` values written by [`ByteWriter::f64`] (or
    /// [`ByteWriter::f64s`]) onto the end of `out`; on error `out` is as it
    /// was.
    pub fn f64s(&mut self, n: usize, out: &mut Vec<f64>) -> Result<(), CodecError> {
        let bytes = n.saturating_mul(8);
        let s = self.take(bytes, "f64s")?;
        out.extend(s.chunks_exact(8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            f64::from_bits(u64::from_le_bytes(a))
        }));
        Ok(())
    }

    /// Reads a length, refusing one larger than the bytes left divided by
    /// `unit` (so a corrupt length never drives an allocation).
    pub fn len(&mut self, unit: usize) -> Result<usize, CodecError> {
        let n = self.u64()?;
        let max = (self.remaining() / unit.max(1)) as u64;
        if n > max {
            self.pos -= 8;
            return Err(self.err(&format!("length {n} exceeds the {max} items left")));
        }
        Ok(n as usize)
    }

    /// Reads length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.len(1)?;
        self.take(n, "bytes")
    }

    /// Reads a length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, CodecError> {
        let start = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map_err(|e| CodecError { offset: start, what: format!("invalid UTF-8: {e}") })
    }

    /// Fails unless every byte was read.
    pub fn finish(self) -> Result<(), CodecError> {
        if self.remaining() != 0 {
            return Err(self.err(&format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }
}

/// A detector's state format: the byte its saved state starts with, so that
/// a build can refuse state of a format it does not read with a message
/// naming the detector and both formats.
///
/// ```
/// use tickwatch_plugin_api::codec::StateFormat;
///
/// const FORMAT: StateFormat = StateFormat::new("threshold", 1);
/// let mut w = FORMAT.writer();
/// w.u64(7);
/// let bytes = w.finish();
/// let mut r = FORMAT.reader(&bytes).unwrap();
/// assert_eq!(r.u64().unwrap(), 7);
/// assert_eq!(
///     FORMAT.reader(&[2]).unwrap_err(),
///     "unknown threshold state format 2 (this build reads 1)"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateFormat {
    detector: &'static str,
    version: u8,
}

impl StateFormat {
    /// Format `version` of `detector`'s state (its [`crate::Detector::NAME`]).
    pub const fn new(detector: &'static str, version: u8) -> Self {
        Self { detector, version }
    }

    /// The detector's name.
    pub const fn detector(self) -> &'static str {
        self.detector
    }

    /// The format number, also what a detector declares as its
    /// [`crate::Detector::STATE_VERSION`].
    pub const fn version(self) -> u8 {
        self.version
    }

    /// A writer that already holds the format byte.
    pub fn writer(self) -> ByteWriter {
        let mut w = ByteWriter::new();
        w.u8(self.version);
        w
    }

    /// A reader past the format byte, or an error if `bytes` are empty or
    /// of another format.
    pub fn reader(self, bytes: &[u8]) -> Result<ByteReader<'_>, String> {
        let mut r = ByteReader::new(bytes);
        let format = r.u8()?;
        if format != self.version {
            return Err(format!(
                "unknown {} state format {format} (this build reads {})",
                self.detector, self.version
            ));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bulk forms write and read exactly what value-by-value `f64`
    /// writes, and a short read is refused without touching the output.
    #[test]
    fn f64s_are_f64_after_f64() {
        let vs = [0.1, -0.0, f64::NAN, f64::INFINITY, 1e300, -7.25, f64::MIN_POSITIVE];
        let mut one = ByteWriter::new();
        for v in vs {
            one.f64(v);
        }
        let mut bulk = ByteWriter::with_capacity(3);
        bulk.u8(9).reserve(1).f64s(&vs[..2]).f64s(&[]).f64s(&vs[2..]);
        let (one, bulk) = (one.finish(), bulk.finish());
        assert_eq!(bulk[0], 9);
        assert_eq!(&bulk[1..], &one[..]);
        let mut r = ByteReader::new(&one);
        let mut out = vec![42.0];
        r.f64s(3, &mut out).unwrap();
        r.f64s(4, &mut out).unwrap();
        r.finish().unwrap();
        let bits = |xs: &[f64]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&out[1..]), bits(&vs));
        let mut short = ByteReader::new(&one[..20]);
        let mut out = vec![1.0];
        assert!(short.f64s(3, &mut out).is_err());
        assert_eq!(out, [1.0]);
        assert!(ByteReader::new(&one).f64s(usize::MAX, &mut out).is_err());
    }

    #[test]
    fn round_trips_and_refuses_short_input() {
        let mut w = ByteWriter::new();
        w.u8(7).bool(true).u32(9).u64(1 << 40).i64(-3).f64(-0.0).str("héllo").bytes(&[1, 2]);
        let bytes = w.finish();
        let mut r = ByteReader::new(&bytes);
        assert_eq!(r.u8().unwrap(), 7);
        assert!(r.bool().unwrap());
        assert_eq!(r.u32().unwrap(), 9);
        assert_eq!(r.u64().unwrap(), 1 << 40);
        assert_eq!(r.i64().unwrap(), -3);
        assert_eq!(r.f64().unwrap().to_bits(), (-0.0f64).to_bits());
        assert_eq!(r.str().unwrap(), "héllo");
        assert_eq!(r.bytes().unwrap(), &[1, 2]);
        r.finish().unwrap();

        let mut r = ByteReader::new(&bytes[..5]);
        r.u8().unwrap();
        r.bool().unwrap();
        let e = r.u32().unwrap_err();
        assert_eq!(e.offset, 2);
    }

    #[test]
    fn f64s_writes_what_f64_writes_value_by_value() {
        let vs = [1.5, -0.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE, 1e300];
        let mut one = ByteWriter::new();
        one.u8(1);
        vs.iter().for_each(|v| {
            one.f64(*v);
        });
        let mut all = ByteWriter::new();
        all.u8(1).f64s(&vs).f64s(&[]);
        assert_eq!(one.finish(), all.finish());
    }

    #[test]
    fn corrupt_length_does_not_allocate() {
        let mut w = ByteWriter::new();
        w.u64(u64::MAX);
        let bytes = w.finish();
        let e = ByteReader::new(&bytes).bytes().unwrap_err();
        assert!(e.what.contains("exceeds"), "{e}");
    }
}
