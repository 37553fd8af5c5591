//! Deterministic test data for the detectors' tests (feature `testkit`):
//! one generator, so that every detector's tests draw the same kind of
//! noise and a seed means the same values everywhere.

/// Deterministic normal samples (splitmix64 + Box–Muller).
#[derive(Debug, Clone)]
pub struct Gauss(pub u64);

impl Gauss {
    /// A uniform value in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// `n` normal values with this mean and standard deviation.
    pub fn window(&mut self, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let (u, v) = (self.uniform(), self.uniform());
                mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect()
    }
}

/// 3000 values of a daily cycle (period 288, amplitude 5 around 10) with
/// noise (sd 0.3) and a burst of +8 every 97 values: an autocorrelated,
/// bursty series whose sliding windows must look normal to a detector that
/// has learned it.
pub fn cycle_with_bursts(seed: u64) -> Vec<f64> {
    let mut g = Gauss(seed);
    (0..3000)
        .map(|i| {
            let burst = if i % 97 == 50 { 8.0 } else { 0.0 };
            10.0 + 5.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin()
                + g.window(1, 0.0, 0.3)[0]
                + burst
        })
        .collect()
}

/// Feeds `xs` through `score` as sliding windows of `width` values ending at
/// each value; counts the windows flagged anomalous that end after `after`.
pub fn sliding_flags(
    xs: &[f64],
    width: usize,
    after: usize,
    mut score: impl FnMut(&[f64]) -> Option<bool>,
) -> usize {
    (1..=xs.len())
        .filter(|&end| score(&xs[end.saturating_sub(width)..end]) == Some(true) && end > after)
        .count()
}
