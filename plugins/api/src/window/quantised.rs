//! `Quantised<H>`: a [`History`] that also learns the data's resolution
//! (the finest decimal step its values are written in), so that a test can
//! floor the history's variance at the variance of that rounding. It owns
//! the resolution only; the values and their statistics are `H`'s.
//!
//! Why: a sensor at idle, a counter at zero, a value pinned at 100 give a
//! history with (nearly) zero variance, and any change at all would then be
//! "infinitely significant" (p = 0 storms, issue 9). Real metrics are
//! quantised (0.1 °C, whole requests, percentages to two or three
//! decimals); a change of one step is within what the sensor resolves, so
//! with the floor `step²/12` a one-step change of a single value is about
//! 3.5 standard deviations, while a jump of many steps stays significant.
//! For continuous data the step is far below the spread and changes nothing.

use std::fmt::Write as _;
use std::ops::Deref;

use super::History;
use crate::Summary;
use crate::changes::ChangeWriter;
use crate::codec::{ByteReader, ByteWriter, CodecError};

/// The decimal step of `x`: `10^(e − d)` for `x` written shortest as
/// `m.mmm…e±e` with `d` digits after the point, at most 1 (an integer
/// value says its data is integers, not that it is rounded to hundreds).
/// `None` for 0 and non-finite values, which say nothing about a step.
pub fn decimal_step(x: f64) -> Option<f64> {
    if x == 0.0 || !x.is_finite() {
        return None;
    }
    let mut s = String::with_capacity(32);
    let _ = write!(s, "{:e}", x.abs());
    let (mantissa, exp) = s.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let digits = mantissa.split_once('.').map_or(0, |(_, f)| f.len() as i32);
    Some(10f64.powi(exp - digits).min(1.0))
}

/// A history `H` plus the finest decimal step of every value it (or any
/// history it was made [`History::fresh`] from) has taken in.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantised<H> {
    inner: H,
    /// Finest step seen; infinite before any nonzero value.
    step: f64,
}

impl<H> Quantised<H> {
    /// `inner` with no step seen yet.
    pub fn new(inner: H) -> Self {
        Self { inner, step: f64::INFINITY }
    }

    /// The finest decimal step seen (infinite before any nonzero value).
    pub fn step(&self) -> f64 {
        self.step
    }

    /// The variance of rounding to the step, `step²/12` (0 before any
    /// nonzero value), and at least `(1e-9·|mean|)²` for binary rounding.
    pub fn floor(&self, mean: f64) -> f64 {
        let quant = if self.step.is_finite() { self.step * self.step / 12.0 } else { 0.0 };
        let relative = (1e-9 * mean).powi(2);
        let f = quant.max(relative);
        if f.is_finite() { f } else { 0.0 }
    }

    fn learn_steps(&mut self, values: &[f64]) {
        for &x in values {
            // Formatting costs ~100 ns: skip values that cannot refine a
            // step already at the limit of f64 for their magnitude.
            if self.step <= x.abs() * 1e-15 {
                continue;
            }
            if let Some(s) = decimal_step(x) {
                self.step = self.step.min(s);
            }
        }
    }
}

impl<H> Deref for Quantised<H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.inner
    }
}

impl<H: History> History for Quantised<H> {
    /// Empty values, the same step: the resolution is the data's, not the
    /// values held.
    fn fresh(&self) -> Self {
        Self { inner: self.inner.fresh(), step: self.step }
    }

    fn count(&self) -> u64 {
        self.inner.count()
    }

    fn extend(&mut self, values: &[f64]) {
        self.learn_steps(values);
        self.inner.extend(values);
    }

    /// `H`'s bytes, then the step as an `f64`.
    fn write(&self, w: &mut ByteWriter) {
        self.inner.write(w);
        w.f64(self.step);
    }

    /// `H`'s changes, then the step (8 bytes, always written).
    fn write_changes(&self, w: &mut ChangeWriter) {
        self.inner.write_changes(w);
        w.write(|b| {
            b.f64(self.step);
        });
    }

    fn checkpoint(&mut self) {
        self.inner.checkpoint();
    }

    fn read_like(&self, r: &mut ByteReader<'_>) -> Result<Self, CodecError> {
        let inner = self.inner.read_like(r)?;
        let at = r.clone();
        let step = r.f64()?;
        if step.is_nan() || step <= 0.0 {
            return Err(at.error(&format!("resolution {step} is not positive")));
        }
        Ok(Self { inner, step })
    }

    fn mismatch(&self, saved: &Self) -> Option<String> {
        self.inner.mismatch(&saved.inner)
    }

    fn mean_variance(&self) -> Option<(f64, f64)> {
        self.inner.mean_variance()
    }

    fn windows(&self) -> Option<u64> {
        self.inner.windows()
    }

    fn variance_floor(&self) -> f64 {
        self.inner.mean_variance().map_or(0.0, |(m, _)| self.floor(m))
    }

    /// `H`'s figures, then `resolution` (0 before any nonzero value).
    fn describe(&self, summary: Summary) -> Summary {
        let step = if self.step.is_finite() { self.step } else { 0.0 };
        self.inner.describe(summary).num("resolution", step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::MovingWindow;

    #[test]
    fn decimal_steps_of_typical_readings() {
        assert_eq!(decimal_step(99.9), Some(10f64.powi(-1)));
        assert_eq!(decimal_step(0.066), Some(10f64.powi(-3)));
        assert_eq!(decimal_step(100.0), Some(1.0));
        assert_eq!(decimal_step(1523.0), Some(1.0));
        assert_eq!(decimal_step(-2.25), Some(10f64.powi(-2)));
        assert_eq!(decimal_step(0.0), None);
        assert_eq!(decimal_step(f64::NAN), None);
    }

    #[test]
    fn learns_the_finest_step_and_keeps_it_through_fresh_and_saving() {
        let mut q = Quantised::new(MovingWindow::new(10));
        q.extend(&[0.0, 0.0]);
        assert_eq!((q.step(), q.variance_floor()), (f64::INFINITY, 0.0));
        q.extend(&[100.0, 99.5]);
        assert_eq!(q.step(), 10f64.powi(-1));
        assert!((q.variance_floor() - 0.01 / 12.0).abs() < 1e-12);
        assert_eq!(q.fresh().step(), q.step());
        let mut w = ByteWriter::new();
        q.write(&mut w);
        let bytes = w.finish();
        let back = q.read_like(&mut ByteReader::new(&bytes)).unwrap();
        assert_eq!(back, q);
    }
}
