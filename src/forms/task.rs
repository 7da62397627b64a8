//! What a form task is, as the store hands it over: the task, its state, the
//! answer given to it, and the changes its assignee's streams replay.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::delivery::DeliveryState;
use crate::ids::{FormTaskId, SubmissionId, stored_words};
use crate::store::forms::Position;

stored_words!(
    /// Where a form task stands.
    FormState {
        /// In its assignee's inbox, to fill in.
        Pending = "pending",
        /// Answered: its delivery says what became of the answer.
        Completed = "completed",
        /// Left the inbox unanswered: its process no longer needs it.
        Withdrawn = "withdrawn",
    }
);

/// What a change of the log did to a form in its assignee's inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Updated,
    Removed(RemovalReason),
}

impl ChangeKind {
    /// The stored kind (`kind`) and, for a removal, its reason (`reason`).
    pub fn as_stored(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::Added => ("added", None),
            Self::Updated => ("updated", None),
            Self::Removed(reason) => ("removed", Some(reason.as_str())),
        }
    }

    /// The change a stored kind and reason name: `None` for a kind the log does not
    /// have, or a removal without a known reason.
    pub fn parse(kind: &str, reason: Option<&str>) -> Option<Self> {
        match kind {
            "added" => Some(Self::Added),
            "updated" => Some(Self::Updated),
            "removed" => reason.and_then(RemovalReason::parse).map(Self::Removed),
            _ => None,
        }
    }
}

stored_words!(
    /// Why a form left its assignee's inbox.
    RemovalReason {
        Completed = "completed",
        Withdrawn = "withdrawn",
        Reassigned = "reassigned",
        /// A user task claimed by a candidate (it leaves the other candidates'
        /// inboxes), or given back by its assignee (it leaves theirs).
        Claimed = "claimed",
    }
);

stored_words!(
    /// Which kind of engine work a form task stands for.
    FormKind {
        /// A send task that a worker turned into a form; the answer is a message
        /// to the receive task that waits for it.
        SendTask = "send_task",
        /// The engine's own user task, learned from the engine; the answer
        /// completes it.
        UserTask = "user_task",
    }
);

/// A form task as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct FormTask {
    pub id: FormTaskId,
    pub external_task_id: String,
    pub business_key: String,
    pub form_name: String,
    pub message_name: String,
    pub assignee: String,
    pub status: FormState,
    pub process_instance_id: String,
    pub root_process_instance_id: String,
    pub process_definition_id: Option<String>,
    pub process_definition_key: Option<String>,
    pub tenant_id: Option<String>,
    pub topic_name: Option<String>,
    pub activity_id: String,
    pub activity_instance_id: Option<String>,
    pub execution_id: Option<String>,
    pub deployment_id: Option<String>,
    pub prefill: Value,
    pub draft: Option<Value>,
    pub withdrawal_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The delivery of the latest submission to the engine, once submitted.
    pub delivery_state: Option<DeliveryState>,
    /// Why the process could not use the last answer, when the form came back.
    pub return_reason: Option<String>,
    pub returned_at: Option<DateTime<Utc>>,
    /// The send task's name in the model, when it has one.
    pub task_name: Option<String>,
    /// The process definition's name in the model, when it has one.
    pub process_name: Option<String>,
    /// The Camunda Form's own title, when its schema has one.
    pub form_title: Option<String>,
    /// The line built from the send task's `ramp.context`, when it names any.
    pub context: Option<String>,
}

/// An answer to a form task.
#[derive(Clone, Debug)]
pub struct Submission {
    pub id: SubmissionId,
    pub form_task_id: FormTaskId,
    pub submitted_by: String,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

/// One change of the log: what a stream of `assignee`'s replays.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub position: Position,
    pub form_task_id: FormTaskId,
    pub assignee: String,
    pub kind: ChangeKind,
    /// The form as it was after the change (a [`super::FormSummary`] as JSON).
    pub summary: Value,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_back_as_it_was_stored_and_a_removal_needs_a_known_reason() {
        for kind in [
            ChangeKind::Added,
            ChangeKind::Updated,
            ChangeKind::Removed(RemovalReason::Completed),
            ChangeKind::Removed(RemovalReason::Withdrawn),
            ChangeKind::Removed(RemovalReason::Reassigned),
            ChangeKind::Removed(RemovalReason::Claimed),
        ] {
            let (stored, reason) = kind.as_stored();
            assert_eq!(ChangeKind::parse(stored, reason), Some(kind));
        }
        assert_eq!(ChangeKind::parse("removed", None), None);
        assert_eq!(ChangeKind::parse("removed", Some("lost")), None);
        assert_eq!(ChangeKind::parse("moved", None), None);
    }

    #[test]
    fn an_unknown_form_state_is_no_state() {
        assert_eq!(FormState::parse("pending"), Some(FormState::Pending));
        assert_eq!(FormState::parse("failed"), None);
    }
}
