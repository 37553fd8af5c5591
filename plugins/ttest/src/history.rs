//! `TtHistory`: what `ttest` remembers of a field. The guide's moving
//! history of values (a `MovingWindow`, saved exactly as format 1 saved it)
//! plus a record of the windows those values came in (`window::Windows`
//! over no values: count, mean and variance per window), from which
//! [`crate::serial`] decides whether the history itself shows its values
//! are serially dependent.
//!
//! The record is kept beside the ring, not inside it, so that the state's
//! first bytes stay format 1's: [`History::write`] saves the ring alone
//! and the detector appends the records after everything format 1 saved
//! (`crate::TTest::save`). How the appended records get back in on load
//! is [`TtHistory::expecting_records`]'s.
//!
//! Not here: the tests (`crate::serial`, `tickwatch_stats::welch`) and the
//! learning policy (`window::Baseline`).

use tickwatch_plugin_api::codec::{ByteReader, ByteWriter, CodecError};
use tickwatch_plugin_api::window::{History, MovingWindow, Windows};
use tickwatch_plugin_api::Summary;

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

/// The windows behind a history's values: count, mean and variance each.
pub type WindowRecord = Windows<NoValues>;

/// A record read by [`TtHistory::read_record`], to be written back.
#[derive(Debug)]
pub(crate) struct RecordBytes(Option<WindowRecord>);

impl RecordBytes {
    /// Writes the record as [`TtHistory::write_record`] does.
    pub(crate) fn write(&self, w: &mut ByteWriter) {
        if let Some(record) = &self.0 {
            record.write(w);
        }
    }
}

/// The guide's history of the last `size` values and the record of the
/// windows they came in (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct TtHistory {
    values: MovingWindow,
    /// `None` for a history of fewer than [`crate::serial::MIN_WINDOWS`]
    /// values, which can never remember that many windows.
    record: Option<WindowRecord>,
    /// Whether [`History::read_like`] reads a record right after the ring
    /// (only while [`crate::TTest::load`] replays format 2): saved state
    /// has its records at the very end, where `Baseline::read` never looks.
    inline_records: bool,
}

impl TtHistory {
    /// An empty history of at most `size` values.
    pub fn new(size: usize) -> Self {
        let record = (size >= crate::serial::MIN_WINDOWS).then(|| Windows::new(NoValues, size));
        Self { values: MovingWindow::new(size), record, inline_records: false }
    }

    /// The ring of values: the guide's history.
    pub fn values(&self) -> &MovingWindow {
        &self.values
    }

    /// The windows behind the values (`None` for a history of fewer than
    /// [`crate::serial::MIN_WINDOWS`] values).
    pub fn record(&self) -> Option<&WindowRecord> {
        self.record.as_ref()
    }

    /// Windows remembered.
    pub fn remembered(&self) -> usize {
        self.record.as_ref().map_or(0, |r| r.windows())
    }

    /// Appends the window record (nothing without one): format 2's section
    /// after everything format 1 saved.
    pub(crate) fn write_record(&self, w: &mut ByteWriter) {
        if let Some(record) = &self.record {
            record.write(w);
        }
    }

    /// Reads a record [`TtHistory::write_record`] wrote (for a history
    /// that keeps one), checked as `window::Windows` checks its own.
    pub(crate) fn read_record(&self, r: &mut ByteReader<'_>) -> Result<RecordBytes, CodecError> {
        let record = match &self.record {
            Some(record) => Some(record.read_like(r)?),
            None => None,
        };
        Ok(RecordBytes(record))
    }

    /// A prototype whose `read_like` reads a ring followed by its window
    /// record (format 2's sections, put back side by side by
    /// `crate::TTest::load`). What it reads comes back as an ordinary
    /// history.
    pub(crate) fn expecting_records(&self) -> Self {
        Self { inline_records: true, ..self.fresh() }
    }
}

impl std::ops::Deref for TtHistory {
    type Target = MovingWindow;

    fn deref(&self) -> &MovingWindow {
        &self.values
    }
}

impl History for TtHistory {
    fn fresh(&self) -> Self {
        Self {
            values: self.values.fresh(),
            record: self.record.as_ref().map(History::fresh),
            inline_records: false,
        }
    }

    fn count(&self) -> u64 {
        self.values.count()
    }

    fn extend(&mut self, values: &[f64]) {
        if let Some(record) = &mut self.record {
            record.extend(values);
        }
        self.values.extend(values);
    }

    /// The ring only, byte for byte format 1's; the record is appended by
    /// the detector after everything else.
    fn write(&self, w: &mut ByteWriter) {
        self.values.write(w);
    }

    fn read_like(&self, r: &mut ByteReader<'_>) -> Result<Self, CodecError> {
        let values = self.values.read_like(r)?;
        let record = match &self.record {
            Some(record) if self.inline_records => Some(record.read_like(r)?),
            other => other.as_ref().map(History::fresh),
        };
        Ok(Self { values, record, inline_records: false })
    }

    fn mismatch(&self, saved: &Self) -> Option<String> {
        self.values.mismatch(&saved.values)
    }

    fn mean_variance(&self) -> Option<(f64, f64)> {
        self.values.mean_variance()
    }

    /// The windows remembered, only while [`crate::serial::scale`] says the
    /// history is serially dependent (`None` in the guide's regime): what
    /// `Learn::EveryFrom` counts, so that the guide's `pvalue > alpha`
    /// learning holds wherever its test does.
    fn windows(&self) -> Option<u64> {
        crate::serial::scale(self).map(|_| self.remembered() as u64)
    }

    /// The ring's figures (`n`, `mean`, `stddev`, `size`), then `windows`
    /// (remembered) and `serial` (1 while the history shows serially
    /// dependent values, so verdicts use the spread of window means).
    fn describe(&self, summary: Summary) -> Summary {
        self.values
            .describe(summary)
            .int("windows", self.remembered() as i64)
            .int("serial", i64::from(crate::serial::scale(self).is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_the_ring_alone_and_reads_records_only_when_asked() {
        assert_eq!(TtHistory::new(29).record(), None, "too short to remember 30 windows");
        let mut h = TtHistory::new(30);
        h.extend(&[1.0, 2.0, 4.0]);
        h.extend(&[3.0, 5.0]);
        assert_eq!(h.remembered(), 2);
        let mut w = ByteWriter::new();
        h.write(&mut w);
        let mut ring = ByteWriter::new();
        h.values().write(&mut ring);
        let bytes = w.finish();
        assert_eq!(bytes, ring.finish(), "format 1's ring, nothing else");
        let back = h.read_like(&mut ByteReader::new(&bytes)).unwrap();
        assert_eq!((back.values(), back.remembered()), (h.values(), 0));

        let mut w = ByteWriter::new();
        h.write(&mut w);
        h.write_record(&mut w);
        let bytes = w.finish();
        let back = h.expecting_records().read_like(&mut ByteReader::new(&bytes)).unwrap();
        assert_eq!(back, h);
    }
}
