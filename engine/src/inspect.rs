//! What `tickwatch state` shows and exports, shared by the CLI and by a
//! serving node's control socket (which answers the same questions while the
//! node holds its database).
#![deny(clippy::print_stdout)]

use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tickwatch_plugin_api::Options;
use tickwatch_state::FieldState;

use crate::plugin::Plugin;

/// Format tag of an export file.
pub const EXPORT_FORMAT: &str = "tickwatch-state-export";
/// Version of the export file layout.
pub const EXPORT_VERSION: u32 = 1;

/// One (group, field) as `state show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldRow {
    /// Kapacitor task id.
    pub task: String,
    /// Kapacitor node id.
    pub node: String,
    /// Kapacitor group id ("" when ungrouped).
    pub group: String,
    /// Tracked field.
    pub field: String,
    /// Detector name.
    pub detector: String,
    /// Time of the last batch applied, RFC 3339.
    pub last_time: String,
    /// The same in nanoseconds since the epoch.
    pub last_time_ns: i64,
    /// The detector's own description of its state (null if unavailable).
    pub summary: serde_json::Value,
}

/// One field's state in an export file (exact: `state` is the detector's
/// bytes, base64).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedField {
    /// Group id.
    pub group: String,
    /// Field.
    pub field: String,
    /// Detector name.
    pub detector: String,
    /// Detector version.
    pub detector_version: String,
    /// Detector state format version.
    pub state_version: u32,
    /// Options fingerprint.
    pub options: String,
    /// `tmax` of the last batch applied (ns).
    pub last_time: i64,
    /// State bytes, base64 (standard alphabet, padded).
    pub state: String,
}

/// A whole node's state, as `state export` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`].
    pub version: u32,
    /// Task id.
    pub task: String,
    /// Node id.
    pub node: String,
    /// Every field.
    pub fields: Vec<ExportedField>,
}

/// State kept aside (not applied, or reset), as `state aside` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsideRow {
    /// Group id.
    pub group: String,
    /// Field.
    pub field: String,
    /// Detector that built it.
    pub detector: String,
    /// That detector's version.
    pub detector_version: String,
    /// Its state format version.
    pub state_version: u32,
    /// Options fingerprint it was built under.
    pub options: String,
    /// Its last batch, RFC 3339.
    pub last_time: String,
    /// Why it was set aside.
    pub reason: String,
    /// When, RFC 3339.
    pub set_aside_at: String,
}

/// Rows for records set aside.
pub fn aside_rows(records: &[tickwatch_state::store::AsideRecord]) -> Vec<AsideRow> {
    records
        .iter()
        .map(|r| AsideRow {
            group: r.state.group.clone(),
            field: r.state.field.clone(),
            detector: r.state.detector.clone(),
            detector_version: r.state.detector_version.clone(),
            state_version: r.state.state_version,
            options: r.state.options.clone(),
            last_time: rfc3339(r.state.last_time),
            reason: r.reason.clone(),
            set_aside_at: rfc3339(
                i64::try_from(r.at_ms).unwrap_or(i64::MAX / 1_000_000) * 1_000_000,
            ),
        })
        .collect()
}

/// A request on the control socket (one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlRequest {
    /// `show` (rows with summaries), `export` (exact state) or `aside`.
    pub op: String,
}

/// The answer (one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlResponse {
    /// Present on failure.
    pub error: Option<String>,
    /// For `show`.
    pub rows: Option<Vec<FieldRow>>,
    /// For `export`.
    pub export: Option<Export>,
    /// For `aside`.
    #[serde(default)]
    pub aside: Option<Vec<AsideRow>>,
}

/// RFC 3339 text of a nanosecond timestamp.
pub fn rfc3339(ns: i64) -> String {
    if ns < 0 {
        return format!("{ns}ns");
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns as u64);
    humantime::format_rfc3339_nanos(t).to_string()
}

/// The detector's description of `state`, or null with the reason logged.
pub fn describe(plugin: &Arc<Plugin>, options: &Options, state: &FieldState) -> serde_json::Value {
    let described = plugin
        .create(options)
        .and_then(|mut d| d.load(&state.state).and_then(|()| d.describe()))
        .map_err(|e| e.to_string())
        .and_then(|json| serde_json::from_str(&json).map_err(|e| e.to_string()));
    match described {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("cannot describe field {} group {:?}: {e}", state.field, state.group);
            serde_json::Value::Null
        }
    }
}

/// A row for `state`, with `summary` from `describe` (or null).
pub fn row(task: &str, node: &str, state: &FieldState, summary: serde_json::Value) -> FieldRow {
    FieldRow {
        task: task.into(),
        node: node.into(),
        group: state.group.clone(),
        field: state.field.clone(),
        detector: state.detector.clone(),
        last_time: rfc3339(state.last_time),
        last_time_ns: state.last_time,
        summary,
    }
}

/// An export of `fields`.
pub fn export(task: &str, node: &str, fields: &[FieldState]) -> Export {
    Export {
        format: EXPORT_FORMAT.into(),
        version: EXPORT_VERSION,
        task: task.into(),
        node: node.into(),
        fields: fields
            .iter()
            .map(|f| ExportedField {
                group: f.group.clone(),
                field: f.field.clone(),
                detector: f.detector.clone(),
                detector_version: f.detector_version.clone(),
                state_version: f.state_version,
                options: f.options.clone(),
                last_time: f.last_time,
                state: base64::engine::general_purpose::STANDARD.encode(&f.state),
            })
            .collect(),
    }
}

/// Field states back from an export.
pub fn import(export: &Export) -> Result<Vec<FieldState>, String> {
    if export.format != EXPORT_FORMAT {
        return Err(format!("not a tickwatch state export (format {:?})", export.format));
    }
    if export.version != EXPORT_VERSION {
        return Err(format!("export version {} is not {EXPORT_VERSION}", export.version));
    }
    export
        .fields
        .iter()
        .map(|f| {
            let state = base64::engine::general_purpose::STANDARD
                .decode(&f.state)
                .map_err(|e| format!("field {} group {:?}: bad base64: {e}", f.field, f.group))?;
            Ok(FieldState {
                group: f.group.clone(),
                field: f.field.clone(),
                detector: f.detector.clone(),
                detector_version: f.detector_version.clone(),
                state_version: f.state_version,
                options: f.options.clone(),
                last_time: f.last_time,
                state,
            })
        })
        .collect()
}
