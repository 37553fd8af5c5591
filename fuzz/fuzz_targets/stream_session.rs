//! Fuzz target `stream_session`: `tickwatch_engine::fuzzing::stream_session` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickwatch_engine::fuzzing::stream_session(data));
