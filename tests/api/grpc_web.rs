//! gRPC-web as browsers speak it (binary, `application/grpc-web+proto`), sent as raw
//! frames so that nothing but the wire format is assumed.

use prost::Message;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::helpers::{grpc_frame, parse_grpc_web, spawn_app};

fn check_request() -> Vec<u8> {
    grpc_frame(
        0,
        &HealthCheckRequest {
            service: String::new(),
        }
        .encode_to_vec(),
    )
}

async fn unary_check(client: &reqwest::Client, base: &str) -> reqwest::Response {
    client
        .post(format!("{base}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(check_request())
        .send()
        .await
        .expect("the server answers")
}

#[tokio::test]
async fn a_unary_call_over_grpc_web_on_http1() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().http1_only().build().unwrap();

    let response = unary_check(&client, &app.url()).await;
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/grpc-web+proto"
    );
    let body = response.bytes().await.unwrap();
    let (messages, trailers) = parse_grpc_web(&body);
    assert_eq!(messages.len(), 1);
    let reply = HealthCheckResponse::decode(messages[0].as_slice()).unwrap();
    assert_eq!(reply.status(), ServingStatus::Serving);
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers:?}");
}

#[tokio::test]
async fn a_unary_call_over_grpc_web_on_http2() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();

    let response = unary_check(&client, &app.url()).await;
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.bytes().await.unwrap();
    let (messages, trailers) = parse_grpc_web(&body);
    assert_eq!(messages.len(), 1);
    assert!(trailers.contains("grpc-status:0"), "trailers: {trailers:?}");
}

#[tokio::test]
async fn a_server_stream_over_grpc_web_on_http1() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().http1_only().build().unwrap();

    let mut response = client
        .post(format!("{}/grpc.health.v1.Health/Watch", app.url()))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(check_request())
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), 200);

    // The first message arrives while the stream stays open.
    let mut received = Vec::new();
    while received.len() < 5
        || received.len() < 5 + u32::from_be_bytes(received[1..5].try_into().unwrap()) as usize
    {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), response.chunk())
            .await
            .expect("a message within 5 s")
            .expect("the stream is readable")
            .expect("the stream is still open");
        received.extend_from_slice(&chunk);
    }
    let (messages, trailers) = parse_grpc_web(&received);
    assert!(
        trailers.is_empty(),
        "the stream must not have ended: {trailers:?}"
    );
    let reply = HealthCheckResponse::decode(messages[0].as_slice()).unwrap();
    assert_eq!(reply.status(), ServingStatus::Serving);
}

#[tokio::test]
async fn errors_over_grpc_web_carry_their_status() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().http1_only().build().unwrap();

    let response = client
        .post(format!("{}/grpc.health.v1.Health/Check", app.url()))
        .header("content-type", "application/grpc-web+proto")
        .body(grpc_frame(
            0,
            &HealthCheckRequest {
                service: "no.such.Service".into(),
            }
            .encode_to_vec(),
        ))
        .send()
        .await
        .unwrap();
    // NOT_FOUND (5), readable from the headers of a trailers-only response or from
    // the trailer frame.
    let header_status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.bytes().await.unwrap();
    let (_, trailers) = parse_grpc_web(&body);
    assert!(
        header_status.as_deref() == Some("5") || trailers.contains("grpc-status:5"),
        "headers: {header_status:?}, trailers: {trailers:?}"
    );
}
