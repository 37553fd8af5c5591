//! Every detector crate exports the same plugin entry symbol,
//! `tickwatch_detector_entry` (`export_detector!`), which is what makes its
//! `cdylib` a plugin. This benchmark links several of them as rlibs into one
//! binary and calls them through the `Detector` trait only, never through
//! the entry symbol, so the linker may keep any one of the copies.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("macos") {
        println!("cargo::rustc-link-arg-bins=-Wl,--allow-multiple-definition");
    }
}
