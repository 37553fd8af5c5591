//! A socket UDF: listens on a unix socket; every connection is an independent
//! node (Info connections too), served on its own threads.
//!
//! The socket is created mode 0660 (owner and group, never world-writable)
//! and removed on SIGTERM or SIGINT. An existing path that is not a socket
//! is refused; a stale socket nobody listens on is replaced.
#![deny(clippy::print_stdout)]

use std::io::Write as _;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{Context, bail};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use tickwatch_proto::agent::{self, response};
use tickwatch_proto::write_message;

use super::session::{self, SessionConfig};

fn prepare_path(path: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).context("cannot inspect the socket path"),
    };
    if !meta.file_type().is_socket() {
        bail!("{} exists and is not a socket; refusing to replace it", path.display());
    }
    if UnixStream::connect(path).is_ok() {
        bail!("another process is already listening on {}", path.display());
    }
    std::fs::remove_file(path).context("cannot remove the stale socket")?;
    tracing::info!("removed stale socket {}", path.display());
    Ok(())
}

fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    // SAFETY: umask only swaps the process's file-creation mask; no memory is
    // involved. We are still single-threaded here (no session or signal
    // thread started yet), so no other file creation races with the change.
    let old = unsafe { libc::umask(0o117) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    bound.context("cannot bind the socket")
}

/// Socket-mode limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more are answered with an ErrorResponse
    /// and closed.
    pub max_connections: usize,
    /// How long a connection may stay silent before its Init.
    pub init_timeout: Duration,
}

/// File descriptors one connection may hold: its socket and a clone, the
/// node's sled files and lock, its control socket and a query on it.
const FDS_PER_CONNECTION: u64 = 16;
/// Descriptors kept for the process itself (listener, stdio, plugins, logs).
const FDS_RESERVED: u64 = 64;

/// The default connection cap: what the soft fd limit allows.
pub fn default_max_connections() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass; nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    let soft = if ok { lim.rlim_cur } else { 1024 };
    usize::try_from(soft.saturating_sub(FDS_RESERVED) / FDS_PER_CONNECTION)
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Counts a connection for as long as it lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accept failures (typically the fd limit) come in bursts: log the first,
/// count the rest, back off so the loop does not spin, and say when it ends.
#[derive(Default)]
struct Backoff {
    failures: u64,
    delay: Duration,
}

impl Backoff {
    fn failed(&mut self, e: &std::io::Error) {
        if self.failures == 0 {
            tracing::warn!("accept failed: {e}; backing off until it succeeds again");
            self.delay = Duration::from_millis(10);
        }
        self.failures += 1;
        thread::sleep(self.delay);
        self.delay = (self.delay * 2).min(Duration::from_secs(1));
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!("accept works again after {} failure(s)", self.failures);
            self.failures = 0;
        }
    }
}

/// Answers a connection over the cap and closes it.
fn refuse(stream: UnixStream, max: usize) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let resp = agent::Response {
        message: Some(response::Message::Error(agent::ErrorResponse {
            error: format!(
                "tickwatch serves at most {max} connections at once (--max-connections)"
            ),
        })),
    };
    let mut w = &stream;
    let _ = write_message(&mut w, &resp).and_then(|()| w.flush());
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Listens on `path` until SIGTERM/SIGINT.
pub fn serve(path: &Path, config: &SessionConfig, limits: Limits) -> anyhow::Result<()> {
    prepare_path(path)?;
    let listener = bind(path)?;
    let owned: PathBuf = path.to_path_buf();
    let mut signals = Signals::new([SIGTERM, SIGINT]).context("cannot install signal handlers")?;
    thread::Builder::new().name("signals".into()).spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let _ = std::fs::remove_file(&owned);
            tracing::info!("signal {sig}: removed {}, exiting", owned.display());
            std::process::exit(0);
        }
    })?;
    tracing::info!(
        "listening on {} (at most {} connections)",
        path.display(),
        limits.max_connections
    );
    let live = Arc::new(AtomicUsize::new(0));
    let mut backoff = Backoff::default();
    let mut refusing = false;
    for (n, conn) in listener.incoming().enumerate() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                backoff.failed(&e);
                continue;
            }
        };
        backoff.succeeded();
        if live.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            live.fetch_sub(1, Ordering::SeqCst);
            if !refusing {
                tracing::warn!(
                    "refusing connections: {} already served (--max-connections)",
                    limits.max_connections
                );
                refusing = true;
            }
            refuse(stream, limits.max_connections);
            continue;
        }
        refusing = false;
        let slot = Slot(Arc::clone(&live));
        if let Err(e) = stream.set_read_timeout(Some(limits.init_timeout)) {
            tracing::warn!("connection {n}: cannot set its Init timeout: {e}");
        }
        let config = config.clone();
        let spawned = thread::Builder::new().name(format!("conn-{n}")).spawn(move || {
            let _slot = slot;
            let reader = match stream.try_clone() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("connection {n}: cannot clone socket: {e}");
                    return;
                }
            };
            if let Err(e) = session::run(reader, &stream, &config) {
                tracing::error!("connection {n}: {e}");
            }
            // Unblocks the session's reader thread if the session ended first.
            let _ = stream.shutdown(std::net::Shutdown::Both);
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start a thread for connection {n}: {e}");
        }
    }
    Ok(())
}
