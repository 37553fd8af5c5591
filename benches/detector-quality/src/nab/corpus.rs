//! Reads a NAB corpus directory: `combined_windows.json` (the labelled
//! windows per file) and each listed `data/<category>/<name>.csv`
//! (`timestamp,value`, UTC `YYYY-MM-DD HH:MM:SS`).
//!
//! Owns: parsing and checking those files, and each file's sampling step.
//! Does not own: scoring (`scorer.rs`). Every failure names the file and,
//! for a CSV, the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::scorer::FileLabels;

/// Why a corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `combined_windows.json` is not a map of file → list of [start, end].
    #[error("{path}: not NAB's windows format: {reason}")]
    Windows {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A CSV line that is not `timestamp,value`.
    #[error("{path}:{line}: {reason}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Fewer than two rows.
    #[error("{path}: {reason}")]
    Series {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One labelled series.
#[derive(Debug)]
pub struct DataFile {
    /// `category/name.csv`, as NAB names it.
    pub name: String,
    /// The category (the folder).
    pub category: String,
    /// Row timestamps, ns since the Unix epoch, non-decreasing.
    pub timestamps: Vec<i64>,
    /// Row values.
    pub values: Vec<f64>,
    /// The windows laid out on the rows.
    pub labels: FileLabels,
}

impl DataFile {
    /// The median gap between consecutive rows (ns): the series' sampling
    /// interval, robust to the gaps and jitter real metrics have.
    pub fn median_step(&self) -> i64 {
        median_step(&self.timestamps)
    }
}

/// The median of consecutive differences; 0 for fewer than two values.
pub fn median_step(timestamps: &[i64]) -> i64 {
    let mut steps: Vec<i64> = timestamps.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.is_empty() {
        return 0;
    }
    let mid = steps.len() / 2;
    *steps.select_nth_unstable(mid).1
}

/// NAB's timestamp format (`2014-04-10 07:15:00`, optionally with
/// fractional seconds), as UTC, in ns since the Unix epoch.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339_weak(s.trim()).map_err(|e| format!("timestamp {s:?}: {e}"))?;
    let d = t.duration_since(UNIX_EPOCH).map_err(|_| format!("timestamp {s:?} is before 1970"))?;
    i64::try_from(d.as_nanos()).map_err(|_| format!("timestamp {s:?} is out of range"))
}

fn read(path: &Path) -> Result<String, CorpusError> {
    std::fs::read_to_string(path).map_err(|source| CorpusError::Read { path: path.into(), source })
}

/// Reads every file `combined_windows.json` in `dir` lists, sorted by name.
pub fn load(dir: &Path) -> Result<Vec<DataFile>, CorpusError> {
    let windows_path = dir.join("combined_windows.json");
    let bad = |reason: String| CorpusError::Windows { path: windows_path.clone(), reason };
    let listed: BTreeMap<String, Vec<Vec<String>>> =
        serde_json::from_str(&read(&windows_path)?).map_err(|e| bad(e.to_string()))?;
    let mut files = Vec::with_capacity(listed.len());
    for (name, limits) in listed {
        let mut spans = Vec::with_capacity(limits.len());
        for pair in &limits {
            let [start, end] = pair.as_slice() else {
                return Err(bad(format!("{name}: a window is not [start, end]")));
            };
            let start = parse_timestamp(start).map_err(|e| bad(format!("{name}: {e}")))?;
            let end = parse_timestamp(end).map_err(|e| bad(format!("{name}: {e}")))?;
            spans.push((start, end));
        }
        let path = dir.join("data").join(&name);
        let (timestamps, values) = read_csv(&path)?;
        let category = name.split('/').next().unwrap_or_default().to_string();
        let labels = FileLabels::from_timestamps(&timestamps, &spans);
        files.push(DataFile { name, category, timestamps, values, labels });
    }
    Ok(files)
}

fn read_csv(path: &Path) -> Result<(Vec<i64>, Vec<f64>), CorpusError> {
    let text = read(path)?;
    let mut timestamps = Vec::new();
    let mut values = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |reason: String| CorpusError::Csv { path: path.into(), line: n + 1, reason };
        if n == 0 || line.trim().is_empty() {
            continue; // the header, or a trailing blank line
        }
        let Some((t, v)) = line.split_once(',') else {
            return Err(err("expected timestamp,value".into()));
        };
        let t = parse_timestamp(t).map_err(err)?;
        let v: f64 = v.trim().parse().map_err(|e| err(format!("value {v:?}: {e}")))?;
        if !v.is_finite() {
            return Err(err(format!("value {v} is not finite")));
        }
        // NAB keeps rows that share a timestamp (a clock change left a dozen
        // `03:00:00` rows in two AWS files) and scores rows, not times; a
        // Kapacitor stream passes such points on in order too.
        if timestamps.last().is_some_and(|&last| t < last) {
            return Err(err("timestamps must not decrease".into()));
        }
        timestamps.push(t);
        values.push(v);
    }
    if timestamps.len() < 2 {
        return Err(CorpusError::Series {
            path: path.into(),
            reason: "fewer than two rows".into(),
        });
    }
    Ok((timestamps, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nab_timestamps_as_utc() {
        assert_eq!(parse_timestamp("1970-01-01 00:05:00"), Ok(300_000_000_000));
        assert_eq!(parse_timestamp("2014-04-10 07:15:00.000000"), Ok(1_397_114_100_000_000_000));
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn median_step_ignores_gaps() {
        assert_eq!(median_step(&[0, 300, 600, 900, 4500, 4800]), 300);
        assert_eq!(median_step(&[0]), 0);
    }

    #[test]
    fn loads_a_small_corpus_and_names_bad_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("data/cat")).expect("mkdir");
        std::fs::write(
            dir.path().join("combined_windows.json"),
            r#"{"cat/a.csv": [["1970-01-01 00:10:00.000000", "1970-01-01 00:15:00.000000"]]}"#,
        )
        .expect("write");
        let rows: String =
            (0..10).map(|i| format!("1970-01-01 00:{:02}:00,{i}\n", i * 5)).collect();
        std::fs::write(dir.path().join("data/cat/a.csv"), format!("timestamp,value\n{rows}"))
            .expect("write");
        let files = load(dir.path()).expect("loads");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].category, "cat");
        assert_eq!(files[0].median_step(), 300_000_000_000);
        assert_eq!(files[0].labels.windows().len(), 1);
        assert_eq!((files[0].labels.windows()[0].first, files[0].labels.windows()[0].last), (2, 3));

        std::fs::write(
            dir.path().join("data/cat/a.csv"),
            "timestamp,value\n1970-01-01 00:00:00,x\n",
        )
        .expect("write");
        let e = load(dir.path()).expect_err("bad value").to_string();
        assert!(e.contains("a.csv:2") && e.contains("value"), "{e}");
    }
}
