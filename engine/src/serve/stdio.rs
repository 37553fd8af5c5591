//! A process UDF: one node over stdin/stdout. Exits 0 when stdin closes after
//! its work is written; non-zero after an `ErrorResponse`.
#![deny(clippy::print_stdout)]

use anyhow::anyhow;

use super::session::{self, SessionConfig};

/// Serves stdin/stdout until stdin closes.
pub fn serve(config: &SessionConfig) -> anyhow::Result<()> {
    session::run(std::io::stdin(), std::io::stdout(), config).map_err(|e| anyhow!(e))
}
