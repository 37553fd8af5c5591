//! Asking a running node's control socket (`tickwatch state`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Request, RequestLine, Response, ResponseLine, VERSION};

/// Why a control query failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Reading or writing the socket failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The node closed the connection without answering (it is stopping).
    #[error("the node stopped before it answered (control socket {0})")]
    Stopped(PathBuf),
    /// The answer does not parse.
    #[error("bad control answer: {0}")]
    Decode(#[from] serde_json::Error),
    /// The node speaks another protocol version.
    #[error("the node speaks control protocol version {found}, this tickwatch {VERSION}")]
    Version {
        /// The node's version.
        found: u32,
    },
}

/// Asks the node at `path`; `Ok(None)` when nothing listens there.
pub fn query(path: &Path, request: Request) -> Result<Option<Response>, ControlError> {
    query_within(path, request, Duration::from_secs(30))
}

/// [`query`], waiting at most `timeout` for each read and write.
pub fn query_within(
    path: &Path,
    request: Request,
    timeout: Duration,
) -> Result<Option<Response>, ControlError> {
    let Ok(stream) = UnixStream::connect(path) else {
        return Ok(None);
    };
    let io = |source| ControlError::Io { path: path.to_path_buf(), source };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(&RequestLine { version: VERSION, request })?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(io)?;
    if answer.is_empty() {
        return Err(ControlError::Stopped(path.to_path_buf()));
    }
    let resp: ResponseLine = serde_json::from_str(&answer)?;
    if resp.version != VERSION {
        return Err(ControlError::Version { found: resp.version });
    }
    Ok(Some(resp.response))
}
