//! Data that is ramp's own: the variables ramp writes into an instance
//! (`rampProcessId`, `rampSubmissionId`) are refused in whatever a client sends, and
//! a form shows its author only what is meant for them: its fields, or, without a
//! schema, what its send task maps as inputs.

use std::collections::BTreeSet;

use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

use crate::e2e::worker;
use crate::engine::{camunda, deploy_model, engine_url, form_process, unique_key};
use crate::forms::{created_id, instance_with_form, new_task, next, open, user};
use crate::helpers::{TestApp, refused, spawn_app, spawn_app_with};

fn data(value: serde_json::Value) -> Option<prost_types::Struct> {
    Some(ramp::json::json_to_struct(value.as_object().unwrap()))
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .expect("field violations")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

/// A pending form of `user`'s: with a Camunda Form, or without one (named so that
/// no deployment holds a form of that name).
async fn pending_form(app: &TestApp, user: &str, with_schema: bool) -> String {
    let task = if with_schema {
        new_task(&unique_key("ext"), &instance_with_form(user).await.0, user)
    } else {
        let engine = camunda();
        let key = unique_key("reserved");
        let form = unique_key("noform");
        deploy_model(&engine, &key, form_process(&key, &form)).await;
        let instance = crate::engine::start_instance(&key, user).await;
        CreateFormTaskRequest {
            activity_id: form,
            ..new_task(&unique_key("ext"), &instance, user)
        }
    };
    created_id(app, task).await
}

#[tokio::test]
async fn ramps_own_names_are_refused_in_an_answer() {
    let app = spawn_app().await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    for with_schema in [false, true] {
        let id = pending_form(&app, &ann, with_schema).await;
        let task = as_ann.form(&id).await.unwrap();
        assert_eq!(task.schema.is_some(), with_schema);
        let forged = data(json!({"companyName": "Acme", "rampSubmissionId": "forged"}));
        let result = as_ann.submit(&id, forged.unwrap()).await;
        let status = refused(result, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["data.rampSubmissionId"]);

        let task = as_ann.form(&id).await.unwrap();
        assert_eq!(
            task.summary.unwrap().status(),
            FormTaskStatus::Pending,
            "nothing was submitted"
        );
    }
}

#[tokio::test]
async fn ramps_own_names_are_refused_in_a_draft() {
    let app = spawn_app().await;
    let ann = user();
    let id = pending_form(&app, &ann, false).await;
    let as_ann = app.as_user(&ann);
    let forged = data(json!({"rampProcessId": "forged", "rampSubmissionId": "forged"}));
    let result = as_ann.save_draft(&id, forged.unwrap()).await;
    let status = refused(result, Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        ["data.rampProcessId", "data.rampSubmissionId"]
    );
    let task = as_ann.form(&id).await.unwrap();
    assert!(task.draft.is_none(), "no draft was stored");
}

/// Two send tasks without a Camunda Form (named so that no deployment holds a form
/// of that name), side by side: `{key}_mapped` maps one input (`offer`) and is
/// assigned through `assignedTo`; `{key}_plain` maps nothing.
fn schemaless(key: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_{key}" targetNamespace="http://ramp.test">
  <bpmn:message id="msg_mapped" name="{key}_mapped"/>
  <bpmn:message id="msg_plain" name="{key}_plain"/>
  <bpmn:process id="{key}" isExecutable="true" camunda:historyTimeToLive="P1D">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"/>
    <bpmn:sequenceFlow id="f1" sourceRef="fork" targetRef="{key}_mapped"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="{key}_plain"/>
    <bpmn:sendTask id="{key}_mapped" camunda:type="external" camunda:topic="submit_form">
      <bpmn:extensionElements>
        <camunda:inputOutput>
          <camunda:inputParameter name="offer">${{amount * 2}}</camunda:inputParameter>
          <camunda:inputParameter name="assignedTo">${{reviewer}}</camunda:inputParameter>
        </camunda:inputOutput>
      </bpmn:extensionElements>
    </bpmn:sendTask>
    <bpmn:sendTask id="{key}_plain" camunda:type="external" camunda:topic="submit_form"/>
    <bpmn:sequenceFlow id="f3" sourceRef="{key}_mapped" targetRef="wait_mapped"/>
    <bpmn:sequenceFlow id="f4" sourceRef="{key}_plain" targetRef="wait_plain"/>
    <bpmn:receiveTask id="wait_mapped" messageRef="msg_mapped"/>
    <bpmn:receiveTask id="wait_plain" messageRef="msg_plain"/>
    <bpmn:sequenceFlow id="f5" sourceRef="wait_mapped" targetRef="end_mapped"/>
    <bpmn:sequenceFlow id="f6" sourceRef="wait_plain" targetRef="end_plain"/>
    <bpmn:endEvent id="end_mapped"/>
    <bpmn:endEvent id="end_plain"/>
  </bpmn:process>
</bpmn:definitions>"#
    )
}

/// The form of `user`'s that arrives next on `inbox`, read whole.
async fn arriving(
    app: &TestApp,
    user: &str,
    inbox: &mut tonic::Streaming<PendingFormsResponse>,
) -> FormTask {
    let summary = loop {
        match next(inbox).await.event {
            Some(Event::Added(summary)) => break summary,
            Some(Event::Snapshot(_)) => continue,
            other => panic!("expected a new form, got {other:?}"),
        }
    };
    app.as_user(user).form(&summary.id).await.unwrap()
}

fn prefill_of(task: &FormTask) -> serde_json::Map<String, serde_json::Value> {
    task.prefill
        .as_ref()
        .map(|p| ramp::json::struct_to_json(p).unwrap())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_form_without_a_schema_offers_only_what_its_send_task_maps_as_inputs() {
    let key = unique_key("prefill");
    deploy_model(&camunda(), &key, schemaless(&key)).await;
    let app = spawn_app_with(json!({"startable_definitions": key})).await;
    let (ann, reviewer) = (user(), user());
    let mut ann_inbox = open(&app, &ann, "").await;
    let mut reviewer_inbox = open(&app, &reviewer, "").await;
    app.as_user(&ann)
        .start_with(StartProcessRequest {
            definition_key: key.clone(),
            business_key: ann.clone(),
            variables: data(json!({"amount": 3, "salary": 90_000, "reviewer": reviewer})),
            ..Default::default()
        })
        .await
        .unwrap();

    let _worker = worker(&app.url(), &["--definition-key", &key], &engine_url());
    let mapped = arriving(&app, &reviewer, &mut reviewer_inbox).await;
    let plain = arriving(&app, &ann, &mut ann_inbox).await;

    assert!(mapped.schema.is_none() && plain.schema.is_none());
    assert_eq!(mapped.activity_id, format!("{key}_mapped"));
    let prefill = prefill_of(&mapped);
    assert_eq!(
        prefill.keys().collect::<BTreeSet<_>>(),
        BTreeSet::from([&"offer".to_owned()]),
        "only the send task's input, not the routing nor the instance's variables: {prefill:?}"
    );
    assert_eq!(prefill["offer"].as_f64(), Some(6.0));
    assert_eq!(plain.activity_id, format!("{key}_plain"));
    assert!(
        prefill_of(&plain).is_empty(),
        "a send task that maps nothing offers nothing: {:?}",
        prefill_of(&plain)
    );
}
