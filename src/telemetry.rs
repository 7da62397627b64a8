//! Logging: a `tracing` subscriber set up from `RAMP_LOG` and `RAMP_LOG_FORMAT`, and
//! the tower layer that gives every RPC one span and one line with its method,
//! gRPC status code, latency and request id, and records it in the metrics.
//!
//! The request id comes from the caller's `x-request-id` (when it is a sane token)
//! or is made here; it goes back in the response's `x-request-id` header, sits in
//! the RPC's span (so every log line of the RPC, engine calls included, carries
//! it), and is sent on the engine calls made while handling the RPC.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use serde::{Deserialize, Serialize};
use tracing::{Instrument, Span};
use tracing_subscriber::EnvFilter;

use crate::metrics::{MethodMetrics, Metrics};
use crate::middleware::{Answer, Middleware, Next};
use crate::watched::{Watched, Watcher};

/// The header that carries a request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    /// The id of the RPC being handled, for the engine calls it makes.
    static REQUEST_ID: Arc<str>;
}

/// The request id of the RPC this task is handling, if any.
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The caller's request id when it is a short token of safe characters (it lands
/// in logs and in headers to the engine); a fresh one otherwise.
fn request_id(headers: &HeaderMap) -> Arc<str> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
        })
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(uuid::Uuid::now_v7().to_string()))
}

/// How log lines look (`RAMP_LOG_FORMAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests start many servers in one process) is harmless.
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Wraps each request in an `rpc` span, logs its outcome when the response ends
/// and records it in the metrics.
#[derive(Clone, Default)]
pub struct RpcTrace {
    metrics: Option<Metrics>,
}

impl RpcTrace {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics: Some(metrics),
        }
    }
}

impl<ReqBody, ResBody, E> Middleware<ReqBody, ResBody, E> for RpcTrace
where
    ResBody: Body + 'static,
    E: std::fmt::Display + Send + 'static,
{
    type Body = TracedBody<ResBody>;

    fn call(
        &self,
        request: Request<ReqBody>,
        next: Next<ReqBody, ResBody, E>,
    ) -> Answer<Self::Body, E> {
        let id = request_id(request.headers());
        let path: Box<str> = request.uri().path().into();
        // Streams open and wait: their handlers log nothing of their own worth a
        // span, and a span made for every stream opened costs each held stream
        // memory (see BENCHMARKS.md). Their end is logged in a span like the others'.
        let span = if STREAMING.contains(&&*path) {
            Span::none()
        } else {
            rpc_span(&path, &id)
        };
        let method = self
            .metrics
            .as_ref()
            .map(|m| m.method(request.uri().path()));
        let started = Instant::now();
        let future = {
            let _entered = span.enter();
            REQUEST_ID.sync_scope(id.clone(), || next.run(request))
        };
        let future = REQUEST_ID.scope(id.clone(), future.instrument(span.clone()));
        Box::pin(async move {
            match future.await {
                Ok(response) => {
                    // A trailers-only response (an error before any message) carries
                    // its status in the headers.
                    let code = grpc_status(response.headers());
                    let (mut parts, body) = response.into_parts();
                    if let Ok(value) = HeaderValue::from_str(&id) {
                        parts.headers.insert(REQUEST_ID_HEADER, value);
                    }
                    // The span is let go here: a stream's body lives as long as the
                    // stream, and a span held that long costs a stream more memory
                    // than all the rest of it. Its end is logged in a span made
                    // again with the same fields.
                    drop(span);
                    let outcome = RpcOutcome {
                        rpc: Box::new(RpcName {
                            path,
                            request_id: id,
                        }),
                        started,
                        code,
                        done: false,
                        method,
                    };
                    let body = Watched::new(body, outcome);
                    Ok(Response::from_parts(parts, body))
                }
                Err(error) => {
                    span.in_scope(
                        || tracing::warn!(%error, latency_ms = ms(started), "rpc failed"),
                    );
                    if let Some(method) = &method {
                        method.record(Some(tonic::Code::Internal as i32), started.elapsed());
                    }
                    Err(error)
                }
            }
        })
    }
}

/// An RPC's response body, which logs the RPC's outcome when it ends (or is
/// dropped).
pub type TracedBody<B> = Watched<B, RpcOutcome>;

/// What an RPC's outcome is logged and counted with, once its response ends.
pub struct RpcOutcome {
    rpc: Box<RpcName>,
    started: Instant,
    code: Option<i32>,
    done: bool,
    method: Option<Arc<MethodMetrics>>,
}

impl RpcOutcome {
    fn finish(&mut self, cancelled: bool) {
        self.done = true;
        finish(&self.rpc, self.started, self.code, cancelled, &self.method);
    }
}

impl<D, E> Watcher<D, E> for RpcOutcome {
    fn frame(&mut self, frame: &Option<Result<Frame<D>, E>>) {
        match frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    self.code = grpc_status(trailers).or(self.code);
                    // Trailers are the last frame.
                    self.finish(false);
                }
            }
            Some(Err(_)) | None => {
                if !self.done {
                    self.finish(false);
                }
            }
        }
    }
}

impl Drop for RpcOutcome {
    fn drop(&mut self) {
        if !self.done {
            // Without a status the client went away (or the connection broke) before
            // the end; with one, the body simply was not polled to its end
            // (trailers-only answers, or the trailers were the last frame).
            self.finish(self.code.is_none());
        }
    }
}

/// The server-streaming methods that are held open for long.
const STREAMING: [&str; 2] = [
    "/ramp.v1.FormService/PendingForms",
    "/grpc.health.v1.Health/Watch",
];

/// What names an RPC in its span: kept until its end is logged.
pub struct RpcName {
    path: Box<str>,
    request_id: Arc<str>,
}

fn rpc_span(path: &str, request_id: &str) -> Span {
    tracing::info_span!(
        "rpc",
        method = %path,
        request_id = %request_id,
        code = tracing::field::Empty,
    )
}

fn finish(
    rpc: &RpcName,
    started: Instant,
    code: Option<i32>,
    cancelled: bool,
    method: &Option<Arc<MethodMetrics>>,
) {
    if let Some(method) = method {
        method.record(code, started.elapsed());
    }
    let code_name = code
        .map(|c| tonic::Code::from(c).description())
        .unwrap_or("none");
    let span = rpc_span(&rpc.path, &rpc.request_id);
    span.record("code", code.unwrap_or(-1));
    let latency_ms = ms(started);
    span.in_scope(|| match code {
        Some(0) => tracing::info!(latency_ms, "rpc ok"),
        _ if cancelled => tracing::info!(latency_ms, "rpc ended by client"),
        // Internal errors and unavailability are the server's to look at.
        Some(2) | Some(13) | Some(14) | Some(15) => {
            tracing::warn!(latency_ms, code = code_name, "rpc failed")
        }
        _ => tracing::info!(latency_ms, code = code_name, "rpc refused"),
    });
}

fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}
