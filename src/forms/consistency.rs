//! What a worker says about a send task, checked against what the engine reports
//! before a form task is made of it. A worker's token lets its holder create form
//! tasks; these checks keep a stolen one from planting forms on anyone:
//!
//! - the business key must be the business key of the instance's root, as the
//!   engine holds it (the key ramp starts processes with, the user's email);
//! - an assignee other than that business key must be a value the engine holds in
//!   one of the instance's variables (the conventions of `DESIGN.md`: an
//!   `assignedTo` input mapping, the variable `ramp.assignee` names, a path into a
//!   JSON variable). Admins are not held to this: they may give any form to anyone
//!   (`ReassignFormTask`).
//!
//! Both come from the instance's lineage, which is remembered, so a form for a root
//! instance costs no engine call beyond those creation makes anyway; an assignee
//! other than the business key costs one variable query.

use serde_json::Value;

use super::{FormError, Forms, NewFormTask, rows};
use crate::camunda::types::HistoricVariableInstance;
use crate::email::Email;

/// A field of the request that disagrees with the engine, and how.
pub type Inconsistency = (&'static str, &'static str);

impl Forms {
    /// The fields of `new` that disagree with the engine (none when it is
    /// consistent). `check_assignee` is false for admins.
    ///
    /// While the engine cannot be reached, a repeat of a form task already stored
    /// passes (creation compares it with the stored task, which was checked when it
    /// was made), so repeats are answered as before; anything new waits for the
    /// engine.
    pub async fn inconsistencies(
        &self,
        new: &NewFormTask,
        check_assignee: bool,
    ) -> Result<Vec<Inconsistency>, FormError> {
        match self.check(new, check_assignee).await {
            Err(FormError::EngineUnavailable(error)) => {
                let stored =
                    rows::by_external_task(&self.store.client().await?, &new.external_task_id)
                        .await?;
                match stored {
                    Some(_) => Ok(Vec::new()),
                    None => Err(FormError::EngineUnavailable(error)),
                }
            }
            result => result,
        }
    }

    async fn check(
        &self,
        new: &NewFormTask,
        check_assignee: bool,
    ) -> Result<Vec<Inconsistency>, FormError> {
        let mut found = Vec::new();
        let lineage = self.schemas.lineage(&new.process_instance_id).await?;
        let root_key = if lineage.root_process_instance_id == new.process_instance_id {
            lineage.business_key
        } else {
            self.schemas
                .lineage(&lineage.root_process_instance_id)
                .await?
                .business_key
        };
        let root_key = root_key.and_then(|key| Email::parse(&key).ok());
        if root_key.as_ref() != Some(&new.business_key) {
            tracing::warn!(
                process_instance = %new.process_instance_id,
                external_task = %new.external_task_id,
                claimed = %new.business_key,
                "a form task names a business key that is not its root instance's; refused"
            );
            found.push((
                "business_key",
                "is not the business key the engine holds for the process instance's root",
            ));
        }
        if let Some(assignee) = &new.assignee
            && check_assignee
            && assignee != &new.business_key
        {
            let variables = self
                .schemas
                .camunda()
                .variable_instances(&new.process_instance_id)
                .await
                .map_err(super::schema::SchemaError::from)?;
            if !names(&variables, assignee) {
                tracing::warn!(
                    process_instance = %new.process_instance_id,
                    external_task = %new.external_task_id,
                    claimed = %assignee,
                    "a form task names an assignee that no variable of its instance holds; refused"
                );
                found.push((
                    "assignee",
                    "is neither the business key nor a value of a variable of the process instance",
                ));
            }
        }
        Ok(found)
    }
}

/// Whether any variable holds `email`: as text, or as a string anywhere inside a
/// JSON variable (or an object serialized as JSON).
fn names(variables: &[HistoricVariableInstance], email: &Email) -> bool {
    variables.iter().any(|variable| {
        let kind = variable.kind.as_deref().unwrap_or_default();
        match &variable.value {
            Value::String(text) if kind.eq_ignore_ascii_case("string") => is(text, email),
            Value::String(serialized)
                if kind.eq_ignore_ascii_case("json") || kind.eq_ignore_ascii_case("object") =>
            {
                serde_json::from_str::<Value>(serialized).is_ok_and(|value| holds(&value, email))
            }
            value => holds(value, email),
        }
    })
}

fn holds(value: &Value, email: &Email) -> bool {
    match value {
        Value::String(text) => is(text, email),
        Value::Array(items) => items.iter().any(|item| holds(item, email)),
        Value::Object(fields) => fields.values().any(|field| holds(field, email)),
        _ => false,
    }
}

fn is(text: &str, email: &Email) -> bool {
    Email::parse(text).is_ok_and(|parsed| &parsed == email)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn variable(kind: &str, value: Value) -> HistoricVariableInstance {
        serde_json::from_value(json!({
            "id": "v", "name": "n", "processInstanceId": "p", "type": kind, "value": value
        }))
        .unwrap()
    }

    #[test]
    fn an_assignee_is_found_as_text_or_inside_json() {
        let bob = Email::parse("bob@example.com").unwrap();
        assert!(names(&[variable("String", json!("Bob@Example.com"))], &bob));
        let supplier = json!({"supplier": {"owners": ["x@example.com", "bob@example.com"]}});
        assert!(names(
            &[variable("Json", json!(supplier.to_string()))],
            &bob
        ));
        assert!(names(
            &[variable("Object", json!(supplier.to_string()))],
            &bob
        ));
        assert!(!names(
            &[
                variable("String", json!("carol@example.com")),
                variable("Integer", json!(7)),
                variable("Json", json!("not json")),
            ],
            &bob
        ));
        // A lookalike in the engine does not name Bob either.
        assert!(!names(
            &[variable("String", json!("b\u{43e}b@example.com"))],
            &bob
        ));
    }
}
