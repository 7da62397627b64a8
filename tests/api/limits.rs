//! Input limits: each violation is INVALID_ARGUMENT with a field violation naming
//! the field.

use std::collections::BTreeMap;

use prost_types::value::Kind;
use prost_types::{Struct, Value};
use ramp::proto::*;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{spawn_app, spawn_app_with};

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn object(fields: BTreeMap<String, Value>) -> Struct {
    Struct { fields }
}

fn nested(depth: usize) -> Struct {
    let mut s = object(BTreeMap::from([("leaf".to_owned(), string("x"))]));
    for _ in 1..depth {
        s = object(BTreeMap::from([(
            "a".to_owned(),
            Value {
                kind: Some(Kind::StructValue(s)),
            },
        )]));
    }
    s
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    crate::helpers::assert_clean(status);
    status
        .get_error_details()
        .bad_request()
        .expect("a BadRequest detail")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

const ANN: &str = "ann@example.com";

/// A start of VOE for Ann with `variables`.
fn start_with_variables(variables: Struct) -> StartProcessRequest {
    StartProcessRequest {
        definition_key: "VOE".into(),
        business_key: ANN.into(),
        variables: Some(variables),
        ..Default::default()
    }
}

/// One variable `blob` of `kib` KiB of text.
fn blob(kib: usize) -> Struct {
    object(BTreeMap::from([(
        "blob".to_owned(),
        string(&"x".repeat(kib * 1024)),
    )]))
}

#[tokio::test]
async fn bad_fields_are_named_in_field_violations() {
    let app = spawn_app().await;
    let as_ann = app.as_user(ANN);

    let cases: Vec<(StartProcessRequest, &[&str])> = vec![
        (
            StartProcessRequest {
                business_key: ANN.into(),
                ..Default::default()
            },
            &["definition_key"],
        ),
        (
            StartProcessRequest {
                definition_key: "VOE".into(),
                business_key: "not-an-email".into(),
                ..Default::default()
            },
            &["business_key"],
        ),
        (
            StartProcessRequest {
                definition_key: "x".repeat(256),
                business_key: ANN.into(),
                ..Default::default()
            },
            &["definition_key"],
        ),
        (
            StartProcessRequest {
                definition_key: "VOE\u{0}".into(),
                business_key: ANN.into(),
                ..Default::default()
            },
            &["definition_key"],
        ),
        (
            StartProcessRequest {
                definition_key: "VOE".into(),
                business_key: format!("{}@example.com", "a".repeat(250)),
                ..Default::default()
            },
            &["business_key"],
        ),
        (
            StartProcessRequest {
                definition_key: "VOE".into(),
                business_key: ANN.into(),
                request_id: "r".repeat(129),
                ..Default::default()
            },
            &["request_id"],
        ),
        (
            StartProcessRequest {
                definition_key: "VOE".into(),
                business_key: ANN.into(),
                variables: Some(nested(17)),
                ..Default::default()
            },
            &["variables"],
        ),
        (
            StartProcessRequest {
                definition_key: "VOE".into(),
                business_key: ANN.into(),
                // ramp's own tag of the instances it starts: not the caller's to set.
                variables: Some(object(BTreeMap::from([(
                    "rampProcessId".to_owned(),
                    Value {
                        kind: Some(Kind::StringValue("forged".into())),
                    },
                )]))),
                ..Default::default()
            },
            &["variables.rampProcessId"],
        ),
        (
            StartProcessRequest {
                definition_key: "".into(),
                business_key: "".into(),
                ..Default::default()
            },
            &["definition_key", "business_key"],
        ),
    ];
    for (request, fields) in cases {
        let status = as_ann.start_with(request).await.unwrap_err();
        assert_eq!(violated_fields(&status), fields);
    }

    let many_keys = object((0..2_001).map(|i| (format!("k{i}"), string("v"))).collect());
    let status = as_ann
        .start_with(start_with_variables(many_keys))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["variables"]);

    let status = as_ann
        .start_with(start_with_variables(blob(300)))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["variables"]);

    let status = as_ann
        .processes(ListProcessesRequest {
            page_size: 501,
            states: vec![99],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["page_size", "states"]);

    let status = as_ann.process("42").await.unwrap_err();
    assert_eq!(violated_fields(&status), ["id"]);

    let status = app
        .as_worker()
        .create_form_task(CreateFormTaskRequest {
            assignee: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        [
            "external_task_id",
            "process_instance_id",
            "business_key",
            "activity_id",
            "assignee"
        ]
    );
    let status = as_ann.pending_forms(&"c".repeat(1025)).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["cursor"]);
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_before_decoding() {
    let app = spawn_app_with(json!({"max_message_bytes": 64 * 1024})).await;
    let as_ann = app.as_user(ANN);
    let status = as_ann
        .start_with(start_with_variables(blob(100)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    crate::helpers::assert_clean(&status);
}

/// One header limit on both protocols: a header block just under it is served,
/// one just over it is refused, on HTTP/1.1 (gRPC-web) and HTTP/2 (native gRPC).
#[tokio::test]
async fn one_header_limit_holds_on_http1_and_http2() {
    use prost::Message as _;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    const LIMIT: usize = 16 * 1024;
    let app = spawn_app_with(json!({"max_header_bytes": LIMIT})).await;
    let http1 = reqwest::Client::builder().http1_only().build().unwrap();
    let http1_call = |size: usize| {
        http1
            .post(format!("{}/grpc.health.v1.Health/Check", app.url()))
            .header("content-type", "application/grpc-web+proto")
            .header("x-padding", "x".repeat(size))
            .body(crate::helpers::grpc_frame(
                0,
                &HealthCheckRequest::default().encode_to_vec(),
            ))
            .send()
    };
    let http2_call = |size: usize| {
        let app = &app;
        async move {
            let mut request = tonic::Request::new(HealthCheckRequest::default());
            request
                .metadata_mut()
                .insert("x-padding", "x".repeat(size).parse().unwrap());
            HealthClient::new(app.channel().await).check(request).await
        }
    };

    let under = LIMIT - 2048;
    let response = http1_call(under).await.unwrap();
    assert_eq!(response.status(), 200);
    let (_, trailers) = crate::helpers::parse_grpc_web(&response.bytes().await.unwrap());
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    http2_call(under).await.expect("HTTP/2 under the limit");

    let over = LIMIT + 1024;
    let response = http1_call(over).await;
    crate::report!(
        "limits: a {over}-byte header over HTTP/1.1 with a {LIMIT}-byte limit: {:?}",
        response.as_ref().map(|r| r.status())
    );
    match response {
        Ok(response) => assert_eq!(response.status(), 431),
        Err(error) => assert!(error.is_request() || error.is_body(), "{error:?}"),
    }
    let status = http2_call(over).await.expect_err("HTTP/2 over the limit");
    crate::report!(
        "limits: a {over}-byte header over HTTP/2: {:?}",
        status.code()
    );

    // 350 KB, which HTTP/1.1 used to take whatever the limit.
    let response = http1_call(350 * 1024).await;
    match response {
        Ok(response) => assert_eq!(response.status(), 431),
        Err(error) => assert!(error.is_request() || error.is_body(), "{error:?}"),
    }
    http2_call(under).await.expect("the server keeps serving");
}
