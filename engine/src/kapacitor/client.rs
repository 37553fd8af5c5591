//! `UdfClient`: one Kapacitor-to-UDF connection (a spawned process's pipes or
//! a unix socket), with a reader thread so the UDF never blocks on output.

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tickwatch_proto::agent::{self, request, response};
use tickwatch_proto::{read_response, write_message};

use super::Batch;
use super::options::check_options;

/// What went wrong talking to a UDF.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Writing to the UDF failed.
    #[error("cannot write to the UDF: {0}")]
    Io(#[from] std::io::Error),
    /// The UDF sent an ErrorResponse.
    #[error("the UDF reported an error: {0}")]
    Udf(String),
    /// The UDF's output ended or broke.
    #[error("the UDF's output ended: {0}")]
    Closed(String),
    /// No answer within the timeout.
    #[error("no answer from the UDF within {0:?}")]
    Timeout(Duration),
    /// An answer of the wrong kind.
    #[error("unexpected answer from the UDF: {0}")]
    Unexpected(String),
    /// Kapacitor would refuse these options before starting the task.
    #[error("TICKscript rejected: {0}")]
    Options(String),
}

enum Conn {
    Process { child: Child, stdin: Option<ChildStdin> },
    Socket(UnixStream),
}

/// A connection to one UDF node.
pub struct UdfClient {
    conn: Conn,
    rx: mpsc::Receiver<Result<agent::Response, String>>,
    info: Option<agent::InfoResponse>,
    /// Points received while waiting for something else.
    pending: Vec<agent::Point>,
    timeout: Duration,
}

impl std::fmt::Debug for UdfClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdfClient").field("pending", &self.pending.len()).finish()
    }
}

fn spawn_reader<R: Read + Send + 'static>(r: R) -> mpsc::Receiver<Result<agent::Response, String>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut r = BufReader::with_capacity(256 * 1024, r);
        let mut buf = Vec::new();
        loop {
            match read_response(&mut r, &mut buf) {
                Ok(Some(m)) => {
                    if tx.send(Ok(m)).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    rx
}

impl UdfClient {
    /// Spawns `program args…` as a process UDF (stderr is inherited, as
    /// Kapacitor copies it into its log).
    pub fn spawn(program: &Path, args: &[&str], env: &[(&str, &str)]) -> std::io::Result<Self> {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        let stdin = child.stdin.take();
        Ok(Self::new(Conn::Process { child, stdin }, spawn_reader(stdout)))
    }

    /// Connects to a socket UDF.
    pub fn connect(path: &Path) -> std::io::Result<Self> {
        let stream = UnixStream::connect(path)?;
        let rx = spawn_reader(stream.try_clone()?);
        Ok(Self::new(Conn::Socket(stream), rx))
    }

    fn new(conn: Conn, rx: mpsc::Receiver<Result<agent::Response, String>>) -> Self {
        Self { conn, rx, info: None, pending: Vec::new(), timeout: Duration::from_secs(60) }
    }

    /// How long to wait for any one answer (default 60 s).
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// Uses an Info answer from another connection (Kapacitor asks Info once,
    /// from a separate process, then starts tasks).
    pub fn set_info(&mut self, info: agent::InfoResponse) {
        self.info = Some(info);
    }

    /// Writes raw bytes (for framing tests).
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), HostError> {
        let w: &mut dyn Write = match &mut self.conn {
            Conn::Process { stdin: Some(s), .. } => s,
            Conn::Process { stdin: None, .. } => {
                return Err(HostError::Io(std::io::Error::other("stdin already closed")));
            }
            Conn::Socket(s) => s,
        };
        w.write_all(bytes)?;
        Ok(())
    }

    /// Sends one request.
    pub fn send(&mut self, m: request::Message) -> Result<(), HostError> {
        let mut bytes = Vec::new();
        write_message(&mut bytes, &agent::Request { message: Some(m) })?;
        self.send_bytes(&bytes)
    }

    /// The next response of any kind.
    pub fn recv(&mut self) -> Result<response::Message, HostError> {
        match self.rx.recv_timeout(self.timeout) {
            Ok(Ok(agent::Response { message: Some(m) })) => Ok(m),
            Ok(Ok(agent::Response { message: None })) => {
                Err(HostError::Unexpected("response with no message".into()))
            }
            Ok(Err(e)) => Err(HostError::Closed(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(HostError::Timeout(self.timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(HostError::Closed("end of stream".into()))
            }
        }
    }

    /// The next non-point response; points on the way are kept as pending.
    fn recv_control(&mut self) -> Result<response::Message, HostError> {
        loop {
            match self.recv()? {
                response::Message::Point(p) => self.pending.push(p),
                response::Message::Error(e) => return Err(HostError::Udf(e.error)),
                m => return Ok(m),
            }
        }
    }

    /// Info round trip; remembers the answer for [`UdfClient::init`].
    pub fn info(&mut self) -> Result<agent::InfoResponse, HostError> {
        self.send(request::Message::Info(agent::InfoRequest {}))?;
        match self.recv_control()? {
            response::Message::Info(i) => {
                self.info = Some(i.clone());
                Ok(i)
            }
            other => Err(HostError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Init round trip, after checking the options as Kapacitor would.
    pub fn init(
        &mut self,
        task: &str,
        node: &str,
        options: Vec<agent::Option>,
    ) -> Result<agent::InitResponse, HostError> {
        let Some(info) = &self.info else {
            return Err(HostError::Options("no Info answer to check options against".into()));
        };
        check_options(info, &options).map_err(HostError::Options)?;
        self.init_unchecked(task, node, options)
    }

    /// Init round trip without Kapacitor's checks (to test the UDF's own).
    pub fn init_unchecked(
        &mut self,
        task: &str,
        node: &str,
        options: Vec<agent::Option>,
    ) -> Result<agent::InitResponse, HostError> {
        self.send(request::Message::Init(agent::InitRequest {
            options,
            task_id: task.into(),
            node_id: node.into(),
        }))?;
        match self.recv_control()? {
            response::Message::Init(i) => Ok(i),
            other => Err(HostError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Restore round trip.
    pub fn restore(&mut self, snapshot: Vec<u8>) -> Result<agent::RestoreResponse, HostError> {
        self.send(request::Message::Restore(agent::RestoreRequest { snapshot }))?;
        match self.recv_control()? {
            response::Message::Restore(r) => Ok(r),
            other => Err(HostError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Snapshot round trip. The answer follows every earlier batch's points.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, HostError> {
        self.send(request::Message::Snapshot(agent::SnapshotRequest {}))?;
        match self.recv_control()? {
            response::Message::Snapshot(s) => Ok(s.snapshot),
            other => Err(HostError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends a keepalive and waits for its echo.
    pub fn keepalive(&mut self, time: i64) -> Result<(), HostError> {
        self.send(request::Message::Keepalive(agent::KeepaliveRequest { time }))?;
        match self.recv_control()? {
            response::Message::Keepalive(k) if k.time == time => Ok(()),
            other => Err(HostError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Sends one batch: BeginBatch, each point, EndBatch (no waiting).
    pub fn send_batch(&mut self, batch: &Batch) -> Result<(), HostError> {
        let mut bytes = Vec::new();
        let mut push =
            |m: request::Message| write_message(&mut bytes, &agent::Request { message: Some(m) });
        push(request::Message::Begin(batch.begin.clone()))?;
        for p in &batch.points {
            push(request::Message::Point(p.clone()))?;
        }
        push(request::Message::End(batch.end.clone()))?;
        self.send_bytes(&bytes)
    }

    /// Sends stream points (a stream-edge UDF), framed into one write.
    pub fn send_points(&mut self, points: &[agent::Point]) -> Result<(), HostError> {
        let mut bytes = Vec::new();
        for p in points {
            let m = request::Message::Point(p.clone());
            write_message(&mut bytes, &agent::Request { message: Some(m) })?;
        }
        self.send_bytes(&bytes)
    }

    /// Points received so far and not yet taken.
    pub fn take_points(&mut self) -> Vec<agent::Point> {
        std::mem::take(&mut self.pending)
    }

    /// Waits until at least `n` points are pending (an ErrorResponse or the
    /// end of the stream is an error).
    pub fn wait_points(&mut self, n: usize) -> Result<(), HostError> {
        while self.pending.len() < n {
            match self.recv()? {
                response::Message::Point(p) => self.pending.push(p),
                response::Message::Error(e) => return Err(HostError::Udf(e.error)),
                other => return Err(HostError::Unexpected(format!("{other:?}"))),
            }
        }
        Ok(())
    }

    /// The UDF process's id (process mode).
    pub fn pid(&self) -> Option<u32> {
        match &self.conn {
            Conn::Process { child, .. } => Some(child.id()),
            Conn::Socket(_) => None,
        }
    }

    /// Kills the UDF process at once (SIGKILL) and reaps it.
    pub fn kill(mut self) -> std::io::Result<()> {
        if let Conn::Process { child, .. } = &mut self.conn {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Closes the input (as Kapacitor does on task stop), reads everything
    /// the UDF still writes, and waits for it to exit. Returns all points not
    /// yet taken, any ErrorResponse text, and the exit status (process mode).
    pub fn close(mut self) -> Result<Closed, HostError> {
        match &mut self.conn {
            Conn::Process { stdin, .. } => drop(stdin.take()),
            Conn::Socket(s) => s.shutdown(std::net::Shutdown::Write)?,
        }
        let mut error = None;
        loop {
            match self.recv() {
                Ok(response::Message::Point(p)) => self.pending.push(p),
                Ok(response::Message::Error(e)) => error = Some(e.error),
                Ok(_) => {}
                Err(HostError::Closed(_)) => break,
                Err(e) => return Err(e),
            }
        }
        let status = match &mut self.conn {
            Conn::Process { child, .. } => Some(child.wait()?),
            Conn::Socket(_) => None,
        };
        Ok(Closed { points: std::mem::take(&mut self.pending), error, status })
    }
}

/// What [`UdfClient::close`] collected.
#[derive(Debug)]
pub struct Closed {
    /// Points not taken before.
    pub points: Vec<agent::Point>,
    /// An ErrorResponse's text, if one came.
    pub error: Option<String>,
    /// The process's exit status (None for sockets).
    pub status: Option<ExitStatus>,
}

impl Drop for UdfClient {
    fn drop(&mut self) {
        match &mut self.conn {
            Conn::Process { child, .. } => {
                // A client dropped without close() must not leave a process behind.
                if matches!(child.try_wait(), Ok(None)) {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            // The reader thread holds a clone of the stream: shut it down so
            // the connection really closes (and the UDF sees it end).
            Conn::Socket(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}
