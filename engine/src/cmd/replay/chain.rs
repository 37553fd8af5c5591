//! Parses a UDF option chain as a TICKscript writes it after `@udf()`:
//! `.field('hotend','bed','air').size(3600).alpha(0.001)`.
//!
//! Literals follow TICKscript: `'string'` (and `'''string'''`, with `\'`
//! escapes), integers (`3600`, `-5`), floats (`0.001`, `-1.5`), `TRUE` /
//! `FALSE`, durations (`5m`, `10s`, `100ms`, `1h`, `2d`, `1w`, `10u`, `10µ`).
//! Double-quoted text is a field reference in TICKscript, never a value,
//! and is refused. `//` comments and any white space may separate calls.
//! Errors name the 1-based column.

use tickwatch_proto::agent;

use crate::kapacitor::options::opt;

/// A syntax error at a column of the chain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ChainError {
    /// 1-based column (in characters).
    pub column: usize,
    /// What was expected.
    pub message: String,
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    _src: &'a str,
}

impl Parser<'_> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ChainError> {
        Err(ChainError { column: self.pos + 1, message: message.into() })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => self.pos += 1,
                Some('/') if self.chars.get(self.pos + 1) == Some(&'/') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ChainError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            match self.peek() {
                Some(got) => self.err(format!("expected '{c}', found '{got}'")),
                None => self.err(format!("expected '{c}', found the end")),
            }
        }
    }

    fn ident(&mut self) -> Result<String, ChainError> {
        self.skip_ws();
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        if start == self.pos || self.chars[start].is_ascii_digit() {
            self.pos = start;
            return self.err("expected an option name");
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn string(&mut self) -> Result<agent::OptionValue, ChainError> {
        let triple = self.chars.get(self.pos..self.pos + 3) == Some(&['\'', '\'', '\''][..]);
        let start = self.pos;
        self.pos += if triple { 3 } else { 1 };
        let mut s = String::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return self.err("unterminated string");
                }
                Some('\\') if !triple && self.chars.get(self.pos + 1) == Some(&'\'') => {
                    s.push('\'');
                    self.pos += 2;
                }
                Some('\'') if triple => {
                    if self.chars.get(self.pos..self.pos + 3) == Some(&['\'', '\'', '\''][..]) {
                        self.pos += 3;
                        return Ok(opt::s(&s));
                    }
                    s.push('\'');
                    self.pos += 1;
                }
                Some('\'') => {
                    self.pos += 1;
                    return Ok(opt::s(&s));
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn number_or_duration(&mut self) -> Result<agent::OptionValue, ChainError> {
        let start = self.pos;
        let negative = self.peek() == Some('-');
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if digits_start == self.pos {
            return self.err("expected a digit");
        }
        let mut is_float = false;
        if self.peek() == Some('.') {
            is_float = true;
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        let number: String = self.chars[start..self.pos].iter().collect();
        // A unit right after the digits makes it a duration.
        let unit_start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphabetic()) {
            self.pos += 1;
        }
        let unit: String = self.chars[unit_start..self.pos].iter().collect();
        if !unit.is_empty() {
            let scale: i64 = match unit.as_str() {
                "u" | "µ" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60 * 1_000_000_000,
                "h" => 3_600 * 1_000_000_000,
                "d" => 86_400 * 1_000_000_000,
                "w" => 7 * 86_400 * 1_000_000_000,
                // `1e-10`: Kapacitor's lexer reads `e` as a duration unit
                // and fails; say what the user meant instead.
                "e" | "E"
                    if self.peek().is_some_and(|c| c == '-' || c == '+' || c.is_ascii_digit()) =>
                {
                    self.pos = unit_start;
                    return self.err(format!(
                        "TICKscript numbers have no exponent: write {number}{unit}… out in full \
                         (0.0000000001 for 1e-10)"
                    ));
                }
                _ => {
                    self.pos = unit_start;
                    return self.err(format!(
                        "unknown duration unit '{unit}' (use u, µ, ms, s, m, h, d or w)"
                    ));
                }
            };
            if is_float {
                self.pos = start;
                return self.err("a duration takes a whole number, like 90s");
            }
            let n: i64 = number.parse().or_else(|_| {
                self.pos = start;
                self.err("duration out of range")
            })?;
            return n.checked_mul(scale).map(opt::dur).map_or_else(
                || {
                    self.pos = start;
                    self.err("duration out of range")
                },
                Ok,
            );
        }
        if is_float {
            number.parse::<f64>().map(opt::d).or_else(|_| {
                self.pos = start;
                self.err("malformed number")
            })
        } else {
            number.parse::<i64>().map(opt::i).or_else(|_| {
                self.pos = start;
                self.err("integer out of range")
            })
        }
    }

    fn literal(&mut self) -> Result<agent::OptionValue, ChainError> {
        self.skip_ws();
        match self.peek() {
            Some('\'') => self.string(),
            Some(c) if c.is_ascii_digit() || c == '-' => self.number_or_duration(),
            Some('"') => self.err(
                "double quotes make a field reference in TICKscript; option values take \
                 'single quotes'",
            ),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                let word = self.ident()?;
                match word.as_str() {
                    "TRUE" => Ok(opt::b(true)),
                    "FALSE" => Ok(opt::b(false)),
                    _ => {
                        self.pos = start;
                        self.err(format!(
                            "expected a literal, found '{word}' (booleans are TRUE and FALSE)"
                        ))
                    }
                }
            }
            Some(c) => self.err(format!("expected a literal, found '{c}'")),
            None => self.err("expected a literal, found the end"),
        }
    }

    fn call(&mut self) -> Result<agent::Option, ChainError> {
        self.expect('.')?;
        let name = self.ident()?;
        self.expect('(')?;
        let mut values = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
            return Ok(agent::Option { name, values });
        }
        loop {
            values.push(self.literal()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(agent::Option { name, values });
                }
                Some(c) => return self.err(format!("expected ',' or ')', found '{c}'")),
                None => return self.err("expected ',' or ')', found the end"),
            }
        }
    }
}

/// A `--window`/`--every` value as a TICKscript duration literal
/// (`|window().period(5m)`): a whole number and one unit, `ns`, `u`/`µ`/`us`,
/// `ms`, `s`, `m`, `h`, `d` or `w`, in nanoseconds. Anything else is refused
/// with the reason: `1 month` would be read by a general duration parser,
/// but Kapacitor has no month (or year) unit, their length varies.
pub fn duration(s: &str) -> Result<i64, String> {
    let text = s.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim_start();
    let scale: i64 = match unit {
        "ns" => 1,
        "u" | "µ" | "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        "d" => 86_400 * 1_000_000_000,
        "w" => 7 * 86_400 * 1_000_000_000,
        _ => {
            let lower = unit.to_lowercase();
            let why = if lower.starts_with("mo") || lower.starts_with('y') {
                "Kapacitor durations have no month or year unit (their length varies): use \
                 days or weeks, such as 30d or 52w"
                    .to_string()
            } else if number.is_empty() {
                "a duration is a whole number and a unit, such as 5m or 300s".to_string()
            } else {
                format!("unknown duration unit {unit:?}")
            };
            return Err(format!(
                "{s:?} is not a Kapacitor duration: {why} (units: ns, u or µ, ms, s, m, h, d, w)"
            ));
        }
    };
    if number.is_empty() {
        return Err(format!(
            "{s:?} is not a Kapacitor duration: a duration is a whole number and a unit, such \
             as 5m or 300s"
        ));
    }
    let n: i64 = number.parse().map_err(|_| format!("{s:?} is out of range"))?;
    let ns = n.checked_mul(scale).ok_or_else(|| format!("{s:?} is out of range"))?;
    if ns <= 0 {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(ns)
}

/// Parses a chain into Init options, in script order.
pub fn parse(src: &str) -> Result<Vec<agent::Option>, ChainError> {
    let mut p = Parser { chars: src.chars().collect(), pos: 0, _src: src };
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        if p.peek().is_none() {
            return Ok(out);
        }
        out.push(p.call()?);
    }
}

#[cfg(test)]
mod tests {
    use agent::option_value::Value as V;

    use super::*;

    fn values(src: &str) -> Vec<(String, Vec<V>)> {
        parse(src)
            .unwrap()
            .into_iter()
            .map(|o| (o.name, o.values.into_iter().map(|v| v.value.unwrap()).collect()))
            .collect()
    }

    #[test]
    fn accepts_every_literal_type() {
        let got = values(
            ".field('hotend','b\\'d', '''a'b''') // three fields\n .size(3600).alpha(0.001)\n\
             .neg(-5, -1.5).flag(TRUE, FALSE).every(5m, 10s, 100ms, 1h, 2d, 1w, 7u, 3µ).none()",
        );
        let s = |x: &str| V::StringValue(x.into());
        let m = 60_000_000_000i64;
        assert_eq!(
            got,
            vec![
                ("field".into(), vec![s("hotend"), s("b'd"), s("a'b")]),
                ("size".into(), vec![V::IntValue(3600)]),
                ("alpha".into(), vec![V::DoubleValue(0.001)]),
                ("neg".into(), vec![V::IntValue(-5), V::DoubleValue(-1.5)]),
                ("flag".into(), vec![V::BoolValue(true), V::BoolValue(false)]),
                (
                    "every".into(),
                    vec![
                        V::DurationValue(5 * m),
                        V::DurationValue(10_000_000_000),
                        V::DurationValue(100_000_000),
                        V::DurationValue(60 * m),
                        V::DurationValue(2 * 24 * 60 * m),
                        V::DurationValue(7 * 24 * 60 * m),
                        V::DurationValue(7_000),
                        V::DurationValue(3_000),
                    ]
                ),
                ("none".into(), vec![]),
            ]
        );
        let opts = parse(".field('a','','b').field('c','','')").unwrap();
        assert_eq!(crate::node::config::tracking(&opts).unwrap().fields, ["a", "b", "c"]);
    }

    #[test]
    fn window_durations_are_kapacitor_literals() {
        assert_eq!(duration("5m"), Ok(300_000_000_000));
        assert_eq!(duration("300s"), Ok(300_000_000_000));
        assert_eq!(duration("1w"), Ok(7 * 86_400_000_000_000));
        assert_eq!(duration("10µ"), Ok(10_000));
        assert_eq!(duration("250ms"), Ok(250_000_000));
        let e = duration("1 month").unwrap_err();
        assert!(e.contains("no month or year unit") && e.contains("30d"), "{e}");
        assert!(duration("2y").unwrap_err().contains("no month or year unit"));
        assert!(duration("1.5h").unwrap_err().contains("unknown duration unit \".5h\""));
        assert!(duration("m").unwrap_err().contains("whole number and a unit"));
        assert!(duration("0s").unwrap_err().contains("must be positive"));
        assert!(duration("99999999999999w").unwrap_err().contains("out of range"));
    }

    #[test]
    fn rejects_bad_syntax_with_the_column() {
        let err = |src: &str| parse(src).unwrap_err();
        assert_eq!(err("field('a')").column, 1);
        assert_eq!(err(".field('a'").message, "expected ',' or ')', found the end");
        assert_eq!(err(".size(36 00)").column, 10);
        assert_eq!(err(".size(5x)").column, 8);
        assert!(err(".size(5x)").message.contains("unknown duration unit 'x'"));
        // Issue 9: exponents are not TICKscript; say so instead of "unit 'e'".
        let e = err(".alpha(1e-10)");
        assert!(e.message.contains("TICKscript numbers have no exponent"), "{}", e.message);
        assert_eq!(e.column, 9);
        assert!(err(".alpha(2.5E3)").message.contains("no exponent"));
        assert_eq!(err(".field(\"hotend\")").column, 8);
        assert!(err(".field(\"hotend\")").message.contains("field reference"));
        assert_eq!(err(".flag(true)").column, 7);
        assert_eq!(err(".field('abc").column, 8);
        assert_eq!(err(".field('abc").message, "unterminated string");
        assert_eq!(err(".9x()").column, 2);
        assert_eq!(err(".every(1.5m)").message, "a duration takes a whole number, like 90s");
        assert_eq!(err(".size(99999999999999999999)").message, "integer out of range");
    }
}
