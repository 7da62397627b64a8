//! Delivery of submitted answers to the receive tasks that wait for them: a
//! dispatcher on every replica claims outbox rows with a lease and delivers each by
//! triggering the waiting execution's message subscription, with the data as
//! instance variables and a marker (`rampSubmissionId`) that makes an uncertain
//! attempt checkable. Never lost (retried until the engine takes it or nothing can),
//! never twice (an attempt whose outcome is unknown is checked before any retry).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::camunda::{Camunda, CamundaError, typed};
use crate::store::Store;
use crate::store::deliveries::{self as rows, OutboxRow, Outcome};

/// The variable that carries the submission id with the data.
pub const MARKER: &str = "rampSubmissionId";

#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// How often due rows are looked for without a wake-up.
    pub poll: Duration,
    /// How long a claim holds a row; longer than an engine call can take.
    pub lease: Duration,
    /// Attempts after which an error other than "nothing waits yet" fails the row.
    pub max_attempts: i32,
    /// Rows claimed per pass.
    pub batch: i64,
}

#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    camunda: Camunda,
    settings: DeliverySettings,
    owner: Uuid,
    wake: Arc<Notify>,
    metrics: Option<crate::metrics::Metrics>,
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
        }
    }

    /// Counts delivery outcomes in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
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

    /// Claims due rows and delivers them; returns how many were claimed.
    pub async fn pass(&self) -> Result<usize, crate::store::StoreError> {
        let claimed = rows::claim(
            &self.store.client().await?,
            self.owner,
            self.settings.lease,
            self.settings.batch,
        )
        .await?;
        let count = claimed.len();
        let attempts = claimed.into_iter().map(|row| async move {
            let outcome = self.deliver(&row).await;
            (row, outcome)
        });
        for (row, outcome) in futures::future::join_all(attempts).await {
            match &outcome {
                Outcome::Delivered => tracing::info!(submission = %row.id, "delivered"),
                Outcome::Retry { error, .. } => {
                    tracing::info!(submission = %row.id, %error, attempts = row.attempts, "delivery retried")
                }
                Outcome::Undeliverable(reason) => {
                    tracing::warn!(submission = %row.id, %reason, "undeliverable")
                }
                Outcome::Failed(error) => {
                    tracing::error!(submission = %row.id, %error, "delivery failed")
                }
            }
            let recorded = rows::record(
                &self.store.client().await?,
                row.id,
                row.lease_generation,
                &outcome,
            )
            .await?;
            if !recorded {
                // The lease ran out and another replica owns the row now.
                tracing::warn!(submission = %row.id, "lease lost; the newer owner's outcome stands");
            }
            if let Some(metrics) = &self.metrics {
                metrics.delivery(match (&outcome, recorded) {
                    (_, false) => "lease_lost",
                    (Outcome::Delivered, _) => "delivered",
                    (Outcome::Retry { .. }, _) => "retry",
                    (Outcome::Undeliverable(_), _) => "undeliverable",
                    (Outcome::Failed(_), _) => "failed",
                });
            }
        }
        Ok(count)
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let millis = 250u64.saturating_mul(1 << attempts.clamp(0, 8));
        Duration::from_millis(millis.min(60_000))
    }

    fn retry(&self, row: &OutboxRow, error: String, uncertain: bool, counts: bool) -> Outcome {
        if counts && row.attempts >= self.settings.max_attempts {
            return Outcome::Failed(format!("after {} attempts: {error}", row.attempts));
        }
        let after = if uncertain {
            Duration::from_millis(100)
        } else {
            self.backoff(row.attempts)
        };
        Outcome::Retry {
            after,
            error,
            uncertain,
        }
    }

    async fn deliver(&self, row: &OutboxRow) -> Outcome {
        let instance = &row.process_instance_id;
        let message = &row.message_name;
        if row.uncertain {
            // The last attempt may have landed: never send again if it did.
            match self.landed(row).await {
                Ok(true) => return Outcome::Delivered,
                Ok(false) => {}
                Err(error) => {
                    return self.retry(
                        row,
                        format!("checking the last attempt: {error}"),
                        true,
                        false,
                    );
                }
            }
        }
        let waiting = match self.camunda.executions_waiting_for(instance, message).await {
            Ok(waiting) => waiting,
            Err(error) => return self.retry(row, error.to_string(), false, !error.is_transient()),
        };
        if waiting.is_empty() {
            return match self.camunda.historic_process_instance(instance).await {
                Ok(history) if matches!(history.state.as_str(), "ACTIVE" | "SUSPENDED") => {
                    // The user was faster than the worker or the engine: wait.
                    self.retry(
                        row,
                        "no execution waits for the message yet".into(),
                        false,
                        false,
                    )
                }
                Ok(history) => {
                    Outcome::Undeliverable(format!("the process has ended ({})", history.state))
                }
                Err(CamundaError::NotFound(_)) => {
                    Outcome::Undeliverable("the process instance no longer exists".into())
                }
                Err(error) => self.retry(row, error.to_string(), false, !error.is_transient()),
            };
        }
        let target = if waiting.len() == 1 {
            waiting[0].id.clone()
        } else {
            match self.pick(row, &waiting).await {
                Ok(Some(target)) => target,
                Ok(None) => {
                    return self.retry(
                        row,
                        format!(
                            "{} executions wait for {message} and none is the send task's sibling",
                            waiting.len()
                        ),
                        false,
                        true,
                    );
                }
                Err(error) => {
                    return self.retry(row, error.to_string(), false, !error.is_transient());
                }
            }
        };
        let mut data: Map<String, Value> = row.variables.as_object().cloned().unwrap_or_default();
        data.insert(MARKER.into(), Value::String(row.id.to_string()));
        match self
            .camunda
            .trigger_message(&target, message, &typed(&data))
            .await
        {
            Ok(()) => Outcome::Delivered,
            Err(CamundaError::Timeout(error)) => {
                self.retry(row, format!("outcome unknown: {error}"), true, false)
            }
            // The subscription went (another change, or it was consumed): look again.
            Err(
                error @ (CamundaError::NotFound(_)
                | CamundaError::Conflict(_)
                | CamundaError::Unavailable(_)),
            ) => self.retry(row, error.to_string(), false, false),
            Err(CamundaError::Engine {
                status: 500,
                message: text,
                ..
            }) if text.contains("does not have a subscription")
                || text.contains("subscription") =>
            {
                self.retry(row, text, false, false)
            }
            Err(error) => self.retry(row, error.to_string(), false, true),
        }
    }

    /// Among several waiting executions, the one under the same parent activity
    /// instance as the send task (parallel multi-instance).
    async fn pick(
        &self,
        row: &OutboxRow,
        waiting: &[crate::camunda::types::Execution],
    ) -> Result<Option<String>, CamundaError> {
        let Some(send) = &row.activity_instance_id else {
            return Ok(None);
        };
        let parent = self
            .camunda
            .historic_activity_instance(send)
            .await?
            .parent_activity_instance_id;
        let Some(parent) = parent else {
            return Ok(None);
        };
        let tree = self
            .camunda
            .activity_instances(&row.process_instance_id)
            .await?;
        for node in tree.walk() {
            if node.parent_activity_instance_id.as_deref() == Some(parent.as_str())
                && let Some(execution) = node
                    .execution_ids
                    .iter()
                    .find(|e| waiting.iter().any(|w| &w.id == *e))
            {
                return Ok(Some(execution.clone()));
            }
        }
        Ok(None)
    }

    /// Whether the marker of this submission reached the instance.
    async fn landed(&self, row: &OutboxRow) -> Result<bool, CamundaError> {
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
