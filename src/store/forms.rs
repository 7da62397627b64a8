//! Queries of form tasks, their change log and the cached form schemas.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{StoreError, after_parameters, decode, fetch_all, fetch_opt, first};
use crate::delivery::DeliveryState;
use crate::forms::{Change, ChangeKind, FormKind, FormState, FormSummary, FormTask};
use crate::ids::{FormTaskId, SubmissionId};

pub(super) const COLUMNS: &str = "id, external_task_id, business_key, form_name, message_name, assignee, status, \
    process_instance_id, root_process_instance_id, process_definition_id, process_definition_key, \
    tenant_id, topic_name, activity_id, activity_instance_id, execution_id, deployment_id, prefill, \
    draft, withdrawal_reason, created_at, updated_at, completed_at, return_reason, returned_at, \
    task_name, process_name, form_title, context, \
    kind, candidate_users, candidate_groups, due_at, follow_up_at, priority, engine_updated_at, \
    form_schema, \
    (SELECT o.state FROM correlation_outbox o WHERE o.form_task_id = form_tasks.id \
     ORDER BY o.created_at DESC LIMIT 1) AS delivery_state";

/// The columns a form's summary reads ([`FormSummary::of`]): [`COLUMNS`] without
/// the large ones, which pages and snapshots do not send: the prefill and the
/// form's schema read as null, the draft as `{}` when there is one.
pub(super) static SUMMARY_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let columns = COLUMNS
        .replacen(" prefill,", " 'null'::jsonb AS prefill,", 1)
        .replacen(
            " draft,",
            " CASE WHEN draft IS NULL THEN NULL ELSE '{}'::jsonb END AS draft,",
            1,
        )
        .replacen(" form_schema,", " NULL::jsonb AS form_schema,", 1);
    assert_eq!(columns.matches(" AS ").count(), 4, "three columns replaced");
    columns
});

/// A form's summary read from the database (with [`SUMMARY_COLUMNS`]).
pub(super) fn summary_from_row(row: &Row) -> Result<FormSummary, StoreError> {
    Ok(FormSummary::of(&from_row(row)?))
}

/// A form task read from the database: its words parsed, or a decode error.
pub(super) fn from_row(row: &Row) -> Result<FormTask, StoreError> {
    Ok(FormTask {
        id: FormTaskId::from_uuid(row.get("id")),
        external_task_id: row.get("external_task_id"),
        business_key: row.get("business_key"),
        form_name: row.get("form_name"),
        message_name: row.get("message_name"),
        assignee: row.get("assignee"),
        status: decode("form_tasks.status", row.get("status"), FormState::parse)?,
        process_instance_id: row.get("process_instance_id"),
        root_process_instance_id: row.get("root_process_instance_id"),
        process_definition_id: row.get("process_definition_id"),
        process_definition_key: row.get("process_definition_key"),
        tenant_id: row.get("tenant_id"),
        topic_name: row.get("topic_name"),
        activity_id: row.get("activity_id"),
        activity_instance_id: row.get("activity_instance_id"),
        execution_id: row.get("execution_id"),
        deployment_id: row.get("deployment_id"),
        prefill: row.get("prefill"),
        draft: row.get("draft"),
        withdrawal_reason: row.get("withdrawal_reason"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        completed_at: row.get("completed_at"),
        delivery_state: row
            .get::<_, Option<&str>>("delivery_state")
            .map(|state| decode("correlation_outbox.state", state, DeliveryState::parse))
            .transpose()?,
        return_reason: row.get("return_reason"),
        returned_at: row.get("returned_at"),
        task_name: row.get("task_name"),
        process_name: row.get("process_name"),
        form_title: row.get("form_title"),
        context: row.get("context"),
        kind: decode("form_tasks.kind", row.get("kind"), FormKind::parse)?,
        candidate_users: row.get("candidate_users"),
        candidate_groups: row.get("candidate_groups"),
        due_at: row.get("due_at"),
        follow_up_at: row.get("follow_up_at"),
        priority: row.get("priority"),
        engine_updated_at: row.get("engine_updated_at"),
        form_schema: row.get("form_schema"),
    })
}

/// Stores a new form task and its `added` change (carrying `summary`) in one
/// statement, so in one round trip and one transaction. False, and nothing
/// written, when a task for the same external task exists already.
#[tracing::instrument(name = "store.forms.insert_new", skip_all)]
pub async fn insert_new(
    client: &impl GenericClient,
    task: &FormTask,
    summary: &Value,
) -> Result<bool, StoreError> {
    let sql = "WITH inserted AS (
            INSERT INTO form_tasks (id, external_task_id, business_key, form_name, message_name, assignee,
                status, process_instance_id, root_process_instance_id, process_definition_id,
                process_definition_key, tenant_id, topic_name, activity_id, activity_instance_id,
                execution_id, deployment_id, prefill, created_at, updated_at, task_name, process_name,
                form_title, context)
            VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                $17, $18, $18, $20, $21, $22, $23)
            ON CONFLICT (external_task_id) DO NOTHING
            RETURNING id, assignee
        ), change AS (
            INSERT INTO form_changes (form_task_id, assignee, kind, summary)
            SELECT id, assignee, 'added', $19 FROM inserted
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
                &task.message_name,
                &task.assignee,
                &task.process_instance_id,
                &task.root_process_instance_id,
                &task.process_definition_id,
                &task.process_definition_key,
                &task.tenant_id,
                &task.topic_name,
                &task.activity_id,
                &task.activity_instance_id,
                &task.execution_id,
                &task.deployment_id,
                &task.prefill,
                &task.created_at,
                summary,
                &task.task_name,
                &task.process_name,
                &task.form_title,
                &task.context,
            ],
        )
        .await?
        .get(0);
    Ok(inserted == 1)
}

#[tracing::instrument(name = "store.forms.by_external_task", skip_all)]
pub async fn by_external_task(
    client: &impl GenericClient,
    external_task_id: &str,
) -> Result<Option<FormTask>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM form_tasks WHERE external_task_id = $1");
    fetch_opt(client, &sql, &[&external_task_id], from_row).await
}

#[tracing::instrument(name = "store.forms.get", skip_all)]
pub async fn get(
    client: &impl GenericClient,
    id: FormTaskId,
) -> Result<Option<FormTask>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM form_tasks WHERE id = $1");
    fetch_opt(client, &sql, &[id.as_uuid()], from_row).await
}

/// A form task, locked for the rest of `tx` (submits serialize on it).
#[tracing::instrument(name = "store.forms.get_for_update", skip_all)]
pub async fn get_for_update(
    tx: &deadpool_postgres::Transaction<'_>,
    id: FormTaskId,
) -> Result<Option<FormTask>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM form_tasks WHERE id = $1 FOR UPDATE");
    fetch_opt(tx, &sql, &[id.as_uuid()], from_row).await
}

/// A submit, as one statement writes it.
pub struct Submit<'a> {
    pub form_task_id: FormTaskId,
    /// The form's assignee as stored (an email, or the engine's user id for a user
    /// task): the write happens only if it still is.
    pub assignee: &'a str,
    /// Who answers (the caller's email), as the submission keeps it.
    pub submitted_by: &'a str,
    /// The change log key of the `removed` change (the task's audience once it is
    /// assigned: its assignee's email, or `user:<id>` for a user task).
    pub change_key: &'a str,
    /// The task's `updated_at` when it was read and checked: the write happens only
    /// if nothing changed since.
    pub seen_updated_at: DateTime<Utc>,
    /// The time of the submit: completed_at, updated_at, the submission's created_at.
    pub at: DateTime<Utc>,
    pub submission_id: SubmissionId,
    pub request_id: Option<&'a str>,
    pub data: &'a Value,
    /// The completed task's summary, for its `removed` change.
    pub summary: &'a Value,
}

/// Completes a pending form task unchanged since it was read, and stores the
/// submission, its message to deliver (the outbox's [`super::deliveries::ENQUEUE`])
/// and the `removed` change: one statement, so one round trip and one transaction. False, with nothing written,
/// when the task is no longer pending, no longer the assignee's, or changed since.
/// Concurrent submits of one form serialize on its row: the later finds it
/// completed.
#[tracing::instrument(name = "store.forms.submit", skip_all)]
pub async fn submit(client: &impl GenericClient, s: &Submit<'_>) -> Result<bool, StoreError> {
    let sql = format!(
        "WITH completed AS (
            UPDATE form_tasks SET status = 'completed', completed_at = $4, updated_at = $4,
                return_reason = NULL, returned_at = NULL
            WHERE id = $1 AND status = 'pending' AND assignee = $2 AND updated_at = $3
            RETURNING id, kind, external_task_id, message_name, process_instance_id,
                activity_instance_id
        ), submission AS (
            INSERT INTO submissions (id, form_task_id, submitted_by, request_id, data, created_at)
            SELECT $5, id, $9, $6, $7, $4 FROM completed
            RETURNING id, form_task_id, data
        ), {enqueue}, change AS (
            INSERT INTO form_changes (form_task_id, assignee, kind, reason, summary)
            SELECT id, $10, 'removed', 'completed', $8 FROM completed
        )
        SELECT count(*) FROM completed",
        enqueue = super::deliveries::ENQUEUE
    );
    let written: i64 = client
        .query_one(
            &client.prepare_cached(&sql).await?,
            &[
                s.form_task_id.as_uuid(),
                &s.assignee,
                &s.seen_updated_at,
                &s.at,
                s.submission_id.as_uuid(),
                &s.request_id,
                s.data,
                s.summary,
                &s.submitted_by,
                &s.change_key,
            ],
        )
        .await?
        .get(0);
    Ok(written == 1)
}

/// Makes a completed form pending again for its assignee, with `answer` as its draft
/// and `reason` as its return reason (the process could not use the answer), in the
/// caller's transaction. `None` when the form is not completed (withdrawn meanwhile).
#[tracing::instrument(name = "store.forms.give_back", skip_all)]
pub async fn give_back(
    client: &impl GenericClient,
    id: FormTaskId,
    answer: &Value,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<Option<FormTask>, StoreError> {
    let sql = format!(
        "UPDATE form_tasks SET status = 'pending', draft = $2, return_reason = $3, returned_at = $4,
            completed_at = NULL, updated_at = $4
         WHERE id = $1 AND status = 'completed' RETURNING {COLUMNS}"
    );
    fetch_opt(
        client,
        &sql,
        &[id.as_uuid(), answer, &reason, &at],
        from_row,
    )
    .await
}

/// Gives a pending form to `assignee` and clears its draft (the old assignee's), in
/// one statement: a draft the old assignee saves before it is cleared with it, and
/// one saved after finds the form no longer theirs (see `save_draft`). `None` when
/// the form is not pending.
#[tracing::instrument(name = "store.forms.reassign", skip_all)]
pub async fn reassign(
    client: &impl GenericClient,
    id: FormTaskId,
    assignee: &str,
) -> Result<Option<FormTask>, StoreError> {
    let sql = format!(
        "UPDATE form_tasks SET assignee = $2, draft = NULL, updated_at = now()
         WHERE id = $1 AND status = 'pending' RETURNING {COLUMNS}"
    );
    fetch_opt(client, &sql, &[id.as_uuid(), &assignee], from_row).await
}

/// Withdraws pending forms (in the caller's transaction) and returns them.
#[tracing::instrument(name = "store.forms.withdraw", skip_all)]
pub async fn withdraw(
    client: &impl GenericClient,
    ids: &[FormTaskId],
    reason: &str,
) -> Result<Vec<FormTask>, StoreError> {
    let sql = format!(
        "UPDATE form_tasks SET status = 'withdrawn', withdrawal_reason = $2, updated_at = now()
         WHERE id = ANY($1) AND status = 'pending' RETURNING {COLUMNS}"
    );
    let ids: Vec<Uuid> = ids.iter().map(|id| *id.as_uuid()).collect();
    fetch_all(client, &sql, &[&ids, &reason], from_row).await
}

/// Withdraws, in one statement, every pending form of the process tree under `root`
/// (the root's own and its called processes', at any depth), and returns them.
#[tracing::instrument(name = "store.forms.withdraw_tree", skip_all)]
pub async fn withdraw_tree(
    client: &impl GenericClient,
    root: &str,
    reason: &str,
) -> Result<Vec<FormTask>, StoreError> {
    let sql = format!(
        "UPDATE form_tasks SET status = 'withdrawn', withdrawal_reason = $2, updated_at = now()
         WHERE root_process_instance_id = $1 AND status = 'pending' RETURNING {COLUMNS}"
    );
    fetch_all(client, &sql, &[&root, &reason], from_row).await
}

/// Pending forms held by these instances, or belonging to these roots.
#[tracing::instrument(name = "store.forms.pending_in", skip_all)]
pub async fn pending_in(
    client: &impl GenericClient,
    instances: &[String],
) -> Result<Vec<FormTask>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM form_tasks
         WHERE status = 'pending' AND (process_instance_id = ANY($1) OR root_process_instance_id = ANY($1))"
    );
    fetch_all(client, &sql, &[&instances], from_row).await
}

/// Replaces the draft of a pending form assigned to `email` (a send-task form) or
/// to `user_id` (a user task of the engine's). `None`, with nothing written, when
/// the form is not pending or not theirs. The assignee is checked by this
/// statement, on the row it writes: a reassignment that holds the row when this
/// runs is waited for, and the row it leaves (another user's) is not written.
#[tracing::instrument(name = "store.forms.save_draft", skip_all)]
pub async fn save_draft(
    client: &impl GenericClient,
    id: FormTaskId,
    email: &str,
    user_id: &str,
    draft: &Value,
) -> Result<Option<FormTask>, StoreError> {
    let sql = format!(
        "UPDATE form_tasks SET draft = $2, updated_at = now()
         WHERE id = $1 AND status = 'pending'
           AND ((kind = 'send_task' AND assignee = $3)
             OR (kind = 'user_task' AND assignee <> '' AND assignee = $4))
         RETURNING {COLUMNS}"
    );
    fetch_opt(
        client,
        &sql,
        &[id.as_uuid(), draft, &email, &user_id],
        from_row,
    )
    .await
}

/// Whose forms a reader sees: the send-task forms assigned to an email, and the
/// engine's user tasks assigned to an engine user, or unclaimed and open to it as a
/// candidate user or through one of its groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    pub email: String,
    pub user_id: String,
    pub groups: Vec<String>,
    /// The change log keys of these forms (see `FormTask::audience`).
    pub keys: Vec<String>,
}

/// The forms a [`Viewer`] (`$1` email, `$2` engine user id, `$3` groups) sees.
/// One arm per index it can use: by assignee, and the two of unclaimed user tasks
/// by candidate (migration V11).
const VISIBLE: &str = "((kind = 'send_task' AND assignee = $1)
    OR (kind = 'user_task' AND assignee <> '' AND assignee = $2)
    OR (kind = 'user_task' AND assignee = '' AND candidate_users @> ARRAY[$2::text])
    OR (kind = 'user_task' AND assignee = '' AND candidate_groups && $3::text[]))";

/// [`VISIBLE`] with other expressions for the email, the user id and the groups.
pub(super) fn visible(email: &str, user_id: &str, groups: &str) -> String {
    VISIBLE
        .replace("$1", email)
        .replace("$2", user_id)
        .replace("$3", groups)
}

pub struct ListQuery<'a> {
    pub assignee: Option<&'a str>,
    /// Only the forms this viewer sees (a user's own list), when given.
    pub viewer: Option<&'a Viewer>,
    /// Every state when empty.
    pub statuses: &'a [FormState],
    pub business_key: Option<&'a str>,
    pub root_process_instance_id: Option<&'a str>,
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// Form tasks, oldest first, one page.
#[tracing::instrument(name = "store.forms.list", skip_all)]
pub async fn list(
    client: &impl GenericClient,
    query: &ListQuery<'_>,
) -> Result<Vec<FormSummary>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT {columns} FROM form_tasks
             WHERE ($1::text IS NULL OR assignee = $1)
               AND (cardinality($2::text[]) = 0 OR status = ANY($2))
               AND ($3::text IS NULL OR business_key = $3)
               AND ($4::text IS NULL OR root_process_instance_id = $4)
               AND ($5::timestamptz IS NULL OR (created_at, id) > ($5, $6))
               AND ($8::text IS NULL OR {visible})
             ORDER BY created_at, id
             LIMIT $7",
            columns = *SUMMARY_COLUMNS,
            visible = visible("$8", "$9", "$10")
        )
    });
    let (after_time, after_id) = after_parameters(query.after);
    let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
    let viewer = query.viewer;
    fetch_all(
        client,
        &SQL,
        &[
            &query.assignee,
            &statuses,
            &query.business_key,
            &query.root_process_instance_id,
            &after_time,
            &after_id,
            &query.limit,
            &viewer.map(|v| v.email.as_str()),
            &viewer.map(|v| v.user_id.as_str()),
            &viewer.map(|v| v.groups.as_slice()),
        ],
        summary_from_row,
    )
    .await
}

/// A position in the change log: (writing transaction, row number).
pub type Position = (i64, i64);

/// A position read from its two columns, `tx, seq`.
pub(super) fn position(row: &Row) -> Result<Position, StoreError> {
    Ok((row.get(0), row.get(1)))
}

/// A change read from the log: its kind and reason parsed, or a decode error.
pub(super) fn change_from_row(row: &Row) -> Result<Change, StoreError> {
    let kind: &str = row.get("kind");
    let reason: Option<&str> = row.get("reason");
    let kind = ChangeKind::parse(kind, reason).ok_or_else(|| StoreError::Decode {
        column: "form_changes.kind",
        value: format!("{kind} ({})", reason.unwrap_or("no reason")),
    })?;
    Ok(Change {
        position: (row.get("tx"), row.get("seq")),
        form_task_id: FormTaskId::from_uuid(row.get("form_task_id")),
        assignee: row.get("assignee"),
        kind,
        summary: row.get("summary"),
        created_at: row.get("created_at"),
    })
}

/// Appends a change, in the caller's transaction.
#[tracing::instrument(name = "store.forms.append_change", skip_all)]
pub async fn append_change(
    client: &impl GenericClient,
    form_task_id: FormTaskId,
    assignee: &str,
    kind: ChangeKind,
    summary: &Value,
) -> Result<(), StoreError> {
    let (kind, reason) = kind.as_stored();
    client
        .execute(
            &client.prepare_cached("INSERT INTO form_changes (form_task_id, assignee, kind, reason, summary) VALUES ($1, $2, $3, $4, $5)").await?,
            &[form_task_id.as_uuid(), &assignee, &kind, &reason, summary],
        )
        .await?;
    Ok(())
}

/// Changes after `after`, under some keys or all, that no transaction still in
/// flight can precede: only rows of transactions older than the snapshot's xmin.
#[tracing::instrument(name = "store.forms.changes_after", skip_all)]
pub async fn changes_after(
    client: &impl GenericClient,
    keys: Option<&[&str]>,
    after: Position,
    limit: i64,
) -> Result<Vec<Change>, StoreError> {
    let sql = "SELECT tx, seq, form_task_id, assignee, kind, reason, summary, created_at
         FROM form_changes
         WHERE ($1::text[] IS NULL OR assignee = ANY($1))
           AND (tx, seq) > ($2, $3)
           AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
         ORDER BY tx, seq
         LIMIT $4";
    fetch_all(
        client,
        sql,
        &[&keys, &after.0, &after.1, &limit],
        change_from_row,
    )
    .await
}

/// The changes under `keys` after `after`, up to `limit`, read in one snapshot
/// with the prune mark; `None` when the log no longer holds everything after
/// `after` (a prune took some).
#[tracing::instrument(name = "store.forms.changes_since", skip_all)]
pub async fn changes_since(
    client: &mut deadpool_postgres::Object,
    keys: &[&str],
    after: Position,
    limit: i64,
) -> Result<Option<Vec<Change>>, StoreError> {
    let tx = one_snapshot(client).await?;
    if after < super::retention::change_log_pruned(&tx).await? {
        return Ok(None);
    }
    let batch = changes_after(&tx, Some(keys), after, limit).await?;
    tx.commit().await?;
    Ok(Some(batch))
}

/// A read-only transaction that reads one snapshot throughout (repeatable read).
pub(super) async fn one_snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// The end of what readers can see now: the greatest position below the xmin.
#[tracing::instrument(name = "store.forms.frontier", skip_all)]
pub async fn frontier(client: &impl GenericClient) -> Result<Position, StoreError> {
    let sql = "SELECT tx, seq FROM form_changes
         WHERE tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
         ORDER BY tx DESC, seq DESC LIMIT 1";
    Ok(fetch_opt(client, sql, &[], position)
        .await?
        .unwrap_or((0, 0)))
}

/// What a reader of the log asks before it reads from `frontier`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadCheck {
    /// Changes have committed that readers cannot take yet: a transaction older
    /// than theirs (in any database of the cluster: transaction ids are shared)
    /// still runs, so they lie at or above the snapshot's xmin.
    pub held_back: bool,
    /// The log, or `frontier`, stands at positions this cluster has not reached:
    /// the database now lives in another cluster (see [`adopt_cluster`]).
    pub elsewhere: bool,
}

/// The statement of [`read_check`] (`$1`: the reader's frontier). It compares the
/// log's greatest position with the snapshot's bounds: one probe at the end of the
/// position index, however long the log (`EXISTS (... WHERE tx >= bound)` was read
/// by a scan of the whole log, 24 ms a read under load).
pub const READ_CHECK: &str = "SELECT coalesce(m.tx >= pg_snapshot_xmin(s)::text::bigint, false),
       $1 >= pg_snapshot_xmax(s)::text::bigint
         OR coalesce(m.tx >= pg_snapshot_xmax(s)::text::bigint, false)
     FROM pg_current_snapshot() s, (SELECT max(tx) AS tx FROM form_changes) m";

#[tracing::instrument(name = "store.forms.read_check", skip_all)]
pub async fn read_check(
    client: &impl GenericClient,
    frontier: Position,
) -> Result<ReadCheck, StoreError> {
    // Every position this cluster wrote is below the next transaction id it will
    // hand out (xmax): its own id, or an earlier committed one's.
    let row = client
        .query_one(&client.prepare_cached(READ_CHECK).await?, &[&frontier.0])
        .await?;
    Ok(ReadCheck {
        held_back: row.get(0),
        elsewhere: row.get(1),
    })
}

/// The first position in the log, if it holds any change.
#[tracing::instrument(name = "store.forms.first_position", skip_all)]
pub async fn first_position(client: &impl GenericClient) -> Result<Option<Position>, StoreError> {
    let sql = "SELECT tx, seq FROM form_changes ORDER BY tx, seq LIMIT 1";
    fetch_opt(client, sql, &[], position).await
}

/// What [`adopt_cluster`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adoption {
    /// The cluster's system identifier recorded before, when it differs from this
    /// cluster's (the database was copied or restored into another cluster).
    pub other_cluster: Option<i64>,
    /// How far every position was moved down, when the log held positions this
    /// cluster has not reached (its transaction ids are lower than the old
    /// cluster's). Every cursor handed out before then resumes with a snapshot.
    pub moved_down_by: Option<i64>,
}

/// Makes the change log's positions this cluster's. Positions are transaction ids:
/// in a copy of the database in another cluster (pg_dump and restore, logical
/// replication, an upgrade by replication) the new cluster's ids are usually far
/// lower than the log's, so new changes would sort below old ones (streams resumed
/// after them hear nothing again, snapshots wait for them forever). Then every
/// position in the log and the prune mark move down by one amount, below every id
/// the cluster will hand out: their order stays, nothing is lost, and no cursor
/// handed out before names a position any more (so it resumes with a snapshot).
/// Writers wait for the move (a lock on the log); readers do not. Also records the
/// cluster's system identifier, to say in the log when the database moved. Cheap
/// when there is nothing to do; safe to run from several replicas at once.
#[tracing::instrument(name = "store.forms.adopt_cluster", skip_all)]
pub async fn adopt_cluster(client: &mut deadpool_postgres::Object) -> Result<Adoption, StoreError> {
    // The identity is for the record only; a server that does not let ramp read it
    // still has its positions checked.
    let identity: Option<i64> = match client
        .query_one("SELECT system_identifier FROM pg_control_system()", &[])
        .await
    {
        Ok(row) => Some(row.get(0)),
        Err(error) => {
            tracing::debug!(%error, "cannot read the cluster's system identifier");
            None
        }
    };
    let ahead = "SELECT max(tx), pg_snapshot_xmax(pg_current_snapshot())::text::bigint
                 FROM form_changes";
    let recorded: Option<i64> = client
        .query_opt("SELECT system_identifier FROM change_log_cluster", &[])
        .await?
        .map(|row| row.get(0));
    let row = client.query_one(ahead, &[]).await?;
    let (top, next): (Option<i64>, i64) = (row.get(0), row.get(1));
    let is_ahead = top.is_some_and(|top| top >= next);
    if !is_ahead && (identity.is_none() || identity == recorded) {
        return Ok(Adoption {
            other_cluster: None,
            moved_down_by: None,
        });
    }
    let tx = client.transaction().await?;
    let mut moved_down_by = None;
    if is_ahead {
        // Self-exclusive, and excludes writers (not readers): no change is written
        // between the check and the move, and one replica moves the log at a time.
        // Taken only when there is a move to make: writers never wait for the record.
        tx.batch_execute("LOCK TABLE form_changes IN SHARE ROW EXCLUSIVE MODE")
            .await?;
        let row = tx.query_one(ahead, &[]).await?;
        let (top, next): (Option<i64>, i64) = (row.get(0), row.get(1));
        if let Some(top) = top.filter(|&top| top >= next) {
            let by = top + 1;
            tx.execute("UPDATE form_changes SET tx = tx - $1", &[&by])
                .await?;
            // No mark stands for (0, 0): "nothing below the first position". It
            // moves with the positions, or every cursor would be below it.
            tx.execute(
                "INSERT INTO change_log_pruned (id, tx, seq) VALUES (true, 0, 0)
                 ON CONFLICT (id) DO NOTHING",
                &[],
            )
            .await?;
            tx.execute("UPDATE change_log_pruned SET tx = tx - $1", &[&by])
                .await?;
            moved_down_by = Some(by);
        }
    }
    let mut other_cluster = None;
    if let Some(identity) = identity {
        other_cluster = tx
            .query_opt(
                "SELECT system_identifier FROM change_log_cluster WHERE system_identifier <> $1",
                &[&identity],
            )
            .await?
            .map(|row| row.get(0));
        tx.execute(
            "INSERT INTO change_log_cluster (id, system_identifier) VALUES (true, $1)
             ON CONFLICT (id) DO UPDATE SET system_identifier = EXCLUDED.system_identifier,
                 recorded_at = now()
             WHERE change_log_cluster.system_identifier <> EXCLUDED.system_identifier",
            &[&identity],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Adoption {
        other_cluster,
        moved_down_by,
    })
}

/// When the oldest change still in the log was written.
#[tracing::instrument(name = "store.forms.oldest_change", skip_all)]
pub async fn oldest_change(
    client: &impl GenericClient,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(client
        .query_one(
            &client
                .prepare_cached("SELECT min(created_at) FROM form_changes")
                .await?,
            &[],
        )
        .await?
        .get(0))
}

#[tracing::instrument(name = "store.forms.schema", skip_all)]
pub async fn schema(
    client: &impl GenericClient,
    deployment_id: &str,
    form_id: &str,
) -> Result<Option<Value>, StoreError> {
    let sql = "SELECT schema FROM form_schemas WHERE deployment_id = $1 AND form_id = $2";
    fetch_opt(client, sql, &[&deployment_id, &form_id], first).await
}

#[tracing::instrument(name = "store.forms.put_schema", skip_all)]
pub async fn put_schema(
    client: &impl GenericClient,
    deployment_id: &str,
    form_id: &str,
    schema: &Value,
) -> Result<(), StoreError> {
    client
        .execute(
            &client
                .prepare_cached(
                    "INSERT INTO form_schemas (deployment_id, form_id, schema) VALUES ($1, $2, $3)
             ON CONFLICT (deployment_id, form_id) DO NOTHING",
                )
                .await?,
            &[&deployment_id, &form_id, schema],
        )
        .await?;
    Ok(())
}

/// The channel on which replicas tell each other that the change log grew.
/// Notifications carry no data.
const CHANGES_CHANNEL: &str = "ramp_form_changes";

/// Tells every replica listening (see [`listen_for_changes`]) that the change log
/// grew: one data-less notification.
#[tracing::instrument(name = "store.forms.announce_changes", skip_all)]
pub async fn announce_changes(client: &impl GenericClient) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_notify($1, '')", &[&CHANGES_CHANNEL])
        .await?;
    Ok(())
}

/// A connection of its own, outside the pool, that listens for announced changes.
pub struct ChangeListener {
    announced: tokio::sync::mpsc::UnboundedReceiver<()>,
    driver: tokio::task::JoinHandle<()>,
    /// Kept: the connection lives while its client does.
    _client: tokio_postgres::Client,
}

impl ChangeListener {
    /// The next announcement; `None` once the connection is lost.
    pub async fn next(&mut self) -> Option<()> {
        self.announced.recv().await
    }
}

impl Drop for ChangeListener {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Opens a connection outside the pool and listens on it for announced changes.
#[tracing::instrument(name = "store.forms.listen_for_changes", skip_all)]
pub async fn listen_for_changes(store: &super::Store) -> Result<ChangeListener, StoreError> {
    use futures::StreamExt;
    let (client, mut connection) = store.connect_unpooled().await?;
    let (announce, announced) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                    let _ = announce.send(());
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "the LISTEN connection failed");
                    break;
                }
            }
        }
    });
    let listener = ChangeListener {
        announced,
        driver,
        _client: client,
    };
    listener
        ._client
        .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
        .await?;
    Ok(listener)
}

/// How large the change log is, as operators watch it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogSize {
    /// Rows, from PostgreSQL's statistics (no count over the log).
    pub entries: i64,
    /// Seconds since the oldest change still in the log; 0 when it is empty.
    pub oldest_age: f64,
}

/// The change log's size (the oldest row found through the position index).
#[tracing::instrument(name = "store.forms.log_size", skip_all)]
pub async fn log_size(client: &impl GenericClient) -> Result<LogSize, StoreError> {
    let row = client
        .query_one(
            "SELECT
                COALESCE((SELECT n_live_tup FROM pg_stat_user_tables
                          WHERE relname = 'form_changes' AND schemaname = current_schema()), 0)::bigint,
                COALESCE((SELECT extract(epoch FROM now() - created_at)
                          FROM form_changes ORDER BY tx, seq LIMIT 1), 0)::float8",
            &[],
        )
        .await?;
    Ok(LogSize {
        entries: row.get(0),
        oldest_age: row.get(1),
    })
}
