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

/// The UI's answers carry a policy that allows only the app's own scripts, refuse
/// framing and sniffing, cache hashed files for good and index.html never unchecked,
/// and are compressed for clients that accept it; gRPC-web answers are not.
#[tokio::test]
async fn the_ui_is_served_with_security_headers_caching_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        format!(
            "<!doctype html><title>ramp</title><app-root></app-root>{}",
            "<!-- padding -->".repeat(100)
        ),
    )
    .unwrap();
    let script = format!("console.log('ramp');{}", "\n// padding".repeat(500));
    std::fs::write(dir.path().join("main-DTYBAPWU.js"), &script).unwrap();
    std::fs::write(dir.path().join("favicon.svg"), "<svg/>").unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"oidcIssuer": "https://login.example.test/realms/ramp", "oidcClientId": "ramp-web"}"#,
    )
    .unwrap();
    let app = spawn_app_with(json!({"web_dir": dir.path()})).await;
    // Without automatic decompression: what the server sent.
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", app.url())).send();

    for path in ["/", "/inbox", "/main-DTYBAPWU.js", "/favicon.svg"] {
        let response = get(path).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self';"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert!(policy.contains("object-src 'none'"), "{path}: {policy}");
        assert!(!policy.contains("unsafe-eval"), "{path}: {policy}");
        assert!(
            !policy.contains("script-src 'self' 'unsafe-inline'"),
            "{path}: {policy}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
    // The page may reach the sign-in provider that config.json names.
    let page = get("/").await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("connect-src 'self' https://login.example.test;"),
        "{policy}"
    );

    for (path, cache) in [
        ("/", "no-cache"),
        ("/index.html", "no-cache"),
        ("/inbox", "no-cache"),
        ("/favicon.svg", "no-cache"),
        ("/main-DTYBAPWU.js", "public, max-age=31536000, immutable"),
        // A hashed name the build does not hold gets index.html: not for good.
        ("/chunk-ABCDEFGH.js", "no-cache"),
    ] {
        let response = get(path).await.unwrap();
        assert_eq!(response.headers()["cache-control"], cache, "{path}");
    }

    let compressed = client
        .get(format!("{}/main-DTYBAPWU.js", app.url()))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()["content-encoding"], "gzip");
    let body = compressed.bytes().await.unwrap();
    assert!(body.len() < script.len() / 4, "{} bytes", body.len());
    let plain = get("/main-DTYBAPWU.js").await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.text().await.unwrap(), script);

    let rpc = client
        .post(format!("{}/grpc.health.v1.Health/Check", app.url()))
        .header("content-type", "application/grpc-web+proto")
        .header("accept-encoding", "gzip")
        .body(grpc_frame(0, &[]))
        .send()
        .await
        .unwrap();
    assert!(rpc.headers().get("content-encoding").is_none());
    let (_, trailers) = parse_grpc_web(&rpc.bytes().await.unwrap());
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}
