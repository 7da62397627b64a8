//! What an operator runs ramp with: Prometheus metrics, liveness and readiness, and
//! request ids carried from the RPC to the engine.

use std::time::{Duration, Instant};

use ramp::proto::admin_service_client::AdminServiceClient;
use ramp::proto::*;
use serde_json::json;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::client::{ADMIN, Client, admin_token};
use crate::e2e::ramp_command;
use crate::engine::{camunda, deploy_model, engine_url, form_process, unique_key};
use crate::forms::open;
use crate::helpers::{TestApp, health_status, spawn_app_with, test_config, token, with_token};
use crate::http_fault::{Fault, HttpFaultProxy};
use crate::submit::{
    SIMPLE, answer, assert_delivered, complete_send_task, form_for, new_case, submit,
};

/// Every series `ramp serve` exposes.
const SERVER_SERIES: [&str; 14] = [
    "ramp_rpc_requests",
    "ramp_rpc_duration_seconds",
    "ramp_open_streams",
    "ramp_change_log_entries",
    "ramp_change_log_oldest_age_seconds",
    "ramp_outbox_entries",
    "ramp_outbox_oldest_pending_age_seconds",
    "ramp_deliveries",
    "ramp_engine_request_duration_seconds",
    "ramp_engine_request_errors",
    "ramp_reconcile_passes",
    "ramp_reconcile_lag_seconds",
    "ramp_pruned_rows",
    "ramp_metrics_scrape_errors",
];

async fn get(url: &str) -> (u16, String, String) {
    let response = reqwest::get(url).await.expect("the endpoint answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

/// Scrapes `url` until `check` holds on the text (bounded), and returns it.
async fn scrape_until(url: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A process just started may not listen yet: a refused connection is "not yet".
        let (status, text) = match reqwest::get(url).await {
            Ok(response) => (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            ),
            Err(error) => (0, error.to_string()),
        };
        if status == 200 && check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what} never showed in\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_serve_every_series_after_rpcs_a_delivery_a_reconciliation_and_a_worker_task() {
    let app = spawn_app_with(json!({"change_retention_secs": 1, "prune_interval_ms": 200})).await;
    let metrics_url = format!("{}/metrics", app.url());

    // RPCs, an open stream, a delivery (and the engine calls they make).
    let case = new_case(SIMPLE).await;
    let form = form_for(&app, &case, &case.tasks[0]).await;
    let _inbox = open(&app, &case.user, "").await;
    complete_send_task(&case.tasks[0]).await;
    submit(&app, &case.user, &form, answer("Acme"), "")
        .await
        .unwrap();
    assert_delivered(&app, &case.user, &form).await;

    // An engine call that fails: a start of a definition the engine does not know.
    let unknown = app
        .as_admin()
        .start_for(&unique_key("nosuch"), "someone@example.com")
        .await;
    crate::helpers::refused(unknown, Code::NotFound);

    // A worker task, through `ramp worker` and its own metrics endpoint.
    let key = unique_key("metrics");
    deploy_model(&camunda(), &key, form_process(&key, "step")).await;
    let worker_metrics = crate::helpers::closed_addr();
    let _worker = ramp_command()
        .arg("worker")
        .args(["--definition-key", &key])
        .env("RAMP_SERVER", app.url())
        .env("RAMP_CAMUNDA_URL", engine_url())
        .env("RAMP_TOKEN", token("worker@example.com", &["ramp-worker"]))
        .env("RAMP_WORKER_LONG_POLL_MS", "1000")
        .env("RAMP_WORKER_METRICS_LISTEN", worker_metrics.to_string())
        .spawn()
        .unwrap();
    camunda()
        .start_process(&key, &crate::forms::user(), &Default::default())
        .await
        .unwrap();
    let worker_text = scrape_until(
        &format!("http://{worker_metrics}/metrics"),
        "a created worker task",
        |t| t.contains(r#"ramp_worker_tasks_total{outcome="created"} 1"#),
    )
    .await;
    assert!(worker_text.contains("# TYPE ramp_engine_request_duration_seconds histogram"));
    assert!(worker_text.contains(r#"operation="POST /external-task/fetchAndLock""#));
    let (status, _, _) = get(&format!("http://{worker_metrics}/livez")).await;
    assert_eq!(status, 200);

    let text = scrape_until(&metrics_url, "a reconciliation pass and a prune", |t| {
        t.contains(r#"ramp_reconcile_passes_total{outcome="ok"}"#)
            && t.contains(r#"ramp_pruned_rows_total{table="form_changes"}"#)
    })
    .await;
    for series in SERVER_SERIES {
        assert!(
            text.contains(&format!("# TYPE {series} ")),
            "{series} is missing from\n{text}"
        );
    }
    for line in [
        r#"ramp_rpc_requests_total{method="/ramp.v1.FormService/SubmitForm",code="OK"} 1"#,
        r#"ramp_rpc_requests_total{method="/ramp.v1.FormService/CreateFormTask",code="OK"}"#,
        r#"ramp_rpc_duration_seconds_count{method="/ramp.v1.FormService/SubmitForm"} 1"#,
        r#"ramp_deliveries_total{outcome="delivered"} 1"#,
        r#"ramp_engine_request_duration_seconds_count{operation="POST /execution/{}/messageSubscriptions/{}/trigger"} 1"#,
        r#"ramp_outbox_entries{state="pending"} 0"#,
        r#"ramp_engine_request_errors_total{operation="GET /process-definition/key/{}",kind="not_found"} 1"#,
        r#"ramp_rpc_requests_total{method="/ramp.v1.ProcessService/StartProcess",code="NOT_FOUND"} 1"#,
        "ramp_open_streams 1",
    ] {
        assert!(text.contains(line), "{line} is missing from\n{text}");
    }
    // The worker's series are its own; RPCs never called have no series.
    assert!(!text.contains("ramp_worker_tasks"));
    assert!(!text.contains("CancelProcess"), "{text}");
    let lag = sample(&text, "ramp_reconcile_lag_seconds").expect("a lag sample");
    assert!(
        lag < 30.0,
        "passes run every 250 ms, yet the lag is {lag} s"
    );
}

#[tokio::test]
async fn the_metrics_listener_serves_the_endpoints_instead_of_the_api_port() {
    let app = spawn_app_with(json!({"metrics_listen": "127.0.0.1:0"})).await;
    let addr = app.app.metrics_addr().expect("a metrics listener");
    assert_ne!(addr, app.addr());

    let (status, content_type, text) = get(&format!("http://{addr}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.contains("# TYPE ramp_rpc_requests counter"), "{text}");
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(get(&format!("http://{addr}/livez")).await.0, 200);
    assert_eq!(get(&format!("http://{addr}/nothing")).await.0, 404);

    let (_, _, on_api_port) = get(&format!("{}/metrics", app.url())).await;
    assert!(!on_api_port.contains("ramp_rpc_requests"), "{on_api_port}");
}

#[tokio::test]
async fn rpcs_with_unknown_paths_share_one_series() {
    let app = spawn_app_with(json!({})).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let answer = client
        .post(format!("{}/made.up.Service/Method", app.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["grpc-status"], "12", "UNIMPLEMENTED");
    let (_, _, text) = get(&format!("{}/metrics", app.url())).await;
    assert!(
        text.contains(r#"ramp_rpc_requests_total{method="other",code="UNIMPLEMENTED"} 1"#),
        "{text}"
    );
    assert!(!text.contains("made.up"), "{text}");
}

async fn ready(app: &TestApp) -> (u16, String) {
    let (status, _, body) = get(&format!("{}/readyz", app.url())).await;
    (status, body)
}

async fn wait_ready(app: &TestApp, want: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = ready(app).await;
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn readiness_goes_away_while_the_engine_is_unreachable_and_comes_back() {
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::None).await;
    let app = spawn_app_with(json!({
        "camunda_url": proxy.url(),
        "camunda_timeout_ms": 1_000,
        "readiness_interval_ms": 100,
    }))
    .await;
    let body = wait_ready(&app, 200).await;
    assert!(body.contains("engine: reachable"), "{body}");

    proxy.set(Fault::Down);
    let body = wait_ready(&app, 503).await;
    assert!(body.contains("engine: unreachable"), "{body}");
    assert!(body.contains("database: reachable"), "{body}");
    // Alive, and still serving what needs only the database.
    assert_eq!(get(&format!("{}/livez", app.url())).await.0, 200);
    assert_eq!(health_status(app.addr()).await, ServingStatus::Serving);

    proxy.set(Fault::None);
    let body = wait_ready(&app, 200).await;
    assert!(body.contains("engine: reachable"), "{body}");
}

#[tokio::test]
async fn readiness_and_liveness_part_while_the_database_is_unreachable() {
    let closed_port = crate::helpers::free_port();
    let url = format!("host=127.0.0.1 port={closed_port} user=postgres dbname=postgres");
    let app = ramp::server::Application::start(test_config(
        &url,
        json!({"database_timeout_ms": 300, "readiness_interval_ms": 100}),
    ))
    .await
    .expect("the server starts without its database");
    let base = format!("http://{}", app.local_addr());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database: unreachable"), "{body}");
    assert_eq!(get(&format!("{base}/livez")).await.0, 200);
    // Metrics still answer, and count that the database gauges could not be read.
    let (status, _, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("ramp_metrics_scrape_errors_total 1"),
        "{text}"
    );
    app.shutdown();
    app.stopped().await.expect("the server stops cleanly");
}

#[tokio::test]
async fn a_request_id_comes_back_and_reaches_the_engine() {
    let proxy = HttpFaultProxy::start(&engine_url(), Fault::None).await;
    let app = spawn_app_with(json!({"camunda_url": proxy.url()})).await;
    // A start of a definition the engine does not know, tagged with `id` if given.
    let start = |id: Option<&str>| {
        let admin = app.as_admin();
        let admin = match id {
            Some(id) => admin.tagged(id),
            None => admin,
        };
        async move {
            admin
                .start_for(&unique_key("nosuch"), "someone@example.com")
                .await
        }
    };

    let refused = start(Some("req-7f3a.1"))
        .await
        .expect_err("no such definition");
    assert_eq!(refused.code(), Code::NotFound);
    crate::helpers::assert_clean(&refused);
    assert_eq!(
        refused.metadata().get("x-request-id").unwrap(),
        "req-7f3a.1"
    );
    let seen = proxy.request_ids();
    assert!(
        !seen.is_empty() && seen.iter().all(|id| id == "req-7f3a.1"),
        "the engine saw {seen:?}"
    );

    // None given, or one unfit for logs and headers: a fresh one.
    for given in [None, Some("has spaces in it")] {
        let refused = start(given).await.unwrap_err();
        let id = refused
            .metadata()
            .get("x-request-id")
            .expect("an id")
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert!(proxy.request_ids().contains(&id));
    }

    // Successful answers carry it too.
    let mut admin_client = AdminServiceClient::new(app.channel().await);
    let mut request = with_token(ListDeliveriesRequest::default(), &admin_token());
    request
        .metadata_mut()
        .insert("x-request-id", "list-1".parse().unwrap());
    let answer = admin_client.list_deliveries(request).await.unwrap();
    assert_eq!(answer.metadata().get("x-request-id").unwrap(), "list-1");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_on_engine_calls() {
    let (serve, addr) = crate::e2e::serve_logging_json(
        &engine_url(),
        "warn,ramp::camunda=debug,ramp::telemetry=info",
    )
    .await;
    crate::helpers::wait_until_serving(addr).await;
    let _ = Client::at(addr, ADMIN, admin_token())
        .tagged("json-log-42")
        .start_for(&unique_key("nosuch"), "someone@example.com")
        .await;

    // Stop it, then read what it wrote.
    let (logs, lines) = crate::e2e::stop_and_read_logs(serve).await;
    let engine_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == "engine call")
        .collect();
    assert!(!engine_lines.is_empty(), "no engine call logged:\n{logs}");
    assert!(
        engine_lines
            .iter()
            .any(|l| l.to_string().contains("\"request_id\":\"json-log-42\"")),
        "no engine call line carries the request id:\n{logs}"
    );
}

#[tokio::test]
async fn a_metrics_address_in_use_stops_serve_and_the_worker_with_its_name() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let database = crate::helpers::fresh_database().await;
    let refused = ramp::server::Application::start(test_config(
        &database,
        json!({"metrics_listen": addr.to_string()}),
    ))
    .await
    .err()
    .expect("serve refuses an address in use");
    assert!(refused.to_string().contains(&addr.to_string()), "{refused}");

    let output = ramp_command()
        .arg("worker")
        .env("RAMP_SERVER", "http://127.0.0.1:1")
        .env("RAMP_CAMUNDA_URL", engine_url())
        .env("RAMP_TOKEN", token("worker@example.com", &["ramp-worker"]))
        .env("RAMP_WORKER_METRICS_LISTEN", addr.to_string())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("RAMP_WORKER_METRICS_LISTEN"), "{stderr}");
}
