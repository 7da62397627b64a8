//! Submissions and the correlation outbox. Rows are claimed with a lease (the claim
//! holds row locks only for its own statement), and an outcome is recorded only by
//! the claim that still owns the row (`lease_generation`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{StoreError, changes_one, decode, fetch_all, fetch_opt};
use crate::delivery::{Claimed, Delivery, DeliveryRecord, DeliveryState, Outcome};
use crate::forms::{FormTask, Submission};
use crate::ids::{FormTaskId, SubmissionId};

/// The columns [`submission`] reads.
const SUBMISSION_COLUMNS: &str = "id, form_task_id, submitted_by, data, created_at";

fn submission(row: &Row) -> Result<Submission, StoreError> {
    Ok(Submission {
        id: SubmissionId::from_uuid(row.get("id")),
        form_task_id: FormTaskId::from_uuid(row.get("form_task_id")),
        submitted_by: row.get("submitted_by"),
        data: row.get("data"),
        created_at: row.get("created_at"),
    })
}

#[tracing::instrument(name = "store.deliveries.submission_by_request", skip_all)]
pub async fn submission_by_request(
    client: &impl GenericClient,
    submitted_by: &str,
    request_id: &str,
) -> Result<Option<Submission>, StoreError> {
    let sql = format!(
        "SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE submitted_by = $1 AND request_id = $2"
    );
    fetch_opt(client, &sql, &[&submitted_by, &request_id], submission).await
}

/// Puts a new answer's message in the outbox, due now: a part (`outbox AS (...)`)
/// of the statement that stores the answer ([`super::forms::submit`]), so that the
/// message commits with it, in one round trip. It reads the answer from that
/// statement's `submission` (`id, form_task_id, data`) and the form's message, as
/// stored, from its `completed` (`id, kind, external_task_id, message_name,
/// process_instance_id, activity_instance_id`). The answer to a user task completes
/// that engine task (`engine_task_id`; its `message_name` is '').
pub(super) const ENQUEUE: &str = "outbox AS (
            INSERT INTO correlation_outbox (id, submission_id, form_task_id, message_name,
                engine_task_id, process_instance_id, activity_instance_id, variables, state)
            SELECT s.id, s.id, s.form_task_id, c.message_name,
                CASE WHEN c.kind = 'user_task' THEN c.external_task_id END,
                c.process_instance_id, c.activity_instance_id, s.data, 'pending'
            FROM submission s JOIN completed c ON c.id = s.form_task_id
        )";

/// The latest answer to a form task (a returned form may have been answered again).
#[tracing::instrument(name = "store.deliveries.submission_of", skip_all)]
pub async fn submission_of(
    client: &impl GenericClient,
    form_task_id: FormTaskId,
) -> Result<Option<Submission>, StoreError> {
    let sql = format!(
        "SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE form_task_id = $1
         ORDER BY created_at DESC, id DESC LIMIT 1"
    );
    fetch_opt(client, &sql, &[form_task_id.as_uuid()], submission).await
}

/// A delivery's columns, from `state` on (see [`DELIVERY_COLUMNS`]).
fn delivery(row: &Row, first: usize) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        state: decode(
            "correlation_outbox.state",
            row.get(first),
            DeliveryState::parse,
        )?,
        attempts: row.get(first + 1),
        last_error: row.get(first + 2),
        engine_error: row.get(first + 3),
        next_attempt_at: row.get(first + 4),
        delivered_at: row.get(first + 5),
    })
}

/// The columns [`delivery`] reads, in its order.
const DELIVERY_COLUMNS: &str =
    "o.state, o.attempts, o.last_error, o.engine_error, o.next_attempt_at, o.delivered_at";

/// The delivery of the latest answer to a form task.
#[tracing::instrument(name = "store.deliveries.delivery_of", skip_all)]
pub async fn delivery_of(
    client: &impl GenericClient,
    form_task_id: FormTaskId,
) -> Result<Option<Delivery>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM correlation_outbox o WHERE o.form_task_id = $1
         ORDER BY o.created_at DESC, o.id DESC LIMIT 1"
    );
    fetch_opt(client, &sql, &[form_task_id.as_uuid()], |row| {
        delivery(row, 0)
    })
    .await
}

/// Claims due rows for `owner` until `lease` from now: pending, due, and not under
/// another live lease. Each claim counts an attempt and bumps the generation.
///
/// Every recorded outcome clears the lease, so a row still carrying one when it is
/// claimed again was left by a claim that never recorded its outcome (its replica
/// was killed, frozen past the lease, or lost the database): that attempt may have
/// reached the engine, and the claim comes back `uncertain`, to be checked by its
/// marker before anything is sent again.
#[tracing::instrument(name = "store.deliveries.claim", skip_all)]
pub async fn claim(
    client: &impl GenericClient,
    owner: Uuid,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let lease_ms = lease.as_millis() as i64;
    let sql = "UPDATE correlation_outbox SET
                lease_owner = $1,
                lease_until = now() + make_interval(secs => $2::bigint / 1000.0),
                -- A leased row is not due again before its lease ends: moved out of
                -- the due range, it costs the next claims nothing (they would
                -- otherwise step over every leased row, a backlog's worth when the
                -- engine is slow).
                next_attempt_at = now() + make_interval(secs => $2::bigint / 1000.0),
                lease_generation = lease_generation + 1,
                attempts = attempts + 1,
                uncertain = uncertain OR lease_owner IS NOT NULL
             WHERE id IN (
                SELECT id FROM correlation_outbox
                WHERE state = 'pending' AND next_attempt_at <= now()
                  AND (lease_until IS NULL OR lease_until < now())
                ORDER BY next_attempt_at
                LIMIT $3
                FOR UPDATE SKIP LOCKED)
             RETURNING id, form_task_id, message_name, process_instance_id, activity_instance_id, variables,
                       attempts, uncertain, lease_generation,
                       (extract(epoch FROM now() - created_at) * 1000)::bigint, engine_task_id";
    fetch_all(client, sql, &[&owner, &lease_ms, &limit], |row| {
        Ok(Claimed {
            id: SubmissionId::from_uuid(row.get(0)),
            form_task_id: FormTaskId::from_uuid(row.get(1)),
            message_name: row.get(2),
            process_instance_id: row.get(3),
            activity_instance_id: row.get(4),
            variables: row.get(5),
            attempts: row.get(6),
            uncertain: row.get(7),
            lease_generation: row.get(8),
            age: Duration::from_millis(row.get::<_, i64>(9).max(0) as u64),
            engine_task_id: row.get(10),
        })
    })
    .await
}

/// Records an outcome if this claim still owns the row. False when a newer claim
/// took it over (this replica was too slow): then nothing is written. A refusal is
/// recorded by `return_form`, which also gives the form back.
#[tracing::instrument(name = "store.deliveries.record", skip_all)]
pub async fn record(
    client: &impl GenericClient,
    id: SubmissionId,
    generation: i64,
    outcome: &Outcome,
) -> Result<bool, StoreError> {
    let changed = match outcome {
        Outcome::Delivered => {
            client
                .execute(
                    &client.prepare_cached("UPDATE correlation_outbox SET state = 'delivered', delivered_at = now(), uncertain = false,
                        last_error = NULL, engine_error = NULL, lease_owner = NULL, lease_until = NULL
                     WHERE id = $1 AND lease_generation = $2").await?,
                    &[id.as_uuid(), &generation],
                )
                .await?
        }
        Outcome::Retry { after, reason, error, uncertain } => {
            let after_ms = after.as_millis() as i64;
            client
                .execute(
                    &client.prepare_cached("UPDATE correlation_outbox SET next_attempt_at = now() + make_interval(secs => $3::bigint / 1000.0),
                        last_error = $4, engine_error = $5, uncertain = $6, lease_owner = NULL, lease_until = NULL
                     WHERE id = $1 AND lease_generation = $2").await?,
                    &[id.as_uuid(), &generation, &after_ms, reason, error, uncertain],
                )
                .await?
        }
        Outcome::Undeliverable { reason, error }
        | Outcome::Failed { reason, error }
        | Outcome::Refused { reason, error } => {
            let state = match outcome {
                Outcome::Failed { .. } => DeliveryState::Failed,
                Outcome::Refused { .. } => DeliveryState::Refused,
                _ => DeliveryState::Undeliverable,
            }
            .as_str();
            client
                .execute(
                    &client.prepare_cached("UPDATE correlation_outbox SET state = $3, last_error = $4, engine_error = $5,
                        lease_owner = NULL, lease_until = NULL
                     WHERE id = $1 AND lease_generation = $2").await?,
                    &[id.as_uuid(), &generation, &state, reason, error],
                )
                .await?
        }
    };
    Ok(changed == 1)
}

/// Records a refusal and gives the form back to its author, in the caller's
/// transaction: the delivery ends `refused`, and the form task, if it is still the
/// completed form of this answer, is pending again with the answer as its draft and
/// `reason` as its return reason. `None` when the claim lost the row (nothing is
/// written); `Some(None)` when the form had left meanwhile (withdrawn).
#[tracing::instrument(name = "store.deliveries.return_form", skip_all)]
pub async fn return_form(
    client: &impl GenericClient,
    id: SubmissionId,
    generation: i64,
    reason: &str,
    error: &str,
    at: DateTime<Utc>,
) -> Result<Option<Option<FormTask>>, StoreError> {
    let Some(refused) = client
        .query_opt(
            "UPDATE correlation_outbox SET state = 'refused', last_error = $3, engine_error = $4,
                lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND lease_generation = $2 AND state = 'pending'
             RETURNING form_task_id, variables",
            &[id.as_uuid(), &generation, &reason, &error],
        )
        .await?
    else {
        return Ok(None);
    };
    let form_task_id = FormTaskId::from_uuid(refused.get(0));
    let answer: Value = refused.get(1);
    Ok(Some(
        super::forms::give_back(client, form_task_id, &answer, reason, at).await?,
    ))
}

const RECORD_COLUMNS: &str = "o.id, o.form_task_id, t.form_name, t.assignee, t.business_key, \
    o.message_name, o.process_instance_id, o.created_at";

/// A delivery and its form, read from `RECORD_COLUMNS` then `DELIVERY_COLUMNS`.
fn record_from_row(row: &Row) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        id: SubmissionId::from_uuid(row.get(0)),
        form_task_id: FormTaskId::from_uuid(row.get(1)),
        form_name: row.get(2),
        assignee: row.get(3),
        business_key: row.get(4),
        message_name: row.get(5),
        process_instance_id: row.get(6),
        created_at: row.get(7),
        delivery: delivery(row, 8)?,
    })
}

/// One delivery, by its (the submission's) id.
#[tracing::instrument(name = "store.deliveries.record_by_id", skip_all)]
pub async fn record_by_id(
    client: &impl GenericClient,
    id: SubmissionId,
) -> Result<Option<DeliveryRecord>, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, {DELIVERY_COLUMNS}
         FROM correlation_outbox o JOIN form_tasks t ON t.id = o.form_task_id
         WHERE o.id = $1"
    );
    fetch_opt(client, &sql, &[id.as_uuid()], record_from_row).await
}

/// Deliveries in `states` (failed, undeliverable), oldest first, one page.
#[tracing::instrument(name = "store.deliveries.needing_attention", skip_all)]
pub async fn needing_attention(
    client: &impl GenericClient,
    states: &[DeliveryState],
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    let (after_time, after_id) = super::after_parameters(after);
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, {DELIVERY_COLUMNS}
         FROM correlation_outbox o JOIN form_tasks t ON t.id = o.form_task_id
         WHERE o.state IN ('failed', 'undeliverable', 'refused') AND o.state = ANY($1)
           AND ($2::timestamptz IS NULL OR (o.created_at, o.id) > ($2, $3))
         ORDER BY o.created_at, o.id
         LIMIT $4"
    );
    fetch_all(
        client,
        &sql,
        &[&states, &after_time, &after_id, &limit],
        record_from_row,
    )
    .await
}

/// Makes a failed or undeliverable delivery pending and due now, with its attempts
/// counted afresh. An uncertain last attempt stays uncertain (the dispatcher checks
/// the engine before sending again). False when it is in another state or unknown.
#[tracing::instrument(name = "store.deliveries.retry", skip_all)]
pub async fn retry(client: &impl GenericClient, id: SubmissionId) -> Result<bool, StoreError> {
    changes_one(
        client,
        "UPDATE correlation_outbox SET state = 'pending', attempts = 0, next_attempt_at = now(),
            lease_owner = NULL, lease_until = NULL, lease_generation = lease_generation + 1
         WHERE id = $1 AND state IN ('failed', 'undeliverable')",
        &[id.as_uuid()],
    )
    .await
}

/// Gives a failed delivery up: undeliverable, with `reason` as its last error.
/// False when it is in another state or unknown.
#[tracing::instrument(name = "store.deliveries.abandon", skip_all)]
pub async fn abandon(
    client: &impl GenericClient,
    id: SubmissionId,
    reason: &str,
) -> Result<bool, StoreError> {
    changes_one(
        client,
        "UPDATE correlation_outbox SET state = 'undeliverable', last_error = $2,
            lease_owner = NULL, lease_until = NULL, lease_generation = lease_generation + 1
         WHERE id = $1 AND state = 'failed'",
        &[id.as_uuid(), &reason],
    )
    .await
}

/// The outbox as operators watch it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backlog {
    pub pending: i64,
    pub failed: i64,
    pub undeliverable: i64,
    /// Seconds the oldest pending message has waited; 0 without one.
    pub oldest_pending_age: f64,
}

/// Counts by state, through the partial indexes of pending and of failed and
/// undeliverable rows.
#[tracing::instrument(name = "store.deliveries.backlog", skip_all)]
pub async fn backlog(client: &impl GenericClient) -> Result<Backlog, StoreError> {
    let row = client
        .query_one(
            "SELECT
                (SELECT count(*) FROM correlation_outbox WHERE state = 'pending'),
                (SELECT count(*) FROM correlation_outbox WHERE state = 'failed'),
                (SELECT count(*) FROM correlation_outbox WHERE state = 'undeliverable'),
                COALESCE((SELECT extract(epoch FROM now() - min(created_at))
                          FROM correlation_outbox WHERE state = 'pending'), 0)::float8",
            &[],
        )
        .await?;
    Ok(Backlog {
        pending: row.get(0),
        failed: row.get(1),
        undeliverable: row.get(2),
        oldest_pending_age: row.get(3),
    })
}
