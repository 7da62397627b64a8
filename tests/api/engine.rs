//! The run's shared engine (started by `scripts/test.sh`) and models made per test,
//! under keys of their own, so that parallel tests never touch each other's work.

use std::time::Duration;

use ramp::camunda::types::{
    ExternalTask, FetchAndLock, FetchTopic, ProcessInstance, ProcessInstanceQuery,
};
use ramp::camunda::{Camunda, CamundaSettings};

/// The run's engine, as `scripts/test.sh` exports it.
pub fn engine_url() -> String {
    std::env::var("RAMP_TEST_CAMUNDA_URL").expect(
        "RAMP_TEST_CAMUNDA_URL is not set: run the tests through `make test`, which starts an engine",
    )
}

pub fn camunda() -> Camunda {
    camunda_at(&engine_url(), Duration::from_secs(10))
}

pub fn camunda_at(url: &str, timeout: Duration) -> Camunda {
    Camunda::new(CamundaSettings {
        url: url.to_owned(),
        user: None,
        password: None,
        timeout,
    })
}

/// GETs `path` (with its query) from the engine's REST API, for what the client
/// has no method for: the answer, read as JSON.
pub async fn rest_get<T: serde::de::DeserializeOwned>(path: &str) -> T {
    reqwest::get(format!("{}{path}", engine_url()))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Sends `body` to `path` of the engine's REST API with `method`, for what the
/// client has no method for, and expects a success.
pub async fn rest_send(method: reqwest::Method, path: &str, body: serde_json::Value) {
    let answer = reqwest::Client::new()
        .request(method, format!("{}{path}", engine_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        answer.status().is_success(),
        "{path}: {}",
        answer.text().await.unwrap()
    );
}

/// The open user tasks of a process instance, as the engine's REST API lists them
/// (`GET /task`), oldest first.
pub async fn user_tasks(instance: &str) -> Vec<serde_json::Value> {
    rest_get(&format!(
        "/task?processInstanceId={instance}&sortBy=created&sortOrder=asc"
    ))
    .await
}

/// Completes a user task in the engine directly, as Camunda Tasklist would, with
/// `variables` (a JSON object of plain values, sent untyped).
pub async fn complete_user_task(id: &str, variables: serde_json::Value) {
    let variables: serde_json::Map<String, serde_json::Value> = variables
        .as_object()
        .expect("variables are an object")
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::json!({ "value": value })))
        .collect();
    rest_send(
        reqwest::Method::POST,
        &format!("/task/{id}/complete"),
        serde_json::json!({ "variables": variables }),
    )
    .await;
}

/// Starts `key` in the engine (not through ramp) for `business_key`, with no
/// variables; answers the instance's id.
pub async fn start_instance(key: &str, business_key: &str) -> String {
    let instance = camunda()
        .start_process(key, business_key, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{key} starts: {e}"));
    instance.id
}

/// The instances running in the engine for `business_key` (a called process
/// carries its root's).
pub async fn running_instances(business_key: &str) -> Vec<ProcessInstance> {
    camunda()
        .process_instances(&ProcessInstanceQuery {
            business_key: Some(business_key.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// How many executions of `instance` wait for the message `message` now.
pub async fn executions_waiting(instance: &str, message: &str) -> usize {
    camunda()
        .executions_waiting_for(instance, message)
        .await
        .unwrap()
        .len()
}

/// Fetches and locks (for `lock_ms`) up to `max_tasks` send tasks of topic
/// `submit_form` that `filter` selects (by definition or business key), as
/// `worker`, the way ramp's worker does, without making their forms.
pub async fn fetch_send_tasks(
    worker: &str,
    max_tasks: u32,
    lock_ms: u64,
    filter: FetchTopic,
) -> Vec<ExternalTask> {
    let request = FetchAndLock {
        worker_id: worker.into(),
        max_tasks,
        topics: vec![FetchTopic {
            topic_name: "submit_form".into(),
            lock_duration: lock_ms,
            ..filter
        }],
        ..Default::default()
    };
    camunda().fetch_and_lock(&request).await.unwrap()
}

/// A process key no other test uses.
pub fn unique_key(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

/// A model of one executable process `key` (history kept a day) with `body` as its
/// content, and a message `msg_{m}` named `m` for each of `messages`. A `body` that
/// starts with a line break keeps line numbers as a test counts them: its first
/// element is on line 6.
pub fn definitions(key: &str, messages: &[&str], body: &str) -> String {
    let messages: String = messages
        .iter()
        .map(|m| format!(r#"<bpmn:message id="msg_{m}" name="{m}"/>"#))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs_{key}" targetNamespace="http://ramp.test">
  {messages}
  <bpmn:process id="{key}" isExecutable="true" camunda:historyTimeToLive="P1D">{body}
  </bpmn:process>
</bpmn:definitions>"#
    )
}

/// A process in ramp's shape: start → send task (external, topic `submit_form`) →
/// receive task waiting for a message named after the send task → end.
pub fn form_process(key: &str, form: &str) -> String {
    definitions(
        key,
        &[form],
        &format!(
            r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="{form}"/>
    <bpmn:sendTask id="{form}" camunda:type="external" camunda:topic="submit_form"/>
    <bpmn:sequenceFlow id="f2" sourceRef="{form}" targetRef="wait_{form}"/>
    <bpmn:receiveTask id="wait_{form}" messageRef="msg_{form}"/>
    <bpmn:sequenceFlow id="f3" sourceRef="wait_{form}" targetRef="end"/>
    <bpmn:endEvent id="end"/>"#
        ),
    )
}

/// Two receive tasks in parallel waiting for the same message: correlating it to
/// the instance matches two executions.
pub fn parallel_waits(key: &str, message: &str) -> String {
    definitions(
        key,
        &[message],
        &format!(
            r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="wait_a"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="wait_b"/>
    <bpmn:receiveTask id="wait_a" messageRef="msg_{message}"/>
    <bpmn:receiveTask id="wait_b" messageRef="msg_{message}"/>
    <bpmn:sequenceFlow id="f4" sourceRef="wait_a" targetRef="end_a"/>
    <bpmn:sequenceFlow id="f5" sourceRef="wait_b" targetRef="end_b"/>
    <bpmn:endEvent id="end_a"/>
    <bpmn:endEvent id="end_b"/>"#
        ),
    )
}

/// Deploys one model under its own name.
pub async fn deploy_model(camunda: &Camunda, key: &str, bpmn: String) {
    deploy_files(
        camunda,
        key,
        vec![(format!("{key}.bpmn"), bpmn.into_bytes())],
    )
    .await;
}

/// Deploys one model with the Camunda Form `step.form` (the form of its send task
/// `step`), in one deployment.
pub async fn deploy_model_with_form(camunda: &Camunda, key: &str, bpmn: String, form: &str) {
    deploy_files(
        camunda,
        key,
        vec![
            (format!("{key}.bpmn"), bpmn.into_bytes()),
            ("step.form".into(), form.as_bytes().to_vec()),
        ],
    )
    .await;
}

async fn deploy_files(camunda: &Camunda, key: &str, files: Vec<(String, Vec<u8>)>) {
    camunda
        .deploy(key, files, false, None)
        .await
        .unwrap_or_else(|e| panic!("{key} deploys: {e}"));
}
