//! Scoring detectors on the Numenta Anomaly Benchmark's labelled series, as
//! NAB does, without NAB's Python: [`corpus`] reads the files and labels,
//! [`scorer`] applies NAB's published scoring rules.

pub mod corpus;
pub mod scorer;
