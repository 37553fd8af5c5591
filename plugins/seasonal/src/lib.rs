//! The `seasonal` detector plugin: each window's level against what the
//! recent past and the same time of previous days say it should be, with
//! robust (median / MAD) estimates throughout.
//!
//! Per (group, field) it keeps the levels (means) of the last
//! `season × seasons` windows, the residuals of two predictions over the
//! last `season` windows (at most [`MAX_SCALE_WINDOWS`]), and the data's
//! resolution. For each window with data, its level `x` (the mean of its
//! values) is compared with two expectations, both using only windows
//! before it (causal):
//! - **local**: the median level of the last `local` windows (an hour of
//!   5-minute windows by default): what the series is doing now;
//! - **seasonal**: once a whole `season` has been seen, the median over the
//!   remembered seasons of the level one, two, … seasons ago: what it does
//!   at this time of day (`season` = 288 windows = one day of `.every(5m)`; `seasons` = 7:
//!   a week).
//!
//! Each expectation's residual is scaled by the larger of `1.4826 × MAD`
//! of its own recent residuals and the largest of them over the median
//! largest of as many normal residuals (both a standard deviation for
//! normal noise; the second learns the spikes of a bursty series, which the
//! median ignores: a window is a surprise when it is further off than
//! anything in the last season), floored at the data's resolution so that
//! a flat series does not make every tick "certain", and
//! `z = residual / scale`. A residual enters that memory clipped to
//! [`CLIP`] scales, so one anomaly raises the scale at most about twofold
//! and cannot hide the next one for a season; a burst that recurs raises
//! it step by step (issue 9, round 3). Where the seasonal expectation has
//! predicted this series better lately (the smaller mean absolute residual,
//! misses included: a series with a daily rhythm), it alone judges the
//! window, so a missing evening peak is a surprise even though the last
//! hour explains it; elsewhere a window is anomalous only if neither
//! expectation explains it (an intersection-union test: the larger of the
//! two p-values, valid at `alpha` without correction), so a level that is
//! normal for this time of day, or for the last hour, is not flagged
//! (issue 9, round 2: 41.1 → 50.9 on NAB's development subset; round 3's
//! largest-residual scale: 56.0). The
//! p-value is two-sided from Student's t with one degree of freedom fewer
//! than the residuals behind the scale (a scale from few residuals is
//! uncertain, so early verdicts are conservative).
//!
//! # Learning, separate from the verdict
//! Every window's level and residuals are remembered, anomalous or not:
//! the medians are what keep the baseline from being captured. A spike
//! shorter than half of `local` windows never moves the local median; a
//! lasting change of level is the new local normal after about `local / 2`
//! windows (so it alerts briefly, then stops); a pattern that recurs at the
//! same time of day becomes the seasonal expectation once it has happened
//! on more than half of the remembered days; the scale learns an anomaly
//! clipped to [`CLIP`] scales.
//!
//! # Degenerate input
//! No verdict until [`MIN_LEVELS`] earlier windows and [`MIN_RESIDUALS`]
//! residuals are known (a sliding window's first windows hold one, two, …
//! values; their levels are learned, not judged). A flat series has a zero
//! MAD: the scale is then the data's resolution (`step / √12`, see
//! `tickwatch_plugin_api::window::Quantised`), and at least `1e-9 × |x|`.
//! Every statistic is finite, every p-value in `[0, 1]`.
//!
//! # What lives where
//! This crate owns the two expectations and the choice between them; the
//! p-value is `tickwatch_stats::two_sided_t`'s, the resolution
//! `tickwatch_plugin_api::window::decimal_step`'s.

use tickwatch_plugin_api::window::{decimal_step, finite, mean};
use tickwatch_plugin_api::{
    ByteReader, ByteWriter, CodecError, Detector, OptionSpec, Options, StateFormat, Summary, Value,
    Verdict, export_detector,
    options::{MAX_LENGTH, preset},
};
use tickwatch_stats::{largest_normal, two_sided_t};

/// Earlier windows whose levels must be known before the first verdict.
pub const MIN_LEVELS: usize = 3;
/// Residuals behind a scale before it is used.
pub const MIN_RESIDUALS: usize = 5;
/// The most residuals a scale is estimated from.
pub const MAX_SCALE_WINDOWS: usize = 2016;
/// The most windows one `season` may span (a week of 1-minute windows).
pub const MAX_SEASON: i64 = 10_080;
/// The most seasons remembered (a year of weeks).
pub const MAX_SEASONS: i64 = 52;
/// The most windows in the local median.
pub const MAX_LOCAL: i64 = 1_000;
/// MAD to standard deviation, for normal noise.
const MAD_TO_SD: f64 = 1.4826;
/// A residual is remembered clipped to this many scales: with a season of
/// 288 residuals (whose largest stands for about 3 scales) one anomaly at
/// most doubles the scale.
pub const CLIP: f64 = 6.0;

const FORMAT: StateFormat = StateFormat::new("seasonal", 1);

/// A ring of the last `cap` numbers.
#[derive(Debug, Clone, PartialEq)]
struct Ring {
    cap: usize,
    values: Vec<f64>,
    /// Oldest slot once full.
    head: usize,
}

impl Ring {
    fn new(cap: usize) -> Self {
        Self { cap, values: Vec::new(), head: 0 }
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    fn push(&mut self, x: f64) {
        if self.values.len() < self.cap {
            self.values.push(x);
        } else {
            self.values[self.head] = x;
            self.head = (self.head + 1) % self.cap;
        }
    }

    /// The value `back` pushes ago (1 = the newest), if held.
    fn back(&self, back: usize) -> Option<f64> {
        let n = self.values.len();
        if back == 0 || back > n {
            return None;
        }
        let newest = if n < self.cap { n - 1 } else { (self.head + self.cap - 1) % self.cap };
        Some(self.values[(newest + self.cap - (back - 1)) % self.cap])
    }

    fn write(&self, w: &mut ByteWriter) {
        w.u64(self.cap as u64).u64(self.head as u64).u64(self.values.len() as u64);
        for v in &self.values {
            w.f64(*v);
        }
    }

    fn read(&self, r: &mut ByteReader<'_>) -> Result<Self, CodecError> {
        let at = r.clone();
        let cap = r.u64()? as usize;
        let head = r.u64()? as usize;
        let n = r.len(8)?;
        if cap != self.cap || n > cap || (head != 0 && (n != cap || head >= cap)) {
            return Err(at.error(&format!(
                "ring of {n} values with capacity {cap} (this detector keeps {}), head {head}",
                self.cap
            )));
        }
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(r.f64()?);
        }
        Ok(Self { cap, values, head })
    }
}

/// Median of `xs` (not empty), reordering it.
fn median(xs: &mut [f64]) -> f64 {
    let mid = xs.len() / 2;
    let (_, m, _) = xs.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if xs.len() % 2 == 1 {
        m
    } else {
        let lower = xs[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        lower / 2.0 + m / 2.0
    }
}

/// The detector (see the crate docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Seasonal {
    season: usize,
    seasons: usize,
    local: usize,
    alpha: f64,
    /// Window levels, newest last.
    levels: Ring,
    /// Residuals of the local expectation.
    local_resid: Ring,
    /// Residuals of the seasonal expectation.
    seasonal_resid: Ring,
    /// Finest decimal step seen (infinite before any nonzero value).
    step: f64,
    windows_seen: u64,
    windows_anomalous: u64,
}

impl Seasonal {
    /// The local expectation: median of the last `local` levels.
    fn local_expectation(&self) -> Option<f64> {
        let mut xs: Vec<f64> = (1..=self.local).filter_map(|b| self.levels.back(b)).collect();
        (!xs.is_empty()).then(|| median(&mut xs))
    }

    /// The seasonal expectation, once a whole season is known.
    fn seasonal_expectation(&self) -> Option<f64> {
        // The window `k` seasons before the current one is `k × season`
        // pushes back (the current window is not pushed yet).
        let mut per_season: Vec<f64> =
            (1..=self.seasons).filter_map(|k| self.levels.back(k * self.season)).collect();
        (!per_season.is_empty()).then(|| median(&mut per_season))
    }

    /// Robust scale of a residual ring, the residuals behind it, and the
    /// mean absolute residual (how well the expectation predicted lately,
    /// misses included: what chooses between the expectations).
    fn scale(&self, ring: &Ring, level: f64) -> Option<(f64, usize, f64)> {
        if ring.len() < MIN_RESIDUALS {
            return None;
        }
        let mut abs: Vec<f64> = ring.values.iter().map(|r| r.abs()).collect();
        let miss = abs.iter().sum::<f64>() / abs.len() as f64;
        let mad = MAD_TO_SD * median(&mut abs);
        // The tail too: the largest residual of the memory, over the
        // median largest of as many normal residuals. For normal noise
        // both say σ; for a series whose spikes are part of its normal
        // (bursty traffic, disk writes), the median ignores them and would
        // make each recurring spike "certain", while the tail has learned
        // them. Issue 9 round 3: the largest rather than the 99th
        // percentile (50.9 → 56.0 on NAB's development subset, better in
        // every category): a window is a surprise when it is further off
        // than anything the last season held, which is also what a
        // percentile cannot say about heavy tails.
        let largest = abs.iter().copied().fold(0.0, f64::max);
        let tail = largest / largest_normal(abs.len());
        let quant = if self.step.is_finite() { self.step / 12f64.sqrt() } else { 0.0 };
        let floor = quant.max(1e-9 * level.abs());
        Some((mad.max(tail).max(floor), ring.len(), miss))
    }

    /// A residual as its ring remembers it: within [`CLIP`] of the ring's
    /// current scale (as is while the ring is too short for a scale).
    fn clipped(&self, ring: &Ring, residual: f64, level: f64) -> f64 {
        match self.scale(ring, level) {
            Some((scale, _, _)) => residual.clamp(-CLIP * scale, CLIP * scale),
            None => residual,
        }
    }

    fn learn_step(&mut self, xs: &[f64]) {
        for &x in xs {
            if self.step <= x.abs() * 1e-15 {
                continue;
            }
            if let Some(s) = decimal_step(x) {
                self.step = self.step.min(s);
            }
        }
    }
}

impl Detector for Seasonal {
    const NAME: &'static str = FORMAT.detector();
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    /// Format 1: `u8` 1, `u64` windows seen and anomalous, `f64` step, then
    /// three rings (`u64` capacity, head, count, the `f64` values): levels,
    /// local residuals, seasonal residuals. Bump when a format change would
    /// misread old state.
    const STATE_VERSION: u32 = FORMAT.version() as u32;

    fn options() -> Vec<OptionSpec> {
        vec![
            OptionSpec::with_default(
                "season",
                Value::Int(288),
                "windows in one season (288 = a day of .every(5m) windows, 1440 of .every(1m)); \
                 2 to 10080",
            ),
            OptionSpec::with_default(
                "seasons",
                Value::Int(7),
                "seasons remembered for the seasonal expectation (7 days = a week); 1 to 52",
            ),
            OptionSpec::with_default(
                "local",
                Value::Int(12),
                "windows in the local median (12 = an hour of .every(5m)); 1 to 1000",
            ),
            preset::alpha(Some(0.001)).scoring_only(),
        ]
    }

    fn new(options: &Options) -> Result<Self, String> {
        let season = options.int_in("season", 2, MAX_SEASON)? as usize;
        let seasons = options.int_in("seasons", 1, MAX_SEASONS)? as usize;
        let local = options.int_in("local", 1, MAX_LOCAL)? as usize;
        let alpha = options.probability("alpha")?;
        let kept = season * seasons;
        if kept as i64 > MAX_LENGTH {
            return Err(format!(
                "options season × seasons must be <= {MAX_LENGTH} windows remembered, got \
                 {season} × {seasons}"
            ));
        }
        let scale_windows = season.min(MAX_SCALE_WINDOWS);
        Ok(Self {
            season,
            seasons,
            local,
            alpha,
            levels: Ring::new(kept.max(local)),
            local_resid: Ring::new(scale_windows),
            seasonal_resid: Ring::new(scale_windows),
            step: f64::INFINITY,
            windows_seen: 0,
            windows_anomalous: 0,
        })
    }

    fn score(&mut self, window: &[f64]) -> Option<Verdict> {
        let window = &*finite(window);
        if window.is_empty() {
            return None;
        }
        let x = mean(window);
        if !x.is_finite() {
            return None;
        }
        self.learn_step(window);
        let local = self.local_expectation();
        let seasonal = self.seasonal_expectation();
        let mut verdict = None;
        if self.levels.len() >= MIN_LEVELS {
            let candidates = [
                local.zip(self.scale(&self.local_resid, x)).map(|(e, s)| (e, s, 0.0)),
                seasonal.zip(self.scale(&self.seasonal_resid, x)).map(|(e, s)| (e, s, 1.0)),
            ];
            // Where the seasonal expectation has predicted this series
            // better lately (a daily rhythm), it alone judges: a missing
            // evening peak is a surprise even though the last hour explains
            // it. Elsewhere a level is anomalous only if neither
            // expectation explains it (an intersection-union test: the
            // larger p-value, valid at `alpha` with no correction): a level
            // normal for this time of day, or for the last hour, is not.
            let judged: Vec<_> = candidates
                .into_iter()
                .flatten()
                .map(|(expected, (scale, behind, miss), which)| {
                    let z = if scale > 0.0 { (x - expected) / scale } else { 0.0 };
                    let z = if z.is_finite() { z } else { 0.0 };
                    (expected, scale, which, z, two_sided_t(z, behind as f64 - 1.0), miss)
                })
                .collect();
            let rhythm = matches!(judged.as_slice(), [l, s] if s.5 < l.5);
            let best = if rhythm {
                judged.last().copied()
            } else {
                judged.into_iter().max_by(|a, b| a.4.total_cmp(&b.4))
            };
            if let Some((expected, scale, which, z, pvalue, _)) = best {
                let anomalous = pvalue < self.alpha;
                self.windows_seen += 1;
                self.windows_anomalous += u64::from(anomalous);
                verdict = Some(Verdict {
                    pvalue,
                    anomalous,
                    stats: vec![
                        ("z".into(), z),
                        ("level".into(), x),
                        ("expected".into(), expected),
                        ("scale".into(), scale),
                        ("seasonal".into(), which),
                    ],
                });
            }
        }
        // Learn from every window, whatever the verdict: the medians keep
        // anomalies from capturing the baseline, and the clip keeps one
        // anomaly from inflating the scale for a season.
        if let Some(e) = local {
            let r = self.clipped(&self.local_resid, x - e, x);
            self.local_resid.push(r);
        }
        if let Some(e) = seasonal {
            let r = self.clipped(&self.seasonal_resid, x - e, x);
            self.seasonal_resid.push(r);
        }
        self.levels.push(x);
        verdict
    }

    fn save(&self) -> Vec<u8> {
        let mut w = FORMAT.writer();
        w.u64(self.windows_seen).u64(self.windows_anomalous).f64(self.step);
        self.levels.write(&mut w);
        self.local_resid.write(&mut w);
        self.seasonal_resid.write(&mut w);
        w.finish()
    }

    fn load(&mut self, state: &[u8]) -> Result<(), String> {
        let mut r = FORMAT.reader(state)?;
        let windows_seen = r.u64()?;
        let windows_anomalous = r.u64()?;
        let step = r.f64()?;
        if step.is_nan() || step <= 0.0 {
            return Err(format!("state has resolution {step}, which is not positive"));
        }
        let levels = self.levels.read(&mut r)?;
        let local_resid = self.local_resid.read(&mut r)?;
        let seasonal_resid = self.seasonal_resid.read(&mut r)?;
        r.finish()?;
        (self.levels, self.local_resid, self.seasonal_resid) =
            (levels, local_resid, seasonal_resid);
        (self.windows_seen, self.windows_anomalous, self.step) =
            (windows_seen, windows_anomalous, step);
        Ok(())
    }

    fn describe(&self) -> Summary {
        // An expectation not known yet is left out (NaN would not compare
        // equal to itself after a round trip).
        let mut s = Summary::new().int("levels", self.levels.len() as i64);
        if let Some(e) = self.local_expectation() {
            s = s.num("local_expected", e);
        }
        if let Some(e) = self.seasonal_expectation() {
            s = s.num("seasonal_expected", e);
        }
        s.num("resolution", if self.step.is_finite() { self.step } else { 0.0 })
            .int("season", self.season as i64)
            .int("seasons", self.seasons as i64)
            .int("local", self.local as i64)
            .num("alpha", self.alpha)
            .int("windows_seen", self.windows_seen as i64)
            .int("windows_anomalous", self.windows_anomalous as i64)
    }
}

export_detector!(Seasonal);

#[cfg(test)]
mod tests {
    use tickwatch_stats::testkit::Gauss;

    use super::*;

    fn seasonal(season: i64, seasons: i64, local: i64) -> Result<Seasonal, String> {
        Seasonal::new(&Options::new(vec![
            ("season".into(), Value::Int(season)),
            ("seasons".into(), Value::Int(seasons)),
            ("local".into(), Value::Int(local)),
            ("alpha".into(), Value::Double(0.001)),
        ]))
    }

    fn defaults() -> Seasonal {
        let pairs = Seasonal::options()
            .into_iter()
            .map(|s| (s.name, s.default.expect("every option has a default")))
            .collect();
        Seasonal::new(&Options::new(pairs)).unwrap()
    }

    fn stat(v: &Verdict, name: &str) -> f64 {
        v.stats.iter().find(|(n, _)| n == name).map_or(f64::NAN, |(_, x)| *x)
    }

    #[test]
    fn refuses_options_beyond_their_documented_maxima() {
        assert!(seasonal(288, 7, 12).is_ok());
        assert_eq!(
            seasonal(10_081, 1, 12).unwrap_err(),
            "option season must be in [2, 10080], got 10081"
        );
        assert_eq!(seasonal(288, 53, 12).unwrap_err(), "option seasons must be in [1, 52], got 53");
        assert_eq!(seasonal(288, 7, 0).unwrap_err(), "option local must be in [1, 1000], got 0");
        assert!(seasonal(10_080, 52, 12).is_ok(), "the largest state: 4 MB per field");
    }

    /// Issue 9: a sliding window starts with a one-value window, which must
    /// not become a zero-variance baseline that flags everything.
    #[test]
    fn a_one_value_first_window_does_not_lock_the_detector() {
        let mut g = Gauss(1);
        let xs = g.window(2000, 10.0, 1.0);
        let mut d = defaults();
        assert_eq!(d.score(&xs[..1]), None);
        let flagged = (2..=xs.len())
            .filter_map(|end| d.score(&xs[end.saturating_sub(6)..end]))
            .filter(|v| v.anomalous)
            .count();
        assert!(flagged <= 20, "{flagged} of ~2000 windows flagged");
    }

    /// Issue 9: a counter at zero, a value pinned at 100: no p = 0 storm for
    /// a one-step tick, while a real jump is still flagged.
    #[test]
    fn flat_series_weigh_changes_by_the_data_resolution() {
        let mut d = defaults();
        for _ in 0..50 {
            let v = d.score(&[100.0; 6]);
            assert!(v.as_ref().is_none_or(|v| v.pvalue == 1.0 && !v.anomalous), "{v:?}");
        }
        let tick = d.clone().score(&[100.0, 100.0, 100.0, 100.0, 100.0, 99.0]).unwrap();
        assert!(!tick.anomalous && tick.pvalue > 0.01, "{tick:?}");
        let jump = d.clone().score(&[150.0; 6]).unwrap();
        assert!(jump.anomalous && jump.pvalue > 0.0, "{jump:?}");
    }

    #[test]
    fn a_level_shift_alerts_then_becomes_the_new_normal() {
        let mut g = Gauss(2);
        let mut d = seasonal(288, 7, 12).unwrap();
        for _ in 0..100 {
            d.score(&g.window(6, 10.0, 1.0));
        }
        let flags: Vec<bool> =
            (0..30).map(|_| d.score(&g.window(6, 20.0, 1.0)).unwrap().anomalous).collect();
        assert!(flags[0] && flags[1], "{flags:?}");
        assert!(flags[12..].iter().all(|f| !f), "learned after half of local: {flags:?}");
    }

    /// Round 2: where the local expectation predicts at least as well (no
    /// strong rhythm), a level the same time of previous days explains is
    /// not flagged, though the last hour has not seen it; a level neither
    /// explains still is.
    #[test]
    fn a_level_either_expectation_explains_is_not_flagged() {
        let mut g = Gauss(7);
        let mut d = seasonal(48, 7, 12).unwrap();
        // Noisy days with a short bump at windows 30..=31 of every day.
        let level = |i: usize| if i % 48 == 30 || i % 48 == 31 { 13.0 } else { 10.0 };
        let mut flagged_bump = 0;
        for i in 0..48 * 6 {
            let v = d.score(&g.window(6, level(i), 1.5));
            if i >= 48 * 3 && level(i) > 10.0 {
                flagged_bump += usize::from(v.is_some_and(|v| v.anomalous));
            }
        }
        assert_eq!(flagged_bump, 0, "the recurring bump is explained");
        for i in 48 * 6..48 * 6 + 10 {
            d.score(&g.window(6, level(i), 1.5));
        }
        let novel = d.score(&g.window(6, 40.0, 1.5)).unwrap();
        assert!(novel.anomalous, "{novel:?}");
    }

    #[test]
    fn a_daily_pattern_is_learned_and_its_absence_is_flagged() {
        // A spike at the same window of every "day" of 48 windows.
        let mut g = Gauss(3);
        let mut d = seasonal(48, 7, 12).unwrap();
        let day = |g: &mut Gauss, i: usize, spike: bool| {
            let level = if spike && i % 48 == 30 { 40.0 } else { 10.0 };
            g.window(6, level, 1.0)
        };
        let mut flagged_late = 0;
        for i in 0..48 * 6 {
            let v = d.score(&day(&mut g, i, true));
            if i >= 48 * 4 && i % 48 == 30 {
                flagged_late += usize::from(v.is_some_and(|v| v.anomalous));
            }
        }
        assert_eq!(flagged_late, 0, "the recurring spike was learned");
        // The spike does not come: the seasonal expectation misses it.
        for i in 48 * 6..48 * 6 + 30 {
            d.score(&day(&mut g, i, true));
        }
        let missing = d.score(&g.window(6, 10.0, 1.0)).unwrap();
        assert!(missing.anomalous && stat(&missing, "seasonal") == 1.0, "{missing:?}");
    }

    #[test]
    fn save_load_round_trips_exactly_and_refuses_other_options() {
        let mut g = Gauss(4);
        let mut d = seasonal(10, 2, 4).unwrap();
        for _ in 0..35 {
            d.score(&g.window(5, 1.0, 0.1));
        }
        let bytes = d.save();
        let mut e = seasonal(10, 2, 4).unwrap();
        e.load(&bytes).unwrap();
        assert_eq!(e, d);
        assert_eq!(e.save(), bytes);
        let w = g.window(5, 1.0, 0.1);
        assert_eq!(d.score(&w), e.score(&w));
        let mut other = seasonal(10, 3, 4).unwrap();
        assert!(other.load(&bytes).unwrap_err().contains("capacity 20"));
        assert_eq!(other, seasonal(10, 3, 4).unwrap(), "a refused load changes nothing");
    }

    /// Round 3: a residual is remembered clipped to `CLIP` scales, so one
    /// huge anomaly does not hide a smaller, distinct one an hour later.
    #[test]
    fn one_anomaly_does_not_hide_the_next() {
        let mut g = Gauss(8);
        let mut d = seasonal(288, 7, 12).unwrap();
        for _ in 0..2 * 288 + 100 {
            d.score(&g.window(6, 10.0, 1.0));
        }
        assert!(d.score(&g.window(6, 60.0, 1.0)).unwrap().anomalous, "a 120 σ spike");
        for _ in 0..12 {
            d.score(&g.window(6, 10.0, 1.0));
        }
        let second = d.score(&g.window(6, 15.0, 1.0)).unwrap();
        assert!(second.anomalous, "a 12 σ spike an hour later: {second:?}");
    }

    #[test]
    fn state_stays_bounded() {
        let mut d = seasonal(288, 7, 12).unwrap();
        let mut g = Gauss(5);
        for _ in 0..5000 {
            d.score(&g.window(6, 0.0, 1.0));
        }
        let bytes = d.save().len();
        assert!(bytes <= 1 + 24 + 3 * 24 + (288 * 7 + 2 * 288) * 8, "{bytes}");
    }
}
