//! The mapping between `google.protobuf.Struct` (what clients send), JSON, and the
//! engine's typed variables: any Struct a client can send, and any variable the
//! engine can return, is mapped without a panic; a value typed for the engine and
//! read back is the same value.
//!
//! Input: the first byte picks what the rest is: a protobuf-encoded Struct, a JSON
//! object, or the value of an engine variable of a given type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use ramp::camunda::variables::{TypedValue, from_engine, to_engine};
use serde_json::{Map, Value};

/// Equal as JSON, numbers compared by value (the engine's Long 3 is JSON's 3.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y && x.is_sign_negative() == y.is_sign_negative()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn round_trip(values: &Map<String, Value>) {
    for (name, value) in values {
        let typed = to_engine(value);
        // Through the wire format the engine's REST API uses.
        let wire = serde_json::to_string(&typed).unwrap();
        let back: TypedValue = serde_json::from_str(&wire).unwrap();
        let read = from_engine(name, &back).expect("a value ramp typed reads back");
        assert!(same(&read, value), "{value} came back as {read}");
    }
}

const KINDS: [&str; 8] = [
    "Date", "Json", "Object", "Long", "Double", "String", "Bytes", "Null",
];

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(value) = prost_types::Struct::decode(rest)
                && let Ok(json) = ramp::json::struct_to_json(&value)
            {
                round_trip(&json);
                // And back into a Struct, as GetFormTask sends the data.
                let again = ramp::json::json_to_struct(&json);
                assert_eq!(ramp::json::struct_to_json(&again).as_ref(), Ok(&json));
            }
        }
        1 => {
            if let Ok(json) = serde_json::from_slice::<Map<String, Value>>(rest) {
                round_trip(&json);
            }
        }
        _ => {
            let Some((&kind, rest)) = rest.split_first() else {
                return;
            };
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let mut value_info = Map::new();
            if kind & 0x80 != 0 {
                value_info.insert(
                    "serializationDataFormat".into(),
                    Value::String("application/json".into()),
                );
            }
            let value = serde_json::from_str(text).unwrap_or(Value::String(text.to_owned()));
            let typed = TypedValue {
                value,
                kind: Some(KINDS[kind as usize % KINDS.len()].to_owned()),
                value_info,
            };
            let _ = from_engine("fuzzed", &typed);
        }
    }
});
