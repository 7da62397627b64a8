//! The engine's typed variables ↔ JSON values, one documented mapping both ways.
//!
//! To the engine (a JSON value, as a `Struct` field gives it):
//! - a number that is integral, not `-0`, and within ±2^53 (the integers a double
//!   holds exactly) → `Long`; any other number → `Double` (so `-0`, `0.5`, `1e300`
//!   and `2^60`, which arrived as a double already, stay doubles);
//! - a string → `String`, unless it is longer than the engine stores as a `String`
//!   (4,000: the runtime and history tables keep a `String` in a varchar(4000)
//!   column, and a longer one fails at commit — on PostgreSQL with "value too long",
//!   and every later attempt the same): then an `Object` of type `java.lang.String`
//!   serialized as JSON, which the engine keeps in its byte array table without a
//!   limit and hands to expressions as a Java `String` (`${note == 'x'}`,
//!   `${note.length()}` work as for any text) and to REST clients as text;
//! - a boolean → `Boolean`; null → `Null`;
//! - an object or a list → `Json` (the engine's Spin JSON, readable by every client;
//!   untyped objects would need Java serialization, which the engine refuses).
//!
//! From the engine:
//! - `String`, `Boolean`, `Short`, `Integer`, `Long`, `Double` → the same JSON value;
//!   `Null` → null;
//! - `Date` → an RFC 3339 string (`2025-01-31T10:15:30.000Z`);
//! - `Json` → the parsed value; `Object` serialized as `application/json` → the parsed
//!   value; `Xml` → its text;
//! - a Java-serialized `Object`, `Bytes`, `File` → an error naming the variable: no
//!   client but a Java one could read them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A variable as the engine's REST API writes and reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypedValue {
    #[serde(default)]
    pub value: Value,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub value_info: Map<String, Value>,
}

/// Variables by name, as the engine's REST API takes and gives them.
pub type Variables = Map<String, Value>;

/// The longest text the engine stores as a `String` variable. Counted in bytes of
/// UTF-8, so that it holds whether the engine's database counts characters
/// (PostgreSQL, H2, MySQL, SQL Server) or bytes (Oracle's default).
pub const ENGINE_STRING_LIMIT: usize = 4000;

/// The largest magnitude at which every integer is a double: 2^53.
const SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// One value typed for the engine.
pub fn to_engine(value: &Value) -> TypedValue {
    let typed = |value: Value, kind: &str| TypedValue {
        value,
        kind: Some(kind.to_owned()),
        value_info: Map::new(),
    };
    match value {
        Value::Null => typed(Value::Null, "Null"),
        Value::Bool(b) => typed(Value::Bool(*b), "Boolean"),
        Value::String(s) if s.len() > ENGINE_STRING_LIMIT => TypedValue {
            value: Value::String(value.to_string()),
            kind: Some("Object".to_owned()),
            value_info: Map::from_iter([
                ("objectTypeName".to_owned(), Value::from("java.lang.String")),
                (
                    "serializationDataFormat".to_owned(),
                    Value::from("application/json"),
                ),
            ]),
        },
        Value::String(s) => typed(Value::String(s.clone()), "String"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64().filter(|i| (*i as f64).abs() <= SAFE_INTEGER) {
                return typed(Value::from(i), "Long");
            }
            let f = n.as_f64().unwrap_or(f64::NAN);
            let integral =
                f.fract() == 0.0 && f.abs() <= SAFE_INTEGER && !(f == 0.0 && f.is_sign_negative());
            if integral {
                typed(Value::from(f as i64), "Long")
            } else {
                typed(Value::Number(n.clone()), "Double")
            }
        }
        Value::Array(_) | Value::Object(_) => typed(Value::String(value.to_string()), "Json"),
    }
}

/// A whole set of variables typed for the engine, as `{name: {value, type}}`.
pub fn variables_to_engine(values: &Map<String, Value>) -> Variables {
    values
        .iter()
        .map(|(name, value)| {
            (
                name.clone(),
                serde_json::to_value(to_engine(value)).expect("a typed value serializes"),
            )
        })
        .collect()
}

/// Why a variable cannot become JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable {name:?}: {problem}")]
pub struct VariableError {
    pub name: String,
    pub problem: String,
}

/// One engine variable as JSON.
pub fn from_engine(name: &str, typed: &TypedValue) -> Result<Value, VariableError> {
    let error = |problem: String| VariableError {
        name: name.to_owned(),
        problem,
    };
    let kind = typed.kind.as_deref().unwrap_or("");
    match kind {
        "Null" => Ok(Value::Null),
        "String" | "Boolean" | "Short" | "Integer" | "Long" | "Double" | "" => {
            Ok(typed.value.clone())
        }
        "Date" => match &typed.value {
            Value::Null => Ok(Value::Null),
            Value::String(s) => Ok(Value::String(
                engine_date_to_rfc3339(s)
                    .ok_or_else(|| error(format!("{s:?} is not an engine date")))?,
            )),
            other => Err(error(format!("a Date that is not a string: {other}"))),
        },
        "Json" => parse_serialized(&typed.value).map_err(error),
        "Xml" => Ok(typed.value.clone()),
        "Object" => {
            let format = typed
                .value_info
                .get("serializationDataFormat")
                .and_then(Value::as_str)
                .unwrap_or("");
            let text = typed
                .value_info
                .get("objectTypeName")
                .and_then(Value::as_str)
                == Some("java.lang.String");
            if format == "application/json" && text {
                // A long text: serialized it is a JSON string; deserialized (when the
                // engine was asked to), the text itself.
                Ok(parse_serialized(&typed.value)
                    .ok()
                    .filter(Value::is_string)
                    .unwrap_or_else(|| typed.value.clone()))
            } else if format == "application/json" {
                parse_serialized(&typed.value).map_err(error)
            } else {
                Err(error(format!(
                    "an Object serialized as {format:?} (Java serialization?) cannot be read; configure the engine with default-serialization-format application/json"
                )))
            }
        }
        other => Err(error(format!("type {other} cannot be read as JSON"))),
    }
}

/// Variables from the engine as one JSON object; the first unreadable one fails all.
pub fn variables_from_engine(
    variables: &Map<String, Value>,
) -> Result<Map<String, Value>, VariableError> {
    variables
        .iter()
        .map(|(name, raw)| {
            let typed: TypedValue =
                serde_json::from_value(raw.clone()).map_err(|e| VariableError {
                    name: name.clone(),
                    problem: format!("not a typed value: {e}"),
                })?;
            Ok((name.clone(), from_engine(name, &typed)?))
        })
        .collect()
}

fn parse_serialized(value: &Value) -> Result<Value, String> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::String(s) => serde_json::from_str(s).map_err(|e| format!("holds no JSON: {e}")),
        // Some engine versions return the object itself.
        other => Ok(other.clone()),
    }
}

/// `2025-01-31T10:15:30.000+0000` → `2025-01-31T10:15:30.000Z`.
fn engine_date_to_rfc3339(s: &str) -> Option<String> {
    let parsed = chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()?;
    Some(
        parsed
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A number read back from the engine's JSON is the number ramp sent, to the
    /// last bit (serde_json's fast float parser was one ulp off for this one; found
    /// by the `variables` fuzz target).
    #[test]
    fn a_double_reads_back_to_the_last_bit() {
        let sent: Value = serde_json::from_str("99999999999.999909").unwrap();
        let wire = serde_json::to_string(&to_engine(&sent)).unwrap();
        let back: TypedValue = serde_json::from_str(&wire).unwrap();
        let read = from_engine("n", &back).unwrap();
        assert_eq!(read.as_f64(), sent.as_f64(), "{wire}");
    }

    fn kind_of(value: Value) -> (String, Value) {
        let t = to_engine(&value);
        (t.kind.unwrap(), t.value)
    }

    #[test]
    fn text_longer_than_the_engine_stores_as_a_string_goes_as_a_java_string_object() {
        let short = "x".repeat(ENGINE_STRING_LIMIT);
        assert_eq!(kind_of(json!(short)).0, "String");
        let long = "é".repeat(ENGINE_STRING_LIMIT / 2 + 1);
        let typed = to_engine(&json!(long));
        assert_eq!(typed.kind.as_deref(), Some("Object"));
        assert_eq!(typed.value_info["objectTypeName"], "java.lang.String");
        assert_eq!(
            typed.value_info["serializationDataFormat"],
            "application/json"
        );
        // Read back, serialized or not, it is the text again.
        assert_eq!(from_engine("note", &typed).unwrap(), json!(long));
        let deserialized = TypedValue {
            value: json!(long),
            ..typed
        };
        assert_eq!(from_engine("note", &deserialized).unwrap(), json!(long));
    }

    #[test]
    fn integral_numbers_become_longs_and_others_doubles() {
        assert_eq!(kind_of(json!(42)), ("Long".into(), json!(42)));
        assert_eq!(kind_of(json!(42.0)), ("Long".into(), json!(42)));
        assert_eq!(kind_of(json!(-7)), ("Long".into(), json!(-7)));
        assert_eq!(
            kind_of(json!(9_007_199_254_740_992.0)),
            ("Long".into(), json!(9_007_199_254_740_992i64))
        );
        // Past 2^53 a double no longer stands for one integer: it stays a double.
        assert_eq!(kind_of(json!(9_007_199_254_740_994.0)).0, "Double");
        assert_eq!(kind_of(json!(1e300)).0, "Double");
        assert_eq!(kind_of(json!(0.5)), ("Double".into(), json!(0.5)));
        assert_eq!(kind_of(json!(5e-324)).0, "Double");
        let (kind, value) = kind_of(json!(-0.0));
        assert_eq!(kind, "Double");
        assert!(
            value.as_f64().unwrap().is_sign_negative(),
            "-0 keeps its sign"
        );
    }

    #[test]
    fn other_json_values_map_to_their_types() {
        assert_eq!(
            kind_of(json!("ü ✓ 日本")),
            ("String".into(), json!("ü ✓ 日本"))
        );
        assert_eq!(kind_of(json!("")), ("String".into(), json!("")));
        assert_eq!(kind_of(json!(true)), ("Boolean".into(), json!(true)));
        assert_eq!(kind_of(json!(null)), ("Null".into(), json!(null)));
        assert_eq!(
            kind_of(json!({"a": {"b": [1, "x"]}})),
            ("Json".into(), json!(r#"{"a":{"b":[1,"x"]}}"#))
        );
        assert_eq!(kind_of(json!([])), ("Json".into(), json!("[]")));
        assert_eq!(kind_of(json!({})), ("Json".into(), json!("{}")));
    }

    #[test]
    fn round_trip_through_the_engine_shapes() {
        for value in [
            json!(1),
            json!(-2.25),
            json!("ü"),
            json!(true),
            json!(null),
            json!({"k": [1, 2, {"z": null}]}),
            json!([]),
            json!({}),
        ] {
            let typed = to_engine(&value);
            let back = from_engine("v", &typed).unwrap();
            assert_eq!(back, value, "{value}");
        }
    }

    #[test]
    fn reads_what_the_engine_writes() {
        let date = TypedValue {
            value: json!("2025-01-31T10:15:30.000+0100"),
            kind: Some("Date".into()),
            value_info: Map::new(),
        };
        assert_eq!(
            from_engine("d", &date).unwrap(),
            json!("2025-01-31T09:15:30.000Z")
        );

        let object = TypedValue {
            value: json!(r#"[{"name":"x"}]"#),
            kind: Some("Object".into()),
            value_info: json!({"objectTypeName": "java.util.ArrayList<java.util.LinkedHashMap>", "serializationDataFormat": "application/json"}).as_object().unwrap().clone(),
        };
        assert_eq!(from_engine("o", &object).unwrap(), json!([{"name": "x"}]));

        let java = TypedValue {
            value: json!("rO0ABXNy"),
            kind: Some("Object".into()),
            value_info: json!({"serializationDataFormat": "application/x-java-serialized-object"})
                .as_object()
                .unwrap()
                .clone(),
        };
        let error = from_engine("supplier", &java).unwrap_err();
        assert_eq!(error.name, "supplier");
        assert!(error.to_string().contains("supplier"));

        let bytes = TypedValue {
            value: json!("AAEC"),
            kind: Some("Bytes".into()),
            value_info: Map::new(),
        };
        assert!(from_engine("blob", &bytes).is_err());
        for (kind, value) in [
            ("Integer", json!(3)),
            ("Short", json!(2)),
            ("Long", json!(9_007_199_254_740_993i64)),
            ("Double", json!(0.1)),
        ] {
            let typed = TypedValue {
                value: value.clone(),
                kind: Some(kind.into()),
                value_info: Map::new(),
            };
            assert_eq!(from_engine("n", &typed).unwrap(), value);
        }
    }
}
