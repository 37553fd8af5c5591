//! Fuzz target `frames`: `tickwatch_engine::fuzzing::frames` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickwatch_engine::fuzzing::frames(data));
