//! SubmitForm and the delivery of answers to the engine.

use std::time::{Duration, Instant};

use ramp::camunda::types::{ExternalTask, FetchTopic};
use ramp::proto::*;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

use crate::client::Client;
use crate::engine::{camunda, deploy_model_with_form, unique_key};
use crate::forms::{created_id, next, open, removed, user};
use crate::helpers::{TestApp, spawn_app, spawn_app_with, token};
use crate::http_fault::{Fault, HttpFaultProxy};

const FORM: &str = r#"{"id": "step", "type": "default", "components": [
  {"type": "textfield", "key": "companyName", "label": "Company", "validate": {"required": true}},
  {"type": "radio", "key": "kind", "label": "Kind", "values": [{"label": "Standard", "value": "standard"}, {"label": "Critical", "value": "critical"}]},
  {"type": "textarea", "key": "reason", "label": "Why", "validate": {"required": true}, "conditional": {"hide": "=kind != \"critical\""}},
  {"type": "number", "key": "score", "label": "Score", "validate": {"min": 1, "max": 5}}
]}"#;

fn model(key: &str, body: &str) -> String {
    crate::engine::definitions(key, &["step"], body)
}

/// send → receive → end.
pub const SIMPLE: &str = r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="step"/>
    <bpmn:sendTask id="step" camunda:type="external" camunda:topic="submit_form"/>
    <bpmn:sequenceFlow id="f2" sourceRef="step" targetRef="wait_step"/>
    <bpmn:receiveTask id="wait_step" messageRef="msg_step"/>
    <bpmn:sequenceFlow id="f3" sourceRef="wait_step" targetRef="end"/>
    <bpmn:endEvent id="end"/>"#;

/// send → receive → back to the same receive, for ever: a second delivery of one
/// answer would consume the next wait.
pub const LOOPING: &str = r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="step"/>
    <bpmn:sendTask id="step" camunda:type="external" camunda:topic="submit_form"/>
    <bpmn:sequenceFlow id="f2" sourceRef="step" targetRef="join"/>
    <bpmn:exclusiveGateway id="join"/>
    <bpmn:sequenceFlow id="f3" sourceRef="join" targetRef="wait_step"/>
    <bpmn:receiveTask id="wait_step" messageRef="msg_step"/>
    <bpmn:sequenceFlow id="f4" sourceRef="wait_step" targetRef="join"/>"#;

/// The send task has an input mapping, so its execution is a scope of its own.
const SCOPED: &str = r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="step"/>
    <bpmn:sendTask id="step" camunda:type="external" camunda:topic="submit_form">
      <bpmn:extensionElements>
        <camunda:inputOutput><camunda:inputParameter name="assignedTo">${'reviewer@example.com'}</camunda:inputParameter></camunda:inputOutput>
      </bpmn:extensionElements>
    </bpmn:sendTask>
    <bpmn:sequenceFlow id="f2" sourceRef="step" targetRef="wait_step"/>
    <bpmn:receiveTask id="wait_step" messageRef="msg_step"/>
    <bpmn:sequenceFlow id="f3" sourceRef="wait_step" targetRef="end"/>
    <bpmn:endEvent id="end"/>"#;

/// Two parallel instances of a sub-process, each send → receive of one message.
pub const PARALLEL: &str = r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="each"/>
    <bpmn:subProcess id="each">
      <bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>2</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>
      <bpmn:startEvent id="inner_start"/>
      <bpmn:sequenceFlow id="i1" sourceRef="inner_start" targetRef="step"/>
      <bpmn:sendTask id="step" camunda:type="external" camunda:topic="submit_form"/>
      <bpmn:sequenceFlow id="i2" sourceRef="step" targetRef="wait_step"/>
      <bpmn:receiveTask id="wait_step" messageRef="msg_step"/>
      <bpmn:sequenceFlow id="i3" sourceRef="wait_step" targetRef="inner_end"/>
      <bpmn:endEvent id="inner_end"/>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f2" sourceRef="each" targetRef="end"/>
    <bpmn:endEvent id="end"/>"#;

pub struct Case {
    pub user: String,
    pub instance: String,
    pub tasks: Vec<ExternalTask>,
}

/// Deploys `body` with the form, starts it for a user of the test's own, and fetches
/// its send tasks as a worker would (without completing them).
pub async fn new_case(body: &str) -> Case {
    let engine = camunda();
    let key = unique_key("submit");
    deploy_model_with_form(&engine, &key, model(&key, body), FORM).await;
    let user = user();
    let instance = crate::engine::start_instance(&key, &user).await;
    let by_key = FetchTopic {
        process_definition_key: Some(key),
        ..Default::default()
    };
    let tasks = crate::engine::fetch_send_tasks("test-worker", 10, 600_000, by_key).await;
    Case {
        user,
        instance,
        tasks,
    }
}

pub async fn form_for(app: &TestApp, case: &Case, task: &ExternalTask) -> String {
    created_id(
        app,
        CreateFormTaskRequest {
            external_task_id: task.id.clone(),
            process_instance_id: task.process_instance_id.clone(),
            business_key: case.user.clone(),
            activity_id: task.activity_id.clone(),
            activity_instance_id: task.activity_instance_id.clone().unwrap_or_default(),
            execution_id: task.execution_id.clone().unwrap_or_default(),
            ..Default::default()
        },
    )
    .await
}

pub async fn complete_send_task(task: &ExternalTask) {
    camunda()
        .complete_external_task(
            &task.id,
            "test-worker",
            &Default::default(),
            &Default::default(),
        )
        .await
        .unwrap();
}

/// A case of `body` whose first form is made and its send task completed, so that
/// its receive task waits for the answer: (the case, the form's id).
pub async fn waiting_case(app: &TestApp, body: &str) -> (Case, String) {
    let case = new_case(body).await;
    let form = form_for(app, &case, &case.tasks[0]).await;
    complete_send_task(&case.tasks[0]).await;
    (case, form)
}

/// A waiting case (see `waiting_case`) whose form its user has answered ("Acme").
pub async fn answered_case(app: &TestApp, body: &str) -> (Case, String) {
    let (case, form) = waiting_case(app, body).await;
    submit(app, &case.user, &form, answer("Acme"), "")
        .await
        .unwrap();
    (case, form)
}

pub fn answer(name: &str) -> prost_types::Struct {
    ramp::json::json_to_struct(
        json!({"companyName": name, "kind": "standard", "score": 3})
            .as_object()
            .unwrap(),
    )
}

/// `user` submits `data` to `form` under `request_id`.
pub async fn submit(
    app: &TestApp,
    user: &str,
    form: &str,
    data: prost_types::Struct,
    request_id: &str,
) -> Result<Submission, tonic::Status> {
    app.as_user(user).submit_once(form, data, request_id).await
}

/// The delivery of `form`'s answer, as its assignee `user` reads it.
pub async fn delivery(app: &TestApp, user: &str, form: &str) -> Delivery {
    app.as_user(user)
        .form(form)
        .await
        .unwrap()
        .delivery
        .unwrap()
}

/// Waits (bounded) until the delivery leaves `pending`.
pub async fn settled(app: &TestApp, user: &str, form: &str) -> Delivery {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let current = delivery(app, user, form).await;
        if current.state() != DeliveryState::Pending || Instant::now() > deadline {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that the answer to `form` is delivered, once its delivery settles.
pub async fn assert_delivered(app: &TestApp, user: &str, form: &str) {
    let delivery = settled(app, user, form).await;
    assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");
}

/// The state the engine's history gives `instance` (`ACTIVE`, `COMPLETED`, ...).
pub async fn history_state(instance: &str) -> String {
    let history = camunda().historic_process_instance(instance).await.unwrap();
    history.state
}

pub async fn completed_waits(instance: &str) -> usize {
    let url = format!(
        "{}/history/activity-instance?processInstanceId={instance}&activityId=wait_step&finished=true",
        crate::engine::engine_url()
    );
    reqwest::get(url)
        .await
        .unwrap()
        .json::<Vec<serde_json::Value>>()
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_submit_before_the_receive_task_waits_is_delivered_once_it_does() {
    let app = spawn_app().await;
    let case = new_case(SIMPLE).await;
    let form = form_for(&app, &case, &case.tasks[0]).await;
    let mut inbox = open(&app, &case.user, "").await;
    next(&mut inbox).await;

    let submission = submit(&app, &case.user, &form, answer("Acme"), "")
        .await
        .unwrap();
    assert_eq!(submission.delivery_state(), DeliveryState::Pending);
    let removed = removed(next(&mut inbox).await);
    assert_eq!(removed.id, form);
    assert_eq!(removed.reason(), RemovalReason::Completed);

    // The worker has not completed the send task: nothing waits yet.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let waiting = delivery(&app, &case.user, &form).await;
    assert_eq!(waiting.state(), DeliveryState::Pending);
    assert!(
        waiting.last_error == "not yet delivered: the process is not ready for this answer yet",
        "{}",
        waiting.last_error
    );

    complete_send_task(&case.tasks[0]).await;
    let done = settled(&app, &case.user, &form).await;
    assert_eq!(done.state(), DeliveryState::Delivered, "{done:?}");
    let engine = camunda();
    assert_eq!(history_state(&case.instance).await, "COMPLETED");
    let company = engine
        .historic_variables(&[&case.instance], "companyName")
        .await
        .unwrap();
    assert_eq!(company[0].value, json!("Acme"));
    let marker = engine
        .historic_variables(&[&case.instance], "rampSubmissionId")
        .await
        .unwrap();
    assert_eq!(marker[0].value, json!(submission.id));
}

#[tokio::test]
async fn an_unreachable_engine_delays_the_delivery_and_loses_nothing() {
    let proxy = HttpFaultProxy::start(&crate::engine::engine_url(), Fault::None).await;
    let app = spawn_app_with(json!({"camunda_url": proxy.url(), "camunda_timeout_ms": 1_000, "delivery_lease_ms": 3_000})).await;
    let (case, form) = waiting_case(&app, SIMPLE).await;

    proxy.set(Fault::Down);
    submit(&app, &case.user, &form, answer("Acme"), "")
        .await
        .expect("a submit needs only the database");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        delivery(&app, &case.user, &form).await.state(),
        DeliveryState::Pending
    );

    proxy.set(Fault::None);
    assert_delivered(&app, &case.user, &form).await;
    assert_eq!(completed_waits(&case.instance).await, 1);
}

#[tokio::test]
async fn a_lost_answer_is_checked_by_its_marker_and_never_sent_twice() {
    let proxy =
        HttpFaultProxy::start(&crate::engine::engine_url(), Fault::HangAfter("/trigger")).await;
    let app = spawn_app_with(json!({"camunda_url": proxy.url(), "camunda_timeout_ms": 1_000, "delivery_lease_ms": 3_000})).await;
    let (case, form) = answered_case(&app, LOOPING).await;
    let done = settled(&app, &case.user, &form).await;
    assert_eq!(done.state(), DeliveryState::Delivered, "{done:?}");
    assert!(
        done.attempts >= 2,
        "the first attempt's answer was lost: {done:?}"
    );
    // Moved once: one wait done, and the loop waits again.
    assert_eq!(completed_waits(&case.instance).await, 1);
    assert_eq!(
        camunda()
            .executions_waiting_for(&case.instance, "step")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_repeated_submit_correlates_once_and_concurrent_submits_have_one_winner() {
    let app = spawn_app().await;
    let (case, form) = waiting_case(&app, LOOPING).await;

    let first = submit(&app, &case.user, &form, answer("Acme"), "req-1")
        .await
        .unwrap();
    let again = submit(&app, &case.user, &form, answer("Acme"), "req-1")
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_delivered(&app, &case.user, &form).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(completed_waits(&case.instance).await, 1);

    // Another form: two submits at once with different request ids.
    let case = new_case(SIMPLE).await;
    let form = form_for(&app, &case, &case.tasks[0]).await;
    let (a, b) = tokio::join!(
        submit(&app, &case.user, &form, answer("A"), "req-a"),
        submit(&app, &case.user, &form, answer("B"), "req-b"),
    );
    let codes: Vec<Code> = [&a, &b]
        .iter()
        .map(|r| r.as_ref().map_or_else(|s| s.code(), |_| Code::Ok))
        .collect();
    assert!(
        codes.contains(&Code::Ok) && codes.contains(&Code::FailedPrecondition),
        "{codes:?}"
    );
}

#[tokio::test]
async fn parallel_forms_of_one_instance_each_reach_their_own_execution() {
    let app = spawn_app().await;
    let case = new_case(PARALLEL).await;
    assert_eq!(case.tasks.len(), 2);
    let first = form_for(&app, &case, &case.tasks[0]).await;
    let second = form_for(&app, &case, &case.tasks[1]).await;
    complete_send_task(&case.tasks[0]).await;
    complete_send_task(&case.tasks[1]).await;

    let (a, b) = tokio::join!(
        submit(&app, &case.user, &first, answer("First"), ""),
        submit(&app, &case.user, &second, answer("Second"), ""),
    );
    a.unwrap();
    b.unwrap();
    assert_delivered(&app, &case.user, &first).await;
    assert_delivered(&app, &case.user, &second).await;
    assert_eq!(completed_waits(&case.instance).await, 2);
    assert_eq!(history_state(&case.instance).await, "COMPLETED");
}

#[tokio::test]
async fn a_send_task_that_is_a_scope_still_reaches_its_receive_task() {
    let app = spawn_app().await;
    let (case, form) = answered_case(&app, SCOPED).await;
    assert_delivered(&app, &case.user, &form).await;
    assert_eq!(history_state(&case.instance).await, "COMPLETED");
}

#[tokio::test]
async fn data_is_checked_against_the_form() {
    let app = spawn_app().await;
    let case = new_case(SIMPLE).await;
    let form = form_for(&app, &case, &case.tasks[0]).await;

    let bad = ramp::json::json_to_struct(
        json!({"kind": "critical", "score": 9, "extra": true})
            .as_object()
            .unwrap(),
    );
    let status = submit(&app, &case.user, &form, bad, "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_error_details()
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect();
    assert_eq!(
        fields,
        [
            "data.companyName",
            "data.reason",
            "data.score",
            "data.extra"
        ]
    );

    // `reason` is required only when shown (kind = critical): hidden, it may be absent.
    submit(&app, &case.user, &form, answer("Acme"), "")
        .await
        .expect("a hidden required field may be missing");

    let status = submit(&app, &case.user, &form, answer("Acme"), "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "no longer pending");
    let status = submit(&app, "bob@example.com", &form, answer("Acme"), "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "only the assignee");
}

#[tokio::test]
async fn an_answer_for_a_process_that_ended_is_undeliverable_and_kept() {
    let app = spawn_app().await;
    let case = new_case(SIMPLE).await;
    let form = form_for(&app, &case, &case.tasks[0]).await;
    camunda()
        .delete_process_instance(&case.instance, true)
        .await
        .unwrap();
    submit(&app, &case.user, &form, answer("Acme"), "")
        .await
        .unwrap();
    let done = settled(&app, &case.user, &form).await;
    assert_eq!(done.state(), DeliveryState::Undeliverable, "{done:?}");
    let task = app.as_user(&case.user).form(&form).await.unwrap();
    assert!(task.submitted_data.is_some(), "the data is kept");
}

/// Through the replica at `addr`: the worker makes the form of the case's first send
/// task, which is then completed, and the user answers it; returns the form's id.
async fn submitted_through(addr: std::net::SocketAddr, case: &Case) -> String {
    let task = &case.tasks[0];
    let worker = Client::at(addr, crate::client::WORKER, crate::client::worker_token());
    let form = worker
        .create_form_task(crate::forms::new_task(
            &task.id,
            &task.process_instance_id,
            &case.user,
        ))
        .await
        .unwrap()
        .form_task
        .unwrap()
        .summary
        .unwrap()
        .id;
    complete_send_task(task).await;
    Client::at(addr, &case.user, token(&case.user, &[]))
        .submit(&form, answer("Acme"))
        .await
        .unwrap();
    form
}

/// Sends `signal` (`-STOP`, `-CONT`) to the process `pid`.
fn signal(pid: &str, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal} {pid}");
}

#[tokio::test]
async fn a_frozen_replicas_claim_passes_to_another_and_its_late_outcome_is_not_recorded() {
    use std::process::Stdio;

    // Replica X: a separate process whose engine calls to trigger a message hang.
    let proxy =
        HttpFaultProxy::start(&crate::engine::engine_url(), Fault::HangBefore("/trigger")).await;
    let database = crate::helpers::fresh_database().await;
    let port = crate::helpers::free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut x = tokio::process::Command::new(env!("CARGO_BIN_EXE_ramp"));
    for (key, _) in std::env::vars() {
        if key.starts_with("RAMP_") {
            x.env_remove(key);
        }
    }
    let mut x = x
        .arg("serve")
        .env("RAMP_LISTEN", format!("127.0.0.1:{port}"))
        .env("RAMP_DATABASE_URL", &database)
        .env("RAMP_CAMUNDA_URL", proxy.url())
        .env("RAMP_CAMUNDA_TIMEOUT_MS", "2000")
        .env("RAMP_DELIVERY_LEASE_MS", "2500")
        .env("RAMP_JWT_SECRET", crate::helpers::TEST_SECRET)
        .env("RAMP_JWT_ISSUER", crate::helpers::TEST_ISSUER)
        .env("RAMP_LOG", "warn,ramp=info")
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    crate::helpers::wait_until_listening(addr, "replica X").await;
    crate::helpers::wait_until_serving(addr).await;

    let case = new_case(LOOPING).await;
    let form = submitted_through(addr, &case).await;

    // X claims the row at once and hangs in the engine call; freeze it there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = x.id().unwrap().to_string();
    signal(&pid, "-STOP");

    // Replica Y, talking to the engine directly, takes over after the lease.
    let y = crate::helpers::spawn_app_on(&database, json!({"delivery_poll_ms": 200})).await;
    let done = settled(&y, &case.user, &form).await;
    assert_eq!(done.state(), DeliveryState::Delivered, "{done:?}");

    // X resumes: its call fails late, and what it would record is refused.
    signal(&pid, "-CONT");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut logged = String::new();
    while Instant::now() < deadline {
        logged = std::fs::read_to_string(log.path()).unwrap();
        if logged.contains("lease lost") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        logged.contains("lease lost"),
        "X did not notice it lost the row:\n{logged}"
    );
    let after = delivery(&y, &case.user, &form).await;
    assert_eq!(after.state(), DeliveryState::Delivered);
    assert!(
        after.last_error.is_empty(),
        "X's late outcome was not written: {after:?}"
    );
    assert_eq!(completed_waits(&case.instance).await, 1, "delivered once");
    let _ = x.kill().await;
}

#[tokio::test]
async fn a_replica_killed_while_its_answer_is_in_flight_is_not_delivered_twice() {
    // Replica X reaches the engine (which acts), and dies before the answer comes.
    let proxy =
        HttpFaultProxy::start(&crate::engine::engine_url(), Fault::HangAfter("/trigger")).await;
    let database = crate::helpers::fresh_database().await;
    let mut x =
        crate::load::Replica::start(crate::load::replica_env(&database, &proxy.url(), "none"))
            .await;
    let case = new_case(LOOPING).await;
    let form = submitted_through(x.addr, &case).await;
    // The message reaches the receive task; X hangs for its answer, and is killed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while completed_waits(&case.instance).await == 0 {
        assert!(Instant::now() < deadline, "X never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    x.kill().await;

    // Y takes the row over when X's lease runs out, and finds the marker.
    let y = crate::helpers::spawn_app_on(
        &database,
        json!({"delivery_poll_ms": 200, "delivery_lease_ms": 4_000, "camunda_timeout_ms": 2_000}),
    )
    .await;
    let done = settled(&y, &case.user, &form).await;
    assert_eq!(done.state(), DeliveryState::Delivered, "{done:?}");
    assert_eq!(done.attempts, 2, "X's attempt, then Y's check: {done:?}");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(completed_waits(&case.instance).await, 1, "delivered once");
}
