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
pub const REPORT_LIMIT: u64 = 20;

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
        let ctx = LineCtx { name, precision, measurement, now_ns };
        if let Some(p) = parse_line(raw, i + 1, &ctx, input) {
            input.points.push(p);
        }
    }
}

/// How one input's lines are read.
struct LineCtx<'a> {
    name: &'a str,
    precision: Precision,
    measurement: Option<&'a str>,
    now_ns: i64,
}

/// One line → a point, or `None` (blank, comment, filtered, malformed:
/// counted on `input`).
fn parse_line(
    raw: &[u8],
    line_no: usize,
    ctx: &LineCtx<'_>,
    input: &mut Input,
) -> Option<agent::Point> {
    let Ok(line) = std::str::from_utf8(raw) else {
        report(input, ctx.name, line_no, "not valid UTF-8");
        return None;
    };
    let line = line.trim_end_matches(['\r', '\n']);
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    input.lines += 1;
    match influxdb_line_protocol::parse_lines(trimmed).next() {
        Some(Ok(parsed)) => {
            if ctx.measurement.is_some_and(|m| parsed.series.measurement.as_str() != m) {
                input.filtered += 1;
                return None;
            }
            let time = match parsed.timestamp {
                Some(t) => match t.checked_mul(ctx.precision.to_ns()) {
                    Some(ns) => ns,
                    None => {
                        report(
                            input,
                            ctx.name,
                            line_no,
                            "timestamp out of range for the precision",
                        );
                        return None;
                    }
                },
                None => ctx.now_ns,
            };
            Some(point(&parsed, time))
        }
        Some(Err(e)) => {
            report(input, ctx.name, line_no, &e.to_string());
            None
        }
        None => None,
    }
}

/// Counts the bytes read through it (for the progress bar).
struct Counting<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// The longest line a stream reads (a line protocol line is a few hundred
/// bytes; InfluxDB's own limit is 64 KiB by default): a longer one is
/// reported and skipped, so one huge line cannot take the memory.
pub const MAX_LINE: usize = 1 << 20;

/// How many points each input holds to put slightly unordered lines back
/// in time order (a few MB). A point older than one already passed on is
/// late: skipped and counted, as Kapacitor's window never reopens a window
/// it emitted.
pub const REORDER: usize = 65_536;

/// Points read lazily, line by line, from several inputs at once, merged
/// into time order: memory stays bounded whatever the input's length.
pub struct Stream {
    inputs: Vec<Source>,
    /// Next point of each input, keyed by (time, input, sequence).
    heads: std::collections::BinaryHeap<std::cmp::Reverse<Keyed>>,
    /// Counters over all inputs (`points` stays empty).
    pub input: Input,
    /// Points skipped for arriving after later ones were passed on.
    pub late: u64,
    /// Bytes read so far over all inputs (compressed bytes for `.gz`).
    pub bytes: std::rc::Rc<std::cell::Cell<u64>>,
    /// Total bytes of the inputs that are files (0 when one is stdin).
    pub total: u64,
    last: Option<i64>,
    opts: Opts,
    started: bool,
}

struct Source {
    reader: Box<dyn std::io::BufRead>,
    name: String,
    line_no: usize,
    buf: Vec<u8>,
    /// Read ahead and not yet passed on, earliest first.
    pending: std::collections::BinaryHeap<std::cmp::Reverse<Keyed>>,
    seq: u64,
    done: bool,
}

/// A point ordered by (time, input, sequence): equal times keep their
/// input order, as the sort they replace was stable.
struct Keyed(i64, usize, u64, agent::Point);

impl PartialEq for Keyed {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1, self.2) == (o.0, o.1, o.2)
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Keyed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, self.1, self.2).cmp(&(o.0, o.1, o.2))
    }
}

struct Opts {
    precision: Precision,
    measurement: Option<String>,
    now_ns: i64,
}

impl Stream {
    /// Opens every input (`-` is stdin, `.gz` is decompressed); nothing is
    /// read yet.
    pub fn open(
        paths: &[std::path::PathBuf],
        precision: Precision,
        measurement: Option<&str>,
        now_ns: i64,
    ) -> anyhow::Result<Stream> {
        let bytes = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut total = 0;
        let mut inputs = Vec::with_capacity(paths.len());
        for path in paths {
            let counted = |r: Box<dyn Read>| Counting { inner: r, read: bytes.clone() };
            let reader: Box<dyn std::io::BufRead> = if path == Path::new("-") {
                Box::new(std::io::BufReader::new(counted(Box::new(std::io::stdin()))))
            } else {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                total += file.metadata().map(|m| m.len()).unwrap_or(0);
                let raw = counted(Box::new(file));
                if path.extension().is_some_and(|e| e == "gz") {
                    Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(raw)))
                } else {
                    Box::new(std::io::BufReader::with_capacity(1 << 16, raw))
                }
            };
            inputs.push(Source {
                reader,
                name: path.display().to_string(),
                line_no: 0,
                buf: Vec::new(),
                pending: std::collections::BinaryHeap::new(),
                seq: 0,
                done: false,
            });
        }
        if paths.iter().any(|p| p == Path::new("-")) {
            total = 0;
        }
        let mut s = Stream {
            inputs,
            heads: std::collections::BinaryHeap::new(),
            input: Input::default(),
            late: 0,
            bytes,
            total,
            last: None,
            opts: Opts { precision, measurement: measurement.map(str::to_string), now_ns },
            started: false,
        };
        s.input.points = Vec::new();
        Ok(s)
    }

    /// Reads input `i` ahead until [`REORDER`] points wait or it ends, then
    /// passes on its earliest.
    fn pop_source(&mut self, i: usize) -> Option<Keyed> {
        use std::io::BufRead as _;
        let opts = &self.opts;
        let src = &mut self.inputs[i];
        while !src.done && src.pending.len() < REORDER {
            src.buf.clear();
            let read = (&mut src.reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut src.buf);
            match read {
                Ok(0) => src.done = true,
                Ok(_) => {
                    src.line_no += 1;
                    if src.buf.len() > MAX_LINE && src.buf.last() != Some(&b'\n') {
                        report(&mut self.input, &src.name, src.line_no, "line longer than 1 MiB");
                        // Skip the rest of the line.
                        loop {
                            src.buf.clear();
                            match (&mut src.reader)
                                .take(MAX_LINE as u64)
                                .read_until(b'\n', &mut src.buf)
                            {
                                Ok(0) | Err(_) => break,
                                Ok(_) if src.buf.last() == Some(&b'\n') => break,
                                Ok(_) => {}
                            }
                        }
                        continue;
                    }
                    let ctx = LineCtx {
                        name: &src.name,
                        precision: opts.precision,
                        measurement: opts.measurement.as_deref(),
                        now_ns: opts.now_ns,
                    };
                    if let Some(p) = parse_line(&src.buf, src.line_no, &ctx, &mut self.input) {
                        src.seq += 1;
                        src.pending.push(std::cmp::Reverse(Keyed(p.time, i, src.seq, p)));
                    }
                }
                Err(e) => {
                    tracing::error!("{}: read failed after line {}: {e}", src.name, src.line_no);
                    self.input.malformed += 1;
                    src.done = true;
                }
            }
        }
        src.pending.pop().map(|std::cmp::Reverse(k)| k)
    }
}

impl Iterator for Stream {
    type Item = agent::Point;

    fn next(&mut self) -> Option<agent::Point> {
        if !self.started {
            self.started = true;
            for i in 0..self.inputs.len() {
                if let Some(k) = self.pop_source(i) {
                    self.heads.push(std::cmp::Reverse(k));
                }
            }
        }
        loop {
            let std::cmp::Reverse(Keyed(time, i, _, p)) = self.heads.pop()?;
            if let Some(k) = self.pop_source(i) {
                self.heads.push(std::cmp::Reverse(k));
            }
            if self.last.is_some_and(|last| time < last) {
                self.late += 1;
                continue;
            }
            self.last = Some(time);
            return Some(p);
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
