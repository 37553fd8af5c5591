//! Which values of a point a node scores: the one rule for "usable", shared
//! by the node and by `replay`'s report of skipped values.
//!
//! A tracked field is read from `fieldsDouble` (finite values only) or
//! `fieldsInt` (Kapacitor sends `hotend=220i` as an int). NaN, infinities,
//! strings and booleans in a tracked field are unusable: skipped and counted.
//! A point kept as its bytes ([`PointView`]) is read by [`ViewReader`] with
//! the same rule, in one pass for all tracked fields.

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
    double: Option<f64>,
    int: Option<i64>,
    other: bool,
}

impl Seen {
    /// [`read`]'s precedence: `fieldsDouble`, then `fieldsInt`, then the rest.
    fn reading(self) -> Reading {
        match (self.double, self.int, self.other) {
            (Some(v), _, _) if v.is_finite() => Reading::Value(v),
            (Some(_), _, _) => Reading::Unusable,
            (None, Some(v), _) => Reading::Value(v as f64),
            (None, None, true) => Reading::Unusable,
            (None, None, false) => Reading::Absent,
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
            let seen = &mut self.seen[i];
            match value {
                FieldValue::Double(v) => seen.double = Some(v),
                FieldValue::Int(v) => seen.int = Some(v),
                FieldValue::String(_) | FieldValue::Bool(_) => seen.other = true,
            }
        }
        self.seen.iter().map(|s| s.reading())
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
}
