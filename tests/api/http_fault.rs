//! An HTTP proxy of a test's own in front of the shared engine that fails chosen
//! calls (a process start, a message trigger, or all) and forwards the rest: faults the real engine
//! cannot produce on demand, without disturbing the engine other tests use.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Forward every call.
    None,
    /// Calls whose path ends with the given text hang without reaching the engine.
    HangBefore(&'static str),
    /// Calls whose path ends with the given text reach the engine (which acts), but
    /// their answer never comes back.
    HangAfter(&'static str),
    /// Every call answers 503, as a proxy in front of a stopped engine would.
    Down,
    /// Every call reaches the engine (which acts), and its answer comes back after
    /// the given time: past the client's timeout, the outcome is unknown to it.
    Slow(std::time::Duration),
    /// Calls whose path ends with the given text reach the engine only after the
    /// given time, even if their client gave up meanwhile: a request still on its
    /// way (a sender frozen with it unsent, a slow network).
    DelayBefore(&'static str, std::time::Duration),
    /// Calls whose path ends with the given text answer 500 with an engine error
    /// that is neither transient nor a missing subscription: the engine failing.
    Fail(&'static str),
    /// Calls whose path ends with the given text reach the engine (which acts), and
    /// the proxy answers the given status (502, 503 or 504) instead of the engine's
    /// answer, as a proxy in front of the engine does when it gives up waiting or
    /// loses the connection after forwarding: the outcome is unknown to the caller.
    GatewayAfter(&'static str, u16),
    /// Calls whose path ends with the given text reach the engine with each of
    /// their `String` variables declared a `Long`: the engine itself refuses them
    /// (400, a value it cannot convert), as it refuses a start variable it cannot
    /// use; ramp types every variable it sends, so no client can cause this alone.
    Mistype(&'static str),
    /// The first message trigger is held (its caller times out: the outcome is
    /// unknown to it); it reaches the engine, and is answered, while the proxy holds
    /// the answer to the next lookup of the marker (`/history/detail`), which was
    /// read before. An earlier attempt committing exactly between the marker check
    /// and the next send, on demand.
    TriggerLandsDuringMarkerCheck,
    /// The next this many deletes of a process instance fail as the engine fails one
    /// that collided with another change of the instance at the same moment (a worker
    /// completing its send task): 500, its persistence layer; then deletes go through.
    /// The real engine does this only when the two meet within milliseconds.
    DeleteCollides(u32),
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    fault: Arc<Mutex<Fault>>,
    request_ids: Arc<Mutex<Vec<String>>>,
    /// A trigger held by `TriggerLandsDuringMarkerCheck`, and whether one was.
    held_trigger: Arc<Mutex<(Option<Request>, bool)>>,
    http: reqwest::Client,
}

pub struct HttpFaultProxy {
    pub addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    request_ids: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpFaultProxy {
    /// A proxy for the engine at `upstream` (its `/engine-rest` base).
    pub async fn start(upstream: &str, fault: Fault) -> Self {
        let fault = Arc::new(Mutex::new(fault));
        let request_ids = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            upstream: upstream.trim_end_matches("/engine-rest").to_owned(),
            fault: fault.clone(),
            request_ids: request_ids.clone(),
            held_trigger: Arc::default(),
            http: reqwest::Client::new(),
        };
        let (addr, task) =
            crate::helpers::serve(axum::Router::new().fallback(handle).with_state(shared)).await;
        Self {
            addr,
            fault,
            request_ids,
            task,
        }
    }

    /// The `x-request-id` headers of the calls that came through, in order.
    pub fn request_ids(&self) -> Vec<String> {
        self.request_ids.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}/engine-rest", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if let Some(id) = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        shared.request_ids.lock().unwrap().push(id.to_owned());
    }
    let fault = *shared.fault.lock().unwrap();
    match fault {
        Fault::DeleteCollides(n)
            if n > 0
                && request.method() == axum::http::Method::DELETE
                && path.contains("/process-instance/") =>
        {
            *shared.fault.lock().unwrap() = Fault::DeleteCollides(n - 1);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"type":"ProcessEnginePersistenceException","message":"An exception occurred in the persistence layer. Please check the server logs for a detailed message and the entire exception stack trace.","code":0}"#,
            )
                .into_response();
        }
        Fault::Down => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Fault::HangBefore(suffix) if path.ends_with(suffix) => std::future::pending::<()>().await,
        Fault::Fail(suffix) if path.ends_with(suffix) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"type":"ProcessEngineException","message":"injected failure"}"#,
            )
                .into_response();
        }
        Fault::Mistype(suffix) if path.ends_with(suffix) => {
            return forward(&shared, mistyped(request).await).await;
        }
        Fault::TriggerLandsDuringMarkerCheck
            if path.ends_with("/trigger") && !shared.held_trigger.lock().unwrap().1 =>
        {
            *shared.held_trigger.lock().unwrap() = (Some(request), true);
            std::future::pending::<()>().await;
            unreachable!("a held call is never answered");
        }
        Fault::TriggerLandsDuringMarkerCheck if path.ends_with("/history/detail") => {
            let checked = forward(&shared, request).await;
            let held = shared.held_trigger.lock().unwrap().0.take();
            if let Some(trigger) = held {
                forward(&shared, trigger).await;
            }
            return checked;
        }
        Fault::DelayBefore(suffix, delay) if path.ends_with(suffix) => {
            // A task of its own: it goes on when the client hangs up.
            let late = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                forward(&shared, request).await
            });
            return late.await.expect("the delayed call");
        }
        _ => {}
    }
    let response = forward(&shared, request).await;
    if let Fault::Slow(delay) = fault {
        tokio::time::sleep(delay).await;
    }
    if let Fault::HangAfter(suffix) = fault
        && path.ends_with(suffix)
    {
        std::future::pending::<()>().await;
    }
    if let Fault::GatewayAfter(suffix, status) = fault
        && path.ends_with(suffix)
    {
        return StatusCode::from_u16(status)
            .expect("a status")
            .into_response();
    }
    response
}

/// `request` with each `String` variable of its JSON body declared a `Long`.
async fn mistyped(request: Request) -> Request {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(variables) = json
        .get_mut("variables")
        .and_then(serde_json::Value::as_object_mut)
    {
        for variable in variables.values_mut() {
            if variable["type"] == "String" {
                variable["type"] = "Long".into();
            }
        }
    }
    Request::from_parts(parts, Body::from(json.to_string()))
}

async fn forward(shared: &Shared, request: Request) -> Response {
    let method = request.method().clone();
    let target = format!(
        "{}{}",
        shared.upstream,
        request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let body = axum::body::to_bytes(request.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let mut outgoing = shared.http.request(method, target).body(body);
    if let Some(content_type) = content_type {
        outgoing = outgoing.header(header::CONTENT_TYPE, content_type);
    }
    match outgoing.send().await {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = answer
                .headers()
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/json"));
            let bytes = answer.bytes().await.unwrap_or_default();
            (
                status,
                [(header::CONTENT_TYPE, content_type)],
                Body::from(bytes),
            )
                .into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
