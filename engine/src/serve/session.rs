//! `Session`: one Kapacitor connection (stdin/stdout of a process UDF, or one
//! unix-socket connection), from Info or Init until the stream closes.
//!
//! Three threads per session, so keepalives are answered promptly while a
//! large batch is being scored (Kapacitor aborts a task whose UDF is silent
//! for `timeout`):
//! - the reader decodes frames, answers keepalives straight to the writer,
//!   assembles batches and queues everything else, in order, for
//! - the worker, which owns the node (Init, Restore, batches, Snapshot) and
//!   so answers a Snapshot only after every batch queued before it; when
//!   several batches are already queued it scores them all (taking each
//!   from the queue as it gets to it), commits their states once and only
//!   then emits their points (adaptive group commit), and
//! - the writer, which frames responses onto the output and flushes whenever
//!   it has nothing more to write.
//!
//! The queues between them are bounded by what they hold (see
//! [`WORK_LIMIT`], [`OUT_LIMIT`]): a sender far ahead of the detector, or a
//! Kapacitor that stops reading, stalls the session instead of growing it.
//!
//! stdout belongs to the protocol: nothing here prints.
#![deny(clippy::print_stdout)]

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;
use std::time::Duration;

use tickwatch_proto::agent::{self, request, response};
use tickwatch_proto::{
    EncodedPoints, FrameError, FrameReader, Incoming, PointFrames, decode_request_or_point,
    write_message,
};
use tickwatch_state::{NodeMeta, Snapshot};

use super::persist::{Persisted, StateSettings};
use super::queue;
use crate::kapacitor::Batch;
use crate::node::detector::panic_text;
use crate::node::values::Columns;
use crate::node::watch::Progress;
use crate::node::{Edge, Factory, Node, config, stream};

/// What every session of a serving process shares.
#[derive(Clone)]
pub struct SessionConfig {
    /// The detector this process serves.
    pub factory: Factory,
    /// Number of STRING arguments `field` declares.
    pub field_arity: usize,
    /// Where node state persists; `None` keeps it only in Kapacitor's snapshots.
    pub state: Option<StateSettings>,
    /// The watchdog: a detector call running longer than this ends the
    /// session with an ErrorResponse naming it (`None`: no watchdog).
    pub batch_timeout: Option<std::time::Duration>,
    /// Batch edges (windows from `|window()`) or stream edges (points; the
    /// node windows them itself, see `node::stream`).
    pub edge: Edge,
    /// Stream edges: a group idle this long (ns of data time) leaves memory.
    pub idle_evict: i64,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("detector", &self.factory.name())
            .field("field_arity", &self.field_arity)
            .field("state", &self.state)
            .finish()
    }
}

/// How a session ended, when not cleanly. The text has been sent to
/// Kapacitor as an ErrorResponse where a peer could still read it.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The stream broke, or the node failed: `{ids}: {reason}`.
    #[error("{0}")]
    Fatal(String),
    /// Writing to Kapacitor failed.
    #[error("cannot write to Kapacitor: {0}")]
    Write(std::io::Error),
    /// A session thread could not start or died.
    #[error("{0}")]
    Thread(String),
}

/// The read side of a connection.
pub trait Input: Read + Send + 'static {
    /// Init arrived: a socket connection stops its pre-Init timeout.
    fn init_arrived(&self) {}

    /// How to end this connection when its worker is stuck (see the
    /// watchdog); by default nothing can be done.
    fn on_hang(&self) -> Hang {
        Box::new(|| {})
    }
}

impl Input for std::io::Stdin {
    fn on_hang(&self) -> Hang {
        // The stuck call cannot be interrupted, and Kapacitor restarts the
        // task only once this process is gone.
        Box::new(|| std::process::exit(1))
    }
}

impl Input for std::io::Cursor<Vec<u8>> {}

impl Input for std::os::unix::net::UnixStream {
    fn init_arrived(&self) {
        let _ = self.set_read_timeout(None);
    }

    fn on_hang(&self) -> Hang {
        // Close this connection; the stuck thread stays (it cannot be
        // stopped) but every other connection goes on.
        let stream = self.try_clone();
        Box::new(move || {
            if let Ok(s) = &stream {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        })
    }
}

/// What ends a connection whose worker is stuck in a detector call.
pub type Hang = Box<dyn Fn() + Send + Sync + 'static>;

/// Largest capacity reserved up front for a batch, whatever its BeginBatch
/// `size` claims (the claim comes from the wire).
const MAX_BATCH_RESERVE: usize = 65_536;

/// What a decoded point is taken to cost in memory beyond its frame bytes
/// (the `Point` itself, its name and the hash maps of its tags and fields;
/// measured at roughly 400–600 bytes for a three-field printer point).
const POINT_COST: usize = 512;

/// Most bytes (frame bytes, plus what the batch holds: [`POINT_COST`] per
/// decoded point, the buffer of points kept as bytes) of complete batches
/// and other requests queued for the worker, beyond which the reader stops
/// reading: about 900 printer points with their rows kept (more when only
/// their values are read), which the shipped detectors score in
/// milliseconds, far inside Kapacitor's keepalive timeout (10 s by
/// default). One item is always admitted into an empty queue; beside the
/// queue the reader holds one run waiting to enter it, the batches it is
/// gathering into the next run (up to [`BATCH_RUN_BYTES`]) and the batch it
/// is assembling (docs/architecture.md, "Backpressure"). What a sender far ahead
/// costs in memory: 8 MiB here cost the 4 × 4 stream about 4 MiB of peak
/// RSS over 1 MiB (docs/performance.md, "Round 5: memory"); 1 MiB, with
/// runs of up to 1 MiB, cost the printer day 0.8 MiB and the 4 × 4 stream
/// 0.4 MiB more than now and saved no CPU (round 10). How many commits it
/// costs is [`GROUP_COMMIT_COST`]'s.
const WORK_LIMIT: usize = 512 << 10;

/// Most of the input one group commit scores (as the work queue counts it,
/// less the frames' bytes): the worker takes the runs waiting behind the
/// first one as it scores them, up to this, then commits and emits. The
/// commit holds their points and states meanwhile, not the batches, so a
/// small [`WORK_LIMIT`] does not mean small commits.
const GROUP_COMMIT_COST: usize = 4 << 20;

/// Most bytes ([`POINT_COST`] per response other than points, plus a
/// snapshot's bytes; the frames of emitted points, as held) queued for the
/// writer, beyond which the worker and the reader wait: a Kapacitor that
/// stops reading stdout stalls tickwatch instead of growing it.
const OUT_LIMIT: usize = 8 << 20;

/// While the reader waits for room in the worker's queue, it re-answers the
/// latest keepalive this often, so a detector slower than the bound assumes
/// still never lets Kapacitor's timer (reset by any response) run out.
const KEEPALIVE_TICK: Duration = Duration::from_secs(1);

// Moved once through the queue, like `Out`.
#[allow(clippy::large_enum_variant)]
enum Work {
    Info,
    Init(agent::InitRequest),
    Restore(agent::RestoreRequest),
    Snapshot,
    /// Consecutive complete batches read in one go (see `BATCH_RUN`).
    Batches(Vec<Batch>),
    /// Stream edges: consecutive points read in one go (see `STREAM_RUN`).
    Points(EncodedPoints),
    Eof {
        open_batch: bool,
    },
    Broken(String),
}

impl Work {
    /// What the item holds, for the queue's bound: `bytes` is the size of
    /// the frames it came in.
    fn cost(&self, bytes: usize) -> usize {
        match self {
            Work::Batches(b) => b.iter().fold(bytes, |c, b| c.saturating_add(batch_cost(b))),
            Work::Points(p) => bytes.saturating_add(p.heap_bytes()),
            _ => bytes.max(1),
        }
    }
}

/// What a batch holds beyond its frame bytes, for the queue's bound.
fn batch_cost(b: &Batch) -> usize {
    b.points
        .len()
        .saturating_mul(POINT_COST)
        .saturating_add(b.encoded.heap_bytes())
        .saturating_add(b.columns.as_ref().map_or(0, Columns::heap_bytes))
}

// Each message is moved once from producer to writer; boxing would only add
// an allocation per emitted point.
#[allow(clippy::large_enum_variant)]
enum Out {
    Msg(response::Message),
    /// The points of one or more batches whose states are committed, as
    /// their frames: one queue hand-off for all of them.
    Points(PointFrames),
    Close,
}

impl Out {
    fn cost(&self) -> usize {
        match self {
            Out::Msg(response::Message::Snapshot(s)) => POINT_COST + s.snapshot.len(),
            // What the frames hold, and the item's own room in the queue.
            Out::Points(p) => p.heap_bytes().saturating_add(std::mem::size_of::<Out>()),
            Out::Msg(_) | Out::Close => POINT_COST,
        }
    }
}

fn send_out(tx: &queue::Sender<Out>, item: Out) {
    // The writer outlives every sender until Close; a send error only means
    // the session is already ending.
    let cost = item.cost();
    let _ = tx.send(item, cost);
}

fn send(tx: &queue::Sender<Out>, m: response::Message) {
    send_out(tx, Out::Msg(m));
}

/// Serves one connection. Returns `Err` with the reason when the session
/// ended with an `ErrorResponse` (broken stream, failed detector); the caller
/// turns that into a non-zero exit (process mode) or a closed connection.
pub fn run<R, W>(reader: R, writer: W, config: &SessionConfig) -> Result<(), SessionError>
where
    R: Input,
    W: Write + Send,
{
    let (out_tx, out_rx) = queue::bounded::<Out>(OUT_LIMIT);
    let (work_tx, work_rx) = queue::bounded::<Work>(WORK_LIMIT);
    let plan = std::sync::Arc::new(std::sync::OnceLock::new());

    let reader_out = out_tx.clone();
    let on_hang: std::sync::Arc<Hang> = std::sync::Arc::new(reader.on_hang());
    let spawned = thread::Builder::new().name("udf-reader".into()).spawn({
        let edge = config.edge;
        let plan = std::sync::Arc::clone(&plan);
        let options = (config.factory.clone(), config.field_arity);
        move || read_loop(reader, work_tx, reader_out, edge, &plan, &options)
    });
    if let Err(e) = spawned {
        return Err(SessionError::Thread(format!("cannot start reader thread: {e}")));
    }

    thread::scope(|s| {
        let writer_thread = s.spawn(move || write_loop(writer, out_rx));
        let result = Worker {
            config,
            node: None,
            ids: "udf (before Init)".to_string(),
            out: &out_tx,
            on_hang: &on_hang,
            queue: work_rx.depth(),
            plan: &plan,
        }
        .run(work_rx);
        send_out(&out_tx, Out::Close);
        match writer_thread.join() {
            Ok(Ok(())) => result,
            Ok(Err(e)) => result.and(Err(e)),
            Err(_) => Err(SessionError::Thread("writer thread panicked".into())),
        }
    })
}

/// Stream edges: most points the reader gathers into one work item. It
/// hands them over sooner whenever no further frame is already buffered,
/// so a trickle waits for nothing.
const STREAM_RUN: usize = 1024;

/// How the reader reads a batch's points once the worker's node is
/// initialized (batch edges): the tracked values are read while each frame
/// is checked (`Columns::read_frame`), and the rows are kept only for a node
/// that passes them through. Set once, by the worker, at a successful Init.
/// Until then (the worker may still be opening the node's database) the
/// reader reads the values for the fields of the latest Init whose options
/// validate, and keeps the rows too: the node uses the values if its fields
/// are those, else reads the rows (the same values either way).
#[derive(Debug)]
struct ReadPlan {
    fields: std::sync::Arc<[String]>,
    keep_rows: bool,
}

/// Most complete batches the reader holds to hand over together, while the
/// input already holds more frames (it never waits for input holding any).
const BATCH_RUN: usize = 16;

/// Most bytes (as the queue counts them) of batches held so: half of
/// [`WORK_LIMIT`] (both were 1 MiB until round 10, docs/performance.md;
/// 128 KiB here and 256 KiB there cost the 4 × 4 stream 11 % more CPU).
const BATCH_RUN_BYTES: usize = 256 << 10;

/// Bytes the reader asks its input for at a time.
const READ_CHUNK: usize = 256 * 1024;

fn read_loop<R: Input>(
    reader: R,
    work: queue::Sender<Work>,
    out: queue::Sender<Out>,
    edge: Edge,
    plan: &std::sync::OnceLock<ReadPlan>,
    (factory, field_arity): &(Factory, usize),
) {
    // The fields of the latest Init whose options validate (see `ReadPlan`).
    let mut tentative: Option<std::sync::Arc<[String]>> = None;
    // Whether the batch being assembled keeps its rows as well as values.
    let mut keep_rows = true;
    let mut reader = FrameReader::new(reader, READ_CHUNK);
    // Stream edges: points read but not yet queued, and their frame bytes.
    let mut points = EncodedPoints::default();
    let mut points_bytes = 0usize;
    let mut batch: Option<Batch> = None;
    // Frame bytes of the batch being assembled, for the queue's bound.
    let mut batch_bytes = 0usize;
    // The latest keepalive time seen, re-answered while the reader waits.
    let mut last_keepalive: Option<i64> = None;
    // Complete batches not yet queued, and their frame bytes: handed over
    // together (one wake-up of the worker) when the input holds more.
    let mut ready: Vec<Batch> = Vec::new();
    let mut ready_bytes = 0usize;
    loop {
        // Never wait for input while holding complete batches.
        if !ready.is_empty() && !reader.holds_a_frame() {
            let run = Work::Batches(std::mem::take(&mut ready));
            let cost = run.cost(std::mem::take(&mut ready_bytes));
            if send_work(&work, &out, run, cost, last_keepalive).is_err() {
                return;
            }
        }
        // Inside a batch, points are kept as their bytes (the fast path of
        // `tickwatch_proto::view`; what it leaves to prost comes back decoded).
        // So are stream points, outside a batch.
        let in_place = batch.is_some() || edge == Edge::Stream;
        // Each frame's body plus its length prefix (at most 10 bytes).
        let mut frame_bytes = 0;
        let incoming = match reader.next_request() {
            Ok(Some(frame)) => {
                frame_bytes = frame.len() + 2;
                // A batch point, its values read while it is checked.
                if let Some(b) = batch.as_mut()
                    && let Some(cols) = b.columns.as_mut()
                    && let Some(p) = cols.read_frame(frame)
                {
                    if keep_rows {
                        b.encoded.push(p);
                    }
                    batch_bytes += frame_bytes;
                    continue;
                }
                decode_request_or_point(frame, in_place).map(Some)
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        if !points.is_empty()
            && !matches!(&incoming, Ok(Some(Incoming::Point(_))))
            && !matches!(
                &incoming,
                Ok(Some(Incoming::Request(r))) if matches!(r.message, Some(request::Message::Point(_)))
            )
        {
            let run = Work::Points(std::mem::take(&mut points));
            let cost = run.cost(std::mem::take(&mut points_bytes));
            // As for any item: while the queue is full, keep answering.
            if send_work(&work, &out, run, cost, last_keepalive).is_err() {
                return;
            }
        }
        let req = match incoming {
            Ok(Some(Incoming::Point(p))) => {
                match batch.as_mut() {
                    Some(b) => {
                        b.encoded.push(p);
                        batch_bytes += frame_bytes;
                        continue;
                    }
                    None => {
                        points.push(p);
                        points_bytes += frame_bytes;
                        if points.len() < STREAM_RUN && reader.holds_a_frame() {
                            continue;
                        }
                    }
                }
                let run = Work::Points(std::mem::take(&mut points));
                let cost = run.cost(std::mem::take(&mut points_bytes));
                if send_work(&work, &out, run, cost, last_keepalive).is_err() {
                    return;
                }
                continue;
            }
            Ok(Some(Incoming::Request(r))) => r,
            Ok(None) => {
                let _ = work.send(Work::Eof { open_batch: batch.is_some() }, 1);
                return;
            }
            Err(e) => {
                let msg = match &e {
                    FrameError::TooLarge { .. } => format!("refusing frame: {e}"),
                    FrameError::Io(io)
                        if matches!(
                            io.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        "no Init within the connection's --init-timeout; closing it".to_string()
                    }
                    _ => format!("broken stream: {e}"),
                };
                let _ = work.send(Work::Broken(msg), 1);
                return;
            }
        };
        let mut bytes = frame_bytes;
        let item = match req.message {
            Some(request::Message::Keepalive(k)) => {
                last_keepalive = Some(k.time);
                send(&out, response::Message::Keepalive(agent::KeepaliveResponse { time: k.time }));
                continue;
            }
            Some(request::Message::Begin(_)) if edge == Edge::Stream => Work::Broken(
                "protocol error: BeginBatch, but this UDF is served with --edge stream (it wants \
                 stream edges): remove |window() before it, or use the batch-edge function"
                    .into(),
            ),
            Some(request::Message::Begin(begin)) => {
                if batch.is_some() {
                    Work::Broken("protocol error: BeginBatch while a batch is open".into())
                } else {
                    let reserve = usize::try_from(begin.size).unwrap_or(0).min(MAX_BATCH_RESERVE);
                    let fields = match (plan.get(), &tentative) {
                        (Some(p), _) => Some((&p.fields, p.keep_rows)),
                        (None, Some(f)) => Some((f, true)),
                        (None, None) => None,
                    };
                    keep_rows = fields.is_none_or(|(_, keep)| keep);
                    let columns = fields.map(|(f, _)| Columns::new(f.clone(), reserve));
                    batch = Some(Batch {
                        begin,
                        encoded: EncodedPoints::with_capacity(if keep_rows { reserve } else { 0 }),
                        columns,
                        ..Batch::default()
                    });
                    batch_bytes = frame_bytes;
                    continue;
                }
            }
            Some(request::Message::Point(p)) => match batch.as_mut() {
                Some(b) => {
                    if let Some(cols) = b.columns.as_mut() {
                        cols.push_point(&p);
                    }
                    if keep_rows {
                        b.encoded.push_point(&p);
                    }
                    batch_bytes += frame_bytes;
                    continue;
                }
                None if edge == Edge::Stream => {
                    points.push_point(&p);
                    points_bytes += frame_bytes;
                    if points.len() < STREAM_RUN && reader.holds_a_frame() {
                        continue;
                    }
                    bytes = std::mem::take(&mut points_bytes);
                    Work::Points(std::mem::take(&mut points))
                }
                None => Work::Broken(
                    "protocol error: point outside a batch (this UDF wants batch edges: \
                     put it after |window())"
                        .into(),
                ),
            },
            Some(request::Message::End(end)) => match batch.take() {
                Some(mut b) => {
                    b.end = end;
                    ready_bytes += bytes + batch_bytes;
                    ready.push(b);
                    let held =
                        ready.iter().fold(ready_bytes, |c, b| c.saturating_add(batch_cost(b)));
                    if ready.len() < BATCH_RUN && held < BATCH_RUN_BYTES && reader.holds_a_frame() {
                        continue;
                    }
                    bytes = std::mem::take(&mut ready_bytes);
                    Work::Batches(std::mem::take(&mut ready))
                }
                None => Work::Broken("protocol error: EndBatch without BeginBatch".into()),
            },
            Some(request::Message::Info(_)) => Work::Info,
            Some(request::Message::Init(i)) => {
                reader.get_ref().init_arrived();
                if edge == Edge::Batch
                    && let Ok(c) = config::validate(&i.options, *field_arity, factory.options())
                {
                    tentative = Some(c.fields.into());
                }
                Work::Init(i)
            }
            Some(request::Message::Restore(r)) => Work::Restore(r),
            Some(request::Message::Snapshot(_)) => Work::Snapshot,
            None => Work::Broken("protocol error: request with no message".into()),
        };
        if !ready.is_empty() {
            // Batches before anything else, in order.
            let run = Work::Batches(std::mem::take(&mut ready));
            let cost = run.cost(std::mem::take(&mut ready_bytes));
            if send_work(&work, &out, run, cost, last_keepalive).is_err() {
                return;
            }
        }
        let broken = matches!(item, Work::Broken(_));
        let cost = item.cost(bytes);
        // Blocks while the worker is a queue's worth behind; meanwhile
        // Kapacitor keeps hearing from us (any response resets its timer).
        let sent = send_work(&work, &out, item, cost, last_keepalive);
        if sent.is_err() || broken {
            return;
        }
    }
}

/// Queues `item` for the worker. Blocks while the worker is a queue's worth
/// behind; meanwhile Kapacitor keeps hearing from us (any response resets
/// its timer): the latest keepalive is re-answered.
fn send_work(
    work: &queue::Sender<Work>,
    out: &queue::Sender<Out>,
    item: Work,
    cost: usize,
    last_keepalive: Option<i64>,
) -> Result<(), ()> {
    work.send_waiting(item, cost, KEEPALIVE_TICK, || {
        if let Some(time) = last_keepalive {
            send(out, response::Message::Keepalive(agent::KeepaliveResponse { time }));
        }
    })
    .map_err(|_| ())
}

fn write_loop<W: Write>(writer: W, rx: queue::Receiver<Out>) -> Result<(), SessionError> {
    let mut w = BufWriter::with_capacity(64 * 1024, writer);
    let mut failed: Option<std::io::Error> = None;
    'outer: while let Some(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Out::Close => break 'outer,
                Out::Msg(m) if failed.is_none() => {
                    let resp = agent::Response { message: Some(m) };
                    if let Err(e) = write_message(&mut w, &resp) {
                        failed = Some(e);
                    }
                }
                Out::Points(frames) if failed.is_none() => {
                    // Encoded by the worker as the points were made.
                    if let Err(e) = w.write_all(frames.as_bytes()) {
                        failed = Some(e);
                    }
                }
                Out::Msg(_) | Out::Points(_) => {}
            }
            next = rx.try_recv();
        }
        if failed.is_none()
            && let Err(e) = w.flush()
        {
            failed = Some(e);
        }
    }
    if failed.is_none()
        && let Err(e) = w.flush()
    {
        failed = Some(e);
    }
    // The caller logs the error (once) with the session's other outcome.
    failed.map_or(Ok(()), |e| Err(SessionError::Write(e)))
}

/// What the worker takes from its queue in one go (moved once, so the
/// size difference of the variants costs nothing).
#[allow(clippy::large_enum_variant)]
enum Job {
    /// Consecutive batches, scored with those waiting behind them and
    /// committed once.
    Batches(Vec<Batch>),
    /// A run of stream points, likewise.
    Points(EncodedPoints),
    One(Work),
}

/// What the worker does after one item.
enum Step {
    Continue,
    End(Result<(), SessionError>),
}

struct Worker<'a> {
    config: &'a SessionConfig,
    node: Option<Persisted>,
    /// `task T node N` (once Init arrived), for log lines.
    ids: String,
    out: &'a queue::Sender<Out>,
    on_hang: &'a std::sync::Arc<Hang>,
    /// What waits in the worker's queue, for the node's metrics.
    queue: queue::Depth,
    /// Told to the reader at a successful Init (batch edges).
    plan: &'a std::sync::OnceLock<ReadPlan>,
}

impl Worker<'_> {
    fn run(mut self, rx: queue::Receiver<Work>) -> Result<(), SessionError> {
        while let Some(work) = rx.recv() {
            // Adaptive group commit: the batches already waiting behind this
            // one are scored with it and committed (flushed) once. Under a
            // trickle nothing waits and this is one batch at a time.
            let job = match work {
                Work::Batches(batches) => Job::Batches(batches),
                Work::Points(points) => Job::Points(points),
                other => Job::One(other),
            };
            // A panic anywhere below (the database library, a bug of ours)
            // must end the session with an answer, never leave Kapacitor
            // waiting on a thread that is gone.
            let step = catch_unwind(AssertUnwindSafe(|| match job {
                Job::Batches(batches) => match self.batches(batches, &rx) {
                    Ok(()) => Step::Continue,
                    Err(e) => Step::End(Err(e)),
                },
                Job::Points(points) => match self.points(points, &rx) {
                    Ok(()) => Step::Continue,
                    Err(e) => Step::End(Err(e)),
                },
                Job::One(work) => self.handle(work, &rx),
            }));
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::End(result)) => return result,
                Err(panic) => {
                    let msg = format!("internal error: {}", panic_text(panic.as_ref()));
                    // Close the node (its database and lock) before answering;
                    // dropping it may panic too, on the same damaged state.
                    let node = self.node.take();
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(node)));
                    return Err(self.fatal(msg));
                }
            }
        }
        // The reader vanished without a word (it panicked): do not hang.
        Err(self.fatal("reader stopped unexpectedly".into()))
    }

    fn handle(&mut self, work: Work, rx: &queue::Receiver<Work>) -> Step {
        let result = match work {
            Work::Info => {
                self.info();
                Ok(())
            }
            Work::Init(i) => {
                self.init(i);
                Ok(())
            }
            Work::Restore(r) => {
                self.restore(r);
                Ok(())
            }
            Work::Snapshot => self.snapshot(),
            Work::Batches(b) => self.batches(b, rx),
            Work::Points(p) => self.points(p, rx),
            Work::Eof { open_batch } => {
                if open_batch {
                    tracing::warn!(
                        "{}: input closed inside a batch; that batch is dropped",
                        self.ids
                    );
                }
                if let Some(node) = self.node.as_mut()
                    && let Err(e) = node.flush_pending()
                {
                    return Step::End(Err(self.fatal(e.to_string())));
                }
                self.finished();
                return Step::End(Ok(()));
            }
            Work::Broken(msg) => Err(self.fatal(msg)),
        };
        match result {
            Ok(()) => Step::Continue,
            Err(e) => Step::End(Err(e)),
        }
    }

    fn fatal(&self, msg: String) -> SessionError {
        self_fatal(self.out, &self.ids, msg)
    }

    fn finished(&self) {
        if let Some(node) = &self.node {
            let s = node.node().stats();
            // Stream edges: "batches" are the windows the node cut itself.
            let stream = if self.config.edge == Edge::Stream {
                format!(" ({} stream points in, {} idle groups evicted)", s.points_in, s.evicted)
            } else {
                String::new()
            };
            tracing::info!(
                "{}: input closed after {} batches{stream}, {} points emitted, {} values skipped",
                self.ids,
                s.batches,
                s.emitted,
                s.skipped
            );
        }
    }

    fn info(&self) {
        let declared = config::declared(self.config.field_arity, self.config.factory.options());
        let options: HashMap<String, agent::OptionInfo> = declared
            .into_iter()
            .map(|(name, kinds)| {
                let value_types = kinds.into_iter().map(|k| k as i32).collect();
                (name, agent::OptionInfo { value_types })
            })
            .collect();
        send(
            self.out,
            response::Message::Info(agent::InfoResponse {
                wants: match self.config.edge {
                    Edge::Batch => agent::EdgeType::Batch as i32,
                    Edge::Stream => agent::EdgeType::Stream as i32,
                },
                provides: agent::EdgeType::Stream as i32,
                options,
            }),
        );
    }

    fn init(&mut self, req: agent::InitRequest) {
        let result = if self.node.is_some() {
            Err("already initialized: Init may be sent once per connection".to_string())
        } else {
            self.ids = format!("task {} node {}", req.task_id, req.node_id);
            self.open(&req).map_err(|e| e.to_string())
        };
        let (success, error) = match result {
            Ok(node) => {
                let c = node.node().config();
                tracing::info!(
                    "{}: tracking fields {:?} with detector {} {} ({}), field tag {:?}",
                    self.ids,
                    c.fields,
                    self.config.factory.name(),
                    self.config.factory.version(),
                    c.fingerprint,
                    c.field_tag
                );
                if self.config.edge == Edge::Batch {
                    let _ = self.plan.set(ReadPlan {
                        fields: c.fields.clone().into(),
                        keep_rows: c.pass_through,
                    });
                }
                self.node = Some(node);
                (true, String::new())
            }
            Err(e) => {
                tracing::warn!("{}: init refused: {e}", self.ids);
                (false, e)
            }
        };
        send(self.out, response::Message::Init(agent::InitResponse { success, error }));
    }

    /// Validates the options, builds the node and, with a state directory,
    /// opens its database and picks up its persisted state.
    fn open(&self, req: &agent::InitRequest) -> Result<Persisted, Box<dyn std::error::Error>> {
        let factory = &self.config.factory;
        let cfg = config::validate(&req.options, self.config.field_arity, factory.options())?;
        stream::check_edge(&cfg, self.config.edge, factory.name(), factory.min_window())?;
        let mut node = Node::new(factory.clone(), cfg, &self.ids)?;
        if let Some(limit) = self.config.batch_timeout {
            let progress = std::sync::Arc::new(Progress::default());
            node.watch(std::sync::Arc::clone(&progress));
            self.watchdog(&progress, limit, node.config().fields.clone());
        }
        let meta = NodeMeta {
            options: Some(config::options_json(&node.config().detector_options)),
            fields: node.config().fields.clone(),
            ..NodeMeta::new(&req.task_id, &req.node_id, factory.name())
        };
        let Some(st) = &self.config.state else {
            tracing::warn!(
                "{}: no state directory (--state-dir / TICKWATCH_STATE_DIR): state lives only in \
                 Kapacitor's snapshots",
                self.ids
            );
            let mut node = Persisted::in_memory(node, &meta);
            node.metrics().watch_queue(self.queue.probe());
            if self.config.edge == Edge::Stream {
                node.stream_edges(self.config.idle_evict);
            }
            return Ok(node);
        };
        let (mut node, n) = Persisted::open(node, st, &meta)?;
        node.metrics().watch_queue(self.queue.probe());
        if self.config.edge == Edge::Stream {
            node.stream_edges(self.config.idle_evict);
        }
        tracing::info!(
            "{}: state in {}; picked up {n} persisted field state(s)",
            self.ids,
            node.dir().unwrap_or_default()
        );
        Ok(node)
    }

    fn restore(&mut self, req: agent::RestoreRequest) {
        let result = match self.node.as_mut() {
            None => Err("restore before a successful Init".to_string()),
            Some(node) => Snapshot::decode(&req.snapshot)
                .map_err(|e| format!("cannot restore snapshot: {e}"))
                .and_then(|snap| {
                    node.restore(snap).map_err(|e| format!("cannot restore snapshot: {e}"))
                }),
        };
        let (success, error) = match result {
            Ok(n) => {
                tracing::info!(
                    "{}: restored {n} field state(s) from Kapacitor's snapshot",
                    self.ids
                );
                (true, String::new())
            }
            Err(e) => {
                tracing::warn!("{}: {e}; current state kept", self.ids);
                (false, e)
            }
        };
        send(self.out, response::Message::Restore(agent::RestoreResponse { success, error }));
    }

    fn snapshot(&mut self) -> Result<(), SessionError> {
        let snap = match self.node.as_mut() {
            None => Snapshot::default(),
            Some(node) => node
                .snapshot()
                .map_err(|e| self_fatal(self.out, &self.ids, format!("snapshot failed: {e}")))?,
        };
        let bytes = snap
            .encode()
            .map_err(|e| self_fatal(self.out, &self.ids, format!("snapshot failed: {e}")))?;
        send(self.out, response::Message::Snapshot(agent::SnapshotResponse { snapshot: bytes }));
        Ok(())
    }

    /// Starts the watchdog of this session's node: it ends the session when
    /// a detector call runs past `limit`, with an ErrorResponse naming the
    /// detector, field and group, so Kapacitor restarts the task (its own
    /// timeout never fires while the reader answers keepalives). It stops
    /// when the node is dropped.
    fn watchdog(&self, progress: &std::sync::Arc<Progress>, limit: Duration, fields: Vec<String>) {
        let progress = std::sync::Arc::downgrade(progress);
        let out = self.out.clone();
        let ids = self.ids.clone();
        let detector = self.config.factory.name().to_string();
        let on_hang = std::sync::Arc::clone(self.on_hang);
        let tick = (limit / 10).clamp(Duration::from_millis(10), Duration::from_millis(200));
        let spawned = thread::Builder::new().name("watchdog".into()).spawn(move || {
            loop {
                thread::sleep(tick);
                let Some(p) = progress.upgrade() else { return };
                let Some(stuck) = p.stuck(limit) else { continue };
                let field = fields.get(stuck.field).map_or("?", String::as_str);
                let msg = format!(
                    "detector {detector} has not returned after {:.1} s scoring field {field} \
                     of group {}; ending the task so that Kapacitor restarts it \
                     (--batch-timeout {} s)",
                    stuck.running.as_secs_f64(),
                    crate::kapacitor::group_label(&stuck.group),
                    limit.as_secs_f64()
                );
                tracing::error!("{ids}: {msg}");
                send(&out, response::Message::Error(agent::ErrorResponse { error: msg }));
                // Let the writer put the answer on the wire first.
                thread::sleep(Duration::from_millis(500));
                on_hang();
                return;
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(
                "{}: no watchdog ({e}); a stuck detector will not be reported",
                self.ids
            );
        }
    }

    /// Scores `batches` in order, commits their states once, then emits
    /// their points. If one fails, the batches before it are still committed
    /// and emitted, as if they had come one at a time, and then the session
    /// ends with the failure.
    fn batches(
        &mut self,
        batches: Vec<Batch>,
        rx: &queue::Receiver<Work>,
    ) -> Result<(), SessionError> {
        let Some(node) = self.node.as_mut() else {
            return Err(self.fatal("protocol error: batch before a successful Init".into()));
        };
        let runs = waiting_runs(
            batches,
            rx,
            |w| matches!(w, Work::Batches(_)),
            |w| if let Work::Batches(b) = w { Some(b) } else { None },
            |b| b.iter().map(batch_cost).sum(),
            gather(node),
        );
        let (points, failed) = node.process_runs(runs);
        if !points.is_empty() {
            send_out(self.out, Out::Points(points));
        }
        match failed {
            None => Ok(()),
            Some(e) => Err(self_fatal(self.out, &self.ids, e.to_string())),
        }
    }
}

impl Worker<'_> {
    /// Stream edges: `points` in order through the node's windows, their
    /// states committed once, then the points they produced emitted.
    fn points(
        &mut self,
        points: EncodedPoints,
        rx: &queue::Receiver<Work>,
    ) -> Result<(), SessionError> {
        let Some(node) = self.node.as_mut() else {
            return Err(self.fatal("protocol error: point before a successful Init".into()));
        };
        let runs = waiting_runs(
            points,
            rx,
            |w| matches!(w, Work::Points(_)),
            |w| if let Work::Points(p) = w { Some(p) } else { None },
            EncodedPoints::heap_bytes,
            gather(node),
        );
        let (out, failed) = node.process_point_runs(runs);
        if !out.is_empty() {
            send_out(self.out, Out::Points(out));
        }
        match failed {
            None => Ok(()),
            Some(e) => Err(self_fatal(self.out, &self.ids, e.to_string())),
        }
    }
}

/// Adaptive group commit: `first`, then the runs of the same kind already
/// waiting behind it, taken one at a time as they are scored (each is
/// dropped once scored: the queue's bound stays the bound on the input the
/// session holds), up to [`GROUP_COMMIT_COST`] of them. Once a second run
/// was taken (the sender is ahead), an empty queue is given
/// [`GATHER_WAIT`] for the reader's next run before the commit, while the
/// commit is younger than [`GATHER_BUDGET`]: a steady stream of small runs
/// cannot hold the points back longer. Under a trickle nothing waits and
/// this is `first` alone, committed at once.
fn waiting_runs<'q, T: 'q>(
    first: T,
    rx: &'q queue::Receiver<Work>,
    is: fn(&Work) -> bool,
    unwrap: fn(Work) -> Option<T>,
    cost: fn(&T) -> usize,
    Gather { limit, wait, budget }: Gather,
) -> impl Iterator<Item = T> + 'q {
    let mut taken = cost(&first);
    let mut runs = 1;
    let started = std::time::Instant::now();
    std::iter::once(first).chain(std::iter::from_fn(move || {
        if taken >= limit {
            return None;
        }
        // A sender ahead (a run was already waiting behind the first) has
        // its next run decoded shortly: worth a moment's wait rather than
        // a commit (a flush) more, within the commit's budget. Under a
        // trickle nothing waits.
        if !rx.next_is(is) {
            let left = budget.saturating_sub(started.elapsed());
            if runs < 2 || left.is_zero() || !rx.wait_for_item(left.min(wait)) {
                return None;
            }
            if !rx.next_is(is) {
                return None;
            }
        }
        runs += 1;
        let run = rx.try_recv().and_then(unwrap)?;
        taken = taken.saturating_add(cost(&run));
        Some(run)
    }))
}

/// How long a group commit that already took two runs or more waits for
/// the next one before it commits ([`waiting_runs`]): about what the reader
/// takes to decode a run of batches.
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// How long after its first run a group commit still waits for more
/// ([`GATHER_WAIT`] at a time): what a steady stream of small runs (stream
/// edges at a few thousand points a second, each run one point) can add to
/// its points' latency. A commit that takes runs already queued is not cut
/// by it; only its waits are. About what a commit of [`GROUP_COMMIT_COST`]
/// takes to score, so that a flood's commits end on that bound, not on
/// this one (10 ms cut them to a third and cost the 4 × 4 stream 18 % more
/// CPU; docs/performance.md, round 9).
const GATHER_BUDGET: std::time::Duration = std::time::Duration::from_millis(50);

/// How a group commit gathers runs ([`waiting_runs`]).
#[derive(Debug, Clone, Copy)]
struct Gather {
    /// Most input, as the queue counts it.
    limit: usize,
    /// Longest wait for the next run ([`GATHER_WAIT`]).
    wait: std::time::Duration,
    /// No wait after this long ([`GATHER_BUDGET`]).
    budget: std::time::Duration,
}

/// How `node`'s group commits gather: without a store there is no commit
/// to share, so each run's points go out as soon as it is scored (a
/// commit's points wait in memory until its end).
fn gather(node: &Persisted) -> Gather {
    Gather {
        limit: if node.persists() { GROUP_COMMIT_COST } else { 0 },
        wait: GATHER_WAIT,
        budget: GATHER_BUDGET,
    }
}

/// `Worker::fatal` for when `self` is partly borrowed.
/// Sends `msg` as an ErrorResponse (Kapacitor aborts the task with it) and
/// returns it prefixed with the node's ids; the caller logs it once.
fn self_fatal(out: &queue::Sender<Out>, ids: &str, msg: String) -> SessionError {
    let logged = format!("{ids}: {msg}");
    send(out, response::Message::Error(agent::ErrorResponse { error: msg }));
    SessionError::Fatal(logged)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn is_batches(w: &Work) -> bool {
        matches!(w, Work::Batches(_))
    }

    fn batches(w: Work) -> Option<Vec<Batch>> {
        match w {
            Work::Batches(b) => Some(b),
            _ => None,
        }
    }

    fn one(_: &Vec<Batch>) -> usize {
        1
    }

    /// Every run, waits of `wait` within `budget`.
    fn every(wait: Duration, budget: Duration) -> Gather {
        Gather { limit: usize::MAX, wait, budget }
    }

    /// A commit takes what waits; under a trickle it waits for nothing; a
    /// sender ahead gets a moment; a steady stream of runs arriving faster
    /// than `GATHER_WAIT` cannot keep a commit gathering past its budget.
    #[test]
    fn a_group_commit_gathers_what_waits_within_its_budget() {
        let (tx, rx) = queue::bounded::<Work>(1 << 20);
        // Trickle: the first run alone, at once.
        let t0 = Instant::now();
        let quick = every(GATHER_WAIT, GATHER_BUDGET);
        assert_eq!(waiting_runs(vec![], &rx, is_batches, batches, one, quick).count(), 1);
        assert!(t0.elapsed() < Duration::from_millis(500));
        // Runs already waiting are taken, up to the first other item.
        for _ in 0..3 {
            tx.send(Work::Batches(vec![]), 1).ok();
        }
        tx.send(Work::Snapshot, 1).ok();
        assert_eq!(waiting_runs(vec![], &rx, is_batches, batches, one, quick).count(), 4);
        assert!(matches!(rx.try_recv(), Some(Work::Snapshot)));
        // A run every 5 ms for 10 s, each within a wait of 2 s: the commit
        // ends on its budget of 100 ms, long before the sender stops
        // (without the budget it would take them all); the sender stops
        // once the queue is gone.
        tx.send(Work::Batches(vec![]), 1).ok();
        let sender = std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if tx.send(Work::Batches(vec![]), 1).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let t0 = Instant::now();
        let slow = every(Duration::from_secs(2), Duration::from_millis(100));
        let n = waiting_runs(vec![], &rx, is_batches, batches, one, slow).count();
        assert!(n >= 2, "{n}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        drop(rx);
        sender.join().ok();
    }
}
