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
}

/// Byte buffers let go by commits ([`Spare::recycle`]), kept for the next
/// changes taken: a pool of at most [`Spare::BUFFERS`] buffers and
/// [`Spare::BYTES`] bytes.
#[derive(Debug, Default)]
pub struct Spare {
    bufs: Vec<Vec<u8>>,
    /// Capacity of the buffers kept, summed.
    bytes: usize,
}

impl Spare {
    /// The most buffers kept.
    pub const BUFFERS: usize = 16;
    /// The most bytes (of capacity) kept: a few fields' changes (a buffer
    /// freed is reused by the allocator anyway; kept ones are only those
    /// that would otherwise be allocated again and again).
    pub const BYTES: usize = 128 << 10;

    /// The largest kept buffer (emptied), if there is one (a commit takes
    /// a field's changes into it, up to a whole state); else an empty
    /// `Vec` (which allocates nothing).
    pub fn pop(&mut self) -> Vec<u8> {
        let largest = self.bufs.iter().enumerate().max_by_key(|(_, b)| b.capacity());
        let Some((i, _)) = largest else {
            return Vec::new();
        };
        let b = self.bufs.swap_remove(i);
        self.bytes -= b.capacity();
        b
    }

    /// Keeps `buf` (emptied) for a later [`Spare::pop`], if it is worth
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

    /// Ranges resize the state (new bytes zero) and write their spans in
    /// order, a later span winning where two overlap.
    #[test]
    fn ranges_apply_in_order_over_the_resized_state() {
        let mut state = vec![0u8, 1, 2, 3, 4, 5, 6, 7];
        r(1, 2, 10, &[(6, &[60, 70, 80]), (7, &[71])]).apply(&mut state);
        assert_eq!(state, [0, 1, 2, 3, 4, 5, 60, 71, 80, 0]);
        r(2, 3, 4, &[(0, &[9])]).apply(&mut state);
        assert_eq!(state, [9, 1, 2, 3]);
        assert!(r(0, 1, 4, &[(3, &[1])]).is_consistent());
        assert!(!r(0, 1, 2, &[(1, &[1, 2])]).is_consistent());
    }

    /// The pool keeps at most its bound and hands out its largest buffer.
    #[test]
    fn spare_buffers_stay_bounded() {
        let mut spare = Spare::default();
        spare.give(Vec::with_capacity(300_000));
        assert_eq!(spare.pop().capacity(), 0, "over the bound: not kept");
        for _ in 0..40 {
            spare.give(Vec::with_capacity(4096));
            spare.give(vec![1; 30_000]);
        }
        assert!(spare.bufs.len() <= Spare::BUFFERS && spare.bytes <= Spare::BYTES);
        let b = spare.pop();
        assert!(b.capacity() >= 30_000 && b.is_empty());
        while !spare.bufs.is_empty() {
            spare.pop();
        }
        assert_eq!((spare.bytes, spare.pop().capacity()), (0, 0));
    }
}
