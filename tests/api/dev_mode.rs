//! `RAMP_AUTH=dev`: an unsigned `x-ramp-user` header names the caller. Only when
//! configured so; in JWT mode the header means nothing.

use ramp::proto::ListProcessesRequest;
use ramp::proto::process_service_client::ProcessServiceClient;
use serde_json::json;
use tonic::Code;

use crate::helpers::{refused, spawn_app, spawn_app_with};

fn list_for(
    email: &str,
    user: Option<&str>,
    roles: Option<&str>,
) -> tonic::Request<ListProcessesRequest> {
    let mut request = tonic::Request::new(ListProcessesRequest {
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

    // The header's email, normalized, is the caller.
    processes
        .list_processes(list_for("ann@example.com", Some("Ann@Example.com"), None))
        .await
        .expect("Ann lists her own");

    // Another user's processes are refused, as with tokens.
    refused(
        processes
            .list_processes(list_for("ann@example.com", Some("bob@example.com"), None))
            .await,
        Code::PermissionDenied,
    );

    // Roles come from x-ramp-roles.
    processes
        .list_processes(list_for(
            "ann@example.com",
            Some("admin@example.com"),
            Some("ramp-admin"),
        ))
        .await
        .expect("an admin lists anyone's");

    // No header, no caller.
    let status = refused(
        processes
            .list_processes(list_for("ann@example.com", None, None))
            .await,
        Code::Unauthenticated,
    );
    assert!(
        status.message().contains("x-ramp-user"),
        "{}",
        status.message()
    );

    refused(
        processes
            .list_processes(list_for("ann@example.com", Some("not an email"), None))
            .await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn the_dev_header_means_nothing_in_jwt_mode() {
    let app = spawn_app().await;
    let mut processes = ProcessServiceClient::new(app.channel().await);
    refused(
        processes
            .list_processes(list_for(
                "ann@example.com",
                Some("ann@example.com"),
                Some("ramp-admin"),
            ))
            .await,
        Code::Unauthenticated,
    );
}
