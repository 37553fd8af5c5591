//! Option declarations and validated option values.
//!
//! A detector declares its options as [`OptionSpec`]s; the host checks names,
//! arity and types (as Kapacitor does), fills defaults, and hands the detector
//! an [`Options`] to build itself from. Range checks are the detector's.
//!
//! Also here, so there is one copy of each: the option names tickwatch
//! reserves for itself ([`RESERVED_OPTION_NAMES`]), and [`preset`]s for the
//! options most detectors share (`size`, `alpha`, `rebaseline`), each with
//! one help text and a validating getter on [`Options`].

use std::fmt;

/// tickwatch's own option naming the fields a node tracks
/// (`.field('hotend','bed','air')`); no detector may declare it.
pub const FIELD_OPTION: &str = "field";

/// tickwatch's own option naming the tag that carries the field name on
/// emitted points (`.fieldTag('field')`); no detector may declare it.
pub const FIELD_TAG_OPTION: &str = "fieldTag";

/// tickwatch's own option for stream edges: the window period, as
/// `|window().period(5m)` (`.period(5m)`); no detector may declare it.
pub const PERIOD_OPTION: &str = "period";

/// tickwatch's own option for stream edges: how often a window is emitted,
/// as `|window().every(5m)` (`.every(5m)`); no detector may declare it.
pub const EVERY_OPTION: &str = "every";

/// tickwatch's own option for stream edges (no argument): window ends on
/// multiples of `every`, as `|window().align()`; no detector may declare it.
pub const ALIGN_OPTION: &str = "align";

/// tickwatch's own option (no argument) asking for the input points back
/// with the verdict added (`.passThrough()`), instead of one verdict point
/// per (window, field); no detector may declare it.
pub const PASS_THROUGH_OPTION: &str = "passThrough";

/// Every option name tickwatch declares itself, in the order it declares
/// them. The host refuses a plugin that declares one of these, and the
/// conformance suite fails it.
pub const RESERVED_OPTION_NAMES: [&str; 6] = [
    FIELD_OPTION,
    FIELD_TAG_OPTION,
    PERIOD_OPTION,
    EVERY_OPTION,
    ALIGN_OPTION,
    PASS_THROUGH_OPTION,
];

/// The type of one option argument, as a TICKscript writes it.
///
/// Values match Kapacitor's `ValueType` enum, so they travel unchanged.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// `TRUE` / `FALSE`.
    Bool = 0,
    /// `3600`.
    Int = 1,
    /// `0.001`.
    Double = 2,
    /// `'hotend'`.
    String = 3,
    /// `5m`, in nanoseconds.
    Duration = 4,
}

impl ValueKind {
    /// The kind for a Kapacitor `ValueType` number.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Bool,
            1 => Self::Int,
            2 => Self::Double,
            3 => Self::String,
            4 => Self::Duration,
            _ => return None,
        })
    }

    /// Lowercase name, as messages print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Int => "int",
            Self::Double => "double",
            Self::String => "string",
            Self::Duration => "duration",
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One option argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Double(f64),
    /// A string.
    String(String),
    /// A duration in nanoseconds.
    Duration(i64),
}

impl Value {
    /// This value's kind.
    pub fn kind(&self) -> ValueKind {
        match self {
            Self::Bool(_) => ValueKind::Bool,
            Self::Int(_) => ValueKind::Int,
            Self::Double(_) => ValueKind::Double,
            Self::String(_) => ValueKind::String,
            Self::Duration(_) => ValueKind::Duration,
        }
    }
}

impl fmt::Display for Value {
    /// TICKscript literal syntax (durations in nanoseconds, with a `ns` suffix).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Self::Int(i) => write!(f, "{i}"),
            Self::Double(d) => write!(f, "{d:?}"),
            Self::String(s) => write!(f, "'{s}'"),
            Self::Duration(ns) => write!(f, "{ns}ns"),
        }
    }
}

/// A detector option: one argument of one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionSpec {
    /// Name as written in the TICKscript (`.alpha(0.001)` → `alpha`).
    pub name: String,
    /// The argument's kind.
    pub kind: ValueKind,
    /// Used when the script does not set the option; `None` makes it required.
    pub default: Option<Value>,
    /// One line shown to users: meaning and valid range.
    pub help: String,
    /// Whether the option shapes the detector's saved state (true unless
    /// declared [`OptionSpec::scoring_only`]). Only these options belong in
    /// the fingerprint stored beside the state: state saved under another
    /// value of a scoring-only option is still applied.
    pub shapes_state: bool,
}

impl OptionSpec {
    /// A required option (shaping the state until declared
    /// [`OptionSpec::scoring_only`]).
    pub fn required(name: &str, kind: ValueKind, help: &str) -> Self {
        Self { name: name.into(), kind, default: None, help: help.into(), shapes_state: true }
    }

    /// An option with a default (shaping the state until declared
    /// [`OptionSpec::scoring_only`]).
    pub fn with_default(name: &str, default: Value, help: &str) -> Self {
        Self {
            name: name.into(),
            kind: default.kind(),
            default: Some(default),
            help: help.into(),
            shapes_state: true,
        }
    }

    /// Declares that the option only changes how a window is judged (a
    /// threshold such as `alpha`), not what `save` writes nor how `load`
    /// reads it: state saved under any other value of it is valid under
    /// this one. The host then leaves it out of the options fingerprint,
    /// so changing it keeps every field's history. Declare it only when
    /// that holds; an option that sizes or parameterises the saved state
    /// (`size`, `rebaseline`, a smoothing weight) shapes the state.
    pub fn scoring_only(mut self) -> Self {
        self.shapes_state = false;
        self
    }
}

/// Validated options: every declared option that was set or has a default,
/// each with a value of its declared kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    values: Vec<(String, Value)>,
}

impl Options {
    /// Builds from name/value pairs (the host does this after validation).
    pub fn new(values: Vec<(String, Value)>) -> Self {
        Self { values }
    }

    /// All pairs, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// `name` as an INT, or an error naming it.
    pub fn int(&self, name: &str) -> Result<i64, String> {
        match self.get(name) {
            Some(Value::Int(i)) => Ok(*i),
            other => Err(wrong(name, ValueKind::Int, other)),
        }
    }

    /// `name` as a DOUBLE (an INT is accepted and widened), or an error naming it.
    pub fn double(&self, name: &str) -> Result<f64, String> {
        match self.get(name) {
            Some(Value::Double(d)) => Ok(*d),
            Some(Value::Int(i)) => Ok(*i as f64),
            other => Err(wrong(name, ValueKind::Double, other)),
        }
    }

    /// `name` as a BOOL, or an error naming it.
    pub fn bool(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            Some(Value::Bool(b)) => Ok(*b),
            other => Err(wrong(name, ValueKind::Bool, other)),
        }
    }

    /// `name` as a STRING, or an error naming it.
    pub fn string(&self, name: &str) -> Result<&str, String> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(s),
            other => Err(wrong(name, ValueKind::String, other)),
        }
    }

    /// `name` as a DURATION in nanoseconds, or an error naming it.
    pub fn duration(&self, name: &str) -> Result<i64, String> {
        match self.get(name) {
            Some(Value::Duration(d)) => Ok(*d),
            other => Err(wrong(name, ValueKind::Duration, other)),
        }
    }
}

/// The largest history length [`Options::length`] accepts: a million
/// values is 8 MB per field (16 MB while a rebaseline run is kept), and
/// about eleven days of 1 s data. Larger sizes let one field's state grow
/// without a useful bound (issue 10, item 5), so they are refused at Init.
pub const MAX_LENGTH: i64 = 1_000_000;

/// The largest count [`Options::count`] accepts (`rebaseline`, window and
/// value counts): beyond a million windows a count no longer says anything
/// a smaller one does not, and it keeps every counter far from overflow.
pub const MAX_COUNT: i64 = 1_000_000;

/// Validating getters for the ranges detectors commonly need; messages name
/// the option, the range and the value (`option size must be > 1, got 1`).
impl Options {
    /// `name` as an INT greater than 1 and at most [`MAX_LENGTH`], as a
    /// length (`size`).
    pub fn length(&self, name: &str) -> Result<usize, String> {
        let v = self.int(name)?;
        if v <= 1 {
            return Err(format!("option {name} must be > 1, got {v}"));
        }
        if v > MAX_LENGTH {
            return Err(format!(
                "option {name} must be <= {MAX_LENGTH} (each value held costs 8 bytes of memory \
                 and state per field), got {v}"
            ));
        }
        usize::try_from(v).map_err(|_| format!("option {name} {v} is too large"))
    }

    /// `name` as an INT in `lo..=hi`; the message names the range.
    pub fn int_in(&self, name: &str, lo: i64, hi: i64) -> Result<i64, String> {
        let v = self.int(name)?;
        if !(lo..=hi).contains(&v) {
            return Err(format!("option {name} must be in [{lo}, {hi}], got {v}"));
        }
        Ok(v)
    }

    /// `name` as a DOUBLE strictly between 0 and 1 (`alpha`).
    pub fn probability(&self, name: &str) -> Result<f64, String> {
        let v = self.double(name)?;
        if !(v > 0.0 && v < 1.0) {
            return Err(format!("option {name} must be in (0, 1), got {v}"));
        }
        Ok(v)
    }

    /// `name` as an INT of at least 0 and at most [`MAX_COUNT`]
    /// (`rebaseline`).
    pub fn count(&self, name: &str) -> Result<u64, String> {
        let v = self.int(name)?;
        if v > MAX_COUNT {
            return Err(format!("option {name} must be <= {MAX_COUNT}, got {v}"));
        }
        u64::try_from(v).map_err(|_| format!("option {name} must be >= 0, got {v}"))
    }
}

/// The options most detectors share, one help text each, so that the same
/// option reads the same in every detector. Read them back with the
/// matching validating getter: [`Options::length`] for `size`,
/// [`Options::probability`] for `alpha`, [`Options::count`] for
/// `rebaseline`.
pub mod preset {
    use super::{OptionSpec, Value, ValueKind};

    /// `size`: the history length in values, INT in 2..=[`super::MAX_LENGTH`]; required when
    /// `default` is `None` (the guide's t-test requires it).
    pub fn size(default: Option<i64>) -> OptionSpec {
        const HELP: &str =
            "history length in values (a moving window of the last `size` values); 2 to 1000000";
        match default {
            Some(d) => OptionSpec::with_default("size", Value::Int(d), HELP),
            None => OptionSpec::required("size", ValueKind::Int, HELP),
        }
    }

    /// `alpha`: the significance level, DOUBLE in (0, 1); required when
    /// `default` is `None`.
    pub fn alpha(default: Option<f64>) -> OptionSpec {
        const HELP: &str = "significance level in (0, 1): pvalue < alpha is anomalous";
        match default {
            Some(d) => OptionSpec::with_default("alpha", Value::Double(d), HELP),
            None => OptionSpec::required("alpha", ValueKind::Double, HELP),
        }
    }

    /// `rebaseline`: consecutive anomalous windows after which the new
    /// normal is accepted, INT >= 0, default 0 (never). See
    /// [`crate::window::Baseline`].
    pub fn rebaseline() -> OptionSpec {
        rebaseline_with(0)
    }

    /// `rebaseline` with another default: detectors whose baseline should
    /// accept a lasting change by itself (a new set point, a counter that
    /// moved to a new range) set it, since anomalous windows never join
    /// their history.
    pub fn rebaseline_with(default: i64) -> OptionSpec {
        OptionSpec::with_default(
            "rebaseline",
            Value::Int(default),
            "after this many consecutive anomalous windows, accept the new normal (the \
             baseline restarts from those windows); 0 = never; 0 to 1000000",
        )
    }
}

fn wrong(name: &str, want: ValueKind, got: Option<&Value>) -> String {
    match got {
        None => format!("option {name} is required"),
        Some(v) => format!("option {name} must be {want}, got {}", v.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, v: i64) -> Options {
        Options::new(vec![(name.into(), Value::Int(v))])
    }

    /// Issue 10, item 5: `size` = 2^62 was accepted and the history grew
    /// without bound.
    #[test]
    fn sizes_and_counts_above_their_maximum_are_refused_with_the_reason() {
        assert_eq!(one("size", MAX_LENGTH).length("size"), Ok(1_000_000));
        for v in [MAX_LENGTH + 1, 1 << 62, i64::MAX] {
            let e = one("size", v).length("size").unwrap_err();
            assert!(e.starts_with("option size must be <= 1000000 (each value"), "{e}");
            assert!(e.ends_with(&format!("got {v}")), "{e}");
        }
        assert_eq!(one("rebaseline", MAX_COUNT).count("rebaseline"), Ok(1_000_000));
        assert_eq!(
            one("rebaseline", i64::MAX).count("rebaseline").unwrap_err(),
            format!("option rebaseline must be <= 1000000, got {}", i64::MAX)
        );
        assert_eq!(one("k", 5).int_in("k", 1, 5), Ok(5));
        assert_eq!(one("k", 6).int_in("k", 1, 5).unwrap_err(), "option k must be in [1, 5], got 6");
    }
}
