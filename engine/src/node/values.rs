//! Which values of a point a node scores: the one rule for "usable", shared
//! by the node and by `replay`'s report of skipped values.
//!
//! A tracked field is read from `fieldsDouble` (finite values only) or
//! `fieldsInt` (Kapacitor sends `hotend=220i` as an int). NaN, infinities,
//! strings and booleans in a tracked field are unusable: skipped and counted.

use tickwatch_proto::agent;

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
}
