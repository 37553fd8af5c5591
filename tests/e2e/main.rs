//! End-to-end tests: the real `tickwatch` binary and the real ttest plugin
#![allow(clippy::unwrap_used)]
//! `.so`, driven over real pipes and sockets by a Kapacitor stand-in.

// Plays Kapacitor: locates/builds the binary, spawns nodes, makes printer days.
mod support;

// Info, Init option rules, framing and protocol errors, keepalives.
mod protocol;
// The guide's printer day: faults found, fields/groups independent, snapshot/restore.
mod printer;
// Unusable values are skipped and counted, never fed to a detector.
mod values;
// Socket mode: concurrent nodes, refusals, permissions, signals.
pub mod socket;
// Persistence: restarts, SIGKILL, restore merging, locking, hostile ids, corruption.
mod persistence;
// `tickwatch state`: inspection of stopped and live nodes, export/import, reset.
mod state_cmd;
// `demo` and `replay`: line protocol end to end, reports, JSON, plots, errors.
mod replay;
// Plugin discovery: unknown detectors, broken files beside good ones.
mod plugins;
// The CLI as a Unix tool: a closed stdout is a quiet exit 0.
mod cli;
// Fuzz targets' regressions and a seeded mutation run of each.
mod fuzz;
// Bounded queues (flat RSS, keepalives while full) and adaptive group commit under SIGKILL.
mod backpressure;
// Prometheus metrics over HTTP (socket mode, the exporter) and the per-batch debug log.
mod metrics;
// Stream edges: windows formed by tickwatch equal batch mode's, pass-through, eviction, restarts.
mod stream;
