//! The fast path against prost: on generated points, on hand-built encodings
//! prost's own encoder never writes (repeats, missing entry parts, overlong
//! varints, unknown fields, bad UTF-8, wrong wire types) and on mutations of
//! both, whatever the fast path takes must decode to what prost decodes.

use std::collections::{BTreeMap, HashMap};

use prost::Message;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::agent::{Request, request};

/// A point in a form that compares NaNs by bits and maps in key order.
type Norm = (
    i64,
    [String; 4],
    Vec<String>,
    BTreeMap<String, String>,
    BTreeMap<String, u64>,
    BTreeMap<String, i64>,
    BTreeMap<String, String>,
    bool,
    BTreeMap<String, bool>,
);

fn norm(p: &agent::Point) -> Norm {
    let sorted = |m: &HashMap<String, String>| m.clone().into_iter().collect();
    (
        p.time,
        [p.name.clone(), p.database.clone(), p.retention_policy.clone(), p.group.clone()],
        p.dimensions.clone(),
        sorted(&p.tags),
        p.fields_double.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect(),
        p.fields_int.clone().into_iter().collect(),
        sorted(&p.fields_string),
        p.by_name,
        p.fields_bool.clone().into_iter().collect(),
    )
}

fn request_frame(p: agent::Point) -> Vec<u8> {
    Request { message: Some(request::Message::Point(p)) }.encode_to_vec()
}

/// The property: a frame the fast path takes is a `Request{point}` prost
/// decodes to the same point. Returns whether the fast path took it.
fn agrees(frame: &[u8]) -> bool {
    let Some(view) = PointView::from_request(frame) else {
        assert_eq!(compare_with_prost(frame), Ok(false));
        return false;
    };
    assert_eq!(compare_with_prost(frame), Ok(true));
    let decoded = Request::decode(frame);
    let Ok(Request { message: Some(request::Message::Point(p)) }) = decoded else {
        panic!("fast path took a frame prost decodes as {decoded:?}: {frame:02x?}");
    };
    assert_eq!(norm(&view.to_point()), norm(&p), "frame {frame:02x?}");
    // The accessors agree with the owned form too.
    assert_eq!(view.time(), p.time);
    assert_eq!((view.name(), view.group(), view.by_name()), (&*p.name, &*p.group, p.by_name));
    for (k, v) in &p.tags {
        assert_eq!(view.tag(k), Some(v.as_str()));
    }
    // And stored, it reads back the same.
    let mut stored = EncodedPoints::default();
    stored.push(view);
    stored.push_point(&p);
    let back: Vec<Norm> = stored.iter().map(|v| norm(&v.to_point())).collect();
    assert_eq!(back, [norm(&p), norm(&p)]);
    true
}

fn text(rng: &mut ChaCha8Rng) -> String {
    const PIECES: [&str; 8] = ["", "a", "hotend", "printer", "é", "日本", "x=y,z", "\n"];
    (0..rng.random_range(0..3usize)).map(|_| PIECES[rng.random_range(0..PIECES.len())]).collect()
}

fn double(rng: &mut ChaCha8Rng) -> f64 {
    match rng.random_range(0..6u8) {
        0 => f64::NAN,
        1 => f64::NEG_INFINITY,
        2 => 0.0,
        3 => -0.0,
        _ => f64::from_bits(rng.next_u64()),
    }
}

fn point(rng: &mut ChaCha8Rng) -> agent::Point {
    let mut p = agent::Point {
        time: rng.next_u64() as i64 >> rng.random_range(0..64u32),
        name: text(rng),
        database: text(rng),
        retention_policy: text(rng),
        group: text(rng),
        by_name: rng.random(),
        ..Default::default()
    };
    for _ in 0..rng.random_range(0..4usize) {
        p.dimensions.push(text(rng));
        p.tags.insert(text(rng), text(rng));
        p.fields_double.insert(text(rng), double(rng));
        p.fields_int.insert(text(rng), rng.next_u64() as i64 >> rng.random_range(0..64u32));
        p.fields_string.insert(text(rng), text(rng));
        p.fields_bool.insert(text(rng), rng.random());
    }
    p
}

#[test]
fn prost_encoded_points_take_the_fast_path_and_decode_alike() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..5_000 {
        let frame = request_frame(point(&mut rng));
        assert!(agrees(&frame), "prost's own encoding refused: {frame:02x?}");
    }
}

/// Hand-built encodings, with what prost's encoder never writes.
mod raw {
    use super::*;

    pub fn varint(out: &mut Vec<u8>, mut v: u64, overlong: usize) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        // Overlong forms: prost accepts them up to ten bytes.
        for _ in 0..overlong {
            out.push((v as u8) | 0x80);
            v = 0;
        }
        out.push(v as u8);
    }

    pub fn key(out: &mut Vec<u8>, number: u32, wire: u8, overlong: usize) {
        varint(out, u64::from(number) << 3 | u64::from(wire), overlong);
    }

    pub fn len_field(out: &mut Vec<u8>, number: u32, payload: &[u8], overlong: usize) {
        key(out, number, LEN, overlong);
        varint(out, payload.len() as u64, overlong);
        out.extend_from_slice(payload);
    }

    fn string(rng: &mut ChaCha8Rng) -> Vec<u8> {
        let mut s = text(rng).into_bytes();
        if rng.random_range(0..40u8) == 0 {
            s.push(0xff); // not UTF-8: prost refuses it
        }
        s
    }

    fn overlong(rng: &mut ChaCha8Rng) -> usize {
        if rng.random_range(0..10u8) == 0 { rng.random_range(1..5usize) } else { 0 }
    }

    /// One map entry for `map`: key and value in any order, either missing
    /// or repeated, sometimes a stray field or a wrong wire type.
    fn entry(rng: &mut ChaCha8Rng, map: u32) -> Vec<u8> {
        let mut e = Vec::new();
        for _ in 0..rng.random_range(0..4usize) {
            let o = overlong(rng);
            match rng.random_range(0..12u8) {
                0..=4 => len_field(&mut e, 1, &string(rng), o),
                5..=9 => match map {
                    tag::FIELDS_DOUBLE => {
                        key(&mut e, 2, FIXED64, o);
                        e.extend_from_slice(&double(rng).to_le_bytes());
                    }
                    tag::FIELDS_INT | tag::FIELDS_BOOL => {
                        key(&mut e, 2, VARINT, o);
                        varint(&mut e, rng.next_u64() >> rng.random_range(0..64u32), o);
                    }
                    _ => len_field(&mut e, 2, &string(rng), o),
                },
                10 => {
                    // An unknown field inside the entry (prost skips it).
                    key(&mut e, 3, VARINT, o);
                    varint(&mut e, 7, 0);
                }
                _ => {
                    // The value with a wrong wire type (prost refuses it).
                    key(&mut e, 2, if map == tag::FIELDS_DOUBLE { VARINT } else { FIXED64 }, o);
                    e.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
                }
            }
        }
        e
    }

    pub fn point_body(rng: &mut ChaCha8Rng) -> Vec<u8> {
        let mut b = Vec::new();
        for _ in 0..rng.random_range(0..14usize) {
            let o = overlong(rng);
            let number = rng.random_range(1..=13u32);
            match number {
                tag::TIME | tag::BY_NAME => {
                    key(&mut b, number, VARINT, o);
                    varint(&mut b, rng.next_u64() >> rng.random_range(0..64u32), o);
                }
                tag::NAME..=tag::DIMENSIONS => len_field(&mut b, number, &string(rng), o),
                tag::TAGS..=tag::FIELDS_STRING | tag::FIELDS_BOOL => {
                    let e = entry(rng, number);
                    len_field(&mut b, number, &e, o);
                }
                _ => {
                    // Unknown field 13, sometimes a 32-bit one.
                    if rng.random() {
                        key(&mut b, 13, 5, o);
                        b.extend_from_slice(&[1, 2, 3, 4]);
                    } else {
                        len_field(&mut b, 13, b"zz", o);
                    }
                }
            }
        }
        b
    }

    pub fn request(rng: &mut ChaCha8Rng, body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        len_field(&mut f, REQUEST_POINT, body, overlong(rng));
        f
    }
}

#[test]
fn hand_built_encodings_decode_alike_or_go_to_prost() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (mut taken, n) = (0, 20_000);
    for _ in 0..n {
        let body = raw::point_body(&mut rng);
        let frame = raw::request(&mut rng, &body);
        taken += usize::from(agrees(&frame));
    }
    // Most of them are well-formed: the property is exercised, not skipped.
    assert!(taken > n / 4, "only {taken} of {n} taken");
}

#[test]
fn mutated_encodings_decode_alike_or_go_to_prost() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut taken = 0;
    for i in 0..20_000 {
        let mut frame = if i % 2 == 0 {
            request_frame(point(&mut rng))
        } else {
            let body = raw::point_body(&mut rng);
            raw::request(&mut rng, &body)
        };
        for _ in 0..rng.random_range(1..4usize) {
            if frame.is_empty() {
                break;
            }
            let at = rng.random_range(0..frame.len());
            match rng.random_range(0..4u8) {
                0 => frame[at] = rng.random(),
                1 => frame[at] ^= 1 << rng.random_range(0..8u32),
                2 => frame.truncate(at),
                _ => frame.insert(at, rng.random()),
            }
        }
        taken += usize::from(agrees(&frame));
    }
    assert!(taken > 100, "only {taken} mutated frames taken");
}

#[test]
fn other_requests_and_trailing_fields_go_to_prost() {
    let keepalive =
        Request { message: Some(request::Message::Keepalive(agent::KeepaliveRequest { time: 5 })) };
    assert!(PointView::from_request(&keepalive.encode_to_vec()).is_none());
    let begin = Request { message: Some(request::Message::Begin(agent::BeginBatch::default())) };
    assert!(PointView::from_request(&begin.encode_to_vec()).is_none());
    // Two point fields: prost merges them; the fast path leaves that to it.
    let mut two = request_frame(agent::Point { time: 1, ..Default::default() });
    two.extend(request_frame(agent::Point { name: "m".into(), ..Default::default() }));
    assert!(PointView::from_request(&two).is_none());
    let merged = Request::decode(two.as_slice()).unwrap();
    let Some(request::Message::Point(p)) = merged.message else { panic!("{merged:?}") };
    assert_eq!((p.time, p.name.as_str()), (1, "m"));
    assert!(PointView::from_request(&[]).is_none());
}

#[test]
fn repeated_scalars_and_map_keys_keep_the_last_as_prost_does() {
    let mut body = Vec::new();
    for t in [5u64, 9] {
        raw::key(&mut body, tag::TIME, VARINT, 0);
        raw::varint(&mut body, t, 0);
    }
    for v in [1.5f64, 2.5] {
        let mut e = Vec::new();
        raw::len_field(&mut e, 1, b"hotend", 0);
        raw::key(&mut e, 2, FIXED64, 0);
        e.extend_from_slice(&v.to_le_bytes());
        raw::len_field(&mut body, tag::FIELDS_DOUBLE, &e, 0);
    }
    // An entry with no value: the key maps to 0.
    let mut e = Vec::new();
    raw::len_field(&mut e, 1, b"bed", 0);
    raw::len_field(&mut body, tag::FIELDS_INT, &e, 0);
    let mut frame = Vec::new();
    raw::len_field(&mut frame, REQUEST_POINT, &body, 0);
    assert!(agrees(&frame));
    let view = PointView::from_request(&frame).unwrap();
    assert_eq!(view.time(), 9);
    let fields: Vec<_> = view.fields().collect();
    assert_eq!(
        fields,
        [
            ("hotend", FieldValue::Double(1.5)),
            ("hotend", FieldValue::Double(2.5)),
            ("bed", FieldValue::Int(0))
        ]
    );
    assert_eq!(view.to_point().fields_double["hotend"], 2.5);
}

#[test]
fn drain_front_keeps_the_rest_readable() {
    let pts: Vec<agent::Point> = (0..5)
        .map(|t| agent::Point { time: t, name: format!("m{t}"), ..Default::default() })
        .collect();
    let mut enc = EncodedPoints::default();
    pts.iter().for_each(|p| enc.push_point(p));
    enc.drain_front(0);
    assert_eq!(enc.len(), 5);
    enc.drain_front(2);
    let got: Vec<agent::Point> = enc.iter().map(|v| v.to_point()).collect();
    assert_eq!(got, pts[2..]);
    assert_eq!(enc.get(1).map(|v| v.time()), Some(3));
    assert!(enc.get(3).is_none());
    enc.drain_front(7);
    assert!(enc.is_empty());
}

#[test]
fn varints_read_from_words_read_as_byte_by_byte() {
    let mut rng = ChaCha8Rng::seed_from_u64(64);
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for len in 1..=11 {
        // Every length, with the edge values of each byte, then filler.
        for last in [0u8, 1, 2, 0x7f] {
            let mut b = vec![0xffu8; len - 1];
            b.push(last);
            cases.push(b);
            let mut b = vec![0x80u8; len - 1];
            b.push(last);
            cases.push(b);
        }
    }
    for _ in 0..20_000 {
        let len = rng.random_range(0..14);
        let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        // Mostly continuation bytes, so long varints are common.
        for x in b.iter_mut().take(rng.random_range(0..11)) {
            *x |= 0x80;
        }
        cases.push(b);
    }
    for mut b in cases {
        for pad in [0usize, 12] {
            b.extend(std::iter::repeat_n(0x55, pad));
            let (mut fast, mut slow) = (Cursor { buf: &b }, Cursor { buf: &b });
            let (f, s) = (fast.varint_long(), slow.varint_bytewise());
            assert_eq!(f, s, "{b:02x?}");
            if f.is_some() {
                assert_eq!(fast.buf.len(), slow.buf.len(), "{b:02x?}");
            }
            // And prost agrees where either reads a value.
            let mut p = b.as_slice();
            let prost = prost::encoding::decode_varint(&mut p).ok();
            assert_eq!(f, prost, "{b:02x?}");
            if f.is_some() {
                assert_eq!(fast.buf.len(), p.len(), "{b:02x?}");
            }
        }
    }
}

/// A point as the printer day sends it (time, three `fieldsDouble` entries
/// in the shape [`Tracked`] reads from its bytes), then every one-byte
/// change and every cut of it: the tracked reading takes exactly what
/// prost-equivalent checking takes and reads the same values
/// (`compare_with_prost` tracks the frame's own names and others).
#[test]
fn every_change_of_a_day_point_reads_alike_or_goes_to_prost() {
    let p = agent::Point {
        time: 1_700_000_000_000_000_000,
        fields_double: HashMap::from([
            ("hotend".into(), 219.5),
            ("bed".into(), 60.25),
            ("air".into(), f64::NAN),
            ("printerprinter".into(), -0.5),
        ]),
        fields_int: HashMap::from([("hotend".into(), 3)]),
        ..Default::default()
    };
    let frame = request_frame(p);
    assert!(agrees(&frame));
    let mut tracked = Tracked::new(&["air", "bed", "hotend", "printerprinter"]);
    let mut seen = Vec::new();
    let read = PointView::from_request_tracked(&frame, &mut tracked, |i, v| {
        seen.push(format!("{i} {v:?}"))
    });
    assert!(read.is_some());
    seen.sort();
    assert_eq!(
        seen,
        ["0 Double(NaN)", "1 Double(60.25)", "2 Double(219.5)", "2 Int(3)", "3 Double(-0.5)"]
    );
    let mut taken = 0;
    for at in 0..frame.len() {
        taken += usize::from(agrees(&frame[..at]));
        for b in 0..=255u8 {
            let mut f = frame.clone();
            f[at] = b;
            taken += usize::from(agrees(&f));
        }
        let mut f = frame.clone();
        f.insert(at, 0x80);
        taken += usize::from(agrees(&f));
    }
    assert!(taken > 5_000, "only {taken} changed frames taken");
}

/// One `Tracked` reading frame after frame, as `Columns` reads a batch:
/// the fields it remembers from earlier frames (a batch's group and tags)
/// never make it take a frame `from_request` refuses, refuse one it takes
/// or read other values, whatever the frames' changes.
#[test]
fn remembered_fields_read_alike_across_frames() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let names = ["hotend", "bed", "a", "printer", ""];
    let mut tracked = Tracked::new(&names);
    let (mut taken, n) = (0, 20_000);
    for i in 0..n {
        let mut p = point(&mut rng);
        if i % 4 != 0 {
            // Most points carry their batch's group and tags.
            p.group = ["printer=a", "printer=é"][i % 2].into();
            p.tags = HashMap::from([("printer".into(), ["a", "é"][i % 2].into())]);
        }
        let mut frame = request_frame(p);
        if rng.random_range(0..3u8) == 0 && !frame.is_empty() {
            let at = rng.random_range(0..frame.len());
            match rng.random_range(0..3u8) {
                0 => frame[at] = rng.random(),
                1 => frame[at] ^= 1 << rng.random_range(0..8u32),
                _ => frame.truncate(at),
            }
        }
        let mut seen = Vec::new();
        let got = PointView::from_request_tracked(&frame, &mut tracked, |i, v| {
            seen.push((i, entry_bits(b"", v)));
        });
        let want = PointView::from_request(&frame);
        assert_eq!(got.is_some(), want.is_some(), "frame {i}: {frame:02x?}");
        if let Some(view) = want {
            let expect: Vec<_> = view
                .field_entries()
                .filter_map(|(k, v)| {
                    Some((names.iter().position(|n| n.as_bytes() == k)?, entry_bits(b"", v)))
                })
                .collect();
            assert_eq!(seen, expect, "frame {i}: {frame:02x?}");
            taken += 1;
        }
    }
    assert!(taken > n / 2, "only {taken} of {n} taken");
}
