//! Clocks that differ (finding 10 of issue 19): ramp must read the engine's history
//! by the engine's own times, whatever its own clock says.
//!
//! The run's engine is shared and its clock cannot be moved, so these tests move it
//! as ramp sees it: a proxy of the test's own in front of the real engine shifts
//! every time that passes through. Times in the engine's answers (JSON strings in
//! the engine's format, and the `Date` header) come back `behind` earlier, and
//! times ramp sends (in query strings and JSON bodies) reach the engine `behind`
//! later. To ramp the engine's clock runs `behind` its own; everything else is the
//! real engine.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use ramp::proto::*;
use serde_json::{Value, json};

use crate::engine::{camunda, engine_url, form_process, unique_key};
use crate::forms::user;
use crate::helpers::spawn_app_with;
use crate::processes::{state_once_not_active, until_settled};
use crate::withdrawal::{
    OneForm, cancel, complete, deploy, fetch, form_of, one_form, step_beside_another_branch,
    waiting, withdrawn_within_ten_seconds,
};

/// A proxy in front of the engine whose clock, as its callers see it, runs
/// `behind` theirs.
pub struct SkewedEngine {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SkewedEngine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    behind: chrono::Duration,
    http: reqwest::Client,
}

impl SkewedEngine {
    pub async fn start(upstream: &str, behind: chrono::Duration) -> Self {
        let shared = Shared {
            upstream: upstream.trim_end_matches("/engine-rest").to_owned(),
            behind,
            http: reqwest::Client::new(),
        };
        let (addr, task) =
            crate::helpers::serve(axum::Router::new().fallback(handle).with_state(shared)).await;
        Self { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/engine-rest", self.addr)
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let later = shared.behind;
    let earlier = -shared.behind;
    let mut target = format!("{}{}", shared.upstream, parts.uri.path());
    if let Some(query) = parts.uri.query() {
        target.push('?');
        target.push_str(&shift_query(query, later));
    }
    let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
    let mut body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default()
        .to_vec();
    if content_type
        .as_ref()
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"))
    {
        body = shift_json_bytes(body, later);
    }
    let mut outgoing = shared.http.request(parts.method, target).body(body);
    if let Some(content_type) = content_type {
        outgoing = outgoing.header(header::CONTENT_TYPE, content_type);
    }
    let Ok(answer) = outgoing.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    let date = answer
        .headers()
        .get(header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
        .map(|d| {
            (d.with_timezone(&Utc) + earlier)
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string()
        });
    let body = shift_json_bytes(answer.bytes().await.unwrap_or_default().to_vec(), earlier);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, content_type)],
        Body::from(body),
    )
        .into_response();
    if let Some(date) = date.and_then(|d| HeaderValue::from_str(&d).ok()) {
        response.headers_mut().insert(header::DATE, date);
    }
    response
}

/// `text` moved by `by` if it is a time as the engine writes them.
fn shift_time(text: &str, by: chrono::Duration) -> Option<String> {
    static TIME: OnceLock<regex::Regex> = OnceLock::new();
    let pattern = TIME.get_or_init(|| {
        regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")
            .unwrap()
    });
    if !pattern.is_match(text) {
        return None;
    }
    ramp::camunda::parse_engine_time(text).map(|t| ramp::camunda::engine_time(t + by))
}

fn shift_query(query: &str, by: chrono::Duration) -> String {
    let pairs: Vec<(String, String)> = url_pairs(query)
        .into_iter()
        .map(|(k, v)| {
            let v = shift_time(&v, by).unwrap_or(v);
            (k, v)
        })
        .collect();
    let mut url = reqwest::Url::parse("http://skew.invalid/").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://skew.invalid/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A JSON body with every time in it moved; any other body as it is.
fn shift_json_bytes(bytes: Vec<u8>, by: chrono::Duration) -> Vec<u8> {
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut json) => {
            shift_json(&mut json, by);
            json.to_string().into_bytes()
        }
        Err(_) => bytes,
    }
}

fn shift_json(value: &mut Value, by: chrono::Duration) {
    match value {
        Value::String(text) => {
            if let Some(shifted) = shift_time(text, by) {
                *text = shifted;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| shift_json(v, by)),
        Value::Object(fields) => fields.values_mut().for_each(|v| shift_json(v, by)),
        _ => {}
    }
}

/// How far the engine's clock runs behind ramp's here: well beyond twice the
/// history overlap (30 s by default), where a watermark kept on ramp's clock
/// skips everything the engine records.
fn ten_minutes() -> chrono::Duration {
    chrono::Duration::minutes(10)
}

#[tokio::test]
async fn the_proxy_shows_the_engines_clock_behind() {
    let engine = SkewedEngine::start(&engine_url(), ten_minutes()).await;
    let skewed = crate::engine::camunda_at(&engine.url(), Duration::from_secs(10));
    let key = unique_key("skewed");
    deploy(&key, form_process(&key, "step")).await;
    let instance = crate::engine::start_instance(&key, &user()).await;
    let real = camunda()
        .historic_process_instance(&instance)
        .await
        .unwrap();
    let seen = skewed.historic_process_instance(&instance).await.unwrap();
    let time = |t: Option<String>| ramp::camunda::parse_engine_time(&t.unwrap()).unwrap();
    assert_eq!(time(real.start_time) - time(seen.start_time), ten_minutes());
    // A time sent through the proxy reaches the engine ten minutes later.
    let since = ramp::camunda::engine_time(Utc::now() - chrono::Duration::minutes(5));
    let business_key = real.business_key.unwrap();
    let find = |engine: ramp::camunda::Camunda| {
        let (business_key, key, since) = (business_key.clone(), key.clone(), since.clone());
        async move {
            engine
                .historic_root_instances(&business_key, &key, &since)
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(find(camunda()).await, 1, "started in the last five minutes");
    assert_eq!(find(skewed).await, 0, "not in the engine's future");
}

/// A process deleted in the engine, and a form whose receive task is cancelled
/// while its process goes on, are noticed with the engine's clock ten minutes
/// behind ramp's. Seen failing before the fix: neither was noticed (the process
/// stayed active, both forms pending), as reconciliation moved its watermarks
/// with ramp's own clock and read the engine's history from ten minutes ahead.
#[tokio::test]
async fn with_the_engines_clock_ten_minutes_behind_ended_and_interrupted_processes_are_seen() {
    let key = unique_key("skew");
    deploy(&key, step_beside_another_branch(&key, "", "", "")).await;
    let engine = SkewedEngine::start(&engine_url(), ten_minutes()).await;
    let app = spawn_app_with(json!({
        "camunda_url": engine.url(),
        "startable_definitions": key,
    }))
    .await;
    let ann = user();
    let as_ann = app.as_user(&ann);
    let process = as_ann.start(&key).await.unwrap();
    let ann_form = form_of(&app, &ann, &fetch(&ann, 1).await[0]).await;
    let OneForm {
        user: bob,
        instance: bob_instance,
        task: bob_task,
        form: bob_form,
    } = one_form(&app, &key).await;
    complete(&bob_task).await;
    waiting(&bob_instance, "step", 1).await;
    // Let reconciliation settle its watermarks before anything happens.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Ann's process is deleted behind ramp's back; Bob's receive task is cancelled.
    camunda()
        .delete_process_instance(&process.engine_instance_id, true)
        .await
        .unwrap();
    cancel(
        &bob_instance,
        json!({"type": "cancel", "activityId": "wait_step"}),
    )
    .await;

    let state = state_once_not_active(&as_ann, &process.id).await;
    assert_eq!(state, ProcessState::Terminated, "Ann's process, deleted");
    let bob_reason = withdrawn_within_ten_seconds(&app, &bob, &bob_form).await;
    assert!(bob_reason.contains("can no longer receive"), "{bob_reason}");
    withdrawn_within_ten_seconds(&app, &ann, &ann_form).await;
}

/// A start whose outcome was unknown, reserved by a release that did not tag its
/// instances, is settled by business key and start time; the time is the engine's.
/// Seen failing before the fix: with the engine ten minutes behind, the instance
/// was not found and the reservation released, leaving the key's running instance
/// unknown to ramp.
#[tokio::test]
async fn an_untagged_uncertain_start_is_adopted_with_the_engines_clock_ten_minutes_behind() {
    let key = unique_key("untagged");
    deploy(&key, form_process(&key, "step")).await;
    let engine = SkewedEngine::start(&engine_url(), ten_minutes()).await;
    let app = spawn_app_with(json!({
        "camunda_url": engine.url(),
        "camunda_timeout_ms": 1_000,
        "start_grace_ms": 2_000,
    }))
    .await;
    let ann = user();
    // The instance an older release started, without `rampProcessId`, and the row
    // it reserved before its engine call (five seconds ago; the call's answer lost).
    let instance = crate::engine::start_instance(&key, &ann).await;
    app.db().await.execute(
        "INSERT INTO processes (id, definition_key, business_key, state, started_by, created_at, updated_at)
         VALUES ($1, $2, $3, 'starting', $3, now() - interval '5 seconds', now() - interval '5 seconds')",
        &[&uuid::Uuid::now_v7(), &key, &ann],
    )
    .await
    .unwrap();

    let rows = until_settled(&app, &ann).await;
    assert_eq!(rows, [("active".to_owned(), Some(instance))], "adopted");
}
