//! The control socket's wire types: one [`RequestLine`] in, one
//! [`ResponseLine`] out, each a JSON object on one line.
//!
//! Versioned: the asking side sends its [`VERSION`]; a node answers a
//! request of any version from [`MIN_VERSION`] to its own in that version
//! (so an older `tickwatch state` still reads a newer node) and refuses
//! others with an error naming both, so a tickwatch from another release
//! fails clearly instead of misreading the answer.
//!
//! Versions: 1 was the unversioned `{"op": …}` form; 2 added the version;
//! 3 added [`Request::Metrics`] (`tickwatch exporter`), asked of a node
//! that speaks 2 it is refused by name.

use serde::{Deserialize, Serialize};

use crate::inspect::{AsideRow, Export, FieldRow};
use crate::metrics::{NodeFigures, ProcessFigures};

/// The version this build speaks.
pub const VERSION: u32 = 3;

/// The oldest version a node still answers.
pub const MIN_VERSION: u32 = 2;

/// What `tickwatch state` asks a running node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Rows with the detector's summaries (`state show`).
    Show,
    /// Exact state (`state export`, and `state list`).
    Export,
    /// State kept aside (`state aside`).
    Aside,
    /// The node's metrics and its process's (`tickwatch exporter`; since 3).
    Metrics,
}

impl Request {
    /// The first protocol version with this request.
    pub fn since(self) -> u32 {
        match self {
            Request::Show | Request::Export | Request::Aside => 2,
            Request::Metrics => 3,
        }
    }
}

/// A node's figures and its process's, for [`Request::Metrics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// The node's counters.
    pub node: NodeFigures,
    /// The process serving it.
    pub process: ProcessFigures,
}

/// The node's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// For [`Request::Show`].
    Rows(Vec<FieldRow>),
    /// For [`Request::Export`].
    Export(Export),
    /// For [`Request::Aside`].
    Aside(Vec<AsideRow>),
    /// For [`Request::Metrics`].
    Metrics(Box<Figures>),
    /// The request failed; why.
    Error(String),
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestLine {
    /// [`VERSION`] of the asking side.
    pub version: u32,
    /// The question.
    pub request: Request,
}

/// One answer line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseLine {
    /// [`VERSION`] of the answering side.
    pub version: u32,
    /// The answer.
    pub response: Response,
}

#[cfg(test)]
mod tests {
    use tickwatch_state::{FieldState, Provenance};

    use super::*;
    use crate::inspect;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(v: T) {
        let line = serde_json::to_string(&v).unwrap();
        assert!(!line.contains('\n'), "one line: {line}");
        assert_eq!(serde_json::from_str::<T>(&line).unwrap(), v);
    }

    #[test]
    fn every_message_round_trips_on_one_line() {
        let state = FieldState {
            group: "printer=a".into(),
            field: "hotend".into(),
            provenance: Provenance {
                detector: "ttest".into(),
                detector_version: "0.1.0".into(),
                state_version: 1,
                options: r#"{"alpha":0.001,"size":3600}"#.into(),
                last_time: 1_451_606_700_000_000_000,
            },
            state: vec![0, 1, 2, 255],
        };
        for request in [Request::Show, Request::Export, Request::Aside, Request::Metrics] {
            round_trip(RequestLine { version: VERSION, request });
        }
        let summary = serde_json::json!({"n": 3600, "mean": 220.5});
        let responses = [
            Response::Rows(vec![inspect::row("t", "n", &state, summary)]),
            Response::Export(inspect::export("t", "n", std::slice::from_ref(&state))),
            Response::Aside(inspect::aside_rows(&[tickwatch_state::store::AsideRecord {
                state: state.clone(),
                reason: "built with options {}".into(),
                at_ms: 1_700_000_000_000,
            }])),
            Response::Error("no\nsuch node".into()),
            Response::Metrics(Box::new(Figures {
                node: crate::metrics::NodeMetrics::new("t", "n", "ttest", &["f".into()]).figures(),
                process: crate::metrics::process(),
            })),
        ];
        for response in responses {
            round_trip(ResponseLine { version: VERSION, response });
        }
    }

    #[test]
    fn the_wire_form_is_readable_json() {
        let line = serde_json::to_string(&RequestLine { version: VERSION, request: Request::Show })
            .unwrap();
        assert_eq!(line, r#"{"version":3,"request":"show"}"#);
        let err = ResponseLine { version: VERSION, response: Response::Error("x".into()) };
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"version":3,"response":{"error":"x"}}"#
        );
    }
}
