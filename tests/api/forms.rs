//! FormService: form tasks, drafts, and the PendingForms stream.

use std::time::Duration;

use ramp::proto::form_service_client::FormServiceClient;
use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;
use serde_json::json;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::engine::{camunda, form_process, unique_key};
use crate::helpers::{
    TestApp, fresh_database, spawn_app, spawn_app_on, spawn_app_with, token, with_token,
};

/// A process of the test's own with a Camunda Form for its send task (`step`), and
/// one running instance of it: (instance id, definition id).
pub async fn instance_with_form(business_key: &str) -> (String, String) {
    let engine = camunda();
    let key = unique_key("forms");
    let form = json!({
        "id": "step", "type": "default", "schemaVersion": 16,
        "components": [
            {"type": "textfield", "key": "companyName", "label": "Company", "validate": {"required": true}},
            {"type": "number", "key": "riskScore", "label": "Risk"}
        ]
    });
    engine
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
    let instance = engine
        .start_process(&key, business_key, &Default::default())
        .await
        .unwrap();
    (instance.id, instance.definition_id.unwrap())
}

pub fn user() -> String {
    format!("{}@example.com", unique_key("user"))
}

pub fn worker() -> String {
    token("worker@example.com", &["ramp-worker"])
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

pub async fn forms(app: &TestApp) -> FormServiceClient<Channel> {
    FormServiceClient::new(app.channel().await)
}

pub async fn create(app: &TestApp, request: CreateFormTaskRequest) -> CreateFormTaskResponse {
    forms(app)
        .await
        .create_form_task(with_token(request, &worker()))
        .await
        .unwrap()
        .into_inner()
}

pub async fn open(app: &TestApp, user: &str, cursor: &str) -> Streaming<PendingFormsResponse> {
    forms(app)
        .await
        .pending_forms(with_token(
            PendingFormsRequest {
                cursor: cursor.into(),
            },
            &token(user, &[]),
        ))
        .await
        .unwrap()
        .into_inner()
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

fn snapshot_ids(message: &PendingFormsResponse) -> Vec<String> {
    match &message.event {
        Some(Event::Snapshot(s)) => s.form_tasks.iter().map(|t| t.id.clone()).collect(),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

fn added_id(message: &PendingFormsResponse) -> String {
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
    let bearer = token(&ann, &[]);
    let mut client = forms(&app).await;
    let draft = ramp::json::json_to_struct(json!({"companyName": "Acme Ltd"}).as_object().unwrap());
    let saved = client
        .save_draft(with_token(
            SaveDraftRequest {
                id: id.clone(),
                data: Some(draft.clone()),
            },
            &bearer,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(saved.form_task.unwrap().has_draft);
    match next(&mut stream).await.event {
        Some(Event::Updated(t)) => assert!(t.has_draft && t.id == id),
        other => panic!("expected updated, got {other:?}"),
    }
    let got = client
        .get_form_task(with_token(GetFormTaskRequest { id: id.clone() }, &bearer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.form_task.unwrap().draft, Some(draft));

    // Another user does not see it at all.
    let status = client
        .get_form_task(with_token(
            GetFormTaskRequest { id },
            &token("bob@example.com", &[]),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    crate::helpers::assert_clean(&status);
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
    let bearer = token(&ann, &[]);
    let mut client = forms(&app).await;
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_form_tasks(with_token(
                ListFormTasksRequest {
                    page_size: 2,
                    page_token: page_token.clone(),
                    statuses: vec![FormTaskStatus::Pending as i32],
                    ..Default::default()
                },
                &bearer,
            ))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.form_tasks.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ids, "oldest first, each once");
    let by_root = client
        .list_form_tasks(with_token(
            ListFormTasksRequest {
                root_process_instance_id: instance.clone(),
                ..Default::default()
            },
            &worker(),
        ))
        .await
        .unwrap()
        .into_inner();
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
        engine
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
        instances.push(
            engine
                .start_process(&key, &ann, &Default::default())
                .await
                .unwrap()
                .id,
        );
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
    let first = create(&app, new_task("ext-c0", &instance, &ann))
        .await
        .form_task
        .unwrap()
        .summary
        .unwrap()
        .id;
    let mut stream = open(&app, &ann, "").await;
    let snapshot = next(&mut stream).await;
    assert_eq!(snapshot_ids(&snapshot), [first]);
    let cursor = snapshot.cursor.clone();
    drop(stream);

    let mut missed = Vec::new();
    for i in 1..=3 {
        missed.push(
            create(&app, new_task(&format!("ext-c{i}"), &instance, &ann))
                .await
                .form_task
                .unwrap()
                .summary
                .unwrap()
                .id,
        );
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
    let status = forms(&app)
        .await
        .pending_forms(with_token(
            PendingFormsRequest {
                cursor: "garbage".into(),
            },
            &token(&ann, &[]),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    crate::helpers::assert_clean(&status);
}

#[tokio::test]
async fn a_cursor_older_than_the_retention_gets_a_snapshot() {
    let app = spawn_app_with(json!({"change_retention_secs": 1})).await;
    let ann = user();
    let (instance, _) = instance_with_form(&ann).await;
    let id = create(&app, new_task("ext-old", &instance, &ann))
        .await
        .form_task
        .unwrap()
        .summary
        .unwrap()
        .id;
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
    let status = forms(&app)
        .await
        .pending_forms(with_token(
            PendingFormsRequest::default(),
            &token(&ann, &[]),
        ))
        .await;
    let status = match status {
        Err(status) => status,
        Ok(response) => response.into_inner().next().await.unwrap().unwrap_err(),
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
    let mut stream = forms(&app)
        .await
        .pending_forms(with_token(PendingFormsRequest::default(), &short))
        .await
        .unwrap()
        .into_inner();
    next(&mut stream).await;
    let ended = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return status,
                None => panic!("the stream ended without a status"),
            }
        }
    })
    .await
    .expect("the stream ends within 6 s");
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
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return status.code(),
                None => return Code::Ok,
            }
        }
    })
    .await
    .expect("the stream ends within 3 s");
    assert_eq!(ended, Code::Unavailable);
}
