//! The engine's user tasks: what changed and ended (read by one replica's poller),
//! each task's candidates, form and form variables, and the calls that act on a
//! task (claim, unclaim, complete).
//!
//! The engine answers a call on a task that is gone in several ways (404
//! `InvalidRequestException`, 400 or 500 `NotFoundException`/`NullValueException`,
//! 500 `RestException` "Cannot find task", 500 `NullPointerException` for its
//! identity links); every one of them comes back from here as
//! `CamundaError::NotFound`.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::types::{HistoricProcessInstance, HistoricTask, IdentityLink, Task};
use super::{Camunda, CamundaError, Variables, engine_time, path};

/// How many process instance ids one history query names at most.
const INSTANCES_PER_QUERY: usize = 200;

impl Camunda {
    /// One page of the open user tasks created or updated after `after` (an engine
    /// time), by `lastUpdated` ascending (those never updated since their creation,
    /// whose `lastUpdated` is null, come last).
    ///
    /// The engine (7.21 and later) takes a claim, an assignment, a candidate added
    /// or removed and any other change through its task service as an update. An
    /// engine without `updatedAfter` ignores it, as it ignores every parameter it
    /// does not know, and answers every open task.
    pub async fn tasks_updated_after(
        &self,
        after: DateTime<Utc>,
        first: u32,
        max: u32,
    ) -> Result<Vec<Task>, CamundaError> {
        self.get(
            "/task",
            &[
                ("updatedAfter", engine_time(after)),
                ("sortBy", "lastUpdated".to_owned()),
                ("sortOrder", "asc".to_owned()),
                ("firstResult", first.to_string()),
                ("maxResults", max.to_string()),
            ],
        )
        .await
    }

    /// One page of the user tasks that ended (completed or deleted) after `after`
    /// (an engine time), oldest end first. `HistoricTask::completed` tells the two
    /// apart.
    pub async fn tasks_finished_after(
        &self,
        after: DateTime<Utc>,
        first: u32,
        max: u32,
    ) -> Result<Vec<HistoricTask>, CamundaError> {
        self.ended_after("/history/task", &[], &engine_time(after), first, max)
            .await
    }

    /// One page of all open user tasks, by id (an order no update changes).
    pub async fn open_tasks(&self, first: u32, max: u32) -> Result<Vec<Task>, CamundaError> {
        self.get(
            "/task",
            &[
                ("sortBy", "id".to_owned()),
                ("sortOrder", "asc".to_owned()),
                ("firstResult", first.to_string()),
                ("maxResults", max.to_string()),
            ],
        )
        .await
    }

    /// An open user task; `None` once it is completed or deleted (or never was).
    pub async fn user_task(&self, id: &str) -> Result<Option<Task>, CamundaError> {
        match self.get(&format!("/task/{}", path(id)), &()).await {
            Ok(task) => Ok(Some(task)),
            Err(error) => match task_gone(error) {
                CamundaError::NotFound(_) => Ok(None),
                error => Err(error),
            },
        }
    }

    /// A user task as history keeps it, open or ended; `None` when history holds
    /// nothing of it (never existed, removed by the history cleanup, or history
    /// level `none`).
    pub async fn historic_task(&self, id: &str) -> Result<Option<HistoricTask>, CamundaError> {
        let found: Vec<HistoricTask> = self.get("/history/task", &[("taskId", id)]).await?;
        Ok(found.into_iter().next())
    }

    /// Who the task is for: assignee, owner and candidate users and groups.
    pub async fn task_identity_links(&self, id: &str) -> Result<Vec<IdentityLink>, CamundaError> {
        self.get(&format!("/task/{}/identity-links", path(id)), &())
            .await
            .map_err(task_gone)
    }

    /// The task's Camunda Form, resolved by the engine as Tasklist sees it
    /// (`camunda:formRef` with its binding, or a `camunda-forms:` form key); `None`
    /// when the task has neither.
    pub async fn deployed_form(&self, id: &str) -> Result<Option<Value>, CamundaError> {
        match self
            .get(&format!("/task/{}/deployed-form", path(id)), &())
            .await
        {
            Ok(form) => Ok(Some(form)),
            // "One of the attributes 'formKey' and 'camunda:formRef' must be
            // supplied but none were set."
            Err(CamundaError::BadRequest { message, .. })
                if message.contains("must be supplied but none were set") =>
            {
                Ok(None)
            }
            Err(error) => Err(task_gone(error)),
        }
    }

    /// The variables a form of the task would show: all those visible from the
    /// task's scope, serialized as the engine holds them.
    pub async fn task_form_variables(&self, id: &str) -> Result<Variables, CamundaError> {
        self.get(
            &format!("/task/{}/form-variables", path(id)),
            &[("deserializeValues", "false")],
        )
        .await
        .map_err(task_gone)
    }

    /// The process instances of `ids` (running or ended) as history keeps them:
    /// business key, definition key and root instance, a query per 200 ids.
    pub async fn process_instances_by_id(
        &self,
        ids: &[String],
    ) -> Result<Vec<HistoricProcessInstance>, CamundaError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(INSTANCES_PER_QUERY) {
            let builder = self
                .request(Method::POST, "/history/process-instance")
                .query(&[("maxResults", chunk.len().to_string())])
                .json(&json!({ "processInstanceIds": chunk }));
            let page: Vec<HistoricProcessInstance> = self.json(builder).await?;
            found.extend(page);
        }
        Ok(found)
    }

    /// Claims the task for `user_id`. Claiming a task that `user_id` holds already
    /// succeeds; one that someone else holds fails with
    /// `CamundaError::AlreadyClaimed`, one that is gone with `NotFound`.
    pub async fn claim_task(&self, id: &str, user_id: &str) -> Result<(), CamundaError> {
        self.post_empty(
            &format!("/task/{}/claim", path(id)),
            &json!({ "userId": user_id }),
        )
        .await
        .map_err(task_gone)
    }

    /// Takes the task's assignee away, whoever it is; the task stays open.
    pub async fn unclaim_task(&self, id: &str) -> Result<(), CamundaError> {
        self.post_empty(&format!("/task/{}/unclaim", path(id)), &json!({}))
            .await
            .map_err(task_gone)
    }

    /// Completes the task, setting `variables` (typed as for message correlation,
    /// `variables::variables_to_engine`) in the task's process instance, as Tasklist
    /// does. A task already completed or deleted answers `NotFound`; whether it was
    /// this call that completed it, history (`historic_task`) tells.
    pub async fn complete_task(&self, id: &str, variables: &Variables) -> Result<(), CamundaError> {
        self.post_empty(
            &format!("/task/{}/complete", path(id)),
            &json!({ "variables": variables }),
        )
        .await
        .map_err(task_gone)
    }
}

/// The engine's ways of saying that a task does not exist, as `NotFound`.
fn task_gone(error: CamundaError) -> CamundaError {
    let gone = |message: &str| {
        message.contains("Cannot find task")
            || message.contains("No matching task")
            // The identity links of a task that is gone: a NullPointerException.
            || message.contains("\"task\" is null")
    };
    match error {
        CamundaError::BadRequest { message, .. } if gone(&message) => {
            CamundaError::NotFound(message)
        }
        CamundaError::Engine { message, .. } if gone(&message) => CamundaError::NotFound(message),
        error => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_of_saying_a_task_is_gone_is_not_found() {
        for (status, body) in [
            (
                400,
                r#"{"type":"NotFoundException","message":"Cannot find task with id x: task is null","code":0}"#,
            ),
            (
                500,
                r#"{"type":"NullValueException","message":"Cannot find task with id x: task is null","code":0}"#,
            ),
            (
                500,
                r#"{"type":"RestException","message":"Cannot complete task x: Cannot find task with id x: task is null","code":0}"#,
            ),
            (
                404,
                r#"{"type":"InvalidRequestException","message":"No matching task with id x","code":null}"#,
            ),
            (
                500,
                r#"{"type":"NullPointerException","message":"Cannot invoke \"org.camunda.bpm.engine.impl.persistence.entity.TaskEntity.getId()\" because \"task\" is null","code":null}"#,
            ),
        ] {
            assert!(
                matches!(
                    task_gone(CamundaError::from_response(status, body)),
                    CamundaError::NotFound(_)
                ),
                "{status} {body}"
            );
        }
        assert!(matches!(
            task_gone(CamundaError::from_response(
                500,
                r#"{"type":"TaskAlreadyClaimedException","message":"Task 'x' is already claimed by someone else.","code":0}"#
            )),
            CamundaError::AlreadyClaimed(_)
        ));
    }
}
