//! Entry points for the fuzz targets in `fuzz/` and for the regression
//! tests that replay their interesting inputs (`tests/e2e/fuzz.rs`). Not an
//! API: each feeds untrusted bytes to one parser of the engine and must
//! return, whatever the bytes, without panicking or hanging.

use std::io::Cursor;

use tickwatch_plugin_api::{Detector, OptionSpec, Options, Summary, Value, Verdict};

use crate::cmd::replay::lineproto::{self, Precision};
use crate::node::InProcess;
use crate::serve::session::{self, SessionConfig};

/// A request stream through the framing and the protobuf decoder, frame
/// after frame; and through the session reader's `FrameReader`, which must
/// hand out the same frames and end, or fail with the same error, where
/// `read_request_frame` does (a difference panics).
pub fn frames(data: &[u8]) {
    let mut r = data;
    let mut buf = Vec::new();
    while let Ok(Some(_)) = tickwatch_proto::read_request(&mut r, &mut buf) {}
    let mut r = data;
    let mut in_place = tickwatch_proto::FrameReader::new(data, 64);
    loop {
        let want = tickwatch_proto::wire::read_request_frame(&mut r, &mut buf);
        match (want, in_place.next_request()) {
            (Ok(true), Ok(Some(f))) if f == buf.as_slice() => {}
            (Ok(false), Ok(None)) => return,
            (Err(a), Err(b)) if a.to_string() == b.to_string() => return,
            (want, got) => panic!("FrameReader read {got:?}, read_request_frame {want:?}"),
        }
    }
}

/// A request stream, frame by frame, through the borrowed fast path for
/// points and through prost: wherever the fast path takes a frame, both must
/// read the same point; a difference panics, so the fuzzer reports it. The
/// whole input is also tried as one frame body (most inputs are no stream).
pub fn point_view(data: &[u8]) {
    let check = |frame: &[u8]| {
        if let Err(e) = tickwatch_proto::view::compare_with_prost(frame) {
            panic!("fast path and prost differ on {frame:02x?}: {e}");
        }
    };
    check(data);
    let mut r = data;
    let mut buf = Vec::new();
    while let Ok(true) = tickwatch_proto::wire::read_request_frame(&mut r, &mut buf) {
        check(&buf);
    }
}

/// A snapshot through the decoder, as a Restore hands it over: as given
/// (the checksum stops most damage), and with its checksum made to match,
/// so the bytes also reach the header checks, the decompressor and the
/// payload decoder.
pub fn snapshot(data: &[u8]) {
    let _ = tickwatch_state::Snapshot::decode(data);
    if data.len() >= 20 {
        let mut fixed = data.to_vec();
        let end = fixed.len() - 4;
        let crc = crc32fast::hash(&fixed[..end]);
        fixed[end..].copy_from_slice(&crc.to_le_bytes());
        let _ = tickwatch_state::Snapshot::decode(&fixed);
    }
}

/// Recorded line protocol, as `tickwatch replay` reads it.
pub fn line_protocol(data: &[u8]) {
    let mut input = lineproto::Input::default();
    lineproto::parse(data, "fuzz", Precision::Ns, None, 0, &mut input);
}

/// A whole UDF session over `data` as the request stream: framing, request
/// dispatch, option validation, batches, Snapshot and Restore, with an
/// in-process detector and no state directory. Responses are discarded.
pub fn session(data: &[u8]) {
    let config = SessionConfig {
        factory: InProcess::<Mean>::factory(),
        field_arity: 3,
        state: None,
        batch_timeout: None,
        edge: crate::node::Edge::Batch,
        idle_evict: 3_600_000_000_000,
    };
    let _ = session::run(Cursor::new(data.to_vec()), std::io::sink(), &config);
}

/// [`session`] on stream edges (`--edge stream`, `--idle-evict 10m`):
/// stream points, the node's own windows, pass-through, eviction.
pub fn stream_session(data: &[u8]) {
    let config = SessionConfig {
        factory: InProcess::<Mean>::factory(),
        field_arity: 3,
        state: None,
        batch_timeout: None,
        edge: crate::node::Edge::Stream,
        idle_evict: 600_000_000_000,
    };
    let _ = session::run(Cursor::new(data.to_vec()), std::io::sink(), &config);
}

/// A small detector for [`session`]: flags a window whose mean leaves the
/// running mean by more than `limit`.
pub struct Mean {
    limit: f64,
    sum: f64,
    n: u64,
}

impl Detector for Mean {
    const NAME: &'static str = "mean";
    const VERSION: &'static str = "0.0.0";
    const STATE_VERSION: u32 = 1;
    // So a stream session without .period() scores every point.
    const MIN_WINDOW: u32 = 1;

    fn options() -> Vec<OptionSpec> {
        vec![OptionSpec::with_default("limit", Value::Double(1.0), "allowed drift")]
    }

    fn new(options: &Options) -> Result<Self, String> {
        Ok(Mean { limit: options.double("limit")?, sum: 0.0, n: 0 })
    }

    fn score(&mut self, window: &[f64]) -> Option<Verdict> {
        let mean = window.iter().sum::<f64>() / window.len().max(1) as f64;
        let verdict = (self.n > 0).then(|| {
            let d = mean - self.sum / self.n as f64;
            let anomalous = d.abs() > self.limit;
            Verdict { pvalue: if anomalous { 0.0 } else { 1.0 }, anomalous, stats: Vec::new() }
        });
        self.sum += window.iter().sum::<f64>();
        self.n += window.len() as u64;
        verdict
    }

    fn save(&self) -> Vec<u8> {
        let mut out = self.sum.to_le_bytes().to_vec();
        out.extend_from_slice(&self.n.to_le_bytes());
        out
    }

    fn load(&mut self, state: &[u8]) -> Result<(), String> {
        let (s, n) = state.split_at_checked(8).ok_or("need 16 bytes")?;
        self.sum = f64::from_le_bytes(s.try_into().map_err(|_| "need 16 bytes")?);
        self.n = u64::from_le_bytes(n.try_into().map_err(|_| "need 16 bytes")?);
        Ok(())
    }

    fn describe(&self) -> Summary {
        Summary::new().int("n", self.n as i64)
    }
}
