use tokio_stream::StreamExt;

use crate::helpers::{TestApp, spawn_app};

const EXPECTED: [&str; 4] = [
    "ramp.v1.ProcessService",
    "ramp.v1.FormService",
    "ramp.v1.AdminService",
    "grpc.health.v1.Health",
];

/// The names of the services `app` lists through reflection `$version` (`v1` or
/// `v1alpha`: a module of `tonic_reflection::pb`; the two versions' types are apart
/// but alike).
macro_rules! listed_services {
    ($app:expr, $version:ident) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;

        let app: &TestApp = $app;
        let mut client = ServerReflectionClient::new(app.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect(concat!("reflection ", stringify!($version), " answers"))
            .into_inner();
        let response = responses
            .next()
            .await
            .expect("one response")
            .expect("not an error");
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!(
                "expected a service list, got {:?}",
                response.message_response
            );
        };
        list.service
            .into_iter()
            .map(|s| s.name)
            .collect::<Vec<String>>()
    }};
}

fn assert_lists_ramps_services(names: &[String]) {
    for expected in EXPECTED {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn reflection_v1_lists_the_services() {
    let app = spawn_app().await;
    assert_lists_ramps_services(&listed_services!(&app, v1));
}

#[tokio::test]
async fn reflection_v1alpha_lists_the_services_for_older_grpcurl() {
    let app = spawn_app().await;
    assert_lists_ramps_services(&listed_services!(&app, v1alpha));
}
