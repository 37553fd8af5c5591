//! Logs go to stderr, one line per event, level first (Kapacitor copies a
//! UDF's stderr into its log). stdout is left to the protocol.

use tracing_subscriber::EnvFilter;

/// Installs the stderr logger with `filter` (a level or a tracing filter).
pub fn init(filter: &str) {
    // `TICKWATCH_LOG = ""` in kapacitor.conf means "not set".
    let filter = if filter.trim().is_empty() { "info" } else { filter };
    let (filter, bad) = match EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (
            EnvFilter::new("info"),
            Some(format!("invalid log filter {filter:?} ({e}); using info")),
        ),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
    if let Some(msg) = bad {
        tracing::warn!("{msg}");
    }
}
