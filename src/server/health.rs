//! `grpc.health.v1.Health`: NOT_SERVING until the database answers, the schema is
//! migrated and the change hub runs, then kept current by a periodic check. The
//! background work that needs the schema (hub, reconciliation, delivery) starts from
//! here.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;

use crate::api::{FormApi, ProcessApi};
use crate::delivery::Dispatcher;
use crate::forms::ChangeHub;
use crate::processes::Reconciler;
use crate::proto::form_service_server::FormServiceServer;
use crate::proto::process_service_server::ProcessServiceServer;
use crate::store::Store;

/// How often readiness is re-checked once up.
const CHECK_INTERVAL: Duration = Duration::from_secs(5);

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
        } else {
            self.reporter
                .set_not_serving::<ProcessServiceServer<ProcessApi>>()
                .await;
            self.reporter
                .set_not_serving::<FormServiceServer<FormApi>>()
                .await;
        }
    }
}

/// Migrates the schema (retrying until the database answers), then checks the
/// database on an interval and reports the result, until shutdown.
pub async fn watch(
    health: Health,
    store: Store,
    hub: ChangeHub,
    reconciler: Reconciler,
    dispatcher: Dispatcher,
    shutdown: CancellationToken,
) {
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
    loop {
        let up = store.ping().await.is_ok();
        if serving != Some(up) {
            if up {
                tracing::info!("database reachable: serving");
            } else {
                tracing::warn!("database unreachable: not serving");
            }
            health.set(up).await;
            serving = Some(up);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
    }
    health.set(false).await;
}
