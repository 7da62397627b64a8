//! What PendingForms streams starting in the same moment read, in one transaction:
//! for each, a snapshot of its viewer's pending forms, or the first changes after
//! its cursor. One snapshot of the database and a handful of statements serve a
//! whole batch, however many streams it holds (a replica's users reconnecting at
//! once after a restart), where a stream alone needs a transaction of its own.
//!
//! Each stream gets what a batch of its own would give it, read in the batch's
//! snapshot (`tests/api/stream_starts.rs` compares them).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use std::collections::{HashMap, HashSet};

use super::forms::{
    self as rows, Position, SUMMARY_COLUMNS, Viewer, change_from_row, summary_from_row,
};
use super::{StoreError, retention};
use crate::forms::{Change, FormSummary};

/// One stream's start.
pub struct StartRequest<'a> {
    pub viewer: &'a Viewer,
    /// The cursor it resumes from, if any.
    pub cursor: Option<Position>,
}

/// What one stream starts with.
#[derive(Debug, PartialEq)]
pub enum Started {
    /// Its viewer's pending forms' summaries, and the log position they stand at.
    Snapshot(Vec<FormSummary>, Position),
    /// Resumed from its cursor: the changes after it under its keys, in log order,
    /// at most the batch limit (more may follow).
    Resumed(Vec<Change>),
    /// A snapshot is due, but a transaction that touched the viewer's forms is still
    /// in flight below this one's (moments, normally): ask again.
    HeldBack,
}

/// Reads the start of every request in one snapshot. `oldest` is the retention's
/// edge: a cursor at a change written before it gets a snapshot. `limit` bounds
/// each resumed stream's changes.
#[tracing::instrument(name = "store.starts.read", skip_all, fields(streams = requests.len()))]
pub async fn read(
    client: &mut deadpool_postgres::Object,
    requests: &[StartRequest<'_>],
    oldest: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Started>, StoreError> {
    let tx = rows::one_snapshot(client).await?;
    let pruned = retention::change_log_pruned(&tx).await?;
    let resumes = resumable(&tx, requests, pruned, oldest).await?;
    let mut started: Vec<Option<Started>> = requests.iter().map(|_| None).collect();

    let resumed: Vec<usize> = (0..requests.len()).filter(|&i| resumes[i]).collect();
    for (i, changes) in changes_after(&tx, requests, &resumed, limit).await? {
        started[i] = Some(Started::Resumed(changes));
    }

    let snapshots: Vec<usize> = (0..requests.len()).filter(|&i| !resumes[i]).collect();
    if !snapshots.is_empty() {
        let held = held_back(&tx, requests, &snapshots).await?;
        let (held, ready): (Vec<usize>, Vec<usize>) = snapshots
            .into_iter()
            .partition(|&i| requests[i].viewer.keys.iter().any(|k| held.contains(k)));
        for i in held {
            started[i] = Some(Started::HeldBack);
        }
        if !ready.is_empty() {
            // Everything at or below the prune mark is in the snapshot too, and may
            // be gone from the log: a cursor below the mark would not resume.
            let position = rows::frontier(&tx).await?.max(pruned);
            for (i, forms) in pending(&tx, requests, &ready).await? {
                started[i] = Some(Started::Snapshot(forms, position));
            }
        }
    }
    tx.commit().await?;
    Ok(started
        .into_iter()
        .map(|s| s.expect("every request is answered"))
        .collect())
}

/// For each request, whether its cursor resumes: the log still holds everything
/// after it, and it is no older than the retention.
async fn resumable(
    tx: &impl GenericClient,
    requests: &[StartRequest<'_>],
    pruned: Position,
    oldest: DateTime<Utc>,
) -> Result<Vec<bool>, StoreError> {
    let cursors: Vec<Position> = requests
        .iter()
        .filter_map(|r| r.cursor)
        .filter(|&c| c >= pruned && c != (0, 0))
        .collect();
    let times: HashMap<Position, DateTime<Utc>> = if cursors.is_empty() {
        HashMap::new()
    } else {
        let (txs, seqs): (Vec<i64>, Vec<i64>) = cursors.iter().copied().unzip();
        let sql = "SELECT c.tx, c.seq, c.created_at
             FROM unnest($1::int8[], $2::int8[]) AS r(tx, seq)
             JOIN form_changes c ON c.tx = r.tx AND c.seq = r.seq";
        tx.query(&tx.prepare_cached(sql).await?, &[&txs, &seqs])
            .await?
            .iter()
            .map(|row| ((row.get(0), row.get(1)), row.get(2)))
            .collect()
    };
    // The start of the log (a snapshot taken while it was empty): resumable while
    // nothing in the log is old enough to have been pruned and nothing lies before
    // it (the positions of a log copied from another cluster are moved below
    // (0, 0): see `rows::adopt_cluster`). Read once, for every such cursor.
    let from_the_start = if requests.iter().any(|r| r.cursor == Some((0, 0))) && pruned <= (0, 0) {
        let first = rows::first_position(tx).await?;
        if pruned < (0, 0) || first.is_some_and(|first| first < (0, 0)) {
            false
        } else {
            rows::oldest_change(tx).await?.is_none_or(|at| at >= oldest)
        }
    } else {
        false
    };
    Ok(requests
        .iter()
        .map(|r| match r.cursor {
            None => false,
            Some(c) if c < pruned => false,
            Some((0, 0)) => from_the_start,
            Some(c) => match times.get(&c) {
                Some(&at) => at >= oldest,
                // The last row pruned: everything after it is still there.
                None => c == pruned,
            },
        })
        .collect())
}

/// The changes after each listed request's cursor under its keys, in log order, at
/// most `limit` each: one query, a key per row of its input.
async fn changes_after(
    tx: &impl GenericClient,
    requests: &[StartRequest<'_>],
    which: &[usize],
    limit: i64,
) -> Result<Vec<(usize, Vec<Change>)>, StoreError> {
    if which.is_empty() {
        return Ok(Vec::new());
    }
    let (mut index, mut keys, mut txs, mut seqs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &i in which {
        let cursor = requests[i].cursor.expect("a resumed stream has a cursor");
        for key in &requests[i].viewer.keys {
            index.push(i as i32);
            keys.push(key.as_str());
            txs.push(cursor.0);
            seqs.push(cursor.1);
        }
    }
    let sql = "SELECT r.i, c.tx, c.seq, c.form_task_id, c.assignee, c.kind, c.reason, c.summary, c.created_at
         FROM unnest($1::int4[], $2::text[], $3::int8[], $4::int8[]) AS r(i, key, tx, seq)
         CROSS JOIN LATERAL (
           SELECT tx, seq, form_task_id, assignee, kind, reason, summary, created_at
           FROM form_changes
           WHERE assignee = r.key
             AND (tx, seq) > (r.tx, r.seq)
             AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
           ORDER BY tx, seq
           LIMIT $5) c";
    let found = tx
        .query(
            &tx.prepare_cached(sql).await?,
            &[&index, &keys, &txs, &seqs, &limit],
        )
        .await?;
    Ok(by_request(which, &found, change_from_row)?
        .into_iter()
        .map(|(i, mut changes)| {
            // Each key's rows are in order and at most `limit`: the first `limit`
            // of them all are the first `limit` under any of the keys.
            changes.sort_by_key(|c| c.position);
            changes.truncate(limit as usize);
            (i, changes)
        })
        .collect())
}

/// The keys of the listed requests under which rows have committed that readers
/// cannot take yet (their transaction is at or above the snapshot's xmin): a
/// snapshot would include their effect but its position not.
async fn held_back(
    tx: &impl GenericClient,
    requests: &[StartRequest<'_>],
    which: &[usize],
) -> Result<HashSet<String>, StoreError> {
    let keys: Vec<&str> = which
        .iter()
        .flat_map(|&i| requests[i].viewer.keys.iter().map(String::as_str))
        .collect();
    let sql = "SELECT DISTINCT assignee FROM form_changes
         WHERE assignee = ANY($1)
           AND tx >= pg_snapshot_xmin(pg_current_snapshot())::text::bigint";
    Ok(tx
        .query(&tx.prepare_cached(sql).await?, &[&keys])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Each listed request's viewer's pending forms, oldest first: one query.
async fn pending(
    tx: &impl GenericClient,
    requests: &[StartRequest<'_>],
    which: &[usize],
) -> Result<Vec<(usize, Vec<FormSummary>)>, StoreError> {
    let (mut index, mut emails, mut user_ids) = (Vec::new(), Vec::new(), Vec::new());
    let (mut group_index, mut groups) = (Vec::new(), Vec::new());
    for &i in which {
        let viewer = requests[i].viewer;
        index.push(i as i32);
        emails.push(viewer.email.as_str());
        user_ids.push(viewer.user_id.as_str());
        for group in &viewer.groups {
            group_index.push(i as i32);
            groups.push(group.as_str());
        }
    }
    let visible = rows::visible(
        "v.email",
        "v.user_id",
        "ARRAY(SELECT g.name FROM unnest($4::int4[], $5::text[]) AS g(i, name) WHERE g.i = v.i)",
    );
    let sql = format!(
        "SELECT v.i, f.* FROM unnest($1::int4[], $2::text[], $3::text[]) AS v(i, email, user_id)
         CROSS JOIN LATERAL (
           SELECT {columns} FROM form_tasks WHERE {visible} AND status = 'pending') f
         ORDER BY v.i, f.created_at, f.id",
        columns = *SUMMARY_COLUMNS
    );
    let found = tx
        .query(
            &tx.prepare_cached(&sql).await?,
            &[&index, &emails, &user_ids, &group_index, &groups],
        )
        .await?;
    Ok(by_request(which, &found, summary_from_row)?
        .into_iter()
        .collect())
}

/// The rows of a batched query, read and grouped by the request each answers (its
/// column `i`, an index into the requests), in the order they came; every listed
/// request has its group, empty or not.
fn by_request<T>(
    which: &[usize],
    rows: &[tokio_postgres::Row],
    read: impl Fn(&tokio_postgres::Row) -> Result<T, StoreError>,
) -> Result<HashMap<usize, Vec<T>>, StoreError> {
    let mut grouped: HashMap<usize, Vec<T>> = which.iter().map(|&i| (i, Vec::new())).collect();
    for row in rows {
        let i: i32 = row.get("i");
        grouped
            .get_mut(&(i as usize))
            .expect("a row of a listed request")
            .push(read(row)?);
    }
    Ok(grouped)
}
