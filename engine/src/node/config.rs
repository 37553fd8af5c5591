//! Init options as a TICKscript sends them → a validated [`NodeConfig`].
//!
//! Kapacitor rejects a call whose argument count or types differ from the
//! Info answer, so `field` is declared with a fixed arity (`--field-arity`,
//! default 3): empty strings are padding (`.field('hotend','','')` tracks one
//! field) and repeated calls accumulate. Nothing reads raw options after this.

use std::collections::HashMap;

use tickwatch_plugin_api::{OptionSpec, Options, Value, ValueKind};
use tickwatch_proto::agent::{self, option_value};

pub use tickwatch_plugin_api::options::{
    ALIGN_OPTION, EVERY_OPTION, FIELD_OPTION, FIELD_TAG_OPTION, PASS_THROUGH_OPTION, PERIOD_OPTION,
    RESERVED_OPTION_NAMES,
};

/// Default of [`FIELD_TAG_OPTION`].
pub const DEFAULT_FIELD_TAG: &str = "field";

/// Why Init options were refused; Kapacitor shows the text when the task
/// fails to start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// An option neither tickwatch nor the detector declares.
    #[error("unknown option {name} (known: {known})")]
    Unknown {
        /// The option.
        name: String,
        /// The declared names, comma-separated.
        known: String,
    },
    /// Wrong number of arguments.
    #[error("option {name} takes {want} argument{}, got {got}", if *.want == 1 { "" } else { "s" })]
    Arity {
        /// The option.
        name: String,
        /// Declared count.
        want: usize,
        /// Count sent.
        got: usize,
    },
    /// An argument without a value.
    #[error("option {name} argument {index} has no value")]
    NoValue {
        /// The option.
        name: String,
        /// 1-based argument position.
        index: usize,
    },
    /// An argument of the wrong type.
    #[error("option {name} argument {index} must be {want}, got {got}")]
    Type {
        /// The option.
        name: String,
        /// 1-based argument position.
        index: usize,
        /// Declared kind.
        want: ValueKind,
        /// Kind sent.
        got: ValueKind,
    },
    /// A field named twice.
    #[error("option field names {0:?} twice")]
    DuplicateField(String),
    /// `fieldTag('')`.
    #[error("option fieldTag must not be empty")]
    EmptyFieldTag,
    /// No non-empty field.
    #[error("no field to track: name at least one with .field('name')")]
    NoField,
    /// A required detector option is missing.
    #[error("option {name} is required: {help}")]
    Required {
        /// The option.
        name: String,
        /// Its help text.
        help: String,
    },
    /// A stored options fingerprint does not parse under the detector's specs.
    #[error("{0}")]
    Fingerprint(String),
    /// `.period()` / `.every()` out of range or one without the other.
    #[error("{0}")]
    Window(String),
    /// An option that does not fit the edge type the node is served with,
    /// or a stream node whose detector needs windows but got no `.period()`.
    #[error("{0}")]
    Edge(String),
}

/// The options tickwatch itself owns (`field`, `fieldTag`, `period`,
/// `every`, `passThrough`), as a chain sets them; the detector's options are
/// checked against its declarations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tracking {
    /// Fields to track, in script order, no duplicates, at least one.
    pub fields: Vec<String>,
    /// Tag carrying the field name on emitted points.
    pub field_tag: String,
    /// `.period()`, nanoseconds (stream edges).
    pub period: Option<i64>,
    /// `.every()`, nanoseconds (stream edges).
    pub every: Option<i64>,
    /// `.align()` (stream edges).
    pub align: bool,
    /// `.passThrough()`.
    pub pass_through: bool,
}

impl Tracking {
    /// The stream window `.period()` and `.every()` ask for (`None`: none
    /// given), checked as Kapacitor's window node checks its own.
    pub fn window(&self) -> Result<Option<StreamWindow>, ConfigError> {
        for (name, v) in [(PERIOD_OPTION, self.period), (EVERY_OPTION, self.every)] {
            if let Some(ns) = v
                && ns <= 0
            {
                return Err(ConfigError::Window(format!(
                    "option {name} must be positive, got {ns} ns"
                )));
            }
        }
        match (self.period, self.every) {
            (None, None) if self.align => Err(ConfigError::Window(
                "option align needs .period().every(): it aligns the windows they cut".into(),
            )),
            (None, None) => Ok(None),
            (Some(period), Some(every)) => {
                Ok(Some(StreamWindow { period, every, align: self.align }))
            }
            // Kapacitor's window node refuses the same with "window node
            // must have either a non zero period or non zero period count".
            (None, Some(_)) => Err(ConfigError::Window(
                "option every needs .period() too: a window is .period() long and one is \
                 emitted every .every(), as |window().period(5m).every(5m) (Kapacitor: \
                 \"window node must have either a non zero period or non zero period count\")"
                    .into(),
            )),
            (Some(_), None) => Err(ConfigError::Window(
                "option period needs .every() too (Kapacitor's window node without every emits \
                 a window on every point, which tickwatch does not do): write .every(5m) for \
                 tumbling windows, or leave both out to score every point"
                    .into(),
            )),
        }
    }
}

/// The windows a stream-edge node forms itself, as
/// `|window().period(period).every(every)` (nanoseconds, both positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamWindow {
    /// Window length.
    pub period: i64,
    /// How often a window is emitted.
    pub every: i64,
    /// `.align()`: window ends on multiples of `every`.
    pub align: bool,
}

/// A node's validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Fields to track, in script order, no duplicates, at least one.
    pub fields: Vec<String>,
    /// Tag carrying the field name on emitted points.
    pub field_tag: String,
    /// `.period().every()`: the windows a stream-edge node forms (`None`:
    /// not given; a stream node then scores every point).
    pub window: Option<StreamWindow>,
    /// `.passThrough()`: emit the input points with the verdict added.
    pub pass_through: bool,
    /// The detector's options, defaults filled in.
    pub detector_options: Options,
    /// Canonical text of the detector options (see [`fingerprint`]), stored
    /// beside state so state built under other options is not reused.
    pub fingerprint: String,
}

/// The option declarations sent in the InfoResponse: tickwatch's own plus the
/// detector's (each detector option takes one argument).
pub fn declared(field_arity: usize, detector: &[OptionSpec]) -> Vec<(String, Vec<ValueKind>)> {
    let mut out = vec![
        (FIELD_OPTION.to_string(), vec![ValueKind::String; field_arity]),
        (FIELD_TAG_OPTION.to_string(), vec![ValueKind::String]),
        (PERIOD_OPTION.to_string(), vec![ValueKind::Duration]),
        (EVERY_OPTION.to_string(), vec![ValueKind::Duration]),
        (ALIGN_OPTION.to_string(), vec![]),
        (PASS_THROUGH_OPTION.to_string(), vec![]),
    ];
    // The loader refuses plugins that declare the reserved names.
    out.extend(detector.iter().map(|s| (s.name.clone(), vec![s.kind])));
    out
}

fn value_of(v: &agent::OptionValue) -> Option<Value> {
    Some(match v.value.as_ref()? {
        option_value::Value::BoolValue(b) => Value::Bool(*b),
        option_value::Value::IntValue(i) => Value::Int(*i),
        option_value::Value::DoubleValue(d) => Value::Double(*d),
        option_value::Value::StringValue(s) => Value::String(s.clone()),
        option_value::Value::DurationValue(d) => Value::Duration(*d),
    })
}

/// `field` and `fieldTag` from option calls whose types Kapacitor already
/// checked (a replayed chain): the same rules as [`validate`] applies.
pub fn tracking(options: &[agent::Option]) -> Result<Tracking, ConfigError> {
    let mut t = Tracking { field_tag: DEFAULT_FIELD_TAG.to_string(), ..Tracking::default() };
    for opt in options {
        let values = opt.values.iter().filter_map(value_of);
        track(&mut t, &opt.name, values)?;
    }
    if t.fields.is_empty() {
        return Err(ConfigError::NoField);
    }
    t.window()?;
    Ok(t)
}

/// Applies one call of an option tickwatch owns; other names are not
/// tickwatch's.
fn track(
    t: &mut Tracking,
    name: &str,
    values: impl Iterator<Item = Value>,
) -> Result<(), ConfigError> {
    match name {
        FIELD_OPTION => {
            for v in values {
                let Value::String(name) = v else { continue };
                if name.is_empty() {
                    continue;
                }
                if t.fields.contains(&name) {
                    return Err(ConfigError::DuplicateField(name));
                }
                t.fields.push(name);
            }
        }
        FIELD_TAG_OPTION => {
            if let Some(Value::String(tag)) = values.into_iter().next() {
                if tag.is_empty() {
                    return Err(ConfigError::EmptyFieldTag);
                }
                t.field_tag = tag;
            }
        }
        // The later call wins, as for any TICKscript property.
        PERIOD_OPTION | EVERY_OPTION => {
            if let Some(Value::Duration(ns) | Value::Int(ns)) = values.into_iter().next() {
                if name == PERIOD_OPTION {
                    t.period = Some(ns);
                } else {
                    t.every = Some(ns);
                }
            }
        }
        PASS_THROUGH_OPTION => t.pass_through = true,
        ALIGN_OPTION => t.align = true,
        _ => {}
    }
    Ok(())
}

/// Validates Init options against the declarations; the error says which
/// option and why (Kapacitor shows it when the task fails to start).
pub fn validate(
    options: &[agent::Option],
    field_arity: usize,
    detector: &[OptionSpec],
) -> Result<NodeConfig, ConfigError> {
    let decl: HashMap<String, Vec<ValueKind>> =
        declared(field_arity, detector).into_iter().collect();
    let mut tracked = Tracking { field_tag: DEFAULT_FIELD_TAG.to_string(), ..Tracking::default() };
    let mut set: HashMap<&str, Value> = HashMap::new();

    for opt in options {
        let Some(kinds) = decl.get(&opt.name) else {
            let mut known: Vec<&str> = decl.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Err(ConfigError::Unknown { name: opt.name.clone(), known: known.join(", ") });
        };
        if opt.values.len() != kinds.len() {
            return Err(ConfigError::Arity {
                name: opt.name.clone(),
                want: kinds.len(),
                got: opt.values.len(),
            });
        }
        let mut values = Vec::with_capacity(kinds.len());
        for (i, (v, kind)) in opt.values.iter().zip(kinds).enumerate() {
            let value = value_of(v)
                .ok_or_else(|| ConfigError::NoValue { name: opt.name.clone(), index: i + 1 })?;
            if value.kind() != *kind {
                return Err(ConfigError::Type {
                    name: opt.name.clone(),
                    index: i + 1,
                    want: *kind,
                    got: value.kind(),
                });
            }
            values.push(value);
        }
        if RESERVED_OPTION_NAMES.contains(&opt.name.as_str()) {
            track(&mut tracked, &opt.name, values.into_iter())?;
        } else if let Some(v) = values.into_iter().next()
            && let Some(spec) = detector.iter().find(|s| s.name == opt.name)
        {
            // A detector option set twice: the later call wins, as in a TICKscript.
            set.insert(spec.name.as_str(), v);
        }
    }
    if tracked.fields.is_empty() {
        return Err(ConfigError::NoField);
    }
    let window = tracked.window()?;

    let mut pairs = Vec::with_capacity(detector.len());
    for spec in detector {
        match set.remove(spec.name.as_str()).or_else(|| spec.default.clone()) {
            Some(v) => pairs.push((spec.name.clone(), v)),
            None => {
                return Err(ConfigError::Required {
                    name: spec.name.clone(),
                    help: spec.help.clone(),
                });
            }
        }
    }
    let detector_options = Options::new(pairs);
    Ok(NodeConfig {
        fields: tracked.fields,
        field_tag: tracked.field_tag,
        window,
        pass_through: tracked.pass_through,
        fingerprint: fingerprint(&detector_options, detector),
        detector_options,
    })
}

/// An option value as JSON (durations as integer nanoseconds).
pub fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => serde_json::Value::from(*b),
        Value::Int(i) | Value::Duration(i) => serde_json::Value::from(*i),
        Value::Double(d) => serde_json::Value::from(*d),
        Value::String(s) => serde_json::Value::from(s.as_str()),
    }
}

/// Every option as a JSON object (what a node records in its `meta.json`).
pub fn options_json(options: &Options) -> serde_json::Value {
    serde_json::Value::Object(options.iter().map(|(n, v)| (n.to_string(), value_json(v))).collect())
}

/// Options back from [`options_json`] (or a [`fingerprint`]), typed by the
/// detector's specs; options it leaves out take their defaults.
pub fn options_from_json(
    json: &serde_json::Value,
    specs: &[OptionSpec],
) -> Result<Options, ConfigError> {
    options_from_fingerprint(&json.to_string(), specs)
}

/// Canonical text of the detector options that shape its state: a JSON
/// object with sorted keys of the state-shaping options (see
/// [`OptionSpec::shapes_state`]) that differ from their defaults
/// (`{"size":3600}`). Stored beside state; readable, and parseable back
/// into options with [`options_from_fingerprint`]. Leaving defaults out
/// means a detector release that adds an option (whose default keeps the
/// old behaviour) does not orphan the state built before it; leaving
/// scoring-only options out (the t-test's `alpha`) means changing them
/// keeps every field's history. Whether stored state applies is decided by
/// [`state_mismatch`], which also reads fingerprints written before this
/// rule, over every option.
pub fn fingerprint(options: &Options, specs: &[OptionSpec]) -> String {
    let shaping_non_default = |n: &str, v: &Value| {
        specs.iter().any(|s| s.name == n && s.shapes_state && s.default.as_ref() != Some(v))
    };
    let map: serde_json::Map<String, serde_json::Value> = options
        .iter()
        .filter(|(n, v)| shaping_non_default(n, v))
        .map(|(n, v)| (n.to_string(), value_json(v)))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// Why state stored with fingerprint `stored` must not be loaded into a
/// detector built from `current`, if it must not: a state-shaping option
/// differs (a missing one stands at its default), or the fingerprint names
/// an option the detector no longer declares, or does not parse.
/// Scoring-only options are ignored, so a fingerprint written over every
/// option (before options declared whether they shape state) still
/// matches when only those differ.
pub fn state_mismatch(stored: &str, specs: &[OptionSpec], current: &Options) -> Option<String> {
    let map: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(stored) {
        Ok(m) => m,
        Err(_) => return Some(format!("options {stored} (not a JSON object this build reads)")),
    };
    if let Some(unknown) = map.keys().find(|k| !specs.iter().any(|s| &s.name == *k)) {
        return Some(format!(
            "options {stored}, naming option {unknown}, which the detector no longer declares"
        ));
    }
    let stored_opts = match options_from_fingerprint(stored, specs) {
        Ok(o) => o,
        Err(e) => return Some(e.to_string()),
    };
    let differing: Vec<String> = specs
        .iter()
        .filter(|s| s.shapes_state && stored_opts.get(&s.name) != current.get(&s.name))
        .map(|s| {
            let show = |o: Option<&Value>| o.map_or_else(|| "unset".to_string(), |v| v.to_string());
            format!(
                "{} {} (node uses {})",
                s.name,
                show(stored_opts.get(&s.name)),
                show(current.get(&s.name))
            )
        })
        .collect();
    (!differing.is_empty()).then(|| format!("options {stored}: {}", differing.join(", ")))
}

/// The options to describe state stored with fingerprint `fp` under: the
/// fingerprint's (state-shaping) options, the rest taken from `node` (the
/// node's recorded options), else from the defaults. Fails when a required
/// option is known from neither.
pub fn describing_options(
    fp: &str,
    specs: &[OptionSpec],
    node: Option<&Options>,
) -> Result<Options, ConfigError> {
    let stored = options_from_fingerprint(fp, specs)?;
    let mut pairs = Vec::with_capacity(specs.len());
    for spec in specs {
        let from_node = node.and_then(|n| n.get(&spec.name));
        match stored.get(&spec.name).or(from_node) {
            Some(v) => pairs.push((spec.name.clone(), v.clone())),
            None => {
                return Err(ConfigError::Required {
                    name: spec.name.clone(),
                    help: spec.help.clone(),
                });
            }
        }
    }
    Ok(Options::new(pairs))
}

/// Options back from a [`fingerprint`], typed by the detector's specs.
pub fn options_from_fingerprint(fp: &str, specs: &[OptionSpec]) -> Result<Options, ConfigError> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(fp).map_err(|e| {
            ConfigError::Fingerprint(format!("options {fp:?} are not a JSON object: {e}"))
        })?;
    let mut pairs = Vec::with_capacity(specs.len());
    for spec in specs {
        let Some(j) = map.get(&spec.name) else {
            if let Some(d) = &spec.default {
                pairs.push((spec.name.clone(), d.clone()));
            }
            continue;
        };
        let bad = || {
            ConfigError::Fingerprint(format!(
                "option {} in {fp:?} is not a {}",
                spec.name, spec.kind
            ))
        };
        let v = match spec.kind {
            ValueKind::Bool => Value::Bool(j.as_bool().ok_or_else(bad)?),
            ValueKind::Int => Value::Int(j.as_i64().ok_or_else(bad)?),
            ValueKind::Duration => Value::Duration(j.as_i64().ok_or_else(bad)?),
            ValueKind::Double => Value::Double(j.as_f64().ok_or_else(bad)?),
            ValueKind::String => Value::String(j.as_str().ok_or_else(bad)?.to_string()),
        };
        pairs.push((spec.name.clone(), v));
    }
    Ok(Options::new(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> agent::OptionValue {
        agent::OptionValue {
            r#type: agent::ValueType::String as i32,
            value: Some(option_value::Value::StringValue(x.into())),
        }
    }
    fn i(x: i64) -> agent::OptionValue {
        agent::OptionValue {
            r#type: agent::ValueType::Int as i32,
            value: Some(option_value::Value::IntValue(x)),
        }
    }
    fn d(x: f64) -> agent::OptionValue {
        agent::OptionValue {
            r#type: agent::ValueType::Double as i32,
            value: Some(option_value::Value::DoubleValue(x)),
        }
    }
    fn opt(name: &str, values: Vec<agent::OptionValue>) -> agent::Option {
        agent::Option { name: name.into(), values }
    }
    fn specs() -> Vec<OptionSpec> {
        vec![
            OptionSpec::required("size", ValueKind::Int, "history"),
            OptionSpec::required("alpha", ValueKind::Double, "level"),
        ]
    }

    #[test]
    fn accumulates_fields_skipping_padding() {
        let c = validate(
            &[
                opt("field", vec![s("a"), s(""), s("b")]),
                opt("field", vec![s("c"), s(""), s("")]),
                opt("size", vec![i(3600)]),
                opt("alpha", vec![d(0.001)]),
            ],
            3,
            &specs(),
        )
        .unwrap();
        assert_eq!(c.fields, ["a", "b", "c"]);
        assert_eq!(c.field_tag, "field");
        assert_eq!(c.fingerprint, r#"{"alpha":0.001,"size":3600}"#);
        assert_eq!(options_from_fingerprint(&c.fingerprint, &specs()).unwrap(), c.detector_options);
        // Options at their defaults stay out of the fingerprint.
        let mut with_default = specs();
        with_default.push(OptionSpec::with_default("rebaseline", Value::Int(0), "off"));
        let d = validate(
            &[
                opt("field", vec![s("a"), s(""), s("")]),
                opt("size", vec![i(3600)]),
                opt("alpha", vec![d(0.001)]),
            ],
            3,
            &with_default,
        )
        .unwrap();
        assert_eq!(d.fingerprint, c.fingerprint);
        assert_eq!(
            options_from_fingerprint(&d.fingerprint, &with_default).unwrap(),
            d.detector_options
        );
    }

    fn shaped() -> Vec<OptionSpec> {
        vec![
            OptionSpec::required("size", ValueKind::Int, "history"),
            OptionSpec::required("alpha", ValueKind::Double, "level").scoring_only(),
            OptionSpec::with_default("rebaseline", Value::Int(0), "off"),
        ]
    }

    fn node(size: i64, alpha: f64, extra: Vec<agent::Option>) -> NodeConfig {
        let mut o = vec![
            opt("field", vec![s("a"), s(""), s("")]),
            opt("size", vec![i(size)]),
            opt("alpha", vec![d(alpha)]),
        ];
        o.extend(extra);
        validate(&o, 3, &shaped()).unwrap()
    }

    #[test]
    fn only_state_shaping_options_are_fingerprinted_and_compared() {
        let a = node(3600, 0.001, vec![]);
        assert_eq!(a.fingerprint, r#"{"size":3600}"#);
        let b = node(3600, 0.05, vec![]);
        assert_eq!(b.fingerprint, a.fingerprint);
        assert_eq!(state_mismatch(&a.fingerprint, &shaped(), &b.detector_options), None);
        // A fingerprint over every option (written before options declared
        // whether they shape state) still matches when only alpha differs.
        let old = r#"{"alpha":0.001,"size":3600}"#;
        assert_eq!(state_mismatch(old, &shaped(), &b.detector_options), None);
        let c = node(600, 0.001, vec![]);
        assert_eq!(
            state_mismatch(old, &shaped(), &c.detector_options).unwrap(),
            r#"options {"alpha":0.001,"size":3600}: size 3600 (node uses 600)"#
        );
        // A default left out stands for its value.
        let r = node(3600, 0.001, vec![opt("rebaseline", vec![i(4)])]);
        assert_eq!(r.fingerprint, r#"{"rebaseline":4,"size":3600}"#);
        assert_eq!(
            state_mismatch(&a.fingerprint, &shaped(), &r.detector_options).unwrap(),
            r#"options {"size":3600}: rebaseline 0 (node uses 4)"#
        );
        assert!(
            state_mismatch(r#"{"size":3600,"gone":1}"#, &shaped(), &a.detector_options)
                .unwrap()
                .contains("naming option gone, which the detector no longer declares")
        );
        assert!(
            state_mismatch("alpha=0.001,size=3600", &shaped(), &a.detector_options)
                .unwrap()
                .contains("not a JSON object")
        );
        assert!(
            state_mismatch(r#"{"size":"big"}"#, &shaped(), &a.detector_options)
                .unwrap()
                .contains("option size in")
        );
    }

    #[test]
    fn refuses_with_the_reason() {
        let base = || vec![opt("size", vec![i(10)]), opt("alpha", vec![d(0.1)])];
        let err = |extra: Vec<agent::Option>| {
            let mut o = base();
            o.extend(extra);
            validate(&o, 3, &specs()).unwrap_err().to_string()
        };
        assert!(err(vec![]).contains("no field to track"));
        assert!(err(vec![opt("field", vec![s(""), s(""), s("")])]).contains("no field"));
        assert_eq!(
            err(vec![opt("field", vec![s("a"), s("a"), s("")])]),
            "option field names \"a\" twice"
        );
        assert_eq!(err(vec![opt("field", vec![s("a")])]), "option field takes 3 arguments, got 1");
        assert_eq!(
            err(vec![opt("field", vec![s("a"), i(1), s("")])]),
            "option field argument 2 must be string, got int"
        );
        assert!(err(vec![opt("window", vec![i(1)])]).starts_with("unknown option window"));
        let missing = validate(&[opt("field", vec![s("a"), s(""), s("")])], 3, &specs());
        assert!(missing.unwrap_err().to_string().starts_with("option size is required"));
    }

    #[test]
    fn tracking_reads_the_same_rules_from_a_chain() {
        let t = tracking(&[
            opt("field", vec![s("a"), s(""), s("b")]),
            opt("size", vec![i(3)]),
            opt("fieldTag", vec![s("metric")]),
        ])
        .unwrap();
        assert_eq!(t.fields, ["a", "b"]);
        assert_eq!(t.field_tag, "metric");
        assert_eq!(tracking(&[opt("size", vec![i(3)])]), Err(ConfigError::NoField));
        assert_eq!(
            tracking(&[opt("field", vec![s("a"), s("a"), s("")])]),
            Err(ConfigError::DuplicateField("a".into()))
        );
        assert_eq!(
            tracking(&[opt("field", vec![s("a")]), opt("fieldTag", vec![s("")])]),
            Err(ConfigError::EmptyFieldTag)
        );
    }
}
