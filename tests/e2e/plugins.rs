//! Plugin discovery: unknown detectors are named with the list found; files
//! that fail to load are reported and never stop good ones.

use std::process::Stdio;

use crate::support;

fn serve_output(detector: &str, plugin_dir: &std::path::Path) -> std::process::Output {
    support::tickwatch()
        .args(["serve", "--detector", detector, "--plugin-dir"])
        .arg(plugin_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn unknown_detector_exits_non_zero_listing_those_found() {
    let out = serve_output("nope", &support::plugin_dir());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown detector \"nope\""), "{stderr}");
    assert!(stderr.contains("detectors found: ttest"), "{stderr}");
}

#[test]
fn broken_files_are_reported_and_good_plugins_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let so = format!("libtickwatch_ttest{}", std::env::consts::DLL_SUFFIX);
    std::fs::copy(support::plugin_dir().join(&so), dir.path().join(&so)).unwrap();
    std::fs::write(dir.path().join(format!("libjunk{}", std::env::consts::DLL_SUFFIX)), "junk")
        .unwrap();
    // A real shared library that is not a tickwatch plugin.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    if let Some(libm) = libm {
        std::fs::copy(
            libm,
            dir.path().join(format!("libnotplugin{}", std::env::consts::DLL_SUFFIX)),
        )
        .unwrap();
    }

    let out = serve_output("missing", dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("detectors found: ttest"), "{stderr}");
    assert!(stderr.contains("libjunk"), "{stderr}");
    if libm.is_some() {
        assert!(stderr.contains("not a tickwatch plugin"), "{stderr}");
    }

    // The good plugin serves normally from the same directory.
    let mut udf = support::spawn_detector("ttest", dir.path(), &support::fresh_state_dir(), &[]);
    assert_eq!(udf.info().unwrap().options.len(), 4);
    assert!(udf.close().unwrap().status.unwrap().success());
}

#[test]
fn plugin_dir_comes_from_the_environment() {
    let out = support::tickwatch()
        .args(["serve", "--detector", "nope"])
        .env("TICKWATCH_PLUGIN_DIR", support::plugin_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("detectors found: ttest"));
}

fn faulty(mode: &str) -> tickwatch_engine::host::UdfClient {
    let mut udf = support::spawn_detector(
        "faulty",
        &support::test_plugin_dir(),
        &support::fresh_state_dir(),
        &[],
    );
    udf.info().unwrap();
    let mut opts = support::field_calls(&["hotend"]);
    opts.push(support::o::call("mode", vec![support::o::s(mode)]));
    let r = udf.init("t", "n", opts).unwrap();
    assert!(r.success, "{}", r.error);
    udf
}

#[test]
fn a_panicking_detector_ends_the_node_with_an_error_not_an_abort() {
    let mut udf = faulty("panic");
    for b in &support::day_batches(&[("", 1)])[..5] {
        if udf.send_batch(b).is_err() {
            break;
        }
    }
    let closed = udf.close().unwrap();
    let err = closed.error.expect("ErrorResponse");
    assert!(err.contains("detector faulty panicked: faulty detector panics on window 3"), "{err}");
    assert_eq!(closed.points.len(), 2, "windows before the panic were emitted");
    // Exit code 1, not a signal: the panic never unwound into the host.
    assert_eq!(closed.status.unwrap().code(), Some(1));
}

#[test]
fn a_panic_on_one_socket_connection_leaves_the_others_running() {
    let server = crate::socket::Server::start_with("faulty", &support::test_plugin_dir());
    let start = |mode: &str| {
        let mut c = server.connect();
        c.info().unwrap();
        let mut opts = support::field_calls(&["hotend"]);
        opts.push(support::o::call("mode", vec![support::o::s(mode)]));
        assert!(c.init("t", mode, opts).unwrap().success);
        c
    };
    let mut bad = start("panic");
    let good = start("ok");
    let batches = support::day_batches(&[("", 2)]);
    for b in &batches[..4] {
        let _ = bad.send_batch(b);
    }
    assert!(bad.close().unwrap().error.unwrap().contains("panicked"));
    let points = support::run_all(good, &batches[..20]);
    assert_eq!(points.len(), 20);
}

#[test]
fn a_nan_pvalue_is_never_emitted() {
    let udf = faulty("nan");
    let points = support::run_all(udf, &support::day_batches(&[("", 3)])[..5]);
    assert!(points.is_empty(), "{points:?}");
}

#[test]
fn a_plugin_for_another_abi_is_refused_by_name() {
    let out = serve_output("nope", &support::test_plugin_dir());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("libtickwatch_test_badabi"), "{stderr}");
    assert!(stderr.contains("speaks plugin ABI 999, this tickwatch speaks 1"), "{stderr}");
    assert!(stderr.contains("detectors found: faulty"), "{stderr}");
}
