//! tickwatch's engine: everything that runs. Folders are layers:
//!
//! - [`cli`]: flags and env → validated configs (the only module that knows
//!   clap); `cmd`: the command bodies (`demo`, `replay`, `state`,
//!   `plugins`, `info`).
//! - `serve`: what Kapacitor runs: stdio and socket serving, sessions, a
//!   node wired to its store and control socket.
//! - [`node`]: the domain, with no I/O: options → config, batches → points,
//!   which state applies; detectors behind the `DetectorFactory` trait.
//! - [`plugin`]: FFI: loading detector `.so` files, finding them by name.
//! - `control`: the control socket `tickwatch state` (and `tickwatch
//!   exporter`) reads a running node through; `inspect`: what `tickwatch
//!   state` shows and exports.
//! - `metrics`: a node's counters, the Prometheus text page and the
//!   `/metrics` endpoint (`serve --metrics-listen`, `tickwatch exporter`).
//! - [`kapacitor`]: the Kapacitor side of the protocol (client, windower,
//!   batches and group ids), used by `replay`, `demo` and the tests.
//!
//! Dependencies point down that list (`cli` → `cmd`/`serve` → `control`/
//! `plugin` → `node` → `kapacitor`), never up.
//!
//! Public: what the binary (`cli`), the end-to-end tests and the benchmarks
//! use (`kapacitor`, `node`, `plugin`, `scenario`); the rest is internal.

pub mod cli;
mod cmd;
mod control;
mod inspect;
pub mod kapacitor;
mod metrics;
pub mod node;
pub mod plugin;
mod serve;

#[cfg(feature = "tools")]
#[doc(hidden)]
pub mod fuzzing;

#[cfg(feature = "tools")]
pub use cmd::demo::scenario;
