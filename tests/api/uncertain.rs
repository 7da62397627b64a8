//! The uncertain paths of a delivery (issue 19): an engine that commits after its
//! caller gave up, a proxy that answers 502/503/504 for a call the engine acted on,
//! parallel branches answered out of order, the marker lookup's size.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ramp::delivery::{DeliverySettings, Dispatcher};
use ramp::proto::*;
use ramp::store::Store;
use serde_json::{Value, json};

use crate::engine::{camunda, camunda_at, engine_url, unique_key};
use crate::helpers::{fresh_database, spawn_app_with};
use crate::http_fault::{Fault, HttpFaultProxy};
use crate::submit::{
    answer, assert_delivered, complete_send_task, completed_waits, delivery, form_for, new_case,
    settled, submit,
};

/// What the fake engine has seen and done.
#[derive(Default)]
struct Ledger {
    /// Trigger calls received, in order.
    triggers: usize,
    /// Answers that committed (each would complete the looping receive task once).
    committed: usize,
    /// The marker values in the instance's history, once committed.
    markers: Vec<String>,
    /// Whether the first trigger is still running in the engine.
    first_in_flight: bool,
}

type Shared = Arc<Mutex<Ledger>>;

/// A fake of the engine's REST for one timing the real engine cannot be made to show
/// on demand: the first trigger of an answer runs on in the engine past its caller's
/// timeout and commits 1.5 s after it arrived, and any trigger that comes while it
/// runs fails at once with an optimistic-locking conflict (as the real engine
/// answers a second change of the same execution). The model loops back to its
/// receive task, so a subscription always waits: an answer sent again after the
/// first committed would land twice.
async fn fake_engine() -> (String, Shared, tokio::task::JoinHandle<()>) {
    let ledger: Shared = Arc::default();
    let app = axum::Router::new()
        .route(
            "/engine-rest/version",
            get(|| async { json_body(json!({"version": "7.24.0"})) }),
        )
        .route(
            "/engine-rest/execution",
            get(|| async {
                json_body(json!([{"id": "e1", "processInstanceId": "p1", "ended": false}]))
            }),
        )
        .route(
            "/engine-rest/process-instance/{id}/activity-instances",
            get(|| async {
                json_body(json!({
                    "id": "p1", "activityId": "loop:1:x", "activityType": "processDefinition",
                    "childActivityInstances": [{
                        "id": "wait_step:1", "parentActivityInstanceId": "p1",
                        "activityId": "wait_step", "activityType": "receiveTask",
                        "executionIds": ["e1"], "childActivityInstances": []
                    }]
                }))
            }),
        )
        .route("/engine-rest/history/detail", get(history_detail))
        .route(
            "/engine-rest/execution/{id}/messageSubscriptions/{message}/trigger",
            post(trigger),
        )
        .with_state(ledger.clone());
    let (addr, task) = crate::helpers::serve(app).await;
    (format!("http://{addr}/engine-rest"), ledger, task)
}

/// A JSON answer (the test build of axum has no JSON extractor).
fn json_body(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn history_detail(State(ledger): State<Shared>, uri: Uri) -> Response {
    // The real engine filters by variableNameLike and ignores variableName.
    let name = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("variableNameLike="))
        .unwrap_or_default()
        .to_owned();
    let rows: Vec<Value> = ledger
        .lock()
        .unwrap()
        .markers
        .iter()
        .filter(|_| name == "rampSubmissionId")
        .map(|m| json!({"variableName": "rampSubmissionId", "value": m}))
        .collect();
    json_body(Value::Array(rows))
}

async fn trigger(
    State(ledger): State<Shared>,
    Path((_execution, _message)): Path<(String, String)>,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or_default();
    let marker = body["variables"]["rampSubmissionId"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let first = {
        let mut l = ledger.lock().unwrap();
        l.triggers += 1;
        if l.first_in_flight {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                json_body(json!({"type": "OptimisticLockingException",
                    "message": "ENGINE-03005 Execution of 'UPDATE ExecutionEntity[e1]' failed. Entity was updated by another transaction concurrently.",
                    "code": 1})),
            )
                .into_response();
        }
        let first = l.triggers == 1;
        if first {
            l.first_in_flight = true;
        }
        first
    };
    if first {
        // Runs on in the engine whether or not its caller still waits.
        let commit = ledger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            let mut l = commit.lock().unwrap();
            l.first_in_flight = false;
            l.committed += 1;
            l.markers.push(marker);
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        return StatusCode::NO_CONTENT.into_response();
    }
    let mut l = ledger.lock().unwrap();
    l.committed += 1;
    l.markers.push(marker);
    StatusCode::NO_CONTENT.into_response()
}

/// A database with one submitted answer waiting in the outbox for instance `p1`.
async fn one_answer_to_deliver() -> (Store, uuid::Uuid) {
    let url = fresh_database().await;
    let store = Store::new(&secrecy::SecretString::from(url), 4, Duration::from_secs(5)).unwrap();
    store.migrate().await.unwrap();
    let client = store.client().await.unwrap();
    let task = uuid::Uuid::now_v7();
    let submission = uuid::Uuid::now_v7();
    client
        .execute(
            "INSERT INTO form_tasks (id, external_task_id, business_key, form_name, message_name, assignee,
                status, process_instance_id, root_process_instance_id, activity_id, activity_instance_id)
             VALUES ($1, $2, 'a@example.com', 'step', 'step', 'a@example.com', 'completed', 'p1', 'p1',
                'step', 'step:1')",
            &[&task, &task.to_string()],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO submissions (id, form_task_id, submitted_by, data)
             VALUES ($1, $2, 'a@example.com', '{\"companyName\": \"Acme\"}')",
            &[&submission, &task],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO correlation_outbox (id, submission_id, form_task_id, message_name,
                process_instance_id, activity_instance_id, variables, state)
             VALUES ($1, $1, $2, 'step', 'p1', 'step:1', '{\"companyName\": \"Acme\"}', 'pending')",
            &[&submission, &task],
        )
        .await
        .unwrap();
    (store, submission)
}

#[tokio::test]
async fn an_answer_that_commits_after_its_caller_gave_up_is_not_sent_again() {
    // A fake engine (see `fake_engine`): the real one cannot be made to answer a
    // second trigger with a conflict while the first still runs, on demand.
    let (url, ledger, _server) = fake_engine().await;
    let (store, submission) = one_answer_to_deliver().await;
    let dispatcher = Dispatcher::new(
        store.clone(),
        camunda_at(&url, Duration::from_millis(1_000)),
        DeliverySettings {
            poll: Duration::from_millis(50),
            lease: Duration::from_secs(4),
            max_attempts: 30,
            batch: 10,
            give_up_after: Duration::from_secs(3600),
            backoff_cap: Duration::from_secs(1),
            settle: Duration::from_millis(2_000),
        },
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let state = loop {
        dispatcher.pass().await.unwrap();
        let state: String = store
            .client()
            .await
            .unwrap()
            .query_one(
                "SELECT state FROM correlation_outbox WHERE id = $1",
                &[&submission],
            )
            .await
            .unwrap()
            .get(0);
        if state != "pending" || Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Let anything still on its way land.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let l = ledger.lock().unwrap();
    println!(
        "triggers sent {}, answers committed {}, state {state}",
        l.triggers, l.committed
    );
    assert_eq!(state, "delivered");
    assert_eq!(l.committed, 1, "the answer landed {} times", l.committed);
}

#[tokio::test]
async fn a_proxy_answering_502_for_a_delivered_answer_does_not_make_it_land_twice() {
    // The proxy forwards the trigger, the engine takes it, and the proxy answers 502:
    // the outcome is unknown, and the marker says it landed. The model loops back to
    // its receive task, so a second send would land again.
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::GatewayAfter("/trigger", 502)).await;
    let app = spawn_app_with(json!({
        "camunda_url": proxy.url(),
        "camunda_timeout_ms": 1_000,
        "delivery_lease_ms": 4_000,
    }))
    .await;
    let (case, form) = crate::submit::waiting_case(&app, crate::submit::LOOPING).await;
    submit(&app, &case.user, &form, answer("Acme"), "")
        .await
        .unwrap();
    let done = settled(&app, &case.user, &form).await;
    assert_eq!(done.state(), DeliveryState::Delivered, "{done:?}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(completed_waits(&case.instance).await, 1);
}

#[tokio::test]
async fn a_start_a_proxy_answered_504_for_stays_reserved_until_reconciliation_finds_it() {
    // The proxy forwards the start, the engine starts the instance, the proxy answers
    // 504. Taken for "nothing happened", the key was freed and the instance orphaned.
    let key = unique_key("gateway");
    crate::engine::deploy_model(&camunda(), &key, crate::engine::form_process(&key, "step")).await;
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::GatewayAfter("/start", 504)).await;
    let app = spawn_app_with(json!({
        "camunda_url": proxy.url(),
        "startable_definitions": key,
        "camunda_timeout_ms": 1_000,
        "start_grace_ms": 2_000,
    }))
    .await;
    let user = crate::forms::user();
    let client = app.as_user(&user);
    let started = client
        .start_with(StartProcessRequest {
            definition_key: key.clone(),
            business_key: user.clone(),
            request_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await;
    let status = started.expect_err("the engine's answer never came");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    proxy.set(Fault::None);
    // Reconciliation adopts the instance the engine started.
    let deadline = Instant::now() + Duration::from_secs(20);
    let process = loop {
        let listed = client
            .processes(ListProcessesRequest::default())
            .await
            .unwrap()
            .processes;
        let process = listed.into_iter().next().expect("the start is recorded");
        if process.state() != ProcessState::Starting || Instant::now() > deadline {
            break process;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let running = camunda()
        .process_instances(&ramp::camunda::types::ProcessInstanceQuery {
            business_key: Some(user.clone()),
            process_definition_key: Some(key.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 1, "one instance runs for the key");
    assert_eq!(process.state(), ProcessState::Active, "{process:?}");
    assert_eq!(process.engine_instance_id, running[0].id);
}

#[tokio::test]
async fn each_branch_of_a_parallel_multi_instance_gets_its_own_answer() {
    // Branch 2's user answers before branch 2's send task is done, while branch 1
    // already waits: branch 1 must not take branch 2's answer.
    let app = spawn_app_with(json!({"delivery_poll_ms": 100})).await;
    let case = new_case(crate::submit::PARALLEL).await;
    assert_eq!(case.tasks.len(), 2);
    let (one, two) = (&case.tasks[0], &case.tasks[1]);
    let form_one = form_for(&app, &case, one).await;
    let form_two = form_for(&app, &case, two).await;
    complete_send_task(one).await;
    submit(&app, &case.user, &form_two, answer("for branch two"), "")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        delivery(&app, &case.user, &form_two).await.state(),
        DeliveryState::Pending,
        "branch two's answer waits for branch two"
    );
    complete_send_task(two).await;
    assert_delivered(&app, &case.user, &form_two).await;
    submit(&app, &case.user, &form_one, answer("for branch one"), "")
        .await
        .unwrap();
    assert_delivered(&app, &case.user, &form_one).await;

    // Which branch's receive task took which answer: each update of companyName
    // happened in a receive task, under the same parent as its branch's send task.
    let details: Vec<Value> = reqwest::get(format!(
        "{}/history/detail?processInstanceId={}&variableNameLike=companyName&variableUpdates=true",
        engine_url(),
        case.instance
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let parent_of = |activity_instance: String| async move {
        camunda()
            .historic_activity_instance(&activity_instance)
            .await
            .unwrap()
            .parent_activity_instance_id
            .unwrap()
    };
    let mut seen = 0;
    for detail in &details {
        let value = detail["value"].as_str().unwrap().to_owned();
        let receive = detail["activityInstanceId"].as_str().unwrap().to_owned();
        let branch = if value.contains("two") { two } else { one };
        let send = branch.activity_instance_id.clone().unwrap();
        assert_eq!(
            parent_of(receive).await,
            parent_of(send).await,
            "{value} went to the other branch"
        );
        seen += 1;
    }
    assert_eq!(seen, 2);
}

#[tokio::test]
async fn the_marker_lookup_reads_only_the_marker() {
    // An instance with many variable updates: the check of an uncertain delivery
    // reads the marker's updates only (the engine ignores `variableName`).
    let key = unique_key("marker");
    crate::engine::deploy_model(&camunda(), &key, crate::engine::form_process(&key, "step")).await;
    let variables: serde_json::Map<String, Value> = (0..20)
        .map(|i| (format!("field{i}"), json!(i)))
        .chain([("rampSubmissionId".to_owned(), json!("the-marker"))])
        .collect();
    let instance = camunda()
        .start_process(
            &key,
            "marker@example.com",
            &ramp::camunda::typed(&variables),
        )
        .await
        .unwrap();
    let updates = camunda()
        .variable_updates(&instance.id, "rampSubmissionId")
        .await
        .unwrap();
    assert_eq!(updates, vec![json!("the-marker")]);
}
