//! Reads InfluxDB line protocol (files, `-` for stdin, gzip when the name
//! ends in `.gz`) into named Kapacitor points, with InfluxDB's escaping and
//! types: floats, `i` integers, `u` unsigned integers, strings, booleans.
//! Parsing is `influxdb-line-protocol`'s; this module adds file:line
//! reporting, precision and filtering. A malformed line is reported and
//! skipped; the read goes on.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use influxdb_line_protocol::FieldValue;
use tickwatch_proto::agent;

/// Timestamp unit of the input, as InfluxDB's `precision` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Nanoseconds (InfluxDB's default).
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ns" => Ok(Precision::Ns),
            "us" => Ok(Precision::Us),
            "ms" => Ok(Precision::Ms),
            "s" => Ok(Precision::S),
            other => Err(format!("{other:?} is not a precision: use ns, us, ms or s")),
        }
    }
}

impl Precision {
    /// The unit as `--precision` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Ns => "ns",
            Precision::Us => "us",
            Precision::Ms => "ms",
            Precision::S => "s",
        }
    }

    /// Nanoseconds in one unit.
    pub fn to_ns(self) -> i64 {
        match self {
            Precision::Ns => 1,
            Precision::Us => 1_000,
            Precision::Ms => 1_000_000,
            Precision::S => 1_000_000_000,
        }
    }
}

/// What reading produced.
#[derive(Debug, Default)]
pub struct Input {
    /// Points in time order (stable for equal times).
    pub points: Vec<agent::Point>,
    /// Lines read (not counting blank lines and comments).
    pub lines: u64,
    /// Lines that did not parse (reported and skipped).
    pub malformed: u64,
    /// Lines of another measurement (with `--measurement`).
    pub filtered: u64,
}

/// How many malformed lines are printed before only counting.
const REPORT_LIMIT: u64 = 20;

fn open(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes).context("reading stdin")?;
        return Ok(bytes);
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot decompress {}", path.display()))?;
    } else {
        std::io::BufReader::new(file)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(bytes)
}

/// Reads every input. `now_ns` stamps lines without a timestamp (InfluxDB
/// uses the time it receives them).
pub fn read(
    paths: &[std::path::PathBuf],
    precision: Precision,
    measurement: Option<&str>,
    now_ns: i64,
) -> anyhow::Result<Input> {
    let mut input = Input::default();
    for path in paths {
        let bytes = open(path)?;
        parse(&bytes, &path.display().to_string(), precision, measurement, now_ns, &mut input);
    }
    input.points.sort_by_key(|p| p.time);
    if input.malformed > REPORT_LIMIT {
        tracing::warn!(
            "{} malformed lines in all (the first {REPORT_LIMIT} are shown)",
            input.malformed
        );
    }
    Ok(input)
}

/// Parses one input's bytes (named `name` in messages) onto `input`.
pub fn parse(
    bytes: &[u8],
    name: &str,
    precision: Precision,
    measurement: Option<&str>,
    now_ns: i64,
    input: &mut Input,
) {
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let Ok(line) = std::str::from_utf8(raw) else {
            report(input, name, line_no, "not valid UTF-8");
            continue;
        };
        let line = line.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        input.lines += 1;
        match influxdb_line_protocol::parse_lines(trimmed).next() {
            Some(Ok(parsed)) => {
                if measurement.is_some_and(|m| parsed.series.measurement.as_str() != m) {
                    input.filtered += 1;
                    continue;
                }
                let time = match parsed.timestamp {
                    Some(t) => match t.checked_mul(precision.to_ns()) {
                        Some(ns) => ns,
                        None => {
                            report(
                                input,
                                name,
                                line_no,
                                "timestamp out of range for the precision",
                            );
                            continue;
                        }
                    },
                    None => now_ns,
                };
                input.points.push(point(&parsed, time));
            }
            Some(Err(e)) => report(input, name, line_no, &e.to_string()),
            None => {}
        }
    }
}

fn report(input: &mut Input, file: &str, line: usize, what: &str) {
    input.malformed += 1;
    if input.malformed <= REPORT_LIMIT {
        tracing::warn!("{file}:{line}: malformed line skipped: {what}");
    }
}

fn point(parsed: &influxdb_line_protocol::ParsedLine<'_>, time: i64) -> agent::Point {
    let mut p = agent::Point {
        name: parsed.series.measurement.as_str().to_string(),
        time,
        tags: HashMap::new(),
        ..Default::default()
    };
    if let Some(tags) = &parsed.series.tag_set {
        for (k, v) in tags {
            p.tags.insert(k.as_str().to_string(), v.as_str().to_string());
        }
    }
    for (k, v) in &parsed.field_set {
        let k = k.as_str().to_string();
        match v {
            FieldValue::F64(x) => {
                p.fields_double.insert(k, *x);
            }
            FieldValue::I64(x) => {
                p.fields_int.insert(k, *x);
            }
            FieldValue::U64(x) => match i64::try_from(*x) {
                Ok(i) => {
                    p.fields_int.insert(k, i);
                }
                Err(_) => {
                    p.fields_double.insert(k, *x as f64);
                }
            },
            FieldValue::String(s) => {
                p.fields_string.insert(k, s.as_str().to_string());
            }
            FieldValue::Boolean(b) => {
                p.fields_bool.insert(k, *b);
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types_escapes_precision_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("in.lp");
        std::fs::write(
            &f,
            "# a comment\n\
             temp\\ eratures,printer=a\\,b,room=x\\ y hotend=220.5,bed=90i,ok=true,note=\"say \\\"hi\\\"\" 1451606400\n\
             \n\
             temperatures hotend=1 oops\n\
             temperatures,printer=c air=70u 1451606401\n\
             other x=1 1451606402\n",
        )
        .unwrap();
        let input = read(std::slice::from_ref(&f), Precision::S, None, 0).unwrap();
        assert_eq!((input.lines, input.malformed), (4, 1));
        let p = &input.points[0];
        assert_eq!(p.name, "temp eratures");
        assert_eq!(p.time, 1_451_606_400_000_000_000);
        assert_eq!(p.tags["printer"], "a,b");
        assert_eq!(p.tags["room"], "x y");
        assert_eq!(p.fields_double["hotend"], 220.5);
        assert_eq!(p.fields_int["bed"], 90);
        assert!(p.fields_bool["ok"]);
        assert_eq!(p.fields_string["note"], "say \"hi\"");
        assert_eq!(input.points[1].fields_int["air"], 70);
        let only = read(&[f], Precision::Ms, Some("other"), 0).unwrap();
        assert_eq!((only.points.len(), only.filtered), (1, 2));
        assert_eq!(only.points[0].time, 1_451_606_402_000_000);
    }

    #[test]
    fn reads_gzip_and_reports_missing_files() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("in.lp.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&f).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(b"m v=1 5\nm v=2 3\n").unwrap();
        gz.finish().unwrap();
        let input = read(&[f], Precision::Ns, None, 0).unwrap();
        assert_eq!(input.points.iter().map(|p| p.time).collect::<Vec<_>>(), [3, 5]);
        let err = read(&[dir.path().join("missing.lp")], Precision::Ns, None, 0).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot open") && format!("{err:#}").contains("missing.lp")
        );
    }
}
