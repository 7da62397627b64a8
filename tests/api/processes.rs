//! ProcessService against the real engine.

use std::time::{Duration, Instant};

use ramp::camunda::types::{CorrelationMessage, FetchTopic, ProcessInstanceQuery};
use ramp::proto::*;
use serde_json::json;
use tokio::sync::OnceCell;
use tonic::Code;

use crate::client::Client;
use crate::engine::{camunda, fetch_send_tasks, running_instances, unique_key};
use crate::forms::user;
use crate::helpers::{TestApp, fresh_database, refused, spawn_app, spawn_app_on, spawn_app_with};
use crate::http_fault::{Fault, HttpFaultProxy};

/// Deploys `processes/` to the shared engine once per test binary.
pub async fn deploy_demo() {
    static DEPLOYED: OnceCell<()> = OnceCell::const_new();
    DEPLOYED
        .get_or_init(|| async {
            let processes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("processes");
            camunda()
                .deploy(
                    "ramp-demo-test",
                    ramp::deploy::collect(&[processes]).unwrap(),
                    true,
                    None,
                )
                .await
                .expect("the demo deploys");
        })
        .await;
}

/// A start of VOE for `business_key` under `request_id`.
fn start(business_key: &str, request_id: &str) -> StartProcessRequest {
    StartProcessRequest {
        definition_key: "VOE".into(),
        business_key: business_key.into(),
        variables: None,
        request_id: request_id.into(),
    }
}

/// The process's state once it is no longer active, or `Active` after 10 s.
pub async fn state_once_not_active(client: &Client, id: &str) -> ProcessState {
    let started = Instant::now();
    loop {
        let got = client.process(id).await.unwrap();
        if got.state() != ProcessState::Active || started.elapsed() > Duration::from_secs(10) {
            return got.state();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fetches and completes the first send task of `topic`, as a worker would.
async fn complete_first_send_task(topic: FetchTopic) {
    let tasks = fetch_send_tasks("t", 1, 30_000, topic).await;
    camunda()
        .complete_external_task(&tasks[0].id, "t", &Default::default(), &Default::default())
        .await
        .unwrap();
}

/// The process rows of `business_key`: (state, engine instance id).
pub async fn rows_for(app: &TestApp, business_key: &str) -> Vec<(String, Option<String>)> {
    app.db()
        .await
        .query(
            "SELECT state, engine_instance_id FROM processes WHERE business_key = $1",
            &[&business_key],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// The process rows of `business_key` once none is `starting` (or after 15 s).
pub async fn until_settled(app: &TestApp, business_key: &str) -> Vec<(String, Option<String>)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rows = rows_for(app, business_key).await;
        if !rows.iter().any(|(state, _)| state == "starting") || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn running_roots(business_key: &str) -> Vec<String> {
    let query = ProcessInstanceQuery {
        business_key: Some(business_key.into()),
        root_process_instances: true,
        ..Default::default()
    };
    camunda()
        .process_instances(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect()
}

#[tokio::test]
async fn start_creates_an_engine_instance_with_typed_variables() {
    deploy_demo().await;
    let app = spawn_app().await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let variables = ramp::json::json_to_struct(
        json!({"count": 3, "share": 0.5, "name": "Ann", "urgent": true, "supplier": {"tags": ["a"]}}).as_object().unwrap(),
    );
    let started = as_ann
        .start_with(StartProcessRequest {
            variables: Some(variables),
            ..start(&ann, "")
        })
        .await
        .unwrap();
    assert_eq!(started.state(), ProcessState::Active);
    assert_eq!(started.business_key, ann);
    assert_eq!(started.started_by, ann);

    let engine = camunda();
    let history = engine
        .historic_process_instance(&started.engine_instance_id)
        .await
        .unwrap();
    assert_eq!(history.business_key.as_deref(), Some(ann.as_str()));
    let raw = engine
        .process_variables(&started.engine_instance_id)
        .await
        .unwrap();
    for (name, kind) in [
        ("count", "Long"),
        ("share", "Double"),
        ("name", "String"),
        ("urgent", "Boolean"),
        ("supplier", "Json"),
    ] {
        assert_eq!(raw[name]["type"], kind, "{name}");
    }

    // Get and list show it to its owner.
    assert_eq!(as_ann.process(&started.id).await.unwrap(), started);
}

#[tokio::test]
async fn fifty_concurrent_starts_over_two_replicas_give_one_process() {
    deploy_demo().await;
    let database = fresh_database().await;
    let a = spawn_app_on(&database, json!({})).await;
    let b = spawn_app_on(&database, json!({})).await;
    let ann = user();
    let (on_a, on_b) = (a.as_user(&ann), b.as_user(&ann));
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let client = if i % 2 == 0 {
                on_a.clone()
            } else {
                on_b.clone()
            };
            tokio::spawn(async move { client.start("VOE").await.map(|_| ()) })
        })
        .collect();
    let mut codes = Vec::new();
    for call in calls {
        codes.push(match call.await.unwrap() {
            Ok(()) => Code::Ok,
            Err(status) => status.code(),
        });
    }
    let ok = codes.iter().filter(|c| **c == Code::Ok).count();
    let refused = codes.iter().filter(|c| **c == Code::AlreadyExists).count();
    assert_eq!((ok, refused), (1, 49), "{codes:?}");
    assert_eq!(running_roots(&ann).await.len(), 1);
    assert_eq!(rows_for(&a, &ann).await.len(), 1);
}

#[tokio::test]
async fn a_root_instance_started_outside_ramp_blocks_the_key_until_it_is_gone() {
    deploy_demo().await;
    let app = spawn_app().await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let outside = camunda()
        .start_process("VOE", &ann, &Default::default())
        .await
        .unwrap();

    refused(as_ann.start("VOE").await, Code::AlreadyExists);
    assert!(
        rows_for(&app, &ann).await.is_empty(),
        "nothing stays reserved"
    );

    camunda()
        .delete_process_instance(&outside.id, true)
        .await
        .unwrap();
    as_ann.start("VOE").await.expect("the key is free again");
}

#[tokio::test]
async fn a_running_call_activity_is_part_of_its_root_process() {
    deploy_demo().await;
    let app = spawn_app().await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let root = as_ann.start("VOE").await.expect("the process starts");

    // Drive the first form so that the critical branch calls VOE_RISK.
    let engine = camunda();
    complete_first_send_task(FetchTopic {
        business_key: Some(ann.clone()),
        ..Default::default()
    })
    .await;
    engine
        .correlate(&CorrelationMessage {
            message_name: "company_details".into(),
            process_instance_id: Some(root.engine_instance_id.clone()),
            process_variables: ramp::camunda::typed(
                json!({"supplierType": "critical", "reviewerEmail": "bob@example.com"})
                    .as_object()
                    .unwrap(),
            ),
            result_enabled: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let all = running_instances(&ann).await;
    assert_eq!(
        all.len(),
        2,
        "the root and its called child share the business key"
    );

    // After a reconciliation pass or two, still one process, still running.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let listed = as_ann
        .processes(ListProcessesRequest::default())
        .await
        .unwrap()
        .processes;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state(), ProcessState::Active);
    // The key stays taken by the root alone.
    refused(as_ann.start("VOE").await, Code::AlreadyExists);

    // Cancelling the root ends the child with it.
    let cancelled = as_ann.cancel(&root.id, "changed my mind").await.unwrap();
    assert_eq!(cancelled.state(), ProcessState::Cancelled);
    assert!(cancelled.end_reason.contains("changed my mind"));
    assert!(running_instances(&ann).await.is_empty());
    as_ann
        .start("VOE")
        .await
        .expect("the key is free after the cancel");
}

#[tokio::test]
async fn an_unknown_definition_is_not_found_and_reserves_nothing() {
    let app = spawn_app().await;
    let ann = user();
    refused(
        app.as_admin().start_for(&unique_key("nope"), &ann).await,
        Code::NotFound,
    );
    assert!(rows_for(&app, &ann).await.is_empty());
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_result() {
    deploy_demo().await;
    let app = spawn_app().await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let first = as_ann.start_with(start(&ann, "req-1")).await.unwrap();
    let again = as_ann.start_with(start(&ann, "req-1")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(running_roots(&ann).await.len(), 1);
    // Another request id is another start, refused by the key.
    refused(
        as_ann.start_with(start(&ann, "req-2")).await,
        Code::AlreadyExists,
    );
}

#[tokio::test]
async fn cancel_deletes_the_instance_and_only_the_owner_or_an_admin_may() {
    deploy_demo().await;
    let app = spawn_app().await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let process = as_ann.start("VOE").await.expect("the process starts");

    refused(
        app.as_user("bob@example.com").cancel(&process.id, "").await,
        Code::NotFound,
    );
    let cancelled = as_ann.cancel(&process.id, "").await.unwrap();
    assert_eq!(cancelled.state(), ProcessState::Cancelled);
    assert!(cancelled.end_time.is_some());
    let history = camunda()
        .historic_process_instance(&process.engine_instance_id)
        .await
        .unwrap();
    assert_eq!(history.state, "EXTERNALLY_TERMINATED");
    refused(
        as_ann.cancel(&process.id, "").await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn a_process_that_ends_in_the_engine_shows_so_within_ten_seconds() {
    deploy_demo().await;
    let app = spawn_app().await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let process = as_ann.start("VOE").await.expect("the process starts");

    // Deleted behind ramp's back.
    camunda()
        .delete_process_instance(&process.engine_instance_id, true)
        .await
        .unwrap();
    let deleted_at = Instant::now();
    let state = state_once_not_active(&as_ann, &process.id).await;
    assert_eq!(
        state,
        ProcessState::Terminated,
        "after {:?}",
        deleted_at.elapsed()
    );
    as_ann.start("VOE").await.expect("the key is free");
}

#[tokio::test]
async fn the_next_start_checks_the_engine_even_before_reconciliation() {
    deploy_demo().await;
    // Reconciliation that practically never runs.
    let app = spawn_app_with(json!({"reconcile_interval_ms": 3_600_000})).await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let first = as_ann.start("VOE").await.expect("the process starts");
    camunda()
        .delete_process_instance(&first.engine_instance_id, true)
        .await
        .unwrap();

    let second = as_ann
        .start("VOE")
        .await
        .expect("the ended process no longer blocks");
    assert_ne!(second.id, first.id);
    let states: Vec<_> = rows_for(&app, &ann)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert!(
        states.contains(&"terminated".to_owned()) && states.contains(&"active".to_owned()),
        "{states:?}"
    );
}

#[tokio::test]
async fn lists_are_paged_newest_first_and_tokens_keep_their_filters() {
    deploy_demo().await;
    let app = spawn_app().await;
    let admin = app.as_admin();
    let mut started = Vec::new();
    for _ in 0..5 {
        started.push(admin.start_for("VOE", &user()).await.unwrap().id);
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .processes(ListProcessesRequest {
                page_size: 2,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.processes.len() <= 2);
        seen.extend(page.processes.into_iter().map(|p| p.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        // The same token with other filters is refused.
        let other_filters = ListProcessesRequest {
            page_size: 2,
            page_token: page_token.clone(),
            definition_key: "VOE".into(),
            ..Default::default()
        };
        refused(admin.processes(other_filters).await, Code::InvalidArgument);
    }
    started.reverse();
    assert_eq!(seen, started, "newest first, each once");
}

mod faults {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_engine_is_unavailable_and_reserves_nothing() {
        let closed = crate::helpers::closed_addr();
        let app =
            spawn_app_with(json!({"camunda_url": format!("http://{closed}/engine-rest")})).await;
        let ann = user();
        refused(app.as_user(&ann).start("VOE").await, Code::Unavailable);
        assert!(rows_for(&app, &ann).await.is_empty());
    }

    fn uncertain_settings(proxy: &HttpFaultProxy) -> serde_json::Value {
        json!({"camunda_url": proxy.url(), "camunda_timeout_ms": 1_000, "start_grace_ms": 2_000})
    }

    #[tokio::test]
    async fn a_start_that_timed_out_after_the_engine_created_the_instance_is_adopted() {
        deploy_demo().await;
        let proxy =
            HttpFaultProxy::start(&crate::engine::engine_url(), Fault::HangAfter("/start")).await;
        let app = spawn_app_with(uncertain_settings(&proxy)).await;
        let ann = user();
        let as_ann = app.as_user(&ann);

        let status = refused(as_ann.start("VOE").await, Code::Unavailable);
        assert!(
            status.message().contains("being checked"),
            "{}",
            status.message()
        );

        let rows = until_settled(&app, &ann).await;
        let roots = running_roots(&ann).await;
        assert_eq!(roots.len(), 1, "the engine created exactly one instance");
        assert_eq!(
            rows,
            [("active".to_owned(), Some(roots[0].clone()))],
            "adopted"
        );
        proxy.set(Fault::None);
        // The key stays blocked.
        refused(as_ann.start("VOE").await, Code::AlreadyExists);
    }

    #[tokio::test]
    async fn an_instance_arriving_after_its_start_was_released_is_removed() {
        deploy_demo().await;
        // The start request reaches the engine 8 s late: after the client's timeout
        // (1 s) and after reconciliation (grace 2 s) found no instance and freed the
        // key.
        let proxy = HttpFaultProxy::start(
            &crate::engine::engine_url(),
            Fault::DelayBefore("/start", Duration::from_secs(8)),
        )
        .await;
        let app = spawn_app_with(uncertain_settings(&proxy)).await;
        let ann = user();
        let as_ann = app.as_user(&ann);

        refused(
            as_ann.start_with(start(&ann, "first")).await,
            Code::Unavailable,
        );
        let released = until_settled(&app, &ann).await;
        assert!(released.is_empty(), "released: {released:?}");

        // The client tries again, and this time the engine answers at once.
        proxy.set(Fault::None);
        let second = as_ann
            .start_with(start(&ann, "first"))
            .await
            .expect("the key is free");
        assert_eq!(second.state(), ProcessState::Active);

        // The first request arrives: for a moment the key has two instances, then
        // reconciliation removes the late one.
        let deadline = Instant::now() + Duration::from_secs(30);
        let late = loop {
            let all: Vec<serde_json::Value> = crate::engine::rest_get(&format!(
                "/history/process-instance?processInstanceBusinessKey={ann}"
            ))
            .await;
            if let Some(late) = all
                .iter()
                .find(|i| i["id"] != second.engine_instance_id.as_str())
                && late["state"] != "ACTIVE"
            {
                break late.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the late instance was not removed: {all:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(late["state"], "EXTERNALLY_TERMINATED", "{late}");
        assert_eq!(
            running_roots(&ann).await,
            std::slice::from_ref(&second.engine_instance_id),
            "one process for the key"
        );
        assert_eq!(
            rows_for(&app, &ann).await,
            [("active".to_owned(), Some(second.engine_instance_id))]
        );
    }

    #[tokio::test]
    async fn a_start_that_timed_out_before_the_engine_acted_frees_the_key() {
        deploy_demo().await;
        let proxy =
            HttpFaultProxy::start(&crate::engine::engine_url(), Fault::HangBefore("/start")).await;
        let app = spawn_app_with(uncertain_settings(&proxy)).await;
        let ann = user();
        let as_ann = app.as_user(&ann);

        refused(as_ann.start("VOE").await, Code::Unavailable);
        // Meanwhile the key is held.
        refused(as_ann.start("VOE").await, Code::AlreadyExists);

        let rows = until_settled(&app, &ann).await;
        assert!(rows.is_empty(), "released: {rows:?}");
        assert!(running_roots(&ann).await.is_empty());
        proxy.set(Fault::None);
        as_ann.start("VOE").await.expect("the key is free again");
    }
}

#[tokio::test]
async fn a_process_that_completes_in_the_engine_shows_completed_within_ten_seconds() {
    let engine = camunda();
    let key = unique_key("completes");
    crate::engine::deploy_model(&engine, &key, crate::engine::form_process(&key, "step")).await;
    let app = spawn_app().await;
    let ann = user();
    // An admin may start any definition.
    let admin = app.as_admin();
    let process = admin.start_for(&key, &ann).await.unwrap();

    complete_first_send_task(FetchTopic {
        process_definition_key: Some(key),
        ..Default::default()
    })
    .await;
    engine
        .correlate(&CorrelationMessage {
            message_name: "step".into(),
            process_instance_id: Some(process.engine_instance_id.clone()),
            result_enabled: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let completed_at = Instant::now();
    let state = state_once_not_active(&admin, &process.id).await;
    assert_eq!(
        state,
        ProcessState::Completed,
        "after {:?}",
        completed_at.elapsed()
    );
}
