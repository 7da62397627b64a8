//! `ramp worker` as a command: its checked settings in, a worker that runs until the
//! process is asked to stop.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use super::{InvalidServer, Topic, TopicError, Worker, WorkerSettings};
use crate::camunda::Camunda;
use crate::config::WorkerConfig;
use crate::metrics::{Metrics, Role};
use crate::ops::Ops;

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error("RAMP_TOKEN is empty: give the worker a token with the ramp-worker role")]
    EmptyToken,
    #[error(transparent)]
    Server(#[from] InvalidServer),
    #[error("RAMP_WORKER_METRICS_LISTEN: cannot listen on {addr}: {source}")]
    MetricsListener {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs the worker until SIGINT or SIGTERM; then it finishes or gives back the
/// tasks it holds, and returns.
pub async fn run(config: WorkerConfig) -> Result<(), WorkerError> {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        crate::signal::stop_requested().await;
        tracing::info!("stopping the worker");
        stop.cancel();
    });
    run_until(config, shutdown).await
}

/// Runs the worker until `shutdown` is cancelled.
pub async fn run_until(
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let WorkerConfig {
        mut camunda,
        options,
        ..
    } = config;
    let topics = options
        .worker_topics
        .iter()
        .map(|t| Topic::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let token = options
        .token
        .as_ref()
        .map(|t| t.expose_secret().trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or(WorkerError::EmptyToken)?;
    // The client's own timeout covers one call; the long poll adds its wait.
    camunda.timeout = camunda.timeout.max(Duration::from_secs(5));
    let metrics = Metrics::new(Role::Worker);
    let worker = Worker::new(
        Camunda::new(camunda).with_metrics(metrics.clone()),
        WorkerSettings {
            server: options.server,
            token: token.into(),
            topics,
            definition_keys: options.worker_definition_keys,
            long_poll: Duration::from_millis(options.worker_long_poll_ms),
            lock: Duration::from_millis(options.worker_lock_ms),
            max_in_flight: options.worker_max_in_flight,
            retries: options.worker_retries,
            retry_timeout: Duration::from_millis(options.worker_retry_timeout_ms),
        },
    )?
    .with_metrics(metrics.clone());
    if let Some(addr) = options.worker_metrics_listen {
        let (listener, bound) = crate::ops::bind(addr)
            .await
            .map_err(|source| WorkerError::MetricsListener { addr, source })?;
        tokio::spawn(Ops::metrics_only(metrics).serve(listener, shutdown.clone()));
        tracing::info!(addr = %bound, "worker metrics listening");
    }
    Arc::new(worker).run(shutdown).await;
    Ok(())
}
