//! Retention: deletes old rows in small batches. Each batch is one short
//! transaction that locks only the rows it deletes (found through an index, with
//! `SKIP LOCKED` where a writer may hold them), so writers never wait behind a prune.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::StoreError;
use super::forms::{Position, position};

/// Serializes change-log pruning across replicas (the watermark moves in order).
/// Any constant works as long as it stays the same.
const CHANGE_LOG_PRUNE_LOCK: i64 = 0x7261_6d70_7072_756e; // "ramppun"

/// The position at or below which the change log may have been pruned; `(0, 0)`
/// when nothing ever was.
#[tracing::instrument(name = "store.retention.change_log_pruned", skip_all)]
pub async fn change_log_pruned(client: &impl GenericClient) -> Result<Position, StoreError> {
    let sql = "SELECT tx, seq FROM change_log_pruned";
    Ok(super::fetch_opt(client, sql, &[], position)
        .await?
        .unwrap_or((0, 0)))
}

/// Deletes up to `limit` of the oldest changes (by position) written before
/// `before`, and moves the watermark over them. Only a prefix of the log goes, and
/// only rows below the oldest transaction in flight (no row can still appear below
/// them), so "everything above the watermark is there" stays true. Returns the rows
/// deleted; 0 also when another replica is pruning right now.
#[tracing::instrument(name = "store.retention.prune_change_log", skip_all)]
pub async fn prune_change_log(
    client: &mut deadpool_postgres::Object,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let tx = client.transaction().await?;
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1)",
            &[&CHANGE_LOG_PRUNE_LOCK],
        )
        .await?
        .get(0);
    if !locked {
        return Ok(0);
    }
    let rows = tx
        .query(
            "SELECT tx, seq, created_at FROM form_changes
             WHERE tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
             ORDER BY tx, seq
             LIMIT $1",
            &[&limit],
        )
        .await?;
    let last = rows
        .iter()
        .take_while(|row| row.get::<_, DateTime<Utc>>(2) < before)
        .last()
        .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1)));
    let Some((last_tx, last_seq)) = last else {
        return Ok(0);
    };
    let deleted = tx
        .execute(
            "DELETE FROM form_changes WHERE (tx, seq) <= ($1, $2)",
            &[&last_tx, &last_seq],
        )
        .await?;
    tx.execute(
        "INSERT INTO change_log_pruned (id, tx, seq) VALUES (true, $1, $2)
         ON CONFLICT (id) DO UPDATE SET tx = EXCLUDED.tx, seq = EXCLUDED.seq
         WHERE (change_log_pruned.tx, change_log_pruned.seq) < (EXCLUDED.tx, EXCLUDED.seq)",
        &[&last_tx, &last_seq],
    )
    .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// The smallest UUIDv7 of the millisecond `time`: submission and outbox ids are
/// UUIDv7, so "created before `time`" is a range of the primary key.
pub fn uuid_v7_floor(time: DateTime<Utc>) -> Uuid {
    let ms = time.timestamp_millis().max(0) as u64;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7
    bytes[8] = 0x80; // RFC 4122 variant
    Uuid::from_bytes(bytes)
}

/// Deletes up to `limit` delivered outbox rows delivered before `before` (the
/// answer itself stays with its submission).
#[tracing::instrument(name = "store.retention.prune_delivered", skip_all)]
pub async fn prune_delivered(
    client: &impl GenericClient,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let sql = "DELETE FROM correlation_outbox WHERE id IN (
            SELECT id FROM correlation_outbox
            WHERE id < $1 AND state = 'delivered' AND delivered_at < $2
            ORDER BY id
            LIMIT $3
            FOR UPDATE SKIP LOCKED)";
    prune(client, sql, before, limit).await
}

/// Deletes up to `limit` submitted answers made before `before` whose delivery is
/// over (delivered, undeliverable, refused, or its row pruned already), with their
/// outbox rows, and clears the drafts and prefills of their form tasks (unless a
/// form is pending again). Answers still to
/// deliver (pending) or waiting for an operator (failed) are kept.
#[tracing::instrument(name = "store.retention.prune_submissions", skip_all)]
pub async fn prune_submissions(
    client: &impl GenericClient,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let sql = "WITH doomed AS (
                SELECT s.id, s.form_task_id FROM submissions s
                WHERE s.id < $1 AND s.created_at < $2
                  AND NOT EXISTS (SELECT 1 FROM correlation_outbox o
                                  WHERE o.submission_id = s.id AND o.state IN ('pending', 'failed'))
                ORDER BY s.id
                LIMIT $3
                FOR UPDATE OF s SKIP LOCKED
             ), outbox AS (
                DELETE FROM correlation_outbox o USING doomed
                WHERE o.submission_id = doomed.id AND o.state IN ('delivered', 'undeliverable', 'refused')
             ), tasks AS (
                -- A form pending again (its answer was refused and came back) keeps
                -- that answer as its draft.
                UPDATE form_tasks t SET draft = NULL, prefill = '{}'::jsonb
                FROM doomed WHERE t.id = doomed.form_task_id AND t.status <> 'pending'
             )
             DELETE FROM submissions s USING doomed WHERE s.id = doomed.id";
    prune(client, sql, before, limit).await
}

/// Runs a prune of rows with UUIDv7 ids: `sql` reads ($1) the smallest id of
/// `before`'s millisecond, ($2) `before` and ($3) `limit`.
async fn prune(
    client: &impl GenericClient,
    sql: &str,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    Ok(client
        .execute(sql, &[&uuid_v7_floor(before), &before, &limit])
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v7_floor_sorts_below_every_id_of_its_millisecond_and_above_earlier_ones() {
        let time = Utc::now();
        let floor = uuid_v7_floor(time);
        assert_eq!(floor.get_version_num(), 7);
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            time.timestamp() as u64,
            time.timestamp_subsec_nanos(),
        );
        let same_ms = Uuid::new_v7(ts);
        assert!(floor <= same_ms);
        let earlier = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            time.timestamp() as u64 - 1,
            0,
        ));
        assert!(earlier < floor);
    }
}
