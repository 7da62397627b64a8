//! The one row (`user_task_watch`) that lets one replica at a time read the
//! engine's user task changes: its lease, and the watermark it has read up to.
//!
//! The lease is held by a replica id until a time of the database's clock, so
//! replicas need not agree on time. Each take-over bumps `lease_generation`; the
//! watermark moves only under the generation that read it and while that lease
//! lasts, so a replica that stalled past its lease cannot move it afterwards.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{StoreError, changes_one, fetch_all, fetch_opt};

/// The lease as the replica that holds it sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchLease {
    /// Bumped each time the lease changes hands.
    pub generation: i64,
    /// Engine time up to which every change has been read; none before the first
    /// full read.
    pub watermark: Option<DateTime<Utc>>,
    /// Whether a full read of the open tasks is due: none ever ended, or the last
    /// ended `resync` ago or longer.
    pub resync_due: bool,
}

fn ms(duration: Duration) -> i64 {
    duration.as_millis().min(i64::MAX as u128) as i64
}

/// Takes the lease for `owner`, or renews it if `owner` holds it, for `lease` from
/// now; `None` while another replica holds it. One statement: of two replicas that
/// try at once, one gets it.
#[tracing::instrument(name = "store.user_task_watch.take_or_renew", skip_all)]
pub async fn take_or_renew(
    client: &impl GenericClient,
    owner: Uuid,
    lease: Duration,
    resync: Duration,
) -> Result<Option<WatchLease>, StoreError> {
    let sql = "UPDATE user_task_watch SET
            lease_generation = lease_generation
                + CASE WHEN lease_owner IS NOT DISTINCT FROM $1 THEN 0 ELSE 1 END,
            lease_owner = $1,
            lease_until = now() + make_interval(secs => $2::bigint / 1000.0)
        WHERE id AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < now())
        RETURNING lease_generation, watermark,
            synced_at IS NULL OR synced_at <= now() - make_interval(secs => $3::bigint / 1000.0)";
    fetch_opt(client, sql, &[&owner, &ms(lease), &ms(resync)], |row| {
        Ok(WatchLease {
            generation: row.get(0),
            watermark: row.get(1),
            resync_due: row.get(2),
        })
    })
    .await
}

/// Moves the watermark to `watermark` (and, after a full read, records that one
/// ended now), if `owner` still holds the lease of `generation`. False when the
/// lease was lost: what was read is then left to the new holder.
#[tracing::instrument(name = "store.user_task_watch.advance", skip_all)]
pub async fn advance(
    client: &impl GenericClient,
    owner: Uuid,
    generation: i64,
    watermark: DateTime<Utc>,
    synced: bool,
) -> Result<bool, StoreError> {
    let sql = "UPDATE user_task_watch SET
            watermark = $3,
            synced_at = CASE WHEN $4 THEN now() ELSE synced_at END
        WHERE id AND lease_owner = $1 AND lease_generation = $2 AND lease_until >= now()";
    changes_one(client, sql, &[&owner, &generation, &watermark, &synced]).await
}

/// Gives the lease up (on shutdown), so another replica takes over at once.
#[tracing::instrument(name = "store.user_task_watch.release", skip_all)]
pub async fn release(client: &impl GenericClient, owner: Uuid) -> Result<bool, StoreError> {
    let sql = "UPDATE user_task_watch SET lease_until = NULL, lease_owner = NULL
        WHERE id AND lease_owner = $1";
    changes_one(client, sql, &[&owner]).await
}

/// A user task ramp holds pending: the engine's task id, and the engine time of the
/// read last stored (none for a row written before it was kept).
pub type PendingStamp = (String, Option<DateTime<Utc>>);

/// The user tasks ramp holds pending.
#[tracing::instrument(name = "store.user_task_watch.pending_stamps", skip_all)]
pub async fn pending_stamps(client: &impl GenericClient) -> Result<Vec<PendingStamp>, StoreError> {
    let sql = "SELECT external_task_id, engine_updated_at FROM form_tasks
         WHERE kind = 'user_task' AND status = 'pending'";
    fetch_all(client, sql, &[], |row| Ok((row.get(0), row.get(1)))).await
}
