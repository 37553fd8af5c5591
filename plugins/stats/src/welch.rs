//! Welch's unequal-variances t-test from summary statistics, matching
//! scipy's `ttest_ind_from_stats(..., equal_var=False)` (two-sided), to
//! 1e-9 relative (tests/welch_scipy.rs). The `ttest` detector's test, and
//! `levelspread`'s level test.

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
        // Constant samples: a definite answer instead of the NaN scipy gives.
        let (t, pvalue) = crate::zero_standard_error(d);
        return WelchResult { t, pvalue };
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

#[cfg(test)]
mod extreme_tests {
    use super::*;

    #[test]
    fn overflowing_sums_give_no_evidence_instead_of_nan() {
        let r = welch_from_stats(f64::MAX, f64::INFINITY, 10.0, -f64::MAX, f64::INFINITY, 10.0);
        assert_eq!((r.t, r.pvalue), (0.0, 1.0));
        let r = welch_from_stats(1.0, f64::INFINITY, 10.0, 2.0, 1.0, 10.0);
        assert!(r.pvalue.is_finite() && r.t.is_finite());
        assert!(r.pvalue > 0.99);
    }
}
