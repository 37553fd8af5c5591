//! Fuzz target `snapshot`: `tickwatch_engine::fuzzing::snapshot` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickwatch_engine::fuzzing::snapshot(data));
