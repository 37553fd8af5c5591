//! Plugin discovery: unknown detectors are named with the list found; files
//! that fail to load are reported and never stop good ones.

use std::process::{Command, Stdio};

use crate::support;

fn serve_output(detector: &str, plugin_dir: &std::path::Path) -> std::process::Output {
    Command::new(support::bin())
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
    let mut udf = tickwatch_engine::host::UdfClient::spawn(
        &support::bin(),
        &["serve", "--detector", "ttest", "--plugin-dir", dir.path().to_str().unwrap()],
        &[],
    )
    .unwrap();
    assert_eq!(udf.info().unwrap().options.len(), 4);
    assert!(udf.close().unwrap().status.unwrap().success());
}

#[test]
fn plugin_dir_comes_from_the_environment() {
    let out = Command::new(support::bin())
        .args(["serve", "--detector", "nope"])
        .env("TICKWATCH_PLUGIN_DIR", support::plugin_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("detectors found: ttest"));
}
