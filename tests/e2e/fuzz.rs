//! The fuzz targets' inputs, replayed on every test run: each file under
//! `fuzz/regressions/<target>/` (inputs cargo-fuzz found interesting), and
//! a bounded, seeded mutation run from valid seeds (request streams,
//! snapshots of both formats, line protocol). Every input must return
//! without a panic; a hang fails the test run by never finishing.

use std::path::Path;

use tickwatch_engine::fuzzing;
use tickwatch_engine::kapacitor::options::opt;
use tickwatch_proto::agent::{self, request};
use tickwatch_proto::encode_frame;

use crate::support;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 6] = [
    ("frames", fuzzing::frames),
    ("point_view", fuzzing::point_view),
    ("snapshot", fuzzing::snapshot),
    ("line_protocol", fuzzing::line_protocol),
    ("session", fuzzing::session),
    ("stream_session", fuzzing::stream_session),
];

fn req(m: request::Message) -> Vec<u8> {
    encode_frame(&agent::Request { message: Some(m) })
}

/// A valid request stream: Info, Init, a few batches, Snapshot, Restore.
fn stream_seed() -> Vec<u8> {
    let mut out = req(request::Message::Info(agent::InfoRequest {}));
    out.extend(req(request::Message::Init(agent::InitRequest {
        task_id: "t".into(),
        node_id: "n".into(),
        options: vec![
            opt::call("field", vec![opt::s("hotend"), opt::s("bed"), opt::s("")]),
            opt::call("limit", vec![opt::d(0.5)]),
        ],
    })));
    for b in &support::day_batches(&[("a", 3)])[..3] {
        out.extend(req(request::Message::Begin(b.begin.clone())));
        for p in b.points.iter().take(20) {
            out.extend(req(request::Message::Point(p.clone())));
        }
        out.extend(req(request::Message::End(b.end.clone())));
    }
    out.extend(req(request::Message::Keepalive(agent::KeepaliveRequest { time: 5 })));
    out.extend(req(request::Message::Snapshot(agent::SnapshotRequest {})));
    out
}

/// A valid stream-edge request stream: Info, Init with windows and
/// pass-through, two groups' points past several window ends (one group
/// idle long enough to be evicted), a keepalive, Snapshot, a stray batch.
fn stream_edge_seed() -> Vec<u8> {
    let mut out = req(request::Message::Info(agent::InfoRequest {}));
    out.extend(req(request::Message::Init(agent::InitRequest {
        task_id: "t".into(),
        node_id: "n".into(),
        options: vec![
            opt::call("field", vec![opt::s("hotend"), opt::s("bed"), opt::s("")]),
            opt::call("period", vec![opt::dur(60_000_000_000)]),
            opt::call("every", vec![opt::dur(30_000_000_000)]),
            opt::call("passThrough", vec![]),
        ],
    })));
    for k in 0..40i64 {
        for g in ["a", "b"] {
            if g == "b" && (10..30).contains(&k) {
                continue;
            }
            let mut p = agent::Point {
                name: "temperatures".into(),
                time: k * 20_000_000_000 * if g == "a" { 1 } else { 3 },
                tags: [("printer".to_string(), g.to_string())].into(),
                dimensions: vec!["printer".into()],
                group: format!("printer={g}"),
                ..Default::default()
            };
            p.fields_double.insert("hotend".into(), 200.0 + (k % 7) as f64);
            p.fields_int.insert("bed".into(), 90 + k % 3);
            out.extend(req(request::Message::Point(p)));
        }
    }
    out.extend(req(request::Message::Keepalive(agent::KeepaliveRequest { time: 5 })));
    out.extend(req(request::Message::Snapshot(agent::SnapshotRequest {})));
    out.extend(req(request::Message::Begin(agent::BeginBatch::default())));
    out
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"));
    match target {
        "frames" | "session" | "point_view" => vec![stream_seed()],
        "stream_session" => vec![stream_edge_seed()],
        "snapshot" => vec![
            std::fs::read(fixtures.join("state/tests/fixtures/snapshot_v1.bin")).unwrap(),
            std::fs::read(fixtures.join("state/tests/fixtures/snapshot_v2.bin")).unwrap(),
            std::fs::read(fixtures.join("tests/fixtures/snapshot_v1_ttest.bin")).unwrap(),
        ],
        _ => vec![
            b"temperatures,printer=a hotend=220.1,bed=90i,air=\"x\" 1451606400000000000\n\
              # a comment\ncpu value=1.5 1\nbad line\n\nm,t=1 f=t,g=-2e300 -5\n"
                .to_vec(),
        ],
    }
}

/// xorshift64*: the mutation run is the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four random edits: flip a bit, set a byte to an edge value,
/// insert or delete a run, truncate, or duplicate a slice.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(d.len());
        match rng.below(6) {
            0 if !d.is_empty() => d[at] ^= 1 << rng.below(8),
            1 if !d.is_empty() => d[at] = [0, 0x7f, 0x80, 0xff][rng.below(4)],
            2 => {
                let n = rng.below(16);
                let fill = rng.next() as u8;
                d.splice(at..at, std::iter::repeat_n(fill, n));
            }
            3 if !d.is_empty() => {
                let end = (at + rng.below(32)).min(d.len());
                d.drain(at..end);
            }
            4 => d.truncate(at),
            _ if !d.is_empty() => {
                let end = (at + rng.below(64)).min(d.len());
                let slice = d[at..end].to_vec();
                let to = rng.below(d.len());
                d.splice(to..to, slice);
            }
            _ => {}
        }
    }
    d
}

#[test]
fn fuzz_regressions_and_seeded_mutations_return_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut runs = 0usize;
    for (name, target) in TARGETS {
        let dir = root.join(name);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries {
                let path = e.unwrap().path();
                if path.is_file() {
                    target(&std::fs::read(&path).unwrap());
                    runs += 1;
                }
            }
        }
        let mut rng = Rng(0x5eed ^ name.len() as u64);
        // Sessions start threads: fewer of them.
        let per_seed = if name.ends_with("session") { 2000 } else { 20_000 };
        for seed in seeds(name) {
            target(&seed);
            for _ in 0..per_seed {
                target(&mutate(&mut rng, &seed));
                runs += 1;
            }
        }
    }
    assert!(runs > 60_000, "{runs} inputs");
}

/// Writes the seeds as cargo-fuzz's starting corpus (`fuzz/corpus/<target>/`).
#[test]
#[ignore = "tooling: run before `cargo +nightly fuzz run <target>`"]
fn write_fuzz_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, _) in TARGETS {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds(name).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
}
