//! The two-sided F-test of equal variances from summary statistics,
//! matching `2·min(F.cdf(f), F.sf(f))` of scipy's `stats.f(n_win − 1,
//! n_hist − 1)` with `f = window variance / history variance`, to 1e-8
//! relative (tests/ftest_scipy.rs). `levelspread`'s spread test, and
//! `ttest`'s test of whether the means of its windows spread as their
//! values allow; [`chi2_upper`] is the reference of `ttest`'s Bartlett test
//! of equal window variances.

use statrs::function::beta::checked_beta_reg;
use statrs::function::gamma::checked_gamma_ur;

/// `f` and the two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FResult {
    /// Window variance over history variance, finite and >= 0.
    pub f: f64,
    /// Two-sided p-value, finite, in `[0, 1]`.
    pub pvalue: f64,
}

const NO_EVIDENCE: FResult = FResult { f: 1.0, pvalue: 1.0 };

/// The F-test of a window's sample variance (ddof 1, `win_n` values)
/// against a history's (`hist_n` values).
///
/// Fewer than two values on either side, both variances zero, or a
/// non-finite variance say nothing (`f = 1, pvalue = 1`). A zero history
/// variance under a window that varies is a certain change
/// (`f = f64::MAX, pvalue = 0`), and so is a constant window (`f = 0`)
/// under a history that varies, as a stuck sensor is.
pub fn f_test(hist_var: f64, hist_n: f64, win_var: f64, win_n: f64) -> FResult {
    // Non-finite variances come only from sums beyond f64 (values near
    // 1e308): no usable evidence either way.
    if hist_n < 2.0 || win_n < 2.0 || !hist_var.is_finite() || !win_var.is_finite() {
        return NO_EVIDENCE;
    }
    if hist_var == 0.0 {
        return if win_var == 0.0 { NO_EVIDENCE } else { FResult { f: f64::MAX, pvalue: 0.0 } };
    }
    let f = win_var / hist_var;
    let (d1, d2) = (win_n - 1.0, hist_n - 1.0);
    let d1f = d1 * f;
    if f.is_nan() {
        return NO_EVIDENCE;
    }
    if !d1f.is_finite() {
        return FResult { f: f64::MAX, pvalue: 0.0 };
    }
    // Both tails straight from the incomplete beta function, each with its
    // own argument: the small tail is then computed directly, never as
    // 1 − (something close to 1), so tiny p-values keep their precision.
    let lower = checked_beta_reg(d1 / 2.0, d2 / 2.0, d1f / (d1f + d2));
    let upper = checked_beta_reg(d2 / 2.0, d1 / 2.0, d2 / (d1f + d2));
    let pvalue = match (lower, upper) {
        (Ok(lo), Ok(up)) if !lo.is_nan() && !up.is_nan() => (2.0 * lo.min(up)).clamp(0.0, 1.0),
        // The arguments are in range by construction; anything else says nothing.
        _ => 1.0,
    };
    FResult { f, pvalue }
}

/// `P(X ≥ x)` for `X` chi-square with `df` degrees of freedom (scipy's
/// `stats.chi2(df).sf(x)`), from the regularised upper incomplete gamma
/// function: the reference distribution of Bartlett's test of equal
/// variances. `x ≤ 0`
/// gives 1, `x = +∞` gives 0; NaN or a `df` that is not positive says
/// nothing (1).
pub fn chi2_upper(x: f64, df: f64) -> f64 {
    if !(df > 0.0 && df.is_finite()) || x.is_nan() || x <= 0.0 {
        return 1.0;
    }
    if x == f64::INFINITY {
        return 0.0;
    }
    match checked_gamma_ur(df / 2.0, x / 2.0) {
        Ok(p) if !p.is_nan() => p.clamp(0.0, 1.0),
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_missing_spread() {
        assert_eq!(f_test(0.0, 10.0, 0.0, 10.0), NO_EVIDENCE);
        assert_eq!(f_test(1.0, 10.0, 0.0, 1.0), NO_EVIDENCE);
        assert_eq!(f_test(1.0, 1.0, 2.0, 10.0), NO_EVIDENCE);
        assert_eq!(f_test(0.0, 10.0, 2.0, 10.0), FResult { f: f64::MAX, pvalue: 0.0 });
        assert_eq!(f_test(1.0, 10.0, 0.0, 10.0), FResult { f: 0.0, pvalue: 0.0 });
        assert_eq!(f_test(f64::MIN_POSITIVE, 10.0, f64::MAX, 10.0).pvalue, 0.0);
        assert_eq!(f_test(f64::INFINITY, 10.0, f64::INFINITY, 10.0), NO_EVIDENCE);
        assert_eq!(f_test(f64::INFINITY, 10.0, 1.0, 10.0), NO_EVIDENCE);
        assert_eq!(f_test(1.0, 10.0, f64::NAN, 10.0), NO_EVIDENCE);
    }

    /// Closed forms: with 2 degrees of freedom the tail is `e^(−x/2)`,
    /// with 1 it is `erfc(√(x/2))`, tiny tails included.
    #[test]
    fn chi_square_tail_by_closed_form() {
        use statrs::function::erf::erfc;
        for x in [0.5, 3.0, 40.0, 400.0] {
            let p = chi2_upper(x, 2.0);
            assert!((p - (-x / 2.0f64).exp()).abs() <= 1e-12 * p, "{x}: {p}");
            let p = chi2_upper(x, 1.0);
            assert!((p - erfc((x / 2.0f64).sqrt())).abs() <= 1e-9 * p, "{x}: {p}");
        }
        assert_eq!((chi2_upper(0.0, 3.0), chi2_upper(f64::INFINITY, 3.0)), (1.0, 0.0));
        assert_eq!((chi2_upper(f64::NAN, 3.0), chi2_upper(1.0, 0.0)), (1.0, 1.0));
    }

    #[test]
    fn is_symmetric_in_the_ratio() {
        // Equal dfs: f and 1/f are equally extreme.
        let a = f_test(1.0, 31.0, 2.0, 31.0).pvalue;
        let b = f_test(2.0, 31.0, 1.0, 31.0).pvalue;
        assert!((a - b).abs() < 1e-14 * a, "{a} vs {b}");
        assert!((f_test(3.0, 50.0, 3.0, 50.0).pvalue - 1.0).abs() < 1e-12);
    }
}
