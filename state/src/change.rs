//! What a commit carries per field: the whole state, or the byte ranges that
//! changed since the generation the store last committed for it.
//!
//! Detector bytes stay opaque here: a [`Ranges`] is offsets and bytes. The
//! rule (the plugin API's, `tickwatch_plugin_api::changes`): resizing the
//! state of generation `base` to `len` (new bytes zero) and copying every
//! span into it, in order, gives the state of `generation`. Generations
//! let the store refuse ranges taken against a state it does not hold
//! ([`crate::StateError::MissedCommit`]: a commit that failed, a restore,
//! a reload), so the caller sends the whole state instead.

use crate::snapshot::{FieldState, Provenance};

/// One field's new state for [`crate::StateStore::commit_changes`].
#[derive(Debug, Clone, PartialEq)]
pub struct FieldUpdate {
    /// Kapacitor's group id ("" when ungrouped).
    pub group: String,
    /// The tracked field's name.
    pub field: String,
    /// Who built the state, and up to when.
    pub provenance: Provenance,
    /// The state, whole or as changes.
    pub change: StateChange,
}

/// A field's new state: whole, or ranges against the last committed one.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    /// The whole state, with the detector's generation when it has one.
    Whole {
        /// The state bytes.
        state: Vec<u8>,
        /// The generation these bytes are (`None`: the detector does not
        /// report changes).
        generation: Option<u64>,
    },
    /// Changed ranges.
    Ranges(Ranges),
}

/// Changed byte ranges of a state, from generation `base` to `generation`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges {
    /// The generation the ranges were taken against.
    pub base: u64,
    /// The generation they lead to.
    pub generation: u64,
    /// The state's new length.
    pub len: u64,
    /// `(offset, length)` of each range, in order; each within `len`.
    pub spans: Vec<(u64, u64)>,
    /// The ranges' bytes, one after another.
    pub data: Vec<u8>,
}

impl Ranges {
    /// Each range's offset and bytes (ranges past the data are empty).
    pub fn iter(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        let mut at = 0usize;
        self.spans.iter().map(move |&(off, len)| {
            let len = len as usize;
            let bytes = self.data.get(at..at.saturating_add(len)).unwrap_or(&[]);
            at = at.saturating_add(len);
            (off as usize, bytes)
        })
    }

    /// Whether every span lies within `len` and the data is exactly theirs.
    pub fn is_consistent(&self) -> bool {
        let mut total: u64 = 0;
        for &(off, n) in &self.spans {
            match off.checked_add(n) {
                Some(end) if end <= self.len => total = total.saturating_add(n),
                _ => return false,
            }
        }
        total == self.data.len() as u64
    }

    /// Applies the ranges to `state` (the state of generation `base`).
    pub fn apply(&self, state: &mut Vec<u8>) {
        state.resize(self.len as usize, 0);
        for (off, bytes) in self.iter() {
            let end = off.saturating_add(bytes.len()).min(state.len());
            if off < end {
                state[off..end].copy_from_slice(&bytes[..end - off]);
            }
        }
    }

    /// The footprint past which chained ranges of a state of `len` bytes
    /// are folded ([`Ranges::compact`]): an eighth over the state (at least 4 KiB): folding copies at most
    /// the state's bytes, so it costs at most eight bytes copied per byte
    /// chained, and a waiting field holds about its state, not twice it.
    fn fold_limit(len: u64) -> usize {
        let len = len as usize;
        len.saturating_add((len / 8).max(4096))
    }

    /// Writes `next`'s bytes over the bytes these ranges hold, when its
    /// length is theirs and each of its spans lies inside one of theirs
    /// (sorted and disjoint, as folding leaves them): once a field's
    /// waiting ranges cover what its windows change, further windows cost
    /// no memory. `false`, and nothing written, otherwise. Both must be
    /// consistent (`chain` checks it before pushing): every span ends
    /// within `len`, so the sums below do not overflow.
    fn overwrite(&mut self, next: &Ranges) -> bool {
        /// Past this many spans the ranges are not worth searching.
        const MOST_SPANS: usize = 64;
        debug_assert!(self.is_consistent() && next.is_consistent());
        if next.len != self.len || self.spans.len() > MOST_SPANS {
            return false;
        }
        let sorted = self.spans.windows(2).all(|w| w[0].0.saturating_add(w[0].1) <= w[1].0);
        if !sorted {
            return false;
        }
        // Where each of `next`'s spans goes in `data`.
        let place = |off: u64, n: u64| -> Option<usize> {
            let mut at = 0u64;
            for &(o, l) in &self.spans {
                if o <= off && off.checked_add(n)? <= o + l {
                    return usize::try_from(at + (off - o)).ok();
                }
                at += l;
            }
            None
        };
        if next.spans.iter().any(|&(off, n)| place(off, n).is_none()) {
            return false;
        }
        let mut from = 0usize;
        for &(off, n) in &next.spans {
            let (to, n) = (place(off, n).unwrap_or(0), n as usize);
            self.data[to..to + n].copy_from_slice(&next.data[from..from + n]);
            from += n;
        }
        true
    }

    /// Bytes the ranges hold (their data and spans).
    fn footprint(&self) -> usize {
        self.data.len().saturating_add(self.spans.len().saturating_mul(16))
    }

    /// The same change as sorted, disjoint spans (a later span's bytes win
    /// where spans overlap): at most `len` bytes of data. Works on the
    /// spans, not the bytes: each surviving byte is copied once.
    fn compact(&mut self, spare: &mut Spare) {
        let len = self.len as usize;
        // (offset, length, where its bytes start in `data`), clipped to `len`.
        let mut at = 0usize;
        let spans: Vec<(usize, usize, usize)> = self
            .spans
            .iter()
            .map(|&(off, n)| {
                let (off, n) = (off as usize, n as usize);
                let from = at;
                at = at.saturating_add(n);
                let end = off
                    .saturating_add(n)
                    .min(len)
                    .min(off.saturating_add(self.data.len().saturating_sub(from)));
                (off, end.saturating_sub(off), from)
            })
            .collect();
        // From the last span back: keep what no later span covers.
        // `covered`: start → end of the disjoint intervals the spans seen so
        // far cover (a map: spans in any order cost a logarithm each, not
        // a shift of every interval after them).
        let mut covered: std::collections::BTreeMap<usize, usize> = Default::default();
        let mut pieces: Vec<(usize, usize, usize)> = Vec::new();
        let mut touching: Vec<(usize, usize)> = Vec::new();
        for &(off, n, from) in spans.iter().rev() {
            if n == 0 {
                continue;
            }
            let end = off + n;
            // The intervals it overlaps or touches, last first (starting at
            // or before `end`, ending at or after `off`).
            touching.clear();
            touching.extend(
                covered.range(..=end).rev().map(|(&s, &e)| (s, e)).take_while(|&(_, e)| e >= off),
            );
            // What they leave uncovered of [off, end), in order.
            let mut pos = off;
            for &(cs, ce) in touching.iter().rev() {
                if cs > pos {
                    pieces.push((pos, cs.min(end) - pos, from + (pos - off)));
                }
                pos = pos.max(ce);
            }
            if pos < end {
                pieces.push((pos, end - pos, from + (pos - off)));
            }
            // Merged with them.
            let (mut lo, mut hi) = (off, end);
            for &(cs, ce) in &touching {
                covered.remove(&cs);
                lo = lo.min(cs);
                hi = hi.max(ce);
            }
            covered.insert(lo, hi);
        }
        pieces.sort_unstable_by_key(|&(off, _, _)| off);
        let mut out_spans: Vec<(u64, u64)> = Vec::with_capacity(pieces.len());
        // Exactly the folded bytes: later windows inside them are written
        // over them ([`Ranges::overwrite`]); others grow the buffer again.
        let size: usize = pieces.iter().map(|p| p.1).sum();
        let mut data = spare.take(size);
        for (off, n, from) in pieces {
            data.extend_from_slice(&self.data[from..from + n]);
            match out_spans.last_mut() {
                Some((o, l)) if *o + *l == off as u64 => *l += n as u64,
                _ => out_spans.push((off as u64, n as u64)),
            }
        }
        self.spans = out_spans;
        spare.give(std::mem::replace(&mut self.data, data));
    }

    /// These ranges followed by `next` (taken against this generation), as
    /// one set, in place: spans past `next`'s length are cut; a state that
    /// grows gets the zeros `next`'s growth stands for (the base may be
    /// longer than this generation). Spans that overlap are folded together
    /// once they hold an eighth more than the state's bytes, so the ranges
    /// of many windows waiting for one commit take at most about that,
    /// whatever the number of windows; once folded, a window inside the
    /// folded spans is written over them. Buffers grow from `spare` (and
    /// buffers let go go back to it), so chaining window after window,
    /// commit after commit, copies the new bytes and allocates nothing.
    fn push(&mut self, next: Ranges, spare: &mut Spare) {
        if self.overwrite(&next) {
            self.generation = next.generation;
            spare.give(next.data);
            return;
        }
        if self.len > next.len {
            // Cut in place: each kept byte moves down at most.
            let cut = next.len as usize;
            let (mut at, mut to, mut kept) = (0usize, 0usize, 0usize);
            for i in 0..self.spans.len() {
                let (off, n) = (self.spans[i].0 as usize, self.spans[i].1 as usize);
                // A span past the data has no bytes (as `iter` gives it).
                let present = at.checked_add(n).is_some_and(|e| e <= self.data.len());
                let end = if present { off.saturating_add(n).min(cut) } else { off };
                if off < end {
                    self.data.copy_within(at..at + (end - off), to);
                    to += end - off;
                    self.spans[kept] = (off as u64, (end - off) as u64);
                    kept += 1;
                }
                at = at.saturating_add(n);
            }
            self.spans.truncate(kept);
            self.data.truncate(to);
        }
        // The bytes grow towards the limit below, then fold: the buffer
        // doubles (at most to that limit), so a field with few windows
        // waiting holds about their bytes, not twice its state.
        let grow = next.len.saturating_sub(self.len) as usize;
        let need = self.data.len() + grow + next.data.len();
        if self.data.capacity() < need {
            let room =
                self.data.capacity().saturating_mul(2).min(Self::fold_limit(next.len)).max(need);
            let mut buf = spare.take(room);
            buf.extend_from_slice(&self.data);
            spare.give(std::mem::replace(&mut self.data, buf));
        }
        if grow > 0 {
            self.spans.push((self.len, grow as u64));
            self.data.resize(self.data.len() + grow, 0);
        }
        self.spans.extend_from_slice(&next.spans);
        self.data.extend_from_slice(&next.data);
        spare.give(next.data);
        self.generation = next.generation;
        self.len = next.len;
        if self.footprint() > Self::fold_limit(self.len) {
            self.compact(spare);
        }
    }
}

/// Byte buffers let go by chained changes (and by commits, see
/// [`Spare::recycle`]), kept for the next ones: a pool of at most
/// [`Spare::BUFFERS`] buffers and [`Spare::BYTES`] bytes.
#[derive(Debug, Default)]
pub struct Spare {
    bufs: Vec<Vec<u8>>,
    /// Capacity of the buffers kept, summed.
    bytes: usize,
}

impl Spare {
    /// The most buffers kept.
    pub const BUFFERS: usize = 16;
    /// The most bytes (of capacity) kept: a few fields' chains (a buffer
    /// freed is reused by the allocator anyway; kept ones are only those
    /// that would otherwise be allocated again and again).
    pub const BYTES: usize = 128 << 10;
    /// The largest buffer [`Spare::pop`] hands out (one window's changes).
    const SMALL: usize = 16 << 10;

    /// An empty buffer with room for `n` bytes: a kept one if one is large
    /// enough.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        match self.bufs.iter().position(|b| b.capacity() >= n) {
            Some(i) => {
                let b = self.bufs.swap_remove(i);
                self.bytes -= b.capacity();
                b
            }
            None => Vec::with_capacity(n),
        }
    }

    /// A kept buffer (emptied), if there is one; else an empty `Vec`
    /// (which allocates nothing).
    pub fn pop(&mut self) -> Vec<u8> {
        // The smallest, and not a large one: those are for chains
        // (`Spare::take`).
        let smallest = self.bufs.iter().enumerate().min_by_key(|(_, b)| b.capacity());
        let Some((i, _)) = smallest.filter(|(_, b)| b.capacity() <= Self::SMALL) else {
            return Vec::new();
        };
        let b = self.bufs.swap_remove(i);
        self.bytes -= b.capacity();
        b
    }

    /// Keeps `buf` (emptied) for a later [`Spare::take`], if it is worth
    /// keeping and there is room (else it is freed).
    pub fn give(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap < 256 || self.bufs.len() >= Self::BUFFERS || self.bytes + cap > Self::BYTES {
            return;
        }
        buf.clear();
        self.bytes += cap;
        self.bufs.push(buf);
    }

    /// Keeps the buffers of a committed change.
    pub fn recycle(&mut self, change: StateChange) {
        match change {
            StateChange::Whole { state, .. } => self.give(state),
            StateChange::Ranges(r) => self.give(r.data),
        }
    }
}

impl StateChange {
    /// The state's length after the change.
    pub fn len(&self) -> u64 {
        match self {
            StateChange::Whole { state, .. } => state.len() as u64,
            StateChange::Ranges(r) => r.len,
        }
    }

    /// The new bytes it brings (the whole state, or the ranges' data).
    pub fn bytes(&self) -> usize {
        match self {
            StateChange::Whole { state, .. } => state.len(),
            StateChange::Ranges(r) => r.data.len(),
        }
    }

    /// Whether the state is empty after the change.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The generation the state is after the change, if known.
    pub fn generation(&self) -> Option<u64> {
        match self {
            StateChange::Whole { generation, .. } => *generation,
            StateChange::Ranges(r) => Some(r.generation),
        }
    }

    /// This change followed by `next`, as one change (several windows
    /// between two commits); `Err(next)` when `next` does not build on this
    /// one (the caller then needs the whole state).
    pub fn then(mut self, next: StateChange) -> Result<StateChange, StateChange> {
        self.chain(next, &mut Spare::default())?;
        Ok(self)
    }

    /// [`StateChange::then`] in place, its buffers growing from (and let
    /// go to) `spare`; on `Err(next)` this change is as it was.
    pub fn chain(&mut self, next: StateChange, spare: &mut Spare) -> Result<(), StateChange> {
        match (&mut *self, next) {
            (_, whole @ StateChange::Whole { .. }) => {
                spare.recycle(std::mem::replace(self, whole));
                Ok(())
            }
            (StateChange::Whole { state, generation: Some(g) }, StateChange::Ranges(r))
                if r.base == *g =>
            {
                r.apply(state);
                *g = r.generation;
                spare.give(r.data);
                Ok(())
            }
            // Ranges chain only when both are consistent (their data is
            // exactly their spans'), and while the waiting ranges folded
            // stay within their bound: ranges so scattered that folding
            // cannot bring them under it would be folded at every window,
            // so the caller takes the whole state instead.
            (StateChange::Ranges(a), StateChange::Ranges(b))
                if b.base == a.generation
                    && b.is_consistent()
                    && a.is_consistent()
                    && a.footprint() <= Ranges::fold_limit(a.len) =>
            {
                a.push(b, spare);
                Ok(())
            }
            (_, next) => Err(next),
        }
    }
}

impl FieldUpdate {
    /// A whole-state update from a [`FieldState`] (no generation).
    pub fn whole(state: FieldState) -> Self {
        FieldUpdate {
            group: state.group,
            field: state.field,
            provenance: state.provenance,
            change: StateChange::Whole { state: state.state, generation: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: u64, generation: u64, len: u64, spans: &[(u64, &[u8])]) -> Ranges {
        Ranges {
            base,
            generation,
            len,
            spans: spans.iter().map(|(o, b)| (*o, b.len() as u64)).collect(),
            data: spans.iter().flat_map(|(_, b)| b.iter().copied()).collect(),
        }
    }

    #[test]
    fn chained_ranges_give_what_applying_each_gives() {
        let start = vec![0u8, 1, 2, 3, 4, 5, 6, 7];
        let a = r(1, 2, 10, &[(6, &[60, 70, 80, 90])]);
        let b = r(2, 3, 7, &[(0, &[9]), (5, &[50, 61])]);
        let mut one = start.clone();
        a.apply(&mut one);
        b.apply(&mut one);
        let joined = StateChange::Ranges(a.clone()).then(StateChange::Ranges(b.clone())).unwrap();
        let StateChange::Ranges(j) = &joined else { panic!("ranges") };
        assert!(j.is_consistent() && (j.base, j.generation) == (1, 3));
        let mut two = start.clone();
        j.apply(&mut two);
        assert_eq!(one, two);
        assert_eq!(one, [9, 1, 2, 3, 4, 50, 61]);
        let whole = StateChange::Whole { state: start, generation: Some(1) };
        let w = whole.then(StateChange::Ranges(a)).unwrap().then(StateChange::Ranges(b)).unwrap();
        assert_eq!(w, StateChange::Whole { state: one, generation: Some(3) });
        // Ranges against another generation do not chain.
        let stale = StateChange::Ranges(r(7, 8, 1, &[(0, &[1])]));
        assert!(w.then(stale).is_err());
        assert!(!r(0, 1, 2, &[(1, &[1, 2])]).is_consistent());
    }

    /// Folding random overlapping spans changes nothing they do.
    #[test]
    fn compacted_ranges_apply_as_the_spans_did() {
        let mut next = crate::xorshift(0x2545_F491_4F6C_DD1Du64);
        for _ in 0..2000 {
            let len = 1 + next(200);
            let spans: Vec<(u64, Vec<u8>)> = (0..next(12))
                .map(|_| {
                    let off = next(len);
                    let n = next(len - off + 1);
                    (off, (0..n).map(|_| next(256) as u8).collect())
                })
                .collect();
            let refs: Vec<(u64, &[u8])> = spans.iter().map(|(o, b)| (*o, b.as_slice())).collect();
            let ranges = r(0, 1, len, &refs);
            let mut c = ranges.clone();
            c.compact(&mut Spare::default());
            assert!(c.is_consistent() && c.data.len() as u64 <= len);
            assert!(c.spans.windows(2).all(|w| w[0].0 + w[0].1 < w[1].0), "sorted, apart");
            let base: Vec<u8> = (0..len + next(5)).map(|i| i as u8).collect();
            let (mut one, mut two) = (base.clone(), base);
            ranges.apply(&mut one);
            c.apply(&mut two);
            assert_eq!(one, two);
        }
    }

    /// A state that shrinks, then grows again, between two commits: the
    /// regrown bytes are zeros, not the base's (which is longer than the
    /// state in between).
    #[test]
    fn chained_ranges_zero_what_a_shrink_then_growth_gives_back() {
        let start: Vec<u8> = (1..=10).collect();
        let a = r(1, 2, 4, &[(0, &[40])]);
        let b = r(2, 3, 8, &[(6, &[66])]);
        let mut one = start.clone();
        a.apply(&mut one);
        b.apply(&mut one);
        assert_eq!(one, [40, 2, 3, 4, 0, 0, 66, 0]);
        let StateChange::Ranges(j) = StateChange::Ranges(a).then(StateChange::Ranges(b)).unwrap()
        else {
            panic!("ranges")
        };
        assert!(j.is_consistent());
        let mut two = start;
        j.apply(&mut two);
        assert_eq!(two, one);
    }

    /// The pool keeps at most its bound, hands out a buffer large enough,
    /// and chaining in place with it gives what `then` gives.
    #[test]
    fn spare_buffers_stay_bounded_and_serve_chains() {
        let mut spare = Spare::default();
        for _ in 0..40 {
            spare.give(Vec::with_capacity(300_000));
        }
        assert!(spare.bufs.len() <= Spare::BUFFERS && spare.bytes <= Spare::BYTES);
        spare.give(Vec::with_capacity(10));
        let b = spare.take(100_000);
        assert!(b.capacity() >= 100_000 && b.is_empty());
        let a = r(1, 2, 10, &[(6, &[60, 70, 80, 90])]);
        let b = r(2, 3, 7, &[(0, &[9]), (5, &[50, 61])]);
        let mut c = StateChange::Ranges(a.clone());
        c.chain(StateChange::Ranges(b.clone()), &mut spare).unwrap();
        let joined = StateChange::Ranges(a).then(StateChange::Ranges(b)).unwrap();
        assert_eq!(c, joined);
        // Not built on it: unchanged.
        let stale = StateChange::Ranges(r(9, 10, 1, &[(0, &[1])]));
        assert!(c.chain(stale, &mut spare).is_err());
        assert_eq!(c, joined);
    }

    /// Ring-like windows (and now and then a span anywhere) chained one by
    /// one (folding, then written over the folded bytes once those cover
    /// them) give what applying each gives; once folded, windows inside the
    /// folded spans take no more memory.
    #[test]
    fn windows_written_over_folded_ranges_apply_as_each_did() {
        let mut next = crate::xorshift(0x9E37_79B9_7F4A_7C15u64);
        let mut spare = Spare::default();
        for round in 0..40u64 {
            let len = 64 + next(3000);
            // Windows keep off the first `skip` bytes (a header no window
            // changes), as a detector's version byte.
            let skip = next(3);
            let base: Vec<u8> = (0..len).map(|i| (i * 7 + round) as u8).collect();
            let mut state = base.clone();
            let mut joined: Option<StateChange> = None;
            let mut after_fold = None;
            // A ring's slot run from `pos` (wrapping past the end), a
            // header, and now and then a span anywhere past `skip`.
            let mut pos = skip;
            for g in 0..300u64 {
                let mut bytes = |n: u64| -> Vec<u8> { (0..n).map(|_| next(256) as u8).collect() };
                let w = 1 + (g * 37 + round) % 400;
                let mut spans = vec![(skip, bytes(8.min(len - skip)))];
                let first = w.min(len - pos);
                spans.push((pos, bytes(first)));
                if first < w {
                    spans.push((skip, bytes((w - first).min(len - skip))));
                }
                pos = if first < w { skip + (w - first).min(len - skip - 1) } else { pos + w };
                if pos >= len {
                    pos = skip;
                }
                if g % 5 == 0 {
                    let off = skip + (g * 101 + round * 13) % (len - skip);
                    let n = 1 + (g * 7) % (len - off);
                    spans.push((off, bytes(n)));
                }
                let refs: Vec<(u64, &[u8])> =
                    spans.iter().map(|(o, b)| (*o, b.as_slice())).collect();
                let w = r(g, g + 1, len, &refs);
                w.apply(&mut state);
                let c = StateChange::Ranges(w);
                match &mut joined {
                    None => joined = Some(c),
                    Some(j) => j.chain(c, &mut spare).unwrap(),
                }
                let Some(StateChange::Ranges(j)) = &joined else { panic!("ranges") };
                assert!(j.is_consistent() && (j.base, j.generation) == (0, g + 1));
                let mut two = base.clone();
                j.apply(&mut two);
                assert_eq!(two, state, "round {round} window {g}");
                let covered = j.spans == [(skip, len - skip)];
                if covered {
                    // Covered once: the bytes stay where they are.
                    let now = (j.data.as_ptr(), j.data.len());
                    assert_eq!(*after_fold.get_or_insert(now), now, "round {round} window {g}");
                }
            }
            let Some(StateChange::Ranges(j)) = &joined else { panic!("ranges") };
            assert!(
                after_fold.is_some(),
                "round {round}: 300 windows cover the state: {:?} len {len} skip {skip}",
                &j.spans[..j.spans.len().min(5)]
            );
        }
    }

    /// Random windows (lengths that shrink and grow, overlapping spans,
    /// spans inside earlier ones, which the overwrite takes, spans across
    /// two folded ones, which it must not, now and then inconsistent
    /// ones), chained one by one with one `Spare` for all: after every
    /// window the chain gives what applying each window gave. Where `chain`
    /// refuses, the caller's answer is the whole state, as the node's is.
    #[test]
    fn random_windows_chained_apply_as_each_did() {
        let mut next = crate::xorshift(0xD1B5_4A32_D192_ED03u64);
        let mut spare = Spare::default();
        let (mut refused, mut chained) = (0, 0);
        for _ in 0..3000 {
            let big = next(4) == 0;
            let most = if big { 6000 } else { 64 };
            let mut len = next(most);
            let base: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
            let mut state = base.clone();
            let mut joined: Option<StateChange> = None;
            let mut seen: Vec<(u64, u64)> = Vec::new();
            for g in 0..1 + next(if big { 200 } else { 400 }) {
                len = match next(12) {
                    0 => len.saturating_sub(next(9)),
                    1 => len + next(9),
                    2 => next(most),
                    _ => len,
                };
                let bad = next(40) == 0;
                let mut spans = Vec::new();
                for _ in 0..next(if big { 30 } else { 6 }) {
                    let (off, n) = match (next(3), seen.is_empty()) {
                        (0, false) => {
                            let (o, l) = seen[next(seen.len() as u64) as usize];
                            let a = o + next(l + 1);
                            (a, next(o + l - a + 1))
                        }
                        _ => {
                            let off = next(len + 1);
                            (off, next((len - off).min(if big { 2000 } else { 16 }) + 1))
                        }
                    };
                    let (off, n) = if off + n > len { (len, 0) } else { (off, n) };
                    if seen.len() < 40 {
                        seen.push((off, n));
                    }
                    spans.push((off, n));
                }
                let mut total: u64 = spans.iter().map(|s| s.1).sum();
                if bad {
                    total += 1 + next(4);
                }
                let data = (0..total).map(|_| next(256) as u8).collect();
                let w = Ranges { base: g, generation: g + 1, len, spans, data };
                w.apply(&mut state);
                let c = StateChange::Ranges(w);
                match &mut joined {
                    None => joined = Some(c),
                    Some(j) => match j.chain(c, &mut spare) {
                        Ok(()) => chained += 1,
                        Err(_) => {
                            refused += 1;
                            let whole = StateChange::Whole {
                                state: state.clone(),
                                generation: Some(g + 1),
                            };
                            spare.recycle(std::mem::replace(j, whole));
                        }
                    },
                }
                let mut two = base.clone();
                match joined.as_ref() {
                    Some(StateChange::Ranges(j)) => {
                        assert_eq!((j.base, j.generation), (0, g + 1));
                        j.apply(&mut two);
                    }
                    Some(StateChange::Whole { state, generation }) => {
                        assert_eq!(*generation, Some(g + 1));
                        two.clone_from(state);
                    }
                    None => unreachable!("a window was chained"),
                }
                assert_eq!(two, state, "window {g}");
            }
        }
        assert!(refused > 0 && chained > 100 * refused, "{chained} chained, {refused} refused");
    }

    /// Folded ranges of two spans with a gap: a window across the gap, and
    /// one after the state's length changed, are not written over the
    /// folded bytes (their bytes would land in the wrong place), and the
    /// chain still gives what applying each gives. Ranges so scattered
    /// that folding leaves them over their bound hand over to the whole
    /// state.
    #[test]
    fn windows_across_folded_spans_or_lengths_chain_by_appending() {
        let len = 64u64;
        let base: Vec<u8> = (0..len as u8).collect();
        // Enough overlapping windows to fold into [4, 14) and [30, 40).
        let mut windows: Vec<Ranges> = (0..700u64)
            .map(|g| {
                let k = g as u8;
                r(g, g + 1, len, &[(4, &[k; 10]), (30, &[k ^ 1; 10])])
            })
            .collect();
        let g = windows.len() as u64;
        windows.push(r(g, g + 1, len, &[(10, &[0xAA; 24])])); // across the gap
        windows.push(r(g + 1, g + 2, len - 8, &[(5, &[0xBB; 3])])); // shorter
        windows.push(r(g + 2, g + 3, len, &[(6, &[0xCC; 2])])); // grows back
        let mut spare = Spare::default();
        let mut state = base.clone();
        let mut joined: Option<StateChange> = None;
        let mut folded = false;
        for w in windows {
            w.apply(&mut state);
            match &mut joined {
                None => joined = Some(StateChange::Ranges(w)),
                Some(j) => j.chain(StateChange::Ranges(w), &mut spare).unwrap(),
            }
            let Some(StateChange::Ranges(j)) = &joined else { panic!("ranges") };
            folded |= j.spans == [(4, 10), (30, 10)];
            let mut two = base.clone();
            j.apply(&mut two);
            assert_eq!(two, state);
        }
        assert!(folded, "the windows folded into two spans");
        // Every other byte, one span each: 16 bytes of bookkeeping per byte.
        let scattered: Vec<(u64, Vec<u8>)> = (0..1000).map(|i| (2 * i, vec![1])).collect();
        let refs: Vec<(u64, &[u8])> = scattered.iter().map(|(o, b)| (*o, b.as_slice())).collect();
        let mut c = StateChange::Ranges(r(0, 1, 2000, &refs));
        assert!(c.chain(StateChange::Ranges(r(1, 2, 2000, &[(1, &[2])])), &mut spare).is_err());
    }

    /// Many windows of a ring chained for one commit: the joined ranges
    /// stay within an eighth over the state's bytes and give what applying
    /// each one gives.
    #[test]
    fn chained_ranges_of_many_windows_stay_bounded() {
        let len = 20_000usize;
        let mut state: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let base = state.clone();
        let mut joined: Option<StateChange> = None;
        let mut x = 7u64;
        for g in 0..400u64 {
            // A header, a ring slot run (sometimes across the end), a tail.
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let at = 16 + (x >> 33) as usize % (len - 400);
            let k = (g % 251) as u8;
            let w = r(
                g,
                g + 1,
                len as u64,
                &[(0, &[k; 8]), (at as u64, &[k ^ 0x5A; 300]), (len as u64 - 50, &[k; 50])],
            );
            w.apply(&mut state);
            let c = StateChange::Ranges(w);
            joined = Some(match joined {
                None => c,
                Some(j) => j.then(c).unwrap(),
            });
            let Some(StateChange::Ranges(j)) = &joined else { panic!("ranges") };
            // An eighth over the state, and one window while it grows.
            let most = len + len / 8 + 4096 + 400;
            assert!(j.footprint() <= most, "{} bytes", j.footprint());
            assert!(j.data.capacity() <= most, "{} bytes reserved", j.data.capacity());
        }
        let Some(StateChange::Ranges(j)) = joined else { panic!("ranges") };
        assert!(j.is_consistent() && (j.base, j.generation) == (0, 400));
        let mut two = base;
        j.apply(&mut two);
        assert_eq!(two, state);
    }
}
