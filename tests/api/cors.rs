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

/// The unsigned identity headers of dev mode are no header a browser may send to a
/// server that checks tokens.
#[tokio::test]
async fn the_dev_mode_headers_are_allowed_only_in_dev_mode() {
    async fn allowed_headers(auth: &str) -> String {
        let app = spawn_app_with(json!({ "cors_origins": ALLOWED, "auth": auth })).await;
        let response = reqwest::Client::new()
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/ramp.v1.FormService/ListFormTasks", app.url()),
            )
            .header("origin", ALLOWED)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-grpc-web,x-ramp-user,x-ramp-roles",
            )
            .send()
            .await
            .unwrap();
        response
            .headers()
            .get("access-control-allow-headers")
            .map(|h| h.to_str().unwrap().to_lowercase())
            .unwrap_or_default()
    }

    let jwt = allowed_headers("jwt").await;
    assert!(jwt.contains("authorization"), "{jwt}");
    assert!(!jwt.contains("x-ramp-user"), "{jwt}");
    assert!(!jwt.contains("x-ramp-roles"), "{jwt}");

    let dev = allowed_headers("dev").await;
    assert!(dev.contains("x-ramp-user"), "{dev}");
    assert!(dev.contains("x-ramp-roles"), "{dev}");
}
