//! Logs go to stderr, one line per event, level first (Kapacitor copies a
//! UDF's stderr into its log). stdout is left to the protocol.

use tracing_subscriber::EnvFilter;

/// sled logs every page it writes at debug level (207 of 211 lines of a
/// `--log debug` run): keep it at warn unless the filter names it.
fn with_quiet_sled(filter: &str) -> String {
    if filter.contains("sled") { filter.to_string() } else { format!("{filter},sled=warn") }
}

/// Installs the stderr logger with `filter` (a level or a tracing filter).
pub fn init(filter: &str) {
    // `TICKWATCH_LOG = ""` in kapacitor.conf means "not set".
    let filter = if filter.trim().is_empty() { "info" } else { filter };
    let filter = with_quiet_sled(filter);
    let filter = filter.as_str();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sled_is_quiet_unless_named() {
        assert_eq!(with_quiet_sled("debug"), "debug,sled=warn");
        assert_eq!(with_quiet_sled("debug,sled=trace"), "debug,sled=trace");
        assert!(EnvFilter::try_new(with_quiet_sled("info")).is_ok());
    }
}
