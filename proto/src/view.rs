//! A borrowed, zero-copy reader for the message a batch is made of: the
//! `Point` of a `Request{point}` frame, read straight from the frame bytes.
//!
//! Decoding a point with prost builds a `String` and a `HashMap` for its name,
//! tags and every field map, only for most of it to be dropped unread; on a
//! stream of points that was about half of what `serve` spent. [`PointView`]
//! instead checks the bytes once ([`PointView::from_request`]) and reads them
//! in place, and [`EncodedPoints`] keeps a batch's points as their bytes.
//!
//! The rule that makes this safe to use in place of prost: a frame is taken
//! by the fast path only when its decoding *cannot* differ from prost's. The
//! check accepts the `Request`/`Point` schema of `udf.proto` with the right
//! wire types, valid UTF-8 in every string, map entries holding only their
//! key and value (either may be missing or repeat), scalar fields that repeat
//! (the last wins, as in prost) and every varint prost accepts. Anything else
//! (an unknown field, a group, a `Request` with more than its one `point`
//! field, a truncated or malformed frame) is refused with `None`, and the
//! caller decodes the frame with prost, which then accepts it (and the point
//! can be stored re-encoded, [`EncodedPoints::push_point`]) or reports the
//! error exactly as before. [`PointView::to_point`] gives what prost gives;
//! the tests compare the two on generated, mutated and real input.
//!
//! Owns: reading bytes. Does not own: which fields a node tracks, or what a
//! value that cannot be scored means (the engine's `node::values`).

use crate::agent;

/// `Request.point`: field 17.
const REQUEST_POINT: u32 = 17;

/// Wire types (protobuf encoding).
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// `Point` field numbers (`udf.proto`).
pub(crate) mod tag {
    pub const TIME: u32 = 1;
    pub const NAME: u32 = 2;
    pub const DATABASE: u32 = 3;
    pub const RETENTION_POLICY: u32 = 4;
    pub const GROUP: u32 = 5;
    pub const DIMENSIONS: u32 = 6;
    pub const TAGS: u32 = 7;
    pub const FIELDS_DOUBLE: u32 = 8;
    pub const FIELDS_INT: u32 = 9;
    pub const FIELDS_STRING: u32 = 10;
    pub const BY_NAME: u32 = 11;
    pub const FIELDS_BOOL: u32 = 12;
}

/// One value of a point's field maps, with the map it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    /// From `fieldsDouble`.
    Double(f64),
    /// From `fieldsInt`.
    Int(i64),
    /// From `fieldsString`.
    String(&'a str),
    /// From `fieldsBool`.
    Bool(bool),
}

/// A field's payload as on the wire.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
}

/// A position in a byte slice, reading protobuf primitives the way prost
/// does; every method returns `None` where prost would fail (and, for a few
/// inputs prost accepts, as well: those go to prost).
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A uvarint of at most 10 bytes whose 10th byte is 0 or 1 (prost's
    /// overflow rule).
    #[inline]
    fn varint(&mut self) -> Option<u64> {
        // Keys, lengths and most small values are one byte.
        if let Some((&b, rest)) = self.buf.split_first()
            && b < 0x80
        {
            self.buf = rest;
            return Some(u64::from(b));
        }
        self.varint_long()
    }

    /// A varint of two or more bytes (see [`Cursor::varint_words`]).
    fn varint_long(&mut self) -> Option<u64> {
        self.varint_words()
    }

    /// A varint of any length. With ten bytes at hand (a point's
    /// nanosecond `time` takes nine), it is decoded from two words
    /// without a loop; near the end of the buffer, byte by byte. Inlined
    /// where the varint is usually long (`time`).
    #[inline(always)]
    fn varint_words(&mut self) -> Option<u64> {
        if let Some((head, rest)) = self.buf.split_first_chunk::<8>()
            && let [b8, b9, ..] = *rest
        {
            let w = u64::from_le_bytes(*head);
            // A byte whose top bit is clear ends the varint.
            let ends = !w & 0x8080_8080_8080_8080;
            let (value, used) = if ends != 0 {
                let used = (ends.trailing_zeros() / 8 + 1) as usize;
                // Keep the varint's own bytes (`used` < 8 always keeps some).
                let mask = if used == 8 { u64::MAX } else { (1u64 << (8 * used)) - 1 };
                (compact7(w & mask), used)
            } else if b8 < 0x80 {
                (compact7(w) | u64::from(b8) << 56, 9)
            } else if b9 <= 1 {
                // The 10th byte may only carry the 64th bit (prost's rule).
                (compact7(w) | u64::from(b8 & 0x7f) << 56 | u64::from(b9) << 63, 10)
            } else {
                return None;
            };
            self.buf = &self.buf[used..];
            return Some(value);
        }
        self.varint_bytewise()
    }

    #[cold]
    fn varint_bytewise(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                return None;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Some(value);
            }
        }
        None
    }

    /// A field key: (field number, wire type), as prost's `decode_key`.
    #[inline]
    fn key(&mut self) -> Option<(u32, u8)> {
        let key = self.varint()?;
        let key = u32::try_from(key).ok()?;
        let (number, wire) = (key >> 3, (key & 7) as u8);
        (number >= 1).then_some((number, wire))
    }

    /// A length-delimited payload.
    #[inline]
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Some(head)
    }

    #[inline]
    fn fixed64(&mut self) -> Option<u64> {
        let (head, rest) = self.buf.split_first_chunk::<8>()?;
        self.buf = rest;
        Some(u64::from_le_bytes(*head))
    }

    /// One field: its number and payload. Only the three wire types the
    /// schema uses are read; a 32-bit field or a group is `None`.
    // Inlined into the check's loop, the tuple stays in registers.
    #[inline(always)]
    fn field(&mut self) -> Option<(u32, u8, Raw<'a>)> {
        let (number, wire) = self.key()?;
        let raw = match wire {
            VARINT => Raw::Varint(self.varint()?),
            FIXED64 => Raw::Fixed64(self.fixed64()?),
            LEN => Raw::Bytes(self.bytes()?),
            _ => return None,
        };
        Some((number, wire, raw))
    }
}

/// The low 7 bits of each byte of `w`, packed: the value of a varint's
/// (up to) 8 bytes, its continuation bits dropped.
#[inline]
fn compact7(w: u64) -> u64 {
    let x = w & 0x7f7f_7f7f_7f7f_7f7f;
    let x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
    let x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
    (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4)
}

/// Whether `b` is UTF-8, as prost checks every string (ASCII, the common
/// case, checked word by word first).
#[inline]
fn is_utf8(b: &[u8]) -> bool {
    b.is_ascii() || std::str::from_utf8(b).is_ok()
}

/// The wire type a map entry's value must have, and whether it is a string.
fn value_wire(map: u32) -> (u8, bool) {
    match map {
        tag::FIELDS_DOUBLE => (FIXED64, false),
        tag::FIELDS_INT | tag::FIELDS_BOOL => (VARINT, false),
        _ => (LEN, true), // tags, fieldsString
    }
}

/// The shape prost (and Kapacitor) write a map entry in: key (1) with a
/// one-byte length, then value (2), each once and nothing else. Returns the
/// key, the value and the value's wire type; `None` for any other shape
/// (read then field by field).
#[inline]
fn entry_fast(bytes: &[u8]) -> Option<(&[u8], Raw<'_>, u8)> {
    let [0x0a, klen, rest @ ..] = bytes else { return None };
    let klen = usize::from(*klen);
    if klen >= 0x80 || klen >= rest.len() {
        return None;
    }
    let (key, rest) = rest.split_at(klen);
    let (&vkey, value) = rest.split_first()?;
    let mut c = Cursor { buf: value };
    let raw = match vkey {
        0x10 => Raw::Varint(c.varint()?),
        0x11 => Raw::Fixed64(c.fixed64()?),
        0x12 => Raw::Bytes(c.bytes()?),
        _ => return None,
    };
    c.is_empty().then_some((key, raw, vkey & 7))
}

/// The value of a checked map entry of field map `map` (`None`: the entry
/// omits it, the map's default). Strings were checked as UTF-8.
#[inline]
fn field_value(map: u32, raw: Option<Raw<'_>>) -> FieldValue<'_> {
    match (map, raw) {
        (tag::FIELDS_DOUBLE, Some(Raw::Fixed64(x))) => FieldValue::Double(f64::from_bits(x)),
        (tag::FIELDS_DOUBLE, _) => FieldValue::Double(0.0),
        (tag::FIELDS_INT, Some(Raw::Varint(x))) => FieldValue::Int(x as i64),
        (tag::FIELDS_INT, _) => FieldValue::Int(0),
        (tag::FIELDS_STRING, Some(Raw::Bytes(s))) => FieldValue::String(text(s)),
        (tag::FIELDS_STRING, _) => FieldValue::String(""),
        (_, Some(Raw::Varint(x))) => FieldValue::Bool(x != 0),
        (_, _) => FieldValue::Bool(false),
    }
}

/// What the check hands a point's field-map entries to.
trait EntrySink {
    /// Takes a whole field-map entry at the start of `rest` (its field key
    /// first) when it has one exact shape the sink knows to be valid and
    /// wants ([`Tracked`]), returning the bytes taken; `None` (the default):
    /// the check reads the field as usual.
    #[inline(always)]
    fn take_known(&mut self, _rest: &[u8]) -> Option<usize> {
        None
    }

    /// One checked entry of a field map (not `tags`), as [`entry`] reads it.
    fn entry(&mut self, key: &[u8], value: FieldValue<'_>);

    /// A whole field (key, length, payload) the check took that gives the
    /// sink nothing (a string field or a `tags` entry): the same bytes are
    /// taken again wherever they appear, so the sink may take them in
    /// [`EntrySink::take_known`].
    #[inline(always)]
    fn checked(&mut self, _field: &[u8]) {}
}

/// A sink taking every entry by its key.
struct ByKey<F>(F);

impl<F: FnMut(&[u8], FieldValue<'_>)> EntrySink for ByKey<F> {
    #[inline(always)]
    fn entry(&mut self, key: &[u8], value: FieldValue<'_>) {
        (self.0)(key, value);
    }
}

/// Checks one map entry: only key (1, a string) and value (2, of the map's
/// type), each possibly missing or repeated. An entry of a field map (not
/// `tags`) is handed to `sink` as [`entry`] reads it (the last key and the
/// last value).
#[inline]
fn check_entry<S: EntrySink>(entry: &[u8], map: u32, sink: &mut S) -> Option<()> {
    let (want, is_string) = value_wire(map);
    if let Some((key, raw, wire)) = entry_fast(entry) {
        let value_ok = match raw {
            Raw::Bytes(b) => !is_string || is_utf8(b),
            _ => true,
        };
        if !(wire == want && value_ok && is_utf8(key)) {
            return None;
        }
        if map != tag::TAGS {
            sink.entry(key, field_value(map, Some(raw)));
        }
        return Some(());
    }
    let mut c = Cursor { buf: entry };
    while !c.is_empty() {
        match c.field()? {
            (1, LEN, Raw::Bytes(b)) => {
                if !is_utf8(b) {
                    return None;
                }
            }
            (2, wire, raw) if wire == want => {
                if let (true, Raw::Bytes(b)) = (is_string, raw)
                    && !is_utf8(b)
                {
                    return None;
                }
            }
            _ => return None,
        }
    }
    if map != tag::TAGS {
        let (key, raw) = self::entry(entry);
        sink.entry(key, field_value(map, raw));
    }
    Some(())
}

/// Checks a `Point`'s bytes against the schema (see the module doc),
/// handing every field-map entry to `sink` on the way, in wire order. What
/// `sink` saw means nothing unless the whole check succeeds.
#[inline]
fn check_point<S: EntrySink>(body: &[u8], sink: &mut S) -> Option<()> {
    let mut c = Cursor { buf: body };
    while !c.is_empty() {
        // `time` with its one-byte key (as every encoder writes it): the
        // `(TIME, VARINT)` arm below, without decoding the key.
        if let [0x08, rest @ ..] = c.buf {
            c.buf = rest;
            c.varint_words()?;
            continue;
        }
        if let Some(n) = sink.take_known(c.buf) {
            c.buf = c.buf.get(n..)?;
            continue;
        }
        let start = c.buf;
        match c.field()? {
            (tag::TIME | tag::BY_NAME, VARINT, _) => {}
            (
                tag::NAME | tag::DATABASE | tag::RETENTION_POLICY | tag::GROUP | tag::DIMENSIONS,
                LEN,
                Raw::Bytes(b),
            ) => {
                if !is_utf8(b) {
                    return None;
                }
                sink.checked(&start[..start.len() - c.buf.len()]);
            }
            (tag::TAGS, LEN, Raw::Bytes(entry)) => {
                check_entry(entry, tag::TAGS, sink)?;
                sink.checked(&start[..start.len() - c.buf.len()]);
            }
            (
                map
                @ (tag::FIELDS_DOUBLE | tag::FIELDS_INT | tag::FIELDS_STRING | tag::FIELDS_BOOL),
                LEN,
                Raw::Bytes(entry),
            ) => check_entry(entry, map, sink)?,
            _ => return None,
        }
    }
    Some(())
}

/// The `Point` of a `Request` frame whose only field is `point`.
#[inline]
fn request_body(frame: &[u8]) -> Option<&[u8]> {
    // The key of `Request.point` (17, LEN) is two bytes, 0x8a 0x01, in
    // every encoder's shortest form; any other form is read as a varint.
    let mut c = match frame {
        [0x8a, 0x01, rest @ ..] => Cursor { buf: rest },
        _ => {
            let mut c = Cursor { buf: frame };
            let (REQUEST_POINT, LEN) = c.key()? else { return None };
            c
        }
    };
    let body = c.bytes()?;
    // Further fields: prost would merge or replace; let it.
    c.is_empty().then_some(body)
}

/// Text already checked to be UTF-8 (by [`check_point`]); "" if not.
fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// A decoded map entry: key bytes and the value's raw payload (`None` when
/// the entry omits it: the map's default value).
fn entry(bytes: &[u8]) -> (&[u8], Option<Raw<'_>>) {
    if let Some((key, raw, _)) = entry_fast(bytes) {
        return (key, Some(raw));
    }
    let mut key: &[u8] = &[];
    let mut value = None;
    let mut c = Cursor { buf: bytes };
    while let Some((number, _, raw)) = c.field() {
        match (number, raw) {
            (1, Raw::Bytes(b)) => key = b,
            (2, raw) => value = Some(raw),
            _ => {}
        }
    }
    (key, value)
}

/// A `Point` read in place. Made only by checking its bytes
/// ([`PointView::parse`], [`PointView::from_request`]) or from an
/// [`EncodedPoints`] (which holds only checked bytes); every accessor
/// returns what prost's decoding of the same bytes holds.
#[derive(Debug, Clone, Copy)]
pub struct PointView<'a> {
    body: &'a [u8],
}

impl<'a> PointView<'a> {
    /// The `Point` of a `Request` frame (without its length prefix) whose
    /// only field is `point`; `None` for any other frame, and for any frame
    /// the fast path leaves to prost (see the module doc).
    pub fn from_request(frame: &'a [u8]) -> Option<PointView<'a>> {
        PointView::parse(request_body(frame)?)
    }

    /// A `Point`'s own bytes, if the fast path takes them.
    pub fn parse(body: &'a [u8]) -> Option<PointView<'a>> {
        check_point(body, &mut ByKey(|_: &[u8], _: FieldValue<'_>| {}))?;
        Some(PointView { body })
    }

    /// [`PointView::from_request`], handing each entry of the point's field
    /// maps to `sink` (key, value; in wire order, a key may repeat) while the
    /// point is checked: one pass for checking and reading, where
    /// [`PointView::field_entries`] would be a second. When this returns
    /// `None`, what `sink` saw is to be thrown away (the frame goes to
    /// prost); otherwise it saw exactly what `field_entries` yields.
    pub fn from_request_reading<F: FnMut(&[u8], FieldValue<'_>)>(
        frame: &'a [u8],
        mut sink: F,
    ) -> Option<PointView<'a>> {
        let body = request_body(frame)?;
        check_point(body, &mut ByKey(&mut sink))?;
        Some(PointView { body })
    }

    /// [`PointView::from_request_reading`] for the entries whose key is one
    /// of `tracked`'s names only: `sink` gets the name's index (the first
    /// equal name's) and the value. Takes exactly the frames
    /// [`PointView::from_request`] takes; an entry of the exact shape
    /// prost and Kapacitor write for a tracked `fieldsDouble` name is
    /// read from its bytes in one comparison (see [`Tracked`]).
    ///
    /// `tracked` also remembers a few string fields and `tags` entries
    /// the check took (a batch's points share their group and tags), and
    /// takes the same bytes again without checking them.
    #[inline]
    pub fn from_request_tracked<F: FnMut(usize, FieldValue<'_>)>(
        frame: &'a [u8],
        tracked: &mut Tracked,
        sink: F,
    ) -> Option<PointView<'a>> {
        let body = request_body(frame)?;
        check_point(body, &mut tracked::ByIndex { tracked, sink })?;
        Some(PointView { body })
    }

    /// The point's encoded bytes (a `Point` message).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.body
    }

    fn fields_raw(&self) -> impl Iterator<Item = (u32, Raw<'a>)> + 'a {
        let mut c = Cursor { buf: self.body };
        std::iter::from_fn(move || c.field().map(|(n, _, raw)| (n, raw)))
    }

    /// The last occurrence of scalar field `number` (prost: the last wins).
    fn last(&self, number: u32) -> Option<Raw<'a>> {
        self.fields_raw().filter(|(n, _)| *n == number).map(|(_, r)| r).last()
    }

    fn last_text(&self, number: u32) -> &'a str {
        match self.last(number) {
            Some(Raw::Bytes(b)) => text(b),
            _ => "",
        }
    }

    /// `time`.
    pub fn time(&self) -> i64 {
        match self.last(tag::TIME) {
            Some(Raw::Varint(v)) => v as i64,
            _ => 0,
        }
    }

    /// [`PointView::time`] and [`PointView::group`] in one pass over the
    /// point (a stream point needs both).
    pub fn time_and_group(&self) -> (i64, &'a str) {
        let (mut time, mut group) = (0, "");
        for (n, raw) in self.fields_raw() {
            match (n, raw) {
                (tag::TIME, Raw::Varint(v)) => time = v as i64,
                (tag::TIME, _) => time = 0,
                (tag::GROUP, Raw::Bytes(b)) => group = text(b),
                (tag::GROUP, _) => group = "",
                _ => {}
            }
        }
        (time, group)
    }

    /// `name`.
    pub fn name(&self) -> &'a str {
        self.last_text(tag::NAME)
    }

    /// `group`.
    pub fn group(&self) -> &'a str {
        self.last_text(tag::GROUP)
    }

    /// `byName`.
    pub fn by_name(&self) -> bool {
        matches!(self.last(tag::BY_NAME), Some(Raw::Varint(v)) if v != 0)
    }

    /// `dimensions`, in order.
    pub fn dimensions(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.fields_raw().filter_map(|(n, raw)| match (n, raw) {
            (tag::DIMENSIONS, Raw::Bytes(b)) => Some(text(b)),
            _ => None,
        })
    }

    /// `tags` entries in wire order. A key may repeat; as in prost's map,
    /// the last entry of a key is its value.
    pub fn tags(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.fields_raw().filter_map(|(n, raw)| match (n, raw) {
            (tag::TAGS, Raw::Bytes(b)) => {
                let (k, v) = entry(b);
                let v = match v {
                    Some(Raw::Bytes(v)) => text(v),
                    _ => "",
                };
                Some((text(k), v))
            }
            _ => None,
        })
    }

    /// The last value of tag `key`, as prost's map would hold it.
    pub fn tag(&self, key: &str) -> Option<&'a str> {
        self.tags().filter(|(k, _)| *k == key).map(|(_, v)| v).last()
    }

    /// Every entry of the four field maps, in wire order, with its map. A
    /// key may repeat within a map; the last entry is its value there.
    pub fn fields(&self) -> impl Iterator<Item = (&'a str, FieldValue<'a>)> + 'a {
        self.field_entries().map(|(k, v)| (text(k), v))
    }

    /// [`PointView::fields`] with each key as its bytes (checked UTF-8), for
    /// a caller that only compares names and so skips a second check.
    pub fn field_entries(&self) -> impl Iterator<Item = (&'a [u8], FieldValue<'a>)> + 'a {
        self.fields_raw().filter_map(|(n, raw)| {
            let Raw::Bytes(b) = raw else { return None };
            if !matches!(
                n,
                tag::FIELDS_DOUBLE | tag::FIELDS_INT | tag::FIELDS_STRING | tag::FIELDS_BOOL
            ) {
                return None;
            }
            // A missing value is the map's default, as in prost.
            let (k, v) = entry(b);
            Some((k, field_value(n, v)))
        })
    }

    /// The point as prost decodes the same bytes.
    pub fn to_point(&self) -> agent::Point {
        let mut p = agent::Point {
            time: self.time(),
            name: self.name().to_string(),
            database: self.last_text(tag::DATABASE).to_string(),
            retention_policy: self.last_text(tag::RETENTION_POLICY).to_string(),
            group: self.group().to_string(),
            dimensions: self.dimensions().map(str::to_string).collect(),
            tags: self.tags().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            by_name: self.by_name(),
            ..Default::default()
        };
        for (k, v) in self.fields() {
            let k = k.to_string();
            match v {
                FieldValue::Double(x) => {
                    p.fields_double.insert(k, x);
                }
                FieldValue::Int(x) => {
                    p.fields_int.insert(k, x);
                }
                FieldValue::String(x) => {
                    p.fields_string.insert(k, x.to_string());
                }
                FieldValue::Bool(x) => {
                    p.fields_bool.insert(k, x);
                }
            }
        }
        p
    }
}

/// The fast path's contract, checked on one `Request` frame body: `Ok(true)`
/// when [`PointView::from_request`] takes it and prost decodes it to the same
/// point (NaNs compared by their bits), `Ok(false)` when the fast path leaves
/// it to prost, `Err` with both readings when they differ. For the tests and
/// the `point_view` fuzz target.
pub fn compare_with_prost(frame: &[u8]) -> Result<bool, String> {
    // The one-pass reading takes what the check takes and sees what
    // `field_entries` reads afterwards (doubles compared by their bits).
    let mut seen = Vec::new();
    let reading = PointView::from_request_reading(frame, |k, v| seen.push(entry_bits(k, v)));
    // Reading only tracked names: names the frame holds, and a few others
    // (repeated, empty, longer than one word, too long for a one-byte
    // entry length), sees the tracked part of the same entries.
    let mut names: Vec<String> =
        ["bed", "hotend", "", "printerprinter", "bed", "x=y,zhotend"].map(String::from).into();
    names.extend([116, 117].map(|n| "n".repeat(n)));
    names.extend(seen.iter().filter_map(|(k, ..)| String::from_utf8(k.clone()).ok()));
    let mut tracked = Tracked::new(&names);
    let mut seen_tracked = Vec::new();
    let reading_tracked = PointView::from_request_tracked(frame, &mut tracked, |i, v| {
        seen_tracked.push((i, entry_bits(b"", v)));
    });
    // Again, with the fields the first reading remembered: the same.
    let mut seen_again = Vec::new();
    let again = PointView::from_request_tracked(frame, &mut tracked, |i, v| {
        seen_again.push((i, entry_bits(b"", v)));
    });
    if again.is_some() != reading_tracked.is_some() || seen_again != seen_tracked {
        return Err(format!(
            "tracked reading with remembered fields differs: {seen_again:?} vs {seen_tracked:?}"
        ));
    }
    let Some(view) = PointView::from_request(frame) else {
        return match (reading, reading_tracked) {
            (None, None) => Ok(false),
            (Some(_), _) => Err("from_request_reading took a frame from_request refuses".into()),
            (_, Some(_)) => Err("from_request_tracked took a frame from_request refuses".into()),
        };
    };
    if reading.is_none() {
        return Err("from_request_reading refused a frame from_request takes".into());
    }
    if reading_tracked.is_none() {
        return Err("from_request_tracked refused a frame from_request takes".into());
    }
    let after: Vec<_> = view.field_entries().map(|(k, v)| entry_bits(k, v)).collect();
    if seen != after {
        return Err(format!("reading while checking saw {seen:?}, field_entries {after:?}"));
    }
    let want_tracked: Vec<_> = view
        .field_entries()
        .filter_map(|(k, v)| {
            Some((names.iter().position(|n| n.as_bytes() == k)?, entry_bits(b"", v)))
        })
        .collect();
    if seen_tracked != want_tracked {
        return Err(format!(
            "tracked reading saw {seen_tracked:?}, field_entries {want_tracked:?}"
        ));
    }
    let decoded = <agent::Request as prost::Message>::decode(frame);
    let Ok(agent::Request { message: Some(agent::request::Message::Point(p)) }) = decoded else {
        return Err(format!("fast path took a frame prost decodes as {decoded:?}"));
    };
    let fast = view.to_point();
    if normal(&fast) != normal(&p) {
        return Err(format!("fast path read {fast:?}, prost {p:?}"));
    }
    if view.time_and_group() != (p.time, p.group.as_str()) {
        return Err(format!("time_and_group read {:?}, prost {p:?}", view.time_and_group()));
    }
    Ok(true)
}

/// A field entry with its value in a form that compares NaNs by bits.
fn entry_bits(k: &[u8], v: FieldValue<'_>) -> (Vec<u8>, u8, u64, String) {
    match v {
        FieldValue::Double(x) => (k.to_vec(), 0, x.to_bits(), String::new()),
        FieldValue::Int(x) => (k.to_vec(), 1, x as u64, String::new()),
        FieldValue::String(x) => (k.to_vec(), 2, 0, x.to_string()),
        FieldValue::Bool(x) => (k.to_vec(), 3, u64::from(x), String::new()),
    }
}

/// A point's contents in a comparable order, doubles as bits.
fn normal(p: &agent::Point) -> impl PartialEq + use<> {
    fn sorted<V: Clone + PartialOrd>(m: &std::collections::HashMap<String, V>) -> Vec<(String, V)> {
        let mut v: Vec<(String, V)> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
    let doubles: std::collections::HashMap<String, u64> =
        p.fields_double.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect();
    (
        (p.time, p.by_name, p.dimensions.clone()),
        [p.name.clone(), p.database.clone(), p.retention_policy.clone(), p.group.clone()],
        (sorted(&p.tags), sorted(&doubles), sorted(&p.fields_int)),
        (sorted(&p.fields_string), sorted(&p.fields_bool)),
    )
}

/// Encodes `p` as a `Point` message with prost's primitives, map values
/// always present (see [`EncodedPoints::push_point`]).
fn encode_point(p: &agent::Point, out: &mut Vec<u8>) {
    use prost::encoding::{
        WireType, bool as pbool, double, encode_key, encode_varint, encoded_len_varint, int64,
        string,
    };
    fn entry(out: &mut Vec<u8>, map: u32, key: &str, len: usize, value: impl FnOnce(&mut Vec<u8>)) {
        // Key: one byte of key (field 1), its length, its bytes.
        let key_len = 1 + encoded_len_varint(key.len() as u64) + key.len();
        encode_key(map, WireType::LengthDelimited, out);
        encode_varint((key_len + len) as u64, out);
        encode_key(1, WireType::LengthDelimited, out);
        encode_varint(key.len() as u64, out);
        out.extend_from_slice(key.as_bytes());
        value(out);
    }
    if p.time != 0 {
        int64::encode(tag::TIME, &p.time, out);
    }
    for (n, s) in [
        (tag::NAME, &p.name),
        (tag::DATABASE, &p.database),
        (tag::RETENTION_POLICY, &p.retention_policy),
        (tag::GROUP, &p.group),
    ] {
        if !s.is_empty() {
            string::encode(n, s, out);
        }
    }
    string::encode_repeated(tag::DIMENSIONS, &p.dimensions, out);
    for (k, v) in &p.tags {
        entry(out, tag::TAGS, k, string::encoded_len(2, v), |o| string::encode(2, v, o));
    }
    for (k, v) in &p.fields_double {
        entry(out, tag::FIELDS_DOUBLE, k, double::encoded_len(2, v), |o| double::encode(2, v, o));
    }
    for (k, v) in &p.fields_int {
        entry(out, tag::FIELDS_INT, k, int64::encoded_len(2, v), |o| int64::encode(2, v, o));
    }
    for (k, v) in &p.fields_string {
        entry(out, tag::FIELDS_STRING, k, string::encoded_len(2, v), |o| string::encode(2, v, o));
    }
    if p.by_name {
        pbool::encode(tag::BY_NAME, &p.by_name, out);
    }
    for (k, v) in &p.fields_bool {
        entry(out, tag::FIELDS_BOOL, k, pbool::encoded_len(2, v), |o| pbool::encode(2, v, o));
    }
}

/// The points of a batch kept as their encoded bytes, one buffer for all:
/// what a point costs is its frame, with no allocation per point. Holds only
/// bytes the fast path checked (or prost's own encoding of a point it
/// decoded), so reading them back needs no second check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedPoints {
    bytes: Vec<u8>,
    /// End offset of each point in `bytes`.
    ends: Vec<usize>,
}

impl EncodedPoints {
    /// Room for `points` points reserved up front.
    pub fn with_capacity(points: usize) -> EncodedPoints {
        EncodedPoints { bytes: Vec::new(), ends: Vec::with_capacity(points) }
    }

    /// Appends a checked point.
    pub fn push(&mut self, p: PointView<'_>) {
        self.bytes.extend_from_slice(p.body);
        self.ends.push(self.bytes.len());
    }

    /// Appends a point prost decoded (one the fast path left to prost).
    /// Reading it back gives the same point: every map entry is written
    /// with its value, even a default one, because prost's own encoder
    /// leaves out a `-0.0` map value, which then reads back as `0.0`.
    pub fn push_point(&mut self, p: &agent::Point) {
        encode_point(p, &mut self.bytes);
        self.ends.push(self.bytes.len());
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes held (the points' encodings and their offsets).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }

    /// Point `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<PointView<'_>> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(PointView { body: self.bytes.get(start..end)? })
    }

    /// Drops the first `n` points (all of them when `n` is at least
    /// [`EncodedPoints::len`]), keeping the buffers' capacity.
    pub fn drain_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if n >= self.ends.len() {
            self.bytes.clear();
            self.ends.clear();
            return;
        }
        let cut = self.ends[n - 1];
        self.bytes.drain(..cut);
        self.ends.drain(..n);
        self.ends.iter_mut().for_each(|e| *e -= cut);
    }

    /// The points, in the order they were pushed.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = PointView<'_>> + '_ {
        (0..self.ends.len()).map(|i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            PointView { body: self.bytes.get(start..self.ends[i]).unwrap_or_default() }
        })
    }
}

mod tracked;

pub use tracked::Tracked;

#[cfg(test)]
mod tests;
