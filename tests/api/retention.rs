//! Retention: old rows go in small batches while writers keep writing; stream
//! cursors below what was pruned get a snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ramp::proto::pending_forms_response::Event;
use ramp::retention::{Pruner, RetentionSettings};
use ramp::store::Store;
use serde_json::json;

use crate::forms::{created_id, instance_with_form, new_task, next, open, user};
use crate::helpers::{TestApp, spawn_app_with};

fn store_of(app: &TestApp) -> Store {
    Store::new(
        &secrecy::SecretString::from(app.database_url.clone()),
        8,
        Duration::from_secs(5),
    )
    .unwrap()
}

fn settings(change_log: Duration, batch: i64) -> RetentionSettings {
    RetentionSettings {
        change_log,
        delivered: Duration::from_secs(3600),
        submissions: Duration::from_secs(3600),
        interval: Duration::from_secs(3600),
        batch,
    }
}

/// The test's own app, with background pruning out of the way.
async fn quiet_app() -> TestApp {
    spawn_app_with(json!({"prune_interval_ms": 3_600_000})).await
}

#[tokio::test]
async fn pruning_under_concurrent_writes_fails_no_writer_and_deletes_old_rows() {
    let app = quiet_app().await;
    let stop = Arc::new(AtomicBool::new(false));
    let pruning = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let commits_while_pruning = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (stop, pruning, errors, commits) = (
            stop.clone(),
            pruning.clone(),
            errors.clone(),
            commits_while_pruning.clone(),
        );
        let mut client = app.db().await;
        // Named, so the watcher counts the writers' waits and not those of the
        // server's own background tasks on the same database.
        client
            .batch_execute("SET application_name = 'retention-test-writer'")
            .await
            .unwrap();
        writers.push(tokio::spawn(async move {
            let mut written: Vec<(i64, i64, DateTime<Utc>)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // A form change as the write path makes it: its own transaction.
                let result = async {
                    let tx = client.transaction().await?;
                    let row = tx
                        .query_one(
                            "INSERT INTO form_changes (form_task_id, assignee, kind, summary)
                             VALUES ($1, $2, 'added', '{}') RETURNING tx, seq, created_at",
                            &[
                                &uuid::Uuid::now_v7(),
                                &format!("writer{writer}@example.com"),
                            ],
                        )
                        .await?;
                    tx.commit().await?;
                    Ok::<_, tokio_postgres::Error>((row.get(0), row.get(1), row.get(2)))
                }
                .await;
                match result {
                    Ok(row) => {
                        written.push(row);
                        if pruning.load(Ordering::Relaxed) {
                            commits.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(error) => {
                        eprintln!("writer {writer}: {error}");
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            written
        }));
    }

    // Let rows age past a one-second retention while writers keep going.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let pruner = Pruner::new(store_of(&app), settings(Duration::from_secs(1), 50));
    pruning.store(true, Ordering::Relaxed);
    let watcher_db = app.db().await;
    let mut pruned = 0;
    let mut writers_waiting_on_locks = 0i64;
    // Ten passes at least; more while nothing could go yet: pruning waits for every
    // older transaction in the cluster, and tests running alongside have theirs.
    for attempt in 0..50 {
        if attempt >= 10 && pruned > 0 {
            break;
        }
        let pass = pruner.pass();
        tokio::pin!(pass);
        // While a pass runs, no writer may be waiting for a lock.
        let result = loop {
            tokio::select! {
                result = &mut pass => break result,
                _ = tokio::time::sleep(Duration::from_millis(5)) => {
                    let waiting: i64 = crate::helpers::scalar(&watcher_db, "SELECT count(*) FROM pg_stat_activity
                             WHERE datname = current_database() AND wait_event_type = 'Lock'
                               AND application_name = 'retention-test-writer'", &[]).await;
                    writers_waiting_on_locks += waiting;
                }
            }
        };
        pruned += result.expect("a prune pass succeeds").changes;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last_pass_done = Utc::now();
    pruning.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut written = Vec::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }

    assert_eq!(errors.load(Ordering::Relaxed), 0, "writers failed");
    assert!(pruned > 0, "nothing was pruned");
    assert!(
        commits_while_pruning.load(Ordering::Relaxed) > 0,
        "writers made no progress while pruning ran"
    );
    assert_eq!(writers_waiting_on_locks, 0, "writers waited for locks");

    // Nothing younger than the retention went, and the mark covers what did.
    let db = app.db().await;
    let left: std::collections::HashSet<(i64, i64)> = db
        .query("SELECT tx, seq FROM form_changes", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let young_since = last_pass_done - chrono::Duration::seconds(1);
    for (tx, seq, at) in &written {
        if *at >= young_since {
            assert!(
                left.contains(&(*tx, *seq)),
                "a young row ({tx}, {seq}) at {at} went"
            );
        }
    }
    let mark: (i64, i64) = db
        .query_one("SELECT tx, seq FROM change_log_pruned", &[])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(
        left.iter().all(|position| *position > mark),
        "a row at or below the mark {mark:?} is still there"
    );
    assert_eq!(
        written.len() - left.len(),
        pruned as usize,
        "every pruned row was a written one"
    );
}

/// A pruner of the test's own on `app`'s database that keeps delivered outbox rows
/// 30 minutes and answers 90 days (the change log an hour), `batch` rows at a time.
fn answer_pruner(app: &TestApp, batch: i64) -> Pruner {
    Pruner::new(
        store_of(app),
        RetentionSettings {
            delivered: Duration::from_secs(30 * 60),
            submissions: Duration::from_secs(90 * 24 * 3600),
            ..settings(Duration::from_secs(3600), batch)
        },
    )
}

/// A form task and its submission made `age` ago, with its outbox row in `state`.
async fn answered_form(
    db: &tokio_postgres::Client,
    state: &str,
    age: chrono::Duration,
) -> uuid::Uuid {
    let at = Utc::now() - age;
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp() as u64,
        at.timestamp_subsec_nanos(),
    );
    let task = uuid::Uuid::new_v7(ts);
    let submission = uuid::Uuid::new_v7(ts);
    db.execute(
        "INSERT INTO form_tasks (id, external_task_id, business_key, form_name, message_name, assignee,
            status, process_instance_id, root_process_instance_id, activity_id, draft, prefill, created_at)
         VALUES ($1, $2, 'a@example.com', 'step', 'step', 'a@example.com', 'completed', 'pi', 'pi', 'step',
            '{\"companyName\": \"draft\"}', '{\"companyName\": \"prefill\"}', $3)",
        &[&task, &task.to_string(), &at],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO submissions (id, form_task_id, submitted_by, data, created_at)
         VALUES ($1, $2, 'a@example.com', '{\"companyName\": \"personal\"}', $3)",
        &[&submission, &task, &at],
    )
    .await
    .unwrap();
    let delivered_at = (state == "delivered").then_some(at);
    db.execute(
        "INSERT INTO correlation_outbox (id, submission_id, form_task_id, message_name, process_instance_id,
            variables, state, created_at, delivered_at)
         VALUES ($1, $1, $2, 'step', 'pi', '{}', $3, $4, $5)",
        &[&submission, &task, &state, &at, &delivered_at],
    )
    .await
    .unwrap();
    submission
}

async fn exists(db: &tokio_postgres::Client, table: &str, id: uuid::Uuid) -> bool {
    db.query_one(
        &format!("SELECT count(*) FROM {table} WHERE id = $1"),
        &[&id],
    )
    .await
    .unwrap()
    .get::<_, i64>(0)
        == 1
}

#[tokio::test]
async fn old_answers_go_once_delivered_and_answers_still_owed_stay() {
    let app = quiet_app().await;
    let db = app.db().await;
    let old = chrono::Duration::days(100);
    let delivered = answered_form(&db, "delivered", old).await;
    let undeliverable = answered_form(&db, "undeliverable", old).await;
    let pending = answered_form(&db, "pending", old).await;
    let failed = answered_form(&db, "failed", old).await;
    let recent = answered_form(&db, "delivered", chrono::Duration::hours(1)).await;

    let pruner = answer_pruner(&app, 2);
    let pruned = pruner.pass().await.unwrap();
    // Delivered outbox rows older than 30 minutes: the old one and the recent one.
    assert_eq!(pruned.delivered, 2, "{pruned:?}");
    assert_eq!(pruned.submissions, 2, "{pruned:?}");

    for gone in [delivered, undeliverable] {
        assert!(!exists(&db, "submissions", gone).await);
        assert!(!exists(&db, "correlation_outbox", gone).await);
    }
    for owed in [pending, failed] {
        assert!(
            exists(&db, "submissions", owed).await,
            "an answer still owed went"
        );
        assert!(exists(&db, "correlation_outbox", owed).await);
    }
    assert!(exists(&db, "submissions", recent).await);
    assert!(!exists(&db, "correlation_outbox", recent).await);
    let cleared: i64 = crate::helpers::scalar(
        &db,
        "SELECT count(*) FROM form_tasks WHERE draft IS NULL AND prefill = '{}'::jsonb",
        &[],
    )
    .await;
    assert_eq!(cleared, 2, "the drafts of the pruned answers are cleared");

    // A second pass finds nothing more.
    assert_eq!(pruner.pass().await.unwrap().total(), 0);
}

#[tokio::test]
async fn an_old_refused_answer_goes_and_its_returned_form_keeps_the_answer_as_draft() {
    let app = quiet_app().await;
    let db = app.db().await;
    let refused = answered_form(&db, "refused", chrono::Duration::days(100)).await;
    // The answer came back: its form is pending again, the answer its draft.
    db.execute(
        "UPDATE form_tasks SET status = 'pending' WHERE id =
            (SELECT form_task_id FROM submissions WHERE id = $1)",
        &[&refused],
    )
    .await
    .unwrap();
    let pruner = answer_pruner(&app, 10);
    let pruned = pruner
        .pass()
        .await
        .expect("a refused answer is pruned like others");
    assert_eq!(pruned.submissions, 1, "{pruned:?}");
    assert!(!exists(&db, "submissions", refused).await);
    assert!(!exists(&db, "correlation_outbox", refused).await);
    let draft: Option<serde_json::Value> =
        crate::helpers::scalar(&db, "SELECT draft FROM form_tasks", &[]).await;
    assert_eq!(draft, Some(json!({"companyName": "draft"})));
}

#[tokio::test]
async fn a_cursor_below_the_pruned_mark_gets_a_fresh_snapshot() {
    // A long retention by time, so only the prune mark can refuse the cursor.
    let app = spawn_app_with(json!({
        "prune_interval_ms": 3_600_000,
        "change_retention_secs": 3_600,
    }))
    .await;
    let someone = user();
    let (instance, _) = instance_with_form(&someone).await;
    let mut inbox = open(&app, &someone, "").await;
    let first = next(&mut inbox).await;
    let old_cursor = first.cursor.clone();
    let form = created_id(&app, new_task(&unique(), &instance, &someone)).await;
    let added = next(&mut inbox).await;
    assert!(matches!(added.event, Some(Event::Added(_))));
    drop(inbox);

    // Resumable before pruning: exactly the change missed.
    let mut resumed = open(&app, &someone, &old_cursor).await;
    assert!(matches!(
        next(&mut resumed).await.event,
        Some(Event::Added(_))
    ));
    drop(resumed);

    // Everything goes (a zero-length retention cannot be configured, so prune
    // with one from the test).
    let pruner = Pruner::new(store_of(&app), settings(Duration::from_millis(1), 100));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(pruner.pass().await.unwrap().changes > 0);

    let mut after = open(&app, &someone, &old_cursor).await;
    match next(&mut after).await.event {
        Some(Event::Snapshot(snapshot)) => {
            assert_eq!(
                snapshot
                    .form_tasks
                    .iter()
                    .map(|t| &t.id)
                    .collect::<Vec<_>>(),
                [&form]
            );
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    // The newest cursor is at the mark: still resumable, nothing missed.
    let mut latest = open(&app, &someone, &added.cursor).await;
    assert!(crate::forms::quiet(&mut latest, Duration::from_millis(500)).await);

    // A snapshot of the emptied log stands at the mark, so its cursor resumes.
    let mut fresh = open(&app, &someone, "").await;
    let snapshot = next(&mut fresh).await;
    assert!(matches!(snapshot.event, Some(Event::Snapshot(_))));
    drop(fresh);
    let mut resumed = open(&app, &someone, &snapshot.cursor).await;
    assert!(
        crate::forms::quiet(&mut resumed, Duration::from_millis(500)).await,
        "the snapshot's cursor did not resume"
    );
}

fn unique() -> String {
    crate::engine::unique_key("ext")
}

#[tokio::test]
async fn a_stream_that_falls_behind_what_was_pruned_ends_unavailable() {
    let app = spawn_app_with(json!({
        "prune_interval_ms": 3_600_000,
        "stream_buffer": 1,
    }))
    .await;
    let someone = user();
    let mut inbox = open(&app, &someone, "").await;
    assert!(matches!(
        next(&mut inbox).await.event,
        Some(Event::Snapshot(_))
    ));

    // Far more changes than the stream buffers, and more than the connection's flow
    // control lets through, while its client does not read: the hub marks the
    // stream lagging, and its catch-up from the log stalls half-way.
    app.db()
        .await
        .execute(
            "INSERT INTO form_changes (form_task_id, assignee, kind, reason, summary)
             SELECT gen_random_uuid(), $1, 'removed', 'withdrawn', '{}' FROM generate_series(1, 100000)",
            &[&someone],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Then retention takes the log away under it.
    let pruner = Pruner::new(store_of(&app), settings(Duration::from_millis(1), 5_000));
    assert!(pruner.pass().await.unwrap().changes >= 100_000);

    let status = crate::helpers::end_status(&mut inbox, Duration::from_secs(30)).await;
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("retention"), "{status:?}");
}
