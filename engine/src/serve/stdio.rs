//! A process UDF: one node over stdin/stdout. Exits 0 when stdin closes after
//! its work is written; non-zero after an `ErrorResponse`.
#![deny(clippy::print_stdout)]

use anyhow::anyhow;

use super::session::{self, SessionConfig};

/// Serves stdin/stdout until stdin closes.
pub fn serve(config: &SessionConfig) -> anyhow::Result<()> {
    widen_stdin_pipe();
    session::run(std::io::stdin(), std::io::stdout(), config).map_err(|e| anyhow!(e))
}

/// Bytes a pipe on stdin is asked to hold (Linux's default is 64 KiB; an
/// unprivileged process may ask for up to `/proc/sys/fs/pipe-max-size`,
/// 1 MiB by default).
const STDIN_PIPE: libc::c_int = 1 << 20;

/// When stdin is a pipe, asks the kernel to let it hold [`STDIN_PIPE`]
/// bytes: Kapacitor writes, and the reader reads, up to that much per
/// system call and wake-up instead of 64 KiB. A refusal (not a pipe, a
/// lower limit, not Linux) changes nothing.
fn widen_stdin_pipe() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: fcntl on fd 0 with F_SETPIPE_SZ takes an int argument and
        // touches no memory of ours; on any other kind of file it fails.
        let _ = unsafe { libc::fcntl(0, libc::F_SETPIPE_SZ, STDIN_PIPE) };
    }
}
