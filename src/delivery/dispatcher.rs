//! The dispatcher: claims due messages of the outbox and delivers each, recording
//! its outcome.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use chrono::{SubsecRound, Utc};

use super::{Claimed, Outcome};
use crate::camunda::types::ActivityInstance;
use crate::camunda::{Camunda, CamundaError, typed};
use crate::forms::{ChangeHub, ChangeKind, FormSummary};
use crate::store::Store;
use crate::store::deliveries as rows;

/// The variable that carries the submission id with the data.
pub const MARKER: &str = "rampSubmissionId";

#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// How often due rows are looked for without a wake-up.
    pub poll: Duration,
    /// How long a claim holds a row; longer than an engine call can take.
    pub lease: Duration,
    /// Attempts after which an error ramp does not understand fails the row.
    pub max_attempts: i32,
    /// Rows claimed per pass.
    pub batch: i64,
    /// How long after its submission an answer may still be retried; then it is
    /// `failed`, for an operator to look at.
    pub give_up_after: Duration,
    /// The longest wait between two attempts.
    pub backoff_cap: Duration,
    /// How long after an attempt whose outcome is unknown the next one comes: time
    /// for the engine to finish what it may still be doing with it (a slow service
    /// task after the receive task holds its transaction open past the caller's
    /// timeout), so that the marker check finds it committed.
    pub settle: Duration,
}

#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    camunda: Camunda,
    settings: DeliverySettings,
    owner: Uuid,
    wake: Arc<Notify>,
    metrics: Option<crate::metrics::Metrics>,
    hub: Option<ChangeHub>,
}

impl Dispatcher {
    pub fn new(store: Store, camunda: Camunda, settings: DeliverySettings) -> Self {
        Self {
            store,
            camunda,
            settings,
            owner: Uuid::now_v7(),
            wake: Arc::new(Notify::new()),
            metrics: None,
            hub: None,
        }
    }

    /// Counts delivery outcomes in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Tells `hub` when a returned form is pending again, so streams show it at once.
    pub fn with_hub(mut self, hub: ChangeHub) -> Self {
        self.hub = Some(hub);
        self
    }

    /// Asks for a pass now (after a submission on this replica).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
            loop {
                match self.pass().await {
                    Ok(claimed) if claimed as i64 == self.settings.batch => continue,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, "delivery pass failed");
                        break;
                    }
                }
            }
        }
    }

    /// Claims due rows and delivers them, each outcome recorded as soon as its
    /// attempt ends (not after the slowest of the batch); returns how many were
    /// claimed.
    pub async fn pass(&self) -> Result<usize, crate::store::StoreError> {
        let claimed = rows::claim(
            &self.store.client().await?,
            self.owner,
            self.settings.lease,
            self.settings.batch,
        )
        .await?;
        let count = claimed.len();
        // Every call of an attempt ends within the lease, so its outcome is recorded
        // by the claim that made it: an attempt still busy when its budget is spent
        // is abandoned as uncertain (a trigger may be on its way).
        let budget = self.settings.lease.mul_f64(0.75);
        let attempts = claimed.into_iter().map(|row| async move {
            let outcome = match tokio::time::timeout(budget, self.deliver(&row)).await {
                Ok(outcome) => outcome,
                Err(_) => self.retry(
                    &row,
                    Why::EngineSlow,
                    format!("the attempt took longer than {budget:?}: its outcome is unknown"),
                    true,
                ),
            };
            self.record(&row, outcome).await
        });
        let mut first_error = None;
        for result in futures::future::join_all(attempts).await {
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(count),
        }
    }

    async fn record(
        &self,
        row: &Claimed,
        outcome: Outcome,
    ) -> Result<(), crate::store::StoreError> {
        match &outcome {
            Outcome::Delivered => tracing::info!(submission = %row.id, "delivered"),
            Outcome::Retry { error, .. } => {
                tracing::info!(submission = %row.id, %error, attempts = row.attempts, "delivery retried")
            }
            Outcome::Undeliverable { error, .. } => {
                tracing::warn!(submission = %row.id, %error, "undeliverable")
            }
            Outcome::Failed { error, .. } => {
                tracing::error!(submission = %row.id, %error, "delivery failed")
            }
            Outcome::Refused { reason, error } => {
                tracing::warn!(submission = %row.id, %reason, %error, "refused by the process: the form goes back to its author")
            }
        }
        let recorded = match &outcome {
            Outcome::Refused { reason, error } => self.give_back(row, reason, error).await?,
            _ => {
                rows::record(
                    &self.store.client().await?,
                    row.id,
                    row.lease_generation,
                    &outcome,
                )
                .await?
            }
        };
        if !recorded {
            // The lease ran out and another replica owns the row now.
            tracing::warn!(submission = %row.id, "lease lost; the newer owner's outcome stands");
        }
        if let Some(metrics) = &self.metrics {
            metrics.delivery(match (&outcome, recorded) {
                (_, false) => "lease_lost",
                (Outcome::Delivered, _) => "delivered",
                (Outcome::Retry { .. }, _) => "retry",
                (Outcome::Undeliverable { .. }, _) => "undeliverable",
                (Outcome::Failed { .. }, _) => "failed",
                (Outcome::Refused { .. }, _) => "refused",
            });
        }
        Ok(())
    }

    /// Records a refusal and makes the form pending again for its author, with the
    /// answer as its draft, the reason, and an `added` change for their streams: one
    /// transaction. False when the claim lost the row.
    async fn give_back(
        &self,
        row: &Claimed,
        reason: &str,
        error: &str,
    ) -> Result<bool, crate::store::StoreError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        let at = Utc::now().trunc_subsecs(6);
        let Some(returned) =
            rows::return_form(&tx, row.id, row.lease_generation, reason, error, at).await?
        else {
            tx.rollback().await?;
            return Ok(false);
        };
        if let Some(form) = &returned {
            // Under each key of its audience: its author's email, or `user:<id>`.
            crate::store::user_tasks::append_changes(
                &tx,
                form.id,
                &form.audience(),
                ChangeKind::Added,
                &FormSummary::of(form).to_json(),
            )
            .await?;
        }
        tx.commit().await?;
        if returned.is_some()
            && let Some(hub) = &self.hub
        {
            hub.changed();
        }
        Ok(true)
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let millis = 250u64.saturating_mul(1 << attempts.clamp(0, 16));
        Duration::from_millis(millis).min(self.settings.backoff_cap)
    }

    /// Another attempt later, unless the answer has waited longer than allowed or
    /// the attempts for an error ramp does not understand ran out: then `failed`.
    ///
    /// `uncertain`: this attempt may have reached the engine (a timeout, a broken
    /// connection, a 502/503/504). Then the next one comes only after `settle`, and
    /// it, and every one after it until the answer is seen delivered, checks the
    /// marker before sending anything: an uncertain attempt stays uncertain whatever
    /// later attempts meet (a conflict or a subscription gone is what an attempt
    /// meets while the uncertain one commits).
    fn retry(&self, row: &Claimed, why: Why, error: String, uncertain: bool) -> Outcome {
        let counts = matches!(why, Why::EngineError);
        if row.age >= self.settings.give_up_after
            || (counts && row.attempts >= self.settings.max_attempts)
        {
            return Outcome::Failed {
                reason: format!("not delivered: {}", why.words()),
                error: format!("after {} attempts: {error}", row.attempts),
            };
        }
        let after = if uncertain {
            self.settings.settle
        } else {
            self.backoff(row.attempts)
        };
        Outcome::Retry {
            after,
            reason: format!("not yet delivered: {}", why.words()),
            error,
            uncertain: uncertain || row.uncertain,
        }
    }

    async fn deliver(&self, row: &Claimed) -> Outcome {
        if let Some(task) = &row.engine_task_id {
            return self.complete(row, task).await;
        }
        let instance = &row.process_instance_id;
        let message = &row.message_name;
        if let Some(outcome) = self.check_last_attempt(row).await {
            return outcome;
        }
        let waiting = match self.camunda.executions_waiting_for(instance, message).await {
            Ok(waiting) => waiting,
            Err(error) => return self.retry(row, Why::of(&error), error.to_string(), false),
        };
        if waiting.is_empty() {
            return self.nothing_waits(row).await;
        }
        let target = match self.target(row, &waiting).await {
            Ok(Some(target)) => target,
            Ok(None) => {
                // Another branch waits, not this form's (yet): its send task has not
                // finished, or its receive task is not reached.
                return self.retry(
                    row,
                    Why::NotWaitingYet,
                    format!(
                        "{} executions wait for {message}, none in the send task's own branch",
                        waiting.len()
                    ),
                    false,
                );
            }
            Err(error) => return self.retry(row, Why::of(&error), error.to_string(), false),
        };
        let mut data: Map<String, Value> = row.variables.as_object().cloned().unwrap_or_default();
        data.insert(MARKER.into(), Value::String(row.id.to_string()));
        match self
            .camunda
            .trigger_message(&target, message, &typed(&data))
            .await
        {
            Ok(()) => Outcome::Delivered,
            Err(error) => self.not_taken(row, error),
        }
    }

    /// For an attempt after one whose outcome is unknown: `Delivered` when that one
    /// landed (its marker is in the instance), a retry when that cannot be told
    /// now, `None` when nothing landed and the answer is to be sent.
    async fn check_last_attempt(&self, row: &Claimed) -> Option<Outcome> {
        if !row.uncertain {
            return None;
        }
        // The last attempt may have landed: never send again if it did.
        match self.landed(row).await {
            Ok(true) => Some(Outcome::Delivered),
            Ok(false) => None,
            Err(error) => Some(self.retry(
                row,
                Why::of(&error),
                format!("checking the last attempt: {error}"),
                true,
            )),
        }
    }

    /// What an engine error to a delivery (a trigger, a completion) makes of it:
    /// refused, when the engine will never take the answer as it is; else retried,
    /// checked first when the attempt may have landed.
    fn not_taken(&self, row: &Claimed, error: CamundaError) -> Outcome {
        match refusal(&error) {
            Some(reason) => Outcome::Refused {
                reason,
                error: error.to_string(),
            },
            None => self.retry(
                row,
                Why::of(&error),
                error.to_string(),
                error.outcome_unknown(),
            ),
        }
    }

    /// Delivers the answer to a user task by completing the engine's task with it,
    /// the marker among its variables. The task is there until it is completed, so
    /// nothing is waited for: it takes the answer, or it refuses it as a message
    /// trigger would (the same classifier; the completion rolls back whole and the
    /// task stays open and assigned, so the author can answer again), or it is gone.
    async fn complete(&self, row: &Claimed, task: &str) -> Outcome {
        if let Some(outcome) = self.check_last_attempt(row).await {
            return outcome;
        }
        let mut data: Map<String, Value> = row.variables.as_object().cloned().unwrap_or_default();
        data.insert(MARKER.into(), Value::String(row.id.to_string()));
        match self.camunda.complete_task(task, &typed(&data)).await {
            Ok(()) => Outcome::Delivered,
            Err(CamundaError::NotFound(_)) => self.task_gone(row, task).await,
            Err(error) => self.not_taken(row, error),
        }
    }

    /// The user task is no longer in the engine. Our own completion may be why (an
    /// earlier attempt that timed out, or whose replica died mid-call, landed):
    /// then the marker is in the instance's history and the answer is delivered.
    /// Otherwise the engine's history says who ended it: someone else completed it
    /// (in Tasklist, say), or the process deleted it. Either way nothing can take
    /// this answer any more; it is kept.
    async fn task_gone(&self, row: &Claimed, task: &str) -> Outcome {
        match self.landed(row).await {
            Ok(true) => return Outcome::Delivered,
            Ok(false) => {}
            Err(error) => {
                return self.retry(
                    row,
                    Why::of(&error),
                    format!("checking whether this answer completed the task: {error}"),
                    row.uncertain,
                );
            }
        }
        match self.camunda.historic_task(task).await {
            // Still open by history's account: the engine's answer was not the
            // last word (read again).
            Ok(Some(history)) if history.end_time.is_none() => self.retry(
                row,
                Why::EngineError,
                format!("the engine said its task {task} is gone, but its history has it open"),
                row.uncertain,
            ),
            Ok(Some(history)) if history.completed() => Outcome::Undeliverable {
                reason: Why::CompletedElsewhere.words().into(),
                error: format!("the engine's task {task} was completed without this answer"),
            },
            Ok(history) => Outcome::Undeliverable {
                reason: Why::TaskDeleted.words().into(),
                error: match history {
                    Some(_) => format!("the engine's task {task} was deleted"),
                    None => format!("the engine keeps no task {task}"),
                },
            },
            Err(error) => self.retry(row, Why::of(&error), error.to_string(), row.uncertain),
        }
    }

    /// No execution waits for the message: wait while something can still come to
    /// wait for it; otherwise the process has ended (undeliverable) or moved on
    /// without it (refused: the author learns that the process no longer needs it).
    async fn nothing_waits(&self, row: &Claimed) -> Outcome {
        let instance = &row.process_instance_id;
        match self.camunda.historic_process_instance(instance).await {
            Ok(history) if matches!(history.state.as_str(), "ACTIVE" | "SUSPENDED") => {}
            Ok(history) => {
                return Outcome::Undeliverable {
                    reason: Why::Ended.words().into(),
                    error: format!("the process instance ended ({})", history.state),
                };
            }
            Err(CamundaError::NotFound(_)) => {
                return Outcome::Undeliverable {
                    reason: Why::Ended.words().into(),
                    error: "the process instance no longer exists".into(),
                };
            }
            Err(error) => return self.retry(row, Why::of(&error), error.to_string(), false),
        }
        match self.camunda.activity_instances(instance).await {
            Ok(tree) if may_still_wait(&tree, row.activity_instance_id.as_deref()) => {
                // The user was faster than the worker or the engine: wait.
                self.retry(
                    row,
                    Why::NotWaitingYet,
                    "no execution waits for the message yet".into(),
                    false,
                )
            }
            Ok(tree) => {
                // The process may have reached the receive task between the first
                // look and the tree (the worker completed the send task): what
                // waits now, after the tree was read, settles it.
                match self
                    .camunda
                    .executions_waiting_for(instance, &row.message_name)
                    .await
                {
                    Ok(waiting) if waiting.is_empty() => Outcome::Refused {
                        reason:
                            "the process no longer waits for this answer: it moved on without it"
                                .into(),
                        error: format!(
                            "nothing waits for {} and nothing is on its way there; active: {}",
                            row.message_name,
                            active_activities(&tree).join(", ")
                        ),
                    },
                    Ok(_) => Outcome::Retry {
                        after: Duration::ZERO,
                        reason: format!("not yet delivered: {}", Why::NotWaitingYet.words()),
                        error: "the receive task began to wait meanwhile".into(),
                        uncertain: row.uncertain,
                    },
                    Err(error) => self.retry(row, Why::of(&error), error.to_string(), false),
                }
            }
            // Ended between the two calls: the next attempt says so.
            Err(CamundaError::NotFound(error)) => self.retry(row, Why::NotWaitingYet, error, false),
            Err(error) => self.retry(row, Why::of(&error), error.to_string(), false),
        }
    }

    /// The waiting execution that belongs to the form: the one in the send task's
    /// own scope (under the same parent activity instance: the branch of a parallel
    /// multi-instance, the embedded sub-process). Where that scope has ended (the
    /// receive task waits outside it), the only waiting one. In a multi-instance, a
    /// single waiting execution is not taken blindly: it may be another branch's,
    /// whose user answered first. `None` when none is the form's yet.
    async fn target(
        &self,
        row: &Claimed,
        waiting: &[crate::camunda::types::Execution],
    ) -> Result<Option<String>, CamundaError> {
        let tree = self
            .camunda
            .activity_instances(&row.process_instance_id)
            .await?;
        let nodes = tree.walk();
        let multi_instance = nodes
            .iter()
            .any(|node| node.activity_type.as_deref() == Some("multiInstanceBody"));
        let only = (waiting.len() == 1).then(|| waiting[0].id.clone());
        if only.is_some() && !multi_instance {
            return Ok(only);
        }
        let Some(send) = &row.activity_instance_id else {
            // A form made without its send task's activity instance: nothing tells
            // the branches apart.
            return Ok(only);
        };
        let Some(scope) = self
            .camunda
            .historic_activity_instance(send)
            .await?
            .parent_activity_instance_id
        else {
            return Ok(only);
        };
        for node in &nodes {
            if node.parent_activity_instance_id.as_deref() == Some(scope.as_str())
                && let Some(execution) = node
                    .execution_ids
                    .iter()
                    .find(|e| waiting.iter().any(|w| &w.id == *e))
            {
                return Ok(Some(execution.clone()));
            }
        }
        let scope_ended = !nodes.iter().any(|node| node.id == scope);
        Ok(only.filter(|_| scope_ended))
    }

    /// Whether the marker of this submission reached the instance.
    async fn landed(&self, row: &Claimed) -> Result<bool, CamundaError> {
        let id = row.id.to_string();
        let updates = self
            .camunda
            .variable_updates(&row.process_instance_id, MARKER)
            .await?;
        Ok(updates
            .iter()
            .any(|value| value.as_str() == Some(id.as_str())))
    }
}

/// Why an answer is not delivered yet, as its author reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Why {
    /// The engine could not be reached, or a proxy in front of it failed.
    EngineUnavailable,
    /// The engine took too long: whether it took the answer is being checked.
    EngineSlow,
    /// The process is busy with another change at this moment.
    Busy,
    /// The process instance is suspended (in Cockpit, say): nothing in it moves
    /// until someone activates it.
    Suspended,
    /// Nothing waits for the answer yet, but something is on its way there.
    NotWaitingYet,
    /// An engine error ramp does not understand (retried a bounded number of times).
    EngineError,
    /// The process ended.
    Ended,
    /// Someone completed the user task in the engine without this answer.
    CompletedElsewhere,
    /// The process deleted the user task (the instance was cancelled, an event
    /// interrupted the task).
    TaskDeleted,
}

impl Why {
    fn of(error: &CamundaError) -> Self {
        match error {
            CamundaError::Unavailable(_) | CamundaError::Gateway { .. } => Self::EngineUnavailable,
            CamundaError::Timeout(_) => Self::EngineSlow,
            CamundaError::Conflict(_) => Self::Busy,
            // The subscription went (it was consumed, or the execution moved): look
            // again.
            CamundaError::NotFound(_) => Self::NotWaitingYet,
            CamundaError::Engine { message, .. } if no_subscription(message) => Self::NotWaitingYet,
            CamundaError::Engine { message, .. } if suspended(message) => Self::Suspended,
            _ => Self::EngineError,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Self::EngineUnavailable => "the process engine is unavailable",
            Self::EngineSlow => "the process engine is slow to answer",
            Self::Busy => "the process was busy with another change",
            Self::Suspended => "the process is suspended in the process engine",
            Self::NotWaitingYet => "the process is not ready for this answer yet",
            Self::EngineError => "the process engine reported an error",
            Self::Ended => "the process has ended, so this answer can no longer be used",
            Self::CompletedElsewhere => {
                "someone completed this task in the process engine before your answer arrived"
            }
            Self::TaskDeleted => "the process no longer needs it",
        }
    }
}

/// "Execution with id 'E' does not have a subscription to a message event with name
/// 'M'" (HTTP 500, measured on 7.24): the execution no longer waits, another change
/// consumed or moved it. Retried: the next attempt looks for the waiting one again.
fn no_subscription(message: &str) -> bool {
    message.contains("does not have a subscription")
}

/// "Cannot complete task T: ENGINE-03043 task with id 'T' is suspended." (HTTP 500,
/// measured on 7.24): its process instance is suspended. Retried without counting
/// an attempt: it goes through once the instance is activated.
fn suspended(message: &str) -> bool {
    message.contains("is suspended")
}

/// Whether the engine will never take this answer as it is, and why, in words for
/// its author. Decided from the engine's answer alone, each case measured against
/// Camunda 7.24 on PostgreSQL (the message triggered is rolled back whole, so the
/// same answer fails the same way every time):
/// - HTTP 500 "... Unknown property used in expression: ${approved == true}. Cause:
///   Cannot resolve identifier 'approved'": a gateway, listener or mapping after the
///   receive task reads a variable the answer lacks → it needs a value for it;
/// - HTTP 500 with other expression failures ("Error while evaluating expression",
///   "Cannot coerce", "ELException", a script error) → a condition of the process
///   cannot be evaluated with this answer;
/// - HTTP 500 with error code 10002 (the engine's code for a value too long for its
///   column; the outer message says only "An exception occurred in the persistence
///   layer") → a value is too long to store. Other persistence failures, without
///   that code, may be the engine's database failing: retried;
/// - HTTP 400 (InvalidRequestException: "Cannot convert value 'abc' of type
///   'Integer'...", a value the engine cannot read) → it cannot take these values.
///
/// Everything else (unreachable, slow, busy, a subscription gone) is retried.
fn refusal(error: &CamundaError) -> Option<String> {
    let refused = |why: String| Some(format!("the process could not use this answer: {why}"));
    match error {
        CamundaError::BadRequest { .. } => {
            refused("the process engine cannot take one of its values as it is".into())
        }
        CamundaError::Engine { message, code, .. } => {
            if no_subscription(message) {
                None
            } else if message.contains("Unknown property used in expression") {
                match missing_identifier(message) {
                    Some(name) => refused(format!("it needs a value for `{name}`")),
                    None => refused("it lacks a value the process needs".into()),
                }
            } else if *code == Some(10002) {
                refused("one of its values is too long for the process engine to store".into())
            } else if [
                "Error while evaluating expression",
                "Cannot coerce",
                "ELException",
            ]
            .iter()
            .any(|text| message.contains(text))
                || message.contains("Unable to evaluate script")
            {
                refused("a condition of the process cannot be evaluated with it".into())
            } else {
                None
            }
        }
        _ => None,
    }
}

/// `approved` from "... Cause: Cannot resolve identifier 'approved'", when it reads
/// as a variable name.
fn missing_identifier(message: &str) -> Option<&str> {
    let rest = message.split("Cannot resolve identifier '").nth(1)?;
    let name = rest.split('\'').next()?;
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-');
    plain.then_some(name)
}

/// Activities that wait on people or on messages from outside: a process that
/// holds only these will not move on by itself.
const WAITS_FROM_OUTSIDE: &[&str] = &[
    "userTask",
    "receiveTask",
    "intermediateMessageCatch",
    "messageStartEvent",
    "eventBasedGateway",
    "intermediateSignalCatch",
    "intermediateConditional",
];

/// Whether something may still come to wait for the answer: the send task is still
/// active (the worker has not finished it), an asynchronous continuation's job has
/// not run yet, or some activity is in motion (a service task, a timer, a called
/// process). A process that holds only user tasks and catch events elsewhere moved
/// on without this answer.
fn may_still_wait(tree: &ActivityInstance, send_task: Option<&str>) -> bool {
    tree.walk().into_iter().any(|node| {
        Some(node.id.as_str()) == send_task
            || !node.child_transition_instances.is_empty()
            || (node.child_activity_instances.is_empty()
                && node.parent_activity_instance_id.is_some()
                && !WAITS_FROM_OUTSIDE.contains(&node.activity_type.as_deref().unwrap_or("")))
    })
}

/// The active leaf activities, for the operator's view of a refusal.
fn active_activities(tree: &ActivityInstance) -> Vec<String> {
    tree.walk()
        .into_iter()
        .filter(|node| node.child_activity_instances.is_empty())
        .map(|node| node.activity_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(status: u16, body: &str) -> CamundaError {
        CamundaError::from_response(status, body)
    }

    #[test]
    fn a_gateway_reading_a_missing_variable_refuses_with_its_name() {
        let error = engine(
            500,
            r#"{"type":"RestException","message":"Cannot trigger message probe_m1 for execution aff54061-ef00-11f1-960c-02fc00000001: Unknown property used in expression: ${approved == true}. Cause: Cannot resolve identifier 'approved'","code":0}"#,
        );
        assert_eq!(
            refusal(&error).as_deref(),
            Some("the process could not use this answer: it needs a value for `approved`")
        );
    }

    #[test]
    fn a_value_too_long_to_store_refuses_but_other_persistence_failures_retry() {
        let too_long = engine(
            500,
            r#"{"type":"RestException","message":"Cannot trigger message m for execution e: An exception occurred in the persistence layer. Please check the server logs for a detailed message and the entire exception stack trace.","code":10002}"#,
        );
        assert!(refusal(&too_long).unwrap().contains("too long"));
        let other = engine(
            500,
            r#"{"type":"RestException","message":"Cannot trigger message m for execution e: An exception occurred in the persistence layer. Please check the server logs for a detailed message and the entire exception stack trace.","code":0}"#,
        );
        assert_eq!(refusal(&other), None);
        assert_eq!(Why::of(&other), Why::EngineError);
    }

    #[test]
    fn a_value_the_engine_cannot_read_refuses() {
        let error = engine(
            400,
            r#"{"type":"InvalidRequestException","message":"Cannot trigger message m for execution e: Cannot convert value 'abc' of type 'Integer' to java type java.lang.Integer","code":null}"#,
        );
        let reason = refusal(&error).unwrap();
        assert!(!reason.contains("java"), "{reason}");
    }

    #[test]
    fn other_expression_failures_refuse() {
        let error = engine(
            500,
            r#"{"type":"ProcessEngineException","message":"Error while evaluating expression: ${amount > 100}. Cause: Cannot coerce 'abc' to class java.lang.Long"}"#,
        );
        assert!(refusal(&error).unwrap().contains("condition"));
    }

    #[test]
    fn a_subscription_gone_is_looked_for_again() {
        let error = engine(
            500,
            r#"{"type":"RestException","message":"Cannot trigger message m for execution e: Execution with id 'e' does not have a subscription to a message event with name 'm': eventSubscriptions is empty","code":0}"#,
        );
        assert_eq!(refusal(&error), None);
        assert_eq!(Why::of(&error), Why::NotWaitingYet);
    }

    #[test]
    fn unreachable_slow_busy_and_proxies_are_retried_and_proxies_checked_first() {
        for (error, why) in [
            (
                CamundaError::Unavailable("refused".into()),
                Why::EngineUnavailable,
            ),
            (engine(503, "<html>"), Why::EngineUnavailable),
            (CamundaError::Timeout("late".into()), Why::EngineSlow),
            (
                engine(
                    500,
                    r#"{"type":"OptimisticLockingException","message":"ENGINE-03005"}"#,
                ),
                Why::Busy,
            ),
        ] {
            assert_eq!(refusal(&error), None);
            assert_eq!(Why::of(&error), why);
        }
        assert!(engine(502, "").outcome_unknown());
    }

    /// The engine's answers to `POST /task/{id}/complete`, measured on 7.24 with a
    /// user task followed by an output mapping `${comment}` and a gateway on
    /// `${approved == true}`: each rolled back, the task still open and assigned.
    #[test]
    fn a_user_task_completion_is_refused_as_a_message_would_be() {
        let output_mapping = engine(
            500,
            r#"{"type":"RestException","message":"Cannot complete task 9bbfc4da-ef34-11f1-9c6c-02fc00000001: Unknown property used in expression: ${comment}. Cause: Cannot resolve identifier 'comment'","code":0}"#,
        );
        assert_eq!(
            refusal(&output_mapping).as_deref(),
            Some("the process could not use this answer: it needs a value for `comment`")
        );
        let gateway = engine(
            500,
            r#"{"type":"RestException","message":"Cannot complete task 9bbfc4da-ef34-11f1-9c6c-02fc00000001: Unknown property used in expression: ${approved == true}. Cause: Cannot resolve identifier 'approved'","code":0}"#,
        );
        assert!(refusal(&gateway).unwrap().ends_with("`approved`"));
        let wrong_type = engine(
            400,
            r#"{"type":"InvalidRequestException","message":"Cannot complete task 9bbfc4da-ef34-11f1-9c6c-02fc00000001: Cannot convert value 'abc' of type 'Integer' to java type java.lang.Integer","code":null}"#,
        );
        assert!(refusal(&wrong_type).is_some());
        let too_long = engine(
            500,
            r#"{"type":"RestException","message":"Cannot complete task 9bbfc4da-ef34-11f1-9c6c-02fc00000001: An exception occurred in the persistence layer. Please check the server logs for a detailed message and the entire exception stack trace.","code":10002}"#,
        );
        assert!(refusal(&too_long).unwrap().contains("too long"));
        let suspended = engine(
            500,
            r#"{"type":"RestException","message":"Cannot complete task 32cdd3be-ef39-11f1-9c6c-02fc00000001: ENGINE-03043 task with id '32cdd3be-ef39-11f1-9c6c-02fc00000001' is suspended.","code":0}"#,
        );
        assert_eq!(
            (refusal(&suspended), Why::of(&suspended)),
            (None, Why::Suspended)
        );
        // Two answers to tasks of one instance at once, as for messages: retried.
        let busy = engine(
            500,
            r#"{"type":"OptimisticLockingException","message":"ENGINE-03005 Execution of 'UPDATE ExecutionEntity' failed","code":1}"#,
        );
        assert_eq!((refusal(&busy), Why::of(&busy)), (None, Why::Busy));
    }

    #[test]
    fn identifiers_that_do_not_read_as_names_are_not_quoted() {
        assert_eq!(
            missing_identifier("Cannot resolve identifier 'ok_1'"),
            Some("ok_1")
        );
        assert_eq!(
            missing_identifier("Cannot resolve identifier '<script>'"),
            None
        );
        assert_eq!(missing_identifier("nothing here"), None);
    }

    fn node(id: &str, kind: &str, children: Vec<ActivityInstance>) -> ActivityInstance {
        serde_json::from_value(serde_json::json!({
            "id": id, "activityId": id, "activityType": kind,
            "parentActivityInstanceId": if kind == "processDefinition" { None } else { Some("root") },
        }))
        .map(|mut n: ActivityInstance| {
            n.child_activity_instances = children;
            n
        })
        .unwrap()
    }

    #[test]
    fn a_process_waits_on_while_something_moves_toward_the_answer() {
        let at = |kind: &str| node("root", "processDefinition", vec![node("a", kind, vec![])]);
        // The send task itself still runs.
        assert!(may_still_wait(&at("serviceTask"), Some("a")));
        // A service task or a timer on the way.
        assert!(may_still_wait(&at("serviceTask"), None));
        assert!(may_still_wait(&at("intermediateTimer"), None));
        // Only a person's task elsewhere: the process moved on without the answer.
        assert!(!may_still_wait(&at("userTask"), None));
        assert!(!may_still_wait(&at("receiveTask"), Some("gone")));
        // An asynchronous continuation's job has not run yet.
        let mut tree = at("userTask");
        tree.child_transition_instances = serde_json::from_value(
            serde_json::json!([{"id": "t", "activityId": "receive", "executionId": "x"}]),
        )
        .unwrap();
        assert!(may_still_wait(&tree, None));
    }
}
