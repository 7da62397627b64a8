//! Health. `grpc.health.v1.Health` says NOT_SERVING until the database answers, the
//! schema is migrated and the change hub runs, then follows the database (what every
//! RPC needs; the inbox works without the engine). `/readyz` is stricter: ready only
//! while the database and the engine both answer. Both are kept current by a
//! periodic check (`RAMP_READINESS_INTERVAL_MS`). The background work that needs the
//! schema (hub, reconciliation, delivery, retention) starts from here.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;

use crate::api::{AdminApi, FormApi, ProcessApi};
use crate::camunda::Camunda;
use crate::delivery::Dispatcher;
use crate::forms::ChangeHub;
use crate::ops::Readiness;
use crate::processes::Reconciler;
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::form_service_server::FormServiceServer;
use crate::proto::process_service_server::ProcessServiceServer;
use crate::retention::Pruner;
use crate::store::Store;

/// Reports every service (and the server as a whole, the empty name) as one.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
}

impl Health {
    pub fn new(reporter: HealthReporter) -> Self {
        Self { reporter }
    }

    pub async fn set(&self, serving: bool) {
        let status = if serving {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        if serving {
            self.reporter
                .set_serving::<ProcessServiceServer<ProcessApi>>()
                .await;
            self.reporter
                .set_serving::<FormServiceServer<FormApi>>()
                .await;
            self.reporter
                .set_serving::<AdminServiceServer<AdminApi>>()
                .await;
        } else {
            self.reporter
                .set_not_serving::<ProcessServiceServer<ProcessApi>>()
                .await;
            self.reporter
                .set_not_serving::<FormServiceServer<FormApi>>()
                .await;
            self.reporter
                .set_not_serving::<AdminServiceServer<AdminApi>>()
                .await;
        }
    }
}

/// What the watch reports on and starts.
pub struct Watched {
    pub health: Health,
    pub readiness: Readiness,
    pub store: Store,
    pub camunda: Camunda,
    pub hub: ChangeHub,
    pub reconciler: Reconciler,
    pub dispatcher: Dispatcher,
    pub pruner: Pruner,
    /// Time between checks.
    pub interval: Duration,
}

/// Migrates the schema (retrying until the database answers), then checks the
/// database and the engine on an interval and reports the result, until shutdown.
pub async fn watch(watched: Watched, shutdown: CancellationToken) {
    let Watched {
        health,
        readiness,
        store,
        camunda,
        hub,
        reconciler,
        dispatcher,
        pruner,
        interval,
    } = watched;
    let mut backoff = Duration::from_millis(200);
    loop {
        // The change hub starts from the log's end once the schema is there.
        let ready = match store.migrate().await {
            Ok(()) => hub.start(shutdown.clone()).await,
            Err(error) => Err(error),
        };
        match ready {
            Ok(()) => {
                tokio::spawn(reconciler.run(shutdown.clone()));
                tokio::spawn(dispatcher.run(shutdown.clone()));
                tokio::spawn(pruner.run(shutdown.clone()));
                break;
            }
            Err(error) => {
                tracing::warn!(error = %error, retry_in_ms = backoff.as_millis() as u64, "database not ready");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    let mut serving = None;
    let mut engine_was = None;
    loop {
        let (database, engine) = tokio::join!(store.ping(), camunda.version());
        let up = database.is_ok();
        if serving != Some(up) {
            if up {
                tracing::info!("database reachable: serving");
            } else {
                tracing::warn!("database unreachable: not serving");
            }
            health.set(up).await;
            serving = Some(up);
        }
        let engine_up = engine.is_ok();
        if engine_was != Some(engine_up) {
            match &engine {
                Ok(version) => tracing::info!(%version, "engine reachable"),
                Err(error) => tracing::warn!(%error, "engine unreachable: not ready"),
            }
            engine_was = Some(engine_up);
        }
        readiness.set(up, engine_up);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    readiness.set(false, false);
    health.set(false).await;
}
