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
    if all_finite(window) {
        std::borrow::Cow::Borrowed(window)
    } else {
        std::borrow::Cow::Owned(window.iter().copied().filter(|x| x.is_finite()).collect())
    }
}

/// Whether every value is finite, without an early exit (the host sends
/// finite values only, so the whole slice is read anyway): `x − x` is 0
/// for a finite `x` and NaN for an infinite or NaN one, and a sum of them
/// in [`LANES`] accumulators is two vector instructions per two values.
#[allow(clippy::eq_op)] // `x − x` is the point: 0 when finite, else NaN.
fn all_finite(xs: &[f64]) -> bool {
    let mut acc = [0.0; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i] - c[i];
        }
    }
    for (i, &x) in tail.iter().enumerate() {
        acc[i] += x - x;
    }
    fold_lanes(acc) == 0.0
}

/// Mean of a slice (0 when empty), exact for constant data: see
/// [`mean_var`], whose mean it is, without the pass for the variance.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let (lo, hi, sum) = range_sum(xs);
    if lo == hi { lo } else { corrected_mean(xs, lo, hi, sum) }
}

/// Mean and sample variance (ddof 1; 0 for one value) of a slice (0, 0 when
/// empty).
///
/// Constant data gives its value and exactly 0: a plain `sum / n` of 300
/// copies of 0.1 is not 0.1, and a zero-variance baseline would then see a
/// "certain change" in rounding noise. Otherwise two passes, the mean
/// corrected by the mean residual (Chan, Golub & LeVeque's corrected
/// two-pass algorithm).
///
/// Three passes over the values: the range and sum, the residual, the
/// squared deviations; each sums in order, value after value, so the
/// results are bit for bit those of every earlier release (saved verdicts
/// are compared by their bits: `ttest`'s format-1 fixtures), but for the
/// sign of the mean of zeros of both signs.
pub fn mean_var(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let (lo, hi, sum) = range_sum(xs);
    if lo == hi {
        return (lo, 0.0);
    }
    let mean = corrected_mean(xs, lo, hi, sum);
    let ss: f64 = xs.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, ss / (xs.len() as f64 - 1.0))
}

/// Smallest and largest value (NaN ignored) and the sum in order, in one
/// pass (the min/max chains run beside the sum's instead of after it).
fn range_sum(xs: &[f64]) -> (f64, f64, f64) {
    // -0.0, as `Sum for f64` starts.
    xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY, -0.0), |(lo, hi, sum), &x| {
        (below(x, lo), above(x, hi), sum + x)
    })
}

/// `x` if below `lo`, else `lo`: `lo.min(x)` for a `lo` that is never NaN
/// (NaN `x` is skipped; of two equal zeros `lo` stays, where `f64::min`
/// may return either), in one instruction where `f64::min` takes five to
/// also handle a NaN `lo`.
fn below(x: f64, lo: f64) -> f64 {
    if x < lo { x } else { lo }
}

/// `x` if above `hi`, else `hi` (see [`below`]).
fn above(x: f64, hi: f64) -> f64 {
    if x > hi { x } else { hi }
}

/// The mean of values spanning `lo..=hi` (not all equal) summing to `sum`,
/// corrected by the mean residual and kept inside the range rounding could
/// leave.
fn corrected_mean(xs: &[f64], lo: f64, hi: f64, sum: f64) -> f64 {
    let n = xs.len() as f64;
    let first = sum / n;
    let residual: f64 = xs.iter().map(|x| x - first).sum();
    let mean = first + residual / n;
    // NaN in the data leaves lo > hi; clamp only a real range.
    if lo <= hi { mean.clamp(lo, hi) } else { mean }
}

/// The mean and sum of squared deviations from it, by [`mean_var`]'s
/// algorithm in two passes that sum in [`LANES`] independent accumulators
/// (a chain of dependent adds is most of the cost): within rounding of
/// [`mean_var`], not bit for bit; exact on constant data. Pass one: range
/// and sum; pass two, about the first mean `f`: the residual
/// `r = Σ(x − f)` and `Σ(x − f)²`, giving the mean `f + r/n` and the sum
/// of squares `Σ(x − f)² − r²/n`. For [`MovingWindow`]'s periodic
/// recomputation after runs of values, whose statistics are within
/// rounding already.
pub(crate) fn mean_ss_lanes(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let (lo, hi, sum) = range_sum_lanes(xs);
    if lo == hi {
        return (lo, 0.0);
    }
    let n = xs.len() as f64;
    let first = sum / n;
    let mut r = [0.0; LANES];
    let mut q = [0.0; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let d = c[i] - first;
            r[i] += d;
            q[i] += d * d;
        }
    }
    for (i, &x) in tail.iter().enumerate() {
        let d = x - first;
        r[i] += d;
        q[i] += d * d;
    }
    let (r, q) = (fold_lanes(r), fold_lanes(q));
    let mean = first + r / n;
    // NaN in the data leaves lo > hi; clamp only a real range.
    let mean = if lo <= hi { mean.clamp(lo, hi) } else { mean };
    // Σ(x − m)² = Σ(x − f)² − n (m − f)², m − f = r/n; never below 0.
    let ss = q - r * r / n;
    (mean, if ss < 0.0 { 0.0 } else { ss })
}

/// Independent accumulators per sum of [`mean_ss_lanes`].
const LANES: usize = 8;

/// Adds lane by lane, pairwise.
fn fold_lanes(a: [f64; LANES]) -> f64 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// [`range_sum`] in [`LANES`] accumulators each.
fn range_sum_lanes(xs: &[f64]) -> (f64, f64, f64) {
    let mut lo = [f64::INFINITY; LANES];
    let mut hi = [f64::NEG_INFINITY; LANES];
    let mut sum = [0.0; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            lo[i] = below(c[i], lo[i]);
            hi[i] = above(c[i], hi[i]);
            sum[i] += c[i];
        }
    }
    for (i, &x) in tail.iter().enumerate() {
        lo[i] = below(x, lo[i]);
        hi[i] = above(x, hi[i]);
        sum[i] += x;
    }
    let lo = lo.iter().fold(f64::INFINITY, |a, &b| below(b, a));
    let hi = hi.iter().fold(f64::NEG_INFINITY, |a, &b| above(b, a));
    (lo, hi, fold_lanes(sum))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn constant_data_has_an_exact_mean() {
        assert_eq!(mean(&[0.1; 300]), 0.1);
        assert_eq!(mean(&[2.5]), 2.5);
        assert_eq!(mean(&[]), 0.0);
        let xs = [1.0, 4.0, 2.0, 8.0, 5.5];
        assert_eq!(mean(&xs), mean_var(&xs).0);
    }

    /// `mean_var` as every release before round 5 computed it, pass by
    /// pass: range, sum, residual, squared deviations.
    fn four_passes(xs: &[f64]) -> (f64, f64) {
        if xs.is_empty() {
            return (0.0, 0.0);
        }
        let (lo, hi) =
            xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
        if lo == hi {
            return (lo, 0.0);
        }
        let n = xs.len() as f64;
        let first = xs.iter().sum::<f64>() / n;
        let residual: f64 = xs.iter().map(|x| x - first).sum();
        let mean = (first + residual / n).clamp(lo, hi);
        let ss: f64 = xs.iter().map(|v| (v - mean) * (v - mean)).sum();
        (mean, ss / (n - 1.0))
    }

    /// Seeded uniform values in `lo..hi` (the window tests share it).
    pub(crate) fn uniform(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect()
    }

    /// Saved verdicts are compared by their bits (`ttest`'s format-1
    /// fixtures): the one-pass range and sum must not move a bit.
    #[test]
    fn mean_var_is_bit_for_bit_the_four_pass_one() {
        let bits = |(m, v): (f64, f64)| (m.to_bits(), v.to_bits());
        for (seed, n, lo, hi) in [
            (1, 300, 15.0, 25.0),
            (2, 6, 49.0, 51.0),
            (3, 3600, 1e6, 1e6 + 1e-3),
            (4, 7, -1.0, 1.0),
        ] {
            let xs = uniform(seed, n, lo, hi);
            assert_eq!(bits(mean_var(&xs)), bits(four_passes(&xs)), "{seed}");
            assert_eq!(mean(&xs).to_bits(), four_passes(&xs).0.to_bits(), "{seed}");
        }
        let mut xs = uniform(5, 300, 0.0, 1.0);
        xs[17] = f64::NAN;
        assert!(mean_var(&xs).0.is_nan() && mean_var(&xs).1.is_nan());
        // Zeros of both signs are "constant data" either way; which zero is
        // the mean `f64::min` leaves unspecified, so only its value counts.
        assert_eq!(mean_var(&[0.0, -0.0, 0.0]), (0.0, 0.0));
    }

    /// The eight-accumulator version (for `MovingWindow`'s recomputation):
    /// within rounding, exact on constant data, 0 when empty.
    #[test]
    fn lanes_agree_within_rounding_and_exactly_on_constant_data() {
        for (seed, n, lo, hi) in
            [(1, 3600, 15.0, 25.0), (2, 13, 49.0, 51.0), (3, 3600, 1e6, 1e6 + 1e-3)]
        {
            let xs = uniform(seed, n, lo, hi);
            let (m, v) = mean_var(&xs);
            let (lm, ss) = mean_ss_lanes(&xs);
            let lv = ss / (n - 1) as f64;
            assert!((lm - m).abs() <= 1e-15 * m.abs(), "{seed}: {lm} {m}");
            assert!((lv - v).abs() <= 1e-9 * v, "{seed}: {lv} {v}");
        }
        assert_eq!(mean_ss_lanes(&[0.1; 3600]), (0.1, 0.0));
        assert_eq!(mean_ss_lanes(&[0.1; 5]), (0.1, 0.0));
        assert_eq!(mean_ss_lanes(&[]), (0.0, 0.0));
        assert_eq!(mean_ss_lanes(&[1.0, 3.0]), (2.0, 2.0));
    }

    #[test]
    fn finite_borrows_when_all_values_are_finite() {
        let xs = uniform(9, 300, 0.0, 1.0);
        assert!(matches!(finite(&xs), std::borrow::Cow::Borrowed(_)));
        // In the vector part and in the tail, each kind of non-finite value.
        for at in [3, 299] {
            for bad in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
                let mut ys = xs.clone();
                ys[at] = bad;
                let kept = finite(&ys);
                assert!(matches!(kept, std::borrow::Cow::Owned(_)), "{at} {bad}");
                assert_eq!(kept.len(), 299);
                assert_eq!(&kept[..3], &xs[..3]);
            }
        }
        assert!(matches!(finite(&[f64::MAX, -f64::MAX, 0.0]), std::borrow::Cow::Borrowed(_)));
    }
}
