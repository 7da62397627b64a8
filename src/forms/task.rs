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
    /// Send-task form or engine user task. For a user task, `external_task_id` is
    /// the user task's id in the engine, `assignee` the engine's assignee ('' while
    /// unclaimed) and `message_name` ''.
    pub kind: FormKind,
    /// A user task's candidate users (engine user ids); empty otherwise.
    pub candidate_users: Vec<String>,
    /// A user task's candidate groups; empty otherwise.
    pub candidate_groups: Vec<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub follow_up_at: Option<DateTime<Utc>>,
    /// A user task's priority; `None` for send-task forms.
    pub priority: Option<i32>,
    /// The engine's last update of a user task as stored (its `lastUpdated`, else
    /// `created`), so that an older read never overwrites a newer one.
    pub engine_updated_at: Option<DateTime<Utc>>,
    /// A user task's Camunda Form as the engine resolved it, when it has one.
    pub form_schema: Option<Value>,
}

/// The prefix of a change log key that names an engine user (a user task's
/// assignee or candidate user).
pub const USER_KEY: &str = "user:";
/// The prefix of a change log key that names a candidate group.
pub const GROUP_KEY: &str = "group:";

impl FormTask {
    /// Whose streams see this form: the keys its change log rows are written under.
    /// A send-task form: its assignee's email. A user task: `user:<assignee>` once
    /// claimed; while unclaimed, `user:<id>` for each candidate user and
    /// `group:<id>` for each candidate group (no email has a ':', so the keys never
    /// meet a send-task form's). A user task that is neither assigned nor has a
    /// candidate has no audience: only admins see it.
    pub fn audience(&self) -> Vec<String> {
        match self.kind {
            FormKind::SendTask => vec![self.assignee.clone()],
            FormKind::UserTask if !self.assignee.is_empty() => {
                vec![format!("{USER_KEY}{}", self.assignee)]
            }
            FormKind::UserTask => self
                .candidate_users
                .iter()
                .map(|u| format!("{USER_KEY}{u}"))
                .chain(
                    self.candidate_groups
                        .iter()
                        .map(|g| format!("{GROUP_KEY}{g}")),
                )
                .collect(),
        }
    }
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
pub(crate) mod tests {
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

    pub(crate) fn user_task(assignee: &str, users: &[&str], groups: &[&str]) -> FormTask {
        FormTask {
            id: FormTaskId::new(),
            external_task_id: "t1".into(),
            business_key: String::new(),
            form_name: "review".into(),
            message_name: String::new(),
            assignee: assignee.into(),
            status: FormState::Pending,
            process_instance_id: "p1".into(),
            root_process_instance_id: "p1".into(),
            process_definition_id: None,
            process_definition_key: None,
            tenant_id: None,
            topic_name: None,
            activity_id: "review".into(),
            activity_instance_id: None,
            execution_id: None,
            deployment_id: None,
            prefill: Value::Null,
            draft: None,
            withdrawal_reason: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            completed_at: None,
            delivery_state: None,
            return_reason: None,
            returned_at: None,
            task_name: None,
            process_name: None,
            form_title: None,
            context: None,
            kind: FormKind::UserTask,
            candidate_users: users.iter().map(|u| u.to_string()).collect(),
            candidate_groups: groups.iter().map(|g| g.to_string()).collect(),
            due_at: None,
            follow_up_at: None,
            priority: Some(50),
            engine_updated_at: None,
            form_schema: None,
        }
    }

    #[test]
    fn a_user_task_is_seen_by_its_assignee_else_by_its_candidates() {
        let open = user_task("", &["bob"], &["reviewers", "auditors"]);
        assert_eq!(
            open.audience(),
            ["user:bob", "group:reviewers", "group:auditors"]
        );
        let claimed = user_task("carol", &["bob"], &["reviewers"]);
        assert_eq!(claimed.audience(), ["user:carol"]);
        assert!(user_task("", &[], &[]).audience().is_empty());
        let form = FormTask {
            kind: FormKind::SendTask,
            ..user_task("ann@example.com", &[], &[])
        };
        assert_eq!(form.audience(), ["ann@example.com"]);
    }

    #[test]
    fn an_unknown_form_state_is_no_state() {
        assert_eq!(FormState::parse("pending"), Some(FormState::Pending));
        assert_eq!(FormState::parse("failed"), None);
    }
}
