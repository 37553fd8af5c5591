//! Reading only the fields a reader tracks: [`Tracked`] holds their names,
//! and for each the exact bytes prost (and Kapacitor) write for a
//! `fieldsDouble` entry of that name, so such an entry is recognised and
//! read with one comparison of two words instead of being parsed, its key
//! checked as UTF-8 and then compared with every tracked name.
//!
//! Why that is exact: the bytes compared are the entry's field key
//! (`fieldsDouble`, length-delimited), its one-byte length, the map key's
//! field key and one-byte length, the name itself and the value's field key
//! (fixed64); the length says the entry ends right after the 8 value bytes.
//! Such an entry is one [`super::check_point`] takes (the name is a `&str`,
//! so valid UTF-8), and it reads to the same key and value. Every other
//! shape (another order, repeats, overlong varints, another map, a name not
//! tracked) is read by the check as before, and its key matched by bytes.
//!
//! It also remembers a few whole fields the check took that give the
//! reader nothing (string fields, `tags` entries: a batch's points repeat
//! their group and tags) and takes the same bytes again unchecked: the
//! check of one field depends on its bytes alone.
//!
//! Owns: matching entries to tracked names. Does not own: what a tracked
//! value means (the engine's `node::values`).

use super::{EntrySink, FieldValue, tag};

/// The `fieldsDouble` entry's field key: field 8, length-delimited.
const DOUBLE_ENTRY: u8 = (tag::FIELDS_DOUBLE as u8) << 3 | 2;

/// The names a reader tracks, prepared for
/// [`super::PointView::from_request_tracked`].
#[derive(Debug, Clone, Default)]
pub struct Tracked {
    /// Every name's bytes, one after another; name `i` ends at `ends[i]`.
    names: Vec<u8>,
    ends: Vec<usize>,
    /// The `fieldsDouble` entry each name has in its one-byte-length
    /// shape, in name order (names too long for it have none).
    doubles: Vec<DoubleEntry>,
    /// Those entries' bytes before the value, one after another.
    heads: Vec<u8>,
    /// Whole fields the check took that give a sink nothing (string
    /// fields, `tags` entries), [`KNOWN_SLOTS`] of at most [`KNOWN_LEN`]
    /// bytes, replaced in turn: a batch's points repeat their group and
    /// tags, taken again by comparing bytes instead of checking them.
    known: Vec<Known>,
    known_next: usize,
}

/// A remembered field: its first 16 bytes as two little-endian words
/// with the masks of the bytes that belong to it, and all its bytes.
#[derive(Debug, Clone, Copy)]
struct Known {
    words: [u64; 2],
    masks: [u64; 2],
    len: usize,
    bytes: [u8; KNOWN_LEN],
}

/// Fields remembered, and the longest remembered.
const KNOWN_SLOTS: usize = 4;
const KNOWN_LEN: usize = 64;

/// One tracked name's `fieldsDouble` entry, as far as its value.
#[derive(Debug, Clone, Copy)]
struct DoubleEntry {
    /// The entry's first 16 bytes as two little-endian words, and which
    /// of their bytes belong to it (before the value).
    words: [u64; 2],
    masks: [u64; 2],
    /// Where the value starts: the bytes before it (five and the name).
    value_at: usize,
    /// Where its bytes start in [`Tracked::heads`].
    head_at: usize,
    /// The name's index.
    index: usize,
}

impl Tracked {
    /// `names`, in order (an index given to a sink is a position here).
    pub fn new<S: AsRef<str>>(names: &[S]) -> Tracked {
        let mut t = Tracked::default();
        for (index, name) in names.iter().enumerate() {
            let name = name.as_ref().as_bytes();
            t.names.extend_from_slice(name);
            t.ends.push(t.names.len());
            // Entry length: 2 + name + 1 + 8, in one byte (a varint below 128).
            let entry_len = name.len() + 11;
            if entry_len >= 0x80 {
                continue;
            }
            let head_at = t.heads.len();
            t.heads.extend_from_slice(&[DOUBLE_ENTRY, entry_len as u8, 0x0a, name.len() as u8]);
            t.heads.extend_from_slice(name);
            t.heads.push(0x11);
            let head = &t.heads[head_at..];
            let (mut bytes, mut mask) = ([0u8; 16], [0u8; 16]);
            for (i, &b) in head.iter().take(16).enumerate() {
                bytes[i] = b;
                mask[i] = 0xff;
            }
            let word = |b: &[u8; 16], i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[8 * i..8 * i + 8]);
                u64::from_le_bytes(w)
            };
            t.doubles.push(DoubleEntry {
                words: [word(&bytes, 0), word(&bytes, 1)],
                masks: [word(&mask, 0), word(&mask, 1)],
                value_at: head.len(),
                head_at,
                index,
            });
        }
        t
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Name `i`'s bytes.
    fn name(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.names[start..self.ends[i]]
    }

    /// The index of the first name equal to `key`.
    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        (0..self.ends.len()).find(|&i| self.name(i) == key)
    }

    /// A remembered field at the start of `rest`: its length.
    #[inline(always)]
    fn known_field(&self, rest: &[u8]) -> Option<usize> {
        let Some((head, _)) = rest.split_first_chunk::<16>() else {
            // Near the end of the point: as slices.
            let k = self.known.iter().find(|k| rest.get(..k.len) == k.bytes.get(..k.len))?;
            return Some(k.len);
        };
        let (w0, w1) = head.split_at(8);
        let w0 = u64::from_le_bytes(w0.try_into().ok()?);
        let w1 = u64::from_le_bytes(w1.try_into().ok()?);
        for k in &self.known {
            if ((w0 ^ k.words[0]) & k.masks[0]) | ((w1 ^ k.words[1]) & k.masks[1]) != 0 {
                continue;
            }
            if k.len > 16 && rest.get(16..k.len) != k.bytes.get(16..k.len) {
                continue;
            }
            return Some(k.len);
        }
        None
    }

    /// Remembers a field the check took (see [`Tracked::known`]).
    #[cold]
    fn remember(&mut self, field: &[u8]) {
        if field.is_empty() || field.len() > KNOWN_LEN {
            return;
        }
        let mut bytes = [0u8; KNOWN_LEN];
        bytes[..field.len()].copy_from_slice(field);
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            u64::from_le_bytes(w)
        };
        let mask = |i: usize| match field.len().saturating_sub(8 * i) {
            0 => 0,
            n if n >= 8 => u64::MAX,
            n => (1u64 << (8 * n)) - 1,
        };
        let k =
            Known { words: [word(0), word(1)], masks: [mask(0), mask(1)], len: field.len(), bytes };
        if self.known.len() < KNOWN_SLOTS {
            self.known.push(k);
        } else {
            self.known[self.known_next] = k;
        }
        self.known_next = (self.known_next + 1) % KNOWN_SLOTS;
    }

    /// A tracked name's `fieldsDouble` entry in its exact shape at the
    /// start of `rest`: the name's index, the value and the entry's length.
    #[inline(always)]
    fn double_entry(&self, rest: &[u8]) -> Option<(usize, f64, usize)> {
        let (head, _) = rest.split_first_chunk::<16>()?;
        if head[0] != DOUBLE_ENTRY {
            return None;
        }
        let (w0, w1) = head.split_at(8);
        let w0 = u64::from_le_bytes(w0.try_into().ok()?);
        let w1 = u64::from_le_bytes(w1.try_into().ok()?);
        for d in &self.doubles {
            if ((w0 ^ d.words[0]) & d.masks[0]) | ((w1 ^ d.words[1]) & d.masks[1]) != 0 {
                continue;
            }
            if d.value_at > 16
                && rest.get(16..d.value_at)
                    != self.heads.get(d.head_at + 16..d.head_at + d.value_at)
            {
                continue;
            }
            // Cut short: left to the check, which refuses it.
            let value = rest.get(d.value_at..d.value_at + 8)?;
            let value = f64::from_le_bytes(value.try_into().ok()?);
            return Some((d.index, value, d.value_at + 8));
        }
        None
    }
}

/// The sink of [`super::PointView::from_request_tracked`]: tracked
/// entries by their name's index.
pub(super) struct ByIndex<'t, F> {
    pub tracked: &'t mut Tracked,
    pub sink: F,
}

impl<F: FnMut(usize, FieldValue<'_>)> EntrySink for ByIndex<'_, F> {
    #[inline(always)]
    fn take_known(&mut self, rest: &[u8]) -> Option<usize> {
        if let Some((i, value, len)) = self.tracked.double_entry(rest) {
            (self.sink)(i, FieldValue::Double(value));
            return Some(len);
        }
        self.tracked.known_field(rest)
    }

    #[inline(always)]
    fn checked(&mut self, field: &[u8]) {
        self.tracked.remember(field);
    }

    #[inline]
    fn entry(&mut self, key: &[u8], value: FieldValue<'_>) {
        if let Some(i) = self.tracked.find(key) {
            (self.sink)(i, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_known_only_in_its_exact_shape() {
        let t = Tracked::new(&["bed", "hotend", "a_rather_long_name", "bed"]);
        let entry = |name: &str, v: f64| {
            let mut e = vec![DOUBLE_ENTRY, (name.len() + 11) as u8, 0x0a, name.len() as u8];
            e.extend_from_slice(name.as_bytes());
            e.push(0x11);
            e.extend_from_slice(&v.to_le_bytes());
            e
        };
        let mut e = entry("hotend", 2.5);
        assert_eq!(
            t.double_entry(&e).map(|(i, v, n)| (i, v.to_bits(), n)),
            Some((1, 2.5f64.to_bits(), e.len()))
        );
        // The first of two equal names; a long name compared past 16 bytes.
        assert_eq!(t.double_entry(&entry("bed", 1.0)).map(|x| x.0), Some(0));
        assert_eq!(t.double_entry(&entry("a_rather_long_name", 1.0)).map(|x| x.0), Some(2));
        assert_eq!(t.double_entry(&entry("a_rather_long_namX", 1.0)), None);
        assert_eq!(t.double_entry(&entry("hotenD", 1.0)), None);
        assert_eq!(t.double_entry(&entry("other", 1.0)), None);
        // Cut short; a value of another wire type; another map.
        assert_eq!(t.double_entry(&e[..e.len() - 1]), None);
        e[10] = 0x10;
        assert_eq!(t.double_entry(&e), None);
        let mut e = entry("hotend", 2.5);
        e[0] = DOUBLE_ENTRY + 8;
        assert_eq!(t.double_entry(&e), None);
        assert_eq!(t.find(b"bed"), Some(0));
        assert_eq!(t.find(b"be"), None);
    }
}
