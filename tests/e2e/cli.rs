//! The CLI as a Unix tool: a reader that closes its end early is no error.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use crate::support;

/// A pipe whose read end is already closed: every write to it fails with
/// EPIPE, whenever the command writes.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe(2) returned two new descriptors that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

fn exits_quietly(mut cmd: Command, what: &str) {
    let out = cmd.stdout(closed_pipe()).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {:?}\n{stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
}

#[test]
fn a_closed_stdout_is_a_quiet_exit_zero() {
    let plugins = support::plugin_dir();
    let with = |args: &[&str]| {
        let mut c = support::tickwatch();
        c.args(args).arg("--plugin-dir").arg(&plugins);
        c
    };
    exits_quietly(with(&["info", "--detector", "ttest"]), "info");
    exits_quietly(with(&["plugins"]), "plugins");
    exits_quietly(with(&["plugins", "--json"]), "plugins --json");
    exits_quietly(with(&["state", "list"]), "state list");
    exits_quietly(with(&["demo"]), "demo");
}
