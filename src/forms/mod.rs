//! Form tasks: created by workers (idempotent on the external task), read and drafted
//! by their assignees, and streamed live to them (`stream.rs`, fed by `hub.rs`).
//! What a form task, its answer and its changes are: `task.rs`.

mod consistency;
mod feel;
mod hub;
mod prefill;
pub mod rules;
pub mod schema;
mod starts;
mod stream;
mod task;
mod user_tasks;
pub mod validation;
pub mod withdrawal;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use hub::{ChangeHub, HubSettings, TooManyStreams};
pub use stream::{Cursor, StreamEvent, StreamSettings};
pub use task::{
    Change, ChangeKind, FormKind, FormState, FormTask, GROUP_KEY, RemovalReason, Submission,
    USER_KEY,
};
pub use user_tasks::{EngineUserTask, UserTaskEnd};

use crate::auth::Caller;
use crate::camunda::CamundaError;
use crate::delivery::{Delivery, DeliveryState, Dispatcher};
use crate::email::Email;
use crate::ids::{FormTaskId, SubmissionId};
use crate::paging::Page;
use crate::processes::definitions::{Definitions, ModelNames};
use crate::store::deliveries;
use crate::store::forms::{self as rows, ListQuery, Viewer};
use crate::store::{Store, StoreError};
use schema::{SchemaError, Schemas};

/// What a list or a stream shows of a form task. Stored with each change, so that a
/// reader replays exactly what happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FormSummary {
    pub id: FormTaskId,
    pub form_name: String,
    pub business_key: String,
    pub assignee: String,
    pub status: FormState,
    pub process_instance_id: String,
    pub root_process_instance_id: String,
    pub process_definition_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub has_draft: bool,
    pub title: String,
    /// Where the delivery of the answer stands, once submitted.
    #[serde(default)]
    pub delivery_state: Option<DeliveryState>,
    /// Why the form came back to its assignee, when the process could not use the
    /// answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned_at: Option<DateTime<Utc>>,
    /// The send task's name in the model; empty without one (and in changes
    /// stored before names were kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task_name: String,
    /// The process definition's name in the model; empty without one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub process_name: String,
    /// What the form is about, from the send task's `ramp.context`; empty without.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context: String,
    /// Send-task form or user task; changes stored before user tasks are send-task
    /// forms.
    #[serde(default = "send_task")]
    pub kind: FormKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidate_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidate_users: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

fn send_task() -> FormKind {
    FormKind::SendTask
}

impl FormSummary {
    pub fn of(row: &FormTask) -> Self {
        Self {
            id: row.id,
            form_name: row.form_name.clone(),
            business_key: row.business_key.clone(),
            assignee: row.assignee.clone(),
            status: row.status,
            process_instance_id: row.process_instance_id.clone(),
            root_process_instance_id: row.root_process_instance_id.clone(),
            process_definition_key: row.process_definition_key.clone(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            has_draft: row.draft.is_some(),
            title: title(
                row.form_title.as_deref(),
                row.task_name.as_deref(),
                &row.form_name,
            )
            .to_owned(),
            delivery_state: row.delivery_state,
            return_reason: row.return_reason.clone(),
            returned_at: row.returned_at,
            task_name: row.task_name.clone().unwrap_or_default(),
            process_name: row.process_name.clone().unwrap_or_default(),
            context: row.context.clone().unwrap_or_default(),
            kind: row.kind,
            candidate_groups: row.candidate_groups.clone(),
            candidate_users: row.candidate_users.clone(),
            due_at: row.due_at,
            follow_up_at: row.follow_up_at,
            priority: row.priority,
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a summary serializes")
    }
}

/// A form's title: the Camunda Form's own title, else the send task's name, else the
/// form's name (never empty).
fn title<'a>(
    form_title: Option<&'a str>,
    task_name: Option<&'a str>,
    form_name: &'a str,
) -> &'a str {
    [form_title, task_name]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|t| !t.is_empty())
        .unwrap_or(form_name)
}

/// The title a form-js schema gives itself, if any (a non-empty top-level "title").
fn schema_title(schema: &Value) -> Option<String> {
    schema
        .get("title")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// A form task with what is needed to render and fill it.
#[derive(Clone, Debug)]
pub struct FormTaskDetail {
    pub task: FormTask,
    pub schema: Option<Value>,
    /// The answer, once submitted, and its delivery to the engine.
    pub submission: Option<Submission>,
    pub delivery: Option<Delivery>,
}

/// An accepted answer.
#[derive(Clone, Debug)]
pub struct Submitted {
    pub submission: Submission,
    /// `None` only for an answer whose delivery row is gone (pruned).
    pub delivery_state: Option<DeliveryState>,
}

#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("form task not found")]
    NotFound,
    /// The caller may not do this (see `rules`), in words it reads as they are.
    #[error("{0}")]
    PermissionDenied(String),
    /// Fields of a new form task that disagree with the engine.
    #[error("the form task disagrees with the engine: {0:?}")]
    Inconsistent(Vec<consistency::Inconsistency>),
    /// In words the caller reads as they are (so are the next two).
    #[error("{0}")]
    NotPending(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// A repeat of CreateFormTask with data that cannot be applied to the stored
    /// task; says which fields differ.
    #[error("{0}")]
    AlreadyExists(String),
    /// The engine knows no process instance with the id a worker gave.
    #[error("the engine does not know the process instance: {0}")]
    UnknownInstance(CamundaError),
    /// The engine could not be reached, or did not answer in time.
    #[error("the process engine is unavailable: {0}")]
    EngineUnavailable(CamundaError),
    /// Data that breaks the form's rules: (field, problem) each.
    #[error("the data does not fit the form")]
    InvalidData(validation::Problems),
    #[error("invalid page token")]
    InvalidPageToken,
    #[error(transparent)]
    TooManyStreams(#[from] TooManyStreams),
    #[error("engine: {0}")]
    Engine(CamundaError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SchemaError> for FormError {
    fn from(error: SchemaError) -> Self {
        match error {
            SchemaError::Store(error) => Self::Store(error),
            SchemaError::Camunda(error @ CamundaError::NotFound(_)) => Self::UnknownInstance(error),
            SchemaError::Camunda(error) if error.is_transient() => Self::EngineUnavailable(error),
            SchemaError::Camunda(error) => Self::Engine(error),
        }
    }
}

/// What a worker says about a send task.
pub struct NewFormTask {
    pub external_task_id: String,
    pub process_instance_id: String,
    pub process_definition_id: Option<String>,
    pub process_definition_key: Option<String>,
    pub business_key: Email,
    pub activity_id: String,
    pub activity_instance_id: Option<String>,
    pub execution_id: Option<String>,
    pub form_name: Option<String>,
    pub message_name: Option<String>,
    pub assignee: Option<Email>,
    pub prefill: Map<String, Value>,
    pub tenant_id: Option<String>,
    pub topic_name: Option<String>,
    /// The context line the worker built (see `FormSummary::context`).
    pub context: Option<String>,
}

pub struct ListRequest {
    pub assignee: Option<Email>,
    /// Every state when empty.
    pub statuses: Vec<FormState>,
    pub business_key: Option<Email>,
    pub root_process_instance_id: Option<String>,
    pub page_size: usize,
    pub page_token: Option<String>,
}

#[derive(Clone)]
pub struct Forms {
    store: Store,
    schemas: Arc<Schemas>,
    definitions: Definitions,
    hub: ChangeHub,
    dispatcher: Dispatcher,
    stream_settings: StreamSettings,
    /// Streams starting in the same moment share one read.
    starts: starts::Starts,
}

impl Forms {
    pub fn new(
        store: Store,
        schemas: Arc<Schemas>,
        definitions: Definitions,
        hub: ChangeHub,
        dispatcher: Dispatcher,
        stream_settings: StreamSettings,
    ) -> Self {
        let starts = starts::Starts::new(
            store.clone(),
            stream_settings.retention,
            stream::CATCH_UP_BATCH,
        );
        Self {
            store,
            schemas,
            definitions,
            hub,
            dispatcher,
            stream_settings,
            starts,
        }
    }

    /// Stores a form task for a send task, if `caller` may create one and the
    /// engine agrees with what it says (`inconsistencies`). A repeat for the same
    /// external task is compared with the stored task (see `Claim`): the same data
    /// returns it; a corrected assignee of a pending form moves it; other data is
    /// refused.
    pub async fn create(
        &self,
        caller: &Caller,
        new: NewFormTask,
    ) -> Result<(FormTaskDetail, bool), FormError> {
        rules::may_create(caller)?;
        // What the engine says of the instance decides, not what the worker says.
        let inconsistent = self
            .inconsistencies(&new, rules::checks_assignee(caller))
            .await?;
        if !inconsistent.is_empty() {
            return Err(FormError::Inconsistent(inconsistent));
        }
        let claim = Claim::of(&new);
        let (candidate, schema) = match self.candidate(new, &claim).await {
            Ok(prepared) => prepared,
            // A repeat is answered even while the engine is unreachable.
            Err(error) => {
                return match self.existing(&claim).await? {
                    Some(existing) => Ok((existing, false)),
                    None => Err(error),
                };
            }
        };
        // One statement: the task and its `added` change commit together, in one
        // round trip. The summary is the candidate's, which is what is stored.
        let summary = FormSummary::of(&candidate).to_json();
        if rows::insert_new(&self.store.client().await?, &candidate, &summary).await? {
            self.hub.changed();
            return Ok((
                FormTaskDetail {
                    task: candidate,
                    schema,
                    submission: None,
                    delivery: None,
                },
                true,
            ));
        }
        let existing = self.existing(&claim).await?.ok_or_else(|| {
            FormError::Unavailable("the form task changed meanwhile: try again".into())
        })?;
        Ok((existing, false))
    }

    /// The form task already stored for a claim's external task, if any, once the
    /// repeat is applied to it: unchanged when the claim matches it, moved to the
    /// claim's assignee when only that differs and it is pending, and otherwise
    /// `AlreadyExists` naming what differs.
    async fn existing(&self, claim: &Claim) -> Result<Option<FormTaskDetail>, FormError> {
        let Some(row) =
            rows::by_external_task(&self.store.client().await?, &claim.external_task_id).await?
        else {
            return Ok(None);
        };
        if claim.differences(&row).is_empty() {
            return Ok(Some(self.with_schema(row).await?));
        }
        // Decided again with the row locked: a submit, a withdrawal or another
        // repeat may have changed it since it was read.
        let mut client = self.store.client().await?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let current = rows::get_for_update(&tx, row.id)
            .await?
            .ok_or(FormError::NotFound)?;
        let differences = claim.differences(&current);
        if differences.is_empty() {
            // Not while holding this connection: a second from the pool could starve it.
            drop(tx);
            drop(client);
            return Ok(Some(self.with_schema(current).await?));
        }
        if current.status != FormState::Pending || differences.iter().any(|d| d.field != "assignee")
        {
            tracing::warn!(
                form = %current.id,
                external_task = %claim.external_task_id,
                fields = ?differences.iter().map(|d| d.field).collect::<Vec<_>>(),
                "a repeated form task differs from the stored one; refused"
            );
            return Err(FormError::AlreadyExists(Claim::refusal(
                &current,
                &differences,
            )));
        }
        let moved = move_to(&tx, &current, &claim.assignee).await?;
        tx.commit().await.map_err(StoreError::from)?;
        drop(client);
        self.hub.changed();
        tracing::info!(
            form = %current.id,
            external_task = %claim.external_task_id,
            from = %current.assignee,
            to = %moved.assignee,
            "a repeated form task names another assignee: form reassigned"
        );
        Ok(Some(self.with_schema(moved).await?))
    }

    /// The row a new form task would be (`claim` is `new` with its defaults
    /// applied), with its form's schema: the instance's lineage and the form are
    /// looked up (remembered after the first time).
    async fn candidate(
        &self,
        new: NewFormTask,
        claim: &Claim,
    ) -> Result<(FormTask, Option<Value>), FormError> {
        let lineage = self.schemas.lineage(&new.process_instance_id).await?;
        let definition_id = new
            .process_definition_id
            .clone()
            .or(lineage.process_definition_id);
        let found = self
            .schemas
            .find(definition_id.as_deref(), &claim.form_name)
            .await?;
        let prefill = match (&found, &new.activity_instance_id) {
            (Some((_, schema)), _) => prefill::of_schema(schema, new.prefill),
            (None, Some(activity)) if !new.prefill.is_empty() => {
                let inputs = prefill::inputs(self.schemas.camunda(), activity)
                    .await
                    .map_err(SchemaError::from)?;
                prefill::of_inputs(&inputs, new.prefill)
            }
            // Without its activity instance, nothing says what the task maps.
            (None, _) => Map::new(),
        };
        let names = match &definition_id {
            Some(id) => {
                self.model_names(id, new.process_definition_key.as_deref())
                    .await
            }
            None => None,
        };
        // PostgreSQL keeps microseconds: the row answered is the row stored.
        let now = Utc::now().trunc_subsecs(6);
        let candidate = FormTask {
            id: FormTaskId::new(),
            external_task_id: new.external_task_id,
            business_key: claim.business_key.clone(),
            message_name: claim.message_name.clone(),
            form_name: claim.form_name.clone(),
            assignee: claim.assignee.clone(),
            status: FormState::Pending,
            process_instance_id: new.process_instance_id,
            root_process_instance_id: lineage.root_process_instance_id,
            process_definition_id: definition_id,
            process_definition_key: new.process_definition_key,
            tenant_id: new.tenant_id,
            topic_name: new.topic_name,
            activity_instance_id: new.activity_instance_id,
            execution_id: new.execution_id,
            deployment_id: found.as_ref().map(|(d, _)| d.clone()),
            prefill: Value::Object(prefill),
            draft: None,
            withdrawal_reason: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            delivery_state: None,
            return_reason: None,
            returned_at: None,
            task_name: names
                .as_ref()
                .and_then(|n| n.activity(&new.activity_id))
                .map(str::to_owned),
            process_name: names.as_ref().and_then(|n| n.process_name.clone()),
            form_title: found.as_ref().and_then(|(_, schema)| schema_title(schema)),
            context: new.context.filter(|c| !c.trim().is_empty()),
            activity_id: new.activity_id,
            kind: FormKind::SendTask,
            candidate_users: Vec::new(),
            candidate_groups: Vec::new(),
            due_at: None,
            follow_up_at: None,
            priority: None,
            engine_updated_at: None,
            form_schema: None,
        };
        Ok((candidate, found.map(|(_, s)| s)))
    }

    /// The names in a definition's model, read once per definition. A form is
    /// created without names rather than not at all when the model cannot be read.
    async fn model_names(&self, definition_id: &str, key: Option<&str>) -> Option<Arc<ModelNames>> {
        match self.definitions.names(definition_id, key).await {
            Ok(names) => Some(names),
            Err(error) => {
                tracing::warn!(
                    definition = definition_id,
                    %error,
                    "the model's names could not be read; the form is created without them"
                );
                None
            }
        }
    }

    async fn with_schema(&self, row: FormTask) -> Result<FormTaskDetail, FormError> {
        let client = self.store.client().await?;
        let schema = self.schema_of(&client, &row).await?;
        let submission = deliveries::submission_of(&client, row.id).await?;
        let delivery = deliveries::delivery_of(&client, row.id).await?;
        Ok(FormTaskDetail {
            task: row,
            schema,
            submission,
            delivery,
        })
    }

    /// The form a task is filled in with: a user task's own Camunda Form, as the
    /// engine resolved it when the task was learned; a send-task form's, from its
    /// deployment. `None`: no schema, any data within the input limits.
    async fn schema_of(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        task: &FormTask,
    ) -> Result<Option<Value>, FormError> {
        Ok(match (task.kind, &task.deployment_id) {
            (FormKind::UserTask, _) => task.form_schema.clone(),
            (FormKind::SendTask, Some(deployment)) => {
                self.schemas
                    .stored_in(client, deployment, &task.form_name)
                    .await?
            }
            (FormKind::SendTask, None) => None,
        })
    }

    /// Submits a pending form of the caller's (a user task once they claimed it,
    /// `rules::may_answer`): checks the data against its form (`schema_of`), then in
    /// one transaction marks the task completed, stores the answer and writes its
    /// delivery to the outbox (the message to correlate, or the engine's user task
    /// to complete). A repeated `request_id` returns the first result.
    pub async fn submit(
        &self,
        caller: &Caller,
        id: FormTaskId,
        data: Map<String, Value>,
        request_id: Option<String>,
    ) -> Result<Submitted, FormError> {
        let email = caller.email.as_str();
        let data = Value::Object(data);
        // One connection for the whole submit: taking a second one from the pool
        // while holding this one would starve the pool when as many submits run at
        // once as it has connections.
        let client = self.store.client().await?;
        // Read and check without a lock, then write in one statement that applies
        // only if the task did not change since: two round trips in all. A task
        // that changed meanwhile (a draft saved, a concurrent submit, a withdrawal)
        // is read and checked again.
        for _ in 0..3 {
            let (task, earlier) = match &request_id {
                Some(request_id) => tokio::try_join!(
                    rows::get(&client, id),
                    deliveries::submission_by_request(&client, email, request_id)
                )?,
                None => (rows::get(&client, id).await?, None),
            };
            let task = task.ok_or(FormError::NotFound)?;
            rules::may_answer(caller, &task)?;
            if let Some(earlier) = earlier {
                if earlier.form_task_id != id {
                    return Err(FormError::InvalidArgument(
                        "request_id was used for another form".into(),
                    ));
                }
                let state = deliveries::delivery_of(&client, id).await?.map(|d| d.state);
                return Ok(Submitted {
                    submission: earlier,
                    delivery_state: state,
                });
            }
            if task.status != FormState::Pending {
                return Err(FormError::NotPending(format!(
                    "the form is {}, no longer pending",
                    task.status
                )));
            }
            if let Some(schema) = self.schema_of(&client, &task).await? {
                let problems = validation::check(&schema, data.as_object().expect("an object"));
                if !problems.is_empty() {
                    return Err(FormError::InvalidData(problems));
                }
            }
            // PostgreSQL keeps microseconds: what is answered is what is stored.
            let at = Utc::now().trunc_subsecs(6);
            let completed = FormTask {
                status: FormState::Completed,
                updated_at: at,
                completed_at: Some(at),
                delivery_state: Some(DeliveryState::Pending),
                return_reason: None,
                returned_at: None,
                ..task.clone()
            };
            let submission = Submission {
                id: SubmissionId::new(),
                form_task_id: id,
                submitted_by: email.to_owned(),
                data: data.clone(),
                created_at: at,
            };
            // Assigned (`may_answer`), so its audience is its assignee alone.
            let audience = completed.audience();
            let written = rows::submit(
                &client,
                &rows::Submit {
                    form_task_id: id,
                    assignee: &task.assignee,
                    submitted_by: email,
                    change_key: audience.first().map_or(email, String::as_str),
                    seen_updated_at: task.updated_at,
                    at,
                    submission_id: submission.id,
                    request_id: request_id.as_deref(),
                    data: &data,
                    summary: &FormSummary::of(&completed).to_json(),
                },
            )
            .await;
            match written {
                Ok(true) => {
                    self.hub.changed();
                    self.dispatcher.wake();
                    return Ok(Submitted {
                        submission,
                        delivery_state: Some(DeliveryState::Pending),
                    });
                }
                Ok(false) => continue,
                // The same request id, used at the same moment for this form (the
                // other won: read its answer) or another (refused when read).
                Err(StoreError::Db(error))
                    if crate::store::unique_violation(&error) == Some("submissions_request_id") =>
                {
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(FormError::Unavailable(
            "the form kept changing while it was submitted: try again".into(),
        ))
    }

    /// A form task the caller may see (see `rules::may_see_task`).
    pub async fn get(&self, caller: &Caller, id: FormTaskId) -> Result<FormTaskDetail, FormError> {
        let row = rows::get(&self.store.client().await?, id)
            .await?
            .ok_or(FormError::NotFound)?;
        if !rules::may_see_task(caller, &row) {
            return Err(FormError::NotFound);
        }
        self.with_schema(row).await
    }

    pub async fn list(
        &self,
        caller: &Caller,
        request: ListRequest,
    ) -> Result<(Vec<FormSummary>, Option<String>), FormError> {
        let assignee = rules::listed_assignee(caller, request.assignee.as_ref())?
            .map(|a| a.as_str().to_owned());
        let business_key = request.business_key.as_ref().map(|k| k.as_str().to_owned());
        // The stored words, as tokens handed out before states were types hold them.
        let statuses: Vec<&str> = request.statuses.iter().map(|s| s.as_str()).collect();
        let page = Page::new(
            format!(
                "{assignee:?}|{statuses:?}|{business_key:?}|{:?}",
                request.root_process_instance_id
            ),
            request.page_size,
            request.page_token.as_deref(),
        )
        .ok_or(FormError::InvalidPageToken)?;
        // A user's own list holds the user tasks they may see besides their forms
        // (the page filter above stays theirs, so tokens handed out before hold).
        let viewer = (!caller.admin).then(|| viewer(caller));
        let assignee = if viewer.is_some() { None } else { assignee };
        let mut found = rows::list(
            &self.store.client().await?,
            &ListQuery {
                assignee: assignee.as_deref(),
                viewer: viewer.as_ref(),
                statuses: &request.statuses,
                business_key: business_key.as_deref(),
                root_process_instance_id: request.root_process_instance_id.as_deref(),
                after: page.after(),
                limit: page.limit(),
            },
        )
        .await?;
        let next = page.finish(&mut found, |row| (row.created_at, row.id.into()));
        Ok((found, next))
    }

    /// Replaces the draft of a pending form of the caller's (a user task: only its
    /// assignee's), and pushes the change. Whether the form is the caller's is
    /// decided by the write itself: a form reassigned (or claimed) while this runs
    /// (its row locked by the reassignment) is no longer theirs when the write takes
    /// the row, and nothing is written.
    pub async fn save_draft(
        &self,
        caller: &Caller,
        id: FormTaskId,
        data: Map<String, Value>,
    ) -> Result<FormSummary, FormError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let Some(row) = rows::save_draft(
            &tx,
            id,
            caller.email.as_str(),
            &caller.user_id,
            &Value::Object(data),
        )
        .await?
        else {
            // Nothing written: say why, in the words the caller may read.
            return Err(match rows::get(&tx, id).await? {
                Some(current)
                    if rules::is_assignee(caller, &current)
                        && current.status != FormState::Pending =>
                {
                    FormError::NotPending(format!(
                        "the form is {}, no longer pending",
                        current.status
                    ))
                }
                // Given back to the caller in the meantime, say: rare enough to retry.
                Some(current) if rules::is_assignee(caller, &current) => FormError::Unavailable(
                    "the form changed while the draft was saved: try again".into(),
                ),
                // A user task the caller may claim, but has not.
                Some(current)
                    if current.kind == FormKind::UserTask
                        && rules::may_see_task(caller, &current) =>
                {
                    FormError::NotPending(
                        "claim the task first: only its assignee saves a draft".into(),
                    )
                }
                // Another user's form, or none: the same answer, as everywhere.
                _ => FormError::NotFound,
            });
        };
        let summary = FormSummary::of(&row);
        crate::store::user_tasks::append_changes(
            &tx,
            row.id,
            &row.audience(),
            ChangeKind::Updated,
            &summary.to_json(),
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.hub.changed();
        Ok(summary)
    }

    /// Gives a pending form to another user (an admin's action): the old
    /// assignee's streams get `removed: reassigned`, the new one's `added`.
    pub async fn reassign(
        &self,
        id: FormTaskId,
        assignee: &Email,
    ) -> Result<FormSummary, FormError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let current = rows::get_for_update(&tx, id)
            .await?
            .ok_or(FormError::NotFound)?;
        if current.status != FormState::Pending {
            return Err(FormError::NotPending(format!(
                "the form is {}, no longer pending",
                current.status
            )));
        }
        if current.kind == FormKind::UserTask {
            return Err(FormError::NotPending(
                "a user task of the engine's is reassigned in the engine (its assignee, or its candidates), not in ramp".into(),
            ));
        }
        if current.assignee == assignee.as_str() {
            return Ok(FormSummary::of(&current));
        }
        let row = move_to(&tx, &current, assignee.as_str()).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.hub.changed();
        tracing::info!(form = %id, from = %current.assignee, to = %row.assignee, "form reassigned");
        Ok(FormSummary::of(&row))
    }

    /// The caller's live inbox: see `stream.rs`.
    pub fn pending(
        &self,
        caller: &Caller,
        cursor: Option<Cursor>,
    ) -> Result<
        impl futures::Stream<Item = Result<StreamEvent, FormError>> + Send + 'static,
        FormError,
    > {
        let viewer = viewer(caller);
        let subscription = self.hub.subscribe(caller.email.as_str(), &viewer.keys)?;
        Ok(stream::events(
            self.store.clone(),
            self.starts.clone(),
            subscription,
            viewer,
            cursor,
            self.stream_settings.clone(),
        ))
    }
}

/// Whose forms `caller` sees, and the change log keys of them.
fn viewer(caller: &Caller) -> Viewer {
    Viewer {
        email: caller.email.as_str().to_owned(),
        user_id: caller.user_id.clone(),
        groups: caller.groups.clone(),
        keys: caller.audience(),
    }
}

/// Gives the pending form `current` (locked by the caller's transaction) to
/// `assignee`, with its draft cleared in the same statement (the draft was the old
/// assignee's), and logs `removed: reassigned` for the old assignee and `added` for
/// the new one.
async fn move_to(
    tx: &deadpool_postgres::Transaction<'_>,
    current: &FormTask,
    assignee: &str,
) -> Result<FormTask, FormError> {
    let row = rows::reassign(tx, current.id, assignee)
        .await?
        .ok_or_else(|| FormError::NotPending("the form is no longer pending".into()))?;
    rows::append_change(
        tx,
        current.id,
        &current.assignee,
        ChangeKind::Removed(RemovalReason::Reassigned),
        &FormSummary::of(current).to_json(),
    )
    .await?;
    let summary = FormSummary::of(&row);
    rows::append_change(
        tx,
        row.id,
        &row.assignee,
        ChangeKind::Added,
        &summary.to_json(),
    )
    .await?;
    Ok(row)
}

/// What a CreateFormTask says about its form, with the defaults applied as they are
/// stored: what a repeat for the same external task is compared on. The prefill is
/// not (the first call's stays: its assignee may be filling it in already).
struct Claim {
    external_task_id: String,
    process_instance_id: String,
    business_key: String,
    activity_id: String,
    form_name: String,
    message_name: String,
    assignee: String,
    /// Compared only when both the stored task and the repeat have one.
    activity_instance_id: Option<String>,
    execution_id: Option<String>,
    process_definition_id: Option<String>,
    process_definition_key: Option<String>,
    tenant_id: Option<String>,
    topic_name: Option<String>,
}

/// A field in which a repeat differs from the stored task.
#[derive(Debug)]
struct Difference {
    field: &'static str,
    /// The stored and the sent value, for fields whose values the caller may read
    /// (not engine ids).
    values: Option<(String, String)>,
}

impl Claim {
    fn of(new: &NewFormTask) -> Self {
        let form_name = new
            .form_name
            .clone()
            .unwrap_or_else(|| new.activity_id.clone());
        Self {
            external_task_id: new.external_task_id.clone(),
            process_instance_id: new.process_instance_id.clone(),
            business_key: new.business_key.as_str().to_owned(),
            activity_id: new.activity_id.clone(),
            message_name: new
                .message_name
                .clone()
                .unwrap_or_else(|| form_name.clone()),
            form_name,
            assignee: new
                .assignee
                .as_ref()
                .unwrap_or(&new.business_key)
                .as_str()
                .to_owned(),
            activity_instance_id: new.activity_instance_id.clone(),
            execution_id: new.execution_id.clone(),
            process_definition_id: new.process_definition_id.clone(),
            process_definition_key: new.process_definition_key.clone(),
            tenant_id: new.tenant_id.clone(),
            topic_name: new.topic_name.clone(),
        }
    }

    /// The fields in which this claim differs from `stored`, in the contract's order.
    fn differences(&self, stored: &FormTask) -> Vec<Difference> {
        let mut found = Vec::new();
        let mut compare = |field, stored: &str, sent: &str, shown: bool| {
            if stored != sent {
                found.push(Difference {
                    field,
                    values: shown.then(|| (stored.to_owned(), sent.to_owned())),
                });
            }
        };
        compare(
            "process_instance_id",
            &stored.process_instance_id,
            &self.process_instance_id,
            false,
        );
        compare(
            "business_key",
            &stored.business_key,
            &self.business_key,
            true,
        );
        compare("activity_id", &stored.activity_id, &self.activity_id, true);
        compare("form_name", &stored.form_name, &self.form_name, true);
        compare(
            "message_name",
            &stored.message_name,
            &self.message_name,
            true,
        );
        compare("assignee", &stored.assignee, &self.assignee, true);
        let optional = [
            (
                "activity_instance_id",
                &stored.activity_instance_id,
                &self.activity_instance_id,
                false,
            ),
            (
                "execution_id",
                &stored.execution_id,
                &self.execution_id,
                false,
            ),
            (
                "process_definition_id",
                &stored.process_definition_id,
                &self.process_definition_id,
                false,
            ),
            (
                "process_definition_key",
                &stored.process_definition_key,
                &self.process_definition_key,
                true,
            ),
            ("tenant_id", &stored.tenant_id, &self.tenant_id, true),
            ("topic_name", &stored.topic_name, &self.topic_name, true),
        ];
        for (field, stored, sent, shown) in optional {
            if let (Some(stored), Some(sent)) = (stored, sent) {
                compare(field, stored, sent, shown);
            }
        }
        found
    }

    /// Why a repeat is refused, for the worker's operator to read (in an incident,
    /// say): each field that differs, with both values where they may be shown.
    fn refusal(stored: &FormTask, differences: &[Difference]) -> String {
        let fields: Vec<String> = differences
            .iter()
            .map(|d| match &d.values {
                Some((stored, sent)) => {
                    format!("{} is {stored:?} there but {sent:?} here", d.field)
                }
                None => format!("{} differs", d.field),
            })
            .collect();
        let mut message = format!(
            "a form task for this external task exists with other data: {}",
            fields.join("; ")
        );
        if stored.status != FormState::Pending && differences.iter().any(|d| d.field == "assignee")
        {
            message.push_str(&format!(
                " (the form is {}, so its assignee no longer changes)",
                stored.status
            ));
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_form_is_titled_by_its_own_title_then_its_task_then_its_name() {
        assert_eq!(
            title(Some("Supplier"), Some("Enter details"), "step"),
            "Supplier"
        );
        assert_eq!(
            title(Some(" "), Some("Enter details"), "step"),
            "Enter details"
        );
        assert_eq!(title(None, Some(""), "step"), "step");
        assert_eq!(title(None, None, "step"), "step");
    }

    #[test]
    fn a_schema_title_is_a_non_empty_top_level_text() {
        assert_eq!(
            schema_title(&json!({"title": " Supplier "})).as_deref(),
            Some("Supplier")
        );
        assert_eq!(schema_title(&json!({"title": ""})), None);
        assert_eq!(schema_title(&json!({"title": 3})), None);
        assert_eq!(schema_title(&json!({"components": []})), None);
    }

    #[test]
    fn a_summary_stored_before_names_were_kept_still_reads() {
        let stored = json!({
            "id": "0190b7a4-0000-7000-8000-000000000000", "form_name": "step",
            "business_key": "a@example.com", "assignee": "a@example.com",
            "status": "pending", "process_instance_id": "p", "root_process_instance_id": "p",
            "process_definition_key": null, "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "has_draft": false, "title": "step"
        });
        let summary: FormSummary = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(
            (summary.task_name.as_str(), summary.context.as_str()),
            ("", "")
        );
        assert_eq!(summary.to_json()["title"], stored["title"]);
    }
}
