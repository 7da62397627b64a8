//! Withdrawal: a pending form that can no longer be answered leaves its user's inbox
//! (`removed: withdrawn`) — when its process is cancelled, when its process (root or
//! called) ends, or when its receive task can no longer receive the message.
//! Submitted forms are never withdrawn: their delivery says what became of them.

use std::collections::HashSet;

use super::{ChangeHub, ChangeKind, FormKind, FormSummary, FormTask, RemovalReason};
use crate::camunda::types::{ActivityInstance, EventSubscription};
use crate::camunda::{Camunda, CamundaError};
use crate::ids::FormTaskId;
use crate::store::forms as rows;
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

/// The reason a form reads when its process ended (completed, cancelled, deleted).
pub const PROCESS_ENDED: &str = "the process ended";

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
    /// external task deleted): withdraws each pending form that nothing can answer
    /// any more. A form stays while its answer can still be received in its own
    /// branch (the activity instance its send task ran in, so that a multi-instance
    /// sibling waiting for the same message does not keep a cancelled branch's form):
    /// its send task is still active (the worker has it, within its lock), a token
    /// of the branch waits for an asynchronous continuation (between the send task
    /// and the receive task, where neither an external task nor a subscription
    /// exists), or an execution of the branch waits for its message.
    ///
    /// The engine is read in the order a token moves (external tasks, then the
    /// activity tree, then the subscriptions), so that a token moving on while it is
    /// read is seen at one of its steps; a subscription whose execution the tree did
    /// not show yet (the token arrived after it was read) has the tree read again.
    /// Three or four engine calls per instance, and per form whose send task has
    /// ended one for its branch (and one more for each enclosing scope that
    /// completed since).
    pub async fn instances_interrupted(
        &self,
        instances: &[String],
    ) -> Result<usize, WithdrawalError> {
        if instances.is_empty() {
            return Ok(0);
        }
        // A user task of the engine's waits for no message: the engine tells when
        // it ends (see `Forms::end_user_task`).
        let pending: Vec<FormTask> = rows::pending_in(&self.store.client().await?, instances)
            .await?
            .into_iter()
            .filter(|f| f.kind == FormKind::SendTask)
            .collect();
        let mut unanswerable = Vec::new();
        // Forms of instances found gone: the process ended (deleted, say), which is
        // what their people read, whichever pass looks first.
        let mut ended = Vec::new();
        let mut by_instance: Vec<&str> = pending
            .iter()
            .map(|f| f.process_instance_id.as_str())
            .collect();
        by_instance.sort();
        by_instance.dedup();
        for instance in by_instance {
            let forms: Vec<&FormTask> = pending
                .iter()
                .filter(|f| f.process_instance_id == instance)
                .collect();
            let tasks: HashSet<String> = match self.camunda.external_task_ids_of(instance).await {
                Ok(tasks) => tasks.into_iter().collect(),
                Err(CamundaError::NotFound(_)) => HashSet::new(),
                Err(error) => return Err(error.into()),
            };
            let Some(mut tree) = self.tree_of(instance).await? else {
                ended.extend(forms.into_iter().cloned());
                continue;
            };
            let subscriptions = match self.camunda.message_subscriptions_of(instance).await {
                Ok(subscriptions) => subscriptions,
                Err(CamundaError::NotFound(_)) => Vec::new(),
                Err(error) => return Err(error.into()),
            };
            let shown: HashSet<&str> = tree.walk().into_iter().flat_map(executions_of).collect();
            if subscriptions.iter().any(|s| {
                s.execution_id
                    .as_deref()
                    .is_some_and(|e| !shown.contains(e))
            }) {
                match self.tree_of(instance).await? {
                    Some(newer) => tree = newer,
                    None => {
                        ended.extend(forms.into_iter().cloned());
                        continue;
                    }
                }
            }
            for form in forms {
                if tasks.contains(&form.external_task_id) {
                    continue;
                }
                let send_task = form.activity_instance_id.as_deref();
                if send_task.is_some_and(|id| tree.walk().iter().any(|n| n.id == id)) {
                    continue; // still active: its worker has not finished it
                }
                let branch = match send_task {
                    Some(id) => self.branch_of(&tree, id).await?,
                    None => Branch::Unknown,
                };
                if !answerable(&tree, &subscriptions, &form.message_name, &branch) {
                    unanswerable.push(form.clone());
                }
            }
        }
        let withdrawn = self.withdraw(&ended, PROCESS_ENDED).await?
            + self
                .withdraw(
                    &unanswerable,
                    "the receive task can no longer receive the message",
                )
                .await?;
        Ok(withdrawn)
    }

    /// The activity tree of a running instance; `None` once it is gone.
    async fn tree_of(&self, instance: &str) -> Result<Option<ActivityInstance>, CamundaError> {
        match self.camunda.activity_instances(instance).await {
            Ok(tree) => Ok(Some(tree)),
            Err(CamundaError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Where a form's answer may still be received: the activity instance its
    /// (ended) send task ran in, as the tree shows it (the process instance, a
    /// subprocess, one instance of a multi-instance). A scope that completed since
    /// (the token left it for the enclosing one) gives way to the enclosing scope; a
    /// send task or scope that was cancelled leaves the form nowhere to be answered.
    async fn branch_of(
        &self,
        tree: &ActivityInstance,
        send_task: &str,
    ) -> Result<Branch, CamundaError> {
        let mut id = send_task.to_owned();
        loop {
            let history = match self.camunda.historic_activity_instance(&id).await {
                Ok(history) => history,
                Err(CamundaError::NotFound(_)) => return Ok(Branch::Unknown),
                Err(error) => return Err(error),
            };
            if history.canceled {
                return Ok(Branch::Gone);
            }
            let Some(parent) = history.parent_activity_instance_id else {
                return Ok(Branch::Unknown);
            };
            if tree.walk().iter().any(|n| n.id == parent) {
                return Ok(Branch::In(parent));
            }
            id = parent;
        }
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
    pub async fn withdraw(&self, forms: &[FormTask], reason: &str) -> Result<usize, StoreError> {
        if forms.is_empty() {
            return Ok(0);
        }
        let ids: Vec<FormTaskId> = forms.iter().map(|f| f.id).collect();
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
        withdrawn: &[FormTask],
        reason: &str,
    ) -> Result<usize, StoreError> {
        for form in withdrawn {
            let summary =
                serde_json::to_value(FormSummary::of(form)).expect("a summary serializes");
            crate::store::user_tasks::append_changes(
                &tx,
                form.id,
                &form.audience(),
                ChangeKind::Removed(RemovalReason::Withdrawn),
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

/// The executions an activity-tree node shows: its own and those of the tokens
/// waiting for an asynchronous continuation in it.
fn executions_of(node: &ActivityInstance) -> impl Iterator<Item = &str> {
    node.execution_ids.iter().map(String::as_str).chain(
        node.child_transition_instances
            .iter()
            .filter_map(|t| t.execution_id.as_deref()),
    )
}

/// Where a form's answer may be received.
enum Branch {
    /// Within this activity instance of the tree.
    In(String),
    /// Anywhere in the instance (the engine's history no longer says where).
    Unknown,
    /// Nowhere: its send task or its branch was cancelled.
    Gone,
}

/// Whether an answer to `message` can still be received in `branch`: in it a token
/// waits for an asynchronous continuation, or an execution is subscribed to the
/// message.
fn answerable(
    tree: &ActivityInstance,
    subscriptions: &[EventSubscription],
    message: &str,
    branch: &Branch,
) -> bool {
    let scope = match branch {
        Branch::In(id) => match tree.walk().into_iter().find(|n| &n.id == id) {
            Some(node) => node,
            None => return false,
        },
        Branch::Unknown => tree,
        Branch::Gone => return false,
    };
    let nodes = scope.walk();
    if nodes
        .iter()
        .any(|n| !n.child_transition_instances.is_empty())
    {
        return true;
    }
    let executions: HashSet<&str> = nodes.into_iter().flat_map(executions_of).collect();
    subscriptions.iter().any(|s| {
        s.event_name == message
            && s.execution_id
                .as_deref()
                .is_some_and(|e| executions.contains(e))
    })
}
