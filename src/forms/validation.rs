//! Submitted data checked against its Camunda Form: required fields, types, min/max,
//! lengths, patterns, options; keys the form does not define are refused. A field
//! hidden by its condition (or whose condition cannot be evaluated) is never
//! required and never checked: the user could not see it.

use serde_json::{Map, Value};

use super::feel;
use crate::email::Email;

/// (field path, problem) for each violation, in form order.
pub type Problems = Vec<(String, String)>;

/// Checks `data` against the form `schema`.
pub fn check(schema: &Value, data: &Map<String, Value>) -> Problems {
    let mut problems = Vec::new();
    let mut known = std::collections::BTreeSet::new();
    check_container(schema, data, data, "", &mut known, &mut problems);
    for key in data.keys() {
        if !known.contains(key) {
            problems.push((key.clone(), "is not a field of this form".into()));
        }
    }
    problems
}

fn check_container(
    container: &Value,
    scope: &Map<String, Value>,
    root: &Map<String, Value>,
    prefix: &str,
    known: &mut std::collections::BTreeSet<String>,
    problems: &mut Problems,
) {
    for component in container
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // Hidden, or possibly hidden: not required, not checked.
        let hidden = component
            .pointer("/conditional/hide")
            .and_then(Value::as_str)
            .map(|condition| feel::truth(condition, root) != Some(false))
            .unwrap_or(false);
        let kind = component.get("type").and_then(Value::as_str).unwrap_or("");
        if let Some(path) = component
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            let first = path.split('.').next().unwrap_or(path).to_owned();
            known.insert(first.clone());
            if hidden {
                continue;
            }
            if kind == "dynamiclist" {
                match scope.get(&first) {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => {
                        for (i, item) in items.iter().enumerate() {
                            let Some(item) = item.as_object() else {
                                problems.push((
                                    format!("{prefix}{first}[{i}]"),
                                    "must be an object".into(),
                                ));
                                continue;
                            };
                            let mut inner = Default::default();
                            check_container(
                                component,
                                item,
                                root,
                                &format!("{prefix}{first}[{i}]."),
                                &mut inner,
                                problems,
                            );
                            unknown_keys(item, &inner, &format!("{prefix}{first}[{i}]."), problems);
                        }
                    }
                    Some(_) => problems.push((format!("{prefix}{first}"), "must be a list".into())),
                }
            } else {
                let nested = scope
                    .get(&first)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let mut inner = Default::default();
                check_container(
                    component,
                    &nested,
                    root,
                    &format!("{prefix}{first}."),
                    &mut inner,
                    problems,
                );
                unknown_keys(&nested, &inner, &format!("{prefix}{first}."), problems);
            }
            continue;
        }
        let Some(key) = component
            .get("key")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
        else {
            // A group without a path, or a component without data (text, image...).
            if component.get("components").is_some() {
                check_container(component, scope, root, prefix, known, problems);
            }
            continue;
        };
        known.insert(key.to_owned());
        if hidden {
            continue;
        }
        if let Some(problem) = check_field(component, kind, scope.get(key)) {
            problems.push((format!("{prefix}{key}"), problem));
        }
    }
}

fn unknown_keys(
    data: &Map<String, Value>,
    known: &std::collections::BTreeSet<String>,
    prefix: &str,
    problems: &mut Problems,
) {
    for key in data.keys() {
        if !known.contains(key) {
            problems.push((
                format!("{prefix}{key}"),
                "is not a field of this form".into(),
            ));
        }
    }
}

fn check_field(component: &Value, kind: &str, value: Option<&Value>) -> Option<String> {
    let validate = component.get("validate").cloned().unwrap_or(Value::Null);
    let empty = match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    if empty {
        let required = validate
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        return required.then(|| "is required".to_owned());
    }
    let value = value.expect("not empty");
    match kind {
        "number" => {
            let Some(n) = value.as_f64() else {
                return Some("must be a number".into());
            };
            if let Some(min) = validate.get("min").and_then(Value::as_f64)
                && n < min
            {
                return Some(format!("must be at least {min}"));
            }
            if let Some(max) = validate.get("max").and_then(Value::as_f64)
                && n > max
            {
                return Some(format!("must be at most {max}"));
            }
            None
        }
        "checkbox" => (!value.is_boolean()).then(|| "must be true or false".into()),
        "checklist" | "taglist" => {
            let Some(items) = value.as_array() else {
                return Some("must be a list".into());
            };
            if let Some(allowed) = options(component)
                && let Some(bad) = items.iter().find(|i| !allowed.contains(i))
            {
                return Some(format!("{bad} is not one of the options"));
            }
            None
        }
        "textfield" | "textarea" | "radio" | "select" | "datetime" | "expression" => {
            if kind == "select" && value.is_array() {
                return None;
            }
            let Some(text) = value.as_str() else {
                return Some("must be text".into());
            };
            let length = text.chars().count() as u64;
            if let Some(min) = validate.get("minLength").and_then(Value::as_u64)
                && length < min
            {
                return Some(format!("must be at least {min} characters"));
            }
            if let Some(max) = validate.get("maxLength").and_then(Value::as_u64)
                && length > max
            {
                return Some(format!("must be at most {max} characters"));
            }
            if let Some(pattern) = validate.get("pattern").and_then(Value::as_str) {
                // form-js matches the whole value.
                match regex::Regex::new(&format!("^(?:{pattern})$")) {
                    Ok(re) if !re.is_match(text) => return Some(format!("must match {pattern}")),
                    Ok(_) => {}
                    Err(_) => tracing::warn!(
                        pattern,
                        "a form's pattern is not a valid regular expression"
                    ),
                }
            }
            if validate.get("validationType").and_then(Value::as_str) == Some("email")
                && Email::parse(text).is_err()
            {
                return Some("must be an email address".into());
            }
            if matches!(kind, "radio" | "select")
                && let Some(allowed) = options(component)
                && !allowed.contains(value)
            {
                return Some(format!("{value} is not one of the options"));
            }
            None
        }
        _ => None,
    }
}

/// The fixed options of a select, radio, checklist or taglist (none when they come
/// from data).
fn options(component: &Value) -> Option<Vec<Value>> {
    let values = component.get("values")?.as_array()?;
    Some(
        values
            .iter()
            .filter_map(|v| v.get("value").cloned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"components": [
            {"type": "textfield", "key": "companyName", "validate": {"required": true, "minLength": 2, "maxLength": 10}},
            {"type": "textfield", "key": "vat", "validate": {"pattern": "[A-Z]{2}[0-9]+"}},
            {"type": "textfield", "key": "contact", "validate": {"validationType": "email"}},
            {"type": "number", "key": "score", "validate": {"min": 1, "max": 5}},
            {"type": "radio", "key": "kind", "values": [{"label": "A", "value": "standard"}, {"label": "B", "value": "critical"}], "validate": {"required": true}},
            {"type": "textarea", "key": "reason", "validate": {"required": true}, "conditional": {"hide": "=kind != \"critical\""}},
            {"type": "checkbox", "key": "accepted"},
            {"type": "text", "text": "no data"},
            {"type": "group", "path": "address", "components": [{"type": "textfield", "key": "city", "validate": {"required": true}}]}
        ]})
    }

    fn problems(data: Value) -> Vec<String> {
        check(&schema(), data.as_object().unwrap())
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    #[test]
    fn good_data_passes_and_hidden_required_fields_may_be_missing() {
        assert!(
            problems(
                json!({"companyName": "Acme", "kind": "standard", "address": {"city": "Berlin"}})
            )
            .is_empty()
        );
        // Visible once critical: now required.
        assert_eq!(
            problems(
                json!({"companyName": "Acme", "kind": "critical", "address": {"city": "Berlin"}})
            ),
            ["reason"]
        );
    }

    #[test]
    fn each_violation_is_named() {
        let got = problems(json!({
            "companyName": "A", "vat": "de123", "contact": "nope", "score": 9, "kind": "other",
            "accepted": "yes", "extra": 1, "address": {"city": "", "zip": "1"}
        }));
        assert_eq!(
            got,
            [
                "companyName",
                "vat",
                "contact",
                "score",
                "kind",
                "accepted",
                "address.city",
                "address.zip",
                "extra"
            ]
        );
    }

    #[test]
    fn a_condition_outside_the_subset_never_requires() {
        let schema = json!({"components": [{"type": "textfield", "key": "x", "validate": {"required": true}, "conditional": {"hide": "=some(items, function)"}}]});
        assert!(check(&schema, &Map::new()).is_empty());
    }
}
