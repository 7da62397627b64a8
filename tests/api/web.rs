//! The web UI's files on the API's port.

use serde_json::json;

use crate::helpers::{grpc_frame, parse_grpc_web, spawn_app_with};

#[tokio::test]
async fn the_ui_is_served_beside_the_api_with_a_fallback_to_index_html() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>ramp</title><app-root></app-root>",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "console.log('ramp')").unwrap();
    let app = spawn_app_with(json!({"web_dir": dir.path()})).await;
    let client = reqwest::Client::new();

    for path in ["/", "/inbox", "/forms/0190-abc"] {
        let response = client
            .get(format!("{}{path}", app.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.text().await.unwrap().contains("<app-root>"),
            "{path} serves the app"
        );
    }
    let script = client
        .get(format!("{}/assets/app.js", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(script.text().await.unwrap(), "console.log('ramp')");

    // The API on the same port is untouched: gRPC-web still answers.
    let response = client
        .post(format!("{}/grpc.health.v1.Health/Check", app.url()))
        .header("content-type", "application/grpc-web+proto")
        .body(grpc_frame(0, &[]))
        .send()
        .await
        .unwrap();
    let (_, trailers) = parse_grpc_web(&response.bytes().await.unwrap());
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}
