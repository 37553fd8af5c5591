//! Exponentially weighted mean and variance of a stream, in four numbers.
//!
//! The `t`-th value gets weight `a = max(λ, 1/t)`, and every older weight is
//! multiplied by `1 − a`. So the first `1/λ` values are averaged plainly (no
//! start-up bias toward the first value, no arbitrary seed), and from then on
//! the weights decay geometrically with factor `1 − λ`. The weights always
//! sum to 1.
//!
//! Besides the mean and the weighted sum of squared deviations, it tracks
//! `Σ wᵢ²`: the variance of the weighted mean is `σ² Σ wᵢ²` (1/t while
//! averaging plainly, `λ / (2 − λ)` in the steady state), and
//! `S / (1 − Σ wᵢ²)` is the unbiased variance for these weights (the sample
//! variance while averaging plainly). Updates follow West (1979) / Finch
//! (2009), which keep constant data exactly constant.
//!
//! [`EwHistory`] is the same with its `lambda`: the history of the
//! detector's `tickwatch_plugin_api::window::Baseline`.

use std::ops::Deref;

use tickwatch_plugin_api::window::History;
use tickwatch_plugin_api::{ByteReader, ByteWriter, CodecError, Summary};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct EwStats {
    /// Values absorbed.
    n: u64,
    mean: f64,
    /// `Σ wᵢ (xᵢ − mean)²` (weights summing to 1).
    s: f64,
    /// `Σ wᵢ²`.
    w2: f64,
}

impl EwStats {
    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// `Σ wᵢ²`: the weighted mean's variance in units of the values' variance.
    pub fn mean_variance_factor(&self) -> f64 {
        self.w2
    }

    /// Unbiased weighted variance; 0 for fewer than two values.
    pub fn variance(&self) -> f64 {
        if self.n < 2 || self.w2 >= 1.0 { 0.0 } else { self.s / (1.0 - self.w2) }
    }

    pub fn push(&mut self, x: f64, lambda: f64) {
        self.n += 1;
        let plain = 1.0 / self.n as f64;
        let a = if plain > lambda { plain } else { lambda };
        let diff = x - self.mean;
        let incr = a * diff;
        self.mean += incr;
        self.s = (1.0 - a) * (self.s + diff * incr);
        self.w2 = (1.0 - a) * (1.0 - a) * self.w2 + a * a;
    }

    pub fn extend(&mut self, xs: &[f64], lambda: f64) {
        xs.iter().for_each(|&x| self.push(x, lambda));
    }

    pub fn write(&self, w: &mut ByteWriter) {
        w.u64(self.n).f64(self.mean).f64(self.s).f64(self.w2);
    }

    pub fn read(r: &mut ByteReader<'_>) -> Result<Self, CodecError> {
        let at = r.clone();
        let n = r.u64()?;
        let mean = r.f64()?;
        let s = r.f64()?;
        let w2 = r.f64()?;
        let fresh = n == 0 && mean == 0.0 && s == 0.0 && w2 == 0.0;
        // NaN state (from sums beyond f64) is carried as is; the detector
        // turns it into "no evidence".
        let plausible =
            n > 0 && (w2.is_nan() || (w2 > 0.0 && w2 <= 1.0)) && (s.is_nan() || s >= 0.0);
        if !fresh && !plausible {
            return Err(at.error(&format!(
                "exponential weights for {n} values with sum of squared weights {w2} and \
                 squared deviations {s}"
            )));
        }
        Ok(Self { n, mean, s, w2 })
    }
}

/// An [`EwStats`] with the weight it is updated with: what the detector's
/// baseline holds. `lambda` is an option, so it is not saved.
#[derive(Debug, Clone, PartialEq)]
pub struct EwHistory {
    stats: EwStats,
    lambda: f64,
}

impl EwHistory {
    /// No values yet, updated with weight `lambda`.
    pub fn new(lambda: f64) -> Self {
        Self { stats: EwStats::default(), lambda }
    }
}

/// The numbers themselves (`count`, `mean`, `variance`, …).
impl Deref for EwHistory {
    type Target = EwStats;

    fn deref(&self) -> &EwStats {
        &self.stats
    }
}

impl History for EwHistory {
    fn fresh(&self) -> Self {
        Self::new(self.lambda)
    }

    fn count(&self) -> u64 {
        self.stats.count()
    }

    fn extend(&mut self, values: &[f64]) {
        self.stats.extend(values, self.lambda);
    }

    /// `u64` count, `f64` mean, weighted squared deviations, `Σ wᵢ²`.
    fn write(&self, w: &mut ByteWriter) {
        self.stats.write(w);
    }

    fn read_like(&self, r: &mut ByteReader<'_>) -> Result<Self, CodecError> {
        Ok(Self { stats: EwStats::read(r)?, lambda: self.lambda })
    }

    /// The weighted mean and variance, once a value is absorbed.
    fn mean_variance(&self) -> Option<(f64, f64)> {
        (self.stats.count() > 0).then(|| (self.stats.mean(), self.stats.variance()))
    }

    /// `n`, `mean`, `stddev`, `effective_n` (`1/Σ wᵢ²`, 0 when empty).
    fn describe(&self, summary: Summary) -> Summary {
        let w2 = self.stats.mean_variance_factor();
        summary
            .int("n", self.stats.count() as i64)
            .num("mean", self.stats.mean())
            .num("stddev", self.stats.variance().sqrt())
            .num("effective_n", if w2 > 0.0 { 1.0 / w2 } else { 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_plainly_until_one_over_lambda_values() {
        let xs = [1.0, 4.0, 2.0, 8.0, 5.0];
        let mut e = EwStats::default();
        e.extend(&xs, 0.01);
        let m = xs.iter().sum::<f64>() / 5.0;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 4.0;
        assert!((e.mean() - m).abs() < 1e-12);
        assert!((e.variance() - v).abs() < 1e-12, "{} vs {v}", e.variance());
        assert!((e.mean_variance_factor() - 0.2).abs() < 1e-15);
    }

    #[test]
    fn weights_decay_geometrically_after_that() {
        let lambda = 0.1;
        let xs: Vec<f64> = (0..200).map(|i| ((i * 37) % 11) as f64).collect();
        let mut e = EwStats::default();
        e.extend(&xs, lambda);
        // Explicit weights: value t (1-based) gets a_t Π_{u>t} (1 − a_u).
        let a: Vec<f64> = (1..=200).map(|t| f64::max(1.0 / t as f64, lambda)).collect();
        let mut w = vec![0.0; 200];
        for t in 0..200 {
            w[t] = a[t] * a[t + 1..].iter().map(|x| 1.0 - x).product::<f64>();
        }
        let m: f64 = w.iter().zip(&xs).map(|(w, x)| w * x).sum();
        let w2: f64 = w.iter().map(|w| w * w).sum();
        let s: f64 = w.iter().zip(&xs).map(|(w, x)| w * (x - m) * (x - m)).sum();
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((e.mean() - m).abs() < 1e-10);
        assert!((e.mean_variance_factor() - w2).abs() < 1e-12);
        assert!((e.mean_variance_factor() - lambda / (2.0 - lambda)).abs() < 1e-6);
        assert!((e.variance() - s / (1.0 - w2)).abs() < 1e-9);
    }

    #[test]
    fn constant_data_stays_exact() {
        let mut e = EwStats::default();
        e.extend(&[0.1; 5000], 0.001);
        assert_eq!((e.mean(), e.variance()), (0.1, 0.0));
    }

    #[test]
    fn reads_back_what_it_writes_and_refuses_nonsense() {
        let mut e = EwStats::default();
        e.extend(&[1.0, 2.0, 4.0], 0.5);
        let mut w = ByteWriter::new();
        e.write(&mut w);
        EwStats::default().write(&mut w);
        let bytes = w.finish();
        let mut r = ByteReader::new(&bytes);
        assert_eq!(EwStats::read(&mut r).unwrap(), e);
        assert_eq!(EwStats::read(&mut r).unwrap(), EwStats::default());
        r.finish().unwrap();

        let mut w = ByteWriter::new();
        w.u64(3).f64(1.0).f64(1.0).f64(1.5);
        let e = EwStats::read(&mut ByteReader::new(&w.finish())).unwrap_err();
        assert_eq!(e.offset, 0);
    }
}
