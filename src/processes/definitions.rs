//! What the models say about themselves, for people: the names of processes and of
//! their tasks, and what a process is for.
//!
//! A deployed definition never changes, so what is read of its model is kept for as
//! long as the server runs: one engine call per definition, never one per form.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::camunda::types::ProcessDefinition;
use crate::camunda::{Camunda, CamundaError};

/// At most this many definitions' names are kept; past it the cache starts again
/// (a server meets few definitions, but nothing bounds how many are deployed).
const MAX_CACHED: usize = 1024;

/// The names one BPMN model gives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelNames {
    /// The name of the definition's process.
    pub process_name: Option<String>,
    /// The names of the model's elements (tasks, events, ...), by id.
    activities: HashMap<String, String>,
}

impl ModelNames {
    /// Reads the names of a BPMN 2.0 XML document. The definition's process is the
    /// one whose id is `key`, else the only executable one.
    pub fn parse(xml: &str, key: Option<&str>) -> Result<Self, roxmltree::Error> {
        let document = roxmltree::Document::parse(xml)?;
        let named = |node: &roxmltree::Node| {
            node.attribute("name")
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
        };
        let processes: Vec<_> = document
            .descendants()
            .filter(|n| n.is_element() && n.tag_name().name() == "process")
            .collect();
        let process = processes
            .iter()
            .find(|p| key.is_some() && p.attribute("id") == key)
            .or_else(|| {
                let mut executable = processes
                    .iter()
                    .filter(|p| p.attribute("isExecutable") == Some("true"));
                match (executable.next(), executable.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            });
        let activities = document
            .descendants()
            .filter(|n| n.is_element())
            .filter_map(|n| Some((n.attribute("id")?.to_owned(), named(&n)?)))
            .collect();
        Ok(Self {
            process_name: process.and_then(named),
            activities,
        })
    }

    /// The name of the element `id`, where the model gives one.
    pub fn activity(&self, id: &str) -> Option<&str> {
        self.activities.get(id).map(String::as_str)
    }
}

/// A definition one may start, as a person chooses it.
#[derive(Clone, Debug, PartialEq)]
pub struct Startable {
    pub key: String,
    /// The process's name, else its key.
    pub name: String,
    /// The process's documentation, trimmed; empty without one.
    pub description: String,
    pub version: i32,
}

/// Of the latest definitions, those `allowed` names (all when `None`: see
/// `rules::StartPolicy::startable_by`). One per key (the highest version when
/// tenants deploy the same key), ordered by name, then key.
pub fn startable(latest: Vec<ProcessDefinition>, allowed: Option<&[String]>) -> Vec<Startable> {
    let mut by_key: HashMap<String, ProcessDefinition> = HashMap::new();
    for definition in latest {
        if allowed.is_some_and(|allowed| !allowed.contains(&definition.key)) {
            continue;
        }
        match by_key.get(&definition.key) {
            Some(kept) if kept.version >= definition.version => {}
            _ => {
                by_key.insert(definition.key.clone(), definition);
            }
        }
    }
    let mut found: Vec<Startable> = by_key
        .into_values()
        .map(|d| Startable {
            name: d
                .name
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| d.key.clone()),
            description: d.description.unwrap_or_default().trim().to_owned(),
            key: d.key,
            version: d.version,
        })
        .collect();
    found.sort_by(|a, b| (a.name.to_lowercase(), &a.key).cmp(&(b.name.to_lowercase(), &b.key)));
    found
}

/// One definition's names: read by the first caller, shared with those who wait.
type Slot = Arc<OnceCell<Arc<ModelNames>>>;

/// The names of deployed models, read once per definition.
#[derive(Clone)]
pub struct Definitions {
    camunda: Camunda,
    models: Arc<Mutex<HashMap<String, Slot>>>,
}

impl Definitions {
    pub fn new(camunda: Camunda) -> Self {
        Self {
            camunda,
            models: Arc::default(),
        }
    }

    /// The names in the model of definition `id` (whose key is `key`, when known).
    /// Callers that ask at the same time share one engine call; a failed call is
    /// not remembered.
    pub async fn names(
        &self,
        id: &str,
        key: Option<&str>,
    ) -> Result<Arc<ModelNames>, CamundaError> {
        let cell = {
            let mut models = self.models.lock().expect("not poisoned");
            if models.len() >= MAX_CACHED && !models.contains_key(id) {
                models.clear();
            }
            models.entry(id.to_owned()).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            let xml = self.camunda.definition_xml(id).await?;
            let names = ModelNames::parse(&xml, key).unwrap_or_else(|error| {
                // The engine deployed it, so it parses; if not, the forms go unnamed.
                tracing::warn!(definition = id, %error, "the model's XML does not parse");
                ModelNames::default()
            });
            Ok(Arc::new(names))
        })
        .await
        .cloned()
    }

    /// The definitions a caller may start (see `startable`). One engine call: the
    /// engine's list carries each definition's name and documentation.
    pub async fn startable(
        &self,
        allowed: Option<&[String]>,
    ) -> Result<Vec<Startable>, CamundaError> {
        if allowed.is_some_and(<[String]>::is_empty) {
            return Ok(Vec::new());
        }
        let latest = self.camunda.latest_definitions(allowed).await?;
        Ok(startable(latest, allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
  <bpmn:process id="Other" name="Another process" isExecutable="false" />
  <bpmn:process id="VOE" name=" Vendor onboarding " isExecutable="true">
    <bpmn:documentation>Onboards a supplier.</bpmn:documentation>
    <bpmn:sendTask id="company_details" name="Enter company details" />
    <bpmn:receiveTask id="wait" name="" />
  </bpmn:process>
</bpmn:definitions>"#;

    fn definition(key: &str, version: i32, name: Option<&str>) -> ProcessDefinition {
        ProcessDefinition {
            id: format!("{key}:{version}:x"),
            key: key.into(),
            version,
            name: name.map(Into::into),
            description: Some(format!(" {key} does things \n")),
            deployment_id: None,
            tenant_id: None,
        }
    }

    #[test]
    fn a_model_names_its_process_and_tasks() {
        let names = ModelNames::parse(MODEL, Some("VOE")).unwrap();
        assert_eq!(names.process_name.as_deref(), Some("Vendor onboarding"));
        assert_eq!(
            names.activity("company_details"),
            Some("Enter company details")
        );
        assert_eq!(names.activity("wait"), None, "an empty name is no name");
        assert_eq!(names.activity("nothing"), None);
    }

    #[test]
    fn without_a_key_the_only_executable_process_is_the_definitions() {
        let names = ModelNames::parse(MODEL, None).unwrap();
        assert_eq!(names.process_name.as_deref(), Some("Vendor onboarding"));
        let other = ModelNames::parse(MODEL, Some("Other")).unwrap();
        assert_eq!(other.process_name.as_deref(), Some("Another process"));
    }

    #[test]
    fn users_may_start_the_allowed_definitions_and_admins_all() {
        let latest = || {
            vec![
                definition("VOE", 2, Some("Vendor onboarding")),
                definition("Approval", 1, None),
                definition("VOE", 1, Some("Old")),
                definition("Audit", 4, Some("audit trail")),
            ]
        };
        let users = startable(latest(), Some(&["VOE".into(), "Missing".into()]));
        assert_eq!(
            users,
            [Startable {
                key: "VOE".into(),
                name: "Vendor onboarding".into(),
                description: "VOE does things".into(),
                version: 2,
            }]
        );
        let admins = startable(latest(), None);
        let keys: Vec<_> = admins
            .iter()
            .map(|s| (s.key.as_str(), s.name.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("Approval", "Approval"),
                ("Audit", "audit trail"),
                ("VOE", "Vendor onboarding")
            ]
        );
    }
}
