//! The change log under stress: out-of-order commits, a lost LISTEN connection, and
//! a stream that stops reading.

use std::time::Duration;

use ramp::proto::pending_forms_response::Event;
use serde_json::json;
use tokio_stream::StreamExt;
use uuid::Uuid;

use crate::engine::{camunda, form_process, unique_key};
use crate::forms::{
    added_id, create, created_id, instance_with_form, new_task, next, open, quiet, user,
};
use crate::helpers::{
    TestApp, fresh_database, spawn_app, spawn_app_on, spawn_app_with, test_config,
    wait_until_serving,
};

fn summary(id: Uuid, assignee: &str) -> serde_json::Value {
    let now = chrono::Utc::now().to_rfc3339();
    json!({
        "id": id, "form_name": "step", "business_key": assignee, "assignee": assignee,
        "status": "pending", "process_instance_id": "pi", "root_process_instance_id": "pi",
        "process_definition_key": null, "created_at": now, "updated_at": now,
        "has_draft": false, "title": "step"
    })
}

const INSERT: &str =
    "INSERT INTO form_changes (form_task_id, assignee, kind, summary) VALUES ($1, $2, 'added', $3)";

async fn insert(client: &impl tokio_postgres::GenericClient, assignee: &str) -> Uuid {
    let id = Uuid::now_v7();
    client
        .execute(INSERT, &[&id, &assignee, &summary(id, assignee)])
        .await
        .unwrap();
    id
}

async fn added_ids(
    stream: &mut tonic::Streaming<ramp::proto::PendingFormsResponse>,
    count: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(added_id(&next(stream).await));
    }
    ids
}

#[tokio::test]
async fn out_of_order_commits_are_seen_once_each_in_commit_order() {
    let app = spawn_app().await;
    let ann = user();
    let mut stream = open(&app, &ann, "").await;
    let start = next(&mut stream).await.cursor;
    let mut early = app.db().await;
    let mut late = app.db().await;

    // `early` takes its transaction id first; `late` appends first (the lower row
    // number); then `early` appends (the higher, later number) and commits first.
    let t1 = early.transaction().await.unwrap();
    t1.query_one("SELECT pg_current_xact_id()::text", &[])
        .await
        .unwrap();
    let t2 = late.transaction().await.unwrap();
    let second = insert(&t2, &ann).await;
    let first = insert(&t1, &ann).await;
    t1.commit().await.unwrap();
    assert_eq!(
        added_id(&next(&mut stream).await),
        first.to_string(),
        "the first commit arrives first"
    );
    t2.commit().await.unwrap();
    assert_eq!(added_id(&next(&mut stream).await), second.to_string());
    assert!(
        quiet(&mut stream, Duration::from_millis(1_500)).await,
        "nothing twice"
    );

    // A reader that reconnects from before sees the same, once, in the same order.
    let mut resumed = open(&app, &ann, &start).await;
    assert_eq!(
        added_ids(&mut resumed, 2).await,
        [first.to_string(), second.to_string()]
    );
    assert!(quiet(&mut resumed, Duration::from_millis(1_500)).await);
}

#[tokio::test]
async fn a_transaction_that_commits_late_is_never_skipped() {
    let app = spawn_app().await;
    let ann = user();
    let mut stream = open(&app, &ann, "").await;
    let start = next(&mut stream).await.cursor;
    let mut slow = app.db().await;
    let quick = app.db().await;

    // `slow` starts first and stays open while `quick` appends and commits; only
    // then does `slow` append and commit. A reader that took `quick`'s row at once
    // and moved its cursor past it would skip `slow`'s for good.
    let t1 = slow.transaction().await.unwrap();
    t1.query_one("SELECT pg_current_xact_id()::text", &[])
        .await
        .unwrap();
    let quick_id = insert(&quick, &ann).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let slow_id = insert(&t1, &ann).await;
    t1.commit().await.unwrap();

    let mut seen = added_ids(&mut stream, 2).await;
    assert!(
        quiet(&mut stream, Duration::from_millis(1_500)).await,
        "nothing twice"
    );
    let mut resumed = open(&app, &ann, &start).await;
    let replay = added_ids(&mut resumed, 2).await;
    assert_eq!(replay, seen, "every reader sees one order");
    seen.sort();
    let mut expected = vec![quick_id.to_string(), slow_id.to_string()];
    expected.sort();
    assert_eq!(seen, expected, "both, once each");
}

#[tokio::test]
async fn a_stream_opened_before_its_replica_finished_starting_misses_nothing() {
    // A replica serves as soon as it listens, while it still checks the schema
    // (under an advisory lock, so that replicas migrate one at a time) and before
    // its change hub has started. A restarted replica gets its clients' streams back
    // in that window. Holding the lock keeps the window open.
    let database = fresh_database().await;
    let secret = secrecy::SecretString::from(database.clone());
    ramp::store::Store::new(&secret, 2, Duration::from_secs(5))
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let lock = crate::helpers::connect(&database).await;
    lock.execute("SELECT pg_advisory_lock(x'72616d706d696772'::bigint)", &[])
        .await
        .unwrap();
    ramp::telemetry::init("warn,ramp=info", ramp::config::LogFormat::Pretty);
    let app = TestApp {
        app: ramp::server::Application::start(test_config(&database, json!({})))
            .await
            .unwrap(),
        database_url: database.clone(),
    };
    let ann = user();
    let mut stream = open(&app, &ann, "").await;
    let snapshot = next(&mut stream).await;
    assert!(
        matches!(&snapshot.event, Some(Event::Snapshot(s)) if s.form_tasks.is_empty()),
        "{snapshot:?}"
    );
    // A change commits after the stream read the log, before the hub starts.
    let early = insert(&app.db().await, &ann).await;
    lock.execute(
        "SELECT pg_advisory_unlock(x'72616d706d696772'::bigint)",
        &[],
    )
    .await
    .unwrap();
    wait_until_serving(app.addr()).await;
    let later = insert(&app.db().await, &ann).await;
    assert_eq!(
        added_ids(&mut stream, 2).await,
        [early.to_string(), later.to_string()],
        "both, in order"
    );
}

#[tokio::test]
async fn a_change_held_back_by_an_older_transaction_arrives_without_waiting_for_the_poll() {
    // Reading on a timer practically never: only wake-ups make the hub read.
    let app = spawn_app_with(json!({"change_poll_ms": 600_000})).await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let mut stream = open(&app, &ann, "").await;
    next(&mut stream).await;

    // An older transaction that writes nothing of ramp's keeps the change below it
    // unreadable when its wake-up comes.
    let mut older = app.db().await;
    let t0 = older.transaction().await.unwrap();
    t0.query_one("SELECT pg_current_xact_id()::text", &[])
        .await
        .unwrap();
    let created = created_id(
        &app,
        new_task(&format!("ext-held-{instance}"), &instance, &ann),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    t0.commit().await.unwrap();
    assert_eq!(added_id(&next(&mut stream).await), created);
}

#[tokio::test]
async fn streams_survive_the_listen_connection_being_killed() {
    // Reading on a timer practically never: only LISTEN (and its recovery) wakes A.
    let database = fresh_database().await;
    let quiet_timer = json!({"change_poll_ms": 600_000});
    let a = spawn_app_on(&database, quiet_timer.clone()).await;
    let b = spawn_app_on(&database, quiet_timer).await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let mut stream = open(&a, &ann, "").await;
    next(&mut stream).await;

    let mut created = Vec::new();
    for i in 0..30 {
        if i == 10 || i == 20 {
            // The creates in between take less time than a reconnect: wait for
            // both replicas' LISTEN connections to be back before the second kill.
            let db = a.db().await;
            let listening = "FROM pg_stat_activity
                WHERE datname = current_database() AND query LIKE 'LISTEN%'";
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let n: i64 =
                    crate::helpers::scalar(&db, &format!("SELECT count(*) {listening}"), &[]).await;
                if n >= 2 || std::time::Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let killed: i64 = crate::helpers::scalar(
                &db,
                &format!("SELECT count(pg_terminate_backend(pid)) {listening}"),
                &[],
            )
            .await;
            assert!(killed >= 1, "a LISTEN connection was there to kill");
        }
        let response = create(
            &b,
            new_task(&format!("ext-k{i}-{instance}"), &instance, &ann),
        )
        .await;
        created.push(response.form_task.unwrap().summary.unwrap().id);
    }
    assert_eq!(
        added_ids(&mut stream, 30).await,
        created,
        "every event, in order"
    );
}

#[tokio::test]
async fn a_stream_that_stops_reading_is_bounded_and_delays_no_one() {
    let app: TestApp = spawn_app_with(json!({"stream_buffer": 16})).await;
    let stuck_user = user();
    let other_user = user();
    let mut stuck = open(&app, &stuck_user, "").await;
    next(&mut stuck).await;
    let mut other = open(&app, &other_user, "").await;
    next(&mut other).await;

    // 10,000 changes for the stuck user, committed at once.
    let db = app.db().await;
    let inserted: Vec<Uuid> = crate::helpers::column(
        &db,
        "WITH ids AS (SELECT gen_random_uuid() AS id, n FROM generate_series(1, 10000) n)
             INSERT INTO form_changes (form_task_id, assignee, kind, summary)
             SELECT id, $1::text, 'added', jsonb_build_object(
                 'id', id, 'form_name', 'step', 'business_key', $1::text, 'assignee', $1::text, 'status', 'pending',
                 'process_instance_id', 'pi', 'root_process_instance_id', 'pi', 'process_definition_key', null,
                 'created_at', now(), 'updated_at', now(), 'has_draft', false, 'title', 'step')
             FROM ids ORDER BY n RETURNING form_task_id",
        &[&stuck_user],
    )
    .await;

    // Another user's form arrives while the stuck stream holds its backlog.
    let (instance, _) = instance_with_form(&other_user).await;
    let id = created_id(&app, new_task("ext-other", &instance, &other_user)).await;
    assert_eq!(added_id(&next(&mut other).await), id);
    tokio::time::sleep(Duration::from_millis(1_500)).await; // the hub has read all 10,000 by now
    let buffered = app.app.hub().largest_buffer();
    assert!(
        buffered <= 16,
        "the server holds at most the stream's buffer, not the backlog: {buffered}"
    );

    // When it reads again, the stuck stream gets everything, once, in order.
    let mut got = Vec::with_capacity(inserted.len());
    while got.len() < inserted.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), stuck.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(Event::Added(t)) = message.event {
            got.push(t.id);
        }
    }
    let expected: Vec<String> = inserted.iter().map(Uuid::to_string).collect();
    assert_eq!(got, expected);
    assert!(quiet(&mut stuck, Duration::from_millis(1_000)).await);
}

/// The events of one form on a stream, as (kind, form id), until `count` arrived.
async fn events_of(
    stream: &mut tonic::Streaming<ramp::proto::PendingFormsResponse>,
    count: usize,
) -> Vec<(&'static str, String)> {
    let mut events = Vec::new();
    while events.len() < count {
        match next(stream).await.event {
            Some(Event::Added(t)) => events.push(("added", t.id)),
            Some(Event::Updated(t)) => events.push(("updated", t.id)),
            Some(Event::Removed(r)) => events.push(("removed", r.id)),
            other => panic!("expected a change, got {other:?}"),
        }
    }
    events
}

#[tokio::test]
async fn a_withdrawal_that_took_its_transaction_id_before_a_reassignment_leaves_the_form_withdrawn()
{
    // Issue #19, finding 7. A cancel withdraws the forms of its tree in one
    // statement, which takes a transaction id as it reaches the first form and then
    // waits there for a lock (here: a transaction the test holds open). Meanwhile an
    // admin gives another form of the tree to Bob, and that commits first, with a
    // higher id. When the cancel goes on, it withdraws that form from Bob. Ordered by
    // transaction id, Bob's stream heard `removed` before `added`, and a withdrawn
    // form stood in his inbox. Seen failing before the fix: Bob's stream got
    // [removed, added] and the log held the withdrawal before the reassignment.
    let key = unique_key("order");
    let form = json!({
        "id": "step", "type": "default", "schemaVersion": 16,
        "components": [{"type": "textfield", "key": "companyName", "label": "Company"}]
    });
    camunda()
        .deploy(
            &key,
            vec![
                (
                    format!("{key}.bpmn"),
                    form_process(&key, "step").into_bytes(),
                ),
                ("step.form".into(), form.to_string().into_bytes()),
            ],
            false,
            None,
        )
        .await
        .unwrap();
    let app = spawn_app_with(json!({"startable_definitions": key})).await;
    let ann = user();
    let bob = user();
    let process = app.as_user(&ann).start(&key).await.unwrap();
    let instance = process.engine_instance_id.clone();
    // `first` is stored first, so the withdrawal reaches it first.
    let mut ids = Vec::new();
    for name in ["first", "moved"] {
        let id = created_id(
            &app,
            new_task(&format!("ext-{name}-{instance}"), &instance, &ann),
        )
        .await;
        ids.push(id);
    }
    let (first, moved) = (ids[0].clone(), ids[1].clone());
    let mut bobs = open(&app, &bob, "").await;
    let start = next(&mut bobs).await.cursor;

    // Hold `first` so that the cancel's withdrawal stops there.
    let mut holder = app.db().await;
    let hold = holder.transaction().await.unwrap();
    hold.execute(
        "SELECT 1 FROM form_tasks WHERE id = $1::text::uuid FOR UPDATE",
        &[&first],
    )
    .await
    .unwrap();
    let cancelling = {
        let as_ann = app.as_user(&ann);
        let id = process.id.clone();
        tokio::spawn(async move { as_ann.cancel(&id, "").await })
    };
    let watcher = app.db().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = crate::helpers::scalar(
            &watcher,
            "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE 'UPDATE form_tasks%'",
            &[],
        )
        .await;
        if waiting == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the withdrawal never reached the held form"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The reassignment of the other form is not held up: it commits now.
    let reassigned = tokio::time::timeout(
        Duration::from_secs(10),
        app.as_admin().reassign(&moved, &bob),
    )
    .await
    .expect("the reassignment does not wait for the withdrawal")
    .expect("the form is reassigned");
    assert_eq!(reassigned.assignee, bob);
    hold.commit().await.unwrap();
    cancelling.await.unwrap().expect("the process is cancelled");

    // The scenario happened: the withdrawal's transaction id is below the
    // reassignment's, and it withdrew the form from Bob.
    let db = app.db().await;
    let withdrawal_tx: i64 = crate::helpers::scalar(
        &db,
        "SELECT tx FROM form_changes WHERE form_task_id = $1::text::uuid AND kind = 'removed'",
        &[&first],
    )
    .await;
    let reassignment_tx: i64 = crate::helpers::scalar(
        &db,
        "SELECT tx FROM form_changes
             WHERE form_task_id = $1::text::uuid AND reason = 'reassigned'",
        &[&moved],
    )
    .await;
    assert!(
        withdrawal_tx < reassignment_tx,
        "the withdrawal took its transaction id first ({withdrawal_tx} < {reassignment_tx})"
    );
    let withdrawn_from: String = crate::helpers::scalar(
        &db,
        "SELECT assignee FROM form_changes
             WHERE form_task_id = $1::text::uuid AND reason = 'withdrawn'",
        &[&moved],
    )
    .await;
    assert_eq!(withdrawn_from, bob);

    // Bob's stream, and one resumed from before, end with the form gone.
    let expected = vec![("added", moved.clone()), ("removed", moved.clone())];
    assert_eq!(events_of(&mut bobs, 2).await, expected, "live");
    let mut resumed = open(&app, &bob, &start).await;
    assert_eq!(events_of(&mut resumed, 2).await, expected, "resumed");
    let log: Vec<(String, String)> = db
        .query(
            "SELECT kind, assignee FROM form_changes WHERE form_task_id = $1::text::uuid
             ORDER BY tx, seq",
            &[&moved],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        log,
        [
            ("added".to_owned(), ann.clone()),
            ("removed".to_owned(), ann.clone()),
            ("added".to_owned(), bob.clone()),
            ("removed".to_owned(), bob.clone()),
        ],
        "the log holds the form's changes in the order its row changed"
    );
}

#[tokio::test]
async fn the_hub_checks_the_end_of_a_long_log_through_its_index() {
    // Every read of the change hub first asks whether changes are held back. On a
    // log of a week's changes that question must cost an index probe, not a scan
    // of the log (the benchmark found it at 24 ms a read, delaying every push).
    // A few thousand rows decide the plan already; a longer insert would hold back
    // the pruning of tests running alongside (it waits for every older transaction
    // in the cluster).
    let app = spawn_app_with(json!({"prune_interval_ms": 3_600_000})).await;
    let db = app.db().await;
    db.execute(
        "INSERT INTO form_changes (form_task_id, assignee, kind, summary)
         SELECT gen_random_uuid(), 'long-log-' || i, 'added', '{}' FROM generate_series(1, 5000) i",
        &[],
    )
    .await
    .unwrap();
    db.batch_execute("ANALYZE form_changes").await.unwrap();
    let plan: Vec<String> = db
        .query(
            &format!("EXPLAIN {}", ramp::store::forms::READ_CHECK),
            &[&0i64],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(
        !plan.contains("Seq Scan"),
        "the check scans the log:\n{plan}"
    );
}
