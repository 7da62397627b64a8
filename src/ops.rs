//! The operator's HTTP endpoints: `GET /metrics` (Prometheus), `GET /livez` (the
//! process answers) and `GET /readyz` (the database and the engine both answer).
//! `ramp serve` answers them on its API port, or on `RAMP_METRICS_LISTEN` when that
//! is set; `ramp worker` on `RAMP_WORKER_METRICS_LISTEN`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode, header};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;

use crate::forms::ChangeHub;
use crate::metrics::{self, Metrics};
use crate::middleware::Endpoints;
use crate::store::Store;

/// Whether the database and the engine answered the last checks (see
/// `server::health`).
#[derive(Clone, Default)]
pub struct Readiness {
    database: Arc<AtomicBool>,
    engine: Arc<AtomicBool>,
}

impl Readiness {
    pub fn set(&self, database: bool, engine: bool) {
        self.database.store(database, Ordering::Relaxed);
        self.engine.store(engine, Ordering::Relaxed);
    }

    pub fn database(&self) -> bool {
        self.database.load(Ordering::Relaxed)
    }

    pub fn engine(&self) -> bool {
        self.engine.load(Ordering::Relaxed)
    }

    pub fn ready(&self) -> bool {
        self.database() && self.engine()
    }
}

/// What the endpoints read from.
#[derive(Clone)]
pub struct Ops {
    metrics: Metrics,
    store: Option<Store>,
    hub: Option<ChangeHub>,
    readiness: Option<Readiness>,
}

impl Ops {
    /// The server's endpoints: metrics with the database gauges, and readiness.
    pub fn server(metrics: Metrics, store: Store, hub: ChangeHub, readiness: Readiness) -> Self {
        Self {
            metrics,
            store: Some(store),
            hub: Some(hub),
            readiness: Some(readiness),
        }
    }

    /// A process without a database (the worker): metrics and liveness; ready
    /// whenever alive.
    pub fn metrics_only(metrics: Metrics) -> Self {
        Self {
            metrics,
            store: None,
            hub: None,
            readiness: None,
        }
    }

    fn answers(path: &str) -> bool {
        matches!(path, "/metrics" | "/livez" | "/readyz")
    }

    /// The answer to `GET path`, if it is one of these endpoints.
    pub async fn respond(&self, path: &str) -> Option<Response<String>> {
        let (status, content_type, body) = match path {
            "/metrics" => {
                let text = self
                    .metrics
                    .scrape(
                        self.store.as_ref(),
                        self.hub.as_ref().map(ChangeHub::open_streams),
                    )
                    .await;
                (StatusCode::OK, metrics::CONTENT_TYPE, text)
            }
            "/livez" => (StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
            "/readyz" => match &self.readiness {
                None => (
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    "ready\n".into(),
                ),
                Some(readiness) => {
                    let body = format!(
                        "database: {}\nengine: {}\n",
                        reachable(readiness.database()),
                        reachable(readiness.engine())
                    );
                    let status = if readiness.ready() {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, "text/plain; charset=utf-8", body)
                }
            },
            _ => return None,
        };
        Some(
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CACHE_CONTROL, "no-store")
                .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                .body(body)
                .expect("a valid response"),
        )
    }

    /// Serves the endpoints alone (HTTP/1.1) on `listener` until `shutdown`.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "metrics listener: cannot accept");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let ops = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let ops = ops.clone();
                    async move {
                        let answer = if request.method() == Method::GET {
                            ops.respond(request.uri().path()).await
                        } else {
                            None
                        };
                        let response = answer.unwrap_or_else(|| {
                            Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body("not found\n".to_owned())
                                .expect("a valid response")
                        });
                        Ok::<_, Infallible>(
                            response
                                .map(|body| http_body_util::Full::new(bytes::Bytes::from(body))),
                        )
                    }
                });
                // A client that sends no request head within the bound is
                // dropped, so silent connections cannot pile up.
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(OPS_HEADER_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::pin!(connection);
                tokio::select! {
                    _ = &mut connection => {}
                    _ = shutdown.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            });
        }
    }
}

/// How long a client of the separate metrics listener may take to send a request
/// head (its first, and each next on a kept-alive connection).
const OPS_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn reachable(up: bool) -> &'static str {
    if up { "reachable" } else { "unreachable" }
}

/// Binds the separate metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Answers the endpoints on the API's port (plain GETs that are not gRPC); passes
/// everything else on.
#[derive(Clone)]
pub struct OpsEndpoints {
    ops: Option<Ops>,
}

impl OpsEndpoints {
    /// `None`: the endpoints live elsewhere, and the API port does not answer them.
    pub fn new(ops: Option<Ops>) -> Self {
        Self { ops }
    }
}

impl Endpoints for OpsEndpoints {
    fn answer(&self, request: &Request<()>) -> Option<BoxFuture<'static, Response<Body>>> {
        let ops = self.ops.as_ref()?;
        if request.method() != Method::GET || !Ops::answers(request.uri().path()) {
            return None;
        }
        let (ops, path) = (ops.clone(), request.uri().path().to_owned());
        Some(Box::pin(async move {
            let response = ops
                .respond(&path)
                .await
                .expect("the path is one of the endpoints");
            response.map(Body::new)
        }))
    }
}
