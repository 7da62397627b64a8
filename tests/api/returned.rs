//! Answers the engine refuses come back to their author; long answers reach the
//! engine. Models drawn as teams draw them (send tasks without forms, a gateway on a
//! variable an answer may lack, a textarea answer of 100,000 characters), against the
//! run's real engine on PostgreSQL, with a real `ramp worker` making the forms.

use std::time::{Duration, Instant};

use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;
use serde_json::{Value, json};
use tokio::process::Child;
use tonic::Code;

use crate::e2e::worker;
use crate::engine::{camunda, definitions, engine_url, unique_key};
use crate::forms::{next, open, removed, user};
use crate::helpers::{TestApp, admin_database_url, spawn_app, spawn_app_with};
use crate::http_fault::{Fault, HttpFaultProxy};
use crate::submit::{SIMPLE, answer, waiting_case};

fn condition(expression: &str) -> String {
    format!(
        r#"<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{expression}</bpmn:conditionExpression>"#
    )
}

/// A request reviewed on a form without a Camunda Form (name/value pairs), then a
/// gateway on `approved`, which the reviewer may leave out; approved, a second form.
fn approval(key: &str) -> String {
    let yes = condition("${approved == true}");
    let no = condition("${approved == false}");
    definitions(
        key,
        &["review", "confirm"],
        &format!(
            r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sendTask id="review" name="Review the request" camunda:type="external" camunda:topic="submit_form"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="wait_review"/>
    <bpmn:receiveTask id="wait_review" messageRef="msg_review"/>
    <bpmn:sequenceFlow id="f3" sourceRef="wait_review" targetRef="decide"/>
    <bpmn:exclusiveGateway id="decide" name="Approved?"/>
    <bpmn:sequenceFlow id="yes" sourceRef="decide" targetRef="confirm">{yes}</bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="no" sourceRef="decide" targetRef="rejected">{no}</bpmn:sequenceFlow>
    <bpmn:endEvent id="rejected"/>
    <bpmn:sendTask id="confirm" name="Confirm" camunda:type="external" camunda:topic="submit_form"/>
    <bpmn:sequenceFlow id="f4" sourceRef="confirm" targetRef="wait_confirm"/>
    <bpmn:receiveTask id="wait_confirm" messageRef="msg_confirm"/>
    <bpmn:sequenceFlow id="f5" sourceRef="wait_confirm" targetRef="end"/>
    <bpmn:endEvent id="end"/>"#
        ),
    )
}

/// A long textarea answer, read by a gateway as a string, then shown on the next
/// form (a Camunda Form with the same field).
fn statement(key: &str) -> String {
    let text = condition("${note.length() &gt; 4000 &amp;&amp; note.startsWith('Dear')}");
    definitions(
        key,
        &["write", "read"],
        &format!(
            r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="write"/>
    <bpmn:sendTask id="write" camunda:type="external" camunda:topic="submit_form"/>
    <bpmn:sequenceFlow id="f2" sourceRef="write" targetRef="wait_write"/>
    <bpmn:receiveTask id="wait_write" messageRef="msg_write"/>
    <bpmn:sequenceFlow id="f3" sourceRef="wait_write" targetRef="check"/>
    <bpmn:exclusiveGateway id="check" default="not_text"/>
    <bpmn:sequenceFlow id="is_text" sourceRef="check" targetRef="read">{text}</bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="not_text" sourceRef="check" targetRef="wrong"/>
    <bpmn:endEvent id="wrong"/>
    <bpmn:sendTask id="read" camunda:type="external" camunda:topic="submit_form"/>
    <bpmn:sequenceFlow id="f4" sourceRef="read" targetRef="wait_read"/>
    <bpmn:receiveTask id="wait_read" messageRef="msg_read"/>
    <bpmn:sequenceFlow id="f5" sourceRef="wait_read" targetRef="end"/>
    <bpmn:endEvent id="end"/>"#
        ),
    )
}

const NOTE_FORM: &str = r#"{"id": "FORM_ID", "type": "default", "components": [
  {"type": "textarea", "key": "note", "label": "Statement"}
]}"#;

/// Deploys `bpmn` (and forms) under `key`, starts it for a new user, and runs a
/// worker for it. The worker dies with the returned child.
async fn case(app: &TestApp, key: &str, bpmn: String, forms: &[&str]) -> (String, String, Child) {
    let mut resources = vec![(format!("{key}.bpmn"), bpmn.into_bytes())];
    for form in forms {
        resources.push((
            format!("{form}.form"),
            NOTE_FORM.replace("FORM_ID", form).into_bytes(),
        ));
    }
    camunda().deploy(key, resources, false, None).await.unwrap();
    let user = user();
    let instance = crate::engine::start_instance(key, &user).await;
    let worker = worker(&app.url(), &["--definition-key", key], &engine_url());
    (user, instance, worker)
}

/// The next `added` form on `inbox`, skipping a first snapshot (empty or not).
async fn added(inbox: &mut tonic::Streaming<PendingFormsResponse>) -> FormTaskSummary {
    loop {
        match next(inbox).await.event {
            Some(Event::Added(form)) => return form,
            Some(Event::Snapshot(s)) if !s.form_tasks.is_empty() => {
                return s.form_tasks[0].clone();
            }
            Some(Event::Snapshot(_)) => continue,
            other => panic!("expected a form to be added, got {other:?}"),
        }
    }
}

/// `user` answers `form` with `data`, under a request id of its own.
async fn submit(
    app: &TestApp,
    user: &str,
    form: &str,
    data: Value,
) -> Result<Submission, tonic::Status> {
    let data = ramp::json::json_to_struct(data.as_object().unwrap());
    let request_id = uuid::Uuid::now_v7().to_string();
    app.as_user(user).submit_once(form, data, &request_id).await
}

async fn form_task(app: &TestApp, user: &str, id: &str) -> FormTask {
    app.as_user(user).form(id).await.unwrap()
}

fn json_of(data: &Option<prost_types::Struct>) -> Value {
    Value::Object(ramp::json::struct_to_json(data.as_ref().expect("data is present")).unwrap())
}

/// No engine id, URL or class name in text a person reads.
fn readable(text: &str, instance: &str) {
    assert!(!text.contains("http"), "{text}");
    assert!(!text.contains(instance), "{text}");
    assert!(!text.contains("Exception"), "{text}");
    assert!(!text.contains("execution"), "{text}");
}

#[tokio::test]
async fn an_answer_the_process_cannot_use_comes_back_to_its_author_and_a_corrected_one_goes_through()
 {
    let app = spawn_app().await;
    let key = unique_key("approval");
    let (user, instance, _worker) = case(&app, &key, approval(&key), &[]).await;
    let mut inbox = open(&app, &user, "").await;
    let review = added(&mut inbox).await;
    assert_eq!(review.form_name, "review");
    assert!(review.return_reason.is_empty());

    // The reviewer leaves out `approved`, which the gateway after the receive task
    // reads: the engine refuses the message, and always will.
    submit(&app, &user, &review.id, json!({"comment": "looks fine"}))
        .await
        .expect("the answer is accepted");
    assert_eq!(removed(next(&mut inbox).await).id, review.id);
    let returned = added(&mut inbox).await;
    assert_eq!(returned.id, review.id, "the same form comes back");
    assert_eq!(returned.status(), FormTaskStatus::Pending);
    assert_eq!(returned.delivery_state(), DeliveryState::Refused);
    assert_eq!(
        returned.return_reason,
        "the process could not use this answer: it needs a value for `approved`"
    );
    assert!(returned.return_time.is_some());
    readable(&returned.return_reason, &instance);

    let task = form_task(&app, &user, &review.id).await;
    assert_eq!(json_of(&task.draft), json!({"comment": "looks fine"}));
    let delivery = task.delivery.unwrap();
    assert_eq!(delivery.state(), DeliveryState::Refused);
    assert_eq!(delivery.last_error, returned.return_reason);

    // Admins see the engine's own words.
    let refused = app
        .as_admin()
        .deliveries(ListDeliveriesRequest {
            states: vec![DeliveryState::Refused as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .deliveries;
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]
            .engine_error
            .contains("Unknown property used in expression"),
        "{:?}",
        refused[0]
    );
    // The process did not move: it still waits for the review.
    assert_eq!(
        crate::engine::executions_waiting(&instance, "review").await,
        1
    );

    // Corrected, it goes through, and the next form appears.
    submit(
        &app,
        &user,
        &review.id,
        json!({"comment": "looks fine", "approved": true}),
    )
    .await
    .expect("the corrected answer is accepted");
    assert_eq!(removed(next(&mut inbox).await).id, review.id);
    let confirm = added(&mut inbox).await;
    assert_eq!(confirm.form_name, "confirm");
    let task = form_task(&app, &user, &review.id).await;
    assert_eq!(task.summary.unwrap().status(), FormTaskStatus::Completed);
    assert_eq!(task.delivery.unwrap().state(), DeliveryState::Delivered);
    let approved = camunda()
        .historic_variables(&[&instance], "approved")
        .await
        .unwrap();
    assert_eq!(approved[0].value, json!(true));
}

#[tokio::test]
async fn an_answer_the_process_moved_on_without_comes_back_with_the_reason() {
    // The process waited at the receive task, then an operator moved it on (the
    // engine's process instance modification, as Cockpit offers it) to a wait for
    // another message: nothing will wait for this answer any more.
    let app = spawn_app().await;
    let key = unique_key("moved");
    let (user, instance, _worker) = case(&app, &key, approval(&key), &[]).await;
    let mut inbox = open(&app, &user, "").await;
    let review = added(&mut inbox).await;
    // Wait until the worker completed the send task and the receive task waits.
    let deadline = Instant::now() + Duration::from_secs(20);
    while camunda()
        .executions_waiting_for(&instance, "review")
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the receive task never waited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let modified = reqwest::Client::new()
        .post(format!(
            "{}/process-instance/{instance}/modification",
            engine_url()
        ))
        .json(&json!({"skipCustomListeners": true, "instructions": [
            {"type": "cancel", "activityId": "wait_review"},
            {"type": "startBeforeActivity", "activityId": "wait_confirm"}
        ]}))
        .send()
        .await
        .unwrap();
    assert!(modified.status().is_success(), "{modified:?}");

    submit(&app, &user, &review.id, json!({"approved": true}))
        .await
        .expect("the answer is accepted");
    let returned = loop {
        match next(&mut inbox).await.event {
            Some(Event::Added(form)) if form.id == review.id => break form,
            // The withdrawal of the form may or may not have come first.
            Some(_) => continue,
            None => unreachable!(),
        }
    };
    assert_eq!(
        returned.return_reason,
        "the process no longer waits for this answer: it moved on without it"
    );
}

/// Which PostgreSQL database holds the engine's tables, if one on the run's cluster.
async fn engine_database() -> Option<tokio_postgres::Client> {
    let url = format!("{} dbname=engine", admin_database_url());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(client)
}

#[tokio::test]
async fn a_long_answer_reaches_the_engine_and_reads_back_as_text() {
    let app = spawn_app().await;
    let key = unique_key("statement");
    let (user, instance, _worker) = case(&app, &key, statement(&key), &["write", "read"]).await;
    let mut inbox = open(&app, &user, "").await;
    let write = added(&mut inbox).await;
    assert_eq!(write.form_name, "write");

    // 100,000 characters, some of them outside ASCII, as a textarea gives them.
    let note = format!("Dear reviewer, {}", "lorem ipsum dolor — ".repeat(5_000));
    let note = note.chars().take(100_000).collect::<String>();
    assert_eq!(note.chars().count(), 100_000);
    submit(&app, &user, &write.id, json!({"note": note}))
        .await
        .expect("the answer is accepted");
    assert_eq!(removed(next(&mut inbox).await).id, write.id);
    // The gateway compared it as a string (length, startsWith) and chose the form
    // that shows it again.
    let read = added(&mut inbox).await;
    assert_ne!(read.id, write.id, "the long answer came back: {read:?}");
    assert_eq!(read.form_name, "read");
    let delivery = form_task(&app, &user, &write.id).await.delivery.unwrap();
    assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");

    // The next form shows it, as the worker read it from the engine.
    let shown = form_task(&app, &user, &read.id).await;
    assert_eq!(json_of(&shown.prefill)["note"], json!(note));

    // Through the engine's REST, it reads as text.
    let rest: Value =
        crate::engine::rest_get(&format!("/process-instance/{instance}/variables/note")).await;
    assert_eq!(rest["value"], json!(note), "{}", &rest["type"]);

    // And it was stored by the engine's PostgreSQL, where a String stops at 4,000.
    let db = engine_database().await.expect(
        "the engine runs on the run's PostgreSQL cluster (database `engine`, as scripts/test.sh starts it)",
    );
    let stored: i64 = crate::helpers::scalar(
        &db,
        "SELECT count(*) FROM act_ru_variable WHERE proc_inst_id_ = $1 AND name_ = 'note'",
        &[&instance],
    )
    .await;
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn a_missing_form_answers_not_found_and_nothing_is_returned_twice() {
    // A refused answer is given back once: its delivery row ends refused, so no
    // later pass finds it again.
    let app = spawn_app().await;
    let key = unique_key("approval");
    let (user, _instance, _worker) = case(&app, &key, approval(&key), &[]).await;
    let mut inbox = open(&app, &user, "").await;
    let review = added(&mut inbox).await;
    submit(&app, &user, &review.id, json!({"comment": "x"}))
        .await
        .unwrap();
    next(&mut inbox).await; // removed
    let returned = added(&mut inbox).await;
    assert_eq!(returned.id, review.id);
    assert!(
        crate::forms::quiet(&mut inbox, Duration::from_secs(3)).await,
        "the form is returned once"
    );
    let missing = submit(&app, &user, &uuid::Uuid::now_v7().to_string(), json!({}))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn an_answer_not_through_in_the_time_allowed_fails_and_its_author_reads_why() {
    // The engine is down for longer than answers may wait (here one second): the
    // delivery stops retrying and says so, to its author in words and to admins.
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::None).await;
    let app = spawn_app_with(json!({
        "camunda_url": proxy.url(),
        "camunda_timeout_ms": 1_000,
        "delivery_lease_ms": 3_000,
        "delivery_poll_ms": 100,
        "delivery_give_up_after_secs": 1,
    }))
    .await;
    let (case, form) = waiting_case(&app, SIMPLE).await;
    proxy.set(Fault::Down);
    crate::submit::submit(&app, &case.user, &form, answer("Acme"), "")
        .await
        .expect("a submit needs only the database");
    let failed = crate::submit::settled(&app, &case.user, &form).await;
    assert_eq!(failed.state(), DeliveryState::Failed, "{failed:?}");
    assert_eq!(
        failed.last_error,
        "not delivered: the process engine is unavailable"
    );
    readable(&failed.last_error, &case.instance);
    // Nothing reached the engine, and an admin can send it once it is back.
    proxy.set(Fault::None);
    assert_eq!(crate::submit::completed_waits(&case.instance).await, 0);
}
