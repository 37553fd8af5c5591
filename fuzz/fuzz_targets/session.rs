//! Fuzz target `session`: `tickwatch_engine::fuzzing::session` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickwatch_engine::fuzzing::session(data));
