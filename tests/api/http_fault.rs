//! An HTTP proxy of a test's own in front of the shared engine that fails chosen
//! calls — the engine's `start` — and forwards the rest: faults the real engine
//! cannot produce on demand, without disturbing the engine other tests use.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StartFault {
    /// Forward every call.
    None,
    /// A start hangs without reaching the engine: no instance is created.
    HangBeforeEngine,
    /// A start reaches the engine (which creates the instance), but its answer never
    /// comes back.
    HangAfterEngine,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    fault: Arc<Mutex<StartFault>>,
    http: reqwest::Client,
}

pub struct HttpFaultProxy {
    pub addr: SocketAddr,
    fault: Arc<Mutex<StartFault>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpFaultProxy {
    /// A proxy for the engine at `upstream` (its `/engine-rest` base).
    pub async fn start(upstream: &str, fault: StartFault) -> Self {
        let fault = Arc::new(Mutex::new(fault));
        let shared = Shared {
            upstream: upstream.trim_end_matches("/engine-rest").to_owned(),
            fault: fault.clone(),
            http: reqwest::Client::new(),
        };
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, fault, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/engine-rest", self.addr)
    }

    pub fn set(&self, fault: StartFault) {
        *self.fault.lock().unwrap() = fault;
    }
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response {
    let is_start =
        request.method() == axum::http::Method::POST && request.uri().path().ends_with("/start");
    let fault = *shared.fault.lock().unwrap();
    if is_start && fault == StartFault::HangBeforeEngine {
        std::future::pending::<()>().await;
    }
    let response = forward(&shared, request).await;
    if is_start && fault == StartFault::HangAfterEngine {
        std::future::pending::<()>().await;
    }
    response
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
