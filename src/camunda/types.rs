//! The engine's REST shapes that ramp reads and writes (only the fields it uses).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::variables::Variables;

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessDefinition {
    pub id: String,
    pub key: String,
    pub version: i32,
    #[serde(default)]
    pub name: Option<String>,
    /// The process's `<bpmn:documentation>`, as the engine read it from the model.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub deployment_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Null when duplicate filtering found nothing new.
    #[serde(default)]
    pub deployed_process_definitions: Option<Map<String, Value>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInstance {
    pub id: String,
    #[serde(default)]
    pub definition_id: Option<String>,
    #[serde(default)]
    pub business_key: Option<String>,
    #[serde(default)]
    pub ended: bool,
    #[serde(default)]
    pub suspended: bool,
    /// Present when started with `withVariablesInReturn`.
    #[serde(default)]
    pub variables: Option<Variables>,
}

/// Filters of `GET /process-instance`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInstanceQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_definition_key: Option<String>,
    /// Only root instances: those not started by a call activity.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub root_process_instances: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub active: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoricProcessInstance {
    pub id: String,
    #[serde(default)]
    pub process_definition_id: Option<String>,
    #[serde(default)]
    pub business_key: Option<String>,
    #[serde(default)]
    pub process_definition_key: Option<String>,
    #[serde(default)]
    pub root_process_instance_id: Option<String>,
    #[serde(default)]
    pub super_process_instance_id: Option<String>,
    /// ACTIVE, SUSPENDED, COMPLETED, EXTERNALLY_TERMINATED, INTERNALLY_TERMINATED.
    pub state: String,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoricActivityInstance {
    pub id: String,
    #[serde(default)]
    pub parent_activity_instance_id: Option<String>,
    pub activity_id: String,
    #[serde(default)]
    pub activity_type: Option<String>,
    pub process_instance_id: String,
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub canceled: bool,
    #[serde(default)]
    pub end_time: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalTaskLog {
    pub id: String,
    pub external_task_id: String,
    pub activity_id: String,
    #[serde(default)]
    pub activity_instance_id: Option<String>,
    pub process_instance_id: String,
    pub timestamp: String,
    #[serde(default)]
    pub deletion_log: bool,
    #[serde(default)]
    pub success_log: bool,
    #[serde(default)]
    pub failure_log: bool,
    #[serde(default)]
    pub creation_log: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoricVariableInstance {
    pub id: String,
    pub name: String,
    pub process_instance_id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub value: Value,
    #[serde(default)]
    pub value_info: Map<String, Value>,
    #[serde(default)]
    pub state: Option<String>,
}

/// One topic of a fetch-and-lock request.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchTopic {
    pub topic_name: String,
    pub lock_duration: u64,
    /// Variables to fetch; `None` fetches all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variables: Option<Vec<String>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub local_variables: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub include_extension_properties: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_definition_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_definition_key_in: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id_in: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchAndLock {
    pub worker_id: String,
    pub max_tasks: u32,
    pub use_priority: bool,
    /// Long poll: how long the engine may hold the request open, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub async_response_timeout: Option<u64>,
    pub topics: Vec<FetchTopic>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalTask {
    pub id: String,
    pub topic_name: String,
    pub activity_id: String,
    #[serde(default)]
    pub activity_instance_id: Option<String>,
    #[serde(default)]
    pub execution_id: Option<String>,
    pub process_instance_id: String,
    #[serde(default)]
    pub process_definition_id: Option<String>,
    #[serde(default)]
    pub process_definition_key: Option<String>,
    #[serde(default)]
    pub business_key: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub variables: Variables,
    /// Null until the first failure.
    #[serde(default)]
    pub retries: Option<i32>,
    #[serde(default)]
    pub extension_properties: Map<String, Value>,
    #[serde(default)]
    pub worker_id: Option<String>,
    #[serde(default)]
    pub lock_expiration_time: Option<String>,
}

/// `POST /message`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CorrelationMessage {
    pub message_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_instance_id: Option<String>,
    /// Land in the instance (never use the local variant for form data).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub process_variables: Variables,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    pub result_enabled: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorrelationResult {
    pub result_type: String,
    #[serde(default)]
    pub execution: Option<Execution>,
    #[serde(default)]
    pub process_instance: Option<ProcessInstance>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub id: String,
    #[serde(default)]
    pub process_instance_id: Option<String>,
    #[serde(default)]
    pub ended: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSubscription {
    pub id: String,
    pub event_type: String,
    pub event_name: String,
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub process_instance_id: Option<String>,
    #[serde(default)]
    pub activity_id: Option<String>,
}

/// A node of `GET /process-instance/{id}/activity-instances`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityInstance {
    pub id: String,
    #[serde(default)]
    pub parent_activity_instance_id: Option<String>,
    pub activity_id: String,
    #[serde(default)]
    pub activity_type: Option<String>,
    #[serde(default)]
    pub execution_ids: Vec<String>,
    #[serde(default)]
    pub child_activity_instances: Vec<ActivityInstance>,
    /// Executions between activities: an asynchronous continuation (`asyncBefore`,
    /// `asyncAfter`) whose job has not run yet.
    #[serde(default)]
    pub child_transition_instances: Vec<TransitionInstance>,
}

/// A token waiting for an asynchronous continuation's job, in an activity tree.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionInstance {
    pub id: String,
    #[serde(default)]
    pub activity_id: Option<String>,
    #[serde(default)]
    pub execution_id: Option<String>,
}

impl ActivityInstance {
    /// This node and all below it, depth first.
    pub fn walk(&self) -> Vec<&ActivityInstance> {
        let mut all = vec![self];
        for child in &self.child_activity_instances {
            all.extend(child.walk());
        }
        all
    }
}

/// One parse problem of a rejected deployment.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParseProblem {
    pub message: String,
    #[serde(default)]
    pub line: Option<i64>,
    #[serde(default)]
    pub column: Option<i64>,
    #[serde(default)]
    pub main_element_id: Option<String>,
}

/// A user task as `GET /task` gives it (the runtime: tasks not completed or deleted).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(with = "engine_instant")]
    pub created: DateTime<Utc>,
    /// Null until the task's first update after its creation (a claim, an assignee,
    /// a candidate added or removed, a changed due date, ...).
    #[serde(default, with = "engine_instant::optional")]
    pub last_updated: Option<DateTime<Utc>>,
    #[serde(default, with = "engine_instant::optional")]
    pub due: Option<DateTime<Utc>>,
    #[serde(default, with = "engine_instant::optional")]
    pub follow_up: Option<DateTime<Utc>>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub task_definition_key: Option<String>,
    /// None for a task of a case or a task created on its own (no process).
    #[serde(default)]
    pub process_instance_id: Option<String>,
    #[serde(default)]
    pub process_definition_id: Option<String>,
    #[serde(default)]
    pub execution_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub suspended: bool,
    /// `camunda:formKey` as the model states it (`camunda-forms:deployment:x.form`,
    /// or an embedded or external form's address).
    #[serde(default)]
    pub form_key: Option<String>,
    /// `camunda:formRef` with its binding.
    #[serde(default)]
    pub camunda_form_ref: Option<CamundaFormRef>,
}

impl Task {
    /// The engine time of the task's latest change: its last update, else its
    /// creation.
    pub fn changed_at(&self) -> DateTime<Utc> {
        self.last_updated.unwrap_or(self.created)
    }
}

/// A user task's reference to a deployed Camunda Form.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CamundaFormRef {
    pub key: String,
    /// `latest`, `deployment` or `version`.
    #[serde(default)]
    pub binding: Option<String>,
    #[serde(default)]
    pub version: Option<i32>,
}

/// A user task as `GET /history/task` gives it: running, completed or deleted.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoricTask {
    pub id: String,
    #[serde(default)]
    pub process_instance_id: Option<String>,
    #[serde(default)]
    pub root_process_instance_id: Option<String>,
    #[serde(default)]
    pub process_definition_key: Option<String>,
    #[serde(default)]
    pub task_definition_key: Option<String>,
    #[serde(default)]
    pub assignee: Option<String>,
    /// `completed`, `deleted`, or the reason given to a delete (a process
    /// instance's deletion, a boundary event: the engine writes what it was told).
    #[serde(default)]
    pub delete_reason: Option<String>,
    #[serde(default, with = "engine_instant::optional")]
    pub end_time: Option<DateTime<Utc>>,
}

impl HistoricTask {
    /// Whether the task ended by being completed (by anyone, through any API);
    /// every other end is a deletion.
    pub fn completed(&self) -> bool {
        self.delete_reason.as_deref() == Some("completed")
    }
}

/// Who a task is for: one row of `GET /task/{id}/identity-links`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IdentityLink {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    /// `candidate`, `assignee`, `owner`, or a type of the model's own.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Engine times (`2025-01-31T10:15:30.000+0000`) as `DateTime<Utc>`.
mod engine_instant {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        crate::camunda::parse_engine_time(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an engine time: {text:?}")))
    }

    pub mod optional {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => crate::camunda::parse_engine_time(&text)
                    .map(Some)
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!("not an engine time: {text:?}"))
                    }),
            }
        }
    }
}
