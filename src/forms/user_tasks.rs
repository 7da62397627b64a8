//! The engine's own user tasks as form tasks: what the engine says of one (read by
//! the poller, or after a claim) is stored, and each change reaches the streams of
//! the task's audience (see [`FormTask::audience`]).

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value};

use super::{
    ChangeKind, FormError, FormKind, FormState, FormSummary, FormTask, FormTaskDetail, Forms,
    RemovalReason, prefill, rules, schema_title,
};
use crate::auth::Caller;
use crate::camunda::CamundaError;
use crate::camunda::types::{IdentityLink, Task};
use crate::ids::FormTaskId;
use crate::store::StoreError;
use crate::store::forms as form_rows;
use crate::store::user_tasks::{self as rows, AudienceChange};

/// What the engine says of one open user task now (the poller reads it).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineUserTask {
    /// The engine's task id.
    pub id: String,
    pub name: Option<String>,
    pub task_definition_key: String,
    pub assignee: Option<String>,
    pub candidate_users: Vec<String>,
    pub candidate_groups: Vec<String>,
    pub created: DateTime<Utc>,
    pub last_updated: Option<DateTime<Utc>>,
    pub due: Option<DateTime<Utc>>,
    pub follow_up: Option<DateTime<Utc>>,
    pub priority: i32,
    pub process_instance_id: String,
    pub root_process_instance_id: String,
    pub business_key: Option<String>,
    pub process_definition_id: Option<String>,
    pub process_definition_key: Option<String>,
    pub tenant_id: Option<String>,
    pub execution_id: Option<String>,
    /// The Camunda Form's id and schema, as the engine resolved it.
    pub form: Option<(String, Value)>,
    /// The task's form variables as plain JSON values, to prefill the form with.
    pub form_variables: Map<String, Value>,
}

impl EngineUserTask {
    /// The engine's time of what this read says: its last update, else its creation.
    pub fn stamp(&self) -> DateTime<Utc> {
        self.last_updated.unwrap_or(self.created)
    }
}

/// How a user task left the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserTaskEnd {
    /// Completed there (in Tasklist, say), not through ramp.
    Completed,
    /// Deleted with its process instance, or cancelled by the process.
    Deleted,
}

impl UserTaskEnd {
    /// What its people read of a form that left their inbox this way.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Completed => "it was completed in the process engine",
            Self::Deleted => "the process no longer needs it",
        }
    }
}

impl Forms {
    /// Stores what the engine says of a user task now, in one transaction: inserts it
    /// (kind user_task, `added` to its audience) or updates it; an update whose
    /// `last_updated.unwrap_or(created)` is older than the stored `engine_updated_at`
    /// is ignored; nothing is written when nothing changed. An assignee or candidate
    /// change writes `removed` (reason claimed) to the keys that lost it and `added`
    /// to the keys that gained it, `updated` to the keys that keep it (`added` when
    /// the assignee changed: it comes to them as claimed, or as given back). A draft
    /// is dropped when the assignee changes. A task ramp no longer holds as pending
    /// (answered, or withdrawn) is left alone. Answers whether anything changed.
    pub async fn learn_user_task(&self, task: EngineUserTask) -> Result<bool, FormError> {
        let names = match &task.process_definition_id {
            Some(id) => {
                self.model_names(id, task.process_definition_key.as_deref())
                    .await
            }
            None => None,
        };
        let process_name = names.as_ref().and_then(|n| n.process_name.clone());
        let model_task_name = names
            .as_ref()
            .and_then(|n| n.activity(&task.task_definition_key))
            .map(str::to_owned);
        let learned = learned(task, process_name, model_task_name);
        // A task inserted by someone else between the read and the insert is read
        // again, and updated.
        for _ in 0..3 {
            let mut client = self.store.client().await?;
            let tx = client.transaction().await.map_err(StoreError::from)?;
            match rows::get_for_update(&tx, &learned.external_task_id).await? {
                None => {
                    let summary = FormSummary::of(&learned).to_json();
                    if !rows::insert(&tx, &learned, &summary).await? {
                        continue;
                    }
                    tx.commit().await.map_err(StoreError::from)?;
                    tracing::info!(
                        form = %learned.id,
                        engine_task = %learned.external_task_id,
                        "a user task of the engine's is in the inbox"
                    );
                }
                Some(current) => {
                    let Some((next, changes)) = revised(&current, &learned) else {
                        return Ok(false);
                    };
                    let summary = FormSummary::of(&next).to_json();
                    if !rows::update(&tx, &next, &summary, &changes).await? {
                        return Ok(false);
                    }
                    tx.commit().await.map_err(StoreError::from)?;
                    tracing::debug!(
                        form = %next.id,
                        engine_task = %next.external_task_id,
                        assignee = %next.assignee,
                        "a user task changed in the engine"
                    );
                }
            }
            self.hub.changed();
            return Ok(true);
        }
        Err(FormError::Unavailable(
            "the user task kept changing while it was stored: try again".into(),
        ))
    }

    /// A user task that left the engine (completed there, or deleted): a pending one
    /// is withdrawn with a reason in words ("it was completed in the process engine"
    /// / "the process no longer needs it") and `removed` (withdrawn) goes to its
    /// audience; a form ramp already completed is left alone. Unknown ids: no-op.
    /// Answers whether a form was withdrawn.
    pub async fn end_user_task(
        &self,
        engine_task_id: &str,
        end: UserTaskEnd,
    ) -> Result<bool, FormError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let Some(form) = rows::withdraw(&tx, engine_task_id, end.reason()).await? else {
            return Ok(false);
        };
        rows::append_changes(
            &tx,
            form.id,
            &form.audience(),
            ChangeKind::Removed(RemovalReason::Withdrawn),
            &FormSummary::of(&form).to_json(),
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.hub.changed();
        tracing::info!(
            form = %form.id,
            engine_task = engine_task_id,
            reason = end.reason(),
            "a user task left the engine: form withdrawn"
        );
        Ok(true)
    }

    /// Claims a pending user task for the caller, one of its candidates, in the
    /// engine (whose claim decides a race), then stores the task as the engine has
    /// it after the claim: it leaves the other candidates' streams and comes to the
    /// caller's. A task the caller holds already is answered as it is.
    pub async fn claim(
        &self,
        caller: &Caller,
        id: FormTaskId,
    ) -> Result<FormTaskDetail, FormError> {
        let task = self.user_task_of(caller, id).await?;
        if rules::is_assignee(caller, &task) {
            return self.with_schema(task).await;
        }
        if !task.assignee.is_empty() {
            return Err(claimed_by_someone_else());
        }
        if !rules::is_candidate(caller, &task) {
            return Err(FormError::PermissionDenied(
                "only a candidate of the task claims it".into(),
            ));
        }
        let camunda = self.schemas.camunda();
        let mut attempts = 0;
        loop {
            match camunda
                .claim_task(&task.external_task_id, &caller.user_id)
                .await
            {
                Ok(()) => break,
                Err(CamundaError::AlreadyClaimed(_)) => return Err(claimed_by_someone_else()),
                // Two changes of the task at once: the engine says which won when
                // asked again.
                Err(CamundaError::Conflict(_)) if attempts < 2 => attempts += 1,
                Err(error) => return Err(engine_refused(error)),
            }
        }
        tracing::info!(form = %task.id, engine_task = %task.external_task_id, user = %caller.user_id, "user task claimed");
        let task = self.read_back(task).await?;
        self.with_schema(task).await
    }

    /// Gives a user task the caller holds back to its candidates, in the engine,
    /// then stores the task as the engine has it after that (its draft dropped): it
    /// comes back to the candidates' streams. A task nobody holds is answered as it
    /// is.
    pub async fn unclaim(&self, caller: &Caller, id: FormTaskId) -> Result<FormSummary, FormError> {
        let task = self.user_task_of(caller, id).await?;
        if task.assignee.is_empty() {
            return Ok(FormSummary::of(&task));
        }
        if !rules::is_assignee(caller, &task) {
            // A candidate of a task someone else holds does not see it any more.
            return Err(if rules::may_see_task(caller, &task) {
                FormError::PermissionDenied("only the assignee of the task gives it back".into())
            } else {
                FormError::NotFound
            });
        }
        self.schemas
            .camunda()
            .unclaim_task(&task.external_task_id)
            .await
            .map_err(engine_refused)?;
        tracing::info!(form = %task.id, engine_task = %task.external_task_id, user = %caller.user_id, "user task given back");
        let task = self.read_back(task).await?;
        Ok(FormSummary::of(&task))
    }

    /// The pending user task `id`, if the caller may see it or is one of its
    /// candidates (a candidate whose inbox has not yet heard of someone else's claim
    /// is told so, not that the task does not exist).
    async fn user_task_of(&self, caller: &Caller, id: FormTaskId) -> Result<FormTask, FormError> {
        let task = form_rows::get(&self.store.client().await?, id)
            .await?
            .ok_or(FormError::NotFound)?;
        let named = task.candidate_users.contains(&caller.user_id)
            || task
                .candidate_groups
                .iter()
                .any(|g| caller.groups.contains(g));
        if !(rules::may_see_task(caller, &task) || task.kind == FormKind::UserTask && named) {
            return Err(FormError::NotFound);
        }
        if task.kind != FormKind::UserTask {
            return Err(FormError::NotPending(
                "a send-task form is assigned by its process, not claimed".into(),
            ));
        }
        if task.status != FormState::Pending {
            return Err(FormError::NotPending(format!(
                "the form is {}, no longer pending",
                task.status
            )));
        }
        Ok(task)
    }

    /// Reads a user task back from the engine after ramp changed it there, and
    /// stores what the engine says (so the stored `engine_updated_at` is the
    /// change's). The task as stored then.
    async fn read_back(&self, stored: FormTask) -> Result<FormTask, FormError> {
        let camunda = self.schemas.camunda();
        let engine_id = stored.external_task_id.clone();
        let read = async {
            let Some(task) = camunda.user_task(&engine_id).await? else {
                return Ok(None);
            };
            let links = camunda.task_identity_links(&engine_id).await?;
            Ok::<_, CamundaError>(Some((task, links)))
        };
        match read.await {
            Ok(Some((task, links))) => {
                self.learn_user_task(as_engine_says(task, links, &stored))
                    .await?;
            }
            // Gone from the engine meanwhile: the poller ends it.
            Ok(None) | Err(CamundaError::NotFound(_)) => {}
            // The engine changed; ramp hears of it on the poller's next read.
            Err(error) => {
                tracing::warn!(form = %stored.id, %error, "cannot read a user task back from the engine");
            }
        }
        form_rows::get(&self.store.client().await?, stored.id)
            .await?
            .ok_or(FormError::NotFound)
    }

    /// The engine ids of the pending user tasks ramp holds (for the poller's full
    /// resync).
    pub async fn pending_user_task_ids(&self) -> Result<Vec<String>, FormError> {
        Ok(rows::pending_ids(&self.store.client().await?).await?)
    }
}

fn claimed_by_someone_else() -> FormError {
    FormError::NotPending("someone else claimed this task".into())
}

/// The engine's refusal of a claim or an unclaim, for the caller.
fn engine_refused(error: CamundaError) -> FormError {
    match error {
        CamundaError::NotFound(_) => {
            FormError::NotPending("the task is no longer open in the process engine".into())
        }
        error if error.is_transient() => FormError::EngineUnavailable(error),
        error => FormError::Engine(error),
    }
}

/// What the engine says of a task ramp holds as `stored`, read back by id: the
/// task and its identity links, with what only the poller's reads carry (its
/// process, its form) as stored. No form variables: the stored prefill stays.
fn as_engine_says(task: Task, links: Vec<IdentityLink>, stored: &FormTask) -> EngineUserTask {
    let (candidate_users, candidate_groups) = candidates(links);
    EngineUserTask {
        id: task.id,
        name: task.name,
        task_definition_key: task
            .task_definition_key
            .unwrap_or_else(|| stored.activity_id.clone()),
        assignee: task.assignee.filter(|a| !a.is_empty()),
        candidate_users,
        candidate_groups,
        created: task.created,
        last_updated: task.last_updated,
        due: task.due,
        follow_up: task.follow_up,
        priority: task.priority,
        process_instance_id: stored.process_instance_id.clone(),
        root_process_instance_id: stored.root_process_instance_id.clone(),
        business_key: Some(stored.business_key.clone()).filter(|k| !k.is_empty()),
        process_definition_id: task
            .process_definition_id
            .or(stored.process_definition_id.clone()),
        process_definition_key: stored.process_definition_key.clone(),
        tenant_id: task.tenant_id,
        execution_id: task.execution_id,
        form: stored
            .form_schema
            .clone()
            .map(|schema| (stored.form_name.clone(), schema)),
        form_variables: Map::new(),
    }
}

/// A task's candidate users and groups, from its identity links.
fn candidates(links: Vec<IdentityLink>) -> (Vec<String>, Vec<String>) {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    for link in links.into_iter().filter(|l| l.kind == "candidate") {
        users.extend(link.user_id);
        groups.extend(link.group_id);
    }
    (users, groups)
}

/// The form task a user task is, as if new: its title from the Camunda Form's own
/// title, else the task's name, else its form's id (or, without a form, its
/// definition key); its prefill the form variables that are the form's fields (none
/// without a form: the engine then offers every variable of the instance, which may
/// be anything the process carries).
fn learned(
    task: EngineUserTask,
    process_name: Option<String>,
    model_task_name: Option<String>,
) -> FormTask {
    let stamp = task.stamp();
    let (form_name, form_title, form_schema, prefill) = match task.form {
        Some((id, schema)) => (
            id,
            schema_title(&schema),
            Some(schema.clone()),
            prefill::of_schema(&schema, task.form_variables),
        ),
        None => (task.task_definition_key.clone(), None, None, Map::new()),
    };
    // PostgreSQL keeps microseconds: the row compared is the row stored.
    let now = Utc::now().trunc_subsecs(6);
    FormTask {
        id: FormTaskId::new(),
        external_task_id: task.id,
        business_key: task.business_key.unwrap_or_default(),
        form_name,
        message_name: String::new(),
        assignee: task.assignee.unwrap_or_default(),
        status: FormState::Pending,
        process_instance_id: task.process_instance_id,
        root_process_instance_id: task.root_process_instance_id,
        process_definition_id: task.process_definition_id,
        process_definition_key: task.process_definition_key,
        tenant_id: task.tenant_id,
        topic_name: None,
        activity_id: task.task_definition_key,
        activity_instance_id: None,
        execution_id: task.execution_id,
        deployment_id: None,
        prefill: Value::Object(prefill),
        draft: None,
        withdrawal_reason: None,
        created_at: task.created.trunc_subsecs(6),
        updated_at: now,
        completed_at: None,
        delivery_state: None,
        return_reason: None,
        returned_at: None,
        task_name: task
            .name
            .filter(|n| !n.trim().is_empty())
            .or(model_task_name),
        process_name,
        form_title,
        context: None,
        kind: FormKind::UserTask,
        candidate_users: sorted(task.candidate_users),
        candidate_groups: sorted(task.candidate_groups),
        due_at: task.due,
        follow_up_at: task.follow_up,
        priority: Some(task.priority),
        engine_updated_at: Some(stamp),
        form_schema,
    }
}

/// Ids in one order, each once: the engine's identity links come in no set order.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids.dedup();
    ids
}

/// The stored user task `current` with what the engine says now (`learned`) applied,
/// and the change rows that tell its audience; `None` when nothing is to be
/// written: the task is no longer pending here, the read is older than the stored
/// one, or nothing a reader sees changed.
fn revised(current: &FormTask, learned: &FormTask) -> Option<(FormTask, Vec<AudienceChange>)> {
    if current.kind != FormKind::UserTask || current.status != FormState::Pending {
        return None;
    }
    if let (Some(stored), Some(read)) = (current.engine_updated_at, learned.engine_updated_at)
        && read < stored
    {
        return None;
    }
    let reassigned = current.assignee != learned.assignee;
    let next = FormTask {
        assignee: learned.assignee.clone(),
        candidate_users: learned.candidate_users.clone(),
        candidate_groups: learned.candidate_groups.clone(),
        due_at: learned.due_at,
        follow_up_at: learned.follow_up_at,
        priority: learned.priority,
        engine_updated_at: learned.engine_updated_at,
        form_schema: learned.form_schema.clone(),
        form_name: learned.form_name.clone(),
        form_title: learned.form_title.clone(),
        task_name: learned.task_name.clone(),
        process_name: learned
            .process_name
            .clone()
            .or(current.process_name.clone()),
        business_key: learned.business_key.clone(),
        // A read without form variables (or without a form) keeps what was offered.
        prefill: if learned.prefill.as_object().is_some_and(|p| !p.is_empty()) {
            learned.prefill.clone()
        } else {
            current.prefill.clone()
        },
        // The draft was the old assignee's.
        draft: if reassigned {
            None
        } else {
            current.draft.clone()
        },
        updated_at: learned.updated_at,
        ..current.clone()
    };
    let unchanged = FormTask {
        engine_updated_at: current.engine_updated_at,
        updated_at: current.updated_at,
        ..next.clone()
    };
    if &unchanged == current {
        return None;
    }
    let before = current.audience();
    let after = next.audience();
    let changes = before
        .iter()
        .filter(|key| !after.contains(key))
        .map(|key| AudienceChange {
            key: key.clone(),
            kind: ChangeKind::Removed(RemovalReason::Claimed),
        })
        // A task claimed, given back or handed to someone else comes to each key
        // of its new audience as new (the claimer's stream gets it as `added`),
        // even where it was already seen as a candidate's.
        .chain(after.iter().map(|key| AudienceChange {
            key: key.clone(),
            kind: if before.contains(key) && !reassigned {
                ChangeKind::Updated
            } else {
                ChangeKind::Added
            },
        }))
        .collect();
    Some((next, changes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, second).unwrap()
    }

    fn engine_task() -> EngineUserTask {
        EngineUserTask {
            id: "task-1".into(),
            name: Some("Review the order".into()),
            task_definition_key: "review".into(),
            assignee: None,
            candidate_users: vec!["bob".into()],
            candidate_groups: vec!["reviewers".into()],
            created: at(0),
            last_updated: None,
            due: None,
            follow_up: None,
            priority: 50,
            process_instance_id: "pi-1".into(),
            root_process_instance_id: "pi-1".into(),
            business_key: None,
            process_definition_id: Some("order:1:1".into()),
            process_definition_key: Some("order".into()),
            tenant_id: None,
            execution_id: Some("ex-1".into()),
            form: None,
            form_variables: Map::new(),
        }
    }

    fn stored(task: EngineUserTask) -> FormTask {
        learned(task, None, None)
    }

    #[test]
    fn a_user_task_is_titled_by_its_form_then_its_name_then_its_form_or_key() {
        let with_form = EngineUserTask {
            form: Some((
                "order-review".into(),
                json!({"title": "Order review", "components": [
                    {"type": "textfield", "key": "amount"}]}),
            )),
            form_variables: json!({"amount": 3, "secret": "x"})
                .as_object()
                .unwrap()
                .clone(),
            ..engine_task()
        };
        let form = stored(with_form.clone());
        assert_eq!(FormSummary::of(&form).title, "Order review");
        assert_eq!(form.form_name, "order-review");
        assert_eq!(form.prefill, json!({"amount": 3}));
        assert_eq!(form.assignee, "");
        assert_eq!(form.message_name, "");

        let untitled = EngineUserTask {
            form: Some(("order-review".into(), json!({"components": []}))),
            ..engine_task()
        };
        assert_eq!(FormSummary::of(&stored(untitled)).title, "Review the order");
        let unnamed = EngineUserTask {
            name: None,
            form_variables: json!({"amount": 3}).as_object().unwrap().clone(),
            ..engine_task()
        };
        let unnamed = stored(unnamed);
        assert_eq!(FormSummary::of(&unnamed).title, "review");
        assert_eq!(unnamed.prefill, json!({}));
    }

    #[test]
    fn a_claim_moves_the_task_from_its_candidates_to_its_assignee() {
        let current = FormTask {
            draft: Some(json!({"amount": 1})),
            ..stored(engine_task())
        };
        let claimed = stored(EngineUserTask {
            assignee: Some("bob".into()),
            last_updated: Some(at(5)),
            ..engine_task()
        });
        let (next, changes) = revised(&current, &claimed).unwrap();
        assert_eq!(next.assignee, "bob");
        assert_eq!(next.id, current.id);
        assert_eq!(next.draft, None);
        assert_eq!(next.engine_updated_at, Some(at(5)));
        assert_eq!(
            changes,
            [
                AudienceChange {
                    key: "group:reviewers".into(),
                    kind: ChangeKind::Removed(RemovalReason::Claimed)
                },
                AudienceChange {
                    key: "user:bob".into(),
                    kind: ChangeKind::Added
                },
            ]
        );
    }

    #[test]
    fn an_unclaimed_task_goes_back_to_its_candidates() {
        let current = stored(EngineUserTask {
            assignee: Some("carol".into()),
            last_updated: Some(at(5)),
            ..engine_task()
        });
        let unclaimed = stored(EngineUserTask {
            last_updated: Some(at(6)),
            ..engine_task()
        });
        let (_, changes) = revised(&current, &unclaimed).unwrap();
        let kinds: Vec<(&str, ChangeKind)> =
            changes.iter().map(|c| (c.key.as_str(), c.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("user:carol", ChangeKind::Removed(RemovalReason::Claimed)),
                ("user:bob", ChangeKind::Added),
                ("group:reviewers", ChangeKind::Added),
            ]
        );
    }

    #[test]
    fn an_older_read_or_the_same_one_writes_nothing() {
        let current = stored(EngineUserTask {
            assignee: Some("carol".into()),
            last_updated: Some(at(5)),
            ..engine_task()
        });
        let older = stored(EngineUserTask {
            last_updated: Some(at(4)),
            ..engine_task()
        });
        assert_eq!(revised(&current, &older), None);
        let again = stored(EngineUserTask {
            assignee: Some("carol".into()),
            last_updated: Some(at(5)),
            ..engine_task()
        });
        assert_eq!(revised(&current, &again), None);
        let ended = FormTask {
            status: FormState::Completed,
            ..current.clone()
        };
        let newer = stored(EngineUserTask {
            last_updated: Some(at(9)),
            ..engine_task()
        });
        assert_eq!(revised(&ended, &newer), None);
    }

    #[test]
    fn a_new_due_date_tells_the_audience_it_keeps() {
        let current = stored(engine_task());
        let due = stored(EngineUserTask {
            due: Some(at(30)),
            last_updated: Some(at(2)),
            candidate_groups: vec!["reviewers".into(), "reviewers".into()],
            ..engine_task()
        });
        let (next, changes) = revised(&current, &due).unwrap();
        assert_eq!(next.due_at, Some(at(30)));
        assert!(changes.iter().all(|c| c.kind == ChangeKind::Updated));
        assert_eq!(changes.len(), 2);
    }
}
