//! Criterion micro-benchmarks of issue 13: frame decoding (prost against the
//! borrowed fast path), one batch through a node (decoded or kept as bytes,
//! with and without producing states to persist), a detector's `score`,
//! `save` and `save_changes`, and one field's commit to a real store, whole
//! or as changed ranges.
//! Fixtures: `tickwatch_micro` (the printer day's five-minute windows).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tickwatch_engine::node::values::Columns;
use tickwatch_micro::{
    FIELDS, as_columns, in_place, node, point_frames, printer_windows, ttest, wire_bytes,
};
use tickwatch_plugin_api::Detector;
use tickwatch_plugin_api::changes::NO_GENERATION;
use tickwatch_proto::{FieldValue, FrameReader, PointView};

/// Decodes one frame body with prost, through `read_request` as `serve`
/// did before the fast path (the length prefix put back first).
fn prost_decode(frame: &[u8]) -> Option<tickwatch_proto::agent::Request> {
    let mut with_len = Vec::with_capacity(frame.len() + 2);
    let mut n = frame.len();
    while n >= 0x80 {
        with_len.push((n as u8) | 0x80);
        n >>= 7;
    }
    with_len.push(n as u8);
    with_len.extend_from_slice(frame);
    tickwatch_proto::read_request(&mut with_len.as_slice(), &mut Vec::new()).ok().flatten()
}

/// `bytes` over and over, as a pipe that never runs dry.
struct Repeat<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl std::io::Read for Repeat<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            let chunk = &self.bytes[self.at..];
            let k = chunk.len().min(out.len() - n);
            out[n..n + k].copy_from_slice(&chunk[..k]);
            n += k;
            self.at = (self.at + k) % self.bytes.len();
        }
        Ok(n)
    }
}

fn decode(c: &mut Criterion) {
    let windows = printer_windows();
    let frames = point_frames(&windows[100]);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("prost, 300 point frames", |b| {
        b.iter(|| {
            for f in &frames {
                black_box(prost_decode(black_box(f)));
            }
        })
    });
    g.bench_function("fast path check, 300 point frames", |b| {
        b.iter(|| {
            for f in &frames {
                black_box(PointView::from_request(black_box(f)));
            }
        })
    });
    g.bench_function("fast path check and read 3 fields, 300 point frames", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for f in &frames {
                if let Some(v) = PointView::from_request(black_box(f)) {
                    for (k, x) in v.field_entries() {
                        if FIELDS.iter().any(|f| f.as_bytes() == k)
                            && let FieldValue::Double(x) = x
                        {
                            sum += x;
                        }
                    }
                }
            }
            black_box(sum)
        })
    });
    let fields: Vec<String> = FIELDS.iter().map(|f| f.to_string()).collect();
    let fields: std::sync::Arc<[String]> = fields.into();
    g.bench_function("check and read 3 fields in one pass (Columns), 300 point frames", |b| {
        b.iter(|| {
            let mut cols = Columns::new(fields.clone(), frames.len());
            for f in &frames {
                black_box(cols.read_frame(black_box(f)));
            }
            black_box(cols.rows())
        })
    });
    // What serve's reader does per batch: frames out of the wire bytes in
    // place, each checked and read in one pass.
    // (The wire bytes repeat without end; one buffer for the whole run, as
    // the reader has.)
    let wire = wire_bytes(&windows[100]);
    let mut r = FrameReader::new(Repeat { bytes: &wire, at: 0 }, 256 * 1024);
    g.bench_function("reader: frame, check and read 3 fields, 300 points from wire bytes", |b| {
        b.iter(|| {
            let mut cols = Columns::new(fields.clone(), frames.len());
            for _ in 0..frames.len() {
                if let Ok(Some(f)) = r.next_request() {
                    black_box(cols.read_frame(f));
                }
            }
            black_box(cols.rows())
        })
    });
    g.finish();
}

fn node_batch(c: &mut Criterion) {
    let windows = printer_windows();
    let batch = windows[100].clone();
    let bytes = in_place(&batch);
    let columns = as_columns(&batch);
    let mut g = c.benchmark_group("node");
    g.throughput(Throughput::Elements(batch.points.len() as u64));
    for (name, b, keep) in [
        ("one batch, decoded points", &batch, false),
        ("one batch, points as bytes", &bytes, false),
        ("one batch, points as bytes, states kept", &bytes, true),
        ("one batch, values read as columns", &columns, false),
        ("one batch, values read as columns, states kept", &columns, true),
    ] {
        g.bench_function(name, |bench| {
            bench.iter_batched_ref(
                || node(&windows, 20, keep),
                // States kept: the batch's changes taken too, as a commit
                // of this one batch takes them.
                |n| {
                    let points = n.process(b).map(|s| s.points.len());
                    let states = if keep { n.take_updates().map(|u| u.len()).ok() } else { None };
                    black_box((points, states))
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn score(c: &mut Criterion) {
    let windows = printer_windows();
    let values: Vec<Vec<f64>> = windows
        .iter()
        .map(|b| b.points.iter().filter_map(|p| p.fields_double.get("hotend").copied()).collect())
        .collect();
    let mut g = c.benchmark_group("score");
    g.throughput(Throughput::Elements(values[100].len() as u64));
    g.bench_function("ttest size 3600, one 300-value window", |b| {
        b.iter_batched_ref(
            || {
                let mut d = ttest(3600);
                for w in values.iter().take(20) {
                    d.score(w);
                }
                d
            },
            |d| black_box(d.score(black_box(&values[100]))),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("ttest size 3600, save", |b| {
        let mut d = ttest(3600);
        for w in values.iter().take(20) {
            d.score(w);
        }
        b.iter(|| black_box(d.save()))
    });
    g.bench_function("ttest size 3600, save_changes after one window", |b| {
        b.iter_batched_ref(
            || {
                let mut d = ttest(3600);
                for w in values.iter().take(20) {
                    d.score(w);
                }
                let g = d.save_changes(NO_GENERATION).generation;
                d.score(&values[100]);
                (d, g)
            },
            |(d, g)| black_box(d.save_changes(*g).ranges.map(|r| r.data.len())),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Persisting one field after each 300-value window (score, take the
/// state, commit it to a real sled store without the flush, which is the
/// disk's): the whole state, diffed chunk by chunk by the store, against
/// the changed ranges.
fn commit(c: &mut Criterion) {
    use tickwatch_state::{
        FieldUpdate, NodeMeta, Provenance, Ranges, StateChange, StateStore, StoreOptions,
    };
    let windows = printer_windows();
    let values: Vec<Vec<f64>> = windows
        .iter()
        .map(|b| b.points.iter().filter_map(|p| p.fields_double.get("hotend").copied()).collect())
        .collect();
    let provenance = Provenance {
        detector: "ttest".into(),
        detector_version: "0".into(),
        state_version: 1,
        options: "size=3600".into(),
        last_time: 0,
    };
    let update = |change| FieldUpdate {
        group: String::new(),
        field: "hotend".into(),
        provenance: provenance.clone(),
        change,
    };
    let mut g = c.benchmark_group("commit");
    g.throughput(Throughput::Elements(values[100].len() as u64));
    for ranged in [false, true] {
        let name = if ranged {
            "one window of ttest size 3600: changed ranges"
        } else {
            "one window of ttest size 3600: whole state"
        };
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let opts = StoreOptions { wait: std::time::Duration::ZERO, group_commit_ms: Some(60_000) };
        let mut store = StateStore::open(dir.path(), &NodeMeta::new("t", "n", "ttest"), opts)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut d = ttest(3600);
        for w in values.iter().take(20) {
            d.score(w);
        }
        let first = d.save_changes(NO_GENERATION);
        let whole = StateChange::Whole { state: d.save(), generation: Some(first.generation) };
        store.commit_changes(&[update(whole)]).unwrap_or_else(|e| panic!("{e}"));
        let mut since = first.generation;
        let mut k = 20;
        g.bench_function(name, |b| {
            b.iter(|| {
                d.score(&values[k % values.len()]);
                k += 1;
                let change = if ranged {
                    let c = d.save_changes(since);
                    let r = c.ranges.unwrap_or_else(|| panic!("ranges"));
                    let r = Ranges {
                        base: since,
                        generation: c.generation,
                        len: r.len,
                        spans: r.spans,
                        data: r.data,
                    };
                    since = c.generation;
                    StateChange::Ranges(r)
                } else {
                    StateChange::Whole { state: d.save(), generation: None }
                };
                store.commit_changes(&[update(change)]).unwrap_or_else(|e| panic!("{e}"));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decode, node_batch, score, commit);
criterion_main!(benches);
