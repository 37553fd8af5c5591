//! What a detector says about one window, and how it describes its state.

use std::fmt::Write as _;

/// The detector's verdict on one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Probability of a window at least this unusual under "nothing changed".
    /// Must be finite, in `[0, 1]`.
    pub pvalue: f64,
    /// Whether the detector calls this window anomalous (usually `pvalue < alpha`).
    pub anomalous: bool,
    /// Named statistics (`t` for the t-test), emitted as double fields.
    /// Must be finite: InfluxDB refuses NaN and infinities.
    pub stats: Vec<(String, f64)>,
}

/// A detector's description of its state, shown to users inspecting node state.
///
/// An ordered list of named values; the host renders it as a JSON object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    entries: Vec<(String, SummaryValue)>,
}

/// One value of a [`Summary`].
#[derive(Debug, Clone, PartialEq)]
pub enum SummaryValue {
    /// A float (non-finite renders as `null`).
    Num(f64),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(String),
}

impl Summary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a float.
    pub fn num(mut self, name: &str, v: f64) -> Self {
        self.entries.push((name.into(), SummaryValue::Num(v)));
        self
    }

    /// Adds an integer.
    pub fn int(mut self, name: &str, v: i64) -> Self {
        self.entries.push((name.into(), SummaryValue::Int(v)));
        self
    }

    /// Adds a boolean.
    pub fn bool(mut self, name: &str, v: bool) -> Self {
        self.entries.push((name.into(), SummaryValue::Bool(v)));
        self
    }

    /// Adds text.
    pub fn text(mut self, name: &str, v: &str) -> Self {
        self.entries.push((name.into(), SummaryValue::Text(v.into())));
        self
    }

    /// The entries in order.
    pub fn entries(&self) -> &[(String, SummaryValue)] {
        &self.entries
    }

    /// Renders as a JSON object, keys in insertion order.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_str(&mut out, k);
            out.push(':');
            match v {
                SummaryValue::Num(x) if x.is_finite() => {
                    let _ = write!(out, "{x:?}");
                }
                SummaryValue::Num(_) => out.push_str("null"),
                SummaryValue::Int(i) => {
                    let _ = write!(out, "{i}");
                }
                SummaryValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                SummaryValue::Text(s) => json_str(&mut out, s),
            }
        }
        out.push('}');
        out
    }
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_json_with_escapes_and_null_for_nan() {
        let s = Summary::new()
            .int("n", 3)
            .num("mean", 1.5)
            .num("bad", f64::NAN)
            .bool("ok", true)
            .text("q", "a\"b\\\n");
        assert_eq!(s.to_json(), r#"{"n":3,"mean":1.5,"bad":null,"ok":true,"q":"a\"b\\\n"}"#);
    }
}
