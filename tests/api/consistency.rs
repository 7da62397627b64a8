//! CreateFormTask believes the engine, not the worker (issue 20): the business key
//! must be that of the instance's root, and an assignee other than it must be named
//! by one of the instance's variables. A stolen worker token cannot plant forms on
//! people the process does not name.

use ramp::camunda::variables::variables_to_engine;
use ramp::proto::*;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use crate::engine::{camunda, form_process, unique_key};
use crate::forms::{new_task, user};
use crate::helpers::{refused, spawn_app};

/// A running instance of a process of the test's own (a send task `step`), started
/// with `business_key` and `variables`.
async fn instance(business_key: &str, variables: Value) -> String {
    let engine = camunda();
    let key = unique_key("consistency");
    engine
        .deploy(
            &key,
            vec![(
                format!("{key}.bpmn"),
                form_process(&key, "step").into_bytes(),
            )],
            false,
            None,
        )
        .await
        .unwrap();
    engine
        .start_process(
            &key,
            business_key,
            &variables_to_engine(variables.as_object().unwrap()),
        )
        .await
        .unwrap()
        .id
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Seen failing before the check: a worker made a form for Bob on Ann's instance.
#[tokio::test]
async fn a_business_key_that_is_not_the_instances_is_refused() {
    let app = spawn_app().await;
    let (ann, bob) = (user(), user());
    let instance = instance(&ann, json!({})).await;

    let status = refused(
        app.as_worker()
            .create_form_task(new_task(&unique_key("ext"), &instance, &bob))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["business_key"], "{status:?}");
    // Admins are held to it too: the business key is a fact of the instance.
    let status = refused(
        app.as_admin()
            .create_form_task(new_task(&unique_key("ext"), &instance, &bob))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["business_key"]);

    // The instance's own business key, in any case, is the one.
    let created = app
        .as_worker()
        .create_form_task(new_task(&unique_key("ext"), &instance, &ann.to_uppercase()))
        .await
        .expect("the instance's business key is accepted");
    assert_eq!(
        created.form_task.unwrap().summary.unwrap().business_key,
        ann
    );
}

/// Seen failing before the check: a worker made a form on Ann's instance for
/// Carol, whom the process does not name.
#[tokio::test]
async fn an_assignee_the_instance_does_not_name_is_refused() {
    let app = spawn_app().await;
    let (ann, bob, carol, dave) = (user(), user(), user(), user());
    let instance = instance(
        &ann,
        json!({"reviewer": bob, "supplier": {"owners": ["x@example.com", dave]}}),
    )
    .await;
    let for_whom = |assignee: &str| CreateFormTaskRequest {
        assignee: assignee.into(),
        ..new_task(&unique_key("ext"), &instance, &ann)
    };

    // Named by a text variable, or inside a JSON one.
    for named in [&bob, &dave] {
        let created = app
            .as_worker()
            .create_form_task(for_whom(named))
            .await
            .expect("an assignee the instance names is accepted");
        assert_eq!(&created.form_task.unwrap().summary.unwrap().assignee, named);
    }
    let status = refused(
        app.as_worker().create_form_task(for_whom(&carol)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["assignee"], "{status:?}");
    assert!(
        app.as_user(&carol)
            .forms(ListFormTasksRequest::default())
            .await
            .unwrap()
            .form_tasks
            .is_empty(),
        "Carol got no form"
    );

    // An admin may give a form to anyone (as ReassignFormTask does).
    app.as_admin()
        .create_form_task(for_whom(&carol))
        .await
        .expect("an admin names any assignee");
}

/// A parent that calls `child` without passing its business key down: the called
/// instance has none of its own, and its forms carry the root's.
fn parent_process(key: &str, child: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_{key}" targetNamespace="http://ramp.test">
  <bpmn:process id="{key}" isExecutable="true" camunda:historyTimeToLive="P1D">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call"/>
    <bpmn:callActivity id="call" calledElement="{child}"/>
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"#
    )
}

#[tokio::test]
async fn a_called_instances_forms_carry_its_roots_business_key() {
    let app = spawn_app().await;
    let engine = camunda();
    let (ann, bob) = (user(), user());
    let (parent, child) = (unique_key("parent"), unique_key("child"));
    engine
        .deploy(
            &parent,
            vec![
                (
                    format!("{child}.bpmn"),
                    form_process(&child, "step").into_bytes(),
                ),
                (
                    format!("{parent}.bpmn"),
                    parent_process(&parent, &child).into_bytes(),
                ),
            ],
            false,
            None,
        )
        .await
        .unwrap();
    let root = crate::engine::start_instance(&parent, &ann).await;
    let called = engine
        .process_instances(&ramp::camunda::types::ProcessInstanceQuery {
            process_definition_key: Some(child.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0)
        .id;

    let status = refused(
        app.as_worker()
            .create_form_task(new_task(&unique_key("ext"), &called, &bob))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["business_key"]);
    let created = app
        .as_worker()
        .create_form_task(new_task(&unique_key("ext"), &called, &ann))
        .await
        .expect("the root's business key is accepted for a called instance");
    assert_eq!(
        created
            .form_task
            .unwrap()
            .summary
            .unwrap()
            .root_process_instance_id,
        root
    );
}

/// The checks ask the engine; a repeat of a stored form task is still answered
/// while the engine is unreachable (the stored task was checked when it was made),
/// and a new one waits for the engine.
#[tokio::test]
async fn a_repeat_is_answered_while_the_engine_is_unreachable() {
    use crate::http_fault::{Fault, HttpFaultProxy};
    let proxy = HttpFaultProxy::start(&crate::engine::engine_url(), Fault::None).await;
    let app = crate::helpers::spawn_app_with(json!({"camunda_url": proxy.url()})).await;
    let (ann, bob) = (user(), user());
    let instance = instance(&ann, json!({"reviewer": bob})).await;
    let request = CreateFormTaskRequest {
        assignee: bob.clone(),
        ..new_task(&unique_key("ext"), &instance, &ann)
    };
    assert!(
        app.as_worker()
            .create_form_task(request.clone())
            .await
            .unwrap()
            .created
    );

    proxy.set(Fault::Down);
    let repeat = app
        .as_worker()
        .create_form_task(request)
        .await
        .expect("a repeat is answered while the engine is down");
    assert!(!repeat.created);
    assert_eq!(repeat.form_task.unwrap().summary.unwrap().assignee, bob);
    let new = CreateFormTaskRequest {
        assignee: bob,
        ..new_task(&unique_key("ext"), &instance, &ann)
    };
    refused(
        app.as_worker().create_form_task(new).await,
        Code::Unavailable,
    );
}
