//! Withdrawal: a pending form that can no longer be answered leaves its user's inbox
//! (`removed: withdrawn`) — when its process is cancelled, when its process (root or
//! called) ends, or when its receive task can no longer receive the message.
//! Submitted forms are never withdrawn: their delivery says what became of them.

use std::collections::HashSet;

use uuid::Uuid;

use super::{ChangeHub, FormSummary};
use crate::camunda::{Camunda, CamundaError};
use crate::store::forms::{self as rows, FormTaskRow};
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct Withdrawals {
    store: Store,
    camunda: Camunda,
    hub: ChangeHub,
}

#[derive(Debug, thiserror::Error)]
pub enum WithdrawalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Camunda(#[from] CamundaError),
}

impl Withdrawals {
    pub fn new(store: Store, camunda: Camunda, hub: ChangeHub) -> Self {
        Self {
            store,
            camunda,
            hub,
        }
    }

    /// Withdraws the pending forms of these instances and of the processes they
    /// are the roots of.
    pub async fn instances_ended(
        &self,
        instances: &[String],
        reason: &str,
    ) -> Result<usize, StoreError> {
        if instances.is_empty() {
            return Ok(0);
        }
        let pending = rows::pending_in(&self.store.client().await?, instances).await?;
        self.withdraw(&pending, reason).await
    }

    /// For instances where something was interrupted (an activity cancelled, an
    /// external task deleted): withdraws each pending form whose message nothing
    /// waits for any more and whose send task is gone. A form whose send task still
    /// exists (the worker has it, within its lock) is left alone: the receive task
    /// may simply not be reached yet. Two engine calls per instance, whatever the
    /// number of pending forms.
    pub async fn instances_interrupted(
        &self,
        instances: &[String],
    ) -> Result<usize, WithdrawalError> {
        if instances.is_empty() {
            return Ok(0);
        }
        let pending = rows::pending_in(&self.store.client().await?, instances).await?;
        let mut unanswerable = Vec::new();
        let mut by_instance: Vec<&str> = pending
            .iter()
            .map(|f| f.process_instance_id.as_str())
            .collect();
        by_instance.sort();
        by_instance.dedup();
        for instance in by_instance {
            let waits: HashSet<String> = match self.camunda.message_subscriptions_of(instance).await
            {
                Ok(subscriptions) => subscriptions.into_iter().map(|s| s.event_name).collect(),
                Err(CamundaError::NotFound(_)) => HashSet::new(),
                Err(error) => return Err(error.into()),
            };
            let tasks: HashSet<String> = self
                .camunda
                .external_task_ids_of(instance)
                .await?
                .into_iter()
                .collect();
            for form in pending.iter().filter(|f| f.process_instance_id == instance) {
                if !waits.contains(&form.message_name) && !tasks.contains(&form.external_task_id) {
                    unanswerable.push(form.clone());
                }
            }
        }
        Ok(self
            .withdraw(
                &unanswerable,
                "the receive task can no longer receive the message",
            )
            .await?)
    }

    /// Withdraws every pending form of the process tree under `root` (a cancelled
    /// process: its called processes' forms too, whoever they are assigned to) in
    /// one transaction, each with its `removed: withdrawn`, so that no form of the
    /// tree stays behind and every inbox hears of it at once.
    pub async fn tree_ended(&self, root: &str, reason: &str) -> Result<usize, StoreError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        let withdrawn = rows::withdraw_tree(&tx, root, reason).await?;
        self.record_removals(tx, &withdrawn, reason).await
    }

    /// Withdraws forms (those still pending), each with a `removed: withdrawn`.
    pub async fn withdraw(&self, forms: &[FormTaskRow], reason: &str) -> Result<usize, StoreError> {
        if forms.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = forms.iter().map(|f| f.id).collect();
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        let withdrawn = rows::withdraw(&tx, &ids, reason).await?;
        self.record_removals(tx, &withdrawn, reason).await
    }

    /// Writes a `removed: withdrawn` change for each withdrawn form in the
    /// withdrawal's transaction, commits it, and wakes the streams.
    async fn record_removals(
        &self,
        tx: deadpool_postgres::Transaction<'_>,
        withdrawn: &[FormTaskRow],
        reason: &str,
    ) -> Result<usize, StoreError> {
        for form in withdrawn {
            let summary =
                serde_json::to_value(FormSummary::of(form)).expect("a summary serializes");
            rows::append_change(
                &tx,
                form.id,
                &form.assignee,
                "removed",
                Some("withdrawn"),
                &summary,
            )
            .await?;
        }
        tx.commit().await?;
        if !withdrawn.is_empty() {
            tracing::info!(count = withdrawn.len(), reason, "forms withdrawn");
            self.hub.changed();
        }
        Ok(withdrawn.len())
    }
}
