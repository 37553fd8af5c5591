//! What a UDF writes back: `Response{point}` frames, encoded as the points
//! are made and held as bytes ([`PointFrames`]) until they may be written.
//!
//! A point built as a prost `agent::Point` costs a `String` for each of its
//! strings and a `HashMap` for each of its maps, all made to be encoded once
//! and dropped (a node's verdict point: about 1 kB of heap while it waits
//! for its batch's commit, and most of what the node spent per verdict).
//! [`PointFields`] instead hands the encoder a point's parts, borrowed, and
//! [`PointFrames::push`] writes the bytes prost writes for the same point:
//! fields in field-number order, a field at its default value left out, a
//! map entry as prost writes it (its key or value left out when default).
//! Only the order of map entries is the caller's: prost's follows its
//! `HashMap`'s iteration order, which protobuf leaves unspecified (a map is
//! a set of entries) and which differs from one map to the next.
//!
//! Owns: encoding points. Does not own: what a point says (the engine's
//! `node::point`) or when frames are written (the engine's session).

use prost::encoding::{WireType, encode_varint, encoded_len_varint, key_len};

use crate::agent;
use crate::view::tag;

/// `Response.point`: field 17.
const RESPONSE_POINT: u32 = 17;

/// The shortest prefix of a point's frame: its length, the key of
/// `Response.point` (two bytes), the point's length.
const SHORT_PREFIX: usize = 4;

/// Room made before a point is written: a verdict point with a few tags
/// and statistics takes 100–250 bytes.
const ROOM: usize = 256;

/// One field of a `Point`, or one element of a repeated field or a map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PointField<'a> {
    /// `time` (left out when 0).
    Time(i64),
    /// `name` (left out when empty).
    Name(&'a str),
    /// `database` (left out when empty).
    Database(&'a str),
    /// `retentionPolicy` (left out when empty).
    RetentionPolicy(&'a str),
    /// `group` (left out when empty).
    Group(&'a str),
    /// One of `dimensions` (always written, as every element of a
    /// repeated field is).
    Dimension(&'a str),
    /// An entry of `tags`.
    Tag(&'a str, &'a str),
    /// An entry of `fieldsDouble`.
    Double(&'a str, f64),
    /// An entry of `fieldsInt`.
    Int(&'a str, i64),
    /// An entry of `fieldsString`.
    String(&'a str, &'a str),
    /// `byName` (left out when false).
    ByName(bool),
    /// An entry of `fieldsBool`.
    Bool(&'a str, bool),
}

/// A map entry's value.
#[derive(Clone, Copy)]
enum Value<'a> {
    Str(&'a str),
    Double(f64),
    Int(i64),
    Bool(bool),
}

impl Value<'_> {
    /// Whether prost leaves it out of a map entry: its type's default
    /// (`-0.0 == 0.0` is left out too, a NaN is written).
    #[inline]
    fn is_default(self) -> bool {
        match self {
            Value::Str(s) => s.is_empty(),
            Value::Double(x) => x == 0.0,
            Value::Int(x) => x == 0,
            Value::Bool(x) => !x,
        }
    }

    /// Its length as field 2 of the entry, key included.
    #[inline]
    fn len(self) -> usize {
        1 + match self {
            Value::Str(s) => encoded_len_varint(s.len() as u64) + s.len(),
            Value::Double(_) => 8,
            Value::Int(x) => encoded_len_varint(x as u64),
            Value::Bool(_) => 1,
        }
    }

    #[inline]
    fn encode(self, out: &mut Vec<u8>) {
        match self {
            Value::Str(s) => string(2, s, out),
            Value::Double(x) => {
                key(2, WireType::SixtyFourBit, out);
                out.extend_from_slice(&x.to_le_bytes());
            }
            Value::Int(x) => {
                key(2, WireType::Varint, out);
                varint(x as u64, out);
            }
            Value::Bool(x) => {
                key(2, WireType::Varint, out);
                out.push(u8::from(x));
            }
        }
    }
}

/// A field's key, for the field numbers of `Point` and its map entries
/// (all below 16: one byte).
#[inline]
fn key(number: u32, wire: WireType, out: &mut Vec<u8>) {
    debug_assert!(number < 16);
    out.push((number << 3) as u8 | wire as u8);
}

/// A varint; most are one byte (lengths of names and values).
#[inline]
fn varint(v: u64, out: &mut Vec<u8>) {
    if v < 0x80 {
        out.push(v as u8);
    } else {
        encode_varint(v, out);
    }
}

/// Writes `v` as a varint into `buf` at `at`; returns where it ends.
fn put_varint(mut v: u64, buf: &mut [u8; 22], mut at: usize) -> usize {
    while v >= 0x80 {
        buf[at] = v as u8 | 0x80;
        v >>= 7;
        at += 1;
    }
    buf[at] = v as u8;
    at + 1
}

/// A string as a length-delimited field.
#[inline]
fn string(number: u32, s: &str, out: &mut Vec<u8>) {
    key(number, WireType::LengthDelimited, out);
    varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// The body of a map entry: key (field 1) and value (field 2), each left
/// out when default, as prost writes them.
#[inline]
fn entry_len(key: &str, value: Value<'_>) -> usize {
    let k = if key.is_empty() { 0 } else { 1 + encoded_len_varint(key.len() as u64) + key.len() };
    k + if value.is_default() { 0 } else { value.len() }
}

impl PointField<'_> {
    /// Its field number.
    #[inline(always)]
    fn number(&self) -> u32 {
        match self {
            PointField::Time(_) => tag::TIME,
            PointField::Name(_) => tag::NAME,
            PointField::Database(_) => tag::DATABASE,
            PointField::RetentionPolicy(_) => tag::RETENTION_POLICY,
            PointField::Group(_) => tag::GROUP,
            PointField::Dimension(_) => tag::DIMENSIONS,
            PointField::Tag(..) => tag::TAGS,
            PointField::Double(..) => tag::FIELDS_DOUBLE,
            PointField::Int(..) => tag::FIELDS_INT,
            PointField::String(..) => tag::FIELDS_STRING,
            PointField::ByName(_) => tag::BY_NAME,
            PointField::Bool(..) => tag::FIELDS_BOOL,
        }
    }

    /// Appends it to a `Point`'s encoding, as prost writes it.
    #[inline(always)]
    pub fn encode(&self, out: &mut Vec<u8>) {
        let n = self.number();
        let entry = match *self {
            PointField::Time(0) | PointField::ByName(false) => return,
            PointField::Time(t) => {
                key(n, WireType::Varint, out);
                varint(t as u64, out);
                return;
            }
            PointField::ByName(true) => {
                key(n, WireType::Varint, out);
                out.push(1);
                return;
            }
            PointField::Dimension(s) => return string(n, s, out),
            PointField::Name(s)
            | PointField::Database(s)
            | PointField::RetentionPolicy(s)
            | PointField::Group(s) => {
                if !s.is_empty() {
                    string(n, s, out);
                }
                return;
            }
            PointField::Tag(k, v) | PointField::String(k, v) => (k, Value::Str(v)),
            PointField::Double(k, v) => (k, Value::Double(v)),
            PointField::Int(k, v) => (k, Value::Int(v)),
            PointField::Bool(k, v) => (k, Value::Bool(v)),
        };
        let (k, v) = entry;
        key(n, WireType::LengthDelimited, out);
        varint(entry_len(k, v) as u64, out);
        if !k.is_empty() {
            string(1, k, out);
        }
        if !v.is_default() {
            v.encode(out);
        }
    }
}

/// A point given as its parts, to be encoded without building an
/// `agent::Point`.
pub trait PointFields {
    /// Puts each field into `w` in field-number order (as prost writes
    /// them: `time`, `name`, `database`, `retentionPolicy`, `group`,
    /// `dimensions`, `tags`, `fieldsDouble`, `fieldsInt`, `fieldsString`,
    /// `byName`, `fieldsBool`), the elements of `dimensions` and the entries
    /// of each map in the order they are to be written. Fields at their
    /// default may be put or not.
    fn write_fields(&self, w: &mut PointWriter<'_>);
}

/// Where [`PointFields`] puts a point's fields: the point's bytes, as
/// prost writes them.
pub struct PointWriter<'b> {
    out: &'b mut Vec<u8>,
    /// The number of the field put last, and whether all came in order.
    last: u32,
    ordered: bool,
}

impl PointWriter<'_> {
    /// Appends one field (inlined: a field given as a constant variant
    /// compiles down to its own encoding).
    #[inline(always)]
    pub fn put(&mut self, f: PointField<'_>) {
        let n = f.number();
        self.ordered &= n >= self.last;
        self.last = n;
        f.encode(self.out);
    }
}

/// An `agent::Point`'s fields, its maps in their iteration order: the
/// order prost's encoder writes them in.
impl PointFields for agent::Point {
    fn write_fields(&self, w: &mut PointWriter<'_>) {
        w.put(PointField::Time(self.time));
        w.put(PointField::Name(&self.name));
        w.put(PointField::Database(&self.database));
        w.put(PointField::RetentionPolicy(&self.retention_policy));
        w.put(PointField::Group(&self.group));
        self.dimensions.iter().for_each(|d| w.put(PointField::Dimension(d)));
        self.tags.iter().for_each(|(k, v)| w.put(PointField::Tag(k, v)));
        self.fields_double.iter().for_each(|(k, v)| w.put(PointField::Double(k, *v)));
        self.fields_int.iter().for_each(|(k, v)| w.put(PointField::Int(k, *v)));
        self.fields_string.iter().for_each(|(k, v)| w.put(PointField::String(k, v)));
        w.put(PointField::ByName(self.by_name));
        self.fields_bool.iter().for_each(|(k, v)| w.put(PointField::Bool(k, *v)));
    }
}

/// `Response{point}` frames back to back, as written to Kapacitor: the
/// points a node emits, held as their bytes (one buffer for all, no
/// allocation per point) until they may be written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointFrames {
    bytes: Vec<u8>,
    points: usize,
}

impl PointFrames {
    /// Appends the frame of the point `p` gives.
    ///
    /// # Panics
    /// When `p` gives its fields out of field-number order (a bug of its
    /// implementation: the frame would still decode, but not to prost's bytes).
    pub fn push(&mut self, p: &impl PointFields) {
        // Enough for most points: growing byte by byte from nothing would
        // reallocate several times per point.
        self.bytes.reserve(ROOM);
        let start = self.bytes.len();
        // The point is written once, after room for the shortest prefix
        // (frame length, `Response.point` key, point length: 1 + 2 + 1
        // bytes); a longer prefix moves it.
        self.bytes.extend_from_slice(&[0; SHORT_PREFIX]);
        let mut w = PointWriter { out: &mut self.bytes, last: 0, ordered: true };
        p.write_fields(&mut w);
        assert!(w.ordered, "point fields out of order");
        let len = self.bytes.len() - start - SHORT_PREFIX;
        let body = key_len(RESPONSE_POINT) + encoded_len_varint(len as u64) + len;
        // At most two 10-byte varints and the key.
        let mut prefix = [0u8; 22];
        let mut at = put_varint(body as u64, &mut prefix, 0);
        // `Response.point`: field 17, length-delimited, as a varint.
        prefix[at..at + 2].copy_from_slice(&[(RESPONSE_POINT << 3 | 2) as u8 | 0x80, 1]);
        at = put_varint(len as u64, &mut prefix, at + 2);
        if at > SHORT_PREFIX {
            let end = self.bytes.len();
            self.bytes.resize(end + at - SHORT_PREFIX, 0);
            self.bytes.copy_within(start + SHORT_PREFIX..end, start + at);
        }
        self.bytes[start..start + at].copy_from_slice(&prefix[..at]);
        self.points += 1;
    }

    /// Reserves room for `bytes` more bytes of frames.
    pub fn reserve(&mut self, bytes: usize) {
        self.bytes.reserve(bytes);
    }

    /// Appends the frame prost writes for `p`.
    pub fn push_point(&mut self, p: &agent::Point) {
        crate::wire::encode_point_responses(std::slice::from_ref(p), &mut self.bytes);
        self.points += 1;
    }

    /// Appends `other`'s frames (taking its buffer when this one is empty).
    pub fn append(&mut self, other: PointFrames) {
        if self.bytes.is_empty() && self.bytes.capacity() <= other.bytes.capacity() {
            *self = PointFrames { points: self.points + other.points, ..other };
        } else {
            self.bytes.extend_from_slice(&other.bytes);
            self.points += other.points;
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// The frames, ready to be written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    /// The points, decoded by prost (for tests and tools; a frame that does
    /// not decode to a point is an error).
    pub fn decode(&self) -> Result<Vec<agent::Point>, crate::FrameError> {
        let mut r = self.bytes.as_slice();
        let mut buf = Vec::new();
        let mut out = Vec::with_capacity(self.points);
        while let Some(resp) = crate::wire::read_response(&mut r, &mut buf)? {
            // Only point frames are ever pushed.
            if let Some(agent::response::Message::Point(p)) = resp.message {
                out.push(p);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::{Rng, RngExt, SeedableRng};

    use super::*;

    /// A string from a small alphabet (so keys repeat), sometimes empty,
    /// sometimes long enough for a two-byte length.
    fn text(rng: &mut impl Rng) -> String {
        match rng.random_range(0..8) {
            0 => String::new(),
            1 => "é".repeat(rng.random_range(60..200)),
            _ => (0..rng.random_range(1..6))
                .map(|_| ['a', 'b', 'z', '=', ',', ' ', '\n'][rng.random_range(0..7)])
                .collect(),
        }
    }

    fn double(rng: &mut impl Rng) -> f64 {
        match rng.random_range(0..6) {
            0 => 0.0,
            1 => -0.0,
            2 => f64::NAN,
            3 => f64::NEG_INFINITY,
            _ => rng.random_range(-1e9..1e9),
        }
    }

    fn point(rng: &mut impl Rng) -> agent::Point {
        fn n(rng: &mut impl Rng) -> usize {
            rng.random_range(0..5)
        }
        agent::Point {
            time: match rng.random_range(0..4) {
                0 => 0,
                1 => -rng.random_range(1..i64::MAX),
                _ => rng.random_range(1..i64::MAX),
            },
            name: text(rng),
            database: text(rng),
            retention_policy: text(rng),
            group: text(rng),
            dimensions: (0..n(rng)).map(|_| text(rng)).collect(),
            tags: (0..n(rng)).map(|_| (text(rng), text(rng))).collect(),
            fields_double: (0..n(rng)).map(|_| (text(rng), double(rng))).collect(),
            fields_int: (0..n(rng))
                .map(|_| {
                    let v = [0, 1, -1, i64::MIN, i64::MAX][rng.random_range(0..5)];
                    (text(rng), v)
                })
                .collect(),
            fields_string: (0..n(rng)).map(|_| (text(rng), text(rng))).collect(),
            by_name: rng.random(),
            fields_bool: (0..n(rng)).map(|_| (text(rng), rng.random())).collect(),
        }
    }

    /// Given an `agent::Point` itself, the encoder writes prost's bytes:
    /// the same maps iterate alike, so only the encoding is compared.
    #[test]
    fn a_point_given_as_fields_is_encoded_as_prost_encodes_it() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        let mut points = vec![agent::Point::default()];
        points.extend((0..2000).map(|_| point(&mut rng)));
        let mut got = PointFrames::default();
        let mut want = PointFrames::default();
        for p in &points {
            got.push(p);
            want.push_point(p);
        }
        assert_eq!(got.len(), points.len());
        assert_eq!(got.as_bytes(), want.as_bytes());
        // And prost reads them back (NaNs aside, compared by their bits).
        let back = got.decode().unwrap();
        assert_eq!(back.len(), points.len());
        let bits = |p: &agent::Point| -> HashMap<String, u64> {
            p.fields_double.iter().map(|(k, v)| (k.clone(), (v + 0.0).to_bits())).collect()
        };
        for (b, p) in back.iter().zip(&points) {
            assert_eq!(bits(b), bits(p));
            let strip =
                |p: &agent::Point| agent::Point { fields_double: HashMap::new(), ..p.clone() };
            assert_eq!(strip(b), strip(p));
        }
    }

    #[test]
    fn appending_keeps_the_frames_in_order() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let points: Vec<agent::Point> = (0..30).map(|_| point(&mut rng)).collect();
        let mut whole = PointFrames::default();
        points.iter().for_each(|p| whole.push_point(p));
        let mut parts = PointFrames::default();
        for chunk in points.chunks(7) {
            let mut part = PointFrames::default();
            chunk.iter().for_each(|p| part.push_point(p));
            parts.append(part);
            parts.append(PointFrames::default());
        }
        assert_eq!(parts, whole);
        assert!(parts.heap_bytes() >= parts.as_bytes().len());
    }

    struct Unordered;

    impl PointFields for Unordered {
        fn write_fields(&self, w: &mut PointWriter<'_>) {
            w.put(PointField::Group("g"));
            w.put(PointField::Name("n"));
        }
    }

    #[test]
    #[should_panic(expected = "out of order")]
    fn fields_out_of_order_are_refused() {
        PointFrames::default().push(&Unordered);
    }
}
