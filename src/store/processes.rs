//! Queries of the `processes` table. Each takes a client (or transaction), so the
//! caller decides the transaction.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{StoreError, changes_one, decode, fetch_all, fetch_opt, first};
use crate::ids::ProcessId;
use crate::processes::{Process, ProcessState};

const COLUMNS: &str = "id, definition_key, business_key, state, engine_instance_id, started_by, \
                       end_reason, created_at, ended_at";

fn from_row(row: &Row) -> Result<Process, StoreError> {
    Ok(Process {
        id: ProcessId::from_uuid(row.get("id")),
        definition_key: row.get("definition_key"),
        business_key: row.get("business_key"),
        state: decode("processes.state", row.get("state"), ProcessState::parse)?,
        engine_instance_id: row.get("engine_instance_id"),
        started_by: row.get("started_by"),
        created_at: row.get("created_at"),
        ended_at: row.get("ended_at"),
        end_reason: row.get("end_reason"),
    })
}

/// Why a reservation was not made.
#[derive(Debug)]
pub enum ReserveError {
    /// An active (or starting) process holds the business key.
    KeyTaken,
    /// This caller already used this request id.
    RequestSeen,
    Store(StoreError),
}

pub struct NewProcess<'a> {
    pub id: ProcessId,
    pub definition_key: &'a str,
    pub business_key: &'a str,
    pub started_by: &'a str,
    pub request_id: Option<&'a str>,
    pub variables: &'a serde_json::Value,
}

/// Reserves the business key: a `starting` row that the partial unique index lets
/// exist once per key among starting and active processes.
#[tracing::instrument(name = "store.processes.reserve", skip_all)]
pub async fn reserve(
    client: &impl GenericClient,
    new: &NewProcess<'_>,
) -> Result<Process, ReserveError> {
    let sql = format!(
        "INSERT INTO processes (id, definition_key, business_key, state, started_by, request_id, variables)
         VALUES ($1, $2, $3, 'starting', $4, $5, $6) RETURNING {COLUMNS}"
    );
    match client
        .query_one(
            &client
                .prepare_cached(&sql)
                .await
                .map_err(|e| ReserveError::Store(e.into()))?,
            &[
                new.id.as_uuid(),
                &new.definition_key,
                &new.business_key,
                &new.started_by,
                &new.request_id,
                new.variables,
            ],
        )
        .await
    {
        Ok(row) => from_row(&row).map_err(ReserveError::Store),
        Err(error) => match super::unique_violation(&error) {
            Some("processes_one_active_per_business_key") => Err(ReserveError::KeyTaken),
            Some("processes_request_id") => Err(ReserveError::RequestSeen),
            _ => Err(ReserveError::Store(error.into())),
        },
    }
}

#[tracing::instrument(name = "store.processes.get", skip_all)]
pub async fn get(
    client: &impl GenericClient,
    id: ProcessId,
) -> Result<Option<Process>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM processes WHERE id = $1");
    fetch_opt(client, &sql, &[id.as_uuid()], from_row).await
}

#[tracing::instrument(name = "store.processes.by_request", skip_all)]
pub async fn by_request(
    client: &impl GenericClient,
    started_by: &str,
    request_id: &str,
) -> Result<Option<Process>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM processes WHERE started_by = $1 AND request_id = $2");
    fetch_opt(client, &sql, &[&started_by, &request_id], from_row).await
}

/// The process that holds a business key now (starting or active), if any.
#[tracing::instrument(name = "store.processes.holding", skip_all)]
pub async fn holding(
    client: &impl GenericClient,
    business_key: &str,
) -> Result<Option<Process>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM processes WHERE business_key = $1 AND state IN ('starting', 'active')"
    );
    fetch_opt(client, &sql, &[&business_key], from_row).await
}

#[tracing::instrument(name = "store.processes.by_engine_instance", skip_all)]
pub async fn by_engine_instance(
    client: &impl GenericClient,
    engine_instance_id: &str,
) -> Result<Option<Process>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM processes WHERE engine_instance_id = $1");
    fetch_opt(client, &sql, &[&engine_instance_id], from_row).await
}

/// A starting reservation becomes active with its engine instance. Returns `None`
/// if it is no longer starting (reconciliation settled it first).
#[tracing::instrument(name = "store.processes.activate", skip_all)]
pub async fn activate(
    client: &impl GenericClient,
    id: ProcessId,
    engine_instance_id: &str,
) -> Result<Option<Process>, StoreError> {
    let sql = format!(
        "UPDATE processes SET state = 'active', engine_instance_id = $2, updated_at = now()
         WHERE id = $1 AND state = 'starting' RETURNING {COLUMNS}"
    );
    fetch_opt(client, &sql, &[id.as_uuid(), &engine_instance_id], from_row).await
}

/// Releases a reservation whose start definitely did not happen: the row goes, and
/// with it the claim on the key and the request id.
#[tracing::instrument(name = "store.processes.release", skip_all)]
pub async fn release(client: &impl GenericClient, id: ProcessId) -> Result<bool, StoreError> {
    changes_one(
        client,
        "DELETE FROM processes WHERE id = $1 AND state = 'starting'",
        &[id.as_uuid()],
    )
    .await
}

/// Releases a reservation whose start may still reach the engine (its outcome was
/// unknown and the engine showed no instance yet): the row goes as with [`release`],
/// and its id is kept in `released_starts`, so that an instance carrying it that
/// arrives later can be found and removed.
#[tracing::instrument(name = "store.processes.release_uncertain", skip_all)]
pub async fn release_uncertain(
    client: &impl GenericClient,
    id: ProcessId,
) -> Result<bool, StoreError> {
    let sql = "WITH gone AS (DELETE FROM processes WHERE id = $1 AND state = 'starting' \
                 RETURNING id, business_key) \
               INSERT INTO released_starts (process_id, business_key) \
                 SELECT id, business_key FROM gone ON CONFLICT DO NOTHING";
    changes_one(client, sql, &[id.as_uuid()]).await
}

/// Starts released since `since`: those whose instance may still arrive.
#[tracing::instrument(name = "store.processes.released_since", skip_all)]
pub async fn released_since(
    client: &impl GenericClient,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    let sql = "SELECT process_id FROM released_starts WHERE released_at >= $1 \
               ORDER BY released_at LIMIT $2";
    fetch_all(client, sql, &[&since, &limit], first).await
}

/// Forgets released starts older than `before`: no longer watched.
#[tracing::instrument(name = "store.processes.forget_released", skip_all)]
pub async fn forget_released(
    client: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let sql = "DELETE FROM released_starts WHERE released_at < $1";
    Ok(client
        .execute(&client.prepare_cached(sql).await?, &[&before])
        .await?)
}

/// Ends an active (or starting) process: `completed`, `cancelled` or `terminated`.
#[tracing::instrument(name = "store.processes.end", skip_all)]
pub async fn end(
    client: &impl GenericClient,
    id: ProcessId,
    state: &str,
    reason: &str,
    ended_at: DateTime<Utc>,
) -> Result<Option<Process>, StoreError> {
    let sql = format!(
        "UPDATE processes SET state = $2, end_reason = $3, ended_at = $4, updated_at = now()
         WHERE id = $1 AND state IN ('starting', 'active') RETURNING {COLUMNS}"
    );
    fetch_opt(
        client,
        &sql,
        &[id.as_uuid(), &state, &reason, &ended_at],
        from_row,
    )
    .await
}

/// Reservations still starting that were made before `before`.
#[tracing::instrument(name = "store.processes.stale_starting", skip_all)]
pub async fn stale_starting(
    client: &impl GenericClient,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Process>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM processes WHERE state = 'starting' AND updated_at < $1
         ORDER BY updated_at LIMIT $2"
    );
    fetch_all(client, &sql, &[&before, &limit], from_row).await
}

/// Active processes among these engine instances.
#[tracing::instrument(name = "store.processes.active_among", skip_all)]
pub async fn active_among(
    client: &impl GenericClient,
    engine_instance_ids: &[String],
) -> Result<Vec<Process>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM processes WHERE state = 'active' AND engine_instance_id = ANY($1)"
    );
    fetch_all(client, &sql, &[&engine_instance_ids], from_row).await
}

/// Filters and position of a page of processes, newest first.
pub struct ListQuery<'a> {
    pub business_key: Option<&'a str>,
    pub definition_key: Option<&'a str>,
    pub states: &'a [String],
    /// The last row of the previous page: (created_at, id).
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

#[tracing::instrument(name = "store.processes.list", skip_all)]
pub async fn list(
    client: &impl GenericClient,
    query: &ListQuery<'_>,
) -> Result<Vec<Process>, StoreError> {
    let (after_time, after_id) = super::after_parameters(query.after);
    let sql = format!(
        "SELECT {COLUMNS} FROM processes
         WHERE ($1::text IS NULL OR business_key = $1)
           AND ($2::text IS NULL OR definition_key = $2)
           AND (cardinality($3::text[]) = 0 OR state = ANY($3))
           AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5))
         ORDER BY created_at DESC, id DESC
         LIMIT $6"
    );
    fetch_all(
        client,
        &sql,
        &[
            &query.business_key,
            &query.definition_key,
            &query.states,
            &after_time,
            &after_id,
            &query.limit,
        ],
        from_row,
    )
    .await
}

/// Where a watch of the engine's history stands (engine time), if it ran before.
#[tracing::instrument(name = "store.processes.watermark", skip_all)]
pub async fn watermark(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let sql = "SELECT watermark FROM engine_watch WHERE name = $1";
    fetch_opt(client, sql, &[&name], first).await
}

/// The database's clock: the one `created_at` and `updated_at` are written by.
#[tracing::instrument(name = "store.processes.database_now", skip_all)]
pub async fn database_now(client: &impl GenericClient) -> Result<DateTime<Utc>, StoreError> {
    Ok(client
        .query_one(&client.prepare_cached("SELECT now()").await?, &[])
        .await?
        .get(0))
}

/// Moves a watch forward (never back).
#[tracing::instrument(name = "store.processes.advance_watermark", skip_all)]
pub async fn advance_watermark(
    client: &impl GenericClient,
    name: &str,
    to: DateTime<Utc>,
) -> Result<(), StoreError> {
    client
        .execute(
            &client.prepare_cached("INSERT INTO engine_watch (name, watermark) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE
               SET watermark = GREATEST(engine_watch.watermark, EXCLUDED.watermark), updated_at = now()").await?,
            &[&name, &to],
        )
        .await?;
    Ok(())
}
