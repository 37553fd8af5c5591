//! Fuzz target `point_view`: `tickwatch_engine::fuzzing::point_view` on
//! arbitrary bytes (the borrowed fast path for points against prost).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tickwatch_engine::fuzzing::point_view(data));
