//! Logs go to stderr, one line per event, level first (Kapacitor copies a
//! UDF's stderr into its log). stdout is left to the protocol.

use tracing_subscriber::EnvFilter;

/// Crates whose log lines are tickwatch's own: a bare level applies to them.
const OURS: [&str; 2] = ["tickwatch", "tickwatch_engine"];

/// The filter for `--log`: a bare level (`debug`) is tickwatch's level, and
/// every dependency is capped at warn (sled alone logs every page it writes
/// at debug: 207 of 211 lines of a `--log debug` run). A filter with
/// directives (`debug,sled=debug`, `tickwatch_engine::serve=trace`) is taken
/// as written, except that sled stays at warn unless the filter names it.
fn directives(filter: &str) -> String {
    let f = filter.trim();
    if let Ok(level) = f.parse::<tracing_subscriber::filter::LevelFilter>() {
        let deps = level.min(tracing_subscriber::filter::LevelFilter::WARN);
        let mut out = deps.to_string();
        for target in OURS {
            out.push_str(&format!(",{target}={level}"));
        }
        return out;
    }
    if f.contains("sled") { f.to_string() } else { format!("{f},sled=warn") }
}

/// Installs the stderr logger with `filter` (a level or a tracing filter).
pub fn init(filter: &str) {
    // `TICKWATCH_LOG = ""` in kapacitor.conf means "not set".
    let filter = if filter.trim().is_empty() { "info" } else { filter };
    let filter = directives(filter);
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
    fn a_bare_level_is_ours_and_dependencies_stay_at_warn() {
        assert_eq!(directives("debug"), "warn,tickwatch=debug,tickwatch_engine=debug");
        assert_eq!(directives(" TRACE "), "warn,tickwatch=trace,tickwatch_engine=trace");
        // Quieter than warn applies to everyone.
        assert_eq!(directives("error"), "error,tickwatch=error,tickwatch_engine=error");
        assert_eq!(directives("off"), "off,tickwatch=off,tickwatch_engine=off");
    }

    #[test]
    fn directives_are_kept_and_sled_is_quiet_unless_named() {
        assert_eq!(directives("debug,sled=trace"), "debug,sled=trace");
        assert_eq!(
            directives("info,tickwatch_engine::serve=debug"),
            "info,tickwatch_engine::serve=debug,sled=warn"
        );
        for f in ["debug", "info", "debug,sled=debug", "tickwatch_engine=trace"] {
            assert!(EnvFilter::try_new(directives(f)).is_ok(), "{f}");
        }
    }
}
