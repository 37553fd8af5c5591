//! The window record: count, mean and variance of each window `ttest`
//! has scored (or seeded its history with) whose values are among the
//! last `size` values seen, from which [`crate::serial`] decides whether
//! the data contradict the guide's independent normal values.
//!
//! It is `window::Windows` (the record `zscore` and `levelspread` keep
//! beside their histories) over no values: the guide's history stays the
//! plain ring it always was, saved exactly as format 1 saved it, and the
//! record is appended after everything format 1 saved
//! (`crate::TTest::save`). It records every window, not only those that
//! join the history: the guide's rule keeps anomalous windows out, and a
//! record of the windows it let in would show only what the guide's test
//! already accepts (a series of calm windows between spikes, for one,
//! would look like nothing but spikes).

use tickwatch_plugin_api::Summary;
use tickwatch_plugin_api::codec::{ByteReader, ByteWriter, CodecError};
use tickwatch_plugin_api::window::{History, Windows};

/// A history that keeps no values: what [`Windows`] wraps when only its
/// window record is wanted. Saves nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoValues;

impl History for NoValues {
    fn fresh(&self) -> Self {
        NoValues
    }

    fn count(&self) -> u64 {
        0
    }

    fn extend(&mut self, _values: &[f64]) {}

    fn write(&self, _w: &mut ByteWriter) {}

    fn read_like(&self, _r: &mut ByteReader<'_>) -> Result<Self, CodecError> {
        Ok(NoValues)
    }

    fn describe(&self, summary: Summary) -> Summary {
        summary
    }
}

/// The windows behind the last `size` values seen (see the module docs).
pub type WindowRecord = Windows<NoValues>;

/// An empty record of the windows behind the last `size` values.
pub fn record(size: usize) -> WindowRecord {
    Windows::new(NoValues, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_windows_of_the_last_size_values_and_saves_only_them() {
        let mut r = record(6);
        r.extend(&[9.0, 9.0, 9.0]);
        r.extend(&[1.0, 3.0]);
        r.extend(&[5.0, 7.0]);
        assert_eq!(r.windows(), 3, "one of the first window's values is among the last 6");
        r.extend(&[2.0, 4.0]);
        assert_eq!(r.windows(), 3, "the first window's values are no longer among the last 6");
        let mut w = ByteWriter::new();
        r.write(&mut w);
        let bytes = w.finish();
        assert_eq!(bytes.len(), 8 + 3 * 24);
        assert_eq!(r.read_like(&mut ByteReader::new(&bytes)).unwrap(), r);
    }
}
