//! CancelProcess on models drawn as teams draw them: a call activity with an output
//! mapping of an answer still to come, a called process whose form belongs to
//! someone else, listeners on the process. Against the run's real engine, with a real
//! `ramp worker` making the forms.

use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;
use serde_json::json;
use tokio::process::Child;
use tonic::Code;

use crate::e2e::worker;
use crate::engine::{camunda, engine_url, unique_key};
use crate::forms::{next, open, removed, user};
use crate::helpers::{TestApp, assert_clean, spawn_app_with};

/// The called process: a send task whose form goes to the `reviewer` the root was
/// started with (an input mapping `assignedTo`, as the Modeler writes it), then the
/// receive task for the answer. No `historyTimeToLive`: the engine's default applies.
fn review(key: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_{key}" targetNamespace="http://ramp.test">
  <bpmn:message id="msg_review" name="review"/>
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sendTask id="review" name="Review the request" camunda:type="external" camunda:topic="submit_form">
      <bpmn:extensionElements>
        <camunda:inputOutput>
          <camunda:inputParameter name="assignedTo">${{reviewer}}</camunda:inputParameter>
        </camunda:inputOutput>
      </bpmn:extensionElements>
    </bpmn:sendTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="wait_review"/>
    <bpmn:receiveTask id="wait_review" messageRef="msg_review"/>
    <bpmn:sequenceFlow id="f3" sourceRef="wait_review" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"#
    )
}

/// The root: calls `called` and maps its answer back out — `approved` is set only
/// once the reviewer answers, so an output mapping run on a delete fails.
/// `listeners` goes into the process's extension elements.
fn request(key: &str, called: &str, listeners: &str) -> String {
    format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs_{key}" targetNamespace="http://ramp.test">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:extensionElements>{listeners}</bpmn:extensionElements>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call_review"/>
    <bpmn:callActivity id="call_review" name="Review" calledElement="{called}">
      <bpmn:extensionElements>
        <camunda:in businessKey="#{{execution.processBusinessKey}}"/>
        <camunda:in variables="all"/>
        <camunda:out source="approved" target="approved"/>
        <camunda:inputOutput>
          <camunda:outputParameter name="decision">${{approved}}</camunda:outputParameter>
        </camunda:inputOutput>
      </bpmn:extensionElements>
    </bpmn:callActivity>
    <bpmn:sequenceFlow id="f2" sourceRef="call_review" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"##
    )
}

/// A tree the starter has started and whose called process holds a pending form of
/// the reviewer's, made by a real worker.
struct Tree {
    app: TestApp,
    starter: String,
    reviewer: String,
    process: Process,
    form: FormTaskSummary,
    reviewer_inbox: tonic::Streaming<PendingFormsResponse>,
    _worker: Child,
}

async fn started_tree(listeners: &str) -> Tree {
    let called = unique_key("review");
    let root = unique_key("request");
    camunda()
        .deploy(
            &root,
            vec![
                (format!("{called}.bpmn"), review(&called).into_bytes()),
                (
                    format!("{root}.bpmn"),
                    request(&root, &called, listeners).into_bytes(),
                ),
            ],
            false,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("the team's models deploy: {e}"));

    let app = spawn_app_with(json!({"startable_definitions": root})).await;
    let starter = user();
    let reviewer = user();
    let mut reviewer_inbox = open(&app, &reviewer, "").await;
    assert!(matches!(
        next(&mut reviewer_inbox).await.event,
        Some(Event::Snapshot(_))
    ));

    let variables = json!({"reviewer": reviewer});
    let process = app
        .as_user(&starter)
        .start_with(StartProcessRequest {
            definition_key: root.clone(),
            business_key: starter.clone(),
            variables: Some(ramp::json::json_to_struct(variables.as_object().unwrap())),
            ..Default::default()
        })
        .await
        .unwrap();

    let worker = worker(&app.url(), &["--definition-key", &called], &engine_url());
    let form = match next(&mut reviewer_inbox).await.event {
        Some(Event::Added(form)) => form,
        other => panic!("expected the reviewer's form, got {other:?}"),
    };
    assert_eq!(form.assignee, reviewer);
    assert_eq!(form.root_process_instance_id, process.engine_instance_id);
    assert_ne!(
        form.process_instance_id, process.engine_instance_id,
        "the form belongs to the called process"
    );
    Tree {
        app,
        starter,
        reviewer,
        process,
        form,
        reviewer_inbox,
        _worker: worker,
    }
}

/// The starter cancels the tree.
async fn cancel(tree: &Tree) -> Result<Process, tonic::Status> {
    tree.app
        .as_user(&tree.starter)
        .cancel(&tree.process.id, "asked by mistake")
        .await
}

/// The form's status, as the reviewer reads it.
async fn form_status(tree: &Tree) -> FormTaskStatus {
    let form = tree.app.as_user(&tree.reviewer).form(&tree.form.id).await;
    form.unwrap().summary.unwrap().status()
}

/// Instances of the tree still running in the engine (the called process carries
/// the root's business key).
async fn running(business_key: &str) -> usize {
    crate::engine::running_instances(business_key).await.len()
}

#[tokio::test]
async fn cancelling_a_tree_whose_call_activity_maps_an_answer_to_come_ends_it_and_withdraws_its_forms()
 {
    let mut tree = started_tree("").await;
    assert_eq!(
        running(&tree.starter).await,
        2,
        "the root and the called process"
    );

    let cancelled = cancel(&tree)
        .await
        .expect("the cancel succeeds on this model");

    assert_eq!(cancelled.state(), ProcessState::Cancelled);
    assert_eq!(running(&tree.starter).await, 0, "nothing of the tree runs");
    let called = camunda()
        .historic_process_instance(&tree.form.process_instance_id)
        .await
        .unwrap();
    assert_eq!(called.state, "EXTERNALLY_TERMINATED");
    // The reviewer's inbox loses the form at once, as withdrawn.
    let removed = removed(next(&mut tree.reviewer_inbox).await);
    assert_eq!(removed.id, tree.form.id);
    assert_eq!(removed.reason(), RemovalReason::Withdrawn);
    assert_eq!(form_status(&tree).await, FormTaskStatus::Withdrawn);
}

#[tokio::test]
async fn a_cancel_the_engine_refuses_answers_failed_precondition_in_words_and_changes_nothing() {
    // A listener the team wrote for the end of the process, calling a bean this
    // engine does not have: the engine refuses every delete that runs it.
    let mut tree = started_tree(
        r#"<camunda:executionListener event="end" expression="${notifier.requestEnded(execution)}"/>"#,
    )
    .await;

    let status = cancel(&tree)
        .await
        .expect_err("the engine refuses the delete");

    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_clean(&status);
    let message = status.message();
    assert!(message.contains("cannot be cancelled"), "{message}");
    assert!(message.contains("`notifier`"), "{message}");
    for leak in [
        "http://",
        "Exception",
        "ENGINE-",
        "${",
        tree.process.engine_instance_id.as_str(),
        tree.form.process_instance_id.as_str(),
    ] {
        assert!(
            !message.contains(leak),
            "{leak:?} reached the client: {message}"
        );
    }
    // Nothing changed: the tree runs, the process is active, the form pending.
    assert_eq!(running(&tree.starter).await, 2);
    let process = tree
        .app
        .as_user(&tree.starter)
        .process(&tree.process.id)
        .await
        .unwrap();
    assert_eq!(process.state(), ProcessState::Active);
    assert_eq!(form_status(&tree).await, FormTaskStatus::Pending);
    assert!(
        crate::forms::quiet(&mut tree.reviewer_inbox, std::time::Duration::from_secs(1)).await,
        "the reviewer's inbox saw a change"
    );

    // Removed from the engine by hand, as an operator would (skipping the listener),
    // the tree's forms go too once reconciliation notices.
    camunda()
        .delete_process_instance(&tree.process.engine_instance_id, true)
        .await
        .unwrap();
    assert_eq!(
        removed(next(&mut tree.reviewer_inbox).await).id,
        tree.form.id
    );
}
