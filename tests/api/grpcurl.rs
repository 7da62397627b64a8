//! The real grpcurl (installed by `make test`) against the real server.

use std::process::Command;

use crate::helpers::spawn_app;

fn grpcurl() -> String {
    std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".into())
}

fn run(args: &[&str]) -> String {
    let output = Command::new(grpcurl())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("grpcurl could not run ({e}); `make test` installs it"));
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn grpcurl_lists_the_services() {
    let app = spawn_app().await;
    let addr = app.addr().to_string();
    let listed = tokio::task::spawn_blocking(move || run(&["-plaintext", &addr, "list"]))
        .await
        .unwrap();
    for service in [
        "ramp.v1.ProcessService",
        "ramp.v1.FormService",
        "ramp.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            listed.lines().any(|l| l.trim() == service),
            "{service} not in:\n{listed}"
        );
    }
}

#[tokio::test]
async fn grpcurl_checks_health_and_describes_the_contracts() {
    let app = spawn_app().await;
    let addr = app.addr().to_string();
    let (health, described) = tokio::task::spawn_blocking(move || {
        (
            run(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]),
            run(&["-plaintext", &addr, "describe", "ramp.v1.FormService"]),
        )
    })
    .await
    .unwrap();
    assert!(health.contains("\"status\": \"SERVING\""), "{health}");
    assert!(described.contains("rpc PendingForms"), "{described}");
}

#[tokio::test]
async fn grpcurl_with_a_token_reaches_the_api_and_reads_field_violations() {
    let app = spawn_app().await;
    let addr = app.addr().to_string();
    let header = format!(
        "authorization: Bearer {}",
        crate::helpers::token("ann@example.com", &[])
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new(grpcurl())
            .args([
                "-plaintext",
                "-H",
                &header,
                "-d",
                r#"{"definition_key":"VOE","business_key":"not-an-email"}"#,
            ])
            .args([&addr, "ramp.v1.ProcessService/StartProcess"])
            .output()
            .expect("grpcurl runs")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("InvalidArgument"), "{text}");
    // The details are decoded through reflection, not shown as raw bytes.
    assert!(
        text.contains("fieldViolations") && text.contains("business_key"),
        "{text}"
    );
}

#[tokio::test]
async fn grpcurl_reaches_the_admin_service_with_an_admin_token_only() {
    let app = spawn_app().await;
    let addr = app.addr().to_string();
    let call = move |token: String| {
        let addr = addr.clone();
        move || {
            let output = Command::new(grpcurl())
                .args([
                    "-plaintext",
                    "-H",
                    &format!("authorization: Bearer {token}"),
                    "-d",
                    r#"{"states":["DELIVERY_STATE_FAILED"]}"#,
                ])
                .args([&addr, "ramp.v1.AdminService/ListDeliveries"])
                .output()
                .expect("grpcurl runs");
            (
                output.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            )
        }
    };
    let admin = crate::helpers::token("admin@example.com", &["ramp-admin"]);
    let (ok, text) = tokio::task::spawn_blocking(call(admin)).await.unwrap();
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "{}");
    let user = crate::helpers::token("ann@example.com", &[]);
    let (ok, text) = tokio::task::spawn_blocking(call(user)).await.unwrap();
    assert!(!ok);
    assert!(text.contains("PermissionDenied"), "{text}");
}
