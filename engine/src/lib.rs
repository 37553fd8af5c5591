//! tickwatch's engine: everything that runs.
//!
//! - [`session`]: one Kapacitor connection (reader, worker, writer threads).
//! - [`node`]: a node's per-(group, field) detectors, batches in, points out.
//! - [`options`]: Init options → validated node config.
//! - [`plugin`]: loading detector plugins and finding them by name.
//! - [`serve`]: stdin/stdout and unix-socket serving.
//! - [`host`]: the Kapacitor side of the protocol (spawn a UDF, window data),
//!   used by `demo` and by the end-to-end tests.
//! - [`scenario`]: the guide's 3D-printer day, generated.
//! - [`control`], [`inspect`]: `tickwatch state`, also while a node runs.
//! - [`cli`], [`logging`], [`demo`]: the binary's parts.

pub mod cli;
pub mod control;
pub mod demo;
pub mod host;
pub mod inspect;
pub mod logging;
pub mod node;
pub mod options;
pub mod plugin;
pub mod plugins_cli;
pub mod replay;
pub mod scenario;
pub mod serve;
pub mod session;
pub mod state_cli;
