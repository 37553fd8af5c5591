//! `Windows<H>`: a [`History`] that also remembers, for each window it took
//! in, that window's count, mean and sample variance, for as long as the
//! window's values are in a history of `cap` values. From them it gives
//! the two halves of a one-way analysis of variance over the history's
//! windows: how far window *means* spread ([`Windows::between`]) and how
//! much values spread *within* a window ([`Windows::within`]).
//!
//! Why (issue 9): real metrics are autocorrelated. A history of values
//! treated as independent says the mean of `n` values varies by `s/√n`;
//! on a series with a daily cycle or a slow drift, the means of past
//! windows actually spread by about `s`, so every window looked like a
//! change (p-values near 0 on half of all windows). The spread of past
//! window means, in units of one value's variance (the between-window
//! mean square `Σ nᵢ (mᵢ − m̄)² / (K − 1)`), is `s²` for independent values
//! and grows with the autocorrelation: it is the standard error a window
//! mean really has. Likewise a short window's own variance is compared
//! with the spread inside past windows (the within-window mean square),
//! not with the spread of the whole history across a cycle.

use std::collections::VecDeque;
use std::ops::Deref;

use super::{History, mean_var};
use crate::Summary;
use crate::changes::ChangeWriter;
use crate::codec::{ByteReader, ByteWriter, CodecError};

/// One window taken in: count, mean, sample variance (0 for one value).
#[derive(Debug, Clone, Copy, PartialEq)]
struct WindowStats {
    n: u64,
    mean: f64,
    var: f64,
}

/// A history `H` plus the statistics of the windows it took in, kept while
/// their values are among the last `cap` (see the module docs). At most
/// `cap` windows are kept (24 bytes each).
#[derive(Debug, Clone, PartialEq)]
pub struct Windows<H> {
    inner: H,
    cap: u64,
    windows: VecDeque<WindowStats>,
    /// Values of the windows kept.
    values: u64,
    /// Windows kept at the last checkpoint, `None` before one (or after a
    /// read), and whether any window came or went since.
    saved: Saved,
}

/// What a [`Windows`] held at its last checkpoint. Bookkeeping, not state:
/// compares equal to any other.
#[derive(Debug, Clone, Copy, Default)]
struct Saved {
    windows: Option<usize>,
    changed: bool,
}

impl PartialEq for Saved {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<H> Windows<H> {
    /// `inner`, remembering the windows behind the last `cap` values.
    pub fn new(inner: H, cap: usize) -> Self {
        Self {
            inner,
            cap: cap.max(1) as u64,
            windows: VecDeque::new(),
            values: 0,
            saved: Saved::default(),
        }
    }

    /// Windows remembered.
    pub fn windows(&self) -> usize {
        self.windows.len()
    }

    /// The between-window mean square `Σ nᵢ (mᵢ − m̄)² / (K − 1)` over the
    /// `K` windows remembered (`m̄` their count-weighted mean), and its
    /// degrees of freedom `K − 1`; `None` with fewer than two windows. For
    /// independent values of variance `σ²` its expectation is `σ²`.
    pub fn between(&self) -> Option<(f64, f64)> {
        let k = self.windows.len();
        if k < 2 || self.values == 0 {
            return None;
        }
        let total = self.values as f64;
        let grand = self.windows.iter().map(|w| w.n as f64 * w.mean).sum::<f64>() / total;
        let ss: f64 = self.windows.iter().map(|w| w.n as f64 * (w.mean - grand).powi(2)).sum();
        let ms = ss / (k - 1) as f64;
        ms.is_finite().then_some((ms, (k - 1) as f64))
    }

    /// The within-window mean square `Σ (nᵢ − 1) vᵢ / Σ (nᵢ − 1)` and its
    /// degrees of freedom `Σ (nᵢ − 1)`; `None` without a window of two or
    /// more values.
    pub fn within(&self) -> Option<(f64, f64)> {
        let dof: u64 = self.windows.iter().map(|w| w.n - 1).sum();
        if dof == 0 {
            return None;
        }
        let ss: f64 = self.windows.iter().map(|w| (w.n - 1) as f64 * w.var).sum();
        let ms = ss / dof as f64;
        ms.is_finite().then_some((ms, dof as f64))
    }

    /// The `q`-quantile (0 < q < 1) of the windows' standardised
    /// deviations `√nᵢ · |mᵢ − m̄|` from their count-weighted mean `m̄`;
    /// `None` with fewer than `1/(1 − q)` windows (the 0.99-quantile of
    /// fewer than 100 windows would be their largest). For independent normal values
    /// of variance `σ²`, the 0.99-quantile is about `2.576 σ`; a series
    /// whose windows burst now and then has a far larger one.
    pub fn deviation_quantile(&self, q: f64) -> Option<f64> {
        let k = self.windows.len();
        if k < 2 || self.values == 0 || (k as f64) * (1.0 - q) < 1.0 {
            return None;
        }
        let grand =
            self.windows.iter().map(|w| w.n as f64 * w.mean).sum::<f64>() / self.values as f64;
        let mut d: Vec<f64> =
            self.windows.iter().map(|w| (w.n as f64).sqrt() * (w.mean - grand).abs()).collect();
        let i = ((q.clamp(0.0, 1.0) * (d.len() - 1) as f64).round() as usize).min(d.len() - 1);
        let (_, x, _) = d.select_nth_unstable_by(i, f64::total_cmp);
        x.is_finite().then_some(*x)
    }

    /// The windows' means about a centre `c` other than their own mean (a
    /// baseline that lags them, such as an EWMA) that is itself an
    /// estimate with variance `c_var · σ²`: with `gᵢ = nᵢ / (1 + nᵢ c_var)`,
    /// the mean square `Σ gᵢ (mᵢ − c)² / K`, the largest `√gᵢ · |mᵢ − c|`,
    /// and `K`; `None` without windows. For independent values of variance
    /// `σ²` around `c` (and `c` independent of them) the mean square's
    /// expectation is `σ²`.
    pub fn deviations_from(&self, c: f64, c_var: f64) -> Option<(f64, f64, usize)> {
        let k = self.windows.len();
        if k == 0 {
            return None;
        }
        let c_var = c_var.max(0.0);
        let d = self.windows.iter().map(|w| (w.n as f64 / (1.0 + w.n as f64 * c_var), w.mean - c));
        let ms = d.clone().map(|(g, d)| g * d * d).sum::<f64>() / k as f64;
        let largest = d.map(|(g, d)| g.sqrt() * d.abs()).fold(0.0, f64::max);
        (ms.is_finite() && largest.is_finite()).then_some((ms, largest, k))
    }

    /// The largest of the windows' standardised deviations
    /// `√nᵢ · |mᵢ − m̄|` from their count-weighted mean, and how many
    /// windows it is the largest of; `None` with fewer than two windows.
    /// For independent normal values of variance `σ²` it is about `σ`
    /// times the median largest of as many absolute standard normals
    /// (`tickwatch_stats::largest_normal`); a series whose windows burst
    /// now and then has a far larger one.
    pub fn deviation_largest(&self) -> Option<(f64, usize)> {
        let k = self.windows.len();
        if k < 2 || self.values == 0 {
            return None;
        }
        let grand =
            self.windows.iter().map(|w| w.n as f64 * w.mean).sum::<f64>() / self.values as f64;
        let x = self
            .windows
            .iter()
            .map(|w| (w.n as f64).sqrt() * (w.mean - grand).abs())
            .fold(0.0, f64::max);
        x.is_finite().then_some((x, k))
    }

    /// The windows' `ln` variances `uᵢ = ln max(vᵢ, floor)` (`floor` > 0)
    /// over the remembered windows of two or more values: their mean,
    /// sample standard deviation, largest `|uᵢ − ū|` and count; `None` with
    /// fewer than two. The pieces of [`Windows::log_spread`] for a caller
    /// that chooses its own tail rule.
    pub fn log_spread_deviations(&self, floor: f64) -> Option<(f64, f64, f64, usize)> {
        let floor = if floor > 0.0 { floor } else { f64::MIN_POSITIVE };
        let u: Vec<f64> =
            self.windows.iter().filter(|w| w.n >= 2).map(|w| w.var.max(floor).ln()).collect();
        if u.len() < 2 {
            return None;
        }
        let (mean, var) = mean_var(&u);
        let largest = u.iter().map(|x| (x - mean).abs()).fold(0.0, f64::max);
        let sd = var.sqrt();
        (mean.is_finite() && sd.is_finite() && largest.is_finite()).then_some((
            mean,
            sd,
            largest,
            u.len(),
        ))
    }

    /// The spread of the windows' spreads: over the remembered windows of
    /// two or more values, `uᵢ = ln max(vᵢ, floor)` (`floor` > 0), their
    /// mean, sample standard deviation and, with 100 or more such windows,
    /// the 99th percentile of `|uᵢ − ū|` over 2.576 if it is larger, and
    /// the degrees of freedom (windows − 1); `None` with fewer than two.
    /// What a window's `ln` variance is compared with when its spread is
    /// judged by what the spreads of past windows did.
    pub fn log_spread(&self, floor: f64) -> Option<(f64, f64, f64)> {
        let floor = if floor > 0.0 { floor } else { f64::MIN_POSITIVE };
        let u: Vec<f64> =
            self.windows.iter().filter(|w| w.n >= 2).map(|w| w.var.max(floor).ln()).collect();
        let k = u.len();
        if k < 2 {
            return None;
        }
        let (mean, var) = mean_var(&u);
        let mut sd = var.sqrt();
        if k >= 100 {
            let mut d: Vec<f64> = u.iter().map(|x| (x - mean).abs()).collect();
            let i = ((0.99 * (k - 1) as f64).round() as usize).min(k - 1);
            let (_, q, _) = d.select_nth_unstable_by(i, f64::total_cmp);
            sd = sd.max(*q / 2.576);
        }
        (mean.is_finite() && sd.is_finite()).then_some((mean, sd, (k - 1) as f64))
    }

    /// [`History::extend`] for a caller that already has
    /// `mean_var(values)` (`window::mean_var`, which it must be: it is
    /// what the window is remembered by), saving a second pass over them.
    pub fn extend_with_stats(&mut self, values: &[f64], mean_var: (f64, f64))
    where
        H: History,
    {
        self.remember_stats(values.len(), mean_var);
        self.inner.extend(values);
    }

    fn remember(&mut self, values: &[f64]) {
        if !values.is_empty() {
            self.remember_stats(values.len(), mean_var(values));
        }
    }

    fn remember_stats(&mut self, n: usize, (mean, var): (f64, f64)) {
        if n == 0 {
            return;
        }
        let n = n as u64;
        self.saved.changed = true;
        self.windows.push_back(WindowStats { n, mean, var });
        self.values += n;
        // Keep the windows whose values are among the last `cap`.
        while let Some(front) = self.windows.front() {
            if self.values - front.n >= self.cap {
                self.values -= front.n;
                self.windows.pop_front();
            } else {
                break;
            }
        }
    }
}

impl<H> Deref for Windows<H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.inner
    }
}

impl<H: History> History for Windows<H> {
    fn fresh(&self) -> Self {
        Self::new(self.inner.fresh(), self.cap as usize)
    }

    fn count(&self) -> u64 {
        self.inner.count()
    }

    fn extend(&mut self, values: &[f64]) {
        self.remember(values);
        self.inner.extend(values);
    }

    /// `H`'s bytes, then `u64` windows kept and, for each, `u64` count,
    /// `f64` mean and variance.
    fn write(&self, w: &mut ByteWriter) {
        self.inner.write(w);
        w.u64(self.windows.len() as u64);
        for s in &self.windows {
            w.u64(s.n).f64(s.mean).f64(s.var);
        }
    }

    /// `H`'s changes, then the windows: skipped if none came or went,
    /// otherwise written whole (24 bytes a window: a few hundred bytes for
    /// windows of hundreds of values).
    fn write_changes(&self, w: &mut ChangeWriter) {
        self.inner.write_changes(w);
        let k = self.windows.len();
        if w.stable() && !self.saved.changed && self.saved.windows == Some(k) {
            w.skip(8 + 24 * k);
            return;
        }
        w.write(|b| {
            b.reserve(8 + 24 * k).u64(k as u64);
            for s in &self.windows {
                b.u64(s.n).f64(s.mean).f64(s.var);
            }
        });
        if self.saved.windows != Some(k) {
            w.moved();
        }
    }

    fn checkpoint(&mut self) {
        self.inner.checkpoint();
        self.saved = Saved { windows: Some(self.windows.len()), changed: false };
    }

    fn read_like(&self, r: &mut ByteReader<'_>) -> Result<Self, CodecError> {
        let inner = self.inner.read_like(r)?;
        let at = r.clone();
        let k = r.len(24)?;
        let mut out = Self::new(inner, self.cap as usize);
        for _ in 0..k {
            let (n, mean, var) = (r.u64()?, r.f64()?, r.f64()?);
            if n == 0 || !mean.is_finite() || !(var >= 0.0 && var.is_finite()) {
                return Err(at.error(&format!("window of {n} values, mean {mean}, variance {var}")));
            }
            out.values = out.values.saturating_add(n);
            out.windows.push_back(WindowStats { n, mean, var });
        }
        if k as u64 > self.cap {
            return Err(at.error(&format!("{k} windows kept for {} values", self.cap)));
        }
        Ok(out)
    }

    fn mismatch(&self, saved: &Self) -> Option<String> {
        self.inner.mismatch(&saved.inner)
    }

    fn mean_variance(&self) -> Option<(f64, f64)> {
        self.inner.mean_variance()
    }

    fn windows(&self) -> Option<u64> {
        Some(self.windows.len() as u64)
    }

    fn variance_floor(&self) -> f64 {
        self.inner.variance_floor()
    }

    /// `H`'s figures, then `windows` (windows remembered).
    fn describe(&self, summary: Summary) -> Summary {
        self.inner.describe(summary).int("windows", self.windows.len() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::MovingWindow;

    #[test]
    fn one_way_anova_of_the_windows_behind_the_last_cap_values() {
        let mut h = Windows::new(MovingWindow::new(6), 6);
        assert_eq!((h.between(), h.within()), (None, None));
        h.extend(&[100.0, 100.0, 100.0]); // pushed out below
        h.extend(&[1.0, 3.0]);
        h.extend(&[5.0, 7.0]);
        h.extend(&[2.0, 4.0]);
        assert_eq!(h.windows(), 3);
        // Means 2, 6, 3 (grand mean 11/3), each of 2 values.
        let (b, dof) = h.between().unwrap();
        let g: f64 = 11.0 / 3.0;
        let want = 2.0 * ((2.0_f64 - g).powi(2) + (6.0 - g).powi(2) + (3.0 - g).powi(2)) / 2.0;
        assert!((b - want).abs() < 1e-12 && dof == 2.0, "{b} {dof}");
        assert_eq!(h.within(), Some((2.0, 3.0)));
        assert_eq!(h.fresh().windows(), 0);
    }

    /// Round 3's tail statistics, by hand on three two-value windows.
    #[test]
    fn largest_deviations_about_the_grand_mean_a_centre_and_in_ln_variance() {
        let mut h = Windows::new(MovingWindow::new(6), 6);
        assert_eq!((h.deviation_largest(), h.deviations_from(0.0, 0.0)), (None, None));
        h.extend(&[1.0, 3.0]); // mean 2, variance 2
        h.extend(&[5.0, 7.0]); // mean 6, variance 2
        h.extend(&[2.0, 6.0]); // mean 4, variance 8
        // Grand mean 4: the largest standardised deviation is √2 · 2.
        let (x, k) = h.deviation_largest().unwrap();
        assert!((x - 2.0 * 2f64.sqrt()).abs() < 1e-12 && k == 3, "{x} {k}");
        // About 5: deviations −3, 1, −1 → mean square 2 · 11 / 3.
        let (ms, largest, k) = h.deviations_from(5.0, 0.0).unwrap();
        assert!((ms - 22.0 / 3.0).abs() < 1e-12, "{ms}");
        assert!((largest - 3.0 * 2f64.sqrt()).abs() < 1e-12 && k == 3, "{largest}");
        // A centre as uncertain as one value: each weight 2 / (1 + 2).
        let (ms, largest, _) = h.deviations_from(5.0, 1.0).unwrap();
        assert!((ms - 11.0 / 3.0 * 2.0 / 3.0).abs() < 1e-12, "{ms}");
        assert!((largest - 3.0 * (2f64 / 3.0).sqrt()).abs() < 1e-12, "{largest}");
        // ln 2, ln 2, ln 8 = (1, 1, 3) ln 2: mean 5/3 ln 2, deviations
        // (−2/3, −2/3, 4/3) ln 2, sample sd √(4/3) ln 2.
        let ln2 = 2f64.ln();
        let (m, sd, l, n) = h.log_spread_deviations(1e-12).unwrap();
        assert!((m - 5.0 / 3.0 * ln2).abs() < 1e-12 && (l - 4.0 / 3.0 * ln2).abs() < 1e-12);
        assert!((sd - (4f64 / 3.0).sqrt() * ln2).abs() < 1e-12 && n == 3, "{sd}");
    }

    #[test]
    fn reads_back_what_it_writes() {
        let mut h = Windows::new(MovingWindow::new(10), 10);
        h.extend(&[1.0, 2.0, 4.0]);
        h.extend(&[8.0]);
        let mut w = ByteWriter::new();
        h.write(&mut w);
        let bytes = w.finish();
        let back = h.read_like(&mut ByteReader::new(&bytes)).unwrap();
        assert_eq!(back, h);
    }
}
