//! When `ttest` leaves the guide's test, and the test it uses then (issue
//! 9, round 4).
//!
//! The guide's Welch test assumes independent values: a window mean of `n`
//! values then varies by `s_w/√n`. A record of [`MIN_WINDOWS`] or more
//! windows (`crate::record`) can check that assumption itself: the between-window mean square
//! `V = Σ nᵢ (mᵢ − m̄)² / (K − 1)` of its `K` windows estimates the
//! values' variance `s²` when they are independent, and grows with their
//! serial dependence (on a metric with a daily cycle or bursts, windows of
//! 6 values have `V ≈ 6 s²`). Only when `V` is beyond what independent
//! values produce (against the within-window variance, both sides), or
//! the windows' variances differ more than normal values allow
//! (Bartlett), each at [`SERIAL_LEVEL`], do the data count as serially
//! dependent ([`scale`] is `Some`); then a window's mean is compared using
//! the spread window means really have ([`serial_test`]). Otherwise the
//! guide's test is used, unchanged.

use tickwatch_stats::{
    TAIL_CONFIDENCE, WelchResult, chi2_upper, f_test, largest_normal_at, z_from_stats,
};

use crate::record::WindowRecord;

/// Windows the record must hold before the data may leave the guide's
/// regime: a mean square from fewer has too few degrees of freedom to
/// overrule the values (and the guide's own use, 300-value windows and a
/// 3600-value history, remembers 12).
pub const MIN_WINDOWS: usize = 30;

/// The level at which each test of the record contradicts independent
/// normal values: strict, so that independent values essentially never
/// leave the guide's regime, even in sliding windows, whose shared values
/// make the record's statistics vary about twice as much (in standard
/// deviations, for 6-value windows sliding by one) as their degrees of
/// freedom say: at 1e-6 independent values in such windows left the
/// guide's regime on 2 to 5 % of windows, at 1e-12 on at most 0.4 %.
pub const SERIAL_LEVEL: f64 = 1e-12;

/// The scale of window means a serially dependent history shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// The between-window mean square `V`, in units of one value's
    /// variance (a window mean of `n` values varies by `V/n`).
    pub v: f64,
    /// Its degrees of freedom, `K − 1`.
    pub dof: f64,
}

/// The serial scale the record shows, or `None` while the guide's regime
/// holds: fewer than [`MIN_WINDOWS`] windows recorded, or window means and
/// spreads that independent normal values could have given: the one-way
/// analysis of variance `F = V/W` (`W` the pooled within-window variance)
/// within [`SERIAL_LEVEL`] on both sides, and [`bartlett`]'s test of equal
/// window variances at or above it.
pub fn scale(record: &WindowRecord) -> Option<Scale> {
    if record.windows() < MIN_WINDOWS {
        return None;
    }
    let (v, dof) = record.between()?;
    if !(v.is_finite() && v >= 0.0) {
        return None;
    }
    // Without a window of two values there is nothing to compare with;
    // constant data contradict nothing (the flat-history rule covers them).
    let (w, wdof) = record.within()?;
    if v == 0.0 && w == 0.0 {
        return None;
    }
    // Windows each without spread while their means differ: independent
    // normal values never give that.
    let alike = w > 0.0 && f_test(w, wdof + 1.0, v, dof + 1.0).pvalue >= SERIAL_LEVEL;
    if alike && bartlett(record) >= SERIAL_LEVEL {
        return None;
    }
    let tail = record
        .deviation_largest()
        .map_or(0.0, |(largest, k)| (largest / largest_normal_at(k, TAIL_CONFIDENCE)).powi(2));
    Some(Scale { v: v.max(tail), dof })
}

/// Bartlett's test that the remembered windows' values share one variance
/// (what independent normal values give; Welch's test leans on it when it
/// takes a window's own spread for the spread of its values): the p-value
/// of `T = (Σ(nᵢ − 1) ln W − Σ(nᵢ − 1) ln vᵢ) / C` against chi-square with
/// `K′ − 1` degrees of freedom, over the `K′` windows of two or more
/// values, `W` their pooled variance, `C = 1 + (Σ 1/(nᵢ − 1) − 1/Σ(nᵢ − 1))
/// / (3 (K′ − 1))`. The record gives the mean of `ln vᵢ` and the sum of
/// `nᵢ − 1`, so `Σ(nᵢ − 1) ln vᵢ` is taken as `Σ(nᵢ − 1) · mean ln vᵢ`
/// and `Σ 1/(nᵢ − 1)` as `K′ / mean(nᵢ − 1)`: exact when the windows hold
/// equally many values (a sliding window's steady state). A window of
/// equal values (variance 0), which normal values never give, decides it;
/// 1 (no evidence) with fewer than two such windows.
fn bartlett(record: &WindowRecord) -> f64 {
    let (Some((w, dof)), Some((mean_ln, _, _, k))) =
        (record.within(), record.log_spread_deviations(f64::MIN_POSITIVE))
    else {
        return 1.0;
    };
    if k < 2 {
        return 1.0;
    }
    if w <= 0.0 {
        return 0.0;
    }
    let k = k as f64;
    let c = 1.0 + (k * k / dof - 1.0 / dof) / (3.0 * (k - 1.0));
    chi2_upper(dof * (w.ln() - mean_ln) / c, k - 1.0)
}

/// The window (mean, sample variance, `win_n` values) against a serially
/// dependent history (mean, `hist_n` values, [`Scale`]):
/// `t = (μ − m) / √(V/N + max(s_w², V)/n)`. The window's own variance
/// counts where it is larger than `V`, as in Welch's test (a window
/// noisier than window means usually are is weaker evidence of a shift);
/// the degrees of freedom are Welch–Satterthwaite's for the two terms,
/// `K − 1` for a term from `V` and `n − 1` for one from `s_w²`.
pub fn serial_test(
    (hist_mean, hist_n): (f64, f64),
    scale: Scale,
    (win_mean, win_var, win_n): (f64, f64, f64),
) -> WelchResult {
    let Scale { v, dof } = scale;
    let own = win_var > v && win_n > 1.0;
    let a = v / hist_n;
    let b = if own { win_var } else { v } / win_n;
    let se2 = a + b;
    let df = if own {
        let (a, b) = (a / se2, b / se2);
        1.0 / (a * a / dof + b * b / (win_n - 1.0))
    } else {
        dof
    };
    let z = z_from_stats(hist_mean - win_mean, se2, df);
    WelchResult { t: z.z, pvalue: z.pvalue }
}
