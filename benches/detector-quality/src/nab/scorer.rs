//! The Numenta Anomaly Benchmark's scoring rules, written from NAB's paper
//! and its published scorer (`nab/sweeper.py`, `nab/scorer.py`; read, not
//! copied): per-row weights from a scaled sigmoid, the probation period,
//! first-detection-per-window, the corpus-wide threshold sweep and the
//! null/perfect normalisation.
//!
//! Owns: turning labelled rows and per-row anomaly scores into NAB scores.
//! Does not own: reading files (`corpus.rs`) or running detectors (the
//! `nab` binary).
//!
//! The rules, as NAB applies them:
//! - The first `min(⌊0.15·rows⌋, 750)` rows of a file are probation: a
//!   detection there counts for nothing, and a window with no row after
//!   probation is not scored at all.
//! - A window is the rows whose timestamps lie in `[start, end]` (both
//!   inclusive). A detection on row `i` of a window of width `W` ending at
//!   row `e` is worth `tp · σ(−(e − i + 1)/W) / σ(−1)`, where
//!   `σ(x) = 2/(1 + e^{5x}) − 1`: exactly `tp` on the window's first row,
//!   close to 0 on its last. Only the best (earliest) detection of a window
//!   counts; a window without detection costs `−fn`.
//! - A detection outside every window costs `fp` (−1 × fp) if no window
//!   precedes it, else `fp · σ((i − e)/(W − 1))` for the preceding window's
//!   last row `e` and width `W` (σ is −1 from 3 window-widths on): a
//!   detection just after a window costs little, one far from it costs `fp`.
//! - One threshold per profile for the whole corpus, chosen to maximise the
//!   summed raw score; a row is a detection when its score is at or above it.
//! - Normalised score = `100 · (raw − null) / (perfect − null)` where null
//!   detects nothing (`−fn` per window) and perfect detects each window on
//!   its first scored row and nothing else.

/// A NAB application profile: the weights of a true positive, a false
/// positive and a false negative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// NAB's name for it.
    pub name: &'static str,
    /// What a detection on a window's first row earns.
    pub tp: f64,
    /// What a detection far from any window costs.
    pub fp: f64,
    /// What a window without a detection costs.
    pub r#fn: f64,
}

/// NAB's three profiles (NAB's `config/profiles.json`).
pub const PROFILES: [Profile; 3] = [
    Profile { name: "standard", tp: 1.0, fp: 0.11, r#fn: 1.0 },
    Profile { name: "reward_low_FP", tp: 1.0, fp: 0.22, r#fn: 1.0 },
    Profile { name: "reward_low_FN", tp: 1.0, fp: 0.11, r#fn: 2.0 },
];

/// NAB's probation: 15 % of the rows, at most 15 % of 5000.
pub fn probation_rows(rows: usize) -> usize {
    // ⌊0.15·n⌋ in integers, so 1000 rows give exactly 150.
    (rows * 15 / 100).min(750)
}

/// NAB's scaled sigmoid: +0.987 at −1 (a window's left edge), 0 at 0 (its
/// right edge), −0.987 at +1, and −1 from +3 on.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x >= 3.0 { -1.0 } else { 2.0 / (1.0 + (5.0 * x).exp()) - 1.0 }
}

/// An anomaly window as an inclusive range of row indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowWindow {
    /// Its first row.
    pub first: usize,
    /// Its last row.
    pub last: usize,
}

impl RowWindow {
    fn width(&self) -> usize {
        self.last - self.first + 1
    }
}

/// What a detection on one row means, before profile weights.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    /// In probation: ignored.
    Probation,
    /// Inside window `window`; `unit` in (0, 1] is its value per `tp`.
    Inside { window: usize, unit: f64 },
    /// Outside every window; `unit` in [−1, 0) is its value per `fp`.
    Outside { unit: f64 },
}

/// One file's labels laid out on its rows.
#[derive(Debug, Clone)]
pub struct FileLabels {
    rows: usize,
    probation: usize,
    windows: Vec<RowWindow>,
    roles: Vec<Role>,
    /// Per window: is at least one of its rows after probation?
    scored: Vec<bool>,
}

/// One file's result at one threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    /// The raw NAB score.
    pub raw: f64,
    /// What detecting nothing would score.
    pub null: f64,
    /// What detecting each window on its first scored row would score.
    pub perfect: f64,
    /// Scored windows.
    pub windows: usize,
    /// Scored windows with at least one detection.
    pub caught: usize,
    /// Detections outside every window (after probation).
    pub false_positives: usize,
}

impl std::ops::AddAssign for Outcome {
    fn add_assign(&mut self, o: Outcome) {
        self.raw += o.raw;
        self.null += o.null;
        self.perfect += o.perfect;
        self.windows += o.windows;
        self.caught += o.caught;
        self.false_positives += o.false_positives;
    }
}

impl Outcome {
    /// `100 · (raw − null) / (perfect − null)`; `None` without windows
    /// (perfect = null: nothing to normalise by).
    pub fn normalised(&self) -> Option<f64> {
        let span = self.perfect - self.null;
        (span > 0.0).then(|| 100.0 * (self.raw - self.null) / span)
    }
}

impl FileLabels {
    /// Lays windows given as inclusive timestamp ranges on rows with
    /// `timestamps` (non-decreasing). A window that holds no row is dropped, and
    /// overlapping windows are merged (NAB's labels never overlap; merging
    /// keeps the "one window, one detection" rule well defined if they did).
    pub fn from_timestamps(timestamps: &[i64], windows: &[(i64, i64)]) -> Self {
        let mut rows: Vec<RowWindow> = windows
            .iter()
            .filter_map(|&(start, end)| {
                let first = timestamps.partition_point(|&t| t < start);
                let past = timestamps.partition_point(|&t| t <= end);
                (past > first).then(|| RowWindow { first, last: past - 1 })
            })
            .collect();
        rows.sort_by_key(|w| w.first);
        let mut merged: Vec<RowWindow> = Vec::with_capacity(rows.len());
        for w in rows {
            match merged.last_mut() {
                Some(prev) if w.first <= prev.last => prev.last = prev.last.max(w.last),
                _ => merged.push(w),
            }
        }
        Self::from_rows(timestamps.len(), &merged)
    }

    /// `rows` rows with windows given as row ranges (sorted, disjoint, in
    /// range).
    pub fn from_rows(rows: usize, windows: &[RowWindow]) -> Self {
        let probation = probation_rows(rows);
        let mut roles = Vec::with_capacity(rows);
        let mut next = 0; // the next window not yet entered
        let mut current: Option<usize> = None;
        let mut previous: Option<usize> = None;
        for i in 0..rows {
            if current.is_none() && windows.get(next).is_some_and(|w| w.first == i) {
                current = Some(next);
                next += 1;
            }
            let role = if i < probation {
                Role::Probation
            } else if let Some(k) = current {
                let w = windows[k];
                let position = -((w.last - i + 1) as f64) / w.width() as f64;
                Role::Inside { window: k, unit: scaled_sigmoid(position) / scaled_sigmoid(-1.0) }
            } else {
                let unit = match previous {
                    None => -1.0,
                    // A one-row window has no width to measure distance in:
                    // count the detection as far from it.
                    Some(k) if windows[k].width() < 2 => -1.0,
                    Some(k) => {
                        let w = windows[k];
                        scaled_sigmoid((i - w.last) as f64 / (w.width() - 1) as f64)
                    }
                };
                Role::Outside { unit }
            };
            roles.push(role);
            if let Some(k) = current
                && windows[k].last == i
            {
                previous = Some(k);
                current = None;
            }
        }
        let scored = windows.iter().map(|w| w.last >= probation).collect();
        Self { rows, probation, windows: windows.to_vec(), roles, scored }
    }

    /// Rows in the file.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Rows in probation (not scored).
    pub fn probation(&self) -> usize {
        self.probation
    }

    /// The windows, as row ranges.
    pub fn windows(&self) -> &[RowWindow] {
        &self.windows
    }

    fn scored_windows(&self) -> usize {
        self.scored.iter().filter(|s| **s).count()
    }

    /// The first row of each scored window that is past probation: where a
    /// perfect detector fires.
    fn perfect_rows(&self) -> impl Iterator<Item = usize> + '_ {
        self.windows
            .iter()
            .zip(&self.scored)
            .filter(|(_, s)| **s)
            .map(|(w, _)| w.first.max(self.probation))
    }

    fn perfect(&self, profile: &Profile) -> f64 {
        self.perfect_rows()
            .map(|i| match self.roles[i] {
                Role::Inside { unit, .. } => profile.tp * unit,
                _ => 0.0,
            })
            .sum()
    }

    /// Scores one file given which rows are detections.
    pub fn score(&self, detected: impl Fn(usize) -> bool, profile: &Profile) -> Outcome {
        let mut best: Vec<Option<f64>> = vec![None; self.windows.len()];
        let mut out = Outcome {
            null: -profile.r#fn * self.scored_windows() as f64,
            perfect: self.perfect(profile),
            windows: self.scored_windows(),
            ..Default::default()
        };
        let mut fp_sum = 0.0;
        for (i, role) in self.roles.iter().enumerate() {
            if !detected(i) {
                continue;
            }
            match *role {
                Role::Probation => {}
                Role::Inside { window, unit } => {
                    let b = &mut best[window];
                    *b = Some(b.map_or(unit, |x: f64| x.max(unit)));
                }
                Role::Outside { unit } => {
                    out.false_positives += 1;
                    fp_sum += profile.fp * unit;
                }
            }
        }
        let mut window_sum = 0.0;
        for (b, scored) in best.iter().zip(&self.scored) {
            if !scored {
                continue;
            }
            match b {
                Some(unit) => {
                    out.caught += 1;
                    window_sum += profile.tp * unit;
                }
                None => window_sum -= profile.r#fn,
            }
        }
        out.raw = window_sum + fp_sum;
        out
    }
}

/// The threshold that maximises the summed raw score of `files` (labels and
/// one anomaly score per row) under `profile`, and that score. Rows detect
/// at `score >= threshold`; `f64::INFINITY` means "detect nothing" (the null
/// score), which wins ties with any threshold that does no better.
/// Non-finite scores are never detections.
pub fn best_threshold(files: &[(&FileLabels, &[f64])], profile: &Profile) -> (f64, f64) {
    // Every scored row, highest score first: lowering the threshold past a
    // score turns exactly the rows with that score into detections.
    let mut rows: Vec<(f64, usize, usize)> = Vec::new();
    for (f, (labels, scores)) in files.iter().enumerate() {
        for (i, role) in labels.roles.iter().enumerate() {
            let s = scores.get(i).copied().unwrap_or(f64::NAN);
            if *role != Role::Probation && s.is_finite() {
                rows.push((s, f, i));
            }
        }
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut best: Vec<Vec<Option<f64>>> =
        files.iter().map(|(l, _)| vec![None; l.windows.len()]).collect();
    let null: f64 =
        files.iter().map(|(l, _)| -profile.r#fn * l.scored_windows() as f64).sum::<f64>();
    let mut total = null;
    let mut winner = (f64::INFINITY, null);
    let mut k = 0;
    while k < rows.len() {
        let threshold = rows[k].0;
        while k < rows.len() && rows[k].0 == threshold {
            let (_, f, i) = rows[k];
            match files[f].0.roles[i] {
                Role::Probation => {}
                Role::Inside { window, unit } => {
                    let b = &mut best[f][window];
                    match *b {
                        None => total += profile.r#fn + profile.tp * unit,
                        Some(x) if unit > x => total += profile.tp * (unit - x),
                        Some(_) => {}
                    }
                    *b = Some(b.map_or(unit, |x| x.max(unit)));
                }
                Role::Outside { unit } => total += profile.fp * unit,
            }
            k += 1;
        }
        if total > winner.1 {
            winner = (threshold, total);
        }
    }
    winner
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: Profile = PROFILES[0];
    const LOW_FP: Profile = PROFILES[1];
    const LOW_FN: Profile = PROFILES[2];

    /// 1000 rows (probation 150), one window on rows 400..=499.
    fn one_window() -> FileLabels {
        FileLabels::from_rows(1000, &[RowWindow { first: 400, last: 499 }])
    }

    fn only(rows: &'static [usize]) -> impl Fn(usize) -> bool {
        move |i| rows.contains(&i)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn probation_is_15_percent_capped_at_750() {
        assert_eq!(probation_rows(1000), 150);
        assert_eq!(probation_rows(4032), 604);
        assert_eq!(probation_rows(5000), 750);
        assert_eq!(probation_rows(22_695), 750);
        assert_eq!(probation_rows(3), 0);
    }

    #[test]
    fn scaled_sigmoid_matches_nab_anchor_points() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614).abs() < 1e-6);
        assert!((scaled_sigmoid(-0.5) - 0.848_283).abs() < 1e-6);
        assert!(close(scaled_sigmoid(0.0), 0.0));
        assert!((scaled_sigmoid(1.0) + 0.986_614).abs() < 1e-6);
        assert_eq!(scaled_sigmoid(3.0), -1.0);
    }

    #[test]
    fn detection_on_a_windows_first_row_earns_the_full_tp_weight() {
        let o = one_window().score(only(&[400]), &STANDARD);
        assert!(close(o.raw, 1.0), "{o:?}");
        assert_eq!((o.caught, o.windows, o.false_positives), (1, 1, 0));
        assert!(close(o.normalised().expect("has a window"), 100.0));
    }

    #[test]
    fn a_late_detection_earns_little_and_only_the_first_counts() {
        let labels = one_window();
        let last = labels.score(only(&[499]), &STANDARD).raw;
        assert!(last > 0.0 && last < 0.05, "{last}");
        let middle = labels.score(only(&[450]), &STANDARD).raw;
        assert!(middle > last && middle < 1.0, "{middle}");
        // Extra detections later in the same window change nothing.
        let both = labels.score(only(&[400, 450, 499]), &STANDARD);
        assert!(close(both.raw, 1.0), "{both:?}");
        assert_eq!(both.false_positives, 0);
    }

    #[test]
    fn a_missed_window_costs_the_fn_weight() {
        let labels = one_window();
        let o = labels.score(|_| false, &STANDARD);
        assert!(close(o.raw, -1.0));
        assert!(close(o.normalised().expect("has a window"), 0.0));
        assert!(close(labels.score(|_| false, &LOW_FN).raw, -2.0));
    }

    #[test]
    fn a_false_positive_far_from_windows_costs_the_fp_weight() {
        let labels = one_window();
        // Before any window (after probation): the full fp weight.
        let before = labels.score(only(&[200, 400]), &STANDARD);
        assert!(close(before.raw, 1.0 - 0.11), "{before:?}");
        assert_eq!(before.false_positives, 1);
        // Three window widths after it: the full fp weight too.
        let far = labels.score(only(&[400, 499 + 3 * 99]), &LOW_FP);
        assert!(close(far.raw, 1.0 - 0.22), "{far:?}");
        // Just after the window: nearly free (NAB tolerates late alarms).
        let near = labels.score(only(&[400, 500]), &STANDARD).raw - 1.0;
        assert!(near < 0.0 && near > -0.11 * 0.05, "{near}");
    }

    #[test]
    fn probation_rows_are_ignored() {
        let labels = one_window();
        let o = labels.score(only(&[0, 10, 149]), &STANDARD);
        assert!(close(o.raw, -1.0));
        assert_eq!(o.false_positives, 0);
        // A window wholly inside probation is not scored at all.
        let early = FileLabels::from_rows(1000, &[RowWindow { first: 10, last: 20 }]);
        let o = early.score(|_| false, &STANDARD);
        assert_eq!(o.windows, 0);
        assert!(close(o.raw, 0.0));
        assert_eq!(o.normalised(), None);
    }

    #[test]
    fn windows_from_timestamps_are_inclusive_and_skip_empty_ones() {
        let ts: Vec<i64> = (0..100).map(|i| i * 300).collect();
        let labels =
            FileLabels::from_timestamps(&ts, &[(600, 1500), (1501, 1799), (40_000, 40_100)]);
        assert_eq!(labels.windows(), [RowWindow { first: 2, last: 5 }]);
    }

    #[test]
    fn null_scores_0_and_perfect_100_through_the_threshold_sweep() {
        let a = one_window();
        let b = FileLabels::from_rows(
            2000,
            &[RowWindow { first: 500, last: 599 }, RowWindow { first: 1500, last: 1549 }],
        );
        let zeros_a = vec![0.0; a.rows()];
        let zeros_b = vec![0.0; b.rows()];
        for profile in &PROFILES {
            let (t, raw) = best_threshold(&[(&a, &zeros_a), (&b, &zeros_b)], profile);
            // Flagging every row is far worse than flagging none.
            assert_eq!(t, f64::INFINITY);
            assert!(close(raw, -3.0 * profile.r#fn));
        }
        let mut perfect_a = vec![0.0; a.rows()];
        perfect_a[400] = 1.0;
        let mut perfect_b = vec![0.0; b.rows()];
        perfect_b[500] = 1.0;
        perfect_b[1500] = 1.0;
        for profile in &PROFILES {
            let (t, raw) = best_threshold(&[(&a, &perfect_a), (&b, &perfect_b)], profile);
            assert_eq!(t, 1.0);
            let mut total = a.score(|i| perfect_a[i] >= t, profile);
            total += b.score(|i| perfect_b[i] >= t, profile);
            assert!(close(raw, total.raw));
            assert!(close(total.normalised().expect("windows"), 100.0), "{total:?}");
        }
    }

    /// The sweep must agree with scoring every candidate threshold directly.
    #[test]
    fn threshold_sweep_agrees_with_brute_force() {
        let a = one_window();
        let b = FileLabels::from_rows(
            600,
            &[RowWindow { first: 200, last: 259 }, RowWindow { first: 400, last: 401 }],
        );
        // A deterministic scramble with ties and high scores both inside and
        // outside windows.
        let scramble = |n: usize, salt: u64| -> Vec<f64> {
            (0..n as u64)
                .map(|i| ((i.wrapping_mul(2_654_435_761) ^ salt) % 97) as f64 / 96.0)
                .collect()
        };
        let sa = scramble(a.rows(), 7);
        let sb = scramble(b.rows(), 13);
        for profile in &PROFILES {
            let (t, raw) = best_threshold(&[(&a, &sa), (&b, &sb)], profile);
            let mut candidates: Vec<f64> = sa.iter().chain(&sb).copied().collect();
            candidates.push(f64::INFINITY);
            let brute = candidates
                .iter()
                .map(|&c| {
                    a.score(|i| sa[i] >= c, profile).raw + b.score(|i| sb[i] >= c, profile).raw
                })
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(close(raw, brute), "{}: sweep {raw} brute {brute}", profile.name);
            let at_t = a.score(|i| sa[i] >= t, profile).raw + b.score(|i| sb[i] >= t, profile).raw;
            assert!(close(raw, at_t));
        }
    }
}
