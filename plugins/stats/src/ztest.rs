//! z-tests from summary statistics: `z` = a difference of means over its
//! standard error, with a two-sided p-value from Student's t (the spread is
//! itself estimated) or, for many degrees of freedom, the normal tail. The
//! `zscore` and `ewma` detectors' test; each supplies its own standard
//! error and degrees of freedom.

use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::function::erf::erfc;

/// `z` and its two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZResult {
    /// Window mean minus baseline mean, in standard errors; finite.
    pub z: f64,
    /// Two-sided p-value, finite, in `[0, 1]`.
    pub pvalue: f64,
}

/// `z = d / √se2` (a difference of means `d` with squared standard error
/// `se2`) and `P(|T| ≥ |z|)` for Student's t with `df` degrees of freedom.
///
/// Zero `se2`: `z = 0, pvalue = 1` when `d` is 0, else `z = ±f64::MAX,
/// pvalue = 0`. NaN anywhere (only from sums beyond f64, values near
/// 1e308): `z = 0, pvalue = 1`, no usable evidence either way.
pub fn z_from_stats(d: f64, se2: f64, df: f64) -> ZResult {
    if d.is_nan() || se2.is_nan() {
        return ZResult { z: 0.0, pvalue: 1.0 };
    }
    if se2 == 0.0 {
        let (z, pvalue) = crate::zero_standard_error(d);
        return ZResult { z, pvalue };
    }
    let z = d / se2.sqrt();
    if z.is_nan() {
        return ZResult { z: 0.0, pvalue: 1.0 };
    }
    let z = z.clamp(-f64::MAX, f64::MAX);
    ZResult { z, pvalue: two_sided_t(z, df) }
}

/// `P(|T| ≥ |z|)` for Student's t with `df` degrees of freedom; the normal
/// limit beyond 100 000 degrees of freedom (where the two agree to 1e-4
/// relative in the tails that matter), and for an undefined `df`.
pub fn two_sided_t(z: f64, df: f64) -> f64 {
    if z == 0.0 {
        return 1.0;
    }
    if !(df > 0.0 && df <= 1e5) {
        return two_sided_normal(z);
    }
    match StudentsT::new(0.0, 1.0, df) {
        Ok(t) => (2.0 * t.sf(z.abs())).clamp(0.0, 1.0),
        Err(_) => two_sided_normal(z),
    }
}

/// The standard normal's quantile: the `z` with `P(Z ≤ z) = p`, for `p` in
/// (0, 1) (±infinity at 0 and 1, NaN outside).
pub fn normal_quantile(p: f64) -> f64 {
    use statrs::distribution::Normal;
    match Normal::new(0.0, 1.0) {
        Ok(n) if (0.0..=1.0).contains(&p) => n.inverse_cdf(p),
        _ => f64::NAN,
    }
}

/// The median of the largest of `n` absolute standard normal values: the
/// `z` with `P(|Z| ≤ z)ⁿ = 1/2` (1.52 for 5, 3.04 for 288,
/// 3.58 for 2016).
pub fn largest_normal(n: usize) -> f64 {
    largest_normal_at(n, 0.5)
}

/// How sure the window detectors (`zscore`, `ewma`, `levelspread`) must be
/// that their windows' largest deviation is beyond normal noise before it
/// raises their scale: it must exceed the 95th percentile of the largest
/// of as many normals. Under independent normal noise the tail then
/// leaves the mean square alone 19 times in 20, so the test keeps its
/// `alpha`; the median instead would raise it every other time and halve
/// the false-alarm rate (issue 9 round 3).
pub const TAIL_CONFIDENCE: f64 = 0.95;

/// The `c`-quantile of the largest of `n` absolute standard normal
/// values: the `z` with `P(|Z| ≤ z)ⁿ = c` (`c` in (0, 1)).
pub fn largest_normal_at(n: usize, c: f64) -> f64 {
    // P(|Z| > z) = q with (1 − q)ⁿ = c; exp_m1 keeps q exact for large n.
    let q = -(c.ln() / n.max(1) as f64).exp_m1();
    normal_quantile(1.0 - q / 2.0)
}

/// `P(|Z| ≥ |z|)` for a standard normal `Z`, accurate in the far tail
/// (relative error below 1e-9 down to the smallest positive f64).
pub fn two_sided_normal(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantile_matches_scipy() {
        // Reference values: scipy.stats.norm.ppf(p).
        for (p, z) in [
            (0.975, 1.9599639845400536),
            (0.999, 3.090232306167813),
            (1e-10, -6.361340902404056),
            (0.5, 0.0),
        ] {
            assert!((normal_quantile(p) - z).abs() < 1e-9, "{p}: {}", normal_quantile(p));
        }
        assert!(normal_quantile(1.5).is_nan());
    }

    #[test]
    fn largest_normal_is_the_median_maximum_of_n_normals() {
        // Reference: scipy.stats.norm.ppf(1 - q/2), q = 1 - 2**(-1/n).
        for (n, z) in [(1, 0.6744897501960817), (5, 1.5162765576377857), (288, 3.0351868483995528)]
        {
            assert!((largest_normal(n) - z).abs() < 1e-9, "{n}: {}", largest_normal(n));
        }
    }

    #[test]
    fn t_tail_matches_scipy() {
        // Reference values: 2 * scipy.stats.t.sf(z, df).
        for (z, df, p) in [
            (3.2905267314918945, 9.0, 0.00937046679092597),
            (3.2905267314918945, 299.0, 0.0011196737409859445),
            (3.2905267314918945, 3599.0, 0.001009636677150316),
            (10.0, 3599.0, 3.0556446407228576e-23),
            (30.0, 3599.0, 1.0959181313120517e-176),
            (5.0, 37.0, 1.4106054575085142e-05),
            (2.0, 1.0, 0.2951672353008665),
            (4.0, 99999.0, 6.338799801245494e-05),
        ] {
            let got = two_sided_t(z, df);
            assert!(((got - p) / p).abs() < 1e-9, "z={z} df={df}: {got} vs {p}");
            assert_eq!(two_sided_t(-z, df), got);
        }
        assert_eq!(two_sided_t(0.0, 5.0), 1.0);
        assert_eq!(two_sided_t(f64::MAX, 3599.0), 0.0);
        assert_eq!(two_sided_t(f64::MAX, 2000.0), 0.0);
        assert_eq!(two_sided_t(4.0, 1e9), two_sided_normal(4.0));
        // 2 * scipy.stats.norm.sf(4.0)
        assert!((two_sided_t(4.0, 1e9) / 6.334248366623973e-05 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn normal_tail_is_accurate() {
        // Reference values: scipy.stats.norm.sf(z) * 2.
        for (z, p) in [
            (0.0, 1.0),
            (1.959963984540054, 0.05),
            (3.2905267314918945, 0.0009999999999999996),
            (10.0, 1.523970604832094e-23),
            (30.0, 9.813427854295816e-198),
        ] {
            let got = two_sided_normal(z);
            assert!(((got - p) / p).abs() < 1e-9, "z={z}: {got} vs {p}");
            assert_eq!(two_sided_normal(-z), got);
        }
        assert_eq!(two_sided_normal(f64::MAX), 0.0);
    }

    #[test]
    fn zero_and_undefined_standard_errors() {
        assert_eq!(z_from_stats(0.0, 0.0, 9.0), ZResult { z: 0.0, pvalue: 1.0 });
        assert_eq!(z_from_stats(-1.0, 0.0, 9.0), ZResult { z: -f64::MAX, pvalue: 0.0 });
        assert_eq!(z_from_stats(f64::NAN, 1.0, 9.0), ZResult { z: 0.0, pvalue: 1.0 });
        assert_eq!(z_from_stats(1.0, f64::INFINITY, 9.0).z, 0.0);
        assert_eq!(
            z_from_stats(f64::INFINITY, f64::INFINITY, 9.0),
            ZResult { z: 0.0, pvalue: 1.0 }
        );
    }
}
