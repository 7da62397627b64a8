//! `google.protobuf.Struct` ↔ `serde_json`: variables and form data travel as Structs
//! on the wire and as JSON everywhere else.

use std::collections::BTreeMap;

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::{Map, Number};

/// A Struct as a JSON object. Numbers that JSON cannot hold (NaN, infinities) become
/// an error naming the path.
pub fn struct_to_json(value: &Struct) -> Result<Map<String, serde_json::Value>, String> {
    value
        .fields
        .iter()
        .map(|(key, value)| Ok((key.clone(), value_to_json(value, key)?)))
        .collect()
}

fn value_to_json(value: &Value, path: &str) -> Result<serde_json::Value, String> {
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::NumberValue(n)) => serde_json::Value::Number(
            Number::from_f64(*n).ok_or_else(|| format!("{path} is not a finite number"))?,
        ),
        Some(Kind::StructValue(s)) => serde_json::Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), value_to_json(v, &format!("{path}.{k}"))?)))
                .collect::<Result<_, String>>()?,
        ),
        Some(Kind::ListValue(list)) => serde_json::Value::Array(
            list.values
                .iter()
                .enumerate()
                .map(|(i, v)| value_to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// A JSON object as a Struct. Numbers become doubles (the only number a Struct has).
pub fn json_to_struct(value: &Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: value
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect::<BTreeMap<_, _>>(),
    }
}

pub fn json_to_value(value: &serde_json::Value) -> Value {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_nested_values() {
        let original = json!({"a": 1.5, "b": [true, null, "ü"], "c": {"d": {"e": []}}, "f": {}});
        let map = original.as_object().unwrap();
        let back = struct_to_json(&json_to_struct(map)).unwrap();
        assert_eq!(serde_json::Value::Object(back), original);
    }

    #[test]
    fn non_finite_numbers_are_refused_with_their_path() {
        let s = Struct {
            fields: BTreeMap::from([(
                "x".to_owned(),
                Value {
                    kind: Some(Kind::ListValue(ListValue {
                        values: vec![Value {
                            kind: Some(Kind::NumberValue(f64::NAN)),
                        }],
                    })),
                },
            )]),
        };
        assert_eq!(
            struct_to_json(&s).unwrap_err(),
            "x[0] is not a finite number"
        );
    }
}
