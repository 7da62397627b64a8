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

/// A TCP proxy in front of PostgreSQL whose answers to its clients can be held
/// back: what a held client sends still runs and commits, and the client learns the
/// result only when released, as a replica frozen right after sending it would.
struct HoldingProxy {
    port: u16,
    held: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HoldingProxy {
    /// A proxy for the server of `database` (a key=value connection string).
    async fn start(database: &str) -> Self {
        let config: tokio_postgres::Config = database.parse().unwrap();
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            other => panic!("a TCP host, not {other:?}"),
        };
        let upstream = format!(
            "{host}:{}",
            config.get_ports().first().copied().unwrap_or(5432)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let holding = held.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (client_in, client_out) = client.into_split();
                let (server_in, server_out) = server.into_split();
                tokio::spawn(pipe(client_in, server_out, None));
                tokio::spawn(pipe(server_in, client_out, Some(holding.clone())));
            }
        });
        Self { port, held, task }
    }

    /// `database` reached through this proxy (a repeated `host` would add a host,
    /// not replace it).
    fn url(&self, database: &str) -> String {
        let config: tokio_postgres::Config = database.parse().unwrap();
        let mut url = format!(
            "host=127.0.0.1 port={} user={} dbname={}",
            self.port,
            config.get_user().unwrap(),
            config.get_dbname().unwrap()
        );
        if let Some(password) = config.get_password() {
            url.push_str(&format!(" password={}", String::from_utf8_lossy(password)));
        }
        url
    }

    fn hold(&self, held: bool) {
        self.held.store(held, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies bytes from `from` to `to`, waiting while `held` is set.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    held: Option<Arc<std::sync::atomic::AtomicBool>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        while held
            .as_ref()
            .is_some_and(|held| held.load(std::sync::atomic::Ordering::SeqCst))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// The state of the delivery `id`.
async fn outbox_state(store: &Store, id: uuid::Uuid) -> (String, Option<uuid::Uuid>) {
    let row = store
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT state, lease_owner FROM correlation_outbox WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_claim_acted_on_after_its_lease_ran_out_does_not_deliver_again() {
    // Replica A claims the answer, and is frozen before its first engine call (here:
    // its database's answer to the claim is held back). Its lease runs out, replica
    // B claims and delivers, and the model loops back to its receive task. Then A
    // resumes with the claim it holds: whatever it finds waiting now, the answer is
    // in the process already.
    let (instance, task) = looping_case_of_its_own().await;
    let task = &task;
    complete_send_task(task).await;
    let database = fresh_database().await;
    let direct = Store::new(
        &secrecy::SecretString::from(database.clone()),
        4,
        Duration::from_secs(5),
    )
    .unwrap();
    direct.migrate().await.unwrap();

    let proxy = HoldingProxy::start(&database).await;
    let frozen_store = Store::new(
        &secrecy::SecretString::from(proxy.url(&database)),
        1,
        Duration::from_secs(60),
    )
    .unwrap();
    let lease = Duration::from_millis(2_000);
    let settings = DeliverySettings {
        poll: Duration::from_millis(50),
        lease,
        max_attempts: 30,
        batch: 10,
        give_up_after: Duration::from_secs(3600),
        backoff_cap: Duration::from_secs(1),
        settle: Duration::from_millis(2_000),
    };
    let a = Dispatcher::new(frozen_store.clone(), camunda(), settings.clone());
    let b = Dispatcher::new(direct.clone(), camunda(), settings);

    // A's one connection is open and has its claim prepared (a pass with nothing to
    // claim); from now on the database's answers to A are held back.
    assert_eq!(a.pass().await.unwrap(), 0);
    let submission = answer_in_outbox(&direct, &instance, task).await;
    proxy.hold(true);
    let late = tokio::spawn(async move { a.pass().await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while outbox_state(&direct, submission).await.1.is_none() {
        assert!(Instant::now() < deadline, "A never claimed the answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(lease + Duration::from_millis(200)).await;

    // B takes the answer over and delivers it; the loop waits again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while outbox_state(&direct, submission).await.0 == "pending" {
        assert!(Instant::now() < deadline, "B never delivered");
        b.pass().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(outbox_state(&direct, submission).await.0, "delivered");
    assert_eq!(completed_waits(&instance).await, 1);
    assert_eq!(
        camunda()
            .executions_waiting_for(&instance, "step")
            .await
            .unwrap()
            .len(),
        1,
        "the loop waits again"
    );

    // A resumes with its claim.
    proxy.hold(false);
    assert_eq!(late.await.unwrap().unwrap(), 1, "A acted on its claim");
    assert_eq!(
        completed_waits(&instance).await,
        1,
        "the answer landed twice"
    );
    assert_eq!(outbox_state(&direct, submission).await.0, "delivered");
}

/// An instance of the looping model (`LOOPING`) deployed with a send-task topic of
/// its own (no other test's worker takes its send task), its send task fetched:
/// (the instance, the send task).
async fn looping_case_of_its_own() -> (String, ramp::camunda::types::ExternalTask) {
    let key = unique_key("stale");
    let topic = format!("{key}_send");
    let body = crate::submit::LOOPING.replace("submit_form", &topic);
    crate::engine::deploy_model(
        &camunda(),
        &key,
        crate::engine::definitions(&key, &["step"], &body),
    )
    .await;
    let instance = crate::engine::start_instance(&key, "stale@example.com").await;
    let mut tasks = camunda()
        .fetch_and_lock(&ramp::camunda::types::FetchAndLock {
            worker_id: "test-worker".into(),
            max_tasks: 1,
            topics: vec![ramp::camunda::types::FetchTopic {
                topic_name: topic,
                lock_duration: 600_000,
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    (instance, tasks.remove(0))
}

#[tokio::test]
async fn an_earlier_attempt_landing_between_the_marker_check_and_the_send_lands_alone() {
    // The first attempt's trigger is held on its way (its caller times out, the
    // outcome unknown). The next attempt looks the marker up; the proxy lets the held
    // trigger reach the engine, which takes it and loops back to the receive task,
    // before it answers that lookup with what it read before: "not there". The
    // attempt must not send to the new wait.
    let (instance, task) = looping_case_of_its_own().await;
    complete_send_task(&task).await;
    let database = fresh_database().await;
    let store = Store::new(
        &secrecy::SecretString::from(database.clone()),
        4,
        Duration::from_secs(5),
    )
    .unwrap();
    store.migrate().await.unwrap();
    let submission = answer_in_outbox(&store, &instance, &task).await;
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::TriggerLandsDuringMarkerCheck).await;
    let dispatcher = Dispatcher::new(
        store.clone(),
        camunda_at(&proxy.url(), Duration::from_millis(1_000)),
        DeliverySettings {
            poll: Duration::from_millis(50),
            lease: Duration::from_secs(4),
            max_attempts: 30,
            batch: 10,
            give_up_after: Duration::from_secs(3600),
            backoff_cap: Duration::from_secs(1),
            settle: Duration::from_millis(1_000),
        },
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while outbox_state(&store, submission).await.0 == "pending" {
        assert!(Instant::now() < deadline, "never delivered");
        dispatcher.pass().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(outbox_state(&store, submission).await.0, "delivered");
    assert_eq!(
        completed_waits(&instance).await,
        1,
        "the answer landed twice"
    );
}

/// A submitted answer to the form of the send task `task` of `instance` (model
/// `LOOPING`), in the outbox and due: its id.
async fn answer_in_outbox(
    store: &Store,
    instance: &str,
    task: &ramp::camunda::types::ExternalTask,
) -> uuid::Uuid {
    let client = store.client().await.unwrap();
    let form = uuid::Uuid::now_v7();
    let submission = uuid::Uuid::now_v7();
    let send = task.activity_instance_id.clone().unwrap();
    client
        .execute(
            "INSERT INTO form_tasks (id, external_task_id, business_key, form_name, message_name, assignee,
                status, process_instance_id, root_process_instance_id, activity_id, activity_instance_id)
             VALUES ($1, $2, 'a@example.com', 'step', 'step', 'a@example.com', 'completed', $3, $3,
                'step', $4)",
            &[&form, &task.id, &instance, &send],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO submissions (id, form_task_id, submitted_by, data)
             VALUES ($1, $2, 'a@example.com', '{\"companyName\": \"Acme\"}')",
            &[&submission, &form],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO correlation_outbox (id, submission_id, form_task_id, message_name,
                process_instance_id, activity_instance_id, variables, state)
             VALUES ($1, $1, $2, 'step', $3, $4, '{\"companyName\": \"Acme\"}', 'pending')",
            &[&submission, &form, &instance, &send],
        )
        .await
        .unwrap();
    submission
}
