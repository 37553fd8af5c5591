//! Which values of a point a node scores: the one rule for "usable", shared
//! by the node and by `replay`'s report of skipped values.
//!
//! A tracked field is read from `fieldsDouble` (finite values only) or
//! `fieldsInt` (Kapacitor sends `hotend=220i` as an int). NaN, infinities,
//! strings and booleans in a tracked field are unusable: skipped and counted.
//! A point kept as its bytes ([`PointView`]) is read by [`ViewReader`] with
//! the same rule, in one pass for all tracked fields; `serve`'s reader
//! fills a batch's [`Columns`] while it checks each point frame, in the
//! same pass as the check.

use std::sync::Arc;

use tickwatch_proto::view::Tracked;
use tickwatch_proto::{FieldValue, PointView, agent};

/// What a point holds for one tracked field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// A value to score.
    Value(f64),
    /// The field is there but cannot be scored.
    Unusable,
    /// The point does not carry the field.
    Absent,
}

/// Reads `field` from `p`.
pub fn read(p: &agent::Point, field: &str) -> Reading {
    if let Some(&v) = p.fields_double.get(field) {
        if v.is_finite() { Reading::Value(v) } else { Reading::Unusable }
    } else if let Some(&v) = p.fields_int.get(field) {
        Reading::Value(v as f64)
    } else if p.fields_string.contains_key(field) || p.fields_bool.contains_key(field) {
        Reading::Unusable
    } else {
        Reading::Absent
    }
}

/// What one pass over a point's field maps saw of one tracked field: the
/// last value of each map, as a decoded point's maps would hold it.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    double: f64,
    int: i64,
    /// Which maps held the field: [`Seen::DOUBLE`], [`Seen::INT`],
    /// [`Seen::OTHER`] (one word rather than two `Option`s: this is reset
    /// and read for every tracked field of every point).
    has: u8,
}

impl Seen {
    const DOUBLE: u8 = 1;
    const INT: u8 = 2;
    const OTHER: u8 = 4;

    /// Records one entry of the point's field maps (the last one wins).
    #[inline]
    fn note(&mut self, value: FieldValue<'_>) {
        match value {
            FieldValue::Double(v) => {
                self.double = v;
                self.has |= Seen::DOUBLE;
            }
            FieldValue::Int(v) => {
                self.int = v;
                self.has |= Seen::INT;
            }
            FieldValue::String(_) | FieldValue::Bool(_) => self.has |= Seen::OTHER,
        }
    }

    /// [`read`]'s precedence: `fieldsDouble`, then `fieldsInt`, then the rest.
    #[inline]
    fn reading(self) -> Reading {
        if self.has & Seen::DOUBLE != 0 {
            if self.double.is_finite() { Reading::Value(self.double) } else { Reading::Unusable }
        } else if self.has & Seen::INT != 0 {
            Reading::Value(self.int as f64)
        } else if self.has & Seen::OTHER != 0 {
            Reading::Unusable
        } else {
            Reading::Absent
        }
    }
}

/// Reads the tracked fields of points kept as bytes; reused from point to
/// point so reading allocates nothing.
#[derive(Debug, Default)]
pub struct ViewReader {
    seen: Vec<Seen>,
}

impl ViewReader {
    /// What `p` holds for each of `fields`, in order: exactly what [`read`]
    /// gives for each field of the decoded point.
    pub fn read<'s>(
        &'s mut self,
        p: &PointView<'_>,
        fields: &[String],
    ) -> impl ExactSizeIterator<Item = Reading> + 's {
        self.seen.clear();
        self.seen.resize(fields.len(), Seen::default());
        for (key, value) in p.field_entries() {
            // A node tracks a handful of fields: a scan beats hashing.
            let Some(i) = fields.iter().position(|f| f.as_bytes() == key) else { continue };
            self.seen[i].note(value);
        }
        self.seen.iter().map(|s| s.reading())
    }
}

/// A batch's tracked fields read out of its rows as columns: each field's
/// usable values in row order and how many were unusable, exactly what
/// reading the rows one by one ([`read`], [`ViewReader`]) gives. `serve`'s
/// reader fills it while it checks the point frames
/// ([`Columns::read_frame`]), so the worker reads nothing twice.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    fields: Arc<[String]>,
    /// `fields`, prepared for matching a point's entries.
    tracked: Tracked,
    values: Vec<Vec<f64>>,
    skipped: Vec<u64>,
    rows: usize,
    /// Scratch: what the current row holds per field.
    seen: Vec<Seen>,
}

impl Columns {
    /// Empty columns for `fields`, with room for `rows` rows.
    pub fn new(fields: Arc<[String]>, rows: usize) -> Columns {
        let n = fields.len();
        Columns {
            values: (0..n).map(|_| Vec::with_capacity(rows)).collect(),
            skipped: vec![0; n],
            rows: 0,
            seen: vec![Seen::default(); n],
            tracked: Tracked::new(&fields),
            fields,
        }
    }

    /// The fields, in the order of [`Columns::values`].
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Field `i`'s usable values, in row order.
    pub fn values(&self, i: usize) -> &[f64] {
        self.values.get(i).map_or(&[], Vec::as_slice)
    }

    /// How many of field `i`'s values were unusable.
    pub fn skipped(&self, i: usize) -> u64 {
        self.skipped.get(i).copied().unwrap_or(0)
    }

    /// Rows read.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.values.iter().map(|v| v.capacity() * 8).sum::<usize>() + self.skipped.len() * 8
    }

    /// Takes one `Request` frame body if the fast path takes its point
    /// ([`PointView::from_request`]): its tracked values are added as a
    /// row, read in the same pass as the check. `None` (nothing added): the
    /// frame is prost's to decode (then [`Columns::push_point`]).
    #[inline]
    pub fn read_frame<'f>(&mut self, frame: &'f [u8]) -> Option<PointView<'f>> {
        // No bit of `seen` is set here: cleared after every frame, below.
        let seen = &mut self.seen;
        let view = PointView::from_request_tracked(frame, &mut self.tracked, |i, value| {
            if let Some(s) = seen.get_mut(i) {
                s.note(value);
            }
        });
        let Some(view) = view else {
            self.seen.iter_mut().for_each(|s| s.has = 0);
            return None;
        };
        self.rows += 1;
        let columns = self.values.iter_mut().zip(&mut self.skipped);
        for (s, (values, skipped)) in self.seen.iter_mut().zip(columns) {
            match s.reading() {
                Reading::Value(v) => values.push(v),
                Reading::Unusable => *skipped += 1,
                Reading::Absent => {}
            }
            // `reading` looks at a value only when its bit is set.
            s.has = 0;
        }
        Some(view)
    }

    /// Adds a decoded point as a row.
    pub fn push_point(&mut self, p: &agent::Point) {
        self.rows += 1;
        for (i, f) in self.fields.iter().enumerate() {
            match read(p, f) {
                Reading::Value(v) => self.values[i].push(v),
                Reading::Unusable => self.skipped[i] += 1,
                Reading::Absent => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn reads_doubles_and_ints_and_refuses_the_rest() {
        let p = agent::Point {
            fields_double: HashMap::from([
                ("d".into(), 1.5),
                ("nan".into(), f64::NAN),
                ("inf".into(), f64::NEG_INFINITY),
            ]),
            fields_int: HashMap::from([("i".into(), 7)]),
            fields_string: HashMap::from([("s".into(), "x".into())]),
            fields_bool: HashMap::from([("b".into(), true)]),
            ..Default::default()
        };
        assert_eq!(read(&p, "d"), Reading::Value(1.5));
        assert_eq!(read(&p, "i"), Reading::Value(7.0));
        for f in ["nan", "inf", "s", "b"] {
            assert_eq!(read(&p, f), Reading::Unusable, "{f}");
        }
        assert_eq!(read(&p, "missing"), Reading::Absent);
    }

    #[test]
    fn a_point_read_in_place_reads_as_decoded() {
        use tickwatch_proto::agent::{Request, request};
        use tickwatch_proto::{Incoming, encode_frame, read_request_or_point};
        let mut p = agent::Point {
            fields_double: HashMap::from([
                ("d".into(), 1.5),
                ("nan".into(), f64::NAN),
                ("both".into(), f64::INFINITY),
            ]),
            fields_int: HashMap::from([("i".into(), 7), ("both".into(), 3), ("is".into(), 2)]),
            fields_string: HashMap::from([("s".into(), "x".into()), ("is".into(), "y".into())]),
            fields_bool: HashMap::from([("b".into(), true)]),
            ..Default::default()
        };
        let fields: Vec<String> =
            ["d", "nan", "both", "i", "is", "s", "b", "missing"].map(String::from).to_vec();
        let mut reader = ViewReader::default();
        for _ in 0..2 {
            let frame =
                encode_frame(&Request { message: Some(request::Message::Point(p.clone())) });
            let mut buf = Vec::new();
            let got = read_request_or_point(&mut frame.as_slice(), &mut buf, true).unwrap();
            let Some(Incoming::Point(view)) = got else { panic!("not read in place: {got:?}") };
            let got: Vec<Reading> = reader.read(&view, &fields).collect();
            let want: Vec<Reading> = fields.iter().map(|f| read(&p, f)).collect();
            assert_eq!(format!("{got:?}"), format!("{want:?}"));
            p.fields_double.clear();
        }
    }

    /// Random points written byte by byte (names repeated within and
    /// across maps, in any order, non-finite doubles, untracked names, and
    /// some frames the fast path refuses): the columns hold exactly what
    /// [`read`] gives for prost's decoding of each frame it takes, and a
    /// refused frame leaves them as they were.
    #[test]
    fn columns_of_random_points_hold_what_reading_each_decoded_row_gives() {
        use rand::{RngExt, SeedableRng};
        use tickwatch_proto::agent::{Request, request};
        use tickwatch_proto::{Incoming, decode_request_or_point};
        let mut chacha = rand_chacha::ChaCha8Rng::seed_from_u64(0x2545_f491);
        let mut rng = move |n: u64| chacha.random_range(0..n);
        let names = ["hotend", "bed", "air", "fan", "a_rather_long_field_name_x"];
        let fields: Vec<String> = names[..4].iter().map(|s| s.to_string()).collect();
        let entry = |map: u8, name: &str, value: &[u8]| {
            let mut e = vec![0x0a, name.len() as u8];
            e.extend_from_slice(name.as_bytes());
            e.extend_from_slice(value);
            let mut out = vec![map << 3 | 2, e.len() as u8];
            out.extend(e);
            out
        };
        for round in 0..4000 {
            let mut cols = Columns::new(fields.clone().into(), 4);
            let mut want: Vec<(Vec<f64>, u64)> = vec![(Vec::new(), 0); fields.len()];
            let mut rows = 0;
            for _ in 0..1 + rng(4) {
                let mut body = vec![0x08, 0x80, 0x94, 0xa7, 0xea, 0xca, 0x8a, 0xc9, 0x92, 0x14];
                for _ in 0..rng(7) {
                    let name = names[rng(names.len() as u64) as usize];
                    let (map, value) = match rng(10) {
                        0 => (9, vec![0x10, rng(100) as u8]),
                        1 => (10, vec![0x12, 1, b'x']),
                        2 => (12, vec![0x10, 1]),
                        3 => {
                            let v = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][rng(3) as usize];
                            let mut b = vec![0x11];
                            b.extend(v.to_le_bytes());
                            (8, b)
                        }
                        _ => {
                            let mut b = vec![0x11];
                            b.extend((rng(1000) as f64 / 8.0).to_le_bytes());
                            (8, b)
                        }
                    };
                    body.extend(entry(map, name, &value));
                }
                let refused = rng(8) == 0;
                if refused {
                    // An unknown field: the fast path leaves the frame to prost.
                    body.extend([0xf8, 0x01, 0x05]);
                }
                let mut frame = vec![0x8a, 0x01];
                let mut len = body.len();
                while len >= 0x80 {
                    frame.push(len as u8 | 0x80);
                    len >>= 7;
                }
                frame.push(len as u8);
                frame.extend(&body);
                let before = (cols.values.clone(), cols.skipped.clone(), cols.rows());
                let taken = cols.read_frame(&frame).is_some();
                assert_eq!(taken, !refused, "round {round}: {frame:02x?}");
                if refused {
                    let after = (cols.values.clone(), cols.skipped.clone(), cols.rows());
                    assert_eq!(format!("{before:?}"), format!("{after:?}"), "round {round}");
                    continue;
                }
                let Ok(Incoming::Request(Request { message: Some(request::Message::Point(p)) })) =
                    decode_request_or_point(&frame, false)
                else {
                    panic!("prost refused {frame:02x?}");
                };
                rows += 1;
                for (f, (values, skipped)) in fields.iter().zip(&mut want) {
                    match read(&p, f) {
                        Reading::Value(v) => values.push(v),
                        Reading::Unusable => *skipped += 1,
                        Reading::Absent => {}
                    }
                }
            }
            assert_eq!(cols.rows(), rows, "round {round}");
            for (i, (values, skipped)) in want.iter().enumerate() {
                assert_eq!(cols.values(i), values.as_slice(), "round {round}, {}", fields[i]);
                assert_eq!(cols.skipped(i), *skipped, "round {round}, {}", fields[i]);
            }
        }
    }

    #[test]
    fn columns_read_while_checking_hold_what_reading_each_row_gives() {
        use tickwatch_proto::agent::{Request, request};
        use tickwatch_proto::{FrameReader, Incoming, decode_request_or_point, encode_frame};
        let fields: Vec<String> = ["d", "both", "i", "s", "missing"].map(String::from).to_vec();
        let rows = [
            agent::Point {
                fields_double: HashMap::from([("d".into(), 1.5), ("both".into(), f64::NAN)]),
                fields_int: HashMap::from([("i".into(), 7), ("both".into(), 3)]),
                ..Default::default()
            },
            agent::Point {
                fields_int: HashMap::from([("both".into(), -4), ("d".into(), 2)]),
                fields_string: HashMap::from([("s".into(), "x".into())]),
                fields_bool: HashMap::from([("i".into(), false)]),
                ..Default::default()
            },
            agent::Point {
                fields_double: HashMap::from([("d".into(), f64::INFINITY), ("s".into(), 0.25)]),
                ..Default::default()
            },
        ];
        let mut cols = Columns::new(fields.clone().into(), 4);
        for (n, p) in rows.iter().enumerate() {
            let framed =
                encode_frame(&Request { message: Some(request::Message::Point(p.clone())) });
            let mut frame = FrameReader::new(framed.as_slice(), 64)
                .next_request()
                .ok()
                .flatten()
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            if n == 2 {
                // An unknown field: the fast path leaves the frame to prost.
                frame.extend([0xf8, 0x01, 0x05]);
                assert!(cols.read_frame(&frame).is_none());
                assert_eq!(cols.rows(), 2, "a refused frame adds nothing");
                let Ok(Incoming::Request(Request {
                    message: Some(request::Message::Point(decoded)),
                })) = decode_request_or_point(&frame, true)
                else {
                    panic!("prost refused the frame");
                };
                cols.push_point(&decoded);
            } else {
                assert!(cols.read_frame(&frame).is_some());
            }
        }
        assert_eq!(cols.rows(), 3);
        for (i, f) in fields.iter().enumerate() {
            let mut want = Vec::new();
            let mut skipped = 0;
            for p in &rows {
                match read(p, f) {
                    Reading::Value(v) => want.push(v),
                    Reading::Unusable => skipped += 1,
                    Reading::Absent => {}
                }
            }
            assert_eq!(cols.values(i), want.as_slice(), "{f}");
            assert_eq!(cols.skipped(i), skipped, "{f}");
        }
        // d: 1.5, 2 (an int), then infinity (unusable); both: NaN, -4.
        assert_eq!(cols.values(0), [1.5, 2.0]);
        assert_eq!((cols.values(1), cols.skipped(1)), (&[-4.0][..], 1));
    }
}
