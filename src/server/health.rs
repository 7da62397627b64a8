//! Health. `grpc.health.v1.Health` says NOT_SERVING until the database answers, the
//! schema is migrated and the change hub runs, then follows the database (what every
//! RPC needs; the inbox works without the engine). `/readyz` is stricter: ready only
//! while the database and the engine both answer. Both are kept current by a
//! periodic check (`RAMP_READINESS_INTERVAL_MS`), one of the background tasks that
//! `supervisor` starts once the schema is migrated.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic_health::server::HealthReporter;

use crate::api::{AdminApi, FormApi, ProcessApi};
use crate::camunda::Camunda;
use crate::ops::Readiness;
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::form_service_server::FormServiceServer;
use crate::proto::process_service_server::ProcessServiceServer;
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
        for service in SERVICES {
            self.reporter.set_service_status(service, status).await;
        }
    }
}

/// The server as a whole (the empty name) and each of ramp's services.
const SERVICES: [&str; 4] = [
    "",
    <ProcessServiceServer<ProcessApi> as NamedService>::NAME,
    <FormServiceServer<FormApi> as NamedService>::NAME,
    <AdminServiceServer<AdminApi> as NamedService>::NAME,
];

/// What the health checks read and where they report.
pub struct Checks {
    pub health: Health,
    pub readiness: Readiness,
    pub store: Store,
    pub camunda: Camunda,
    /// Time between checks.
    pub interval: Duration,
}

/// Checks the database and the engine on an interval and reports the result, until
/// shutdown; then reports not serving. Runs once the schema is migrated (see
/// `supervisor`).
pub async fn watch(checks: Checks, shutdown: CancellationToken) {
    let Checks {
        health,
        readiness,
        store,
        camunda,
        interval,
    } = checks;
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
