//! Notifications of forms that arrive (written by the change log's trigger, see
//! `migrations/V10__notifications.sql`) and their sends: a user's notifications
//! gathered into one send per channel, claimed with a lease, recorded only by the
//! claim that still owns the send (`lease_generation`).

use std::time::Duration;

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::{StoreError, changes_one, decode};
use crate::ids::FormTaskId;
use crate::notify::{ClaimedSend, Item, NotificationEvent, SendEnd};

/// Where a notification goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Mail,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Mail => "mail",
            Channel::Webhook => "webhook",
        }
    }

    /// The column of `notifications` naming the send that carries it.
    fn column(self) -> &'static str {
        match self {
            Channel::Mail => "mail_send",
            Channel::Webhook => "webhook_send",
        }
    }
}

/// Records that this replica sends notifications on `channels`: from then on the
/// change log's trigger writes a notification for each `added` change (it writes
/// none while no channel is recorded; `migrations/V12__notification_channels.sql`).
#[tracing::instrument(name = "store.notifications.register_channels", skip_all)]
pub async fn register_channels(
    client: &impl GenericClient,
    channels: &[Channel],
) -> Result<(), StoreError> {
    let names: Vec<&str> = channels.iter().map(|channel| channel.as_str()).collect();
    client
        .execute(
            "INSERT INTO notification_channels (channel) SELECT unnest($1::text[])
             ON CONFLICT (channel) DO NOTHING",
            &[&names],
        )
        .await?;
    Ok(())
}

/// Notifications older than this are never sent (a channel switched on later does
/// not mail the backlog of days); retention deletes them.
const FRESH: &str = "interval '1 day'";

fn ms(duration: Duration) -> i64 {
    duration.as_millis().min(i64::MAX as u128) as i64
}

/// Gathers each due user's new notifications into a send held by `owner`, in the
/// caller's transaction. A user is due when their oldest new notification is
/// `gather` old and they have no send of this channel in flight or younger than
/// `interval`. Replicas gather one at a time (a transaction-scoped advisory lock),
/// so no user gets two sends from a race.
#[tracing::instrument(name = "store.notifications.gather", skip_all)]
pub async fn gather(
    tx: &deadpool_postgres::Transaction<'_>,
    channel: Channel,
    owner: Uuid,
    gather: Duration,
    interval: Duration,
    lease: Duration,
    limit: i64,
) -> Result<Vec<ClaimedSend>, StoreError> {
    let column = channel.column();
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('ramp.notify.' || $1::text))",
        &[&channel.as_str()],
    )
    .await?;
    let due = tx
        .query(
            &format!(
                "SELECT n.assignee FROM notifications n
                 WHERE n.{column} IS NULL AND n.created_at > now() - {FRESH}
                 GROUP BY n.assignee
                 HAVING min(n.created_at) <= now() - make_interval(secs => $1::bigint / 1000.0)
                    AND NOT EXISTS (SELECT 1 FROM notification_sends s
                        WHERE s.channel = $2 AND s.assignee = n.assignee
                          AND (s.state = 'sending'
                               OR s.created_at > now() - make_interval(secs => $3::bigint / 1000.0)))
                 ORDER BY min(n.created_at)
                 LIMIT $4"
            ),
            &[&ms(gather), &channel.as_str(), &ms(interval), &limit],
        )
        .await?;
    let mut sends = Vec::with_capacity(due.len());
    for row in due {
        let assignee: String = row.get(0);
        let id = Uuid::now_v7();
        tx.execute(
            &format!(
                "WITH send AS (
                    INSERT INTO notification_sends (id, channel, assignee, state, lease_owner, lease_until)
                    VALUES ($1, $2, $3, 'sending', $4, now() + make_interval(secs => $5::bigint / 1000.0))
                 )
                 UPDATE notifications SET {column} = $1
                 WHERE assignee = $3 AND {column} IS NULL AND created_at > now() - {FRESH}"
            ),
            &[&id, &channel.as_str(), &assignee, &owner, &ms(lease)],
        )
        .await?;
        sends.push(ClaimedSend {
            id,
            assignee,
            generation: 1,
            attempts: 1,
        });
    }
    Ok(sends)
}

/// Claims sends whose lease ran out (their replica died or gave them back to retry).
#[tracing::instrument(name = "store.notifications.reclaim", skip_all)]
pub async fn reclaim(
    client: &impl GenericClient,
    channel: Channel,
    owner: Uuid,
    lease: Duration,
    limit: i64,
) -> Result<Vec<ClaimedSend>, StoreError> {
    let rows = client
        .query(
            "UPDATE notification_sends SET
                lease_owner = $2,
                lease_until = now() + make_interval(secs => $3::bigint / 1000.0),
                lease_generation = lease_generation + 1,
                attempts = attempts + 1
             WHERE id IN (
                SELECT id FROM notification_sends
                WHERE channel = $1 AND state = 'sending' AND lease_until < now()
                ORDER BY lease_until
                LIMIT $4
                FOR UPDATE SKIP LOCKED)
             RETURNING id, assignee, lease_generation, attempts",
            &[&channel.as_str(), &owner, &ms(lease), &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| ClaimedSend {
            id: row.get(0),
            assignee: row.get(1),
            generation: row.get(2),
            attempts: row.get(3),
        })
        .collect())
}

/// The forms a send tells of that still wait for its user (a form completed,
/// withdrawn or given to someone else since is left out), one per form, oldest
/// first.
#[tracing::instrument(name = "store.notifications.items", skip_all)]
pub async fn items(
    client: &impl GenericClient,
    channel: Channel,
    send: Uuid,
) -> Result<Vec<Item>, StoreError> {
    let column = channel.column();
    let rows = client
        .query(
            &format!(
                "SELECT DISTINCT ON (n.form_task_id)
                    n.form_task_id, n.event, n.title, n.process_name, n.reason, n.created_at, n.id
                 FROM notifications n JOIN form_tasks f ON f.id = n.form_task_id
                 WHERE n.{column} = $1 AND f.status = 'pending' AND f.assignee = n.assignee
                 ORDER BY n.form_task_id, n.id DESC"
            ),
            &[&send],
        )
        .await?;
    let mut items: Vec<(i64, Item)> = rows
        .iter()
        .map(|row| {
            Ok((
                row.get(6),
                Item {
                    form_task_id: FormTaskId::from_uuid(row.get(0)),
                    event: decode("notifications.event", row.get(1), NotificationEvent::parse)?,
                    title: row.get(2),
                    process_name: row.get(3),
                    reason: row.get(4),
                    at: row.get(5),
                },
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    items.sort_by_key(|(id, _)| *id);
    Ok(items.into_iter().map(|(_, item)| item).collect())
}

/// Records how a send ended; false when the claim no longer owns it.
#[tracing::instrument(name = "store.notifications.finish", skip_all)]
pub async fn finish(
    client: &impl GenericClient,
    send: &ClaimedSend,
    end: SendEnd,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let state = end.as_str();
    changes_one(
        client,
        "UPDATE notification_sends SET state = $3, sent_at = CASE WHEN $3 = 'sent' THEN now() END,
            last_error = coalesce($4, last_error), lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND lease_generation = $2 AND state = 'sending'",
        &[&send.id, &send.generation, &state, &error],
    )
    .await
}

/// Gives a failed send back, to be claimed again after `retry_in`.
#[tracing::instrument(name = "store.notifications.retry_later", skip_all)]
pub async fn retry_later(
    client: &impl GenericClient,
    send: &ClaimedSend,
    error: &str,
    retry_in: Duration,
) -> Result<bool, StoreError> {
    changes_one(
        client,
        "UPDATE notification_sends SET last_error = $3,
            lease_until = now() + make_interval(secs => $4::bigint / 1000.0)
         WHERE id = $1 AND lease_generation = $2 AND state = 'sending'",
        &[&send.id, &send.generation, &error, &ms(retry_in)],
    )
    .await
}

/// Deletes notifications and ended sends older than `older_than`, at most `batch`
/// rows of each per call.
#[tracing::instrument(name = "store.notifications.prune", skip_all)]
pub async fn prune(
    client: &impl GenericClient,
    older_than: Duration,
    batch: i64,
) -> Result<u64, StoreError> {
    let a = client
        .execute(
            "DELETE FROM notifications WHERE id IN (
                SELECT id FROM notifications
                WHERE created_at < now() - make_interval(secs => $1::bigint / 1000.0)
                LIMIT $2)",
            &[&ms(older_than), &batch],
        )
        .await?;
    let b = client
        .execute(
            "DELETE FROM notification_sends WHERE id IN (
                SELECT id FROM notification_sends
                WHERE state <> 'sending'
                  AND created_at < now() - make_interval(secs => $1::bigint / 1000.0)
                LIMIT $2)",
            &[&ms(older_than), &batch],
        )
        .await?;
    Ok(a + b)
}
