//! Prometheus metrics (`prometheus-client`, OpenMetrics text): one registry per
//! `ramp serve` (or `ramp worker`) process, served at `GET /metrics`.
//!
//! Recording stays off the hot path's critical costs: every RPC method known at
//! start gets its own slot in a map that is never written again; a slot resolves its
//! histogram and its counter per code once, on first use, so an RPC records with
//! atomic adds only (no lock is taken after a method's first call with a code). Backlog gauges are read from the database
//! when Prometheus scrapes, with a few cheap queries, never per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use prost::Message;

use crate::delivery::DeliveryState;
use crate::store::{self, Store};

/// The content type of the OpenMetrics text format, which Prometheus reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The method label of requests whose path names no known RPC, so that arbitrary
/// paths cannot create series.
const OTHER_METHOD: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: Arc<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: Arc<String>,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineErrorLabels {
    operation: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// gRPC status codes by number, as labels.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// One RPC method's series, resolved once.
pub struct MethodMetrics {
    method: Arc<String>,
    duration: OnceLock<Histogram>,
    durations: Family<MethodLabels, Histogram>,
    codes: [OnceLock<Counter>; 17],
    family: Family<RpcLabels, Counter>,
}

impl MethodMetrics {
    /// Records one finished RPC: its gRPC code (`None`: the client went away
    /// before a status, counted as CANCELLED) and how long it took.
    pub fn record(&self, code: Option<i32>, elapsed: Duration) {
        let index = code.map_or(1, |c| if (0..17).contains(&c) { c as usize } else { 2 });
        self.codes[index]
            .get_or_init(|| {
                self.family.get_or_create_owned(&RpcLabels {
                    method: self.method.clone(),
                    code: CODES[index],
                })
            })
            .inc();
        self.duration
            .get_or_init(|| {
                self.durations.get_or_create_owned(&MethodLabels {
                    method: self.method.clone(),
                })
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// Which process the registry describes: the server exposes everything but worker
/// series, the worker only its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server,
    Worker,
}

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    methods: HashMap<String, Arc<MethodMetrics>>,
    other: Arc<MethodMetrics>,
    open_streams: Gauge,
    change_log_entries: Gauge,
    change_log_oldest_age: FloatGauge,
    outbox_entries: Family<StateLabels, Gauge>,
    outbox_oldest_pending_age: FloatGauge,
    deliveries: Family<OutcomeLabels, Counter>,
    engine_duration: Family<OperationLabels, Histogram>,
    engine_errors: Family<EngineErrorLabels, Counter>,
    worker_tasks: Family<OutcomeLabels, Counter>,
    reconcile_passes: Family<OutcomeLabels, Counter>,
    reconcile_lag: FloatGauge,
    /// When the last reconciliation pass succeeded (ms since the epoch); the start
    /// time until then, so a replica that never succeeds shows a growing lag.
    reconcile_last_ok_ms: AtomicU64,
    pruned: Family<TableLabels, Counter>,
    scrape_errors: Counter,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~32 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The full paths (`/package.Service/Method`) of the RPCs `ramp serve` answers.
fn known_methods() -> Vec<String> {
    let mut methods = Vec::new();
    if let Ok(set) = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET) {
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let service_name = service.name.unwrap_or_default();
                for method in service.method {
                    methods.push(format!(
                        "/{package}.{service_name}/{}",
                        method.name.unwrap_or_default()
                    ));
                }
            }
        }
    }
    methods.extend(
        [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]
        .map(str::to_owned),
    );
    methods
}

impl Metrics {
    pub fn new(role: Role) -> Self {
        let mut registry = Registry::default();
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        let rpc_duration =
            Family::<MethodLabels, Histogram>::new_with_constructor(latency_histogram as _);
        let open_streams = Gauge::default();
        let change_log_entries = Gauge::default();
        let change_log_oldest_age = FloatGauge::default();
        let outbox_entries = Family::<StateLabels, Gauge>::default();
        let outbox_oldest_pending_age = FloatGauge::default();
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        let engine_duration =
            Family::<OperationLabels, Histogram>::new_with_constructor(latency_histogram as _);
        let engine_errors = Family::<EngineErrorLabels, Counter>::default();
        let worker_tasks = Family::<OutcomeLabels, Counter>::default();
        let reconcile_passes = Family::<OutcomeLabels, Counter>::default();
        let reconcile_lag = FloatGauge::default();
        let pruned = Family::<TableLabels, Counter>::default();
        let scrape_errors = Counter::default();

        if role == Role::Server {
            registry.register(
                "ramp_rpc_requests",
                "RPCs finished, by method and gRPC status code",
                rpc_requests.clone(),
            );
            registry.register(
                "ramp_rpc_duration_seconds",
                "RPC latency, from the request to the end of the response (streams: their lifetime)",
                rpc_duration.clone(),
            );
            registry.register(
                "ramp_open_streams",
                "PendingForms streams open on this replica",
                open_streams.clone(),
            );
            registry.register(
                "ramp_change_log_entries",
                "rows in the form change log (PostgreSQL's live-row estimate)",
                change_log_entries.clone(),
            );
            registry.register(
                "ramp_change_log_oldest_age_seconds",
                "age of the oldest change still in the log (retention keeps it below RAMP_CHANGE_RETENTION_SECS plus a prune interval)",
                change_log_oldest_age.clone(),
            );
            registry.register(
                "ramp_outbox_entries",
                "correlation outbox rows by state (pending, failed, undeliverable)",
                outbox_entries.clone(),
            );
            registry.register(
                "ramp_outbox_oldest_pending_age_seconds",
                "age of the oldest submission still waiting for delivery (0 when none waits)",
                outbox_oldest_pending_age.clone(),
            );
            registry.register(
                "ramp_deliveries",
                "delivery attempts by outcome (delivered, retry, undeliverable, failed, lease_lost)",
                deliveries.clone(),
            );
            registry.register(
                "ramp_reconcile_passes",
                "reconciliation passes by outcome (ok, error)",
                reconcile_passes.clone(),
            );
            registry.register(
                "ramp_reconcile_lag_seconds",
                "time since this replica's last successful reconciliation pass",
                reconcile_lag.clone(),
            );
            registry.register(
                "ramp_pruned_rows",
                "rows removed by retention, by table",
                pruned.clone(),
            );
            registry.register(
                "ramp_metrics_scrape_errors",
                "scrapes whose database gauges could not be read",
                scrape_errors.clone(),
            );
        }
        registry.register(
            "ramp_engine_request_duration_seconds",
            "engine REST call latency, by operation",
            engine_duration.clone(),
        );
        registry.register(
            "ramp_engine_request_errors",
            "engine REST calls that failed, by operation and error kind",
            engine_errors.clone(),
        );
        if role == Role::Worker {
            registry.register(
                "ramp_worker_tasks",
                "external tasks handled, by outcome (created, incident, transient, released)",
                worker_tasks.clone(),
            );
        }

        let method_metrics = |method: &str| {
            let method = Arc::new(method.to_owned());
            Arc::new(MethodMetrics {
                method,
                duration: OnceLock::new(),
                durations: rpc_duration.clone(),
                codes: Default::default(),
                family: rpc_requests.clone(),
            })
        };
        let (methods, other) = if role == Role::Server {
            let methods = known_methods()
                .into_iter()
                .map(|m| {
                    let metrics = method_metrics(&m);
                    (m, metrics)
                })
                .collect();
            (methods, method_metrics(OTHER_METHOD))
        } else {
            (HashMap::new(), method_metrics(OTHER_METHOD))
        };

        Self {
            inner: Arc::new(Inner {
                registry,
                methods,
                other,
                open_streams,
                change_log_entries,
                change_log_oldest_age,
                outbox_entries,
                outbox_oldest_pending_age,
                deliveries,
                engine_duration,
                engine_errors,
                worker_tasks,
                reconcile_passes,
                reconcile_lag,
                reconcile_last_ok_ms: AtomicU64::new(now_ms()),
                pruned,
                scrape_errors,
            }),
        }
    }

    /// The series of the RPC at `path`; unknown paths share one `other` set.
    pub fn method(&self, path: &str) -> Arc<MethodMetrics> {
        self.inner
            .methods
            .get(path)
            .unwrap_or(&self.inner.other)
            .clone()
    }

    pub fn delivery(&self, outcome: &'static str) {
        self.inner
            .deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn worker_task(&self, outcome: &'static str) {
        self.inner
            .worker_tasks
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn reconcile_pass(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.inner
            .reconcile_passes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        if ok {
            self.inner
                .reconcile_last_ok_ms
                .store(now_ms(), Ordering::Relaxed);
        }
    }

    pub fn pruned(&self, table: &'static str, rows: u64) {
        self.inner
            .pruned
            .get_or_create(&TableLabels { table })
            .inc_by(rows);
    }

    /// Records one engine call: `operation` is its method and path template.
    pub fn engine_call(&self, operation: &str, elapsed: Duration, error: Option<&'static str>) {
        let operation = operation.to_owned();
        self.inner
            .engine_duration
            .get_or_create(&OperationLabels {
                operation: operation.clone(),
            })
            .observe(elapsed.as_secs_f64());
        if let Some(kind) = error {
            self.inner
                .engine_errors
                .get_or_create(&EngineErrorLabels { operation, kind })
                .inc();
        }
    }

    /// Reads the gauges that come from the database (and this replica's open
    /// streams), then encodes everything.
    pub async fn scrape(&self, store: Option<&Store>, open_streams: Option<usize>) -> String {
        let inner = &self.inner;
        if let Some(open) = open_streams {
            inner.open_streams.set(open as i64);
        }
        let last_ok = inner.reconcile_last_ok_ms.load(Ordering::Relaxed);
        inner
            .reconcile_lag
            .set(now_ms().saturating_sub(last_ok) as f64 / 1000.0);
        if let Some(store) = store {
            match backlog(store).await {
                Ok((log, outbox)) => {
                    inner.change_log_entries.set(log.entries);
                    inner.change_log_oldest_age.set(log.oldest_age);
                    for (state, count) in [
                        (DeliveryState::Pending, outbox.pending),
                        (DeliveryState::Failed, outbox.failed),
                        (DeliveryState::Undeliverable, outbox.undeliverable),
                    ] {
                        inner
                            .outbox_entries
                            .get_or_create(&StateLabels {
                                state: state.as_str(),
                            })
                            .set(count);
                    }
                    inner
                        .outbox_oldest_pending_age
                        .set(outbox.oldest_pending_age);
                }
                Err(error) => {
                    inner.scrape_errors.inc();
                    tracing::warn!(%error, "metrics: cannot read the backlog from the database");
                }
            }
        }
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &inner.registry) {
            tracing::error!(%error, "metrics: cannot encode");
        }
        text
    }
}

/// What the database says of the change log and the outbox: two cheap reads on one
/// connection.
async fn backlog(
    store: &Store,
) -> Result<(store::forms::LogSize, store::deliveries::Backlog), store::StoreError> {
    let client = store.client().await?;
    Ok((
        store::forms::log_size(&client).await?,
        store::deliveries::backlog(&client).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_rpcs_have_series_of_their_own_and_unknown_paths_share_one() {
        let metrics = Metrics::new(Role::Server);
        let known = metrics.method("/ramp.v1.FormService/PendingForms");
        assert_eq!(known.method.as_str(), "/ramp.v1.FormService/PendingForms");
        let unknown = metrics.method("/evil/made-up-path");
        assert_eq!(unknown.method.as_str(), OTHER_METHOD);
        known.record(Some(0), Duration::from_millis(3));
        known.record(Some(5), Duration::from_millis(3));
        known.record(None, Duration::from_millis(3));
        known.record(Some(99), Duration::from_millis(3));
        let text = futures::executor::block_on(metrics.scrape(None, Some(2)));
        for line in [
            r#"ramp_rpc_requests_total{method="/ramp.v1.FormService/PendingForms",code="OK"} 1"#,
            r#"ramp_rpc_requests_total{method="/ramp.v1.FormService/PendingForms",code="NOT_FOUND"} 1"#,
            r#"ramp_rpc_requests_total{method="/ramp.v1.FormService/PendingForms",code="CANCELLED"} 1"#,
            r#"ramp_rpc_requests_total{method="/ramp.v1.FormService/PendingForms",code="UNKNOWN"} 1"#,
            r#"ramp_rpc_duration_seconds_count{method="/ramp.v1.FormService/PendingForms"} 4"#,
            "ramp_open_streams 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn the_worker_exposes_its_own_series_only() {
        let metrics = Metrics::new(Role::Worker);
        metrics.worker_task("created");
        let text = futures::executor::block_on(metrics.scrape(None, None));
        assert!(text.contains(r#"ramp_worker_tasks_total{outcome="created"} 1"#));
        assert!(!text.contains("ramp_rpc_requests"));
    }
}
