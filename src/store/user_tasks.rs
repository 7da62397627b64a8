//! Queries of the engine's user tasks, stored as form tasks of kind `user_task`
//! (`external_task_id` is the engine's task id), and of their change log rows,
//! written once per key of their audience.

use deadpool_postgres::GenericClient;
use serde_json::Value;

use super::forms::{COLUMNS, from_row};
use super::{StoreError, fetch_all, fetch_opt, first};
use crate::forms::{ChangeKind, FormTask};
use crate::ids::FormTaskId;

/// One row of the change log a write of a user task adds: under which audience key,
/// and what it says.
#[derive(Clone, Debug, PartialEq)]
pub struct AudienceChange {
    pub key: String,
    pub kind: ChangeKind,
}

/// The pending or ended user task the engine knows as `engine_task_id`, locked for
/// the rest of `tx`.
#[tracing::instrument(name = "store.user_tasks.get_for_update", skip_all)]
pub async fn get_for_update(
    tx: &deadpool_postgres::Transaction<'_>,
    engine_task_id: &str,
) -> Result<Option<FormTask>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM form_tasks WHERE external_task_id = $1 AND kind = 'user_task'
         FOR UPDATE"
    );
    fetch_opt(tx, &sql, &[&engine_task_id], from_row).await
}

/// Stores a new user task and its `added` change under each key of its audience in
/// one statement (one round trip, one transaction). False, with nothing written,
/// when a form task for the same engine task exists already.
#[tracing::instrument(name = "store.user_tasks.insert", skip_all)]
pub async fn insert(
    client: &impl GenericClient,
    task: &FormTask,
    summary: &Value,
) -> Result<bool, StoreError> {
    let sql = "WITH inserted AS (
            INSERT INTO form_tasks (id, external_task_id, business_key, form_name, message_name,
                assignee, status, process_instance_id, root_process_instance_id,
                process_definition_id, process_definition_key, tenant_id, activity_id,
                execution_id, prefill, created_at, updated_at, task_name, process_name, form_title,
                kind, candidate_users, candidate_groups, due_at, follow_up_at, priority,
                engine_updated_at, form_schema)
            VALUES ($1, $2, $3, $4, '', $5, 'pending', $6, $7, $8, $9, $10, $11, $12, $13, $14, $14,
                $15, $16, $17, 'user_task', $18, $19, $20, $21, $22, $23, $24)
            ON CONFLICT (external_task_id) DO NOTHING
            RETURNING id
        ), change AS (
            INSERT INTO form_changes (form_task_id, assignee, kind, summary)
            SELECT inserted.id, key, 'added', $25 FROM inserted, unnest($26::text[]) AS key
        )
        SELECT count(*) FROM inserted";
    let inserted: i64 = client
        .query_one(
            &client.prepare_cached(sql).await?,
            &[
                task.id.as_uuid(),
                &task.external_task_id,
                &task.business_key,
                &task.form_name,
                &task.assignee,
                &task.process_instance_id,
                &task.root_process_instance_id,
                &task.process_definition_id,
                &task.process_definition_key,
                &task.tenant_id,
                &task.activity_id,
                &task.execution_id,
                &task.prefill,
                &task.created_at,
                &task.task_name,
                &task.process_name,
                &task.form_title,
                &task.candidate_users,
                &task.candidate_groups,
                &task.due_at,
                &task.follow_up_at,
                &task.priority,
                &task.engine_updated_at,
                &task.form_schema,
                summary,
                &task.audience(),
            ],
        )
        .await?
        .get(0);
    Ok(inserted == 1)
}

/// Writes what the engine says of a pending user task now (`task`, the stored row
/// with the engine's fields applied) and its changes, each carrying `summary`, in
/// one statement. False, with nothing written, when the task is no longer pending.
#[tracing::instrument(name = "store.user_tasks.update", skip_all)]
pub async fn update(
    client: &impl GenericClient,
    task: &FormTask,
    summary: &Value,
    changes: &[AudienceChange],
) -> Result<bool, StoreError> {
    let sql = "WITH updated AS (
            UPDATE form_tasks SET assignee = $2, candidate_users = $3, candidate_groups = $4,
                due_at = $5, follow_up_at = $6, priority = $7, engine_updated_at = $8,
                form_schema = $9, form_name = $10, form_title = $11, task_name = $12,
                process_name = $13, prefill = $14, draft = $15, updated_at = $16,
                business_key = $17
            WHERE id = $1 AND status = 'pending'
            RETURNING id
        ), change AS (
            INSERT INTO form_changes (form_task_id, assignee, kind, reason, summary)
            SELECT updated.id, c.key, c.kind, c.reason, $18
            FROM updated, unnest($19::text[], $20::text[], $21::text[]) AS c(key, kind, reason)
        )
        SELECT count(*) FROM updated";
    let (keys, kinds, reasons) = columns(changes);
    let updated: i64 = client
        .query_one(
            &client.prepare_cached(sql).await?,
            &[
                task.id.as_uuid(),
                &task.assignee,
                &task.candidate_users,
                &task.candidate_groups,
                &task.due_at,
                &task.follow_up_at,
                &task.priority,
                &task.engine_updated_at,
                &task.form_schema,
                &task.form_name,
                &task.form_title,
                &task.task_name,
                &task.process_name,
                &task.prefill,
                &task.draft,
                &task.updated_at,
                &task.business_key,
                summary,
                &keys,
                &kinds,
                &reasons,
            ],
        )
        .await?
        .get(0);
    Ok(updated == 1)
}

/// The three columns of the change rows, as arrays to unnest.
fn columns(changes: &[AudienceChange]) -> (Vec<&str>, Vec<&str>, Vec<Option<&str>>) {
    let mut keys = Vec::with_capacity(changes.len());
    let mut kinds = Vec::with_capacity(changes.len());
    let mut reasons = Vec::with_capacity(changes.len());
    for change in changes {
        let (kind, reason) = change.kind.as_stored();
        keys.push(change.key.as_str());
        kinds.push(kind);
        reasons.push(reason);
    }
    (keys, kinds, reasons)
}

/// Withdraws the pending user task the engine knows as `engine_task_id` with
/// `reason`, in the caller's transaction, and returns it; `None` when there is no
/// such pending task (unknown, answered in ramp, or withdrawn already).
#[tracing::instrument(name = "store.user_tasks.withdraw", skip_all)]
pub async fn withdraw(
    client: &impl GenericClient,
    engine_task_id: &str,
    reason: &str,
) -> Result<Option<FormTask>, StoreError> {
    let sql = format!(
        "UPDATE form_tasks SET status = 'withdrawn', withdrawal_reason = $2, updated_at = now()
         WHERE external_task_id = $1 AND kind = 'user_task' AND status = 'pending'
         RETURNING {COLUMNS}"
    );
    fetch_opt(client, &sql, &[&engine_task_id, &reason], from_row).await
}

/// Appends one change of a form under each of `keys`, in the caller's transaction
/// and in one statement.
#[tracing::instrument(name = "store.user_tasks.append_changes", skip_all)]
pub async fn append_changes(
    client: &impl GenericClient,
    form_task_id: FormTaskId,
    keys: &[String],
    kind: ChangeKind,
    summary: &Value,
) -> Result<(), StoreError> {
    let (kind, reason) = kind.as_stored();
    client
        .execute(
            &client
                .prepare_cached(
                    "INSERT INTO form_changes (form_task_id, assignee, kind, reason, summary)
                     SELECT $1, key, $3, $4, $5 FROM unnest($2::text[]) AS key",
                )
                .await?,
            &[form_task_id.as_uuid(), &keys, &kind, &reason, summary],
        )
        .await?;
    Ok(())
}

/// The engine ids of the pending user tasks.
#[tracing::instrument(name = "store.user_tasks.pending_ids", skip_all)]
pub async fn pending_ids(client: &impl GenericClient) -> Result<Vec<String>, StoreError> {
    let sql = "SELECT external_task_id FROM form_tasks
         WHERE kind = 'user_task' AND status = 'pending' ORDER BY external_task_id";
    fetch_all(client, sql, &[], first).await
}
