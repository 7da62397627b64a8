//! Streams starting in the same moment share one read of the database
//! (`ramp::store::starts`): each must get exactly what a read of its own gives it,
//! whatever else the batch holds: snapshots of send-task forms and of user tasks
//! seen as candidate, resumes cut at the limit across several keys, cursors the log
//! never had or no longer has, and snapshots held back by a transaction in flight.

use std::time::Duration;

use chrono::Utc;
use ramp::store::Store;
use ramp::store::forms::{Position, Viewer};
use ramp::store::starts::{self, StartRequest, Started};
use serde_json::json;
use uuid::Uuid;

use ramp::proto::pending_forms_response::Event;

use crate::forms::{added_id, next, open, quiet};
use crate::helpers::{TestApp, spawn_app_with};

const LIMIT: i64 = 3;

fn viewer(email: &str, user_id: &str, groups: &[&str]) -> Viewer {
    let mut keys = vec![email.to_owned()];
    if !user_id.is_empty() {
        keys.push(format!("user:{user_id}"));
    }
    keys.extend(groups.iter().map(|g| format!("group:{g}")));
    Viewer {
        email: email.into(),
        user_id: user_id.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        keys,
    }
}

/// A summary as a change carries it.
fn summary(id: Uuid, key: &str) -> serde_json::Value {
    let now = Utc::now().to_rfc3339();
    json!({
        "id": id, "form_name": "step", "business_key": "bk", "assignee": key,
        "status": "pending", "process_instance_id": "pi", "root_process_instance_id": "pi",
        "process_definition_key": null, "created_at": now, "updated_at": now,
        "has_draft": false, "title": "step"
    })
}

/// A pending form in `form_tasks` and its `added` change under each key.
async fn form(
    db: &impl tokio_postgres::GenericClient,
    assignee: &str,
    kind: &str,
    candidate_users: &[&str],
    candidate_groups: &[&str],
    keys: &[&str],
) -> Position {
    let id = Uuid::now_v7();
    db.execute(
        "INSERT INTO form_tasks (id, external_task_id, business_key, form_name, message_name,
             assignee, status, process_instance_id, root_process_instance_id, activity_id,
             kind, candidate_users, candidate_groups)
         VALUES ($1, $6, 'bk', 'step', 'step', $2, 'pending', 'pi', 'pi', 'step', $3, $4, $5)",
        &[
            &id,
            &assignee,
            &kind,
            &candidate_users,
            &candidate_groups,
            &id.to_string(),
        ],
    )
    .await
    .unwrap();
    let mut last = (0, 0);
    for key in keys {
        let row = db
            .query_one(
                "INSERT INTO form_changes (form_task_id, assignee, kind, summary)
                 VALUES ($1, $2, 'added', $3) RETURNING tx, seq",
                &[&id, key, &summary(id, key)],
            )
            .await
            .unwrap();
        last = (row.get(0), row.get(1));
    }
    last
}

fn store_of(app: &TestApp) -> Store {
    Store::new(
        &secrecy::SecretString::from(app.database_url.clone()),
        4,
        Duration::from_secs(5),
    )
    .unwrap()
}

async fn read(store: &Store, requests: &[StartRequest<'_>]) -> Vec<Started> {
    let oldest = Utc::now() - chrono::Duration::hours(1);
    starts::read(&mut store.client().await.unwrap(), requests, oldest, LIMIT)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_of_starts_gives_each_stream_what_a_read_of_its_own_gives() {
    let app = spawn_app_with(json!({"prune_interval_ms": 3_600_000})).await;
    let db = app.db().await;
    let store = store_of(&app);

    // Ann: four forms; Bob: none; Carol: a reviewer (engine user id "carol") with
    // a task of her own, one for her group and one naming her as candidate; Dan: a
    // reviewer with nothing else.
    let ann = viewer("ann@example.com", "", &[]);
    let bob = viewer("bob@example.com", "", &[]);
    let carol = viewer("carol@example.com", "carol", &["reviewers"]);
    let dan = viewer("dan@example.com", "dan", &["reviewers", "buyers"]);
    let mut ann_positions = Vec::new();
    for _ in 0..4 {
        ann_positions.push(
            form(
                &db,
                &ann.email,
                "send_task",
                &[],
                &[],
                &[ann.email.as_str()],
            )
            .await,
        );
    }
    let carol_first = form(
        &db,
        &carol.email,
        "send_task",
        &[],
        &[],
        &[carol.email.as_str()],
    )
    .await;
    form(
        &db,
        "",
        "user_task",
        &[],
        &["reviewers"],
        &["group:reviewers"],
    )
    .await;
    form(
        &db,
        "",
        "user_task",
        &["carol"],
        &["reviewers"],
        &["user:carol", "group:reviewers"],
    )
    .await;
    form(&db, "carol", "user_task", &[], &[], &["user:carol"]).await;
    form(
        &db,
        "",
        "user_task",
        &["dan"],
        &["buyers"],
        &["user:dan", "group:buyers"],
    )
    .await;

    // Erin's change commits while an older transaction is still open: a snapshot
    // of hers is held back until it ends, and a resume does not see it yet.
    let erin = viewer("erin@example.com", "", &[]);
    let erin_first = form(
        &db,
        &erin.email,
        "send_task",
        &[],
        &[],
        &[erin.email.as_str()],
    )
    .await;
    let mut open = app.db().await;
    let older = open.transaction().await.unwrap();
    older
        .execute("SELECT pg_current_xact_id()", &[])
        .await
        .unwrap();
    form(
        &db,
        &erin.email,
        "send_task",
        &[],
        &[],
        &[erin.email.as_str()],
    )
    .await;

    let requests = [
        StartRequest {
            viewer: &ann,
            cursor: None,
        },
        // Three of four after the first: cut at the limit.
        StartRequest {
            viewer: &ann,
            cursor: Some(ann_positions[0]),
        },
        StartRequest {
            viewer: &ann,
            cursor: Some(ann_positions[3]),
        },
        // The start of the log: resumable, all of Ann's changes up to the limit.
        StartRequest {
            viewer: &ann,
            cursor: Some((0, 0)),
        },
        // A position the log never had: a snapshot.
        StartRequest {
            viewer: &ann,
            cursor: Some((ann_positions[3].0, i64::MAX)),
        },
        StartRequest {
            viewer: &bob,
            cursor: None,
        },
        StartRequest {
            viewer: &carol,
            cursor: None,
        },
        // Changes under three keys, in log order, cut at the limit.
        StartRequest {
            viewer: &carol,
            cursor: Some(carol_first),
        },
        StartRequest {
            viewer: &dan,
            cursor: None,
        },
        StartRequest {
            viewer: &dan,
            cursor: Some(carol_first),
        },
        StartRequest {
            viewer: &erin,
            cursor: None,
        },
        StartRequest {
            viewer: &erin,
            cursor: Some(erin_first),
        },
    ];
    let batch = read(&store, &requests).await;
    let mut alone = Vec::new();
    for request in &requests {
        let one = StartRequest {
            viewer: request.viewer,
            cursor: request.cursor,
        };
        alone.push(read(&store, &[one]).await.pop().unwrap());
    }
    older.rollback().await.unwrap();
    for (i, (batched, own)) in batch.iter().zip(&alone).enumerate() {
        assert_eq!(batched, own, "start {i} in the batch and alone");
    }

    // And what each got is what it should get, so that the comparison above
    // compares something.
    let forms = |s: &Started| match s {
        Started::Snapshot(forms, _) => forms.len(),
        other => panic!("a snapshot expected, got {other:?}"),
    };
    let changes = |s: &Started| match s {
        Started::Resumed(changes) => changes
            .iter()
            .map(|c| c.assignee.clone())
            .collect::<Vec<_>>(),
        other => panic!("a resume expected, got {other:?}"),
    };
    assert_eq!(forms(&batch[0]), 4);
    assert_eq!(changes(&batch[1]).len(), 3);
    assert_eq!(changes(&batch[2]).len(), 0);
    assert_eq!(changes(&batch[3]).len(), 3);
    assert_eq!(forms(&batch[4]), 4);
    assert_eq!(forms(&batch[5]), 0);
    assert_eq!(
        forms(&batch[6]),
        4,
        "her own, the group's, as candidate, assigned"
    );
    assert_eq!(
        changes(&batch[7]),
        ["group:reviewers", "user:carol", "group:reviewers"],
        "one key after another, in log order, cut at the limit"
    );
    assert_eq!(
        forms(&batch[8]),
        3,
        "two for the reviewers, one as candidate"
    );
    assert_eq!(
        changes(&batch[9]),
        ["group:reviewers", "group:reviewers", "user:dan"],
        "Carol's own changes are not Dan's"
    );
    assert_eq!(batch[10], Started::HeldBack);
    assert_eq!(
        changes(&batch[11]).len(),
        0,
        "her second change is not readable yet"
    );
}

/// The ids of a snapshot's forms.
fn snapshot_ids(message: &ramp::proto::PendingFormsResponse) -> Vec<String> {
    match &message.event {
        Some(Event::Snapshot(s)) => s.form_tasks.iter().map(|f| f.id.clone()).collect(),
        other => panic!("a snapshot expected, got {other:?}"),
    }
}

#[tokio::test]
async fn streams_opened_all_at_once_each_start_with_their_own_forms() {
    let app = spawn_app_with(json!({"prune_interval_ms": 3_600_000})).await;
    let db = app.db().await;
    // 60 users, user i with i % 4 forms; half of them come back with a cursor
    // taken before their last form was written.
    let users: Vec<String> = (0..60)
        .map(|i| format!("storm-{i}-{}@example.com", Uuid::now_v7().simple()))
        .collect();
    let mut first = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let mut stream = open(&app, user, "").await;
        let start = next(&mut stream).await;
        assert!(snapshot_ids(&start).is_empty());
        first.push(start.cursor);
        for _ in 0..i % 4 {
            form(&db, user, "send_task", &[], &[], &[user.as_str()]).await;
        }
    }
    let expected = |user: &str| {
        let user = user.to_owned();
        let db = &db;
        async move {
            db.query(
                "SELECT id::text FROM form_tasks WHERE assignee = $1 ORDER BY created_at, id",
                &[&user],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
        }
    };
    let opened = futures::future::join_all(users.iter().enumerate().map(|(i, user)| {
        let cursor = if i % 2 == 0 {
            first[i].clone()
        } else {
            String::new()
        };
        let app = &app;
        async move {
            let mut stream = open(app, user, &cursor).await;
            let mut ids = Vec::new();
            if cursor.is_empty() {
                ids = snapshot_ids(&next(&mut stream).await);
            } else {
                for _ in 0..i % 4 {
                    ids.push(added_id(&next(&mut stream).await));
                }
            }
            assert!(
                quiet(&mut stream, Duration::from_millis(300)).await,
                "user {i}: nothing more"
            );
            ids
        }
    }))
    .await;
    for (i, ids) in opened.iter().enumerate() {
        assert_eq!(ids, &expected(&users[i]).await, "user {i}'s stream");
    }
}
