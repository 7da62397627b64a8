//! Starting and following processes: at most one active root process per business
//! key, race-free across replicas (a unique index, reserved before the engine is
//! called), and also against root instances started without ramp.

pub mod definitions;
mod reconcile;
pub mod rules;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::camunda::types::ProcessInstanceQuery;
use crate::camunda::{Camunda, CamundaError, typed};
use crate::email::Email;
use crate::forms::withdrawal::{WithdrawalError, Withdrawals};
use crate::ids::{ProcessId, stored_words};
use crate::paging::Page;
use crate::store::processes::{self as rows, ListQuery, NewProcess, ReserveError};
use crate::store::{Store, StoreError};
use definitions::{Definitions, Startable};
use rules::StartPolicy;

pub use reconcile::{ReconcileSettings, Reconciler};

/// The variable every instance ramp starts carries: the id of its process row.
/// It tells an instance of a start that ramp gave up on from the one that took its
/// place.
pub const PROCESS_TAG: &str = "rampProcessId";

/// The variable names that are ramp's own: no client sets them (StartProcess
/// variables, SubmitForm and SaveDraft data are refused with them) and no form
/// offers them. Every name ramp writes into an instance belongs here.
pub const RESERVED: [&str; 2] = [PROCESS_TAG, crate::delivery::MARKER];

stored_words!(
    /// Where a process stands, as ramp knows it.
    ProcessState {
        Starting = "starting",
        Active = "active",
        Completed = "completed",
        Cancelled = "cancelled",
        Terminated = "terminated",
        Failed = "failed",
    }
);

/// A process.
#[derive(Clone, Debug, PartialEq)]
pub struct Process {
    pub id: ProcessId,
    pub definition_key: String,
    pub business_key: String,
    pub state: ProcessState,
    pub engine_instance_id: Option<String>,
    pub started_by: String,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
}

/// What can go wrong, in the terms the API maps to codes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("process not found")]
    NotFound,
    /// The caller may not do this (see `rules`), in words it reads as they are.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("process definition {0:?} not found")]
    DefinitionNotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("the engine refused the start: {0}")]
    Refused(String),
    #[error("{0}")]
    NotActive(String),
    /// The engine refused to end the process (a listener of the model fails on
    /// ending it): why, in words for the person who asked.
    #[error("{0}")]
    CannotCancel(String),
    /// Try again later, in words the caller reads as they are.
    #[error("{0}")]
    Unavailable(String),
    /// The engine could not be reached, or did not answer in time.
    #[error("the process engine is unavailable: {0}")]
    EngineUnavailable(CamundaError),
    #[error("invalid page token")]
    InvalidPageToken,
    #[error("engine: {0}")]
    Engine(CamundaError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CamundaError> for ProcessError {
    fn from(error: CamundaError) -> Self {
        if error.is_transient() {
            Self::EngineUnavailable(error)
        } else {
            Self::Engine(error)
        }
    }
}

impl From<WithdrawalError> for ProcessError {
    fn from(error: WithdrawalError) -> Self {
        match error {
            WithdrawalError::Store(error) => Self::Store(error),
            WithdrawalError::Camunda(error) => error.into(),
        }
    }
}

/// Start a process of `definition_key` for `business_key`.
#[derive(Debug)]
pub struct StartProcess {
    pub definition_key: String,
    pub business_key: Email,
    pub variables: Map<String, Value>,
    /// The client's id for this start: a repeat returns the process it started.
    pub request_id: Option<String>,
}

/// A page of processes, filtered.
#[derive(Debug)]
pub struct ListProcesses {
    pub business_key: Option<Email>,
    pub definition_key: Option<String>,
    pub states: Vec<ProcessState>,
    pub page_size: usize,
    pub page_token: Option<String>,
}

/// Cancel a running process, saying why (or not: `reason` may be empty).
#[derive(Debug)]
pub struct CancelProcess {
    pub id: ProcessId,
    pub reason: String,
}

/// The logic of ProcessService.
#[derive(Clone)]
pub struct Processes {
    store: Store,
    camunda: Camunda,
    withdrawals: Withdrawals,
    definitions: Definitions,
    policy: StartPolicy,
}

impl Processes {
    /// Processes that only admins may start, until [`Processes::with_startable`]
    /// says which users may.
    pub fn new(store: Store, camunda: Camunda, withdrawals: Withdrawals) -> Self {
        Self {
            store,
            definitions: Definitions::new(camunda.clone()),
            camunda,
            withdrawals,
            policy: StartPolicy::default(),
        }
    }

    /// The definitions users may start (admins may start any), described by
    /// `definitions`.
    pub fn with_startable(self, definitions: Definitions, startable: Vec<String>) -> Self {
        Self {
            definitions,
            policy: StartPolicy::new(startable),
            ..self
        }
    }

    /// The definitions `caller` may start, as people choose them.
    pub async fn startable(&self, caller: &Caller) -> Result<Vec<Startable>, ProcessError> {
        let allowed = self.policy.startable_by(caller);
        Ok(self.definitions.startable(allowed).await?)
    }

    /// Starts a process, if `caller` may (see [`StartPolicy::may_start`]).
    pub async fn start(
        &self,
        caller: &Caller,
        request: StartProcess,
    ) -> Result<Process, ProcessError> {
        self.policy.may_start(caller, &request)?;
        if let Some(request_id) = &request.request_id
            && let Some(earlier) = rows::by_request(
                &self.store.client().await?,
                caller.email.as_str(),
                request_id,
            )
            .await?
        {
            return Ok(earlier);
        }
        // The definition must exist, and the engine must answer, before anything is
        // reserved.
        self.camunda
            .latest_definition(&request.definition_key)
            .await
            .map_err(|e| match e {
                CamundaError::NotFound(_) => {
                    ProcessError::DefinitionNotFound(request.definition_key.clone())
                }
                other => other.into(),
            })?;
        let business_key = request.business_key.as_str();
        self.refuse_if_running_in_engine(business_key).await?;

        let variables = Value::Object(request.variables.clone());
        let new = NewProcess {
            id: ProcessId::new(),
            definition_key: &request.definition_key,
            business_key,
            started_by: caller.email.as_str(),
            request_id: request.request_id.as_deref(),
            variables: &variables,
        };
        // No database connection is held across an engine call: each is taken for
        // one statement.
        let reservation = rows::reserve(&self.store.client().await?, &new).await;
        let reserved = match reservation {
            Ok(row) => row,
            Err(ReserveError::KeyTaken) => {
                // The key may be held by a process that ended in the engine and that
                // reconciliation has not caught up with: check it directly, once.
                if !self.settle_holder(business_key).await? {
                    return Err(already_exists(business_key));
                }
                rows::reserve(&self.store.client().await?, &new)
                    .await
                    .map_err(|e| self.reserve_failed(e, business_key))?
            }
            Err(ReserveError::RequestSeen) => {
                let earlier = rows::by_request(
                    &self.store.client().await?,
                    caller.email.as_str(),
                    new.request_id.unwrap_or_default(),
                )
                .await?
                .ok_or(ProcessError::NotFound)?;
                return Ok(earlier);
            }
            Err(ReserveError::Store(error)) => return Err(error.into()),
        };

        let mut variables = typed(&request.variables);
        variables.extend(typed(&Map::from_iter([(
            PROCESS_TAG.to_owned(),
            Value::String(reserved.id.to_string()),
        )])));
        let started = self
            .camunda
            .start_process(&request.definition_key, business_key, &variables)
            .await;
        let client = self.store.client().await?;
        match started {
            Ok(instance) => match rows::activate(&client, reserved.id, &instance.id).await? {
                Some(row) => Ok(row),
                // Reconciliation settled the start meanwhile (this replica was slow or
                // frozen past the grace period).
                None => match rows::get(&client, reserved.id).await? {
                    Some(row)
                        if row.engine_instance_id.as_deref() == Some(instance.id.as_str()) =>
                    {
                        Ok(row)
                    }
                    settled => {
                        // It released the key (the engine showed no instance yet) or
                        // adopted another: this instance is one too many. Remove it, so
                        // the key keeps one process.
                        tracing::warn!(
                            process = %reserved.id,
                            instance = %instance.id,
                            "a start settled elsewhere while the engine answered: removing the extra instance"
                        );
                        self.camunda
                            .delete_process_instance(&instance.id, true)
                            .await?;
                        match settled {
                            Some(row) => Ok(row),
                            None => Err(ProcessError::Unavailable(
                                "the start took too long and was given up: try again".into(),
                            )),
                        }
                    }
                },
            },
            Err(error) if error.outcome_unknown() => {
                // The instance may or may not exist (no answer in time, or a proxy
                // answered 502/503/504 for it): the reservation stays until
                // reconciliation finds out.
                let detail = error.to_string();
                tracing::warn!(process = %reserved.id, %detail, "start outcome unknown; reconciliation will settle it");
                Err(ProcessError::Unavailable(
                    "the process engine did not answer in time; whether the process started is being checked: \
                     try again shortly"
                        .into(),
                ))
            }
            Err(error) => {
                // The engine definitely did not start it: free the key.
                rows::release(&client, reserved.id).await?;
                Err(match error {
                    CamundaError::NotFound(_) => {
                        ProcessError::DefinitionNotFound(request.definition_key)
                    }
                    CamundaError::BadRequest { message, .. } => ProcessError::Refused(message),
                    other => other.into(),
                })
            }
        }
    }

    fn reserve_failed(&self, error: ReserveError, business_key: &str) -> ProcessError {
        match error {
            ReserveError::KeyTaken | ReserveError::RequestSeen => already_exists(business_key),
            ReserveError::Store(error) => error.into(),
        }
    }

    /// A root instance with this business key that runs in the engine, started by
    /// ramp or not, blocks the key.
    async fn refuse_if_running_in_engine(&self, business_key: &str) -> Result<(), ProcessError> {
        let query = ProcessInstanceQuery {
            business_key: Some(business_key.to_owned()),
            root_process_instances: true,
            ..Default::default()
        };
        let running = self.camunda.process_instances(&query).await?;
        if running.iter().any(|p| !p.ended) {
            return Err(already_exists(business_key));
        }
        Ok(())
    }

    /// Looks at the process holding `business_key` in the engine; if it ended there,
    /// records that and says the key is free.
    async fn settle_holder(&self, business_key: &str) -> Result<bool, ProcessError> {
        let Some(holder) = rows::holding(&self.store.client().await?, business_key).await? else {
            return Ok(true);
        };
        let Some(instance) = &holder.engine_instance_id else {
            return Ok(false); // still starting: its outcome is being checked
        };
        let history = match self.camunda.historic_process_instance(instance).await {
            Ok(history) => history,
            Err(CamundaError::NotFound(_)) => return Ok(false),
            Err(error) => return Err(error.into()),
        };
        match reconcile::ended_state(&history.state) {
            Some((state, reason)) => {
                let ended_at = history
                    .end_time
                    .as_deref()
                    .and_then(crate::camunda::parse_engine_time)
                    .unwrap_or_else(Utc::now);
                rows::end(
                    &self.store.client().await?,
                    holder.id,
                    state.as_str(),
                    reason,
                    ended_at,
                )
                .await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// One process, if the caller may see it (see [`rules::may_see`]).
    pub async fn get(&self, caller: &Caller, id: ProcessId) -> Result<Process, ProcessError> {
        let client = self.store.client().await?;
        let row = rows::get(&client, id)
            .await?
            .ok_or(ProcessError::NotFound)?;
        visible(caller, row)
    }

    /// A page of the processes `caller` may see (see [`rules::listed_business_key`]).
    pub async fn list(
        &self,
        caller: &Caller,
        request: ListProcesses,
    ) -> Result<(Vec<Process>, Option<String>), ProcessError> {
        let business_key =
            rules::listed_business_key(caller, &request)?.map(|key| key.as_str().to_owned());
        let states: Vec<String> = request
            .states
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        let filter = format!("{business_key:?}|{:?}|{states:?}", request.definition_key);
        let page = Page::new(filter, request.page_size, request.page_token.as_deref())
            .ok_or(ProcessError::InvalidPageToken)?;
        let client = self.store.client().await?;
        let mut found = rows::list(
            &client,
            &ListQuery {
                business_key: business_key.as_deref(),
                definition_key: request.definition_key.as_deref(),
                states: &states,
                after: page.after(),
                limit: page.limit(),
            },
        )
        .await?;
        let next = page.finish(&mut found, |process| {
            (process.created_at, *process.id.as_uuid())
        });
        Ok((found, next))
    }

    /// Deletes the instance's whole tree in the engine (skipping output mappings,
    /// running listeners), again after a short pause when the delete collided with
    /// another change of the instance made at the same moment.
    async fn delete_in_engine(&self, instance: &str) -> Result<(), CamundaError> {
        let mut pause = DELETE_PAUSE;
        for _ in 1..DELETE_TRIES {
            match self.camunda.delete_process_instance(instance, false).await {
                Err(error) if collided(&error) => {
                    tracing::info!(%instance, %error, "the delete collided with another change; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => return other,
            }
        }
        self.camunda.delete_process_instance(instance, false).await
    }

    /// Cancels a running process: deletes the engine instance, then records it.
    pub async fn cancel(
        &self,
        caller: &Caller,
        command: CancelProcess,
    ) -> Result<Process, ProcessError> {
        let CancelProcess { id, reason } = command;
        let client = self.store.client().await?;
        let row = rows::get(&client, id)
            .await?
            .ok_or(ProcessError::NotFound)?;
        let process = visible(caller, row)?;
        let instance = match (process.state, &process.engine_instance_id) {
            (ProcessState::Active, Some(instance)) => instance.clone(),
            (ProcessState::Starting, _) => {
                return Err(ProcessError::NotActive(
                    "the process is still starting; try again shortly".into(),
                ));
            }
            _ => {
                return Err(ProcessError::NotActive(format!(
                    "the process is {} and cannot be cancelled",
                    process.state.as_str()
                )));
            }
        };
        drop(client);
        // The whole tree goes, without output mappings (they would read answers not
        // given yet); the model's listeners run, as ending the process may be meant
        // to do something.
        if let Err(error) = self.delete_in_engine(&instance).await {
            return Err(match error {
                CamundaError::Engine { .. } | CamundaError::BadRequest { .. } => {
                    tracing::warn!(process = %id, %error, "the engine refused to delete the process");
                    cancel_refused(&error)
                }
                other => other.into(),
            });
        }
        let reason = if reason.is_empty() {
            format!("cancelled by {}", caller.email)
        } else {
            format!("cancelled by {}: {reason}", caller.email)
        };
        let ended = rows::end(
            &self.store.client().await?,
            id,
            ProcessState::Cancelled.as_str(),
            &reason,
            Utc::now(),
        )
        .await?;
        // Its forms (called processes' included) can no longer be answered. Should
        // this fail, reconciliation withdraws them once it sees the instances ended.
        if let Err(error) = self
            .withdrawals
            .tree_ended(&instance, "the process was cancelled")
            .await
        {
            tracing::warn!(%error, process = %id, "withdrawing the forms of a cancelled process failed");
        }
        match ended {
            Some(row) => Ok(row),
            // It ended in the engine just before: report how it stands now.
            None => Ok(rows::get(&self.store.client().await?, id)
                .await?
                .ok_or(ProcessError::NotFound)?),
        }
    }
}

/// `process`, if `caller` may see it; NOT_FOUND otherwise.
fn visible(caller: &Caller, process: Process) -> Result<Process, ProcessError> {
    if rules::may_see(caller, &process.business_key) {
        Ok(process)
    } else {
        Err(ProcessError::NotFound)
    }
}

/// Why the engine would not delete a process, in words: the raw answer (URL-free but
/// full of ids and class names) stays in the server log. Measured against Camunda
/// 7.24: a delete that runs a listener reading an unknown name answers HTTP 500
/// "Unknown property used in expression: ${notifier.ended(execution)}. Cause: Cannot
/// resolve identifier 'notifier'"; other listener failures answer 500 with the
/// expression's or script's error. A persistence failure may pass: try again.
/// How often a delete that collided with another change of the instance is tried in
/// all, and the pause before the second try (doubled each time).
const DELETE_TRIES: u32 = 4;
const DELETE_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether a failed delete collided with another change of the same instance made
/// at the same moment (a worker completing its send task, a timer firing, an answer
/// arriving): the engine's optimistic locking, or its persistence layer failing on a
/// row the other change wrote or removed. Trying again then succeeds.
fn collided(error: &CamundaError) -> bool {
    match error {
        CamundaError::Conflict(_) => true,
        CamundaError::Engine { message, code, .. } => {
            message.contains("persistence layer") || matches!(code, Some(1 | 10000 | 10001))
        }
        _ => false,
    }
}

fn cancel_refused(error: &CamundaError) -> ProcessError {
    let message = match error {
        CamundaError::Engine { message, .. } | CamundaError::BadRequest { message, .. } => {
            message.as_str()
        }
        _ => "",
    };
    if message.contains("persistence layer") {
        return ProcessError::Unavailable(
            "the process engine could not cancel the process just now; try again".into(),
        );
    }
    let why = if message.contains("Unknown property used in expression") {
        match unknown_identifier(message) {
            Some(name) => format!(
                "ending it runs a step of the model that needs `{name}`, which the process does not have"
            ),
            None => {
                "ending it runs a step of the model that needs a value the process does not have"
                    .into()
            }
        }
    } else if ["expression", "script", "Cannot coerce"]
        .iter()
        .any(|text| message.contains(text))
    {
        "a listener of the model fails when the process ends".into()
    } else {
        "the process engine refused to end it".into()
    };
    ProcessError::CannotCancel(format!(
        "the process cannot be cancelled: {why}; an administrator can end it in the process engine"
    ))
}

/// `notifier` from "... Cause: Cannot resolve identifier 'notifier'", when it reads
/// as a name.
fn unknown_identifier(message: &str) -> Option<&str> {
    let name = message
        .split("Cannot resolve identifier '")
        .nth(1)?
        .split('\'')
        .next()?;
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    plain.then_some(name)
}

fn already_exists(business_key: &str) -> ProcessError {
    ProcessError::AlreadyExists(format!("a process for {business_key} is already running"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_with(body: &str) -> String {
        match cancel_refused(&CamundaError::from_response(500, body)) {
            ProcessError::CannotCancel(why) => why,
            other => panic!("expected CannotCancel, got {other:?}"),
        }
    }

    #[test]
    fn a_refused_delete_is_told_in_words_without_the_engine_text() {
        // Camunda 7.24's answer to deleting an instance whose end listener calls a
        // bean the engine does not have.
        let why = refused_with(
            r#"{"type":"ProcessEngineException","message":"Unknown property used in expression: ${notifier.requestEnded(execution)}. Cause: Cannot resolve identifier 'notifier'","code":0}"#,
        );
        assert_eq!(
            why,
            "the process cannot be cancelled: ending it runs a step of the model that needs \
             `notifier`, which the process does not have; an administrator can end it in the \
             process engine"
        );
        let why = refused_with(
            r#"{"type":"ScriptEvaluationException","message":"Unable to evaluate script while executing activity 'end': ReferenceError","code":0}"#,
        );
        assert!(why.contains("a listener of the model fails"), "{why}");
        let why = refused_with(
            r#"{"type":"ProcessEngineException","message":"ENGINE-03005 odd","code":0}"#,
        );
        assert!(
            why.contains("the process engine refused to end it"),
            "{why}"
        );
        assert!(!why.contains("ENGINE"), "{why}");

        // The engine's database failing may pass.
        assert!(matches!(
            cancel_refused(&CamundaError::from_response(
                500,
                r#"{"type":"ProcessEngineException","message":"An exception occurred in the persistence layer. Please check the server logs for a detailed message and the entire exception stack trace.","code":0}"#
            )),
            ProcessError::Unavailable(_)
        ));
    }
}
