//! A moving window of the last `cap` values with O(1) mean and variance.
//!
//! Adds and removes use Welford's updates (as the guide's `MovingStats`), but
//! every `cap` removals the mean and sum of squares are recomputed exactly
//! with a two-pass sum over the window, so rounding error cannot accumulate
//! over a long stream. The recomputation costs O(cap) once per `cap`
//! removals: amortized O(1) per value.

use std::collections::VecDeque;

use tickwatch_plugin_api::{ByteReader, ByteWriter, CodecError};

#[derive(Debug, Clone, PartialEq)]
pub struct MovingWindow {
    cap: usize,
    values: VecDeque<f64>,
    mean: f64,
    /// Sum of squared deviations from the mean.
    m2: f64,
    removals_since_exact: usize,
}

impl MovingWindow {
    pub fn new(cap: usize) -> Self {
        Self { cap, values: VecDeque::new(), mean: 0.0, m2: 0.0, removals_since_exact: 0 }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Sample variance (ddof = 1); 0 for fewer than two values, as the guide.
    pub fn variance(&self) -> f64 {
        if self.values.len() < 2 { 0.0 } else { self.m2 / (self.values.len() - 1) as f64 }
    }

    pub fn push(&mut self, x: f64) {
        if self.values.len() == self.cap {
            self.pop_oldest();
        }
        self.values.push_back(x);
        let n = self.values.len() as f64;
        let d = x - self.mean;
        self.mean += d / n;
        self.m2 += d * (x - self.mean);
    }

    fn pop_oldest(&mut self) {
        let Some(old) = self.values.pop_front() else {
            return;
        };
        let n = self.values.len();
        if n == 0 {
            self.mean = 0.0;
            self.m2 = 0.0;
            return;
        }
        self.removals_since_exact += 1;
        if self.removals_since_exact >= self.cap {
            self.recompute();
            return;
        }
        let old_mean = self.mean;
        self.mean = old_mean - (old - old_mean) / n as f64;
        self.m2 -= (old - old_mean) * (old - self.mean);
        if self.m2 < 0.0 {
            self.m2 = 0.0;
        }
    }

    /// Exact two-pass mean and sum of squares over the current values.
    fn recompute(&mut self) {
        self.removals_since_exact = 0;
        let n = self.values.len() as f64;
        if self.values.is_empty() {
            self.mean = 0.0;
            self.m2 = 0.0;
            return;
        }
        let mean = self.values.iter().sum::<f64>() / n;
        self.mean = mean;
        self.m2 = self.values.iter().map(|v| (v - mean) * (v - mean)).sum();
    }

    pub fn write(&self, w: &mut ByteWriter) {
        w.u64(self.cap as u64)
            .f64(self.mean)
            .f64(self.m2)
            .u64(self.removals_since_exact as u64)
            .u64(self.values.len() as u64);
        for v in &self.values {
            w.f64(*v);
        }
    }

    pub fn read(r: &mut ByteReader<'_>) -> Result<Self, CodecError> {
        let cap = r.u64()? as usize;
        let mean = r.f64()?;
        let m2 = r.f64()?;
        let removals_since_exact = r.u64()? as usize;
        let n = r.len(8)?;
        if cap < 2 || n > cap {
            return Err(r.error(&format!("history holds {n} values with size {cap}")));
        }
        let mut values = VecDeque::with_capacity(n);
        for _ in 0..n {
            values.push_back(r.f64()?);
        }
        Ok(Self { cap, values, mean, m2, removals_since_exact })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }
}

/// Mean and sample variance of a slice, two-pass.
pub fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let ss: f64 = xs.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, ss / (n - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(xs: &[f64]) -> (f64, f64) {
        mean_var(xs)
    }

    #[test]
    fn tracks_the_last_cap_values() {
        let mut w = MovingWindow::new(3);
        for x in [1.0, 2.0, 3.0, 10.0, 20.0] {
            w.push(x);
        }
        assert_eq!(w.len(), 3);
        let (m, v) = exact(&[3.0, 10.0, 20.0]);
        assert!((w.mean() - m).abs() < 1e-12);
        assert!((w.variance() - v).abs() < 1e-9);
    }

    #[test]
    fn stays_accurate_over_a_long_stream_with_a_large_offset() {
        // Values near 1e6 with tiny spread: the case where a plain running
        // Welford add/remove drifts. Compare with an exact two-pass result.
        let mut w = MovingWindow::new(500);
        let mut all = Vec::new();
        let mut s: u64 = 12345;
        for _ in 0..200_000 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let x = 1e6 + ((s >> 11) as f64 / (1u64 << 53) as f64) * 1e-3;
            w.push(x);
            all.push(x);
        }
        let (m, v) = exact(&all[all.len() - 500..]);
        assert!(((w.mean() - m) / m).abs() < 1e-14);
        assert!(((w.variance() - v) / v).abs() < 1e-6, "{} vs {}", w.variance(), v);
    }

    #[test]
    fn save_load_is_bit_exact() {
        let mut w = MovingWindow::new(4);
        for x in [0.1, 0.2, 0.3, 0.4, 0.5, 0.7] {
            w.push(x);
        }
        let mut bw = ByteWriter::new();
        w.write(&mut bw);
        let bytes = bw.finish();
        let mut r = ByteReader::new(&bytes);
        let back = MovingWindow::read(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(back, w);
    }
}
