//! Shared code of the detector-quality benchmarks: the NAB scorer and
//! corpus reader ([`nab`]) behind the `nab` binary. The printer-day
//! benchmark (`main.rs`) needs nothing from here.

pub mod nab;
