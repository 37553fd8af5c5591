//! The control socket: a serving node's read-only query socket, so `tickwatch
//! state` can read a node while its process holds the database (sled allows
//! one process per database). One JSON request line in, one JSON answer line
//! out, both carrying [`protocol::VERSION`].
//!
//! - [`protocol`]: the request and response types.
//! - [`server`]: the node side (a thread per node, started by `serve`).
//! - [`client`]: the `tickwatch state` side.

pub mod client;
pub mod protocol;
pub mod server;

pub use client::query;
pub use protocol::{Request, Response};
pub use server::ControlServer;
