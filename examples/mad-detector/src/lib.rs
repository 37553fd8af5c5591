//! `mad`: an example tickwatch detector, written as an outsider would.
//!
//! Keeps a moving history of the last `size` values. Each window's median is
//! compared with the history's median, scaled by the history's median
//! absolute deviation (MAD): a robust z-score that one wild reading cannot
//! move,
//!
//! `z = (median(window) − median(history)) / (1.4826 · MAD(history) · 1.2533 / √n)`
//!
//! (1.4826·MAD estimates σ for normal data; 1.2533·σ/√n is the standard error
//! of a median of n values), with a two-sided normal p-value. The first
//! window seeds the history; only non-anomalous windows join it.
//! Zero MAD (a constant history): equal medians give p = 1, others p = 0
//! with z saturated at ±1e308, so the output stays finite.
//!
//! Build it with `cargo build --release` and copy
//! `target/release/libtickwatch_example_mad.so` into a plugin directory, or
//! point `tickwatch serve --plugin-dir` at `target/release`.

use std::collections::VecDeque;

use tickwatch_plugin_api::{
    ByteReader, ByteWriter, Detector, OptionSpec, Options, Summary, Value, Verdict, export_detector,
};

/// The detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Mad {
    size: usize,
    alpha: f64,
    history: VecDeque<f64>,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Two-sided normal p-value, `erfc(|z|/√2)`, via the Chebyshev-fitted
/// `exp(-x²)·R(t)` form (fractional error < 1.2e-7 everywhere, so small
/// p-values keep their precision). A real plugin could use `statrs`.
fn two_sided_p(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    (t * poly.exp()).clamp(0.0, 1.0)
}

impl Detector for Mad {
    const NAME: &'static str = "mad";
    const VERSION: &'static str = "0.1.0";
    const STATE_VERSION: u32 = 1;

    fn options() -> Vec<OptionSpec> {
        vec![
            OptionSpec::with_default("size", Value::Int(3600), "history length in values; > 1"),
            OptionSpec::with_default(
                "alpha",
                Value::Double(0.001),
                "significance level in (0, 1): pvalue < alpha is anomalous",
            )
            // Only judges windows: the saved history does not depend on it,
            // so changing it keeps every field's history. `size` does.
            .scoring_only(),
        ]
    }

    fn new(options: &Options) -> Result<Self, String> {
        // Validating getters: errors name the option and the allowed range.
        let size = options.length("size")?;
        let alpha = options.probability("alpha")?;
        Ok(Self { size, alpha, history: VecDeque::new() })
    }

    fn score(&mut self, window: &[f64]) -> Option<Verdict> {
        let w = sorted(window.iter().copied());
        if w.is_empty() {
            return None;
        }
        if self.history.is_empty() {
            self.push(&w);
            return None;
        }
        let h = sorted(self.history.iter().copied());
        let (mh, mw) = (median(&h), median(&w));
        let mad = median(&sorted(h.iter().map(|x| (x - mh).abs())));
        let se = 1.4826 * mad * 1.2533 / (w.len() as f64).sqrt();
        let diff = mw - mh;
        let (z, pvalue) = if se > 0.0 && se.is_finite() && diff.is_finite() {
            let z = (diff / se).clamp(-1e308, 1e308);
            (z, two_sided_p(z))
        } else if diff == 0.0 || !diff.is_finite() {
            (0.0, 1.0)
        } else {
            (1e308f64.copysign(diff), 0.0)
        };
        if pvalue > self.alpha {
            self.push(&w);
        }
        Some(Verdict {
            pvalue,
            anomalous: pvalue < self.alpha,
            stats: vec![("z".into(), z), ("median".into(), mw)],
        })
    }

    fn save(&self) -> Vec<u8> {
        let mut w = ByteWriter::new();
        w.u64(self.size as u64).u64(self.history.len() as u64);
        for v in &self.history {
            w.f64(*v);
        }
        w.finish()
    }

    fn load(&mut self, state: &[u8]) -> Result<(), String> {
        let mut r = ByteReader::new(state);
        let size = r.u64()? as usize;
        if size != self.size {
            return Err(format!(
                "state was saved with size {size}, this detector has size {}",
                self.size
            ));
        }
        let n = r.len(8)?;
        if n > size {
            return Err(format!("state holds {n} values, more than size {size}"));
        }
        let mut history = VecDeque::with_capacity(n);
        for _ in 0..n {
            history.push_back(r.f64()?);
        }
        r.finish()?;
        self.history = history;
        Ok(())
    }

    fn describe(&self) -> Summary {
        let h = sorted(self.history.iter().copied());
        let (m, mad) = if h.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            let m = median(&h);
            (m, median(&sorted(h.iter().map(|x| (x - m).abs()))))
        };
        Summary::new()
            .int("n", h.len() as i64)
            .num("median", m)
            .num("mad", mad)
            .int("size", self.size as i64)
    }
}

impl Mad {
    fn push(&mut self, values: &[f64]) {
        for &v in values {
            if self.history.len() == self.size {
                self.history.pop_front();
            }
            self.history.push_back(v);
        }
    }
}

export_detector!(Mad);
