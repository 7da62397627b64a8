//! Names for people: a form carries its task's and process's names from the model,
//! its Camunda Form's title and a context line; the start page lists what the
//! caller may start, with names and descriptions. Models are read once per
//! definition, never once per form.

use std::time::Duration;

use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;
use serde_json::json;

use crate::e2e::worker;
use crate::engine::{camunda, engine_url, unique_key};
use crate::forms::{create, next, open, user};
use crate::helpers::{TestApp, spawn_app_with};
use crate::http_fault::{Fault, HttpFaultProxy};

/// A model whose process and send task (`step`, on a topic named after the key) are named
/// and documented; the send task shows `context` (its `ramp.context`) when given.
fn named_model(key: &str, context: Option<&str>) -> String {
    let properties = context
        .map(|names| {
            format!(
                r#"<bpmn:extensionElements><camunda:properties>
          <camunda:property name="ramp.context" value="{names}"/>
        </camunda:properties></bpmn:extensionElements>"#
            )
        })
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_{key}" targetNamespace="http://ramp.test">
  <bpmn:message id="msg_step" name="step"/>
  <bpmn:process id="{key}" name="Check a supplier" isExecutable="true" camunda:historyTimeToLive="P1D">
    <bpmn:documentation>  Checks a new supplier before the first order.
    </bpmn:documentation>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="step"/>
    <bpmn:sendTask id="step" name="Enter the supplier's details" camunda:type="external" camunda:topic="{key}">
      {properties}
    </bpmn:sendTask>
    <bpmn:sequenceFlow id="f2" sourceRef="step" targetRef="wait_step"/>
    <bpmn:receiveTask id="wait_step" name="Details received" messageRef="msg_step"/>
    <bpmn:sequenceFlow id="f3" sourceRef="wait_step" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"#
    )
}

/// Deploys `named_model` with the Camunda Form `step` (titled when `title` is
/// given) under a key of its own, and returns the key.
async fn deploy_named(context: Option<&str>, title: Option<&str>) -> String {
    let key = unique_key("names");
    let mut form = json!({
        "id": "step", "type": "default",
        "components": [{"type": "textfield", "key": "supplierName", "label": "Supplier"}]
    });
    if let Some(title) = title {
        form["title"] = json!(title);
    }
    camunda()
        .deploy(
            &key,
            vec![
                (
                    format!("{key}.bpmn"),
                    named_model(&key, context).into_bytes(),
                ),
                ("step.form".into(), form.to_string().into_bytes()),
            ],
            false,
            None,
        )
        .await
        .unwrap();
    key
}

/// A server whose engine calls pass through a proxy of the test's own.
async fn app_behind_proxy(startable: &str) -> (TestApp, HttpFaultProxy) {
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::None).await;
    let app = spawn_app_with(json!({
        "camunda_url": proxy.url(),
        "startable_definitions": startable,
    }))
    .await;
    (app, proxy)
}

/// `message` with a request id of the test's choosing, to find its engine calls.
fn engine_calls_of(proxy: &HttpFaultProxy, request_id: &str) -> usize {
    proxy
        .request_ids()
        .iter()
        .filter(|id| *id == request_id)
        .count()
}

async fn start(app: &TestApp, key: &str, starter: &str, variables: serde_json::Value) {
    let variables = ramp::json::json_to_struct(variables.as_object().expect("an object"));
    app.as_user(starter)
        .start_with(StartProcessRequest {
            definition_key: key.into(),
            business_key: starter.into(),
            variables: Some(variables),
            ..Default::default()
        })
        .await
        .expect("the process starts");
}

async fn next_added(stream: &mut tonic::Streaming<PendingFormsResponse>) -> FormTaskSummary {
    loop {
        match next(stream).await.event {
            Some(Event::Added(summary)) => return summary,
            Some(Event::Snapshot(_)) => continue,
            other => panic!("expected added, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_form_carries_its_tasks_and_processs_names_and_its_context_read_once_per_definition() {
    let key = deploy_named(Some("supplierName, amount, unset"), None).await;
    let (app, proxy) = app_behind_proxy(&key).await;
    // The model's topic is its own, so that no other test's worker takes its task.
    let _worker = worker(
        &app.url(),
        &["--topic", &key, "--definition-key", &key],
        &engine_url(),
    );
    let ann = user();
    let mut inbox = open(&app, &ann, "").await;

    start(
        &app,
        &key,
        &ann,
        json!({"supplierName": "Acme Ltd", "amount": 1200}),
    )
    .await;
    let first = tokio::time::timeout(Duration::from_secs(30), next_added(&mut inbox))
        .await
        .expect("the worker makes the form");

    assert_eq!(first.task_name, "Enter the supplier's details");
    assert_eq!(first.process_name, "Check a supplier");
    assert_eq!(first.context, "Acme Ltd, 1200");
    assert_eq!(
        first.title, "Enter the supplier's details",
        "a form without a title of its own is titled by its task"
    );
    assert_eq!(first.form_name, "step");

    // Reading the form asks the engine nothing about its names.
    let read = app
        .as_user(&ann)
        .tagged("names-get-1")
        .form(&first.id)
        .await
        .unwrap()
        .summary
        .unwrap();
    assert_eq!(read, first);
    assert_eq!(engine_calls_of(&proxy, "names-get-1"), 0);

    // The model is not read again for the next form of the definition: with its
    // XML now unreadable, the names still come.
    proxy.set(Fault::Fail("/xml"));
    let bob = user();
    let mut bobs_inbox = open(&app, &bob, "").await;
    start(&app, &key, &bob, json!({"supplierName": "Bolt BV"})).await;
    let second = tokio::time::timeout(Duration::from_secs(30), next_added(&mut bobs_inbox))
        .await
        .expect("the worker makes the second form");
    assert_eq!(second.task_name, "Enter the supplier's details");
    assert_eq!(second.process_name, "Check a supplier");
    assert_eq!(second.context, "Bolt BV", "the unset amount is left out");
}

/// A CreateFormTask request for an instance of `key` started in the engine for
/// `business_key`, naming the instance's definition.
async fn task_of_a_new_instance(key: &str, business_key: &str) -> CreateFormTaskRequest {
    let instance = camunda()
        .start_process(key, business_key, &Default::default())
        .await
        .unwrap();
    let mut request =
        crate::forms::new_task(&format!("ext-{}", instance.id), &instance.id, business_key);
    request.process_definition_id = instance.definition_id.clone().unwrap();
    request
}

#[tokio::test]
async fn a_form_with_a_title_of_its_own_is_titled_by_it() {
    let key = deploy_named(None, Some("Supplier details")).await;
    let (app, _proxy) = app_behind_proxy(&key).await;
    let ann = user();
    let mut request = task_of_a_new_instance(&key, &ann).await;
    request.process_definition_key = key.clone();
    let summary = create(&app, request)
        .await
        .form_task
        .unwrap()
        .summary
        .unwrap();

    assert_eq!(summary.title, "Supplier details");
    assert_eq!(summary.task_name, "Enter the supplier's details");
    assert_eq!(summary.context, "", "the model asks for no context");
}

#[tokio::test]
async fn a_form_whose_model_cannot_be_read_is_made_without_names() {
    let key = deploy_named(None, None).await;
    let (app, proxy) = app_behind_proxy(&key).await;
    proxy.set(Fault::Fail("/xml"));
    let ann = user();
    let request = task_of_a_new_instance(&key, &ann).await;
    let response = create(&app, request).await;

    assert!(response.created);
    let summary = response.form_task.unwrap().summary.unwrap();
    assert_eq!(summary.task_name, "");
    assert_eq!(summary.process_name, "");
    assert_eq!(
        summary.title, "step",
        "without other names, the form's name"
    );
}

#[tokio::test]
async fn users_see_the_definitions_they_may_start_and_admins_all_in_one_engine_call() {
    let key = deploy_named(None, None).await;
    let other = deploy_named(None, None).await;
    let suspended = deploy_named(None, None).await;
    let status = reqwest::Client::new()
        .put(format!(
            "{}/process-definition/key/{suspended}/suspended",
            engine_url()
        ))
        .json(&json!({"suspended": true}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(
        status.is_success(),
        "the engine suspends {suspended}: {status}"
    );
    let missing = unique_key("missing");
    let (app, proxy) = app_behind_proxy(&format!("{key},{missing}")).await;
    let listed = app
        .as_user(&user())
        .tagged("names-startable-user")
        .startable()
        .await
        .unwrap();
    assert_eq!(
        listed,
        [StartableProcess {
            key: key.clone(),
            name: "Check a supplier".into(),
            description: "Checks a new supplier before the first order.".into(),
            version: 1,
        }],
        "only the allowed definition that is deployed"
    );
    assert_eq!(engine_calls_of(&proxy, "names-startable-user"), 1);

    let everything = app
        .as_admin()
        .tagged("names-startable-admin")
        .startable()
        .await
        .unwrap();
    for wanted in [&key, &other] {
        assert!(
            everything.iter().any(|p| &p.key == wanted),
            "{wanted} is missing for the admin"
        );
    }
    assert!(
        everything.iter().all(|p| p.key != suspended),
        "a suspended definition cannot be started"
    );
    assert_eq!(
        everything.iter().filter(|p| p.key == key).count(),
        1,
        "one entry per key"
    );
    assert_eq!(
        engine_calls_of(&proxy, "names-startable-admin"),
        1,
        "one call, however many definitions"
    );
}

#[tokio::test]
async fn a_user_allowed_nothing_lists_nothing_without_asking_the_engine() {
    let (app, proxy) = app_behind_proxy("").await;
    let listed = app
        .as_user(&user())
        .tagged("names-startable-none")
        .startable()
        .await
        .unwrap();
    assert!(listed.is_empty());
    assert_eq!(engine_calls_of(&proxy, "names-startable-none"), 0);
}
