//! FormService: form tasks, drafts, and the PendingForms stream.

use std::time::Duration;

use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;
use serde_json::json;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::Streaming;

use crate::client::Client;
use crate::engine::{camunda, deploy_model_with_form, form_process, unique_key};
use crate::helpers::{TestApp, fresh_database, refused, spawn_app, spawn_app_on, spawn_app_with};

/// A process of the test's own with a Camunda Form for its send task (`step`), and
/// one running instance of it: (instance id, definition id).
pub async fn instance_with_form(business_key: &str) -> (String, String) {
    instance_with_form_and(business_key, json!({})).await
}

/// Like `instance_with_form`, the instance started with `variables`.
pub async fn instance_with_form_and(
    business_key: &str,
    variables: serde_json::Value,
) -> (String, String) {
    let engine = camunda();
    let key = unique_key("forms");
    let form = json!({
        "id": "step", "type": "default", "schemaVersion": 16,
        "components": [
            {"type": "textfield", "key": "companyName", "label": "Company", "validate": {"required": true}},
            {"type": "number", "key": "riskScore", "label": "Risk"}
        ]
    });
    deploy_model_with_form(&engine, &key, form_process(&key, "step"), &form.to_string()).await;
    let variables = ramp::camunda::typed(variables.as_object().expect("an object"));
    let instance = engine
        .start_process(&key, business_key, &variables)
        .await
        .unwrap();
    (instance.id, instance.definition_id.unwrap())
}

/// A pending form of `user`'s (its id), made by the worker for a new instance of
/// a process with a Camunda Form.
pub async fn pending_form(app: &TestApp, user: &str) -> String {
    let (instance, _) = instance_with_form(user).await;
    created_id(app, new_task(&unique_key("ext"), &instance, user)).await
}

pub fn user() -> String {
    format!("{}@example.com", unique_key("user"))
}

/// A bearer token of the worker.
pub fn worker() -> String {
    crate::client::worker_token()
}

pub fn new_task(external: &str, instance: &str, business_key: &str) -> CreateFormTaskRequest {
    CreateFormTaskRequest {
        external_task_id: external.into(),
        process_instance_id: instance.into(),
        business_key: business_key.into(),
        activity_id: "step".into(),
        ..Default::default()
    }
}

/// Creates a form task as the worker; it must succeed.
pub async fn create(app: &TestApp, request: CreateFormTaskRequest) -> CreateFormTaskResponse {
    app.as_worker().create_form_task(request).await.unwrap()
}

/// Creates a form task as a worker and returns its id.
pub async fn created_id(app: &TestApp, request: CreateFormTaskRequest) -> String {
    app.as_worker().create_form(request).await.unwrap()
}

/// Opens `user`'s inbox stream after `cursor`; it must open.
pub async fn open(app: &TestApp, user: &str, cursor: &str) -> Streaming<PendingFormsResponse> {
    app.as_user(user).pending_forms(cursor).await.unwrap()
}

/// The next message other than a heartbeat, within 10 s.
pub async fn next(stream: &mut Streaming<PendingFormsResponse>) -> PendingFormsResponse {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a message within 10 s")
            .expect("the stream is open")
            .expect("not an error");
        if !matches!(message.event, Some(Event::Heartbeat(_))) {
            return message;
        }
    }
}

/// Whether anything but heartbeats arrives within `wait`.
pub async fn quiet(stream: &mut Streaming<PendingFormsResponse>, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return true,
            Ok(Some(Ok(message))) if matches!(message.event, Some(Event::Heartbeat(_))) => continue,
            Ok(_) => return false,
        }
    }
}

/// The removal `message` announces (it must be one).
pub fn removed(message: PendingFormsResponse) -> pending_forms_response::Removed {
    match message.event {
        Some(Event::Removed(removed)) => removed,
        other => panic!("expected removed, got {other:?}"),
    }
}

fn snapshot_ids(message: &PendingFormsResponse) -> Vec<String> {
    match &message.event {
        Some(Event::Snapshot(s)) => s.form_tasks.iter().map(|t| t.id.clone()).collect(),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

/// The id of the form `message` adds (it must be an addition).
pub fn added_id(message: &PendingFormsResponse) -> String {
    match &message.event {
        Some(Event::Added(t)) => t.id.clone(),
        other => panic!("expected added, got {other:?}"),
    }
}

#[tokio::test]
async fn creating_a_form_task_twice_makes_one_task_and_one_event() {
    let app = spawn_app().await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let mut stream = open(&app, &ann, "").await;
    assert!(snapshot_ids(&next(&mut stream).await).is_empty());

    let first = create(&app, new_task("ext-a", &instance, &ann)).await;
    let again = create(&app, new_task("ext-a", &instance, &ann)).await;
    assert!(first.created && !again.created);
    let task = first.form_task.unwrap().summary.unwrap();
    assert_eq!(again.form_task.unwrap().summary.unwrap().id, task.id);

    assert_eq!(added_id(&next(&mut stream).await), task.id);
    assert!(
        quiet(&mut stream, Duration::from_millis(1_500)).await,
        "the repeat pushed nothing"
    );
    assert_eq!(task.assignee, ann);
    assert_eq!(task.root_process_instance_id, instance);
    assert_eq!(task.status(), FormTaskStatus::Pending);
}

#[tokio::test]
async fn a_form_task_carries_its_schema_prefill_and_draft() {
    let app = spawn_app().await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let prefill = ramp::json::json_to_struct(
        json!({"companyName": "Acme", "notAField": 1})
            .as_object()
            .unwrap(),
    );
    let created = create(
        &app,
        CreateFormTaskRequest {
            prefill: Some(prefill),
            ..new_task("ext-p", &instance, &ann)
        },
    )
    .await;
    let task = created.form_task.unwrap();
    let id = task.summary.unwrap().id;
    let prefill = ramp::json::struct_to_json(task.prefill.as_ref().unwrap()).unwrap();
    assert_eq!(
        serde_json::Value::Object(prefill),
        json!({"companyName": "Acme"}),
        "only the form's fields"
    );
    let schema = ramp::json::struct_to_json(task.schema.as_ref().expect("the schema")).unwrap();
    assert_eq!(schema["id"], "step");
    assert_eq!(task.message_name, "step");

    let mut stream = open(&app, &ann, "").await;
    next(&mut stream).await;
    let as_ann = app.as_user(&ann);
    let draft = ramp::json::json_to_struct(json!({"companyName": "Acme Ltd"}).as_object().unwrap());
    let saved = as_ann.save_draft(&id, draft.clone()).await.unwrap();
    assert!(saved.has_draft);
    match next(&mut stream).await.event {
        Some(Event::Updated(t)) => assert!(t.has_draft && t.id == id),
        other => panic!("expected updated, got {other:?}"),
    }
    assert_eq!(as_ann.form(&id).await.unwrap().draft, Some(draft));

    // Another user does not see it at all.
    refused(
        app.as_user("bob@example.com").form(&id).await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn lists_filter_and_page_in_a_stable_order() {
    let app = spawn_app().await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let created = create(
            &app,
            new_task(&format!("ext-l{i}-{instance}"), &instance, &ann),
        )
        .await;
        ids.push(created.form_task.unwrap().summary.unwrap().id);
    }
    let as_ann = app.as_user(&ann);
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = as_ann
            .forms(ListFormTasksRequest {
                page_size: 2,
                page_token: page_token.clone(),
                statuses: vec![FormTaskStatus::Pending as i32],
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(page.form_tasks.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ids, "oldest first, each once");
    let by_root = app
        .as_admin()
        .forms(ListFormTasksRequest {
            root_process_instance_id: instance.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_root.form_tasks.len(), 5);
}

#[tokio::test]
async fn the_schema_comes_from_the_forms_own_deployment() {
    let engine = camunda();
    let app = spawn_app().await;
    let ann = user();
    let key = unique_key("versions");
    let mut instances = Vec::new();
    for label in ["first", "second"] {
        let form = json!({"id": "step", "type": "default", "components": [{"type": "textfield", "key": label, "label": label}]});
        deploy_model_with_form(&engine, &key, form_process(&key, "step"), &form.to_string()).await;
        instances.push(crate::engine::start_instance(&key, &ann).await);
    }
    for (instance, label) in instances.iter().zip(["first", "second"]) {
        let task = create(&app, new_task(&format!("ext-{instance}"), instance, &ann))
            .await
            .form_task
            .unwrap();
        let schema = ramp::json::struct_to_json(task.schema.as_ref().unwrap()).unwrap();
        assert_eq!(schema["components"][0]["key"], label, "instance {instance}");
    }
}

#[tokio::test]
async fn a_form_created_through_one_replica_reaches_a_stream_on_another() {
    let database = fresh_database().await;
    let a = spawn_app_on(&database, json!({})).await;
    let b = spawn_app_on(&database, json!({})).await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let mut stream = open(&a, &ann, "").await;
    next(&mut stream).await;
    let created = create(&b, new_task("ext-r", &instance, &ann)).await;
    assert_eq!(
        added_id(&next(&mut stream).await),
        created.form_task.unwrap().summary.unwrap().id
    );
}

#[tokio::test]
async fn a_stream_resumes_from_its_cursor_with_exactly_what_it_missed() {
    let app = spawn_app().await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let first = created_id(&app, new_task("ext-c0", &instance, &ann)).await;
    let mut stream = open(&app, &ann, "").await;
    let snapshot = next(&mut stream).await;
    assert_eq!(snapshot_ids(&snapshot), [first]);
    let cursor = snapshot.cursor.clone();
    drop(stream);

    let mut missed = Vec::new();
    for i in 1..=3 {
        missed.push(created_id(&app, new_task(&format!("ext-c{i}"), &instance, &ann)).await);
    }
    let mut resumed = open(&app, &ann, &cursor).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(added_id(&next(&mut resumed).await));
    }
    assert_eq!(got, missed);
    assert!(
        quiet(&mut resumed, Duration::from_millis(1_500)).await,
        "nothing twice"
    );

    // A cursor this server never gave out is refused.
    refused(
        app.as_user(&ann).pending_forms("garbage").await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn a_cursor_older_than_the_retention_gets_a_snapshot() {
    let app = spawn_app_with(json!({"change_retention_secs": 1})).await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let id = created_id(&app, new_task("ext-old", &instance, &ann)).await;
    let mut stream = open(&app, &ann, "").await;
    let cursor = next(&mut stream).await.cursor;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let mut resumed = open(&app, &ann, &cursor).await;
    assert_eq!(snapshot_ids(&next(&mut resumed).await), [id]);
}

#[tokio::test]
async fn a_user_holds_a_bounded_number_of_streams() {
    let app = spawn_app_with(json!({"max_streams_per_user": 2})).await;
    let ann = user();
    let mut first = open(&app, &ann, "").await;
    let mut second = open(&app, &ann, "").await;
    next(&mut first).await;
    next(&mut second).await;
    let status = match app.as_user(&ann).pending_forms("").await {
        Err(status) => status,
        Ok(mut stream) => stream.next().await.unwrap().unwrap_err(),
    };
    assert_eq!(status.code(), Code::ResourceExhausted);
    crate::helpers::assert_clean(&status);
    drop(first);
    // Once the server notices the first is gone, a new one opens.
    let mut opened = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut stream = open(&app, &ann, "").await;
        if let Some(Ok(message)) = stream.next().await {
            opened = Some(message);
            break;
        }
    }
    assert!(opened.is_some(), "a stream opens again");
}

#[tokio::test]
async fn an_idle_stream_gets_heartbeats_with_its_cursor() {
    let app = spawn_app_with(json!({"stream_heartbeat_secs": 1})).await;
    let ann = user();
    let mut stream = open(&app, &ann, "").await;
    let snapshot = next(&mut stream).await;
    let beat = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(beat.event, Some(Event::Heartbeat(_))));
    assert_eq!(beat.cursor, snapshot.cursor);
}

#[tokio::test]
async fn a_stream_ends_with_unauthenticated_when_its_token_expires() {
    let app = spawn_app().await;
    let ann = user();
    let short = ramp::auth::mint_hs256(
        &secrecy::SecretString::from(crate::helpers::TEST_SECRET),
        &ramp::auth::TokenClaims {
            email: &ann,
            roles: &[],
            ttl: Duration::from_secs(2),
            issuer: Some(crate::helpers::TEST_ISSUER),
            audience: "ramp",
        },
    )
    .unwrap();
    let mut stream = Client::at(app.addr(), &ann, short)
        .pending_forms("")
        .await
        .unwrap();
    next(&mut stream).await;
    let ended = crate::helpers::end_status(&mut stream, Duration::from_secs(6)).await;
    assert_eq!(ended.code(), Code::Unauthenticated);
    crate::helpers::assert_clean(&ended);
    assert!(ended.message().contains("expired"), "{}", ended.message());
}

#[tokio::test]
async fn shutdown_ends_an_open_inbox_with_unavailable() {
    let app = spawn_app().await;
    let ann = user();
    let mut stream = open(&app, &ann, "").await;
    next(&mut stream).await;
    app.app.shutdown();
    let ended = crate::helpers::end_status(&mut stream, Duration::from_secs(3))
        .await
        .code();
    assert_eq!(ended, Code::Unavailable);
}

fn draft(data: serde_json::Value) -> Option<prost_types::Struct> {
    Some(ramp::json::json_to_struct(data.as_object().unwrap()))
}

/// The draft stored for a form, read from the database.
async fn stored_draft(app: &TestApp, id: &str) -> Option<serde_json::Value> {
    let id = uuid::Uuid::parse_str(id).unwrap();
    let db = app.db().await;
    crate::helpers::scalar(&db, "SELECT draft FROM form_tasks WHERE id = $1", &[&id]).await
}

/// Waits (bounded) until a statement starting with `sql` waits for a lock in the
/// app's database.
async fn waiting_for_a_lock(app: &TestApp, sql: &str) {
    let db = app.db().await;
    for _ in 0..200 {
        let waiting: i64 = crate::helpers::scalar(
            &db,
            "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE $1 || '%'",
            &[&sql],
        )
        .await;
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no statement `{sql}...` waited for the locked row within 10 s");
}

/// Issue 19, finding 5. The reassignment holds the form's row (as
/// `store::forms::reassign` writes it, in a transaction of the test's own) while
/// the old assignee saves a draft, which waits for the row. Before the fix the save
/// had checked the assignee with a read beforehand, so when the reassignment
/// committed, its write landed Ann's draft on Bob's form (seen failing: the save
/// answered OK and Bob's form held `{"companyName": "Ann's notes"}`).
#[tokio::test]
async fn a_draft_saved_while_its_form_is_reassigned_does_not_land_on_the_new_assignees_form() {
    let app = spawn_app().await;
    let ann = user();
    let bob = user();
    let id = pending_form(&app, &ann).await;

    let mut reassigning = app.db().await;
    let reassignment = reassigning.transaction().await.unwrap();
    reassignment
        .execute(
            "UPDATE form_tasks SET assignee = $2, draft = NULL, updated_at = now()
             WHERE id = $1 AND status = 'pending'",
            &[&uuid::Uuid::parse_str(&id).unwrap(), &bob],
        )
        .await
        .unwrap();
    let as_ann = app.as_user(&ann);
    let saving = tokio::spawn({
        let id = id.clone();
        async move {
            as_ann
                .save_draft(&id, draft(json!({"companyName": "Ann's notes"})).unwrap())
                .await
        }
    });
    waiting_for_a_lock(&app, "UPDATE form_tasks SET draft").await;
    reassignment.commit().await.unwrap();

    let saved = saving.await.unwrap();
    assert_eq!(
        stored_draft(&app, &id).await,
        None,
        "Ann's draft landed on Bob's form"
    );
    let refused = refused(saved, Code::NotFound);
    assert_eq!(refused.message(), "form task not found");
    let for_bob = app.as_user(&bob).form(&id).await.unwrap();
    assert!(for_bob.draft.is_none());
    assert_eq!(for_bob.summary.unwrap().assignee, bob);
}

/// The other order of the same race: a draft that holds the row when an admin
/// reassigns the form is cleared by the reassignment, which waits for it (its read
/// locks the row, and the clearing is part of the statement that moves the form).
#[tokio::test]
async fn a_draft_saved_just_before_a_reassignment_is_not_handed_over() {
    let app = spawn_app().await;
    let ann = user();
    let bob = user();
    let id = pending_form(&app, &ann).await;

    let mut saving = app.db().await;
    let save = saving.transaction().await.unwrap();
    save.execute(
        "UPDATE form_tasks SET draft = $2, updated_at = now() WHERE id = $1 AND assignee = $3",
        &[
            &uuid::Uuid::parse_str(&id).unwrap(),
            &json!({"companyName": "Ann's notes"}),
            &ann,
        ],
    )
    .await
    .unwrap();
    let admin = app.as_admin();
    let reassigning = tokio::spawn({
        let (id, bob) = (id.clone(), bob.clone());
        async move { admin.reassign(&id, &bob).await }
    });
    waiting_for_a_lock(&app, "SELECT").await;
    save.commit().await.unwrap();

    let moved = reassigning.await.unwrap().unwrap();
    assert_eq!(moved.assignee, bob);
    assert!(!moved.has_draft);
    assert_eq!(stored_draft(&app, &id).await, None);
}

/// Issue 19, finding 11: a repeat whose assignee was corrected, while the form is
/// still pending, moves the form to that person as a reassignment does. Before the
/// fix the repeat answered the first task unchanged (seen failing: the form stayed
/// Ann's).
#[tokio::test]
async fn a_repeat_with_a_corrected_assignee_moves_the_pending_form_to_them() {
    let app = spawn_app().await;
    let ann = user();
    let bob = user();
    // The process names Bob now (a worker may give a form only to someone the
    // process names).
    let (instance, _) = instance_with_form_and(&ann, json!({"assignedTo": bob})).await;
    let external = unique_key("ext");
    let id = created_id(&app, new_task(&external, &instance, &ann)).await;
    app.as_user(&ann)
        .save_draft(&id, draft(json!({"companyName": "Ann's notes"})).unwrap())
        .await
        .unwrap();
    let mut ann_inbox = open(&app, &ann, "").await;
    let mut bob_inbox = open(&app, &bob, "").await;
    assert_eq!(snapshot_ids(&next(&mut ann_inbox).await), [id.as_str()]);
    assert!(snapshot_ids(&next(&mut bob_inbox).await).is_empty());

    let corrected = CreateFormTaskRequest {
        assignee: bob.clone(),
        ..new_task(&external, &instance, &ann)
    };
    let repeat = create(&app, corrected.clone()).await;
    assert!(!repeat.created);
    let moved = repeat.form_task.unwrap();
    let summary = moved.summary.unwrap();
    assert_eq!(summary.id, id);
    assert_eq!(
        summary.assignee, bob,
        "the form stayed with the first assignee"
    );
    assert!(moved.draft.is_none(), "Ann's draft is not handed to Bob");
    let from_ann = removed(next(&mut ann_inbox).await);
    assert_eq!(from_ann.id, id);
    assert_eq!(from_ann.reason(), RemovalReason::Reassigned);
    assert_eq!(added_id(&next(&mut bob_inbox).await), id);

    // Repeating the corrected request changes nothing more.
    let again = create(&app, corrected).await;
    assert!(!again.created);
    assert_eq!(again.form_task.unwrap().summary.unwrap().assignee, bob);
    assert!(quiet(&mut bob_inbox, Duration::from_millis(800)).await);
    assert!(quiet(&mut ann_inbox, Duration::from_millis(100)).await);
}

/// Issue 19, finding 11: a repeat with data that cannot be applied is refused with
/// ALREADY_EXISTS naming what differs, and changes nothing; a different prefill
/// alone is not a difference. Before the fix each repeat answered the first task
/// (seen failing: OK with created=false).
#[tokio::test]
async fn a_repeat_with_other_data_is_refused_naming_what_differs() {
    let app = spawn_app().await;
    let ann = user();
    let bob = user();
    let (instance, _) = instance_with_form_and(&ann, json!({"reviewer": bob})).await;
    let external = unique_key("ext");
    let first = CreateFormTaskRequest {
        prefill: draft(json!({"companyName": "Acme"})),
        ..new_task(&external, &instance, &ann)
    };
    let id = created_id(&app, first.clone()).await;
    let worker = app.as_worker();
    let repeat = |request| worker.create_form_task(request);

    let other_prefill = repeat(CreateFormTaskRequest {
        prefill: draft(json!({"companyName": "Other"})),
        ..first.clone()
    })
    .await
    .unwrap();
    assert!(!other_prefill.created);
    let prefill = other_prefill.form_task.unwrap().prefill.unwrap();
    assert_eq!(prefill, draft(json!({"companyName": "Acme"})).unwrap());

    let other_form = refused(
        repeat(CreateFormTaskRequest {
            form_name: "otherForm".into(),
            message_name: "otherMessage".into(),
            assignee: bob.clone(),
            ..first.clone()
        })
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(
        other_form.message(),
        format!(
            "a form task for this external task exists with other data: \
             form_name is \"step\" there but \"otherForm\" here; \
             message_name is \"step\" there but \"otherMessage\" here; \
             assignee is \"{ann}\" there but \"{bob}\" here"
        )
    );
    let (elsewhere, _) = instance_with_form(&ann).await;
    let other_instance = refused(
        repeat(CreateFormTaskRequest {
            process_instance_id: elsewhere,
            ..first.clone()
        })
        .await,
        Code::AlreadyExists,
    );
    assert!(
        other_instance
            .message()
            .ends_with("exists with other data: process_instance_id differs"),
        "{}",
        other_instance.message()
    );

    // Answered, the form keeps its assignee: a corrected one comes too late.
    app.as_user(&ann)
        .submit(&id, draft(json!({"companyName": "Acme"})).unwrap())
        .await
        .unwrap();
    let too_late = refused(
        repeat(CreateFormTaskRequest {
            assignee: bob.clone(),
            ..first.clone()
        })
        .await,
        Code::AlreadyExists,
    );
    assert!(
        too_late
            .message()
            .ends_with("(the form is completed, so its assignee no longer changes)"),
        "{}",
        too_late.message()
    );

    let stored = app.as_admin().form(&id).await.unwrap();
    let summary = stored.summary.unwrap();
    assert_eq!(
        (summary.assignee.as_str(), summary.form_name.as_str()),
        (ann.as_str(), "step")
    );
    assert_eq!(stored.message_name, "step");
}
