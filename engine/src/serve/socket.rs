//! A socket UDF: listens on a unix socket; every connection is an independent
//! node (Info connections too), served on its own threads.
//!
//! The socket is created mode 0660 (owner and group, never world-writable)
//! and removed on SIGTERM or SIGINT. An existing path that is not a socket
//! is refused; a stale socket nobody listens on is replaced.
#![deny(clippy::print_stdout)]

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;

use anyhow::{Context, bail};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

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

/// Listens on `path` until SIGTERM/SIGINT.
pub fn serve(path: &Path, config: &SessionConfig) -> anyhow::Result<()> {
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
    tracing::info!("listening on {}", path.display());
    for (n, conn) in listener.incoming().enumerate() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let config = config.clone();
        let spawned = thread::Builder::new().name(format!("conn-{n}")).spawn(move || {
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
