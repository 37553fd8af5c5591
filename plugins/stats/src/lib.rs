//! The statistics the shipped detectors share, each once: Welch's t-test
//! ([`welch`]), the F-test of equal variances ([`ftest`]) and z-tests with
//! their Student's t / normal p-values ([`ztest`]). Everything here works
//! from summary statistics (means, variances, counts); keeping histories
//! and deciding what joins them is `tickwatch_plugin_api::window`'s job.
//!
//! An internal crate (`publish = false`): it exists so that the
//! distribution functions (statrs) live in one place. Detector plugins in
//! this repository depend on `tickwatch-plugin-api` and this crate only;
//! plugins written elsewhere depend on `tickwatch-plugin-api` alone.
//!
//! With the `testkit` feature, [`testkit`] has the deterministic data the
//! detectors' tests share.

pub mod ftest;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod welch;
pub mod ztest;

pub use ftest::{FResult, chi2_upper, f_test};
pub use welch::{WelchResult, welch_from_stats};
pub use ztest::{
    TAIL_CONFIDENCE, ZResult, largest_normal, largest_normal_at, normal_quantile, two_sided_normal,
    two_sided_t, z_from_stats,
};

/// The answer when the standard error is zero: equal means are no evidence
/// of change (statistic 0, p = 1); different means a certain change
/// (statistic `±f64::MAX`, kept finite because InfluxDB refuses infinite
/// fields; p = 0). `d` is the difference of the means.
fn zero_standard_error(d: f64) -> (f64, f64) {
    if d == 0.0 { (0.0, 1.0) } else { (f64::MAX.copysign(d), 0.0) }
}
