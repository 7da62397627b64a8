use serde_json::json;

use crate::helpers::{grpc_frame, spawn_app_with};

const ALLOWED: &str = "http://app.example.test";

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered() {
    let app = spawn_app_with(json!({ "cors_origins": ALLOWED })).await;
    let client = reqwest::Client::new();

    let response = client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/ramp.v1.FormService/ListFormTasks", app.url()),
        )
        .header("origin", ALLOWED)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,authorization",
        )
        .send()
        .await
        .unwrap();

    assert!(
        response.status().is_success(),
        "status {}",
        response.status()
    );
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], ALLOWED);
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for header in ["content-type", "x-grpc-web", "authorization"] {
        assert!(
            allowed_headers.contains(header),
            "{header} not in {allowed_headers}"
        );
    }
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_grant() {
    let app = spawn_app_with(json!({ "cors_origins": ALLOWED })).await;
    let client = reqwest::Client::new();

    let response = client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/ramp.v1.FormService/ListFormTasks", app.url()),
        )
        .header("origin", "http://evil.example.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();

    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn responses_expose_the_grpc_status_headers_to_scripts() {
    let app = spawn_app_with(json!({ "cors_origins": ALLOWED })).await;
    let client = reqwest::Client::builder().http1_only().build().unwrap();

    let response = client
        .post(format!("{}/grpc.health.v1.Health/Check", app.url()))
        .header("origin", ALLOWED)
        .header("content-type", "application/grpc-web+proto")
        .body(grpc_frame(0, &[]))
        .send()
        .await
        .unwrap();

    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], ALLOWED);
    let exposed = headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for header in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(header), "{header} not in {exposed}");
    }
}
