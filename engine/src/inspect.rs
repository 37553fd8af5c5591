//! What `tickwatch state` shows of persisted state, and the export file
//! format: shared by the CLI and by a serving node's control socket (which
//! answers the same questions while the node holds its database).
//! Does not own: the control wire types (`crate::control::protocol`).
#![deny(clippy::print_stdout)]

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tickwatch_plugin_api::Options;
use tickwatch_state::{FieldState, Provenance};

use crate::node::DetectorFactory;
use crate::node::detector::describe_state;

/// Why an export file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not an export.
    #[error("not a tickwatch state export (format {0:?})")]
    Format(String),
    /// An export version this build does not read.
    #[error("export version {0} is not one this build reads (1 or {EXPORT_VERSION})")]
    Version(u32),
    /// Not JSON of an export's shape.
    #[error("not a tickwatch state export: {0}")]
    Json(String),
    /// A field's state is not base64.
    #[error("field {field} group {group:?}: bad base64: {source}")]
    Base64 {
        /// The field.
        field: String,
        /// The group.
        group: String,
        /// The decoder's error.
        source: base64::DecodeError,
    },
}

/// Format tag of an export file.
pub const EXPORT_FORMAT: &str = "tickwatch-state-export";
/// Version of the export file layout this build writes: 2 (options as a
/// JSON object, `last_time` as RFC 3339 beside `last_time_ns`). Version 1
/// (options as JSON text in a string, `last_time` in nanoseconds) is still
/// imported; it is also the shape a running node's control socket answers
/// `export` in ([`Export`]), so the control protocol did not change.
pub const EXPORT_VERSION: u32 = 2;
/// Version of [`Export`], the stored shape (the file format of version 1).
pub const WIRE_EXPORT_VERSION: u32 = 1;

/// Who built a field's state, as every JSON output of `tickwatch state`
/// shows it: one shape per concept (`last_time` is RFC 3339 text,
/// `last_time_ns` the same instant in nanoseconds, `options` a JSON
/// object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvenanceJson {
    /// Detector name.
    pub detector: String,
    /// Detector version (for inspection only).
    pub detector_version: String,
    /// The detector's state format.
    pub state_version: u32,
    /// The state-shaping options the state was built under (the stored
    /// fingerprint as an object; the text itself if it is not one).
    pub options: serde_json::Value,
    /// Time of the last batch applied, RFC 3339.
    pub last_time: String,
    /// The same in nanoseconds since the epoch.
    pub last_time_ns: i64,
}

impl From<&Provenance> for ProvenanceJson {
    fn from(p: &Provenance) -> Self {
        let options = serde_json::from_str::<serde_json::Value>(&p.options)
            .ok()
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::Value::String(p.options.clone()));
        Self {
            detector: p.detector.clone(),
            detector_version: p.detector_version.clone(),
            state_version: p.state_version,
            options,
            last_time: rfc3339(p.last_time),
            last_time_ns: p.last_time,
        }
    }
}

impl ProvenanceJson {
    /// The stored provenance back (the fingerprint text exactly: serde_json
    /// writes objects with sorted keys, as the fingerprint is written).
    pub fn provenance(&self) -> Provenance {
        let options = match &self.options {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Provenance {
            detector: self.detector.clone(),
            detector_version: self.detector_version.clone(),
            state_version: self.state_version,
            options,
            last_time: self.last_time_ns,
        }
    }
}

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

/// One field's state as stored and as the control socket sends it
/// (exact: `state` is the detector's bytes, base64). The provenance fields
/// sit at the top level of the JSON object, beside `group`, `field` and
/// `state`. This is the export file format of version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedField {
    /// Group id.
    pub group: String,
    /// Field.
    pub field: String,
    /// Who built the state (`last_time` in ns, options as text).
    #[serde(flatten)]
    pub provenance: Provenance,
    /// State bytes, base64 (standard alphabet, padded).
    pub state: String,
}

/// One field's state in an export file of version 2: as
/// [`ExportedField`], the provenance in the JSON output's shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileField {
    /// Group id.
    pub group: String,
    /// Field.
    pub field: String,
    /// Who built the state.
    #[serde(flatten)]
    pub provenance: ProvenanceJson,
    /// State bytes, base64 (standard alphabet, padded).
    pub state: String,
}

/// A whole node's state, as `state export` writes it (version 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportFile {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`].
    pub version: u32,
    /// Task id.
    pub task: String,
    /// Node id.
    pub node: String,
    /// Every field.
    pub fields: Vec<FileField>,
}

/// The export file for `e`.
pub fn export_file(e: &Export) -> ExportFile {
    ExportFile {
        format: EXPORT_FORMAT.into(),
        version: EXPORT_VERSION,
        task: e.task.clone(),
        node: e.node.clone(),
        fields: e
            .fields
            .iter()
            .map(|f| FileField {
                group: f.group.clone(),
                field: f.field.clone(),
                provenance: ProvenanceJson::from(&f.provenance),
                state: f.state.clone(),
            })
            .collect(),
    }
}

#[derive(Debug, Deserialize)]
struct ExportHeader {
    format: String,
    version: u32,
}

/// Reads an export file of any version this build knows, into the stored
/// shape.
pub fn parse_export(text: &str) -> Result<Export, ImportError> {
    let json = |e: serde_json::Error| ImportError::Json(e.to_string());
    let header: ExportHeader = serde_json::from_str(text).map_err(json)?;
    if header.format != EXPORT_FORMAT {
        return Err(ImportError::Format(header.format));
    }
    match header.version {
        WIRE_EXPORT_VERSION => serde_json::from_str(text).map_err(json),
        EXPORT_VERSION => {
            let file: ExportFile = serde_json::from_str(text).map_err(json)?;
            Ok(Export {
                format: file.format,
                version: WIRE_EXPORT_VERSION,
                task: file.task,
                node: file.node,
                fields: file
                    .fields
                    .into_iter()
                    .map(|f| ExportedField {
                        group: f.group,
                        field: f.field,
                        provenance: f.provenance.provenance(),
                        state: f.state,
                    })
                    .collect(),
            })
        }
        v => Err(ImportError::Version(v)),
    }
}

/// A whole node's state in the stored shape (version 1), as the control
/// socket answers `export`; `state export` writes [`export_file`] of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// [`WIRE_EXPORT_VERSION`].
    pub version: u32,
    /// Task id.
    pub task: String,
    /// Node id.
    pub node: String,
    /// Every field.
    pub fields: Vec<ExportedField>,
}

/// State kept aside (not applied, or reset), as stored and as the control
/// socket sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsideRow {
    /// Group id.
    pub group: String,
    /// Field.
    pub field: String,
    /// Who built the state (`last_time` in ns, options as text).
    #[serde(flatten)]
    pub provenance: Provenance,
    /// Why it was set aside.
    pub reason: String,
    /// When, RFC 3339.
    pub set_aside_at: String,
}

/// An [`AsideRow`] as `state aside --json` prints it (the JSON output's
/// shapes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AsideOut {
    /// Group id.
    pub group: String,
    /// Field.
    pub field: String,
    /// Who built the state.
    #[serde(flatten)]
    pub provenance: ProvenanceJson,
    /// Why it was set aside.
    pub reason: String,
    /// When, RFC 3339.
    pub set_aside_at: String,
}

impl From<&AsideRow> for AsideOut {
    fn from(r: &AsideRow) -> Self {
        Self {
            group: r.group.clone(),
            field: r.field.clone(),
            provenance: ProvenanceJson::from(&r.provenance),
            reason: r.reason.clone(),
            set_aside_at: r.set_aside_at.clone(),
        }
    }
}

/// Rows for records set aside.
pub fn aside_rows(records: &[tickwatch_state::store::AsideRecord]) -> Vec<AsideRow> {
    records
        .iter()
        .map(|r| AsideRow {
            group: r.state.group.clone(),
            field: r.state.field.clone(),
            provenance: r.state.provenance.clone(),
            reason: r.reason.clone(),
            set_aside_at: rfc3339_ms(r.at_ms),
        })
        .collect()
}

/// RFC 3339 text of a millisecond timestamp (when state was set aside).
pub fn rfc3339_ms(ms: u64) -> String {
    rfc3339(i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000).saturating_mul(1_000_000))
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
pub fn describe(
    factory: &dyn DetectorFactory,
    options: &Options,
    state: &FieldState,
) -> serde_json::Value {
    match describe_state(factory, options, &state.state) {
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
        detector: state.provenance.detector.clone(),
        last_time: rfc3339(state.provenance.last_time),
        last_time_ns: state.provenance.last_time,
        summary,
    }
}

/// An export of `fields`.
pub fn export(task: &str, node: &str, fields: &[FieldState]) -> Export {
    Export {
        format: EXPORT_FORMAT.into(),
        version: WIRE_EXPORT_VERSION,
        task: task.into(),
        node: node.into(),
        fields: fields
            .iter()
            .map(|f| ExportedField {
                group: f.group.clone(),
                field: f.field.clone(),
                provenance: f.provenance.clone(),
                state: base64::engine::general_purpose::STANDARD.encode(&f.state),
            })
            .collect(),
    }
}

/// Field states back from an export.
pub fn import(export: &Export) -> Result<Vec<FieldState>, ImportError> {
    if export.format != EXPORT_FORMAT {
        return Err(ImportError::Format(export.format.clone()));
    }
    if export.version != WIRE_EXPORT_VERSION {
        return Err(ImportError::Version(export.version));
    }
    export
        .fields
        .iter()
        .map(|f| {
            let state =
                base64::engine::general_purpose::STANDARD.decode(&f.state).map_err(|source| {
                    ImportError::Base64 { field: f.field.clone(), group: f.group.clone(), source }
                })?;
            Ok(FieldState {
                group: f.group.clone(),
                field: f.field.clone(),
                provenance: f.provenance.clone(),
                state,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> FieldState {
        FieldState {
            group: "printer=a".into(),
            field: "bed".into(),
            provenance: Provenance {
                detector: "ttest".into(),
                detector_version: "0.1.0".into(),
                state_version: 1,
                options: r#"{"size":3600}"#.into(),
                last_time: 42,
            },
            state: vec![9, 8, 7],
        }
    }

    #[test]
    fn export_keeps_the_flat_json_shape_and_imports_back_exactly() {
        let e = export("t", "n", &[state()]);
        let json = serde_json::to_value(export_file(&e)).unwrap();
        assert_eq!(json["version"], 2);
        let f = &json["fields"][0];
        for key in ["group", "field", "detector", "detector_version", "state_version", "options"] {
            assert!(f.get(key).is_some(), "{key} at the top level: {f}");
        }
        assert_eq!(f["last_time"], "1970-01-01T00:00:00.000000042Z");
        assert_eq!(f["last_time_ns"], 42);
        assert_eq!(f["options"], serde_json::json!({"size": 3600}));
        assert_eq!(f["state"], "CQgH");
        assert_eq!(import(&e).unwrap(), vec![state()]);
        let text = serde_json::to_string(&export_file(&e)).unwrap();
        assert_eq!(import(&parse_export(&text).unwrap()).unwrap(), vec![state()]);
        // Version 1 (options as text, last_time in ns) still imports, exactly.
        let v1 = r#"{"format":"tickwatch-state-export","version":1,"task":"t","node":"n",
            "fields":[{"group":"printer=a","field":"bed","detector":"ttest",
            "detector_version":"0.1.0","state_version":1,"options":"{\"size\":3600}",
            "last_time":42,"state":"CQgH"}]}"#;
        assert_eq!(import(&parse_export(v1).unwrap()).unwrap(), vec![state()]);
        assert!(matches!(
            parse_export(&v1.replace("\"version\":1", "\"version\":9")),
            Err(ImportError::Version(9))
        ));
        let mut wrong = e.clone();
        wrong.format = "x".into();
        assert!(matches!(import(&wrong), Err(ImportError::Format(_))));
        let mut bad = e;
        bad.fields[0].state = "!!".into();
        assert!(import(&bad).unwrap_err().to_string().contains("field bed group \"printer=a\""));
    }
}
