//! What a client reads when a call fails: the right code and a sentence in ramp's
//! own words, never the engine's or the database's text (no URL, engine id,
//! exception class or SQL). Every error path reachable against the real engine and
//! PostgreSQL is driven here and checked with `assert_clean` (through `refused`).

use ramp::proto::admin_service_client::AdminServiceClient;
use ramp::proto::process_service_client::ProcessServiceClient;
use ramp::proto::*;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::engine::{camunda, deploy_model, engine_url, form_process, unique_key};
use crate::forms::{created_id, forms, instance_with_form, new_task, user, worker};
use crate::helpers::{TestApp, refused, spawn_app, spawn_app_with, token, with_token};
use crate::http_fault::{Fault, HttpFaultProxy};

fn admin_token() -> String {
    token("admin@example.com", &["ramp-admin"])
}

async fn processes(app: &TestApp) -> ProcessServiceClient<Channel> {
    ProcessServiceClient::new(app.channel().await)
}

async fn admin(app: &TestApp) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(app.channel().await)
}

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
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    format!("http://{closed}/engine-rest")
}

#[tokio::test]
async fn an_unknown_definition_key_is_not_found_in_ramps_words() {
    let app = spawn_app().await;
    let result = processes(&app)
        .await
        .start_process(with_token(
            start(&unique_key("nowhere"), &user(), json!({})),
            &admin_token(),
        ))
        .await;
    refused(result, Code::NotFound);
}

#[tokio::test]
async fn an_engine_that_cannot_be_reached_is_unavailable_without_its_address() {
    let app = spawn_app_with(json!({"camunda_url": nowhere()})).await;
    let result = processes(&app)
        .await
        .start_process(with_token(start("VOE", &user(), json!({})), &admin_token()))
        .await;
    refused(result, Code::Unavailable);

    let ann = user();
    let result = forms(&app)
        .await
        .create_form_task(with_token(
            new_task("ext-1", &uuid::Uuid::now_v7().to_string(), &ann),
            &worker(),
        ))
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
    let bearer = token(&ann, &[]);
    let mut client = processes(&app).await;
    let process = client
        .start_process(with_token(start(&key, &ann, json!({})), &bearer))
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap();

    proxy.set(Fault::Down);
    let result = client
        .start_process(with_token(start(&key, &user(), json!({})), &admin_token()))
        .await;
    refused(result, Code::Unavailable);
    let result = client
        .cancel_process(with_token(
            CancelProcessRequest {
                id: process.id,
                reason: String::new(),
            },
            &bearer,
        ))
        .await;
    refused(result, Code::Unavailable);
}

#[tokio::test]
async fn a_start_variable_the_engine_refuses_is_invalid_argument_without_the_engines_text() {
    let key = deployed().await;
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::Mistype("/start")).await;
    let app =
        spawn_app_with(json!({"camunda_url": proxy.url(), "startable_definitions": key})).await;
    let ann = user();
    let mut client = processes(&app).await;
    let result = client
        .start_process(with_token(
            start(&key, &ann, json!({"note": "not a number"})),
            &token(&ann, &[]),
        ))
        .await;
    refused(result, Code::InvalidArgument);

    // The key was freed: the same start, once the engine takes it, goes through.
    proxy.set(Fault::None);
    client
        .start_process(with_token(
            start(&key, &ann, json!({"note": "not a number"})),
            &token(&ann, &[]),
        ))
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
    let result = processes(&app)
        .await
        .start_process(with_token(start(&key, &ann, json!({})), &token(&ann, &[])))
        .await;
    refused(result, Code::Internal);
}

#[tokio::test]
async fn a_process_instance_the_engine_does_not_know_is_refused_without_its_id() {
    let app = spawn_app().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let result = forms(&app)
        .await
        .create_form_task(with_token(new_task("ext-1", &unknown, &user()), &worker()))
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
    let bearer = token(&ann, &[]);
    let mut client = processes(&app).await;
    let process = client
        .start_process(with_token(start(&key, &ann, json!({})), &bearer))
        .await
        .unwrap()
        .into_inner()
        .process
        .unwrap();

    let again = client
        .start_process(with_token(start(&key, &ann, json!({})), &bearer))
        .await;
    refused(again, Code::AlreadyExists);
    let not_startable = client
        .start_process(with_token(start("VOE", &ann, json!({})), &bearer))
        .await;
    refused(not_startable, Code::PermissionDenied);
    let reserved = client
        .start_process(with_token(
            start(&key, &user(), json!({"rampProcessId": "mine"})),
            &admin_token(),
        ))
        .await;
    refused(reserved, Code::InvalidArgument);
    let unknown = client
        .get_process(with_token(
            GetProcessRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
            &bearer,
        ))
        .await;
    refused(unknown, Code::NotFound);
    let malformed = client
        .get_process(with_token(GetProcessRequest { id: "nope".into() }, &bearer))
        .await;
    refused(malformed, Code::InvalidArgument);
    let bad_token = client
        .list_processes(with_token(
            ListProcessesRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            &bearer,
        ))
        .await;
    refused(bad_token, Code::InvalidArgument);

    let cancel = || {
        with_token(
            CancelProcessRequest {
                id: process.id.clone(),
                reason: String::new(),
            },
            &bearer,
        )
    };
    client.cancel_process(cancel()).await.unwrap();
    refused(
        client.cancel_process(cancel()).await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn form_refusals_read_in_ramps_words() {
    let app = spawn_app_with(json!({"max_streams_per_user": 1})).await;
    let ann = user();
    let bearer = token(&ann, &[]);
    let (instance, _) = instance_with_form(&ann).await;
    let id = created_id(&app, new_task(&unique_key("ext"), &instance, &ann)).await;
    let mut client = forms(&app).await;
    let data =
        |value: serde_json::Value| Some(ramp::json::json_to_struct(value.as_object().unwrap()));

    let by_user = client
        .create_form_task(with_token(new_task("ext-2", &instance, &ann), &bearer))
        .await;
    refused(by_user, Code::PermissionDenied);
    let unknown = client
        .get_form_task(with_token(
            GetFormTaskRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
            &bearer,
        ))
        .await;
    refused(unknown, Code::NotFound);
    let invalid = client
        .submit_form(with_token(
            SubmitFormRequest {
                id: id.clone(),
                data: data(json!({"riskScore": 3})),
                request_id: String::new(),
            },
            &bearer,
        ))
        .await;
    refused(invalid, Code::InvalidArgument);
    let bad_token = client
        .list_form_tasks(with_token(
            ListFormTasksRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            &bearer,
        ))
        .await;
    refused(bad_token, Code::InvalidArgument);
    let bad_cursor = client
        .pending_forms(with_token(
            PendingFormsRequest {
                cursor: "not-a-cursor".into(),
            },
            &bearer,
        ))
        .await;
    refused(bad_cursor, Code::InvalidArgument);
    let _open = client
        .pending_forms(with_token(PendingFormsRequest::default(), &bearer))
        .await
        .unwrap();
    let second = client
        .pending_forms(with_token(PendingFormsRequest::default(), &bearer))
        .await;
    refused(second.map(drop), Code::ResourceExhausted);

    client
        .submit_form(with_token(
            SubmitFormRequest {
                id: id.clone(),
                data: data(json!({"companyName": "ACME"})),
                request_id: String::new(),
            },
            &bearer,
        ))
        .await
        .unwrap();
    let twice = client
        .submit_form(with_token(
            SubmitFormRequest {
                id: id.clone(),
                data: data(json!({"companyName": "ACME"})),
                request_id: String::new(),
            },
            &bearer,
        ))
        .await;
    refused(twice, Code::FailedPrecondition);
    let draft = client
        .save_draft(with_token(
            SaveDraftRequest {
                id: id.clone(),
                data: data(json!({"companyName": "later"})),
            },
            &bearer,
        ))
        .await;
    refused(draft, Code::FailedPrecondition);

    let mut admin = admin(&app).await;
    let reassign = admin
        .reassign_form_task(with_token(
            ReassignFormTaskRequest {
                form_task_id: id,
                assignee: user(),
            },
            &admin_token(),
        ))
        .await;
    refused(reassign, Code::FailedPrecondition);
    let unknown_delivery = admin
        .retry_delivery(with_token(
            RetryDeliveryRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
            &admin_token(),
        ))
        .await;
    refused(unknown_delivery, Code::NotFound);
    let bad_token = admin
        .list_deliveries(with_token(
            ListDeliveriesRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            &admin_token(),
        ))
        .await;
    refused(bad_token, Code::InvalidArgument);
    let not_admin = admin
        .list_deliveries(with_token(ListDeliveriesRequest::default(), &bearer))
        .await;
    refused(not_admin, Code::PermissionDenied);
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_without_its_text() {
    let key = deployed().await;
    let app = spawn_app_with(json!({"startable_definitions": key})).await;
    let ann = user();
    let bearer = token(&ann, &[]);
    // The database goes away under the running server.
    let name = app
        .database_url
        .rsplit("dbname=")
        .next()
        .unwrap()
        .to_owned();
    let (cluster, connection) =
        tokio_postgres::connect(&crate::helpers::admin_database_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    cluster
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();

    let result = processes(&app)
        .await
        .start_process(with_token(start(&key, &ann, json!({})), &bearer))
        .await;
    refused(result, Code::Unavailable);
    let result = forms(&app)
        .await
        .get_form_task(with_token(
            GetFormTaskRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
            &bearer,
        ))
        .await;
    refused(result, Code::Unavailable);
    let result = admin(&app)
        .await
        .list_deliveries(with_token(ListDeliveriesRequest::default(), &admin_token()))
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
    let bearer = token(&ann, &[]);
    let result = processes(&app)
        .await
        .start_process(with_token(
            start(&key, &ann, json!({"note": "a\u{0}b"})),
            &bearer,
        ))
        .await;
    refused(result, Code::InvalidArgument);

    let (instance, _) = instance_with_form(&ann).await;
    let id = created_id(&app, new_task(&unique_key("ext"), &instance, &ann)).await;
    let result = forms(&app)
        .await
        .save_draft(with_token(
            SaveDraftRequest {
                id,
                data: Some(ramp::json::json_to_struct(
                    json!({"companyName": {"a\u{0}": "b"}}).as_object().unwrap(),
                )),
            },
            &bearer,
        ))
        .await;
    refused(result, Code::InvalidArgument);
}

#[tokio::test]
async fn what_the_client_is_not_told_goes_to_the_log_with_the_request_id() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let engine = nowhere();
    let serve = crate::e2e::ramp_command()
        .arg("serve")
        .env("RAMP_LISTEN", format!("127.0.0.1:{port}"))
        .env("RAMP_DATABASE_URL", crate::helpers::fresh_database().await)
        .env("RAMP_CAMUNDA_URL", &engine)
        .env("RAMP_JWT_SECRET", crate::helpers::TEST_SECRET)
        .env("RAMP_JWT_ISSUER", crate::helpers::TEST_ISSUER)
        .env("RAMP_LOG_FORMAT", "json")
        .env("RAMP_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "ramp serve never listened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut request = with_token(start("VOE", &user(), json!({})), &admin_token());
    request
        .metadata_mut()
        .insert("x-request-id", "hidden-detail-7".parse().unwrap());
    let result = ProcessServiceClient::new(crate::helpers::channel(addr).await)
        .start_process(request)
        .await;
    refused(result, Code::Unavailable);

    let pid = serve.id().unwrap() as i32;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let output = tokio::time::timeout(std::time::Duration::from_secs(20), serve.wait_with_output())
        .await
        .expect("ramp serve stops")
        .unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    let engine_address = engine.trim_end_matches("/engine-rest");
    assert!(
        logs.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l["request_id"] == "hidden-detail-7"
                && l["error"]
                    .as_str()
                    .is_some_and(|e| e.contains(engine_address))),
        "no line with the request id holds the engine's error:\n{logs}"
    );
}
