use std::time::Duration;

use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::spawn_app;

#[tokio::test]
async fn shutdown_ends_open_streams_with_unavailable_and_stops() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch opens")
        .into_inner();
    watch
        .next()
        .await
        .expect("a first status")
        .expect("not an error");

    app.app.shutdown();

    // The stream ends with a clean status well before the grace period (5 s here).
    // (NOT_SERVING may be announced first.)
    let status = crate::helpers::end_status(&mut watch, Duration::from_secs(3)).await;
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    crate::helpers::assert_clean(&status);

    tokio::time::timeout(Duration::from_secs(3), app.app.stopped())
        .await
        .expect("the server stops within 3 s")
        .expect("without error");
}
