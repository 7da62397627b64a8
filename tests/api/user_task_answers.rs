//! Answers to the engine's own user tasks: a submit completes the engine's task
//! once, with the answer as variables and the marker; the engine refusing it gives
//! it back to its author; a task completed or deleted in the engine meanwhile makes
//! it undeliverable, in words. Models drawn as teams draw them (a user task with a
//! Camunda Form, an output mapping, a gateway on a variable the answer may lack, a
//! parallel multi-instance user task, a long textarea answer), against the run's
//! real engine on PostgreSQL.
//!
//! Most tests have ramp learn their user tasks through `Forms::learn_user_task`, as
//! ramp's poller of the engine does, so that they are about answering, not about
//! learning (the poller would withdraw a task completed in the engine before the
//! answer could race it); the last runs the poller itself.

use std::time::{Duration, Instant};

use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;
use serde_json::{Value, json};
use tonic::Code;

use crate::engine::{camunda, definitions, engine_url, rest_get, rest_send, unique_key};
use crate::forms::{next, removed, user};
use crate::helpers::{TestApp, spawn_app, spawn_app_on, spawn_app_with};
use crate::http_fault::{Fault, HttpFaultProxy};
use crate::submit::settled;

/// The review's Camunda Form: whether it is approved (a reviewer may leave it
/// out), and a comment.
const REVIEW_FORM: &str = r#"{"id": "review_form", "type": "default", "components": [
  {"type": "checkbox", "key": "approved", "label": "Approved"},
  {"type": "textarea", "key": "comment", "label": "Comment", "validate": {"required": true}}
]}"#;

/// How the review is drawn.
#[derive(Clone, Copy)]
enum Review {
    /// One task, with an output mapping of `comment` to `note`.
    Mapped,
    /// One task, no mapping.
    Plain,
    /// A parallel multi-instance of that many tasks (which the engine allows no
    /// output mapping).
    Parallel(u32),
}

/// Start → user task `review` for `people` (its Camunda Form by `formRef`) → a
/// gateway on `approved`: approved, the user task `archive`; not, the end.
fn review_model(key: &str, people: &str, review: Review) -> String {
    let yes = r#"<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${approved == true}</bpmn:conditionExpression>"#;
    let no = r#"<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${approved == false}</bpmn:conditionExpression>"#;
    let inside = match review {
        Review::Mapped => r#"<bpmn:extensionElements>
        <camunda:inputOutput><camunda:outputParameter name="note">${comment}</camunda:outputParameter></camunda:inputOutput>
      </bpmn:extensionElements>"#
            .to_owned(),
        Review::Plain => String::new(),
        Review::Parallel(n) => format!(
            r#"<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>{n}</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>"#
        ),
    };
    definitions(
        key,
        &[],
        &format!(
            r#"
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review" name="Review the request" {people}
        camunda:formRef="review_form" camunda:formRefBinding="latest">
      {inside}
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="decide"/>
    <bpmn:exclusiveGateway id="decide" name="Approved?"/>
    <bpmn:sequenceFlow id="yes" sourceRef="decide" targetRef="archive">{yes}</bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="no" sourceRef="decide" targetRef="rejected">{no}</bpmn:sequenceFlow>
    <bpmn:endEvent id="rejected"/>
    <bpmn:userTask id="archive" name="Archive" {people}/>
    <bpmn:sequenceFlow id="f3" sourceRef="archive" targetRef="end"/>
    <bpmn:endEvent id="end"/>"#
        ),
    )
}

/// A review case: the model deployed with its form under a key of its own, one
/// instance started, and its open `review` tasks in the engine.
struct Case {
    user: String,
    instance: String,
    tasks: Vec<Value>,
}

async fn case_of(people: impl Fn(&str) -> String, review: Review) -> Case {
    let key = unique_key("ut_answer");
    let user = user();
    camunda()
        .deploy(
            &key,
            vec![
                (
                    format!("{key}.bpmn"),
                    review_model(&key, &people(&user), review).into_bytes(),
                ),
                ("review_form.form".into(), REVIEW_FORM.as_bytes().to_vec()),
            ],
            false,
            None,
        )
        .await
        .unwrap();
    let instance = crate::engine::start_instance(&key, "").await;
    let tasks = open_tasks(&instance, "review").await;
    Case {
        user,
        instance,
        tasks,
    }
}

/// A review assigned to a user of the test's own.
async fn assigned_case() -> Case {
    case_of(
        |user| format!(r#"camunda:assignee="{user}""#),
        Review::Mapped,
    )
    .await
}

/// The open user tasks of `instance` at `activity`.
async fn open_tasks(instance: &str, activity: &str) -> Vec<Value> {
    rest_get(&format!(
        "/task?processInstanceId={instance}&taskDefinitionKey={activity}&sortBy=id&sortOrder=asc"
    ))
    .await
}

/// Has ramp learn the engine's user task `task` as its poller does
/// (`Forms::learn_user_task`): its assignee, candidate users, and the Camunda Form
/// the engine resolved for it. Answers the form task's id.
async fn learned(app: &TestApp, task: &Value) -> String {
    let engine_id = task["id"].as_str().unwrap();
    let form = camunda().deployed_form(engine_id).await.unwrap();
    let links: Vec<Value> = rest_get(&format!("/task/{engine_id}/identity-links")).await;
    let candidates = |field: &str| {
        links
            .iter()
            .filter(|l| l["type"] == "candidate")
            .filter_map(|l| l[field].as_str().map(str::to_owned))
            .collect()
    };
    let instance = task["processInstanceId"].as_str().unwrap().to_owned();
    let text = |field: &str| task[field].as_str().map(str::to_owned);
    let learned = ramp::forms::EngineUserTask {
        id: engine_id.to_owned(),
        name: text("name"),
        task_definition_key: text("taskDefinitionKey").unwrap(),
        assignee: text("assignee"),
        candidate_users: candidates("userId"),
        candidate_groups: candidates("groupId"),
        created: ramp::camunda::parse_engine_time(task["created"].as_str().unwrap()).unwrap(),
        last_updated: None,
        due: None,
        follow_up: None,
        priority: 50,
        root_process_instance_id: instance.clone(),
        process_instance_id: instance,
        business_key: None,
        process_definition_id: text("processDefinitionId"),
        process_definition_key: None,
        tenant_id: None,
        execution_id: text("executionId"),
        form: form.map(|schema| ("review_form".into(), schema)),
        form_variables: Default::default(),
    };
    assert!(app.app.forms().learn_user_task(learned).await.unwrap());
    let id: uuid::Uuid = crate::helpers::scalar(
        &app.db().await,
        "SELECT id FROM form_tasks WHERE external_task_id = $1",
        &[&engine_id],
    )
    .await;
    id.to_string()
}

fn data(value: Value) -> prost_types::Struct {
    ramp::json::json_to_struct(value.as_object().unwrap())
}

/// Every value the marker has had in `instance`: one per answer that landed.
async fn markers(instance: &str) -> Vec<String> {
    camunda()
        .variable_updates(instance, ramp::delivery::MARKER)
        .await
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// What the engine's history says ended the user task `id` (`completed`,
/// `deleted`), if it ended.
async fn ended_by(id: &str) -> Option<String> {
    let history: Vec<Value> = rest_get(&format!("/history/task?taskId={id}")).await;
    history[0]["deleteReason"].as_str().map(str::to_owned)
}

fn engine_id(task: &Value) -> &str {
    task["id"].as_str().unwrap()
}

#[tokio::test]
async fn an_answer_completes_the_user_task_once_with_its_data_and_marker() {
    let app = spawn_app().await;
    let case = assigned_case().await;
    let form = learned(&app, &case.tasks[0]).await;
    let ann = app.as_user(&case.user);

    let shown = ann.form(&form).await.unwrap();
    let schema =
        ramp::json::struct_to_json(shown.schema.as_ref().expect("the task's form")).unwrap();
    assert_eq!(schema["id"], "review_form");
    assert_eq!(shown.engine_task_id, engine_id(&case.tasks[0]));

    // Checked against the task's own Camunda Form: `comment` is required there.
    let missing = ann
        .submit(&form, data(json!({"approved": true})))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument, "{missing:?}");

    let answer = data(json!({"approved": true, "comment": "fine"}));
    let first = ann
        .submit_once(&form, answer.clone(), "review-1")
        .await
        .unwrap();
    let again = ann.submit_once(&form, answer, "review-1").await.unwrap();
    assert_eq!(first.id, again.id, "the same request id is one submission");

    let delivery = settled(&app, &case.user, &form).await;
    assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");
    assert_eq!(
        ended_by(engine_id(&case.tasks[0])).await.as_deref(),
        Some("completed")
    );
    assert_eq!(markers(&case.instance).await, [again.id]);
    // The data are the instance's variables: the mapping and the gateway read them.
    let note: Value = rest_get(&format!(
        "/process-instance/{}/variables/note",
        case.instance
    ))
    .await;
    assert_eq!(note["value"], "fine");

    // The next task has no form: any data within the input limits.
    let archive = open_tasks(&case.instance, "archive").await;
    assert_eq!(archive.len(), 1);
    let next_form = learned(&app, &archive[0]).await;
    assert!(ann.form(&next_form).await.unwrap().schema.is_none());
    ann.submit(&next_form, data(json!({"shelf": 7, "archived": true})))
        .await
        .unwrap();
    let delivery = settled(&app, &case.user, &next_form).await;
    assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");
    assert_eq!(
        crate::submit::history_state(&case.instance).await,
        "COMPLETED"
    );
}

#[tokio::test]
async fn a_group_task_is_claimed_before_it_is_answered() {
    let app = spawn_app().await;
    let group = unique_key("reviewers");
    let case = case_of(
        |_| format!(r#"camunda:candidateGroups="{group}""#),
        Review::Mapped,
    )
    .await;
    let form = learned(&app, &case.tasks[0]).await;
    let reviewer = app.in_groups(&case.user, &[&group]);
    let answer = data(json!({"approved": true, "comment": "fine"}));

    let unclaimed = reviewer.submit(&form, answer.clone()).await.unwrap_err();
    assert_eq!(
        (unclaimed.code(), unclaimed.message()),
        (Code::FailedPrecondition, "claim this task first")
    );
    let draft = reviewer
        .save_draft(&form, answer.clone())
        .await
        .unwrap_err();
    assert_eq!(draft.code(), Code::FailedPrecondition, "{draft:?}");
    // Nobody outside the group learns that it exists.
    let stranger = app
        .as_user(&user())
        .submit(&form, answer.clone())
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound, "{stranger:?}");
    assert_eq!(ended_by(engine_id(&case.tasks[0])).await, None);

    reviewer.claim(&form).await.unwrap();
    let submitted = reviewer.submit(&form, answer).await.unwrap();
    let delivery = settled(&app, &case.user, &form).await;
    assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");
    let history: Vec<Value> = rest_get(&format!(
        "/history/task?taskId={}",
        engine_id(&case.tasks[0])
    ))
    .await;
    assert_eq!(
        (&history[0]["deleteReason"], &history[0]["assignee"]),
        (&json!("completed"), &json!(case.user))
    );
    assert_eq!(markers(&case.instance).await, [submitted.id]);
}

/// A client of the person with `email` whose engine user id is `user_id` (the
/// `preferred_username` claim, which `BY_USERNAME` servers read).
fn person(app: &TestApp, email: &str, user_id: &str) -> crate::client::Client {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({
            "sub": user_id, "email": email, "email_verified": true, "roles": [],
            "preferred_username": user_id, "aud": "ramp", "iss": crate::helpers::TEST_ISSUER,
            "iat": now, "nbf": now, "exp": now + 3600,
        }),
        &jsonwebtoken::EncodingKey::from_secret(crate::helpers::TEST_SECRET.as_bytes()),
    )
    .unwrap();
    crate::client::Client::at(app.addr(), email, token)
}

/// Settings of a server that takes the engine user id from `preferred_username`.
const BY_USERNAME: &str = "preferred_username";

/// Waits (bounded) until the delivery of `form`'s answer leaves `pending`, as
/// `client` reads it.
async fn settled_for(client: &crate::client::Client, form: &str) -> Delivery {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let delivery = client.form(form).await.unwrap().delivery.unwrap();
        if delivery.state() != DeliveryState::Pending || Instant::now() > deadline {
            return delivery;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_completion_the_process_refuses_comes_back_and_a_corrected_answer_completes_the_task() {
    // The reviewer's engine user id is not their email, as with most identity
    // providers: the task names `ann_...`, the token says so in `preferred_username`.
    let app = spawn_app_with(json!({"jwt_user_id_claim": BY_USERNAME})).await;
    let user_id = unique_key("ann");
    let case = case_of(
        |_| format!(r#"camunda:assignee="{user_id}""#),
        Review::Mapped,
    )
    .await;
    let form = learned(&app, &case.tasks[0]).await;
    let ann = person(&app, &case.user, &user_id);
    let mut inbox = ann.pending_forms("").await.unwrap();
    match next(&mut inbox).await.event {
        Some(Event::Snapshot(snapshot)) => assert_eq!(snapshot.form_tasks[0].id, form),
        other => panic!("expected a snapshot, got {other:?}"),
    }

    // The gateway after the task reads `approved`, which the reviewer left out.
    ann.submit(&form, data(json!({"comment": "no opinion"})))
        .await
        .unwrap();
    let answered = removed(next(&mut inbox).await);
    assert_eq!(
        (answered.id.as_str(), answered.reason()),
        (form.as_str(), RemovalReason::Completed)
    );
    match next(&mut inbox).await.event {
        Some(Event::Added(back)) => {
            assert_eq!(back.id, form);
            assert!(back.return_reason.contains("`approved`"), "{back:?}");
        }
        other => panic!("expected the form back, got {other:?}"),
    }
    let delivery = settled_for(&ann, &form).await;
    assert_eq!(delivery.state(), DeliveryState::Refused, "{delivery:?}");
    let back = ann.form(&form).await.unwrap();
    let summary = back.summary.unwrap();
    assert_eq!(summary.status(), FormTaskStatus::Pending);
    assert_eq!(
        summary.return_reason,
        "the process could not use this answer: it needs a value for `approved`"
    );
    assert_eq!(
        Value::Object(ramp::json::struct_to_json(back.draft.as_ref().unwrap()).unwrap()),
        json!({"comment": "no opinion"})
    );
    // The engine's task is still open and assigned.
    let open = open_tasks(&case.instance, "review").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["assignee"], user_id.as_str());

    let corrected = ann
        .submit(
            &form,
            data(json!({"comment": "no opinion", "approved": false})),
        )
        .await
        .unwrap();
    let delivery = settled_for(&ann, &form).await;
    assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");
    assert_eq!(markers(&case.instance).await, [corrected.id]);
    assert_eq!(
        crate::submit::history_state(&case.instance).await,
        "COMPLETED"
    );
    // Every change of the form went to its assignee's key, none to an email.
    let keys: Vec<String> = app
        .db()
        .await
        .query(
            "SELECT DISTINCT c.assignee FROM form_changes c WHERE c.form_task_id = $1",
            &[&uuid::Uuid::parse_str(&form).unwrap()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(keys, [format!("user:{user_id}")]);
}

#[tokio::test]
async fn a_task_completed_or_deleted_in_the_engine_meanwhile_makes_the_answer_undeliverable_in_words()
 {
    let app = spawn_app().await;
    let answer = data(json!({"approved": true, "comment": "fine"}));

    // Completed in Tasklist before ramp's answer arrives.
    let completed = assigned_case().await;
    let form = learned(&app, &completed.tasks[0]).await;
    rest_send(
        reqwest::Method::POST,
        &format!("/task/{}/complete", engine_id(&completed.tasks[0])),
        json!({"variables": {"approved": {"value": false}, "comment": {"value": "by hand"}}}),
    )
    .await;
    app.as_user(&completed.user)
        .submit(&form, answer.clone())
        .await
        .unwrap();
    let delivery = settled(&app, &completed.user, &form).await;
    assert_eq!(
        delivery.state(),
        DeliveryState::Undeliverable,
        "{delivery:?}"
    );
    assert_eq!(
        delivery.last_error,
        "someone completed this task in the process engine before your answer arrived"
    );
    let kept = app.as_user(&completed.user).form(&form).await.unwrap();
    assert!(kept.submitted_data.is_some(), "the answer is kept");
    assert!(markers(&completed.instance).await.is_empty());

    // Deleted with its instance (Cockpit's cancel).
    let deleted = assigned_case().await;
    let form = learned(&app, &deleted.tasks[0]).await;
    rest_send(
        reqwest::Method::DELETE,
        &format!("/process-instance/{}?skipIoMappings=true", deleted.instance),
        json!({}),
    )
    .await;
    app.as_user(&deleted.user)
        .submit(&form, answer)
        .await
        .unwrap();
    let delivery = settled(&app, &deleted.user, &form).await;
    assert_eq!(
        delivery.state(),
        DeliveryState::Undeliverable,
        "{delivery:?}"
    );
    assert_eq!(delivery.last_error, "the process no longer needs it");
}

#[tokio::test]
async fn each_instance_of_a_multi_instance_user_task_is_completed_by_its_own_answer() {
    let app = spawn_app().await;
    let case = case_of(
        |user| format!(r#"camunda:assignee="{user}""#),
        Review::Parallel(2),
    )
    .await;
    assert_eq!(case.tasks.len(), 2);
    let mut answers = Vec::new();
    for (task, approved) in case.tasks.iter().zip([false, true]) {
        let form = learned(&app, task).await;
        let answer = data(json!({"approved": approved, "comment": "fine"}));
        answers.push(
            app.as_user(&case.user)
                .submit(&form, answer)
                .await
                .unwrap()
                .id,
        );
        let delivery = settled(&app, &case.user, &form).await;
        assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");
        assert_eq!(
            ended_by(engine_id(task)).await.as_deref(),
            Some("completed")
        );
    }
    let mut landed = markers(&case.instance).await;
    landed.sort();
    answers.sort();
    assert_eq!(landed, answers, "each answer landed once");
    // The last answer decided the gateway, after both instances were done.
    assert_eq!(open_tasks(&case.instance, "archive").await.len(), 1);
}

#[tokio::test]
async fn a_long_textarea_answer_completes_the_task_and_reads_back_as_text() {
    let app = spawn_app().await;
    let case = case_of(
        |user| format!(r#"camunda:assignee="{user}""#),
        Review::Plain,
    )
    .await;
    let form = learned(&app, &case.tasks[0]).await;
    let comment = format!("Dear reviewers, {}", "a".repeat(20_000));
    app.as_user(&case.user)
        .submit(&form, data(json!({"approved": true, "comment": comment})))
        .await
        .unwrap();
    let delivery = settled(&app, &case.user, &form).await;
    assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");
    let stored: Value = rest_get(&format!(
        "/process-instance/{}/variables/comment",
        case.instance
    ))
    .await;
    assert_eq!(stored["value"], comment.as_str());
}

#[tokio::test]
async fn a_long_answer_an_output_mapping_copies_comes_back_as_too_long() {
    // The mapping `note = ${comment}` stores the copy as a plain `String`, which
    // the engine cannot hold past 4,000 characters: the completion rolls back.
    let app = spawn_app().await;
    let case = assigned_case().await;
    let form = learned(&app, &case.tasks[0]).await;
    let comment = "a".repeat(5_000);
    app.as_user(&case.user)
        .submit(&form, data(json!({"approved": true, "comment": comment})))
        .await
        .unwrap();
    let delivery = settled(&app, &case.user, &form).await;
    assert_eq!(delivery.state(), DeliveryState::Refused, "{delivery:?}");
    assert_eq!(
        delivery.last_error,
        "the process could not use this answer: one of its values is too long for the process engine to store"
    );
    assert_eq!(open_tasks(&case.instance, "review").await.len(), 1);
}

#[tokio::test]
async fn a_completion_the_engine_commits_but_answers_late_is_not_sent_again() {
    // A fake engine in front of the real one (`http_fault.rs`): the completion
    // reaches the engine, which commits it, and its answer never comes back.
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::HangAfter("/complete")).await;
    let app = spawn_app_with(json!({
        "camunda_url": proxy.url(),
        "camunda_timeout_ms": 1_000,
        "delivery_lease_ms": 4_000,
    }))
    .await;
    let case = assigned_case().await;
    let form = learned(&app, &case.tasks[0]).await;
    let submitted = app
        .as_user(&case.user)
        .submit(&form, data(json!({"approved": true, "comment": "fine"})))
        .await
        .unwrap();
    let delivery = settled(&app, &case.user, &form).await;
    assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");
    assert_eq!(markers(&case.instance).await, [submitted.id]);
}

#[tokio::test]
async fn a_replica_killed_mid_completion_leaves_exactly_one_completion() {
    // `ramp serve` as a process: its completion reaches the engine (a proxy holds
    // the answer back), and it is killed before it hears of it. Another replica,
    // started then, finds the row it left leased and checks the marker before
    // sending anything.
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::HangAfter("/complete")).await;
    let database = crate::helpers::fresh_database().await;
    let env = crate::load::replica_env(&database, &proxy.url(), "VOE")
        .into_iter()
        .map(|(name, value)| match name.as_str() {
            "RAMP_CAMUNDA_TIMEOUT_MS" => (name, "4000".to_owned()),
            "RAMP_START_GRACE_MS" => (name, "5000".to_owned()),
            "RAMP_DELIVERY_LEASE_MS" => (name, "6000".to_owned()),
            _ => (name, value),
        })
        .collect();
    let mut replica = crate::load::Replica::start(env).await;
    // Learns the task, and delivers nothing unless woken: the replica's to deliver.
    let learner = spawn_app_on(&database, json!({"delivery_poll_ms": 600_000})).await;
    let case = assigned_case().await;
    let form = learned(&learner, &case.tasks[0]).await;
    let submitted = crate::client::Client::at(
        replica.addr,
        &case.user,
        crate::helpers::token(&case.user, &[]),
    )
    .submit(&form, data(json!({"approved": true, "comment": "fine"})))
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ended_by(engine_id(&case.tasks[0])).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the completion never reached the engine"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replica.kill().await;
    let other = spawn_app_on(&database, json!({})).await;
    let delivery = settled(&other, &case.user, &form).await;
    assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");
    assert_eq!(markers(&case.instance).await, [submitted.id]);
}

#[tokio::test]
async fn a_user_task_the_poller_learned_is_answered_once_and_its_answer_stands() {
    // Here ramp's own poller learns the task, and sees the completion afterwards.
    let app = spawn_app_with(json!({"user_tasks": true, "user_task_poll_ms": 100})).await;
    let case = assigned_case().await;
    let engine_task = engine_id(&case.tasks[0]).to_owned();
    let db = app.db().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let form = loop {
        let found = db
            .query_opt(
                "SELECT id FROM form_tasks WHERE external_task_id = $1",
                &[&engine_task],
            )
            .await
            .unwrap();
        if let Some(row) = found {
            break row.get::<_, uuid::Uuid>(0).to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the poller never learned the task"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ann = app.as_user(&case.user);
    let shown = ann.form(&form).await.unwrap();
    assert!(
        shown.schema.is_some(),
        "the task's Camunda Form, as the poller read it"
    );

    let submitted = ann
        .submit(&form, data(json!({"approved": true, "comment": "fine"})))
        .await
        .unwrap();
    let delivery = settled(&app, &case.user, &form).await;
    assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");
    // The poller reads the completion from the engine; the answer is not withdrawn.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = ann.form(&form).await.unwrap();
    assert_eq!(
        after.summary.unwrap().status(),
        FormTaskStatus::Completed,
        "{:?}",
        after.withdrawal_reason
    );
    assert_eq!(after.delivery.unwrap().state(), DeliveryState::Delivered);
    assert_eq!(markers(&case.instance).await, [submitted.id]);
}

#[tokio::test]
async fn an_answer_to_a_task_of_a_suspended_instance_waits_until_the_instance_is_activated() {
    let app = spawn_app_with(json!({"delivery_backoff_cap_ms": 500})).await;
    let case = assigned_case().await;
    let form = learned(&app, &case.tasks[0]).await;
    let suspension = format!("/process-instance/{}/suspended", case.instance);
    rest_send(
        reqwest::Method::PUT,
        &suspension,
        json!({"suspended": true}),
    )
    .await;
    let submitted = app
        .as_user(&case.user)
        .submit(&form, data(json!({"approved": true, "comment": "fine"})))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let delivery = crate::submit::delivery(&app, &case.user, &form).await;
        assert_eq!(delivery.state(), DeliveryState::Pending, "{delivery:?}");
        if delivery.attempts >= 3 {
            assert_eq!(
                delivery.last_error,
                "not yet delivered: the process is suspended in the process engine"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{delivery:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rest_send(
        reqwest::Method::PUT,
        &suspension,
        json!({"suspended": false}),
    )
    .await;
    let delivery = settled(&app, &case.user, &form).await;
    assert_eq!(delivery.state(), DeliveryState::Delivered, "{delivery:?}");
    assert_eq!(markers(&case.instance).await, [submitted.id]);
}
