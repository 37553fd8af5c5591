//! Saving only what changed: the byte ranges of a detector's state that
//! differ from the state the host last took ([`crate::Detector::save_changes`]).
//!
//! The host persists a detector's state after every window. A detector
//! keeping thousands of values changes a few hundred of them per window, so
//! saving (and hashing, and comparing) the whole state each time costs in
//! proportion to the history, not to the new data. Instead the host asks
//! for the changes since the checkpoint it holds (a *generation*): the
//! detector answers with the ranges that differ and the state's new length,
//! or says "take the whole state" when it cannot tell (it was just built or
//! loaded, or the host's generation is not its last one: a commit that
//! failed, a restore, a reload after eviction).
//!
//! Owns: [`StateChanges`] (what crosses to the host), [`ChangeWriter`] (how
//! a state's components report their changes, each at its own offset, so
//! that a detector made of parts needs no arithmetic of its own) and
//! [`Checkpoints`] (the generation bookkeeping). Does not own: which bytes a
//! component changed (each component knows, see
//! [`crate::window::History::write_changes`]).
//!
//! The rule every implementation keeps: resizing the state last taken to
//! [`Ranges::len`] (new bytes zero) and copying every range into it, in
//! order, gives exactly the bytes [`crate::Detector::save`] returns now.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec::ByteWriter;

/// The `since` a host passes when it holds no generation of this detector.
pub const NO_GENERATION: u64 = u64::MAX;

/// What changed in a detector's state since the generation the host holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChanges {
    /// The checkpoint the host holds once it has taken these changes (or the
    /// whole state); it passes it back as `since` next time.
    pub generation: u64,
    /// The changed ranges, or `None`: take the whole state with
    /// [`crate::Detector::save`] (unchanged since this call).
    pub ranges: Option<Ranges>,
}

impl StateChanges {
    /// "Take the whole state", with no usable generation: what a detector
    /// that does not track its changes answers (the default).
    pub fn whole() -> Self {
        Self { generation: NO_GENERATION, ranges: None }
    }
}

/// Changed byte ranges of a state (see the module docs for the rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges {
    /// The state's length now.
    pub len: u64,
    /// `(offset, length)` of each range, in the order written.
    pub spans: Vec<(u64, u64)>,
    /// The ranges' bytes, one after another.
    pub data: Vec<u8>,
}

impl Ranges {
    /// Each range's offset and bytes.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let mut at = 0usize;
        self.spans.iter().map(move |&(off, len)| {
            let len = len as usize;
            let bytes = self.data.get(at..at + len).unwrap_or(&[]);
            at += len;
            (off, bytes)
        })
    }

    /// Applies the ranges to `state` (the state they were taken against).
    pub fn apply(&self, state: &mut Vec<u8>) {
        state.resize(self.len as usize, 0);
        for (off, bytes) in self.iter() {
            let off = off as usize;
            let end = (off + bytes.len()).min(state.len());
            if off < end {
                state[off..end].copy_from_slice(&bytes[..end - off]);
            }
        }
    }
}

/// Collects a state's changed ranges while its components walk it in the
/// order [`crate::Detector::save`] writes them: each component either
/// [skips](ChangeWriter::skip) bytes it did not change or
/// [writes](ChangeWriter::write) them, exactly as `save` would.
///
/// While every byte before the cursor sits where it sat at the checkpoint,
/// the writer is *stable* and components may skip. A component whose length
/// changed (a ring still filling, a list that grew) calls
/// [`ChangeWriter::moved`]: from there on every byte has moved, and the
/// components that follow write themselves whole.
#[derive(Debug)]
pub struct ChangeWriter {
    offset: u64,
    stable: bool,
    spans: Vec<(u64, u64)>,
    data: ByteWriter,
}

impl Default for ChangeWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeWriter {
    /// A writer at offset 0, stable.
    pub fn new() -> Self {
        // Room for the typical window's changes, so they are written into
        // one allocation rather than a buffer regrown from a few bytes.
        Self { offset: 0, stable: true, spans: Vec::new(), data: ByteWriter::with_capacity(4096) }
    }

    /// Whether the bytes from the cursor on are still where they were at
    /// the checkpoint (so unchanged ones may be skipped).
    pub fn stable(&self) -> bool {
        self.stable
    }

    /// The cursor: the offset in the state of the next byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Marks every byte from the cursor on as moved (the component just
    /// walked changed its length).
    pub fn moved(&mut self) {
        self.stable = false;
    }

    /// Passes over `n` bytes that did not change. Only while
    /// [`ChangeWriter::stable`]; otherwise the bytes are unknown to the
    /// host and the call is a bug (checked in debug builds).
    pub fn skip(&mut self, n: usize) {
        debug_assert!(self.stable, "skipping bytes that moved");
        self.offset += n as u64;
    }

    /// Writes changed bytes at the cursor, as `f` writes them.
    pub fn write(&mut self, f: impl FnOnce(&mut ByteWriter)) {
        let before = self.data.len();
        f(&mut self.data);
        let n = (self.data.len() - before) as u64;
        if n == 0 {
            return;
        }
        match self.spans.last_mut() {
            Some((off, len)) if *off + *len == self.offset => *len += n,
            _ => self.spans.push((self.offset, n)),
        }
        self.offset += n;
    }

    /// The ranges; the cursor is the state's length.
    pub fn finish(self) -> Ranges {
        Ranges { len: self.offset, spans: self.spans, data: self.data.finish() }
    }

    /// Writes `r`'s ranges, in order, over a state of `r.len` bytes (the
    /// cursor ends at `r.len`).
    pub fn copy_from(&mut self, r: &Ranges) {
        for (off, bytes) in r.iter() {
            if off != self.offset {
                self.offset = off;
            }
            self.write(|b| {
                b.raw(bytes);
            });
        }
        self.offset = r.len;
    }

    /// `(offset, length)` of each range written so far, in order.
    pub fn spans(&self) -> &[(u64, u64)] {
        &self.spans
    }

    /// The bytes of the ranges written so far, one after another.
    pub fn data(&self) -> &[u8] {
        self.data.as_slice()
    }

    /// Back to offset 0, stable and empty, keeping the buffers (so one
    /// writer serves window after window without allocating); buffers
    /// grown past [`KEEP_BYTES`] are given back down to that.
    pub fn reset(&mut self) {
        self.offset = 0;
        self.stable = true;
        self.spans.clear();
        self.spans.shrink_to(KEEP_BYTES / 16);
        self.data.clear(KEEP_BYTES);
    }
}

/// The most buffer a [`ChangeWriter`] keeps across [`ChangeWriter::reset`].
pub const KEEP_BYTES: usize = 1 << 20;

/// What [`crate::Detector::save_changes_into`] reports: the new generation,
/// and whether the writer holds the changed ranges (`false`: take the
/// whole state with [`crate::Detector::save`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// As [`StateChanges::generation`].
    pub generation: u64,
    /// Whether the writer holds ranges (else: take the whole state).
    pub ranges: bool,
}

impl Taken {
    /// These changes as a [`StateChanges`], the ranges taken from `w`.
    pub fn into_changes(self, w: ChangeWriter) -> StateChanges {
        StateChanges { generation: self.generation, ranges: self.ranges.then(|| w.finish()) }
    }
}

/// Seeds each detector's first generation apart from the others', so that a
/// generation never names a checkpoint of another instance.
static NEXT_SEED: AtomicU64 = AtomicU64::new(1);

/// A detector's generation: which checkpoint of its state the host holds.
///
/// Compares equal to any other (it is bookkeeping, not state), so a
/// detector deriving `PartialEq` still compares by its state.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    generation: u64,
    /// Whether the state's components track changes since `generation`
    /// (false when built or loaded: only a whole state is known).
    tracking: bool,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Checkpoints {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Checkpoints {
    /// No checkpoint yet: the first [`Checkpoints::advance`] says "whole".
    pub fn new() -> Self {
        let seed = NEXT_SEED.fetch_add(1, Ordering::Relaxed) << 32;
        Self { generation: seed, tracking: false }
    }

    /// Forgets the checkpoint (after a load: the state came from elsewhere).
    pub fn reset(&mut self) {
        self.tracking = false;
    }

    /// Whether changes since `since` can be reported: the host holds this
    /// detector's last generation and the components tracked since.
    pub fn can_report(&self, since: u64) -> bool {
        self.tracking && since == self.generation && since != NO_GENERATION
    }

    /// Takes a new checkpoint (the caller resets its components' tracking)
    /// and returns its generation.
    pub fn advance(&mut self) -> u64 {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == NO_GENERATION {
            self.generation = 0;
        }
        self.tracking = true;
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_writes_merge_and_skips_split_ranges() {
        let mut w = ChangeWriter::new();
        w.write(|b| {
            b.u8(1);
        });
        w.write(|b| {
            b.u8(2);
        });
        w.skip(3);
        w.write(|b| {
            b.u8(6);
        });
        w.moved();
        w.write(|b| {
            b.u8(7);
        });
        let r = w.finish();
        assert_eq!(
            (r.len, r.spans.clone(), r.data.clone()),
            (7, vec![(0, 2), (5, 2)], vec![1, 2, 6, 7])
        );
        let mut state = vec![0, 0, 3, 4, 5, 0, 0, 0, 0];
        r.apply(&mut state);
        assert_eq!(state, [1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn generations_report_only_from_the_last_checkpoint() {
        let mut c = Checkpoints::new();
        assert!(!c.can_report(NO_GENERATION));
        let g = c.advance();
        assert!(c.can_report(g) && !c.can_report(g - 1) && !c.can_report(NO_GENERATION));
        let other = Checkpoints::new().advance();
        assert_ne!(other, g, "instances start apart");
        c.reset();
        assert!(!c.can_report(g));
    }
}
