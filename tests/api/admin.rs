//! AdminService: deliveries that need an operator, reassignment, one user's forms
//! and processes; admins only.

use std::time::Duration;

use ramp::proto::admin_service_client::AdminServiceClient;
use ramp::proto::pending_forms_response::Event;
use ramp::proto::*;
use serde_json::json;
use tonic::Code;

use crate::engine::{camunda, deploy_model, form_process, unique_key};
use crate::forms::{next, open, pending_form, user};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::http_fault::{Fault, HttpFaultProxy};
use crate::submit::{SIMPLE, answered_case, completed_waits, delivery, settled};

#[tokio::test]
async fn admin_service_refuses_everyone_but_admins() {
    let app = spawn_app().await;
    let id = uuid::Uuid::now_v7().to_string();
    for (who, client) in [
        ("a user", app.as_user("someone@example.com")),
        ("a worker", app.as_worker()),
    ] {
        let someone = || "someone@example.com".to_owned();
        let codes = [
            client
                .deliveries(ListDeliveriesRequest::default())
                .await
                .map(drop),
            client.retry(&id).await.map(drop),
            client.abandon(&id, "no").await.map(drop),
            client.reassign(&id, "x@example.com").await.map(drop),
            client
                .user_forms(ListUserFormTasksRequest {
                    user: someone(),
                    ..Default::default()
                })
                .await
                .map(drop),
            client
                .user_processes(ListUserProcessesRequest {
                    user: someone(),
                    ..Default::default()
                })
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
    // No token at all.
    let unauthenticated = AdminServiceClient::new(app.channel().await)
        .list_deliveries(ListDeliveriesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);

    // An admin gets through to the checks.
    let admin = app.as_admin();
    let missing = admin.retry(&id).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad = admin.retry("nope").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let wrong_state = admin
        .deliveries(ListDeliveriesRequest {
            states: vec![DeliveryState::Delivered as i32],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(wrong_state.code(), Code::InvalidArgument);
    let bad_token = admin
        .deliveries(ListDeliveriesRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_token.code(), Code::InvalidArgument);
    let abandon_missing = admin.abandon(&id, "gone").await.unwrap_err();
    assert_eq!(abandon_missing.code(), Code::NotFound);
    let no_user = admin
        .user_forms(ListUserFormTasksRequest::default())
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
    let (case, form) = answered_case(&app, SIMPLE).await;
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
    let admin = app.as_admin();

    let listed = admin
        .deliveries(ListDeliveriesRequest::default())
        .await
        .unwrap();
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
    let only_undeliverable = admin
        .deliveries(ListDeliveriesRequest {
            states: vec![DeliveryState::Undeliverable as i32],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(only_undeliverable.deliveries.is_empty());

    proxy.set(Fault::None);
    let retried = admin.retry(&record.id).await.unwrap();
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
    let again = admin.retry(&record.id).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let listed = admin
        .deliveries(ListDeliveriesRequest::default())
        .await
        .unwrap();
    assert!(listed.deliveries.is_empty());
}

#[tokio::test]
async fn abandoning_a_failed_delivery_makes_it_undeliverable_with_the_reason() {
    let proxy = HttpFaultProxy::start(&crate::engine::engine_url(), Fault::Fail("/trigger")).await;
    let (app, case, form) = failed_delivery(&proxy).await;
    let admin = app.as_admin();
    let id = admin
        .deliveries(ListDeliveriesRequest::default())
        .await
        .unwrap()
        .deliveries[0]
        .id
        .clone();

    let no_reason = admin.abandon(&id, "  ").await.unwrap_err();
    assert_eq!(no_reason.code(), Code::InvalidArgument);

    let abandoned = admin
        .abandon(&id, "the supplier answered by phone")
        .await
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

    let twice = admin.abandon(&id, "again").await.unwrap_err();
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
    let form = pending_form(&app, &alice).await;
    let notes = json!({"companyName": "Alice's notes"});
    app.as_user(&alice)
        .save_draft(
            &form,
            ramp::json::json_to_struct(notes.as_object().unwrap()),
        )
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

    let admin = app.as_admin();
    let moved = admin.reassign(&form, &bob.to_uppercase()).await.unwrap();
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
    let for_bob = app.as_user(&bob).form(&form).await.unwrap();
    assert!(for_bob.draft.is_none());
    let for_alice = app.as_user(&alice).form(&form).await.unwrap_err();
    assert_eq!(for_alice.code(), Code::NotFound);

    // Listed as Bob's.
    let listed = admin
        .user_forms(ListUserFormTasksRequest {
            user: bob.clone(),
            statuses: vec![FormTaskStatus::Pending as i32],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed.form_tasks.iter().map(|t| &t.id).collect::<Vec<_>>(),
        [&form]
    );
    let alices = admin
        .user_forms(ListUserFormTasksRequest {
            user: alice.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(alices.form_tasks.is_empty());

    // Giving it to whom it belongs already changes nothing and tells no stream.
    let same = admin.reassign(&form, &bob).await.unwrap();
    assert_eq!(same.assignee, bob);
    assert!(crate::forms::quiet(&mut bob_inbox, Duration::from_millis(500)).await);
    assert!(crate::forms::quiet(&mut alice_inbox, Duration::from_millis(100)).await);

    // Refusals: a bad email, an unknown form.
    let bad = admin.reassign(&form, "not an email").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let unknown = admin
        .reassign(&uuid::Uuid::now_v7().to_string(), &alice)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn a_form_that_is_no_longer_pending_cannot_be_reassigned() {
    let app = spawn_app().await;
    let (_, form) = answered_case(&app, SIMPLE).await;
    let refused = app.as_admin().reassign(&form, &user()).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn admins_list_one_users_processes() {
    let app = spawn_app().await;
    let key = unique_key("adminlist");
    deploy_model(&camunda(), &key, form_process(&key, "step")).await;
    let someone = user();
    let other = user();
    let admin = app.as_admin();
    for business_key in [&someone, &other] {
        admin.start_for(&key, business_key).await.unwrap();
    }
    let listed = admin
        .user_processes(ListUserProcessesRequest {
            user: someone.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.processes.len(), 1);
    assert_eq!(listed.processes[0].business_key, someone);
    assert_eq!(listed.processes[0].definition_key, key);
}
