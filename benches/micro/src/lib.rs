//! Fixtures for the criterion micro-benchmarks in `benches/micro.rs`: the
//! printer day's five-minute windows, their points as `Request` frames, and
//! a ttest node trained on them (the detector compiled in, behind the same
//! `DetectorFactory` seam a loaded plugin sits behind).
//!
//! Run: `cargo bench -p tickwatch-micro` (all), or `-- decode`, `-- node`,
//! `-- score` for one group. Benchmarks measure; nothing here asserts.

use tickwatch_engine::kapacitor::options::opt;
use tickwatch_engine::kapacitor::{Batch, Windower};
use tickwatch_engine::node::values::Columns;
use tickwatch_engine::node::{InProcess, Node, config};
use tickwatch_engine::scenario;
use tickwatch_proto::agent::{Request, request};
use tickwatch_proto::{Incoming, encode_frame, read_request_or_point};

/// The printer day's fields.
pub const FIELDS: [&str; 3] = ["hotend", "bed", "air"];

/// The printer day (seed 61) cut into five-minute windows: 288 batches of
/// 300 points (the first and last differ by a point).
pub fn printer_windows() -> Vec<Batch> {
    let five_min = 300 * 1_000_000_000;
    let mut w = Windower::new(five_min, five_min, &[]);
    let tags = std::collections::HashMap::new();
    scenario::printer_day(61).iter().flat_map(|r| w.push(r.to_point(&tags))).collect()
}

/// Each point of `batch` as the body of its `Request` frame (no length
/// prefix), as Kapacitor sends it.
pub fn point_frames(batch: &Batch) -> Vec<Vec<u8>> {
    batch
        .points
        .iter()
        .map(|p| {
            let frame =
                encode_frame(&Request { message: Some(request::Message::Point(p.clone())) });
            // Strip the uvarint length: a 300-point frame's prefix is one byte.
            frame[1..].to_vec()
        })
        .collect()
}

/// `batch` with its points kept as bytes, as `serve`'s reader keeps them.
pub fn in_place(batch: &Batch) -> Batch {
    let mut b = Batch { begin: batch.begin.clone(), end: batch.end.clone(), ..Batch::default() };
    let mut buf = Vec::new();
    for p in &batch.points {
        let frame = encode_frame(&Request { message: Some(request::Message::Point(p.clone())) });
        if let Ok(Some(Incoming::Point(v))) =
            read_request_or_point(&mut frame.as_slice(), &mut buf, true)
        {
            b.encoded.push(v);
        }
    }
    b
}

/// `batch` as `serve`'s reader hands it over once Init named the fields:
/// the three fields' values read out as columns while each point frame is
/// checked, the rows not kept (no `.passThrough()`).
pub fn as_columns(batch: &Batch) -> Batch {
    let fields: Vec<String> = FIELDS.iter().map(|f| f.to_string()).collect();
    let mut cols = Columns::new(fields.into(), batch.points.len());
    for f in point_frames(batch) {
        cols.read_frame(&f);
    }
    Batch {
        begin: batch.begin.clone(),
        end: batch.end.clone(),
        columns: Some(cols),
        ..Batch::default()
    }
}

/// A batch's point frames as they arrive on the wire, length prefixes
/// included, for reading with `FrameReader`.
pub fn wire_bytes(batch: &Batch) -> Vec<u8> {
    batch
        .points
        .iter()
        .flat_map(|p| encode_frame(&Request { message: Some(request::Message::Point(p.clone())) }))
        .collect()
}

/// The ttest options of the guide's TICKscript: the three fields, `size`
/// values of history, alpha 0.001.
fn options(size: i64) -> Vec<tickwatch_proto::agent::Option> {
    vec![
        opt::call("field", FIELDS.iter().map(|f| opt::s(f)).collect()),
        opt::call("size", vec![opt::i(size)]),
        opt::call("alpha", vec![opt::d(0.001)]),
    ]
}

/// A ttest detector (compiled in) with `size` values of history.
pub fn ttest(size: i64) -> tickwatch_ttest::TTest {
    use tickwatch_plugin_api::Detector;
    let factory = InProcess::<tickwatch_ttest::TTest>::factory();
    let cfg =
        config::validate(&options(size), 3, factory.options()).unwrap_or_else(|e| panic!("{e}"));
    tickwatch_ttest::TTest::new(&cfg.detector_options).unwrap_or_else(|e| panic!("{e}"))
}

/// A ttest node over the three fields (`size` 3600), fed `warm` windows of
/// the day so its histories are full; `keep_states` as a persisted node.
pub fn node(windows: &[Batch], warm: usize, keep_states: bool) -> Node {
    let factory = InProcess::<tickwatch_ttest::TTest>::factory();
    let cfg =
        config::validate(&options(3600), 3, factory.options()).unwrap_or_else(|e| panic!("{e}"));
    let mut n = Node::new(factory, cfg, "bench").unwrap_or_else(|e| panic!("{e}"));
    n.keep_states(keep_states);
    for b in windows.iter().take(warm) {
        n.process(b).unwrap_or_else(|e| panic!("{e}"));
    }
    // What a commit would have taken by now.
    n.take_updates().unwrap_or_else(|e| panic!("{e}"));
    n
}
