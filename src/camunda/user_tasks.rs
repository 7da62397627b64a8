//! The engine's own user tasks: completing one with a person's answer, and what the
//! engine's history says of one that is gone.

use serde::Deserialize;
use serde_json::json;

use super::{Camunda, CamundaError, Variables, path};

/// A user task as the engine's history keeps it (`GET /history/task`), only the
/// fields ramp reads.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoricTask {
    pub id: String,
    #[serde(default)]
    pub process_instance_id: Option<String>,
    /// "completed", "deleted", or null while the task is open.
    #[serde(default)]
    pub delete_reason: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
}

impl HistoricTask {
    /// Whether someone completed the task (rather than the process deleting it: an
    /// instance cancelled, a boundary event that interrupted it).
    pub fn completed(&self) -> bool {
        self.delete_reason.as_deref() == Some("completed")
    }
}

impl Camunda {
    /// Completes user task `id`, setting `variables` as the task's execution sets
    /// them (in the highest scope that has them, else the process instance). The
    /// engine does not ask who completes it: the assignee is ramp's rule.
    ///
    /// Measured on 7.24: 204; a task that is gone answers HTTP 500 "Cannot complete
    /// task T: Cannot find task with id T: task is null" (see [`task_gone`]); what
    /// follows the task failing (a gateway, an output mapping) answers as a message
    /// trigger does and rolls the whole completion back, the task still open.
    pub async fn complete_task(&self, id: &str, variables: &Variables) -> Result<(), CamundaError> {
        self.post_empty(
            &format!("/task/{}/complete", path(id)),
            &json!({ "variables": variables }),
        )
        .await
    }

    /// The engine's history of user task `id`; `None` when it keeps none (an unknown
    /// id, or history already removed).
    pub async fn historic_task(&self, id: &str) -> Result<Option<HistoricTask>, CamundaError> {
        let found: Vec<HistoricTask> = self.get("/history/task", &[("taskId", id)]).await?;
        Ok(found.into_iter().next())
    }
}

/// Whether a call on a user task failed because the task is no longer there: 404
/// ("No matching task with id", from the reads), or the 500 that completing a task
/// that is gone answers ("Cannot find task with id T: task is null", measured on
/// 7.24).
pub fn task_gone(error: &CamundaError) -> bool {
    match error {
        CamundaError::NotFound(_) => true,
        CamundaError::Engine { message, .. } | CamundaError::BadRequest { message, .. } => {
            message.contains("Cannot find task with id")
                || message.contains("No matching task with id")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completing_a_task_that_is_gone_is_told_apart_from_other_failures() {
        let gone = CamundaError::from_response(
            500,
            r#"{"type":"RestException","message":"Cannot complete task 9bbfc4da-ef34-11f1-9c6c-02fc00000001: Cannot find task with id 9bbfc4da-ef34-11f1-9c6c-02fc00000001: task is null","code":0}"#,
        );
        assert!(task_gone(&gone));
        let unknown = CamundaError::from_response(
            404,
            r#"{"type":"InvalidRequestException","message":"No matching task with id x","code":null}"#,
        );
        assert!(task_gone(&unknown));
        let gateway = CamundaError::from_response(
            500,
            r#"{"type":"RestException","message":"Cannot complete task t: Unknown property used in expression: ${approved == true}. Cause: Cannot resolve identifier 'approved'","code":0}"#,
        );
        assert!(!task_gone(&gateway));
        assert!(!task_gone(&CamundaError::Timeout("late".into())));
    }

    #[test]
    fn a_task_in_history_says_whether_it_was_completed_or_deleted() {
        let read = |reason: &str| -> HistoricTask {
            serde_json::from_value(json!({"id": "t", "processInstanceId": "p",
                "deleteReason": reason, "endTime": "2026-12-03T16:14:26.152+0000"}))
            .unwrap()
        };
        assert!(read("completed").completed());
        assert!(!read("deleted").completed());
    }
}
