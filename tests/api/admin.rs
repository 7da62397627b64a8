//! AdminService: deliveries that need an operator, reassignment, one user's forms
//! and processes; admins only.

use std::time::Duration;

use ramp::proto::admin_service_client::AdminServiceClient;
use ramp::proto::pending_forms_response::Event;
use ramp::proto::process_service_client::ProcessServiceClient;
use ramp::proto::*;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

use crate::engine::{camunda, deploy_model, form_process, unique_key};
use crate::forms::{created_id, forms, instance_with_form, new_task, next, open, user};
use crate::helpers::{TestApp, spawn_app, spawn_app_with, token, with_token};
use crate::http_fault::{Fault, HttpFaultProxy};
use crate::submit::{
    SIMPLE, answer, complete_send_task, completed_waits, delivery, form_for, new_case, settled,
    submit,
};

fn admin_token() -> String {
    token("admin@example.com", &["ramp-admin"])
}

async fn admin(app: &TestApp) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(app.channel().await)
}

#[tokio::test]
async fn admin_service_refuses_everyone_but_admins() {
    let app = spawn_app().await;
    let mut client = admin(&app).await;
    let id = uuid::Uuid::now_v7().to_string();
    for (who, bearer) in [
        ("a user", token("someone@example.com", &[])),
        ("a worker", token("worker@example.com", &["ramp-worker"])),
    ] {
        let codes = [
            client
                .list_deliveries(with_token(ListDeliveriesRequest::default(), &bearer))
                .await
                .map(drop),
            client
                .retry_delivery(with_token(RetryDeliveryRequest { id: id.clone() }, &bearer))
                .await
                .map(drop),
            client
                .abandon_delivery(with_token(
                    AbandonDeliveryRequest {
                        id: id.clone(),
                        reason: "no".into(),
                    },
                    &bearer,
                ))
                .await
                .map(drop),
            client
                .reassign_form_task(with_token(
                    ReassignFormTaskRequest {
                        form_task_id: id.clone(),
                        assignee: "x@example.com".into(),
                    },
                    &bearer,
                ))
                .await
                .map(drop),
            client
                .list_user_form_tasks(with_token(
                    ListUserFormTasksRequest {
                        user: "someone@example.com".into(),
                        ..Default::default()
                    },
                    &bearer,
                ))
                .await
                .map(drop),
            client
                .list_user_processes(with_token(
                    ListUserProcessesRequest {
                        user: "someone@example.com".into(),
                        ..Default::default()
                    },
                    &bearer,
                ))
                .await
                .map(drop),
        ];
        for (i, result) in codes.into_iter().enumerate() {
            assert_eq!(
                result.expect_err("refused").code(),
                Code::PermissionDenied,
                "{who}, RPC #{i}"
            );
        }
    }
    let unauthenticated = client
        .list_deliveries(ListDeliveriesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);

    // An admin gets through to the checks.
    let bearer = admin_token();
    let missing = client
        .retry_delivery(with_token(RetryDeliveryRequest { id: id.clone() }, &bearer))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad = client
        .retry_delivery(with_token(
            RetryDeliveryRequest { id: "nope".into() },
            &bearer,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let wrong_state = client
        .list_deliveries(with_token(
            ListDeliveriesRequest {
                states: vec![DeliveryState::Delivered as i32],
                ..Default::default()
            },
            &bearer,
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong_state.code(), Code::InvalidArgument);
    let bad_token = client
        .list_deliveries(with_token(
            ListDeliveriesRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            &bearer,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_token.code(), Code::InvalidArgument);
    let abandon_missing = client
        .abandon_delivery(with_token(
            AbandonDeliveryRequest {
                id: id.clone(),
                reason: "gone".into(),
            },
            &bearer,
        ))
        .await
        .unwrap_err();
    assert_eq!(abandon_missing.code(), Code::NotFound);
    let no_user = client
        .list_user_form_tasks(with_token(ListUserFormTasksRequest::default(), &bearer))
        .await
        .unwrap_err();
    assert_eq!(no_user.code(), Code::InvalidArgument);
}

/// A delivery that fails for real: the engine answers its trigger with an error,
/// and one attempt is all it gets.
async fn failed_delivery(proxy: &HttpFaultProxy) -> (TestApp, crate::submit::Case, String) {
    let app = spawn_app_with(json!({
        "camunda_url": proxy.url(),
        "delivery_max_attempts": 1,
        "delivery_poll_ms": 100,
    }))
    .await;
    let case = new_case(SIMPLE).await;
    let form = form_for(&app, &case, &case.tasks[0]).await;
    complete_send_task(&case.tasks[0]).await;
    submit(&app, &case.user, &form, answer("Acme"), "")
        .await
        .unwrap();
    let failed = settled(&app, &case.user, &form).await;
    assert_eq!(failed.state(), DeliveryState::Failed, "{failed:?}");
    // Its author reads what happened in words; the engine's text is for admins.
    assert_eq!(
        failed.last_error, "not delivered: the process engine reported an error",
        "{failed:?}"
    );
    (app, case, form)
}

#[tokio::test]
async fn retrying_a_failed_delivery_delivers_it_once_the_engine_takes_it() {
    let proxy = HttpFaultProxy::start(&crate::engine::engine_url(), Fault::Fail("/trigger")).await;
    let (app, case, form) = failed_delivery(&proxy).await;
    let mut client = admin(&app).await;
    let bearer = admin_token();

    let listed = client
        .list_deliveries(with_token(ListDeliveriesRequest::default(), &bearer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.deliveries.len(), 1);
    let record = &listed.deliveries[0];
    assert_eq!(record.form_task_id, form);
    assert_eq!(record.assignee, case.user);
    assert_eq!(record.process_instance_id, case.instance);
    assert_eq!(
        record.delivery.as_ref().unwrap().state(),
        DeliveryState::Failed
    );
    assert!(
        record.engine_error.contains("injected failure"),
        "admins read the engine's own text: {record:?}"
    );
    let only_undeliverable = client
        .list_deliveries(with_token(
            ListDeliveriesRequest {
                states: vec![DeliveryState::Undeliverable as i32],
                ..Default::default()
            },
            &bearer,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(only_undeliverable.deliveries.is_empty());

    proxy.set(Fault::None);
    let retried = client
        .retry_delivery(with_token(
            RetryDeliveryRequest {
                id: record.id.clone(),
            },
            &bearer,
        ))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(
        retried.delivery.as_ref().unwrap().state(),
        DeliveryState::Pending
    );
    let done = settled(&app, &case.user, &form).await;
    assert_eq!(done.state(), DeliveryState::Delivered, "{done:?}");
    assert_eq!(completed_waits(&case.instance).await, 1);
    let marker = camunda()
        .historic_variables(&[&case.instance], "rampSubmissionId")
        .await
        .unwrap();
    assert_eq!(marker[0].value, json!(record.id));

    // Delivered now: neither retried nor abandoned again, and no longer listed.
    let again = client
        .retry_delivery(with_token(
            RetryDeliveryRequest {
                id: record.id.clone(),
            },
            &bearer,
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let listed = client
        .list_deliveries(with_token(ListDeliveriesRequest::default(), &bearer))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.deliveries.is_empty());
}

#[tokio::test]
async fn abandoning_a_failed_delivery_makes_it_undeliverable_with_the_reason() {
    let proxy = HttpFaultProxy::start(&crate::engine::engine_url(), Fault::Fail("/trigger")).await;
    let (app, case, form) = failed_delivery(&proxy).await;
    let mut client = admin(&app).await;
    let bearer = admin_token();
    let id = client
        .list_deliveries(with_token(ListDeliveriesRequest::default(), &bearer))
        .await
        .unwrap()
        .into_inner()
        .deliveries[0]
        .id
        .clone();

    let no_reason = client
        .abandon_delivery(with_token(
            AbandonDeliveryRequest {
                id: id.clone(),
                reason: "  ".into(),
            },
            &bearer,
        ))
        .await
        .unwrap_err();
    assert_eq!(no_reason.code(), Code::InvalidArgument);

    let abandoned = client
        .abandon_delivery(with_token(
            AbandonDeliveryRequest {
                id: id.clone(),
                reason: "the supplier answered by phone".into(),
            },
            &bearer,
        ))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    let state = abandoned.delivery.unwrap();
    assert_eq!(state.state(), DeliveryState::Undeliverable);
    assert!(
        state
            .last_error
            .contains("abandoned by admin@example.com: the supplier answered by phone"),
        "{state:?}"
    );
    let seen_by_user = delivery(&app, &case.user, &form).await;
    assert_eq!(seen_by_user.state(), DeliveryState::Undeliverable);

    let twice = client
        .abandon_delivery(with_token(
            AbandonDeliveryRequest {
                id,
                reason: "again".into(),
            },
            &bearer,
        ))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    // Nothing went to the engine.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(completed_waits(&case.instance).await, 0);
}

fn event_kind(message: &PendingFormsResponse) -> &Event {
    message.event.as_ref().expect("an event")
}

#[tokio::test]
async fn reassigning_moves_a_form_from_one_users_stream_to_the_others() {
    let app = spawn_app().await;
    let alice = user();
    let bob = user();
    let (instance, _) = instance_with_form(&alice).await;
    let form = created_id(&app, new_task(&unique_key("ext"), &instance, &alice)).await;
    forms(&app)
        .await
        .save_draft(with_token(
            SaveDraftRequest {
                id: form.clone(),
                data: Some(ramp::json::json_to_struct(
                    json!({"companyName": "Alice's notes"}).as_object().unwrap(),
                )),
            },
            &token(&alice, &[]),
        ))
        .await
        .unwrap();

    let mut alice_inbox = open(&app, &alice, "").await;
    let mut bob_inbox = open(&app, &bob, "").await;
    match event_kind(&next(&mut alice_inbox).await) {
        Event::Snapshot(s) => assert_eq!(s.form_tasks.len(), 1),
        other => panic!("{other:?}"),
    }
    match event_kind(&next(&mut bob_inbox).await) {
        Event::Snapshot(s) => assert!(s.form_tasks.is_empty()),
        other => panic!("{other:?}"),
    }

    let mut client = admin(&app).await;
    let moved = client
        .reassign_form_task(with_token(
            ReassignFormTaskRequest {
                form_task_id: form.clone(),
                assignee: bob.to_uppercase(),
            },
            &admin_token(),
        ))
        .await
        .unwrap()
        .into_inner()
        .form_task
        .unwrap();
    assert_eq!(moved.assignee, bob);
    assert!(
        !moved.has_draft,
        "the old assignee's draft is not handed over"
    );

    match event_kind(&next(&mut alice_inbox).await) {
        Event::Removed(removed) => {
            assert_eq!(removed.id, form);
            assert_eq!(removed.reason(), RemovalReason::Reassigned);
        }
        other => panic!("alice expected removed, got {other:?}"),
    }
    match event_kind(&next(&mut bob_inbox).await) {
        Event::Added(added) => {
            assert_eq!(added.id, form);
            assert_eq!(added.assignee, bob);
        }
        other => panic!("bob expected added, got {other:?}"),
    }

    // Bob may read it now, Alice no longer.
    let mut form_client = forms(&app).await;
    let for_bob = form_client
        .get_form_task(with_token(
            GetFormTaskRequest { id: form.clone() },
            &token(&bob, &[]),
        ))
        .await
        .unwrap()
        .into_inner()
        .form_task
        .unwrap();
    assert!(for_bob.draft.is_none());
    let for_alice = form_client
        .get_form_task(with_token(
            GetFormTaskRequest { id: form.clone() },
            &token(&alice, &[]),
        ))
        .await
        .unwrap_err();
    assert_eq!(for_alice.code(), Code::NotFound);

    // Listed as Bob's.
    let listed = client
        .list_user_form_tasks(with_token(
            ListUserFormTasksRequest {
                user: bob.clone(),
                statuses: vec![FormTaskStatus::Pending as i32],
                ..Default::default()
            },
            &admin_token(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.form_tasks.iter().map(|t| &t.id).collect::<Vec<_>>(),
        [&form]
    );
    let alices = client
        .list_user_form_tasks(with_token(
            ListUserFormTasksRequest {
                user: alice.clone(),
                ..Default::default()
            },
            &admin_token(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(alices.form_tasks.is_empty());

    // Giving it to whom it belongs already changes nothing and tells no stream.
    let same = client
        .reassign_form_task(with_token(
            ReassignFormTaskRequest {
                form_task_id: form.clone(),
                assignee: bob.clone(),
            },
            &admin_token(),
        ))
        .await
        .unwrap()
        .into_inner()
        .form_task
        .unwrap();
    assert_eq!(same.assignee, bob);
    assert!(crate::forms::quiet(&mut bob_inbox, Duration::from_millis(500)).await);
    assert!(crate::forms::quiet(&mut alice_inbox, Duration::from_millis(100)).await);

    // Refusals: a bad email, an unknown form.
    let bad = client
        .reassign_form_task(with_token(
            ReassignFormTaskRequest {
                form_task_id: form.clone(),
                assignee: "not an email".into(),
            },
            &admin_token(),
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let unknown = client
        .reassign_form_task(with_token(
            ReassignFormTaskRequest {
                form_task_id: uuid::Uuid::now_v7().to_string(),
                assignee: alice.clone(),
            },
            &admin_token(),
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn a_form_that_is_no_longer_pending_cannot_be_reassigned() {
    let app = spawn_app().await;
    let case = new_case(SIMPLE).await;
    let form = form_for(&app, &case, &case.tasks[0]).await;
    complete_send_task(&case.tasks[0]).await;
    submit(&app, &case.user, &form, answer("Acme"), "")
        .await
        .unwrap();
    let refused = admin(&app)
        .await
        .reassign_form_task(with_token(
            ReassignFormTaskRequest {
                form_task_id: form,
                assignee: user(),
            },
            &admin_token(),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn admins_list_one_users_processes() {
    let app = spawn_app().await;
    let key = unique_key("adminlist");
    deploy_model(&camunda(), &key, form_process(&key, "step")).await;
    let someone = user();
    let other = user();
    let mut processes = ProcessServiceClient::new(app.channel().await);
    for business_key in [&someone, &other] {
        processes
            .start_process(with_token(
                StartProcessRequest {
                    definition_key: key.clone(),
                    business_key: business_key.clone(),
                    ..Default::default()
                },
                &admin_token(),
            ))
            .await
            .unwrap();
    }
    let listed = admin(&app)
        .await
        .list_user_processes(with_token(
            ListUserProcessesRequest {
                user: someone.clone(),
                ..Default::default()
            },
            &admin_token(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.processes.len(), 1);
    assert_eq!(listed.processes[0].business_key, someone);
    assert_eq!(listed.processes[0].definition_key, key);
}
