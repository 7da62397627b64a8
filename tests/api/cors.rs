use serde_json::json;

use crate::helpers::{TestApp, grpc_frame, spawn_app_with};

const ALLOWED: &str = "http://app.example.test";

/// A browser's CORS preflight from `origin` for a POST to ListFormTasks, asking
/// for the request headers `headers` (a comma-separated list, if any).
async fn preflight(app: &TestApp, origin: &str, headers: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/ramp.v1.FormService/ListFormTasks", app.url()),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST");
    if let Some(headers) = headers {
        request = request.header("access-control-request-headers", headers);
    }
    request.send().await.unwrap()
}

/// Asserts that `response` grants `ALLOWED` and names each of `wanted` in its
/// header `list` (a comma-separated list, in any case).
fn assert_granted(response: &reqwest::Response, list: &str, wanted: &[&str]) {
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], ALLOWED);
    let listed = header_list(response, list);
    for header in wanted {
        assert!(listed.contains(header), "{header} not in {listed}");
    }
}

/// The header `name` of `response`, lower-cased ("" where it is missing).
fn header_list(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|h| h.to_str().unwrap().to_lowercase())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered() {
    let app = spawn_app_with(json!({ "cors_origins": ALLOWED })).await;
    let response = preflight(&app, ALLOWED, Some("content-type,x-grpc-web,authorization")).await;

    assert!(
        response.status().is_success(),
        "status {}",
        response.status()
    );
    assert_granted(
        &response,
        "access-control-allow-headers",
        &["content-type", "x-grpc-web", "authorization"],
    );
    assert!(
        response.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_grant() {
    let app = spawn_app_with(json!({ "cors_origins": ALLOWED })).await;
    let response = preflight(&app, "http://evil.example.test", None).await;

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

    assert_granted(
        &response,
        "access-control-expose-headers",
        &["grpc-status", "grpc-message", "grpc-status-details-bin"],
    );
}

/// The unsigned identity headers of dev mode are no header a browser may send to a
/// server that checks tokens.
#[tokio::test]
async fn the_dev_mode_headers_are_allowed_only_in_dev_mode() {
    async fn allowed_headers(auth: &str) -> String {
        let app = spawn_app_with(json!({ "cors_origins": ALLOWED, "auth": auth })).await;
        let response = preflight(
            &app,
            ALLOWED,
            Some("content-type,x-grpc-web,x-ramp-user,x-ramp-roles"),
        )
        .await;
        header_list(&response, "access-control-allow-headers")
    }

    let jwt = allowed_headers("jwt").await;
    assert!(jwt.contains("authorization"), "{jwt}");
    assert!(!jwt.contains("x-ramp-user"), "{jwt}");
    assert!(!jwt.contains("x-ramp-roles"), "{jwt}");

    let dev = allowed_headers("dev").await;
    assert!(dev.contains("x-ramp-user"), "{dev}");
    assert!(dev.contains("x-ramp-roles"), "{dev}");
}
