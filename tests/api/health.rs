use serde_json::json;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{health_status, spawn_app, test_config};

#[tokio::test]
async fn health_goes_serving_once_the_database_answers() {
    let app = spawn_app().await;
    assert_eq!(health_status(app.addr()).await, ServingStatus::Serving);

    // Each service is reported too, not only the server as a whole.
    let mut health = HealthClient::new(app.channel().await);
    for service in ["ramp.v1.ProcessService", "ramp.v1.FormService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service}");
    }
}

#[tokio::test]
async fn health_is_not_serving_while_the_database_is_unreachable() {
    // A port on which nothing listens: the server starts, but must not claim to serve.
    let closed_port = crate::helpers::free_port();
    let url = format!("host=127.0.0.1 port={closed_port} user=postgres dbname=postgres");
    let app =
        ramp::server::Application::start(test_config(&url, json!({"database_timeout_ms": 500})))
            .await
            .expect("the server starts without its database");

    for _ in 0..5 {
        assert_eq!(
            health_status(app.local_addr()).await,
            ServingStatus::NotServing
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    app.shutdown();
    app.stopped().await.expect("the server stops cleanly");
}
