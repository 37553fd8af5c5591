//! `MovingWindow`: the last `cap` values with O(1) mean and variance, for
//! detectors that keep a history (the t-test, z-score and level/spread
//! detectors use it; plugin authors may too).
//!
//! Adds and removes use Welford's updates (as the Kapacitor guide's
//! `MovingStats`), but every `cap` removals the mean and sum of squares are
//! recomputed exactly with a two-pass sum over the window, so rounding error
//! cannot accumulate over a long stream. The recomputation costs O(cap) once
//! per `cap` removals: amortized O(1) per value.
//!
//! Values live in a fixed ring of slots and [`MovingWindow::write`] saves
//! them in slot order, so adding k values changes only k slots of the saved
//! bytes (plus a 48-byte header): a host that persists only changed chunks
//! of state (tickwatch does) then writes in proportion to the new data, not
//! to the whole history.
//!
//! It also remembers which slots it wrote since the host last took its
//! state ([`History::write_changes`]): at most `cap` pushes land on one run
//! of slots around the ring, so a window's changes are the header and at
//! most two runs of slots.
//!
//! It is the [`History`] of the shipped window-based detectors' baselines.

use super::{History, mean_ss_lanes, mean_var};
use crate::Summary;
use crate::changes::ChangeWriter;
use crate::codec::{ByteReader, ByteWriter, CodecError};

/// Bytes [`MovingWindow::write`] puts before the slots.
pub const HEADER_BYTES: usize = 6 * 8;

/// Fewest values [`MovingWindow::extend`] replaces in one run when full;
/// shorter runs go value by value (Welford's updates), so windows of a few
/// values are kept exactly as [`MovingWindow::push`] keeps them.
const BATCH_MIN: usize = 16;

/// Accumulators per sum in [`swap_in`].
const LANES: usize = 4;

/// Writes `xs` over `slots` (same length) and returns, with `d = x − m` for
/// each new value and `e = o − m` for the old one it overwrites,
/// `Σ(d − e) = Σ(x − o)` and `Σ(x − o)(d + e)` (see
/// [`MovingWindow::replace`]).
fn swap_in(slots: &mut [f64], xs: &[f64], m: f64) -> (f64, f64) {
    // Two sums in two loops: in one, the compiler paired each lane of one
    // sum with the same lane of the other instead of making vectors of
    // lanes. The values are in cache for the second.
    let s = lanes(slots, xs, |o, x| x - o);
    let q = lanes(slots, xs, |o, x| (x - o) * ((x - m) + (o - m)));
    slots.copy_from_slice(xs);
    (s, q)
}

/// `Σ f(oᵢ, xᵢ)` over two slices of the same length, in [`LANES`]
/// accumulators.
fn lanes(olds: &[f64], news: &[f64], f: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [0.0; LANES];
    let (o, x) = (olds.chunks_exact(LANES), news.chunks_exact(LANES));
    let tail = o.remainder().iter().zip(x.remainder());
    for (o, x) in o.zip(x) {
        for i in 0..LANES {
            acc[i] += f(o[i], x[i]);
        }
    }
    for (i, (&o, &x)) in tail.enumerate() {
        acc[i] += f(o, x);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// A moving window of the last `cap` values (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct MovingWindow {
    cap: usize,
    /// Ring slots; grows to `cap`, then the oldest slot is overwritten.
    slots: Vec<f64>,
    /// Slot of the oldest value once the ring is full (0 while filling).
    head: usize,
    mean: f64,
    /// Sum of squared deviations from the mean.
    m2: f64,
    removals_since_exact: usize,
    /// Which slots changed since the last checkpoint.
    dirty: Dirty,
}

/// The slots a [`MovingWindow`] wrote since its last checkpoint: `pushes`
/// pushes from slot `mark` on, around the ring. Bookkeeping, not state:
/// compares equal to any other.
#[derive(Debug, Clone)]
struct Dirty {
    /// No checkpoint (new, read or cleared): every byte is new.
    whole: bool,
    /// Slot of the first push after the checkpoint.
    mark: usize,
    /// Pushes since (counted up to `cap`: more cover every slot).
    pushes: usize,
    /// Values held at the checkpoint.
    saved_len: usize,
}

impl Dirty {
    fn whole() -> Self {
        Self { whole: true, mark: 0, pushes: 0, saved_len: 0 }
    }
}

impl PartialEq for Dirty {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl MovingWindow {
    /// An empty window holding at most `cap` values.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            slots: Vec::new(),
            head: 0,
            mean: 0.0,
            m2: 0.0,
            removals_since_exact: 0,
            dirty: Dirty::whole(),
        }
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The most values held.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Mean of the values held (0 when empty).
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Sample variance (ddof = 1); 0 for fewer than two values, as the guide.
    pub fn variance(&self) -> f64 {
        if self.slots.len() < 2 { 0.0 } else { self.m2 / (self.slots.len() - 1) as f64 }
    }

    /// Empties the window (keeps its capacity).
    pub fn clear(&mut self) {
        *self = Self::new(self.cap);
    }

    /// Pushes every value of `xs`, in order: value by value while the
    /// window fills and for runs shorter than 16 values, otherwise a
    /// run of up to `cap` values at a time replaces as many of the oldest
    /// ([`MovingWindow::replace`]). The statistics then agree with pushing
    /// value by value within rounding (relative 1e-12 or so, exactly on
    /// constant data); the slots, head and length are the same, and so are
    /// the saved bytes but for the header's mean, sum of squares and count
    /// of removals since the exact recomputation (done at the end of the
    /// run that reaches `cap` removals, not at the value that does).
    pub fn extend(&mut self, xs: &[f64]) {
        let fill = (self.cap - self.slots.len()).min(xs.len());
        let (filling, rest) = xs.split_at(fill);
        filling.iter().for_each(|&x| self.push(x));
        if rest.len() < BATCH_MIN || self.cap < BATCH_MIN {
            rest.iter().for_each(|&x| self.push(x));
            return;
        }
        // Full: the filling above took what room there was.
        for run in rest.chunks(self.cap) {
            if run.len() < BATCH_MIN {
                run.iter().for_each(|&x| self.push(x));
            } else {
                self.replace(run);
            }
        }
    }

    /// Replaces the `k = run.len()` oldest values (1 ≤ k ≤ cap, window
    /// full) with `run`, in one pass over both that keeps sums of
    /// deviations from the old mean `m`: with `dᵢ = xᵢ − m` for a new value
    /// and `eᵢ = oᵢ − m` for the value it replaces, `s = Σ(dᵢ − eᵢ)` and
    /// `q = Σ(dᵢ − eᵢ)(dᵢ + eᵢ)`, the new mean is `m + s/n` and the sum of
    /// squares `m2 + q − s²/n` (the sum of squares about `m` changes by `q`,
    /// and moving its centre to the new mean takes `s²/n` off). Two
    /// divisions per run instead of two dependent ones per value, and sums
    /// the compiler keeps in vector registers. Deviations from `m`, not raw
    /// values, keep a large offset out of the sums; the exact recomputation
    /// still follows every `cap` removals. Constant data stays exact: every
    /// deviation is 0.
    fn replace(&mut self, run: &[f64]) {
        let k = run.len();
        debug_assert!(self.slots.len() == self.cap && (1..=self.cap).contains(&k));
        let m = self.mean;
        let first = (self.cap - self.head).min(k);
        let (a, b) = run.split_at(first);
        let (s1, q1) = swap_in(&mut self.slots[self.head..self.head + first], a, m);
        let (s2, q2) = swap_in(&mut self.slots[..b.len()], b, m);
        let (s, q) = (s1 + s2, q1 + q2);
        let n = self.cap as f64;
        self.mean = m + s / n;
        self.m2 += q - s * s / n;
        if self.m2 < 0.0 {
            self.m2 = 0.0;
        }
        self.head += k;
        if self.head >= self.cap {
            self.head -= self.cap;
        }
        self.dirty.pushes = (self.dirty.pushes + k).min(self.cap);
        self.removals_since_exact += k;
        if self.removals_since_exact >= self.cap {
            self.removals_since_exact = 0;
            (self.mean, self.m2) = mean_ss_lanes(&self.slots);
        }
    }

    /// Adds `x`, dropping the oldest value when full.
    pub fn push(&mut self, x: f64) {
        if self.dirty.pushes < self.cap {
            self.dirty.pushes += 1;
        }
        if self.slots.len() < self.cap {
            if self.slots.len() == self.slots.capacity() {
                // Doubling, but never past `cap`: a full window holds
                // `cap` slots, not the next power of two (3,600 values
                // would otherwise take 4,096 slots).
                let more = self.slots.len().max(4).min(self.cap - self.slots.len());
                self.slots.reserve_exact(more);
            }
            self.slots.push(x);
        } else {
            let old = self.slots[self.head];
            self.remove(old);
            self.slots[self.head] = x;
            // Not `% cap`: an integer division per value is most of a push.
            self.head += 1;
            if self.head == self.cap {
                self.head = 0;
            }
            if self.removals_since_exact >= self.cap {
                // Exact over the slots, x included.
                self.recompute();
                return;
            }
        }
        let n = self.slots.len() as f64;
        let d = x - self.mean;
        self.mean += d / n;
        self.m2 += d * (x - self.mean);
    }

    /// Takes `old` out of the statistics; the slots still hold `cap` values,
    /// the caller overwrites the oldest with the new one.
    fn remove(&mut self, old: f64) {
        let n = self.slots.len() - 1;
        if n == 0 {
            self.mean = 0.0;
            self.m2 = 0.0;
            return;
        }
        self.removals_since_exact += 1;
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
        let (mean, var) = mean_var(&self.slots);
        self.mean = mean;
        self.m2 = var * (self.slots.len().saturating_sub(1)) as f64;
    }

    /// Saves the window (header, then the slots in ring order).
    pub fn write(&self, w: &mut ByteWriter) {
        w.u64(self.cap as u64)
            .f64(self.mean)
            .f64(self.m2)
            .u64(self.removals_since_exact as u64)
            .u64(self.head as u64)
            .u64(self.slots.len() as u64)
            .f64s(&self.slots);
    }

    /// Reads a window saved by [`MovingWindow::write`], refusing
    /// inconsistent headers.
    pub fn read(r: &mut ByteReader<'_>) -> Result<Self, CodecError> {
        let cap = r.u64()? as usize;
        let mean = r.f64()?;
        let m2 = r.f64()?;
        let removals_since_exact = r.u64()? as usize;
        let head = r.u64()? as usize;
        let n = r.len(8)?;
        if cap < 2 || n > cap || (head != 0 && (n != cap || head >= cap)) {
            return Err(r.error(&format!("history holds {n} values with size {cap}, head {head}")));
        }
        let mut slots = Vec::with_capacity(n);
        r.f64s(n, &mut slots)?;
        Ok(Self { cap, slots, head, mean, m2, removals_since_exact, dirty: Dirty::whole() })
    }

    /// The slot the next push writes.
    fn next_slot(&self) -> usize {
        if self.slots.len() < self.cap { self.slots.len() } else { self.head }
    }

    /// Writes what changed since [`MovingWindow::checkpoint`] (see
    /// [`History::write_changes`]): the header, then the runs of slots
    /// pushed since.
    pub fn write_changes(&self, w: &mut ChangeWriter) {
        let d = &self.dirty;
        if d.whole || !w.stable() || d.pushes >= self.cap {
            w.write(|b| self.write(b));
            if d.whole || d.saved_len != self.slots.len() {
                w.moved();
            }
            return;
        }
        let len = self.slots.len();
        if d.pushes == 0 {
            // Only pushes change a window (clear starts a whole new one).
            w.skip(HEADER_BYTES + len * 8);
            return;
        }
        w.write(|b| {
            // The header and (below) the slots pushed: one allocation.
            b.reserve(HEADER_BYTES + d.pushes * 8)
                .u64(self.cap as u64)
                .f64(self.mean)
                .f64(self.m2)
                .u64(self.removals_since_exact as u64)
                .u64(self.head as u64)
                .u64(self.slots.len() as u64);
        });
        // Slots mark, mark+1, … (mod cap) were written, all below len.
        let end = d.mark + d.pushes;
        let runs = if end > self.cap {
            [(0, end - self.cap), (d.mark, len)]
        } else {
            [(0, 0), (d.mark, end.min(len))]
        };
        let mut at = 0;
        for (from, to) in runs {
            if from >= to {
                continue;
            }
            w.skip((from - at) * 8);
            w.write(|b| {
                b.f64s(&self.slots[from..to]);
            });
            at = to;
        }
        w.skip((len - at) * 8);
        if d.saved_len != len {
            w.moved();
        }
    }

    /// Starts tracking changes anew: the host holds the state as it is.
    pub fn checkpoint(&mut self) {
        self.dirty =
            Dirty { whole: false, mark: self.next_slot(), pushes: 0, saved_len: self.slots.len() };
    }
}

/// A baseline of the last `cap` normal values.
impl History for MovingWindow {
    fn fresh(&self) -> Self {
        Self::new(self.cap)
    }

    fn count(&self) -> u64 {
        self.slots.len() as u64
    }

    fn extend(&mut self, values: &[f64]) {
        MovingWindow::extend(self, values);
    }

    fn write(&self, w: &mut ByteWriter) {
        MovingWindow::write(self, w);
    }

    fn read_like(&self, r: &mut ByteReader<'_>) -> Result<Self, CodecError> {
        Self::read(r)
    }

    fn write_changes(&self, w: &mut ChangeWriter) {
        MovingWindow::write_changes(self, w);
    }

    fn checkpoint(&mut self) {
        MovingWindow::checkpoint(self);
    }

    fn mismatch(&self, saved: &Self) -> Option<String> {
        (saved.cap != self.cap).then(|| {
            format!("state was saved with size {}, this detector has size {}", saved.cap, self.cap)
        })
    }

    /// The mean and sample variance, once a value is held.
    fn mean_variance(&self) -> Option<(f64, f64)> {
        (!self.is_empty()).then(|| (self.mean, self.variance()))
    }

    /// `n`, `mean`, `stddev`, `size`.
    fn describe(&self, summary: Summary) -> Summary {
        summary
            .int("n", self.len() as i64)
            .num("mean", self.mean())
            .num("stddev", self.variance().sqrt())
            .int("size", self.cap as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::mean_var;
    use crate::window::tests::uniform;

    fn naive(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        (m, xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0))
    }

    #[test]
    fn tracks_the_last_cap_values() {
        let mut w = MovingWindow::new(3);
        w.extend(&[1.0, 2.0, 3.0, 10.0, 20.0]);
        assert_eq!(w.len(), 3);
        let (m, v) = naive(&[3.0, 10.0, 20.0]);
        assert!((w.mean() - m).abs() < 1e-12);
        assert!((w.variance() - v).abs() < 1e-9);
        w.clear();
        assert!(w.is_empty() && w.cap() == 3 && w.mean() == 0.0);
    }

    #[test]
    fn constant_data_has_its_value_as_mean_and_zero_variance() {
        assert_eq!(mean_var(&[0.1; 300]), (0.1, 0.0));
        assert_eq!(mean_var(&[7.25]), (7.25, 0.0));
        let mut w = MovingWindow::new(10);
        w.extend(&[0.1; 35]); // several exact recomputations
        assert_eq!((w.mean(), w.variance()), (0.1, 0.0));
    }

    #[test]
    fn stays_accurate_over_a_long_stream_with_a_large_offset() {
        let mut w = MovingWindow::new(500);
        let mut all = Vec::new();
        let mut s: u64 = 12345;
        for _ in 0..200_000 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let x = 1e6 + ((s >> 11) as f64 / (1u64 << 53) as f64) * 1e-3;
            w.push(x);
            all.push(x);
        }
        let (m, v) = mean_var(&all[all.len() - 500..]);
        assert!(((w.mean() - m) / m).abs() < 1e-14);
        assert!(((w.variance() - v) / v).abs() < 1e-6, "{} vs {}", w.variance(), v);
    }

    #[test]
    fn save_load_is_bit_exact() {
        let mut w = MovingWindow::new(4);
        w.extend(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.7]);
        let mut bw = ByteWriter::new();
        w.write(&mut bw);
        let bytes = bw.finish();
        let mut r = ByteReader::new(&bytes);
        let back = MovingWindow::read(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(back, w);
    }

    #[test]
    fn adding_k_values_changes_only_k_slots_of_the_saved_bytes() {
        let bytes = |w: &MovingWindow| {
            let mut bw = ByteWriter::new();
            w.write(&mut bw);
            bw.finish()
        };
        let mut w = MovingWindow::new(3600);
        for i in 0..5000 {
            w.push(220.0 + (i % 17) as f64 * 0.1);
        }
        let before = bytes(&w);
        for i in 0..300 {
            w.push(219.0 + (i % 13) as f64 * 0.1);
        }
        let after = bytes(&w);
        assert_eq!(before.len(), after.len());
        let changed: Vec<usize> = (0..3600)
            .filter(|i| {
                let s = HEADER_BYTES + i * 8;
                before[s..s + 8] != after[s..s + 8]
            })
            .collect();
        assert!(changed.len() <= 300, "{} slots changed", changed.len());
        assert_eq!(changed.first(), Some(&1400));
        assert_eq!(changed.last(), Some(&1699));
    }

    /// Feeds `xs` in runs of `run` values to one window by `extend` and to
    /// another value by value; returns both.
    fn both(cap: usize, xs: &[f64], run: usize) -> (MovingWindow, MovingWindow) {
        let (mut batch, mut single) = (MovingWindow::new(cap), MovingWindow::new(cap));
        for r in xs.chunks(run) {
            batch.extend(r);
            r.iter().for_each(|&x| single.push(x));
        }
        (batch, single)
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
    }

    /// The run update (`replace`) against Welford's value by value, on
    /// random data, long and short runs, runs that wrap the ring and runs
    /// longer than the window; against the exact statistics too.
    #[test]
    fn a_full_window_holds_cap_slots_not_a_power_of_two() {
        for cap in [1, 5, 300, 3600] {
            let mut w = MovingWindow::new(cap);
            (0..cap + 7).for_each(|i| w.push(i as f64));
            assert_eq!(w.slots.capacity(), cap);
            let mut w = MovingWindow::new(cap);
            w.extend(&vec![1.5; cap * 2 + 1]);
            assert_eq!(w.slots.capacity(), cap);
        }
    }

    #[test]
    fn extending_by_runs_agrees_with_pushing_value_by_value() {
        let xs = uniform(7, 20_000, 15.0, 25.0);
        for (cap, run) in [(3600, 300), (500, 300), (500, 17), (100, 250), (64, 16), (50, 15)] {
            let (b, s) = both(cap, &xs, run);
            assert_eq!((&b.slots, b.head, b.len()), (&s.slots, s.head, s.len()), "{cap} {run}");
            assert!(close(b.mean(), s.mean(), 1e-14), "{cap} {run}: {} {}", b.mean(), s.mean());
            assert!(close(b.variance(), s.variance(), 1e-10), "{cap} {run}");
            let (m, v) = mean_var(&xs[xs.len() - cap..]);
            assert!(close(b.mean(), m, 1e-14) && close(b.variance(), v, 1e-10), "{cap} {run}");
        }
        // Runs shorter than 16 values (or a window of fewer) go value by
        // value: exactly Welford's.
        let (b, s) = both(50, &xs, 15);
        assert_eq!((b.mean().to_bits(), b.m2.to_bits()), (s.mean().to_bits(), s.m2.to_bits()));
        let (b, s) = both(8, &xs, 300);
        assert_eq!((b.mean().to_bits(), b.m2.to_bits()), (s.mean().to_bits(), s.m2.to_bits()));
    }

    /// Constant data: exactly its value and 0, by runs as value by value,
    /// through several exact recomputations.
    #[test]
    fn constant_data_by_runs_has_exactly_its_value_and_zero_variance() {
        for v in [0.1, 220.0, -3.7e9, 0.0] {
            let xs = vec![v; 5000];
            let (b, s) = both(360, &xs, 300);
            assert_eq!((b.mean(), b.variance()), (v, 0.0), "{v}");
            assert_eq!((b.mean(), b.variance()), (s.mean(), s.variance()), "{v}");
            assert_eq!(b.mean_variance(), Some((v, 0.0)));
        }
    }

    /// A level far from 0 with a spread 1e9 times smaller: the run update
    /// sums deviations from the mean, so the offset does not swamp it.
    #[test]
    fn runs_stay_accurate_with_a_large_offset() {
        let xs = uniform(99, 200_000, 1e6, 1e6 + 1e-3);
        let (b, s) = both(3600, &xs, 300);
        let (m, v) = mean_var(&xs[xs.len() - 3600..]);
        assert!(close(b.mean(), m, 1e-15), "{} vs {m}", b.mean());
        assert!(close(b.variance(), v, 1e-6), "{} vs {v}", b.variance());
        assert!(close(b.variance(), s.variance(), 1e-6));
        // Between recomputations too: 11 runs after the last one.
        let (b, _) = both(3600, &xs[..3600 + 11 * 300], 300);
        let (m, v) = mean_var(&xs[11 * 300..3600 + 11 * 300]);
        assert!(b.removals_since_exact == 3300 && close(b.mean(), m, 1e-15));
        assert!(close(b.variance(), v, 1e-6), "{} vs {v}", b.variance());
    }

    /// A level shift: the run update moves the mean at once and the sum of
    /// squares never goes below 0; once the window is all the new level,
    /// the recomputation makes its variance exactly 0 again.
    #[test]
    fn runs_across_a_level_shift_then_flat() {
        let mut xs = uniform(3, 3600, 20.0, 21.0);
        xs.extend(std::iter::repeat_n(500.0, 3600 * 3));
        let (b, s) = both(3600, &xs, 300);
        assert_eq!((b.mean(), b.variance()), (500.0, 0.0));
        assert!(close(b.mean(), s.mean(), 1e-12));
        // Half way through the shift: 1800 old values, 1800 of 500.
        let (b, _) = both(3600, &xs[..5400], 300);
        let (m, v) = mean_var(&xs[1800..5400]);
        assert!(close(b.mean(), m, 1e-14) && close(b.variance(), v, 1e-12), "{}", b.variance());
    }

    /// What a run writes saves and loads as before: the state of a window
    /// fed by runs reads back bit for bit, and its slots are where pushing
    /// value by value puts them.
    #[test]
    fn a_window_fed_by_runs_saves_its_slots_where_pushes_put_them() {
        let xs = uniform(11, 4100, 0.0, 1.0);
        let (b, s) = both(1000, &xs, 300);
        let bytes = |w: &MovingWindow| {
            let mut bw = ByteWriter::new();
            w.write(&mut bw);
            bw.finish()
        };
        let (bb, sb) = (bytes(&b), bytes(&s));
        assert_eq!(bb.len(), sb.len());
        assert_eq!(&bb[HEADER_BYTES - 16..], &sb[HEADER_BYTES - 16..], "head, length, slots");
        assert_eq!(&bb[..8], &sb[..8], "size");
        let back = MovingWindow::read(&mut ByteReader::new(&bb)).unwrap();
        assert_eq!(back, b);
    }
}
