//! Histories for detectors that compare each window with what came before:
//! [`MovingWindow`] (the last `cap` values with O(1) mean and variance) and
//! [`Baseline`] (the policy on top: only normal windows join, an optional
//! rebaseline after a run of anomalous windows, counters, saving), generic
//! over the [`History`] it keeps, and [`BaselineDetector`], a whole
//! detector made of a [`BaselineTest`] and a `Baseline`. Also the window
//! helpers every detector needs: [`finite`], [`mean`], [`mean_var`].
//!
//! Std only, like the rest of this crate: the statistical tests that need
//! distribution functions are the detectors' own.

mod baseline;
mod detector;
mod moving;
mod quantised;
mod windows;

pub use baseline::{Baseline, History, Joins, Layout, Learn};
pub use detector::{BaselineDetector, BaselineTest};
pub use moving::{HEADER_BYTES, MovingWindow};
pub use quantised::{Quantised, decimal_step};
pub use windows::Windows;

/// The finite values of `window`, borrowed when they all are. The host sends
/// finite values only; detectors use this to stay total for direct callers.
pub fn finite(window: &[f64]) -> std::borrow::Cow<'_, [f64]> {
    if window.iter().all(|x| x.is_finite()) {
        std::borrow::Cow::Borrowed(window)
    } else {
        std::borrow::Cow::Owned(window.iter().copied().filter(|x| x.is_finite()).collect())
    }
}

/// Mean of a slice (0 when empty), exact for constant data: see
/// [`mean_var`], whose mean it is, without the second pass for the variance.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let (lo, hi) = range(xs);
    if lo == hi { lo } else { corrected_mean(xs, lo, hi) }
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
    let (lo, hi) = range(xs);
    if lo == hi {
        return (lo, 0.0);
    }
    let mean = corrected_mean(xs, lo, hi);
    let ss: f64 = xs.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, ss / (xs.len() as f64 - 1.0))
}

/// Smallest and largest value (NaN ignored).
fn range(xs: &[f64]) -> (f64, f64) {
    xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// The mean of values spanning `lo..=hi` (not all equal), corrected by the
/// mean residual and kept inside the range rounding could leave.
fn corrected_mean(xs: &[f64], lo: f64, hi: f64) -> f64 {
    let n = xs.len() as f64;
    let first = xs.iter().sum::<f64>() / n;
    let residual: f64 = xs.iter().map(|x| x - first).sum();
    let mean = first + residual / n;
    // NaN in the data leaves lo > hi; clamp only a real range.
    if lo <= hi { mean.clamp(lo, hi) } else { mean }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_data_has_an_exact_mean() {
        assert_eq!(mean(&[0.1; 300]), 0.1);
        assert_eq!(mean(&[2.5]), 2.5);
        assert_eq!(mean(&[]), 0.0);
        let xs = [1.0, 4.0, 2.0, 8.0, 5.5];
        assert_eq!(mean(&xs), mean_var(&xs).0);
    }
}
