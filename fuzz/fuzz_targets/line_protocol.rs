//! Fuzz target `line_protocol`: `tickwatch_engine::fuzzing::line_protocol` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickwatch_engine::fuzzing::line_protocol(data));
