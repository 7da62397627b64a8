//! What a client reads when a call fails: the right code and a sentence in ramp's
//! own words, never the engine's or the database's text (no URL, engine id,
//! exception class or SQL). Every error path reachable against the real engine and
//! PostgreSQL is driven here and checked with `assert_clean` (through `refused`).

use ramp::proto::*;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

use crate::client::{ADMIN, Client, admin_token};
use crate::engine::{camunda, deploy_model, engine_url, form_process, unique_key};
use crate::forms::{created_id, instance_with_form, new_task, pending_form, user};
use crate::helpers::{refused, spawn_app, spawn_app_with};
use crate::http_fault::{Fault, HttpFaultProxy};

/// A start of `key` for `business_key` with `variables` (none, for `{}`).
fn start(key: &str, business_key: &str, variables: serde_json::Value) -> StartProcessRequest {
    StartProcessRequest {
        definition_key: key.into(),
        business_key: business_key.into(),
        variables: variables
            .as_object()
            .filter(|v| !v.is_empty())
            .map(ramp::json::json_to_struct),
        request_id: String::new(),
    }
}

/// A model of the test's own, deployed: its key.
async fn deployed() -> String {
    let key = unique_key("errors");
    deploy_model(&camunda(), &key, form_process(&key, "step")).await;
    key
}

/// A closed port: nothing answers there.
fn nowhere() -> String {
    let closed = crate::helpers::closed_addr();
    format!("http://{closed}/engine-rest")
}

#[tokio::test]
async fn an_unknown_definition_key_is_not_found_in_ramps_words() {
    let app = spawn_app().await;
    let result = app
        .as_admin()
        .start_for(&unique_key("nowhere"), &user())
        .await;
    refused(result, Code::NotFound);
}

#[tokio::test]
async fn an_engine_that_cannot_be_reached_is_unavailable_without_its_address() {
    let app = spawn_app_with(json!({"camunda_url": nowhere()})).await;
    let result = app.as_admin().start_for("VOE", &user()).await;
    refused(result, Code::Unavailable);

    let ann = user();
    let result = app
        .as_worker()
        .create_form_task(new_task("ext-1", &uuid::Uuid::now_v7().to_string(), &ann))
        .await;
    refused(result, Code::Unavailable);
}

#[tokio::test]
async fn an_engine_behind_a_proxy_that_answers_503_is_unavailable_without_its_text() {
    let key = deployed().await;
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::None).await;
    let app =
        spawn_app_with(json!({"camunda_url": proxy.url(), "startable_definitions": key})).await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let process = as_ann.start(&key).await.unwrap();

    proxy.set(Fault::Down);
    let result = app.as_admin().start_for(&key, &user()).await;
    refused(result, Code::Unavailable);
    let result = as_ann.cancel(&process.id, "").await;
    refused(result, Code::Unavailable);
}

#[tokio::test]
async fn a_start_variable_the_engine_refuses_is_invalid_argument_without_the_engines_text() {
    let key = deployed().await;
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::Mistype("/start")).await;
    let app =
        spawn_app_with(json!({"camunda_url": proxy.url(), "startable_definitions": key})).await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let mistyped = || start(&key, &ann, json!({"note": "not a number"}));
    refused(as_ann.start_with(mistyped()).await, Code::InvalidArgument);

    // The key was freed: the same start, once the engine takes it, goes through.
    proxy.set(Fault::None);
    as_ann
        .start_with(mistyped())
        .await
        .expect("the key is free");
}

#[tokio::test]
async fn an_engine_failure_is_internal_without_its_text() {
    let key = deployed().await;
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::Fail("/start")).await;
    let app =
        spawn_app_with(json!({"camunda_url": proxy.url(), "startable_definitions": key})).await;
    let ann = user();
    refused(app.as_user(&ann).start(&key).await, Code::Internal);
}

#[tokio::test]
async fn a_process_instance_the_engine_does_not_know_is_refused_without_its_id() {
    let app = spawn_app().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let result = app
        .as_worker()
        .create_form_task(new_task("ext-1", &unknown, &user()))
        .await;
    let status = refused(result, Code::InvalidArgument);
    let details = status.get_error_details();
    let fields: Vec<_> = details
        .bad_request()
        .expect("a field violation")
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, ["process_instance_id"]);
}

#[tokio::test]
async fn process_refusals_read_in_ramps_words() {
    let key = deployed().await;
    let app = spawn_app_with(json!({"startable_definitions": key})).await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let process = as_ann.start(&key).await.unwrap();

    refused(as_ann.start(&key).await, Code::AlreadyExists);
    refused(as_ann.start("VOE").await, Code::PermissionDenied);
    let reserved = app
        .as_admin()
        .start_with(start(&key, &user(), json!({"rampProcessId": "mine"})))
        .await;
    refused(reserved, Code::InvalidArgument);
    let unknown = as_ann.process(&uuid::Uuid::now_v7().to_string()).await;
    refused(unknown, Code::NotFound);
    refused(as_ann.process("nope").await, Code::InvalidArgument);
    let bad_token = as_ann
        .processes(ListProcessesRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await;
    refused(bad_token, Code::InvalidArgument);

    as_ann.cancel(&process.id, "").await.unwrap();
    refused(
        as_ann.cancel(&process.id, "").await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn form_refusals_read_in_ramps_words() {
    let app = spawn_app_with(json!({"max_streams_per_user": 1})).await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let (instance, _) = instance_with_form(&ann).await;
    let id = created_id(&app, new_task(&unique_key("ext"), &instance, &ann)).await;
    let data = |value: serde_json::Value| ramp::json::json_to_struct(value.as_object().unwrap());

    let by_user = as_ann
        .create_form_task(new_task("ext-2", &instance, &ann))
        .await;
    refused(by_user, Code::PermissionDenied);
    let unknown = as_ann.form(&uuid::Uuid::now_v7().to_string()).await;
    refused(unknown, Code::NotFound);
    let invalid = as_ann.submit(&id, data(json!({"riskScore": 3}))).await;
    refused(invalid, Code::InvalidArgument);
    let bad_token = as_ann
        .forms(ListFormTasksRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await;
    refused(bad_token, Code::InvalidArgument);
    let bad_cursor = as_ann.pending_forms("not-a-cursor").await;
    refused(bad_cursor, Code::InvalidArgument);
    let _open = as_ann.pending_forms("").await.unwrap();
    let second = as_ann.pending_forms("").await;
    refused(second.map(drop), Code::ResourceExhausted);

    as_ann
        .submit(&id, data(json!({"companyName": "ACME"})))
        .await
        .unwrap();
    let twice = as_ann
        .submit(&id, data(json!({"companyName": "ACME"})))
        .await;
    refused(twice, Code::FailedPrecondition);
    let draft = as_ann
        .save_draft(&id, data(json!({"companyName": "later"})))
        .await;
    refused(draft, Code::FailedPrecondition);

    let admin = app.as_admin();
    refused(admin.reassign(&id, &user()).await, Code::FailedPrecondition);
    let unknown_delivery = admin.retry(&uuid::Uuid::now_v7().to_string()).await;
    refused(unknown_delivery, Code::NotFound);
    let bad_token = admin
        .deliveries(ListDeliveriesRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await;
    refused(bad_token, Code::InvalidArgument);
    let not_admin = as_ann.deliveries(ListDeliveriesRequest::default()).await;
    refused(not_admin, Code::PermissionDenied);
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_without_its_text() {
    let key = deployed().await;
    let app = spawn_app_with(json!({"startable_definitions": key})).await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    // The database goes away under the running server.
    let name = app
        .database_url
        .rsplit("dbname=")
        .next()
        .unwrap()
        .to_owned();
    let cluster = crate::helpers::connect(&crate::helpers::admin_database_url()).await;
    cluster
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();

    refused(as_ann.start(&key).await, Code::Unavailable);
    let result = as_ann.form(&uuid::Uuid::now_v7().to_string()).await;
    refused(result, Code::Unavailable);
    let result = app
        .as_admin()
        .deliveries(ListDeliveriesRequest::default())
        .await;
    refused(result, Code::Unavailable);
}

#[tokio::test]
async fn a_nul_character_in_data_is_invalid_not_a_database_outage() {
    // PostgreSQL cannot store U+0000 in text or jsonb: refused at the edge, it is
    // the caller's to fix, not a database to wait for.
    let key = deployed().await;
    let app = spawn_app_with(json!({"startable_definitions": key})).await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let result = as_ann
        .start_with(start(&key, &ann, json!({"note": "a\u{0}b"})))
        .await;
    refused(result, Code::InvalidArgument);

    let id = pending_form(&app, &ann).await;
    let nul = json!({"companyName": {"a\u{0}": "b"}});
    let result = as_ann
        .save_draft(&id, ramp::json::json_to_struct(nul.as_object().unwrap()))
        .await;
    refused(result, Code::InvalidArgument);
}

#[tokio::test]
async fn what_the_client_is_not_told_goes_to_the_log_with_the_request_id() {
    let engine = nowhere();
    let (serve, addr) = crate::e2e::serve_logging_json(&engine, "warn").await;
    let result = Client::at(addr, ADMIN, admin_token())
        .tagged("hidden-detail-7")
        .start_for("VOE", &user())
        .await;
    refused(result, Code::Unavailable);

    let (logs, lines) = crate::e2e::stop_and_read_logs(serve).await;
    let engine_address = engine.trim_end_matches("/engine-rest");
    assert!(
        lines.iter().any(|l| l["request_id"] == "hidden-detail-7"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains(engine_address))),
        "no line with the request id holds the engine's error:\n{logs}"
    );
}

#[tokio::test]
async fn a_cancel_that_collides_with_another_change_of_the_instance_goes_through_on_its_own() {
    let key = deployed().await;
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::None).await;
    let app =
        spawn_app_with(json!({"camunda_url": proxy.url(), "startable_definitions": key})).await;
    let ann = user();
    let as_ann = app.as_user(&ann);

    // A worker completing the send task as the user cancels: the engine fails the
    // delete once or twice; ramp tries again and the user never sees it.
    let process = as_ann.start(&key).await.unwrap();
    proxy.set(Fault::DeleteCollides(2));
    let cancelled = as_ann.cancel(&process.id, "").await.unwrap();
    assert_eq!(cancelled.state(), ProcessState::Cancelled);
    assert!(crate::engine::running_instances(&ann).await.is_empty());

    // One that keeps colliding is a moment's unavailability, in ramp's words.
    let bob = user();
    let as_bob = app.as_user(&bob);
    let process = as_bob.start(&key).await.unwrap();
    proxy.set(Fault::DeleteCollides(10));
    let result = as_bob.cancel(&process.id, "").await;
    let status = refused(result, Code::Unavailable);
    assert_eq!(
        status.message(),
        "the process engine could not cancel the process just now; try again"
    );
}
