//! `Baseline`: the rebaseline state machine every shipped detector runs,
//! once, generic over the [`History`] it keeps (a [`super::MovingWindow`] of
//! values, or an exponentially weighted mean that keeps none).
//!
//! The policy: a window is scored against the history; what joins it is the
//! [`Learn`] policy's choice (by default only windows judged normal; with
//! [`Learn::Winsorized`] every window, its values clipped to the history's
//! range, so the baseline keeps learning through an anomaly without being
//! captured by it); a history without spread takes in every window, since it
//! cannot yet tell noise from change; with `rebaseline = k > 0`, after `k` consecutive
//! anomalous windows their values become the new history (a lasting change
//! stops alarming); counters for `describe`; the whole of it saved and
//! restored exactly. What it does not own: the statistical test (the
//! detector passes it to [`Baseline::score`]) and the detector's other
//! options.

use super::finite;
use crate::changes::ChangeWriter;
use crate::codec::{ByteReader, ByteWriter, CodecError};
use crate::{Summary, Verdict};

/// What a [`Baseline`] keeps of the normal values.
pub trait History: Clone {
    /// An empty history with the same settings (capacity, weights): what a
    /// run of anomalous windows starts from.
    fn fresh(&self) -> Self;

    /// Values held (or absorbed, for a history that keeps no values).
    fn count(&self) -> u64;

    /// Takes in `values`, in order.
    fn extend(&mut self, values: &[f64]);

    /// Saves the history.
    fn write(&self, w: &mut ByteWriter);

    /// Writes what changed since the last [`History::checkpoint`] at the
    /// writer's cursor: the same bytes [`History::write`] writes, the
    /// unchanged ones [skipped](ChangeWriter::skip) where the writer is
    /// stable, and [`ChangeWriter::moved`] called if the length changed.
    /// The default writes everything and marks what follows as moved:
    /// always right, and cheap for a history of a few numbers.
    fn write_changes(&self, w: &mut ChangeWriter) {
        w.write(|b| self.write(b));
        w.moved();
    }

    /// Starts tracking changes anew: the host holds the history as it is.
    /// The default tracks nothing (see [`History::write_changes`]).
    fn checkpoint(&mut self) {}

    /// Reads a history saved by [`History::write`]; `self` supplies the
    /// settings that are not saved.
    fn read_like(&self, r: &mut ByteReader<'_>) -> Result<Self, CodecError>;

    /// Why `saved` cannot stand in for this history (it was saved under
    /// other options), if it cannot.
    fn mismatch(&self, _saved: &Self) -> Option<String> {
        None
    }

    /// The history's mean and sample variance, when it has them: what
    /// [`Learn::Winsorized`] clips to, and how [`Baseline`] sees that a
    /// history has no spread yet. `None` (the default) turns both off.
    fn mean_variance(&self) -> Option<(f64, f64)> {
        None
    }

    /// Windows the history remembers, when it keeps them (see
    /// [`super::Windows`]); `None` (the default) otherwise.
    fn windows(&self) -> Option<u64> {
        None
    }

    /// A floor under the history's variance for tests and for
    /// [`Learn::Winsorized`] (see [`super::Quantised`]); 0 by default.
    fn variance_floor(&self) -> f64 {
        0.0
    }

    /// Adds the history's own figures (`n`, `mean`, `stddev`, …) to a
    /// description.
    fn describe(&self, summary: Summary) -> Summary;
}

/// How [`Baseline::write`] lays out the saved bytes (and the order of the
/// counters in [`Baseline::describe`]). Changing a released detector's
/// layout makes its old state unreadable: pick one and keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `u64` windows seen, anomalous, rebaselines, run length; the history;
    /// the run's history. Fixed-size fields first, so a window that joins
    /// the history changes only the history's own bytes and the counters.
    CountersFirst,
    /// `u64` windows seen, anomalous; the history; then, only with
    /// `rebaseline > 0`, `u64` rebaselines, run length and the run's
    /// history. The `ttest` detector's format from before it had a
    /// rebaseline option, kept so that its saved state still loads.
    HistoryFirst,
}

/// Which scored windows [`Baseline::score`] lets join the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joins {
    /// Every window that is not anomalous (`pvalue >= alpha`).
    NotAnomalous,
    /// Only windows with `pvalue > alpha`: the Kapacitor guide's t-test,
    /// which keeps a window at exactly `alpha` out of its history without
    /// calling it anomalous.
    AboveAlpha,
}

/// What a scored window teaches the history (the verdict is separate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Learn {
    /// Only windows that [`Joins`] lets in join, whole; anomalous windows
    /// never do. The Kapacitor guide's rule: a lasting change alerts until
    /// `rebaseline`, and a recurring one is never learned.
    Verdict,
    /// Every window joins, each value clipped to the history's mean ±
    /// `k` standard deviations (the variance floored by
    /// [`History::variance_floor`]) as it stood before the window: an outlier
    /// moves the baseline by at most `k` deviations, however large it is,
    /// while a lasting or recurring change is learned step by step (each
    /// clipped window widens the range the next one is clipped to).
    Winsorized(f64),
    /// Every window joins, whole, anomalous or not: for a test whose scale
    /// comes from the history's own tail (see [`super::Windows`]), so that
    /// a burst that recurs widens the tail and stops alarming, while a
    /// single burst is one window of hundreds.
    Every,
    /// As [`Learn::Verdict`] until the history remembers this many windows
    /// ([`History::windows`]), then as [`Learn::Every`]: a tail learned
    /// from few windows says nothing, so until then anomalies stay out.
    EveryFrom(u64),
}

/// A baseline of normal values (see the module docs), over a
/// [`super::MovingWindow`] unless said otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline<H = super::MovingWindow> {
    history: H,
    /// What the current run of anomalous windows would become (only fed
    /// when `rebaseline > 0`).
    candidate: H,
    rebaseline: u64,
    /// Values the history must hold before the first verdict.
    warmup: u64,
    layout: Layout,
    joins: Joins,
    learn: Learn,
    /// Length of the current run of anomalous windows.
    streak: u64,
    windows_seen: u64,
    windows_anomalous: u64,
    rebaselines: u64,
    /// The history and the run swapped places or were read since the last
    /// checkpoint: their own change tracking no longer matches where their
    /// bytes sit, so the whole baseline is written.
    rebuilt: Rebuilt,
}

/// Whether a [`Baseline`] was rebuilt since its last checkpoint.
/// Bookkeeping, not state: compares equal to any other.
#[derive(Debug, Clone, Copy)]
struct Rebuilt(bool);

impl PartialEq for Rebuilt {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Baseline {
    /// An empty baseline of the last `size` normal values; `rebaseline`
    /// anomalous windows in a row replace it (0 = never).
    pub fn new(size: usize, rebaseline: u64) -> Self {
        Self::of(super::MovingWindow::new(size), rebaseline)
    }
}

impl<H: History> Baseline<H> {
    /// A baseline over `history` (empty); `rebaseline` anomalous windows in
    /// a row replace it (0 = never). The first window with data seeds it,
    /// windows that are not anomalous join it, and it is saved with
    /// [`Layout::CountersFirst`]; the `with_` methods change that.
    pub fn of(history: H, rebaseline: u64) -> Self {
        Self {
            candidate: history.fresh(),
            history,
            rebaseline,
            warmup: 1,
            layout: Layout::CountersFirst,
            joins: Joins::NotAnomalous,
            learn: Learn::Verdict,
            streak: 0,
            windows_seen: 0,
            windows_anomalous: 0,
            rebaselines: 0,
            rebuilt: Rebuilt(true),
        }
    }

    /// Windows are absorbed without a verdict until the history holds
    /// `values` values (also after a rebaseline onto fewer).
    pub fn with_warmup(mut self, values: u64) -> Self {
        self.warmup = values;
        self
    }

    /// Saves with `layout`.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Lets the windows `joins` says join the history.
    pub fn with_joins(mut self, joins: Joins) -> Self {
        self.joins = joins;
        self
    }

    /// Learns as `learn` says (default [`Learn::Verdict`]).
    pub fn with_learning(mut self, learn: Learn) -> Self {
        self.learn = learn;
        self
    }

    /// The learning policy.
    pub fn learning(&self) -> Learn {
        self.learn
    }

    /// The history of normal values.
    pub fn history(&self) -> &H {
        &self.history
    }

    /// The values of the current anomalous run.
    pub fn candidate(&self) -> &H {
        &self.candidate
    }

    /// The rebaseline setting (0 = never).
    pub fn rebaseline(&self) -> u64 {
        self.rebaseline
    }

    /// Values the history must hold before the first verdict.
    pub fn warmup(&self) -> u64 {
        self.warmup
    }

    /// Consecutive anomalous windows so far.
    pub fn streak(&self) -> u64 {
        self.streak
    }

    /// Windows scored.
    pub fn windows_seen(&self) -> u64 {
        self.windows_seen
    }

    /// Windows found anomalous.
    pub fn windows_anomalous(&self) -> u64 {
        self.windows_anomalous
    }

    /// Rebaselines done.
    pub fn rebaselines(&self) -> u64 {
        self.rebaselines
    }

    /// Scores one window: drops non-finite values; no verdict for an empty
    /// window, nor while the history warms up (the window is absorbed
    /// instead); otherwise `test(history, values)` gives the p-value and
    /// statistics, `pvalue < alpha` is anomalous, and the window is
    /// absorbed (see [`Baseline::absorb`]). With `rebaseline > 0` the
    /// verdict also carries `rebaselined` (1 on the window that replaced
    /// the history, else 0).
    pub fn score(
        &mut self,
        window: &[f64],
        alpha: f64,
        test: impl FnOnce(&H, &[f64]) -> (f64, Vec<(String, f64)>),
    ) -> Option<Verdict> {
        let window = &*finite(window);
        if window.is_empty() {
            return None;
        }
        if self.history.count() < self.warmup {
            self.seed(window);
            return None;
        }
        let (pvalue, mut stats) = test(&self.history, window);
        let anomalous = pvalue < alpha;
        let joins = match self.joins {
            Joins::NotAnomalous => !anomalous,
            Joins::AboveAlpha => pvalue > alpha,
        };
        let rebaselined = match self.learned(window) {
            Some(values) => {
                self.history.extend(&values);
                self.take(window, anomalous, false)
            }
            None => {
                let joins = joins || self.flat();
                if anomalous && joins {
                    self.history.extend(window);
                }
                self.take(window, anomalous, joins)
            }
        };
        if self.rebaseline > 0 {
            stats.push(("rebaselined".into(), if rebaselined { 1.0 } else { 0.0 }));
        }
        Some(Verdict { pvalue, anomalous, stats })
    }

    /// The values of `window` as they join the history under the learning
    /// policy, or `None` when the policy leaves it to the verdict.
    fn learned(&self, window: &[f64]) -> Option<Vec<f64>> {
        let k = match self.learn {
            Learn::Verdict => return None,
            Learn::Every => return Some(window.to_vec()),
            Learn::EveryFrom(k) => {
                let enough = self.history.windows().is_some_and(|w| w >= k);
                return enough.then(|| window.to_vec());
            }
            Learn::Winsorized(k) => k,
        };
        let (mean, var) = self.history.mean_variance()?;
        let var = var.max(self.history.variance_floor());
        let reach = k * var.sqrt();
        if !(reach.is_finite() && mean.is_finite()) {
            return Some(window.to_vec());
        }
        Some(window.iter().map(|x| x.clamp(mean - reach, mean + reach)).collect())
    }

    /// Whether the history has no spread yet: it then takes in every
    /// window, because it cannot tell noise from change (a one-value first
    /// window, or a flat start, would otherwise keep every later window
    /// out and alarm forever).
    fn flat(&self) -> bool {
        self.history.mean_variance().is_some_and(|(_, v)| v == 0.0)
    }

    /// Adds a window to the history without scoring it.
    pub fn seed(&mut self, window: &[f64]) {
        self.history.extend(window);
    }

    /// Takes a scored window into the state; true if it rebaselined. A
    /// normal window joins the history and ends the anomalous run; an
    /// anomalous one extends the run.
    pub fn absorb(&mut self, window: &[f64], anomalous: bool) -> bool {
        self.take(window, anomalous, !anomalous)
    }

    /// [`Baseline::absorb`], where a window that is not anomalous joins the
    /// history only if `joins`.
    fn take(&mut self, window: &[f64], anomalous: bool, joins: bool) -> bool {
        self.windows_seen += 1;
        if !anomalous {
            if joins {
                self.history.extend(window);
            }
            self.streak = 0;
            if self.candidate.count() > 0 {
                self.candidate = self.candidate.fresh();
            }
            return false;
        }
        self.windows_anomalous += 1;
        if self.rebaseline == 0 {
            return false;
        }
        self.streak += 1;
        self.candidate.extend(window);
        if self.streak < self.rebaseline {
            return false;
        }
        let fresh = self.candidate.fresh();
        self.history = std::mem::replace(&mut self.candidate, fresh);
        self.rebuilt = Rebuilt(true);
        self.streak = 0;
        self.rebaselines += 1;
        true
    }

    /// Appends the state to `w` in its [`Layout`] and returns the bytes; `w`
    /// holds what the detector saves first (its format byte).
    pub fn save(&self, mut w: ByteWriter) -> Vec<u8> {
        self.write(&mut w);
        w.finish()
    }

    /// Appends the state to `w` in its [`Layout`].
    pub fn write(&self, w: &mut ByteWriter) {
        w.u64(self.windows_seen).u64(self.windows_anomalous);
        match self.layout {
            Layout::CountersFirst => {
                w.u64(self.rebaselines).u64(self.streak);
                self.history.write(w);
                self.candidate.write(w);
            }
            Layout::HistoryFirst => {
                self.history.write(w);
                if self.rebaseline > 0 {
                    w.u64(self.rebaselines).u64(self.streak);
                    self.candidate.write(w);
                }
            }
        }
    }

    /// Writes what changed since [`Baseline::checkpoint`] (see
    /// [`History::write_changes`]): the counters, then the history's and
    /// the run's own changes, in its [`Layout`].
    pub fn write_changes(&self, w: &mut ChangeWriter) {
        if self.rebuilt.0 {
            w.write(|b| self.write(b));
            w.moved();
            return;
        }
        w.write(|b| {
            b.u64(self.windows_seen).u64(self.windows_anomalous);
        });
        match self.layout {
            Layout::CountersFirst => {
                w.write(|b| {
                    b.u64(self.rebaselines).u64(self.streak);
                });
                self.history.write_changes(w);
                self.candidate.write_changes(w);
            }
            Layout::HistoryFirst => {
                self.history.write_changes(w);
                if self.rebaseline > 0 {
                    w.write(|b| {
                        b.u64(self.rebaselines).u64(self.streak);
                    });
                    self.candidate.write_changes(w);
                }
            }
        }
    }

    /// Starts tracking changes anew: the host holds the state as it is.
    pub fn checkpoint(&mut self) {
        self.history.checkpoint();
        self.candidate.checkpoint();
        self.rebuilt = Rebuilt(false);
    }

    /// Replaces the state with the rest of `r`, saved by
    /// [`Baseline::write`] under the same options; refuses trailing bytes.
    /// Changes nothing when it refuses.
    pub fn load(&mut self, mut r: ByteReader<'_>) -> Result<(), String> {
        let mut restored = self.clone();
        restored.read(&mut r)?;
        r.finish()?;
        *self = restored;
        Ok(())
    }

    /// Replaces the state with one saved by [`Baseline::write`], refusing
    /// a history saved under other options or a run this `rebaseline`
    /// cannot produce.
    pub fn read(&mut self, r: &mut ByteReader<'_>) -> Result<(), String> {
        let windows_seen = r.u64()?;
        let windows_anomalous = r.u64()?;
        let (rebaselines, streak, history, candidate) = match self.layout {
            Layout::CountersFirst => {
                let rebaselines = r.u64()?;
                let streak = r.u64()?;
                let history = self.history.read_like(r)?;
                (rebaselines, streak, history, self.history.read_like(r)?)
            }
            Layout::HistoryFirst => {
                let history = self.history.read_like(r)?;
                if self.rebaseline > 0 {
                    (r.u64()?, r.u64()?, history, self.history.read_like(r)?)
                } else {
                    (0, 0, history, self.history.fresh())
                }
            }
        };
        if let Some(e) =
            self.history.mismatch(&history).or_else(|| self.history.mismatch(&candidate))
        {
            return Err(e);
        }
        let streak_ok = if self.rebaseline == 0 { streak == 0 } else { streak < self.rebaseline };
        if !streak_ok || (streak == 0) != (candidate.count() == 0) {
            return Err(format!(
                "state has a run of {streak} anomalous windows holding {} values, which \
                 rebaseline {} cannot produce",
                candidate.count(),
                self.rebaseline
            ));
        }
        (self.history, self.candidate, self.streak) = (history, candidate, streak);
        self.rebuilt = Rebuilt(true);
        (self.windows_seen, self.windows_anomalous, self.rebaselines) =
            (windows_seen, windows_anomalous, rebaselines);
        Ok(())
    }

    /// The description: the history's figures, then what `settings` adds
    /// (the detector's options), then the counters `rebaseline`,
    /// `anomalous_run`, `rebaselines`, `windows_seen`, `windows_anomalous`
    /// ([`Layout::HistoryFirst`]: `windows_seen`, `windows_anomalous`
    /// first).
    pub fn describe(&self, settings: impl FnOnce(Summary) -> Summary) -> Summary {
        let s = settings(self.history.describe(Summary::new()));
        let run = |s: Summary| {
            s.int("rebaseline", self.rebaseline as i64)
                .int("anomalous_run", self.streak as i64)
                .int("rebaselines", self.rebaselines as i64)
        };
        let seen = |s: Summary| {
            s.int("windows_seen", self.windows_seen as i64)
                .int("windows_anomalous", self.windows_anomalous as i64)
        };
        match self.layout {
            Layout::CountersFirst => seen(run(s)),
            Layout::HistoryFirst => run(seen(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{MovingWindow, Quantised, Windows};

    fn bytes(b: &Baseline) -> Vec<u8> {
        b.save(ByteWriter::new())
    }

    /// `Learn::EveryFrom(k)`: the verdict decides until the history
    /// remembers `k` windows, then every window joins, anomalous or not.
    #[test]
    fn every_from_k_windows_learns_every_window() {
        let always = |_: &Windows<MovingWindow>, _: &[f64]| (0.0, vec![]);
        let mut b = Baseline::of(Windows::new(MovingWindow::new(100), 100), 0)
            .with_learning(Learn::EveryFrom(3));
        b.seed(&[1.0, 2.0]);
        b.seed(&[2.0, 1.0]);
        assert_eq!(History::windows(b.history()), Some(2));
        assert!(b.score(&[50.0, 51.0], 0.01, always).unwrap().anomalous);
        assert_eq!(b.history().count(), 4, "two windows: the verdict decides");
        b.seed(&[1.0, 2.0]);
        assert!(b.score(&[50.0, 51.0], 0.01, always).unwrap().anomalous);
        assert_eq!((b.history().count(), History::windows(b.history())), (8, Some(4)), "learned");
        let mut every = Baseline::of(MovingWindow::new(10), 0).with_learning(Learn::Every);
        every.seed(&[1.0, 2.0]);
        assert!(every.score(&[50.0], 0.01, |_, _| (0.0, vec![])).unwrap().anomalous);
        assert_eq!(every.history().len(), 3);
    }

    #[test]
    fn a_run_of_k_anomalous_windows_replaces_the_history() {
        let mut b = Baseline::new(4, 2);
        b.seed(&[1.0, 2.0]);
        assert!(!b.absorb(&[3.0], false));
        assert!(!b.absorb(&[9.0], true));
        assert_eq!((b.streak(), b.candidate().len()), (1, 1));
        assert!(b.absorb(&[8.0, 7.0], true));
        assert_eq!((b.history().len(), b.history().mean()), (3, 8.0));
        assert_eq!((b.streak(), b.candidate().len(), b.rebaselines()), (0, 0, 1));
        assert_eq!((b.windows_seen(), b.windows_anomalous()), (3, 2));
    }

    #[test]
    fn above_alpha_keeps_a_window_at_alpha_out_but_ends_the_run() {
        let test = |_: &MovingWindow, _: &[f64]| (0.01, vec![]);
        // Two distinct values: a history with spread (one without takes
        // every window in, see `a_history_without_spread_takes_every_window`).
        let mut b = Baseline::new(10, 3).with_joins(Joins::AboveAlpha);
        b.seed(&[1.0, 3.0]);
        b.absorb(&[5.0], true);
        let v = b.score(&[2.0], 0.01, test).unwrap();
        assert!(!v.anomalous);
        assert_eq!((b.history().len(), b.streak(), b.candidate().len()), (2, 0, 0));
        let mut b = Baseline::new(10, 3);
        b.seed(&[1.0, 3.0]);
        b.score(&[2.0], 0.01, test).unwrap();
        assert_eq!(b.history().len(), 3);
    }

    /// Issue 9: a sliding window's first window holds one value; as the
    /// whole history it has no spread, every later window came out
    /// "certainly changed", none joined, and the detector flagged
    /// everything for ever.
    #[test]
    fn a_history_without_spread_takes_every_window() {
        let certain = |_: &MovingWindow, _: &[f64]| (0.0, vec![]);
        let mut b = Baseline::new(100, 0);
        b.seed(&[10.0]);
        assert!(b.score(&[10.5, 9.0], 0.001, certain).unwrap().anomalous);
        assert_eq!(b.history().len(), 3, "a flat history learns even from an anomalous window");
        b.score(&[50.0], 0.001, certain).unwrap();
        assert_eq!(b.history().len(), 3, "once it has spread, the verdict decides again");
    }

    #[test]
    fn winsorized_learning_clips_outliers_but_follows_a_lasting_change() {
        let never = |_: &MovingWindow, _: &[f64]| (1.0, vec![]);
        let mut b = Baseline::new(1000, 0).with_learning(Learn::Winsorized(3.0));
        b.seed(&[9.0, 11.0, 9.0, 11.0]);
        let sd = b.history().variance().sqrt();
        b.score(&[1000.0], 0.001, never).unwrap();
        assert_eq!(b.history().len(), 5);
        assert!((b.history().mean() - (40.0 + 10.0 + 3.0 * sd) / 5.0).abs() < 1e-9);
        // A lasting shift to 100 is learned within a few dozen windows.
        for _ in 0..60 {
            b.score(&[100.0; 5], 0.001, never);
        }
        assert!(b.history().mean() > 90.0, "{}", b.history().mean());
        // A flat history clips to the data's resolution, not to nothing.
        let never = |_: &Quantised<MovingWindow>, _: &[f64]| (1.0, vec![]);
        let q = Quantised::new(MovingWindow::new(1000));
        let mut b = Baseline::of(q, 0).with_learning(Learn::Winsorized(3.0));
        b.seed(&[0.0; 9]);
        b.seed(&[1.0]);
        b.seed(&[0.0; 90]);
        let (mean, var) = b.history().mean_variance().unwrap();
        b.score(&[1000.0], 0.001, never);
        let reach = 3.0 * var.max(1.0 / 12.0).sqrt();
        assert!((b.history().mean() - (mean * 100.0 + mean + reach) / 101.0).abs() < 1e-9);
    }

    #[test]
    fn history_first_saves_no_run_when_rebaseline_is_off() {
        let mut b = Baseline::new(3, 0).with_layout(Layout::HistoryFirst);
        b.seed(&[1.0, 2.0]);
        b.absorb(&[1.5], false);
        let mut want = ByteWriter::new();
        want.u64(1).u64(0);
        b.history().write(&mut want);
        assert_eq!(bytes(&b), want.finish());
        let names: Vec<String> =
            b.describe(|s| s.num("alpha", 0.5)).entries().iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(
            names,
            [
                "n",
                "mean",
                "stddev",
                "size",
                "alpha",
                "windows_seen",
                "windows_anomalous",
                "rebaseline",
                "anomalous_run",
                "rebaselines"
            ]
        );
    }

    #[test]
    fn loads_exactly_and_refuses_other_options_without_changing() {
        for layout in [Layout::CountersFirst, Layout::HistoryFirst] {
            let mut b = Baseline::new(5, 3).with_layout(layout);
            b.seed(&[1.0, 2.0, 3.0]);
            b.absorb(&[2.0], false);
            b.absorb(&[9.0, 9.5], true);
            let saved = bytes(&b);
            let mut c = Baseline::new(5, 3).with_layout(layout);
            c.load(ByteReader::new(&saved)).unwrap();
            assert_eq!(c, b);
            let mut other = Baseline::new(6, 3).with_layout(layout);
            let e = other.load(ByteReader::new(&saved)).unwrap_err();
            assert_eq!(e, "state was saved with size 5, this detector has size 6");
            let mut short = Baseline::new(5, 1).with_layout(layout);
            let e = short.load(ByteReader::new(&saved)).unwrap_err();
            assert!(e.contains("rebaseline 1 cannot produce"), "{e}");
            assert_eq!(short, Baseline::new(5, 1).with_layout(layout));
            let mut extra = saved.clone();
            extra.push(0);
            assert!(c.load(ByteReader::new(&extra)).unwrap_err().contains("trailing"));
        }
    }
}
