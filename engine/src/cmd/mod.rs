//! Command bodies: `demo`, `replay`, `state`, `plugins`, `info` and
//! `exporter`. Each takes a validated config (built by `crate::cli`, which this module never
//! imports) and writes its output through [`out!`]/[`outln!`].
//!
//! Output goes through a locked stdout and returns its error instead of
//! panicking as `println!` does on a closed pipe: `main` turns a broken pipe
//! (`tickwatch plugins | head -1`) into a quiet exit 0.

#[cfg(feature = "tools")]
pub mod demo;
pub mod exporter;
pub mod plugins;
#[cfg(feature = "tools")]
pub mod replay;
pub mod state;
pub mod table;

/// `print!` that returns write errors (use inside a function returning
/// `anyhow::Result` or `io::Result`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

/// `println!` that returns write errors, as [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

pub(crate) use {out, outln};
