//! `RAMP_AUTH=dev`: an unsigned `x-ramp-user` header names the caller. Only when
//! configured so; in JWT mode the header means nothing.

use ramp::proto::StartProcessRequest;
use ramp::proto::process_service_client::ProcessServiceClient;
use serde_json::json;
use tonic::Code;

use crate::helpers::{spawn_app, spawn_app_with};

fn start_for(
    email: &str,
    user: Option<&str>,
    roles: Option<&str>,
) -> tonic::Request<StartProcessRequest> {
    let mut request = tonic::Request::new(StartProcessRequest {
        definition_key: "VOE".into(),
        business_key: email.into(),
        ..Default::default()
    });
    if let Some(user) = user {
        request
            .metadata_mut()
            .insert("x-ramp-user", user.parse().unwrap());
    }
    if let Some(roles) = roles {
        request
            .metadata_mut()
            .insert("x-ramp-roles", roles.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn dev_mode_takes_the_caller_from_the_header() {
    let app = spawn_app_with(json!({"auth": "dev"})).await;
    let mut processes = ProcessServiceClient::new(app.channel().await);

    // Passes authorization (and reaches logic not built yet).
    let status = processes
        .start_process(start_for("ann@example.com", Some("Ann@Example.com"), None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    // Another user's key is refused, as with tokens.
    let status = processes
        .start_process(start_for("ann@example.com", Some("bob@example.com"), None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Roles come from x-ramp-roles.
    let status = processes
        .start_process(start_for(
            "ann@example.com",
            Some("admin@example.com"),
            Some("ramp-admin"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);

    // No header, no caller.
    let status = processes
        .start_process(start_for("ann@example.com", None, None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("x-ramp-user"),
        "{}",
        status.message()
    );

    let status = processes
        .start_process(start_for("ann@example.com", Some("not an email"), None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn the_dev_header_means_nothing_in_jwt_mode() {
    let app = spawn_app().await;
    let mut processes = ProcessServiceClient::new(app.channel().await);
    let status = processes
        .start_process(start_for(
            "ann@example.com",
            Some("ann@example.com"),
            Some("ramp-admin"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}
