//! Welch's unequal-variances t-test from summary statistics (copied from
//! `plugins/ttest/src/welch.rs`; plugins share only the plugin API), matching
//! scipy's `ttest_ind_from_stats(..., equal_var=False)` (two-sided).

use statrs::distribution::{ContinuousCDF, StudentsT};

/// `t` and the two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WelchResult {
    /// The t statistic (history minus window), finite.
    pub t: f64,
    /// Two-sided p-value, finite, in `[0, 1]`.
    pub pvalue: f64,
}

/// Welch's test of sample 1 (mean, variance with ddof 1, count) against
/// sample 2. Counts are at least 1.
pub fn welch_from_stats(m1: f64, v1: f64, n1: f64, m2: f64, v2: f64, n2: f64) -> WelchResult {
    let vn1 = v1 / n1;
    let vn2 = v2 / n2;
    let se2 = vn1 + vn2;
    let d = m1 - m2;
    if se2 == 0.0 {
        // Documented in lib.rs: constant samples give a definite answer.
        return if d == 0.0 {
            WelchResult { t: 0.0, pvalue: 1.0 }
        } else {
            WelchResult { t: f64::MAX.copysign(d), pvalue: 0.0 }
        };
    }
    // Welch–Satterthwaite degrees of freedom, written with the variance
    // shares a = vn1/se2, b = vn2/se2 so tiny variances cannot underflow.
    // A sample of one value makes its term 0/0; scipy then uses df = 1,
    // and so do we.
    let (a, b) = (vn1 / se2, vn2 / se2);
    let mut df = 1.0 / (a * a / (n1 - 1.0) + b * b / (n2 - 1.0));
    if df.is_nan() {
        df = 1.0;
    }
    let t = d / se2.sqrt();
    if t.is_nan() {
        // Only reachable when sums overflow f64 (values near 1e308): no
        // usable evidence either way.
        return WelchResult { t: 0.0, pvalue: 1.0 };
    }
    let t = t.clamp(-f64::MAX, f64::MAX);
    let pvalue = match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) => (2.0 * dist.sf(t.abs())).clamp(0.0, 1.0),
        // df is positive by construction; an impossible df says nothing.
        Err(_) => 1.0,
    };
    WelchResult { t, pvalue }
}
