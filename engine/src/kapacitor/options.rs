//! TICKscript option values as they reach a UDF's Init, and Kapacitor's
//! rule for them: every option call must be declared by the UDF's Info with
//! exactly that many arguments of those types, or Kapacitor rejects the
//! script before the task starts.

use tickwatch_proto::agent::{self, option_value};

/// Applies Kapacitor's rule to a TICKscript's option calls: every option
/// must be declared by Info and get exactly the declared number and types
/// of arguments, or the script is rejected before the task starts.
pub fn check_options(info: &agent::InfoResponse, options: &[agent::Option]) -> Result<(), String> {
    for o in options {
        let Some(decl) = info.options.get(&o.name) else {
            return Err(format!("no method or property \"{}\" on udf node", o.name));
        };
        if decl.value_types.len() != o.values.len() {
            return Err(format!(
                "unexpected number of args to {}, got {} expected {}",
                o.name,
                o.values.len(),
                decl.value_types.len()
            ));
        }
        for (i, (v, &want)) in o.values.iter().zip(&decl.value_types).enumerate() {
            let got = match v.value {
                Some(option_value::Value::BoolValue(_)) => agent::ValueType::Bool,
                Some(option_value::Value::IntValue(_)) => agent::ValueType::Int,
                Some(option_value::Value::DoubleValue(_)) => agent::ValueType::Double,
                Some(option_value::Value::StringValue(_)) => agent::ValueType::String,
                Some(option_value::Value::DurationValue(_)) => agent::ValueType::Duration,
                None => return Err(format!("arg {i} to {} has no value", o.name)),
            };
            if got as i32 != want || v.r#type != want {
                return Err(format!(
                    "invalid arg {i} to {}: got {:?} expected {:?}",
                    o.name,
                    got,
                    agent::ValueType::try_from(want).unwrap_or(agent::ValueType::Bool)
                ));
            }
        }
    }
    Ok(())
}

/// Option-building helpers, as TICKscript literals arrive.
pub mod opt {
    use tickwatch_proto::agent::{self, option_value};

    fn value(t: agent::ValueType, v: option_value::Value) -> agent::OptionValue {
        agent::OptionValue { r#type: t as i32, value: Some(v) }
    }
    /// A string literal.
    pub fn s(x: &str) -> agent::OptionValue {
        value(agent::ValueType::String, option_value::Value::StringValue(x.into()))
    }
    /// An integer literal.
    pub fn i(x: i64) -> agent::OptionValue {
        value(agent::ValueType::Int, option_value::Value::IntValue(x))
    }
    /// A float literal.
    pub fn d(x: f64) -> agent::OptionValue {
        value(agent::ValueType::Double, option_value::Value::DoubleValue(x))
    }
    /// A bool literal.
    pub fn b(x: bool) -> agent::OptionValue {
        value(agent::ValueType::Bool, option_value::Value::BoolValue(x))
    }
    /// A duration literal, in nanoseconds.
    pub fn dur(ns: i64) -> agent::OptionValue {
        value(agent::ValueType::Duration, option_value::Value::DurationValue(ns))
    }
    /// One option call.
    pub fn call(name: &str, values: Vec<agent::OptionValue>) -> agent::Option {
        agent::Option { name: name.into(), values }
    }
}
