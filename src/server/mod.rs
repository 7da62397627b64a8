//! `ramp serve`: builds the application from its configuration and serves native
//! gRPC (HTTP/2), gRPC-web (HTTP/1.1 and HTTP/2), health and reflection on one port,
//! with `/metrics`, `/livez` and `/readyz` there too (or on `RAMP_METRICS_LISTEN`).
//!
//! `Server::build` binds the listeners and wires the parts; `Server::run` serves and
//! starts the background tasks, which `supervisor` starts, watches and stops;
//! `Application::start` does both. The plain-HTTP steps in front of the gRPC
//! services are `middleware::Middleware`s, stacked in `Server::build`.

mod connections;
mod health;
mod shutdown;
mod supervisor;
mod unreadable;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::{HeaderName, Method};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};
use tower::util::MapResponseLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::admin::Admin;
use crate::api::{AdminApi, FormApi, ProcessApi};
use crate::auth::{AuthMode, Authentication, Authenticator};
use crate::camunda::Camunda;
use crate::config::{Config, ConfigError};
use crate::delivery::Dispatcher;
use crate::forms::schema::Schemas;
use crate::forms::withdrawal::Withdrawals;
use crate::forms::{ChangeHub, Forms};
use crate::metrics::{Metrics, Role};
use crate::middleware::MiddlewareLayer;
use crate::notify::Notifier;
use crate::ops::{Ops, OpsEndpoints, Readiness};
use crate::processes::definitions::Definitions;
use crate::processes::{Processes, Reconciler};
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::form_service_server::FormServiceServer;
use crate::proto::process_service_server::ProcessServiceServer;
use crate::retention::Pruner;
use crate::store::Store;
use crate::telemetry::RpcTrace;
use crate::usertasks::UserTaskPoller;
pub use connections::ConnectionLimits;
use health::Checks;
pub use health::Health;
use shutdown::StreamShutdown;
use supervisor::Background;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("notifications: {0}")]
    Notify(String),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A server built from its configuration: its listeners bound and its parts wired,
/// nothing running yet. `run` starts it.
pub struct Server {
    local_addr: SocketAddr,
    tls: bool,
    metrics_addr: Option<SocketAddr>,
    hub: ChangeHub,
    forms: Forms,
    shutdown: CancellationToken,
    background: Background,
    serve: BoxFuture<'static, Result<(), ServeError>>,
}

/// A running server: its address, and the means to stop it.
pub struct Application {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    hub: ChangeHub,
    forms: Forms,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServeError>>,
}

/// How long a client may stay silent before keepalive gives up on it.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Headers a browser may send with gRPC-web calls.
const CORS_ALLOW_HEADERS: [&str; 7] = [
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "authorization",
    "connect-protocol-version",
    "x-request-id",
];

/// The unsigned identity headers of `RAMP_AUTH=dev`, allowed only in that mode.
const CORS_DEV_HEADERS: [&str; 3] = ["x-ramp-user", "x-ramp-roles", "x-ramp-groups"];

/// Headers a browser's script may read from responses: the gRPC status travels in
/// them when a call fails before any message.
const CORS_EXPOSE_HEADERS: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
];

/// The parts of the application the API and the background tasks share.
struct Parts {
    store: Store,
    hub: ChangeHub,
    processes: Processes,
    definitions: Definitions,
    forms: Forms,
    admin: Admin,
    background: Background,
    readiness: Readiness,
}

impl Parts {
    /// Wires the parts together; nothing runs yet. The database need not be up.
    fn wire(
        config: &Config,
        store: Store,
        camunda: Camunda,
        metrics: &Metrics,
        health: Health,
    ) -> Result<Self, ServeError> {
        let readiness = Readiness::default();
        let hub = ChangeHub::new(store.clone(), config.hub());
        let withdrawals = Withdrawals::new(store.clone(), camunda.clone(), hub.clone());
        let processes = Processes::new(store.clone(), camunda.clone(), withdrawals.clone());
        let dispatcher = Dispatcher::new(store.clone(), camunda.clone(), config.delivery())
            .with_metrics(metrics.clone())
            .with_hub(hub.clone());
        let definitions = Definitions::new(camunda.clone());
        let forms = Forms::new(
            store.clone(),
            Arc::new(Schemas::new(store.clone(), camunda.clone())),
            definitions.clone(),
            hub.clone(),
            dispatcher.clone(),
            config.stream(),
        );
        let reconciler = Reconciler::new(
            store.clone(),
            camunda.clone(),
            withdrawals,
            config.reconcile(),
        )
        .with_metrics(metrics.clone());
        // Off unless a channel is configured; then it only prunes.
        let notifier = Notifier::new(store.clone(), config.notify())
            .map_err(|e| ServeError::Notify(e.to_string()))?;
        let pruner = Pruner::new(store.clone(), config.retention()).with_metrics(metrics.clone());
        let admin = Admin::new(
            store.clone(),
            forms.clone(),
            processes.clone(),
            dispatcher.clone(),
        );
        let settings = config.user_tasks();
        let user_tasks = settings
            .enabled
            .then(|| UserTaskPoller::new(store.clone(), camunda.clone(), forms.clone(), settings));
        let background = Background {
            ops_listener: None,
            store: store.clone(),
            hub: hub.clone(),
            notifier,
            reconciler,
            dispatcher,
            pruner,
            user_tasks,
            checks: Checks {
                health,
                readiness: readiness.clone(),
                store: store.clone(),
                camunda,
                interval: config.readiness_interval(),
            },
        };
        Ok(Self {
            store,
            hub,
            processes,
            definitions,
            forms,
            admin,
            background,
            readiness,
        })
    }
}

impl Server {
    /// Binds the listeners (port 0 picks a free one) and wires the application.
    /// The database need not be up: once running, health says NOT_SERVING until it
    /// answers and the schema is migrated.
    pub async fn build(config: Config) -> Result<Self, ServeError> {
        let database_url = config.database_url()?;
        let metrics = Metrics::new(Role::Server);
        let camunda = Camunda::new(config.camunda()?).with_metrics(metrics.clone());
        let authenticator =
            Arc::new(Authenticator::new(config.authentication()?).map_err(ConfigError::from)?);
        let (listener, local_addr) = bind(config.listen).await?;
        let incoming = connections::guard(
            TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(config.http2_keepalive())),
            config.connection_limits(),
        );
        let store = Store::new(
            database_url,
            config.database_pool_size,
            config.database_timeout(),
        )?;
        let shutdown = CancellationToken::new();

        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = Health::new(reporter);
        health.set(false).await;
        let parts = Parts::wire(&config, store, camunda, &metrics, health)?;

        // The operator's endpoints: on their own listener when configured, else on
        // the API's port.
        let ops = Ops::server(
            metrics.clone(),
            parts.store.clone(),
            parts.hub.clone(),
            parts.readiness.clone(),
        );
        let (metrics_addr, ops_listener, ops_on_api_port) = match config.metrics_listen {
            Some(addr) => {
                let (listener, bound) = bind(addr).await?;
                (Some(bound), Some((ops, listener)), None)
            }
            None => (None, None, Some(ops)),
        };

        let routes = add_services(&config, &parts, Routes::new(health_service))?;
        // Outermost first: every request counts as its connection's activity and has
        // its headers measured; the operator's endpoints and the web UI's files (plain
        // GETs) are answered before anything else; CORS answers preflights; gRPC-web is
        // translated to gRPC before tracing, so every RPC is logged the same way;
        // authentication is innermost, so its refusals are logged and cut like any
        // other answer.
        let router = transport(&config)?
            .layer(MiddlewareLayer::new(connections::RequestTracking::new(
                config.max_header_bytes,
            )))
            .layer(MiddlewareLayer::new(OpsEndpoints::new(ops_on_api_port)))
            .layer(MiddlewareLayer::new(web::WebUi::new(
                config.web_dir.clone(),
            )))
            .layer(cors_layer(&config.cors_origins, config.auth))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(MiddlewareLayer::new(RpcTrace::new(metrics)))
            // Inside tracing, so that metrics count what the client is told.
            .layer(MapResponseLayer::new(unreadable::readable_status))
            .layer(MiddlewareLayer::new(StreamShutdown::new(shutdown.clone())))
            .layer(MiddlewareLayer::new(Authentication::new(authenticator)))
            .add_routes(routes);
        let mut background = parts.background;
        background.ops_listener = ops_listener;

        let grace = config.shutdown_grace();
        let signal = shutdown.clone();
        let serve = Box::pin(async move {
            let serve =
                router.serve_with_incoming_shutdown(incoming, signal.clone().cancelled_owned());
            tokio::pin!(serve);
            tokio::select! {
                result = &mut serve => result.map_err(ServeError::from),
                _ = async { signal.cancelled().await; tokio::time::sleep(grace).await } => {
                    tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace ran out; closing open connections");
                    Ok(())
                }
            }
        });

        Ok(Self {
            local_addr,
            tls: config.tls_cert.is_some(),
            metrics_addr,
            hub: parts.hub,
            forms: parts.forms,
            shutdown,
            background,
            serve,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts serving, the operator's listener (if any) and the background tasks.
    pub fn run(self) -> Application {
        if let Some(addr) = self.metrics_addr {
            tracing::info!(%addr, "metrics and health endpoints listening");
        }
        tokio::spawn(self.background.run(self.shutdown.clone()));
        let task = tokio::spawn(self.serve);
        tracing::info!(addr = %self.local_addr, tls = self.tls, "listening");
        Application {
            local_addr: self.local_addr,
            metrics_addr: self.metrics_addr,
            hub: self.hub,
            forms: self.forms,
            shutdown: self.shutdown,
            task,
        }
    }
}

impl Application {
    /// Builds the server (see `Server::build`) and runs it in the background.
    pub async fn start(config: Config) -> Result<Self, ServeError> {
        Ok(Server::build(config).await?.run())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics`, `/livez` and `/readyz` are served when `RAMP_METRICS_LISTEN`
    /// is set (`None`: on the API's port).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// This replica's change hub (its open streams).
    pub fn hub(&self) -> &ChangeHub {
        &self.hub
    }

    /// This replica's form tasks (what the poller of user tasks writes through).
    pub fn forms(&self) -> &Forms {
        &self.forms
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Asks the server to stop: open streams end with UNAVAILABLE, then the
    /// connections drain.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the server has stopped.
    pub async fn stopped(self) -> Result<(), ServeError> {
        match self.task.await {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}

/// Binds a listener; port 0 picks a free one.
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    crate::ops::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// The gRPC services: ramp's own, and reflection of them and of health (which
/// `routes` holds already).
fn add_services(config: &Config, parts: &Parts, routes: Routes) -> Result<Routes, ServeError> {
    // google.rpc types are registered so that grpcurl can show error details.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let max_message = config.max_message_bytes;
    let process_service = ProcessServiceServer::new(ProcessApi::new(
        parts.processes.clone(),
        parts.definitions.clone(),
        config.startable_definitions.clone(),
    ))
    .max_decoding_message_size(max_message);
    let form_service = FormServiceServer::new(FormApi::new(parts.forms.clone()))
        .max_decoding_message_size(max_message);
    let admin_service = AdminServiceServer::new(AdminApi::new(parts.admin.clone()))
        .max_decoding_message_size(max_message);
    Ok(routes
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(process_service)
        .add_service(form_service)
        .add_service(admin_service))
}

/// The HTTP/2 and HTTP/1.1 transport's settings, and TLS when configured.
fn transport(config: &Config) -> Result<tonic::transport::Server, ServeError> {
    // Validated to at most 256 KiB.
    let header_limit = u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX);
    let builder = tonic::transport::Server::builder()
        .accept_http1(true)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(config.http2_keepalive()))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        // One header limit for both protocols: HTTP/2 announces it in its settings,
        // the connection guard applies it to HTTP/1.1.
        .http2_max_header_list_size(header_limit)
        .max_concurrent_streams(config.max_concurrent_streams);
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(builder);
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| ServeError::Tls(format!("{}: {e}", path.display())))
    };
    builder
        .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?)))
        .map_err(|e| ServeError::Tls(e.to_string()))
}

fn cors_layer(origins: &[String], auth: AuthMode) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    let mut allow_headers: Vec<HeaderName> = CORS_ALLOW_HEADERS
        .iter()
        .map(|h| HeaderName::from_static(h))
        .collect();
    if auth == AuthMode::Dev {
        allow_headers.extend(CORS_DEV_HEADERS.map(HeaderName::from_static));
    }
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers(allow_headers)
        .expose_headers(CORS_EXPOSE_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(24 * 60 * 60))
}
