//! `MovingWindow`: the last `cap` values with O(1) mean and variance, for
//! detectors that keep a history (the t-test, z-score and level/spread
//! detectors use it; plugin authors may too).
//!
//! Adds and removes use Welford's updates (as the Kapacitor guide's
//! `MovingStats`), but every `cap` removals the mean and sum of squares are
//! recomputed exactly with a two-pass sum over the window, so rounding error
//! cannot accumulate over a long stream. The recomputation costs O(cap) once
//! per `cap` removals: amortized O(1) per value.
//!
//! Values live in a fixed ring of slots and [`MovingWindow::write`] saves
//! them in slot order, so adding k values changes only k slots of the saved
//! bytes (plus a 48-byte header): a host that persists only changed chunks
//! of state (tickwatch does) then writes in proportion to the new data, not
//! to the whole history.

use crate::codec::{ByteReader, ByteWriter, CodecError};

/// Bytes [`MovingWindow::write`] puts before the slots.
pub const HEADER_BYTES: usize = 6 * 8;

/// The finite values of `window`, borrowed when they all are. The host sends
/// finite values only; detectors use this to stay total for direct callers.
pub fn finite(window: &[f64]) -> std::borrow::Cow<'_, [f64]> {
    if window.iter().all(|x| x.is_finite()) {
        std::borrow::Cow::Borrowed(window)
    } else {
        std::borrow::Cow::Owned(window.iter().copied().filter(|x| x.is_finite()).collect())
    }
}

/// A moving window of the last `cap` values (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct MovingWindow {
    cap: usize,
    /// Ring slots; grows to `cap`, then the oldest slot is overwritten.
    slots: Vec<f64>,
    /// Slot of the oldest value once the ring is full (0 while filling).
    head: usize,
    mean: f64,
    /// Sum of squared deviations from the mean.
    m2: f64,
    removals_since_exact: usize,
}

impl MovingWindow {
    /// An empty window holding at most `cap` values.
    pub fn new(cap: usize) -> Self {
        Self { cap, slots: Vec::new(), head: 0, mean: 0.0, m2: 0.0, removals_since_exact: 0 }
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The most values held.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Mean of the values held (0 when empty).
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Sample variance (ddof = 1); 0 for fewer than two values, as the guide.
    pub fn variance(&self) -> f64 {
        if self.slots.len() < 2 { 0.0 } else { self.m2 / (self.slots.len() - 1) as f64 }
    }

    /// Empties the window (keeps its capacity).
    pub fn clear(&mut self) {
        *self = Self::new(self.cap);
    }

    /// Pushes every value of `xs`, in order.
    pub fn extend(&mut self, xs: &[f64]) {
        xs.iter().for_each(|&x| self.push(x));
    }

    /// Adds `x`, dropping the oldest value when full.
    pub fn push(&mut self, x: f64) {
        if self.slots.len() < self.cap {
            self.slots.push(x);
        } else {
            let old = self.slots[self.head];
            self.remove(old);
            self.slots[self.head] = x;
            self.head = (self.head + 1) % self.cap;
            if self.removals_since_exact >= self.cap {
                // Exact over the slots, x included.
                self.recompute();
                return;
            }
        }
        let n = self.slots.len() as f64;
        let d = x - self.mean;
        self.mean += d / n;
        self.m2 += d * (x - self.mean);
    }

    /// Takes `old` out of the statistics; the slots still hold `cap` values,
    /// the caller overwrites the oldest with the new one.
    fn remove(&mut self, old: f64) {
        let n = self.slots.len() - 1;
        if n == 0 {
            self.mean = 0.0;
            self.m2 = 0.0;
            return;
        }
        self.removals_since_exact += 1;
        let old_mean = self.mean;
        self.mean = old_mean - (old - old_mean) / n as f64;
        self.m2 -= (old - old_mean) * (old - self.mean);
        if self.m2 < 0.0 {
            self.m2 = 0.0;
        }
    }

    /// Exact two-pass mean and sum of squares over the current values.
    fn recompute(&mut self) {
        self.removals_since_exact = 0;
        let (mean, var) = mean_var(&self.slots);
        self.mean = mean;
        self.m2 = var * (self.slots.len().saturating_sub(1)) as f64;
    }

    /// Saves the window (header, then the slots in ring order).
    pub fn write(&self, w: &mut ByteWriter) {
        w.u64(self.cap as u64)
            .f64(self.mean)
            .f64(self.m2)
            .u64(self.removals_since_exact as u64)
            .u64(self.head as u64)
            .u64(self.slots.len() as u64);
        for v in &self.slots {
            w.f64(*v);
        }
    }

    /// Reads a window saved by [`MovingWindow::write`], refusing
    /// inconsistent headers.
    pub fn read(r: &mut ByteReader<'_>) -> Result<Self, CodecError> {
        let cap = r.u64()? as usize;
        let mean = r.f64()?;
        let m2 = r.f64()?;
        let removals_since_exact = r.u64()? as usize;
        let head = r.u64()? as usize;
        let n = r.len(8)?;
        if cap < 2 || n > cap || (head != 0 && (n != cap || head >= cap)) {
            return Err(r.error(&format!("history holds {n} values with size {cap}, head {head}")));
        }
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            slots.push(r.f64()?);
        }
        Ok(Self { cap, slots, head, mean, m2, removals_since_exact })
    }
}

/// Mean and sample variance (ddof 1; 0 for one value) of a slice (0, 0 when
/// empty).
///
/// Constant data gives its value and exactly 0: a plain `sum / n` of 300
/// copies of 0.1 is not 0.1, and a zero-variance baseline would then see a
/// "certain change" in rounding noise. Otherwise two passes, the mean
/// corrected by the mean residual (Chan, Golub & LeVeque's corrected
/// two-pass algorithm).
pub fn mean_var(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let (lo, hi) =
        xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if lo == hi {
        return (lo, 0.0);
    }
    let n = xs.len() as f64;
    let first = xs.iter().sum::<f64>() / n;
    let residual: f64 = xs.iter().map(|x| x - first).sum();
    let mean = first + residual / n;
    // NaN in the data leaves lo > hi; clamp only a real range.
    let mean = if lo <= hi { mean.clamp(lo, hi) } else { mean };
    let ss: f64 = xs.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, ss / (n - 1.0))
}

/// A baseline of normal values: a [`MovingWindow`] history that only
/// windows judged normal join, with an optional rebaseline: after
/// `rebaseline` consecutive anomalous windows (0 = never) their values become
/// the new history, so a lasting level shift stops alarming. Also counts
/// windows seen, anomalous and rebaselines, for `describe`.
///
/// Used by the shipped `zscore` and `levelspread` detectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    history: MovingWindow,
    /// The values of the current run of anomalous windows (only filled when
    /// `rebaseline > 0`).
    candidate: MovingWindow,
    rebaseline: u64,
    /// Length of the current run of anomalous windows.
    streak: u64,
    windows_seen: u64,
    windows_anomalous: u64,
    rebaselines: u64,
}

impl Baseline {
    /// An empty baseline of `size` values.
    pub fn new(size: usize, rebaseline: u64) -> Self {
        Self {
            history: MovingWindow::new(size),
            candidate: MovingWindow::new(size),
            rebaseline,
            streak: 0,
            windows_seen: 0,
            windows_anomalous: 0,
            rebaselines: 0,
        }
    }

    /// The history of normal values.
    pub fn history(&self) -> &MovingWindow {
        &self.history
    }

    /// The values of the current anomalous run.
    pub fn candidate(&self) -> &MovingWindow {
        &self.candidate
    }

    /// The rebaseline setting (0 = never).
    pub fn rebaseline(&self) -> u64 {
        self.rebaseline
    }

    /// Consecutive anomalous windows so far.
    pub fn streak(&self) -> u64 {
        self.streak
    }

    /// Windows scored.
    pub fn windows_seen(&self) -> u64 {
        self.windows_seen
    }

    /// Windows found anomalous.
    pub fn windows_anomalous(&self) -> u64 {
        self.windows_anomalous
    }

    /// Rebaselines done.
    pub fn rebaselines(&self) -> u64 {
        self.rebaselines
    }

    /// Seeds an empty history with a first window (not scored).
    pub fn seed(&mut self, window: &[f64]) {
        self.history.extend(window);
    }

    /// Takes a scored window into the state; true if it rebaselined.
    pub fn absorb(&mut self, window: &[f64], anomalous: bool) -> bool {
        self.windows_seen += 1;
        if !anomalous {
            self.history.extend(window);
            self.streak = 0;
            if !self.candidate.is_empty() {
                self.candidate.clear();
            }
            return false;
        }
        self.windows_anomalous += 1;
        if self.rebaseline == 0 {
            return false;
        }
        self.streak += 1;
        self.candidate.extend(window);
        if self.streak < self.rebaseline {
            return false;
        }
        let fresh = MovingWindow::new(self.history.cap());
        self.history = std::mem::replace(&mut self.candidate, fresh);
        self.streak = 0;
        self.rebaselines += 1;
        true
    }

    /// Saves: `u64` windows seen, anomalous, rebaselines, streak; the
    /// history ring; the candidate ring. Fixed-size fields first, so a window
    /// that joins the history changes only its slots and the headers.
    pub fn write(&self, w: &mut ByteWriter) {
        w.u64(self.windows_seen).u64(self.windows_anomalous).u64(self.rebaselines).u64(self.streak);
        self.history.write(w);
        self.candidate.write(w);
    }

    /// Replaces the state with one saved by [`Baseline::write`], refusing
    /// a different size or a run this `rebaseline` cannot produce.
    pub fn read(&mut self, r: &mut ByteReader<'_>) -> Result<(), String> {
        let windows_seen = r.u64()?;
        let windows_anomalous = r.u64()?;
        let rebaselines = r.u64()?;
        let streak = r.u64()?;
        let history = MovingWindow::read(r)?;
        let candidate = MovingWindow::read(r)?;
        let size = self.history.cap();
        if history.cap() != size || candidate.cap() != size {
            return Err(format!(
                "state was saved with size {}, this detector has size {size}",
                history.cap()
            ));
        }
        let streak_ok = if self.rebaseline == 0 { streak == 0 } else { streak < self.rebaseline };
        if !streak_ok || (streak == 0) != candidate.is_empty() {
            return Err(format!(
                "state has a run of {streak} anomalous windows holding {} values, which \
                 rebaseline {} cannot produce",
                candidate.len(),
                self.rebaseline
            ));
        }
        *self = Self {
            history,
            candidate,
            rebaseline: self.rebaseline,
            streak,
            windows_seen,
            windows_anomalous,
            rebaselines,
        };
        Ok(())
    }

    /// The usual description: `n`, `mean`, `stddev`, `size`, `alpha`,
    /// `rebaseline`, `anomalous_run`, `rebaselines`, `windows_seen`,
    /// `windows_anomalous`.
    pub fn describe(&self, alpha: f64) -> crate::Summary {
        crate::Summary::new()
            .int("n", self.history.len() as i64)
            .num("mean", self.history.mean())
            .num("stddev", self.history.variance().sqrt())
            .int("size", self.history.cap() as i64)
            .num("alpha", alpha)
            .int("rebaseline", self.rebaseline as i64)
            .int("anomalous_run", self.streak as i64)
            .int("rebaselines", self.rebaselines as i64)
            .int("windows_seen", self.windows_seen as i64)
            .int("windows_anomalous", self.windows_anomalous as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        (m, xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0))
    }

    #[test]
    fn tracks_the_last_cap_values() {
        let mut w = MovingWindow::new(3);
        w.extend(&[1.0, 2.0, 3.0, 10.0, 20.0]);
        assert_eq!(w.len(), 3);
        let (m, v) = naive(&[3.0, 10.0, 20.0]);
        assert!((w.mean() - m).abs() < 1e-12);
        assert!((w.variance() - v).abs() < 1e-9);
        w.clear();
        assert!(w.is_empty() && w.cap() == 3 && w.mean() == 0.0);
    }

    #[test]
    fn constant_data_has_its_value_as_mean_and_zero_variance() {
        assert_eq!(mean_var(&[0.1; 300]), (0.1, 0.0));
        assert_eq!(mean_var(&[7.25]), (7.25, 0.0));
        let mut w = MovingWindow::new(10);
        w.extend(&[0.1; 35]); // several exact recomputations
        assert_eq!((w.mean(), w.variance()), (0.1, 0.0));
    }

    #[test]
    fn stays_accurate_over_a_long_stream_with_a_large_offset() {
        let mut w = MovingWindow::new(500);
        let mut all = Vec::new();
        let mut s: u64 = 12345;
        for _ in 0..200_000 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let x = 1e6 + ((s >> 11) as f64 / (1u64 << 53) as f64) * 1e-3;
            w.push(x);
            all.push(x);
        }
        let (m, v) = mean_var(&all[all.len() - 500..]);
        assert!(((w.mean() - m) / m).abs() < 1e-14);
        assert!(((w.variance() - v) / v).abs() < 1e-6, "{} vs {}", w.variance(), v);
    }

    #[test]
    fn save_load_is_bit_exact() {
        let mut w = MovingWindow::new(4);
        w.extend(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.7]);
        let mut bw = ByteWriter::new();
        w.write(&mut bw);
        let bytes = bw.finish();
        let mut r = ByteReader::new(&bytes);
        let back = MovingWindow::read(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(back, w);
    }

    #[test]
    fn adding_k_values_changes_only_k_slots_of_the_saved_bytes() {
        let bytes = |w: &MovingWindow| {
            let mut bw = ByteWriter::new();
            w.write(&mut bw);
            bw.finish()
        };
        let mut w = MovingWindow::new(3600);
        for i in 0..5000 {
            w.push(220.0 + (i % 17) as f64 * 0.1);
        }
        let before = bytes(&w);
        for i in 0..300 {
            w.push(219.0 + (i % 13) as f64 * 0.1);
        }
        let after = bytes(&w);
        assert_eq!(before.len(), after.len());
        let changed: Vec<usize> = (0..3600)
            .filter(|i| {
                let s = HEADER_BYTES + i * 8;
                before[s..s + 8] != after[s..s + 8]
            })
            .collect();
        assert!(changed.len() <= 300, "{} slots changed", changed.len());
        assert_eq!(changed.first(), Some(&1400));
        assert_eq!(changed.last(), Some(&1699));
    }
}
