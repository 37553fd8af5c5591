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

/// The documented install: `scripts/install.sh --prefix P` gives a tickwatch
/// that finds its plugins with a clean environment, from any directory.
#[test]
fn the_install_script_gives_a_working_tickwatch_on_a_clean_path() {
    support::bin();
    let prefix = support::private_dir();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/install.sh"))
        .args(["--no-build", "--prefix"])
        .arg(prefix.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tickwatch = prefix.path().join("bin/tickwatch");
    let clean = |args: &[&str]| {
        Command::new(&tickwatch)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/")
            .output()
            .unwrap()
    };
    let plugins = clean(&["plugins"]);
    let listed = String::from_utf8_lossy(&plugins.stdout);
    assert!(plugins.status.success(), "{}", String::from_utf8_lossy(&plugins.stderr));
    assert!(listed.contains("lib/tickwatch/plugins/libtickwatch_ttest.so"), "{listed}");
    let demo = clean(&["demo"]);
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    assert!(String::from_utf8_lossy(&demo.stdout).contains("CAUGHT"));
    // With the plugins gone, the error says what to install and where.
    std::fs::remove_dir_all(prefix.path().join("lib")).unwrap();
    let none = clean(&["plugins"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("PREFIX/lib/tickwatch/plugins"));
}

#[test]
fn info_carries_a_plugin_dir_given_by_the_environment() {
    let out = support::tickwatch()
        .args(["info", "--detector", "ttest"])
        .env("TICKWATCH_PLUGIN_DIR", support::plugin_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let dir = support::plugin_dir().canonicalize().unwrap();
    assert!(text.contains(&format!("TICKWATCH_PLUGIN_DIR = \"{}\"", dir.display())), "{text}");
}

#[test]
fn completions_and_a_man_page_are_generated() {
    let out = support::tickwatch().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let bash = String::from_utf8_lossy(&out.stdout);
    assert!(bash.contains("_tickwatch()") && bash.contains("replay"), "{bash}");
    let out = support::tickwatch().arg("man").output().unwrap();
    assert!(out.status.success());
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(man.contains(".TH tickwatch 1") && man.contains("plugin ABI"), "{man}");
}
