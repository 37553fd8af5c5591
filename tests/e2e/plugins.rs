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
    assert!(stderr.contains("detectors found: ") && stderr.contains("ttest"), "{stderr}");
}

#[test]
fn broken_files_are_reported_and_good_plugins_still_load() {
    let dir = support::private_dir();
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
    let info = udf.info().unwrap();
    assert!(["field", "fieldTag", "size", "alpha"].iter().all(|o| info.options.contains_key(*o)));
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("detectors found: ") && stderr.contains("ttest"), "{stderr}");
}

fn faulty(mode: &str) -> tickwatch_engine::kapacitor::UdfClient {
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
    let batches = support::day_batches(&[("", 1)]);
    // The windows before the panic each answered before the next is sent
    // (a window's points wait for its commit; a commit of several windows
    // takes their state from the detector at its end, which a detector
    // that panicked no longer gives: docs/reliability.md).
    for (i, b) in batches[..2].iter().enumerate() {
        udf.send_batch(b).unwrap();
        udf.wait_points(i + 1).unwrap();
    }
    for b in &batches[2..5] {
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

fn ttest_so() -> String {
    format!("libtickwatch_ttest{}", std::env::consts::DLL_SUFFIX)
}

fn dir_with_ttest() -> tempfile::TempDir {
    let dir = support::private_dir();
    std::fs::copy(support::plugin_dir().join(ttest_so()), dir.path().join(ttest_so())).unwrap();
    dir
}

#[test]
fn plugins_writable_by_other_users_are_refused_before_loading() {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir_with_ttest();
    let file = dir.path().join(ttest_so());
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = serve_output("ttest", dir.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is writable by other users; refusing to load it"), "{stderr}");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = serve_output("ttest", dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("directory"));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn two_files_providing_one_detector_are_a_clear_error_naming_both() {
    let dir = dir_with_ttest();
    let copy = dir.path().join(format!("libttest_copy{}", std::env::consts::DLL_SUFFIX));
    std::fs::copy(dir.path().join(ttest_so()), &copy).unwrap();
    let out = serve_output("ttest", dir.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("provided by both") && stderr.contains("libttest_copy"), "{stderr}");
    assert!(stderr.contains(&ttest_so()), "{stderr}");
}

/// `serve` loads only the library providing the detector asked for: a file
/// declaring another detector's name (`export_detector!` writes it into the
/// file) is checked but not loaded, so a broken one costs nothing and is not
/// warned about, while `tickwatch plugins` still loads and reports it.
#[test]
fn serve_loads_only_the_library_of_the_detector_asked_for() {
    let dir = dir_with_ttest();
    let ttest = std::fs::File::open(dir.path().join(ttest_so())).unwrap();
    assert_eq!(
        tickwatch_engine::plugin::section::declared_name(&ttest).as_deref(),
        Some("ttest"),
        "export_detector! declares the name in the file"
    );
    let unresolved = format!("libtickwatch_test_unresolved{}", std::env::consts::DLL_SUFFIX);
    std::fs::copy(support::test_plugin_dir().join(&unresolved), dir.path().join(&unresolved))
        .unwrap();

    let out = serve_output("ttest", dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("unresolved"), "the other library was loaded: {stderr}");

    // Asked for, it is loaded, and refused with the loader's reason.
    let out = serve_output("unresolved", dir.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tickwatch_test_missing_symbol"), "{stderr}");
    let out =
        support::tickwatch().args(["plugins", "--plugin-dir"]).arg(dir.path()).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("tickwatch_test_missing_symbol"), "{listed}");
}

/// A library whose name section names another detector than its
/// descriptor is refused, whichever of the two names is asked for: the
/// section decides which files `serve` loads, so it must not lie.
#[test]
fn a_library_whose_name_section_disagrees_with_its_descriptor_is_refused() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = dir_with_ttest();
    let path = dir.path().join(ttest_so());
    let (offset, len) =
        tickwatch_engine::plugin::section::name_range(&std::fs::File::open(&path).unwrap())
            .expect("the shipped plugin declares its name");
    assert_eq!(len, 5);
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(b"zzzzz").unwrap();
    drop(file);
    for asked in ["ttest", "zzzzz"] {
        let out = serve_output(asked, dir.path());
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(r#"section names detector "zzzzz" but it provides "ttest""#),
            "{asked}: {stderr}"
        );
    }
}

#[test]
fn plugins_command_lists_detectors_options_and_broken_files() {
    let dir = dir_with_ttest();
    std::fs::write(dir.path().join(format!("libjunk{}", std::env::consts::DLL_SUFFIX)), "junk")
        .unwrap();
    let out = support::tickwatch()
        .args(["plugins", "--json", "--plugin-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 2);
    let t = items.iter().find(|i| i["name"] == "ttest").unwrap();
    assert_eq!(t["abi"], 1);
    assert!(t["path"].as_str().unwrap().ends_with(&ttest_so()));
    assert_eq!(t["options"]["size"]["types"], serde_json::json!(["INT"]));
    assert_eq!(t["options"]["alpha"]["default"], serde_json::Value::Null);
    assert!(t["error"].is_null());
    let junk = items.iter().find(|i| i["error"].is_string()).unwrap();
    assert!(junk["path"].as_str().unwrap().contains("libjunk"));
    let human =
        support::tickwatch().args(["plugins", "--plugin-dir"]).arg(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("ttest") && text.contains("alpha") && text.contains("not loaded"),
        "{text}"
    );
}

#[test]
fn info_prints_options_a_conf_section_and_a_script_that_the_udf_accepts() {
    let out = support::tickwatch()
        .args(["info", "--detector", "ttest", "--plugin-dir"])
        .arg(support::plugin_dir())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("[udf.functions.ttest]")
            && text.contains("args = [\"serve\", \"--detector\", \"ttest\"]"),
        "{text}"
    );
    let chain = text.lines().find(|l| l.trim_start().starts_with("@ttest()")).unwrap().trim();
    assert_eq!(chain, "@ttest().field('hotend','bed','air').size(3600).alpha(0.001)");
    // The snippet's options pass Kapacitor's rules and the UDF's Init.
    let mut udf = support::spawn(&[]);
    udf.info().unwrap();
    let r =
        udf.init("t", "n", support::ttest_options(&["hotend", "bed", "air"], 3600, 0.001)).unwrap();
    assert!(r.success, "{}", r.error);
}

#[test]
fn the_example_plugin_builds_out_of_tree_style_and_loads_from_plugin_dir() {
    let st = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "tickwatch-example-mad"])
        .args(if support::target_dir().ends_with("release") { &["--release"][..] } else { &[][..] })
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(st.success());
    let so = format!("libtickwatch_example_mad{}", std::env::consts::DLL_SUFFIX);
    let dir = support::private_dir();
    std::fs::copy(support::target_dir().join(&so), dir.path().join(&so)).unwrap();
    let mut udf = support::spawn_detector("mad", dir.path(), &support::fresh_state_dir(), &[]);
    udf.info().unwrap();
    let r = udf.init("t", "n", support::field_calls(&["hotend"])).unwrap();
    assert!(r.success, "{}", r.error);
    let batches = support::day_batches(&[("", 5)]);
    let v = support::verdicts_with(&support::run_all(udf, &batches[..20]), "z");
    let flagged: Vec<i64> =
        v.iter().filter(|v| v.anomalous).map(|v| support::second(v.time)).collect();
    assert_eq!(flagged, [3900], "the hotend fault window, and only it");
}

#[test]
fn a_plugin_with_an_unresolved_symbol_is_refused_at_load() {
    let out = support::tickwatch()
        .args(["plugins", "--json", "--plugin-dir"])
        .arg(support::test_plugin_dir())
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"].as_str().unwrap().contains("libtickwatch_test_unresolved"))
        .expect("the unresolved plugin is listed");
    // Bound at dlopen (RTLD_NOW): a failure now, naming the symbol, rather
    // than a detector that kills the process at its first window.
    assert!(entry["name"].is_null(), "{entry}");
    let error = entry["error"].as_str().unwrap();
    assert!(error.contains("tickwatch_test_missing_symbol"), "{error}");
}

/// The plugin checks judge a file by where it really is: every directory
/// above it, and above where a link points, must be writable only by root
/// or tickwatch's own user. Each case here once ran an unprivileged user's
/// code inside tickwatch.
#[test]
fn plugin_paths_that_others_could_swap_are_refused_naming_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let chmod = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    let refused = |dir: &std::path::Path, needle: &str| {
        let out = serve_output("ttest", dir);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    };

    // A symlink in a safe plugin dir pointing into a world-writable dir.
    let root = support::private_dir();
    let open = root.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::copy(support::plugin_dir().join(ttest_so()), open.join(ttest_so())).unwrap();
    chmod(&open, 0o777);
    let safe = root.path().join("plugins");
    std::fs::create_dir(&safe).unwrap();
    std::os::unix::fs::symlink(open.join(ttest_so()), safe.join(ttest_so())).unwrap();
    refused(&safe, &format!("directory {} is writable by other users", open.display()));

    // A safe-looking plugin dir whose parent anyone can replace it in.
    let parent = support::private_dir();
    let plugins = parent.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(support::plugin_dir().join(ttest_so()), plugins.join(ttest_so())).unwrap();
    chmod(parent.path(), 0o777);
    refused(&plugins, &format!("directory {} is writable by other users", parent.path().display()));
    chmod(parent.path(), 0o700);

    // Owned by another (unprivileged) user: needs root to arrange.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped the ownership case: it needs root to chown a file");
        return;
    }
    let dir = dir_with_ttest();
    let file = dir.path().join(ttest_so());
    let nobody = 65534;
    let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path and plain ids.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), nobody, nobody) }, 0);
    refused(dir.path(), "is owned by uid 65534");
}

/// A detector that never returns used to leave the task silent for ever:
/// the reader kept answering keepalives, so Kapacitor's timeout never fired.
/// The watchdog ends the task, naming the detector, field and group.
#[test]
fn a_stuck_detector_is_named_and_the_task_ends() {
    let mut udf = support::spawn_detector(
        "faulty",
        &support::test_plugin_dir(),
        &support::fresh_state_dir(),
        &["--batch-timeout", "1s"],
    );
    udf.set_timeout(std::time::Duration::from_secs(60));
    udf.info().unwrap();
    let mut options = support::field_calls(&["hotend"]);
    options.push(support::o::call("mode", vec![support::o::s("slow")]));
    options.push(support::o::call("delayMs", vec![support::o::i(600_000)]));
    let r = udf.init("t", "n", options).unwrap();
    assert!(r.success, "{}", r.error);
    let batches = support::day_batches(&[("a", 3)]);
    udf.send_batch(&batches[0]).unwrap();
    let closed = udf.close().unwrap();
    let error = closed.error.expect("an ErrorResponse");
    assert!(
        error.contains("detector faulty has not returned")
            && error.contains("field hotend")
            && error.contains("printer=a"),
        "{error}"
    );
    assert!(closed.status.is_some_and(|s| !s.success()), "{:?}", closed.status);
}

#[test]
fn a_mistyped_detector_gets_a_suggestion() {
    let out = serve_output("tttest", &support::plugin_dir());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown detector \"tttest\" (did you mean \"ttest\"?)"), "{stderr}");
}

/// A plugin built before ABI 1 could declare which options shape its state
/// still loads, and every one of its options shapes its state; the shipped
/// t-test declares `alpha` scoring-only.
#[test]
fn a_plugin_without_the_state_options_symbol_loads_with_every_option_shaping_state() {
    let options = |dir: &std::path::Path, name: &str| {
        let out = support::tickwatch()
            .args(["plugins", "--json", "--plugin-dir"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let p = v.as_array().unwrap().iter().find(|p| p["name"] == name).cloned();
        p.unwrap_or_else(|| panic!("{name} not loaded: {v}"))["options"].clone()
    };
    let old = options(&support::test_plugin_dir(), "oldabi");
    assert_eq!(old["size"]["shapes_state"], true);
    assert_eq!(old["limit"]["shapes_state"], true, "an old plugin cannot declare it");
    let ttest = options(&support::plugin_dir(), "ttest");
    assert_eq!(ttest["size"]["shapes_state"], true);
    assert_eq!(ttest["rebaseline"]["shapes_state"], true);
    assert_eq!(ttest["alpha"]["shapes_state"], false);
}

/// A plugin built before the optional `tickwatch_detector_save_changes`
/// symbol persists whole states, as it always did: a second process picks
/// its state up (the old plugin counts windows; scored windows keep
/// counting across the restart).
#[test]
fn a_plugin_without_the_save_changes_symbol_persists_whole_states() {
    use tickwatch_engine::kapacitor::options::opt;
    let dir = support::fresh_state_dir();
    let batches = support::day_batches(&[("", 67)]);
    let run = |batches: &[tickwatch_engine::kapacitor::Batch]| {
        let mut udf = support::spawn_detector("oldabi", &support::test_plugin_dir(), &dir, &[]);
        udf.info().unwrap();
        let mut options = support::field_calls(&["hotend"]);
        options.push(opt::call("size", vec![opt::i(10)]));
        let r = udf.init("t", "n", options).unwrap();
        assert!(r.success, "{}", r.error);
        support::run_all(udf, batches).len()
    };
    assert_eq!(run(&batches[..5]), 5);
    assert_eq!(run(&batches[5..8]), 3);
    let out = support::tickwatch()
        .args(["state", "show", "--task", "t", "--node", "n", "--json", "--state-dir"])
        .arg(&dir)
        .arg("--plugin-dir")
        .arg(support::test_plugin_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["summary"]["windows"], 8, "{rows}");
}
