//! `ControlServer`: a serving node's read-only query socket, so `tickwatch
//! state` works while the node holds its database (sled allows one process
//! per database). One JSON request line in, one JSON answer line out.
//!
//! It reads through a [`StoreReader`] (a clone of the node's sled trees) and
//! describes state with detector instances of its own, so it never blocks
//! or touches the node's worker.
#![deny(clippy::print_stdout)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tickwatch_plugin_api::Options;
use tickwatch_state::StoreReader;

use crate::inspect::{self, ControlRequest, ControlResponse};
use crate::plugin::Plugin;

/// The running query socket; closed and removed on drop.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

struct Ctx {
    reader: StoreReader,
    plugin: Arc<Plugin>,
    options: Options,
    task: String,
    node: String,
}

impl ControlServer {
    /// Binds `path` (replacing a stale socket: the caller holds the node's
    /// lock, so no live process can own it) and serves queries.
    pub fn start(
        path: &Path,
        reader: StoreReader,
        plugin: Arc<Plugin>,
        options: Options,
        task: &str,
        node: &str,
    ) -> std::io::Result<ControlServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(path);
        // SAFETY: umask only swaps the process's file-creation mask (0600
        // sockets); a concurrent file creation elsewhere in the process would
        // at worst be created with a stricter mode, never a looser one.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old) };
        let listener = bound?;
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = Ctx { reader, plugin, options, task: task.into(), node: node.into() };
        let stop2 = Arc::clone(&stop);
        std::thread::Builder::new().name("control".into()).spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn
                    && let Err(e) = answer(&ctx, stream)
                {
                    tracing::debug!("control query failed: {e}");
                }
            }
        })?;
        Ok(ControlServer { path: path.to_path_buf(), stop })
    }
}

fn answer(ctx: &Ctx, stream: UnixStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let resp = match serde_json::from_str::<ControlRequest>(&line) {
        Err(e) => ControlResponse {
            error: Some(format!("bad request: {e}")),
            rows: None,
            export: None,
            aside: None,
        },
        Ok(req) => match (req.op.as_str(), ctx.reader.fields()) {
            (_, Err(e)) => ControlResponse {
                error: Some(e.to_string()),
                rows: None,
                export: None,
                aside: None,
            },
            ("show", Ok(fields)) => ControlResponse {
                error: None,
                rows: Some(
                    fields
                        .iter()
                        .map(|f| {
                            let summary = inspect::describe(&ctx.plugin, &ctx.options, f);
                            inspect::row(&ctx.task, &ctx.node, f, summary)
                        })
                        .collect(),
                ),
                export: None,
                aside: None,
            },
            ("export", Ok(fields)) => ControlResponse {
                error: None,
                rows: None,
                export: Some(inspect::export(&ctx.task, &ctx.node, &fields)),
                aside: None,
            },
            ("aside", Ok(_)) => match ctx.reader.aside() {
                Ok(records) => ControlResponse {
                    error: None,
                    rows: None,
                    export: None,
                    aside: Some(inspect::aside_rows(&records)),
                },
                Err(e) => ControlResponse {
                    error: Some(e.to_string()),
                    rows: None,
                    export: None,
                    aside: None,
                },
            },
            (op, Ok(_)) => ControlResponse {
                error: Some(format!("unknown op {op:?}")),
                rows: None,
                export: None,
                aside: None,
            },
        },
    };
    let mut out = serde_json::to_vec(&resp).map_err(std::io::Error::other)?;
    out.push(b'\n');
    (&stream).write_all(&out)
}

/// Asks a node's control socket; `Ok(None)` when nothing listens there.
pub fn query(path: &Path, op: &str) -> Result<Option<ControlResponse>, String> {
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(_) => return Ok(None),
    };
    let io = |e: std::io::Error| format!("control socket {}: {e}", path.display());
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(io)?;
    let mut req =
        serde_json::to_vec(&ControlRequest { op: op.into() }).map_err(|e| e.to_string())?;
    req.push(b'\n');
    (&stream).write_all(&req).map_err(io)?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).map_err(io)?;
    serde_json::from_str(&line).map(Some).map_err(|e| format!("bad control answer: {e}"))
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so the thread sees the flag and ends.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}
