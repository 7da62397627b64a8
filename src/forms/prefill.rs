//! What a form offers its author before they type: the prefill, cut from the
//! process variables a worker sends with the task.
//!
//! A form with a schema offers its own fields. A form without one offers only the
//! variables its send task maps as inputs (`camunda:inputOutput`), never every
//! variable of the instance: those may be anything the process carries, other
//! people's data included. Neither offers ramp's own variables (`RESERVED`), and a
//! form without a schema does not offer `assignedTo`, which says who fills the form
//! rather than what goes in it.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::schema;
use crate::camunda::{Camunda, CamundaError};
use crate::processes::RESERVED;
use crate::worker::ASSIGNED_TO;

/// The prefill of a form with `schema`: the offered variables that are its fields.
pub fn of_schema(schema: &Value, offered: Map<String, Value>) -> Map<String, Value> {
    let keys = schema::field_keys(schema);
    offered
        .into_iter()
        .filter(|(name, _)| keys.contains(name) && !RESERVED.contains(&name.as_str()))
        .collect()
}

/// The prefill of a form without a schema: the offered variables that its send
/// task maps as inputs.
pub fn of_inputs(inputs: &BTreeSet<String>, offered: Map<String, Value>) -> Map<String, Value> {
    offered
        .into_iter()
        .filter(|(name, _)| {
            inputs.contains(name) && !RESERVED.contains(&name.as_str()) && name != ASSIGNED_TO
        })
        .collect()
}

/// The variables a send task maps as inputs: those that live in its activity
/// instance's own scope. A task that maps none shares its enclosing scope's
/// variables, and has none of its own.
pub async fn inputs(
    camunda: &Camunda,
    activity_instance_id: &str,
) -> Result<BTreeSet<String>, CamundaError> {
    Ok(camunda
        .activity_variable_names(activity_instance_id)
        .await?
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn offered() -> Map<String, Value> {
        json!({
            "companyName": "Acme",
            "offer": 6,
            "assignedTo": "reviewer@example.com",
            "rampProcessId": "0192",
            "rampSubmissionId": "0193",
            "salary": 90_000,
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn a_form_without_a_schema_offers_its_inputs_but_not_ramps_own_or_the_routing() {
        let inputs: BTreeSet<String> = ["offer", "assignedTo", "rampProcessId"]
            .map(String::from)
            .into();
        assert_eq!(
            Value::Object(of_inputs(&inputs, offered())),
            json!({"offer": 6})
        );
        assert!(of_inputs(&BTreeSet::new(), offered()).is_empty());
    }

    #[test]
    fn a_form_with_a_schema_offers_its_fields_but_not_ramps_own() {
        let schema = json!({"components": [
            {"type": "textfield", "key": "companyName"},
            {"type": "textfield", "key": "rampProcessId"},
        ]});
        assert_eq!(
            Value::Object(of_schema(&schema, offered())),
            json!({"companyName": "Acme"})
        );
    }
}
