//! Submitted data checked against a Camunda Form: any form (deployed by anyone
//! who can deploy) and any data (sent by any user) are checked without a panic,
//! and only keys that are not fields of the form are refused as such.
//!
//! Input: the form's JSON, a NUL byte, the data's JSON object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ramp::forms::schema::field_keys;
use ramp::forms::validation::check;
use serde_json::{Map, Value};

fuzz_target!(|input: &[u8]| {
    let mut parts = input.splitn(2, |b| *b == 0);
    let (Some(schema), Some(data)) = (parts.next(), parts.next()) else {
        return;
    };
    let Ok(schema) = serde_json::from_slice::<Value>(schema) else {
        return;
    };
    let Ok(data) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let keys = field_keys(&schema);
    for (path, problem) in check(&schema, &data) {
        if problem == "is not a field of this form" {
            assert!(
                !keys.contains(&path),
                "{path} is a field, yet refused as none"
            );
        }
    }
});
