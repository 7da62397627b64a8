//! One PendingForms stream: a snapshot (or, with a cursor, exactly the changes missed
//! since), then every change as the hub hands it over, with a heartbeat when idle.
//!
//! Positions are the change log's (tx, seq). The hub and catch-up reads both take
//! only rows below the oldest transaction in flight, in position order, so a
//! stream never skips a row that commits late; a change at or below the stream's
//! cursor was sent already and is dropped, so nothing is sent twice.
//!
//! Retention deletes a prefix of the log and records where it stopped
//! (`change_log_pruned`): a cursor below that mark gets a snapshot. A stream's start
//! (`starts.rs`: the check of its cursor, then its snapshot or its first changes)
//! and every later catch-up batch are each read in one snapshot with the mark, so a
//! prune that runs meanwhile is noticed: a stream that fell a whole retention period
//! behind ends with UNAVAILABLE, and the client's resume gets a snapshot.
//!
//! A database copied into another cluster has its positions moved below the new
//! cluster's (`rows::adopt_cluster`): streams open then end with UNAVAILABLE, and
//! cursors handed out before name no position, so they resume with a snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use std::collections::VecDeque;

use super::hub::Subscription;
use super::starts::{Start, Starts};
use super::{Change, ChangeKind, FormError, FormSummary, RemovalReason};
use crate::ids::FormTaskId;
use crate::store::Store;
use crate::store::forms::{self as rows, Position, Viewer};

/// Changes read from the log per catch-up query.
pub(super) const CATCH_UP_BATCH: i64 = 500;

#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Time between heartbeats on an idle stream.
    pub heartbeat: Duration,
    /// How long the change log is kept: older cursors get a snapshot.
    pub retention: Duration,
}

/// A position in the change log, as clients hold it: opaque text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(pub Position);

const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

impl Cursor {
    pub fn encode(self) -> String {
        ENGINE.encode(format!("c1:{}:{}", self.0.0, self.0.1))
    }

    pub fn parse(text: &str) -> Option<Self> {
        let decoded = String::from_utf8(ENGINE.decode(text).ok()?).ok()?;
        let mut parts = decoded.split(':');
        if parts.next()? != "c1" {
            return None;
        }
        let tx = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self((tx, seq)))
    }
}

/// What a stream sends.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    Snapshot(Vec<FormSummary>, Cursor),
    Added(FormSummary, Cursor),
    Updated(FormSummary, Cursor),
    Removed(FormTaskId, RemovalReason, Cursor),
    Heartbeat(Cursor),
}

fn event_of(change: &Change) -> Option<StreamEvent> {
    let cursor = Cursor(change.position);
    let summary = || match serde_json::from_value::<FormSummary>(change.summary.clone()) {
        Ok(summary) => Some(summary),
        Err(error) => {
            tracing::error!(%error, position = ?change.position, "an unreadable change in the log");
            None
        }
    };
    Some(match change.kind {
        ChangeKind::Added => StreamEvent::Added(summary()?, cursor),
        ChangeKind::Updated => StreamEvent::Updated(summary()?, cursor),
        ChangeKind::Removed(reason) => StreamEvent::Removed(change.form_task_id, reason, cursor),
    })
}

/// When a new stream's first heartbeat is due: somewhere between half the period
/// and the period, different for each stream, so that streams that opened together
/// (a restart's reconnects) do not beat together for the rest of their lives. The
/// spread is a Weyl sequence over the streams opened so far (no random source):
/// any run of consecutive streams covers the range evenly.
fn first_heartbeat(period: Duration) -> Duration {
    static OPENED: AtomicU64 = AtomicU64::new(0);
    period.mul_f64(0.5 + 0.5 * spread(OPENED.fetch_add(1, Ordering::Relaxed)))
}

/// The `n`th point of a Weyl sequence in [0, 1): n times the golden ratio's
/// fractional part, modulo one.
fn spread(n: u64) -> f64 {
    (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64
}

/// A stream's events. No task of its own: tonic polls it while the client is
/// connected and drops it when the client leaves, and an idle stream holds little
/// more than its subscription and its heartbeat timer. Queries run in boxed futures,
/// so that their state takes memory only while they run.
pub fn events(
    store: Store,
    starts: Starts,
    subscription: Subscription,
    viewer: Viewer,
    cursor: Option<Cursor>,
    settings: StreamSettings,
) -> impl futures::Stream<Item = Result<StreamEvent, FormError>> + Send + 'static {
    let heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + first_heartbeat(settings.heartbeat),
        settings.heartbeat,
    );
    let state = State {
        store,
        starts,
        subscription,
        start: Some((viewer, cursor)),
        position: (0, 0),
        queued: VecDeque::new(),
        heartbeat,
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.next().await {
            Ok(event) => Some((Ok(event), Some(state))),
            // An error ends the stream after it is sent.
            Err(error) => Some((Err(error), None)),
        }
    })
}

struct State {
    store: Store,
    starts: Starts,
    subscription: Subscription,
    /// Whose forms the stream shows and the client's cursor, until the stream has
    /// begun (then the subscription holds the keys it reads).
    start: Option<(Viewer, Option<Cursor>)>,
    /// The last position sent.
    position: Position,
    /// Events read from the log, still to send (a snapshot, a catch-up batch).
    queued: VecDeque<StreamEvent>,
    heartbeat: tokio::time::Interval,
}

impl State {
    async fn next(&mut self) -> Result<StreamEvent, FormError> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                if self.queued.is_empty() {
                    // Let the buffer go: events are large, and a held stream
                    // mostly waits with nothing queued.
                    self.queued = VecDeque::new();
                }
                self.heartbeat.reset();
                return Ok(event);
            }
            if let Some((viewer, cursor)) = self.start.take() {
                // Boxed: the viewer and the read take memory only while it runs.
                Box::pin(self.begin(viewer, cursor)).await?;
                continue;
            }
            if self.subscription.moved() {
                return Err(FormError::Unavailable(
                    "the change log moved to another database cluster; reconnect with the last cursor for a fresh snapshot"
                        .into(),
                ));
            }
            if self.subscription.take_lagging() {
                if !self.catch_up().await? {
                    return Err(fell_behind());
                }
                continue;
            }
            let change: Arc<Change> = tokio::select! {
                _ = self.heartbeat.tick() => return Ok(StreamEvent::Heartbeat(Cursor(self.position))),
                change = self.subscription.next_change() => match change {
                    Some(change) => change,
                    None => continue, // lagging: catch up first
                },
            };
            if change.position <= self.position {
                continue; // sent already (snapshot or catch-up)
            }
            self.position = change.position;
            if let Some(event) = event_of(&change) {
                self.heartbeat.reset();
                return Ok(event);
            }
        }
    }

    /// Queues the stream's start: the changes after its cursor, or a snapshot. The
    /// subscription is registered already: whatever commits from here on reaches
    /// it, and the start covers everything before.
    async fn begin(&mut self, viewer: Viewer, cursor: Option<Cursor>) -> Result<(), FormError> {
        match self.starts.start(&viewer, cursor.map(|c| c.0)).await? {
            Start::Resumed(batch) => {
                self.position = cursor.expect("a stream resumes from its cursor").0;
                self.queue_changes(batch);
            }
            Start::Snapshot(summaries, position) => {
                self.position = position;
                self.queued
                    .push_back(StreamEvent::Snapshot(summaries, Cursor(position)));
            }
        }
        Ok(())
    }

    /// Queues the next batch of changes after the position from the log; false when
    /// retention deleted changes after the position (they cannot be replayed).
    async fn catch_up(&mut self) -> Result<bool, FormError> {
        let Some(batch) = Box::pin(async {
            let mut client = self.store.client().await?;
            rows::changes_since(
                &mut client,
                &self.subscription.keys(),
                self.position,
                CATCH_UP_BATCH,
            )
            .await
        })
        .await?
        else {
            return Ok(false);
        };
        self.queue_changes(batch);
        Ok(true)
    }

    /// Queues the events of a batch of changes read from the log after the
    /// position (at most [`CATCH_UP_BATCH`], in log order); a full batch leaves
    /// the stream lagging, to read on once it is sent.
    fn queue_changes(&mut self, batch: Vec<Change>) {
        let full = batch.len() as i64 == CATCH_UP_BATCH;
        let batch = whole_changes(batch, full);
        for change in per_change(&batch.iter().collect::<Vec<_>>()) {
            self.position = change.position;
            if let Some(event) = event_of(&change) {
                self.queued.push_back(event);
            }
        }
        if full {
            // More to read once this batch is sent.
            self.subscription.set_lagging();
        }
    }
}

/// The rows of a batch read from the log (in log order) that hold whole changes: a
/// batch cut at its limit (`full`) may end inside a change (the rows one
/// transaction wrote for one form under several keys), whose rows are left for the
/// next read, unless they are all the batch holds.
pub(super) fn whole_changes(mut batch: Vec<Change>, full: bool) -> Vec<Change> {
    if !full {
        return batch;
    }
    let Some(last) = batch.last() else {
        return batch;
    };
    let (tx, form) = (last.position.0, last.form_task_id);
    let whole = batch
        .iter()
        .rposition(|c| c.position.0 != tx || c.form_task_id != form)
        .map_or(0, |i| i + 1);
    if whole > 0 {
        batch.truncate(whole);
    }
    batch
}

/// One change per event, from the rows of the log under a stream's keys (in log
/// order). A write of a user task logs its change once per key of its audience,
/// and a stream that reads several of those keys (its caller is a candidate user
/// and in a candidate group) gets one event for them: the rows one transaction
/// wrote for one form, each key once, are one change. A key met again starts the
/// next change (a later write of the form whose rows sort at the same transaction,
/// see migration V8), so that a stream of one key gets every row as before.
pub(super) fn per_change(rows: &[&Change]) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut start = 0;
    for end in 1..=rows.len() {
        let ends = end == rows.len() || {
            let (first, next) = (rows[start], rows[end]);
            next.position.0 != first.position.0
                || next.form_task_id != first.form_task_id
                || rows[start..end].iter().any(|r| r.assignee == next.assignee)
        };
        if ends {
            changes.push(one_change(&rows[start..end]));
            start = end;
        }
    }
    changes
}

/// The one event for the rows of one change under a stream's keys (at least one):
/// when the form left all of them, the first removal; when it came to one of them,
/// `added` (a claimed task comes to its claimer so, whether or not it saw the task
/// as a candidate before); else `updated`. It stands at the last row's position,
/// so that a cursor after it skips them all.
fn one_change(rows: &[&Change]) -> Change {
    let last = rows.last().expect("a change has rows");
    let stays = rows
        .iter()
        .rfind(|c| !matches!(c.kind, ChangeKind::Removed(_)));
    let (base, kind) = match stays {
        None => (rows[0], rows[0].kind),
        Some(stays) if rows.iter().any(|c| c.kind == ChangeKind::Added) => {
            (*stays, ChangeKind::Added)
        }
        Some(stays) => (*stays, ChangeKind::Updated),
    };
    Change {
        position: last.position,
        kind,
        ..base.clone()
    }
}

fn fell_behind() -> FormError {
    FormError::Unavailable(
        "the stream fell behind the change log's retention; reconnect with the last cursor for a fresh snapshot"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn row(tx: i64, seq: i64, form: FormTaskId, key: &str, kind: ChangeKind) -> Change {
        Change {
            position: (tx, seq),
            form_task_id: form,
            assignee: key.into(),
            kind,
            summary: json!({"key": key}),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn streams_opened_together_spread_their_heartbeats_over_half_a_period() {
        let period = Duration::from_secs(20);
        // A thousand streams that opened in one moment: every second of the ten
        // between 10 s and 20 s gets about a tenth of their first beats.
        let mut per_second = [0; 10];
        for _ in 0..1000 {
            let first = first_heartbeat(period);
            assert!(first >= period / 2 && first <= period, "{first:?}");
            per_second[(first.as_secs_f64() - 10.0).floor().min(9.0) as usize] += 1;
        }
        for count in per_second {
            assert!((90..=110).contains(&count), "{per_second:?}");
        }
        assert!((0..1000).map(spread).all(|x| (0.0..1.0).contains(&x)));
    }

    fn events(rows: &[Change]) -> Vec<(ChangeKind, Position, String)> {
        per_change(&rows.iter().collect::<Vec<_>>())
            .into_iter()
            .map(|c| {
                (
                    c.kind,
                    c.position,
                    c.summary["key"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_stream_gets_one_event_for_the_rows_of_one_change_under_its_keys() {
        let (form, other) = (FormTaskId::new(), FormTaskId::new());
        let claimed = ChangeKind::Removed(RemovalReason::Claimed);
        let (added, updated) = (ChangeKind::Added, ChangeKind::Updated);
        let rows = [
            row(7, 1, form, "user:bob", added),
            row(7, 2, form, "group:reviewers", added),
            row(7, 3, other, "group:reviewers", added),
            // Claimed by someone else: gone from both keys.
            row(8, 1, form, "user:bob", claimed),
            row(8, 2, form, "group:reviewers", claimed),
            // Unclaimed, then claimed by the stream's own user, then its due date
            // changed.
            row(9, 1, form, "user:bob", added),
            row(9, 2, form, "group:reviewers", added),
            row(10, 1, form, "group:reviewers", claimed),
            row(10, 2, form, "user:bob", added),
            row(11, 1, form, "user:bob", updated),
        ];
        assert_eq!(
            events(&rows),
            [
                (added, (7, 2), "group:reviewers".to_owned()),
                (added, (7, 3), "group:reviewers".to_owned()),
                (claimed, (8, 2), "user:bob".to_owned()),
                (added, (9, 2), "group:reviewers".to_owned()),
                (added, (10, 2), "user:bob".to_owned()),
                (updated, (11, 1), "user:bob".to_owned()),
            ]
        );
    }

    #[test]
    fn rows_of_one_key_are_each_an_event_even_at_one_transaction() {
        // A withdrawal that waited for a reassignment's lock sorts at its
        // transaction (migration V8): two changes, in their order.
        let form = FormTaskId::new();
        let withdrawn = ChangeKind::Removed(RemovalReason::Withdrawn);
        let rows = [
            row(7, 1, form, "bob@example.com", ChangeKind::Added),
            row(7, 2, form, "bob@example.com", withdrawn),
        ];
        assert_eq!(
            events(&rows),
            [
                (ChangeKind::Added, (7, 1), "bob@example.com".to_owned()),
                (withdrawn, (7, 2), "bob@example.com".to_owned()),
            ]
        );
    }

    #[test]
    fn a_full_batch_leaves_a_cut_change_for_the_next_read() {
        let (a, b) = (FormTaskId::new(), FormTaskId::new());
        let batch = vec![
            row(5, 1, a, "ann@example.com", ChangeKind::Added),
            row(6, 1, b, "user:bob", ChangeKind::Added),
            row(6, 2, b, "group:reviewers", ChangeKind::Added),
        ];
        assert_eq!(whole_changes(batch.clone(), false).len(), 3);
        assert_eq!(whole_changes(batch.clone(), true).len(), 1);
        let one_change = batch[1..].to_vec();
        assert_eq!(whole_changes(one_change, true).len(), 2);
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor((1234, 56));
        assert_eq!(Cursor::parse(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::parse("nope"), None);
        assert_eq!(Cursor::parse(&ENGINE.encode("c1:1")), None);
        assert!(
            Cursor((1, 9)) < Cursor((2, 1)),
            "positions order by transaction first"
        );
    }
}
