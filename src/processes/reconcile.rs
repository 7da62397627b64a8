//! Reconciliation: brings ramp's view of processes in line with the engine, which
//! pushes nothing. One pass for all processes, on an interval, on every replica
//! (each step is idempotent, so replicas racing agree):
//! - a start whose outcome was unknown (`starting` past the grace period) is settled
//!   by business key: the instance is adopted if it exists, the reservation released
//!   if not;
//! - a start released that way is watched for an hour: an instance that carries its
//!   id and arrives late (its request was still on its way) is removed, so that the
//!   key keeps one process;
//! - processes that ended in the engine (completed, terminated, deleted behind ramp's
//!   back) stop blocking their key: the engine's history is read incrementally from
//!   a shared watermark, with an overlap against late commits; their pending forms
//!   are withdrawn;
//! - instances where an activity was cancelled or an external task deleted have
//!   their pending forms checked, and those nothing can answer any more withdrawn.
//!
//! Every time compared with the engine's history is the engine's own: a watermark
//! is the newest time seen in the engine's answers (its first value the newest the
//! engine has recorded), and it moves on in a quiet spell by time measured on a
//! monotonic clock since then, never by ramp's wall clock, which may differ from
//! the engine's by any amount.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::ProcessState;
use crate::camunda::types::HistoricProcessInstance;
use crate::camunda::{Camunda, CamundaError, engine_time};
use crate::forms::withdrawal::{PROCESS_ENDED, Withdrawals};
use crate::store::Store;
use crate::store::processes as rows;

pub use crate::camunda::parse_engine_time;

/// The watch of ended root and called instances.
const ENDED_WATCH: &str = "ended-processes";
/// The watch of cancelled (interrupted) activity instances.
const CANCELED_WATCH: &str = "canceled-activities";
/// The watch of external tasks deleted before completion.
const DELETED_WATCH: &str = "deleted-external-tasks";
/// Page size of history reads.
const PAGE: u32 = 500;
/// How long a released start is watched for an instance that arrives late.
const LATE_START_WATCH: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// Time between passes.
    pub interval: Duration,
    /// How far behind the watermark history is read again: the longest an engine
    /// transaction may take to commit what it recorded (late commits).
    pub overlap: Duration,
    /// How long a start stays `starting` before reconciliation settles it.
    pub start_grace: Duration,
}

pub struct Reconciler {
    store: Store,
    camunda: Camunda,
    withdrawals: Withdrawals,
    settings: ReconcileSettings,
    metrics: Option<crate::metrics::Metrics>,
    /// Per watch, the newest engine time this replica has seen and when it saw it
    /// (monotonic): a lower bound of the engine's clock now, however ramp's differs.
    seen: Mutex<HashMap<&'static str, (DateTime<Utc>, Instant)>>,
}

/// A finished history state as ramp's state and reason; `None` while running.
pub fn ended_state(engine_state: &str) -> Option<(ProcessState, &'static str)> {
    match engine_state {
        "COMPLETED" => Some((ProcessState::Completed, "completed in the engine")),
        "EXTERNALLY_TERMINATED" => Some((ProcessState::Terminated, "deleted in the engine")),
        "INTERNALLY_TERMINATED" => Some((ProcessState::Terminated, "terminated in the engine")),
        _ => None,
    }
}

impl Reconciler {
    pub fn new(
        store: Store,
        camunda: Camunda,
        withdrawals: Withdrawals,
        settings: ReconcileSettings,
    ) -> Self {
        Self {
            store,
            camunda,
            withdrawals,
            settings,
            metrics: None,
            seen: Mutex::default(),
        }
    }

    /// Counts passes and keeps the lag gauge's clock in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs passes until shutdown. Errors are logged and the next pass tries again.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let result = self.pass().await;
            if let Some(metrics) = &self.metrics {
                metrics.reconcile_pass(result.is_ok());
            }
            if let Err(error) = result {
                tracing::warn!(%error, "reconciliation pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.settings.interval) => {}
            }
        }
    }

    pub async fn pass(&self) -> Result<(), super::ProcessError> {
        self.settle_starting().await?;
        self.remove_late_instances().await?;
        let ended = self.sweep_ended().await?;
        self.sweep_interrupted(&ended).await?;
        Ok(())
    }

    async fn settle_starting(&self) -> Result<(), super::ProcessError> {
        let before = Utc::now() - self.settings.start_grace;
        let stale = rows::stale_starting(&self.store.client().await?, before, 100).await?;
        for row in stale {
            let found = self.instance_of_start(&row).await?;
            let client = self.store.client().await?;
            match found {
                Some(instance) => {
                    if rows::activate(&client, row.id, &instance.id)
                        .await?
                        .is_some()
                    {
                        tracing::info!(process = %row.id, instance = %instance.id, "adopted the instance of an uncertain start");
                        if let Some((state, reason)) = ended_state(&instance.state) {
                            let ended_at = instance
                                .end_time
                                .as_deref()
                                .and_then(parse_engine_time)
                                .unwrap_or_else(Utc::now);
                            rows::end(&client, row.id, state.as_str(), reason, ended_at).await?;
                        }
                    }
                }
                None => {
                    if rows::release_uncertain(&client, row.id).await? {
                        tracing::info!(process = %row.id, business_key = %row.business_key, "released the reservation of a start that did not happen");
                    }
                }
            }
        }
        Ok(())
    }

    /// The engine instance an uncertain start created, if the engine shows one: the
    /// one carrying its process id. Starts reserved by a release that did not tag
    /// its instances (before an upgrade) are matched by business key and time, among
    /// untagged instances no other process owns.
    async fn instance_of_start(
        &self,
        row: &super::Process,
    ) -> Result<Option<HistoricProcessInstance>, super::ProcessError> {
        let tagged = self
            .camunda
            .historic_root_instances_tagged(super::PROCESS_TAG, &row.id.to_string())
            .await?;
        if let Some(instance) = tagged.into_iter().next() {
            return Ok(Some(instance));
        }
        // The reservation's age on the database's clock, counted back from the
        // engine's clock: ramp's own may differ from the engine's.
        let age = rows::database_now(&self.store.client().await?).await? - row.created_at;
        let since = engine_time(
            self.camunda.engine_now().await?
                - age
                - chrono::Duration::from_std(self.settings.overlap).unwrap_or_default(),
        );
        let candidates = self
            .camunda
            .historic_root_instances(&row.business_key, &row.definition_key, &since)
            .await?;
        let ids: Vec<String> = candidates.iter().map(|c| c.id.clone()).collect();
        let tagged: HashSet<String> = self
            .camunda
            .instances_with_variable(super::PROCESS_TAG, &ids)
            .await?
            .into_iter()
            .collect();
        let client = self.store.client().await?;
        for candidate in candidates {
            if tagged.contains(&candidate.id)
                || rows::by_engine_instance(&client, &candidate.id)
                    .await?
                    .is_some()
            {
                continue; // another start's instance
            }
            return Ok(Some(candidate));
        }
        Ok(None)
    }

    /// Instances of released starts that arrived after all: each is a second
    /// process for its key (the client was told to try again), so it is removed.
    async fn remove_late_instances(&self) -> Result<(), super::ProcessError> {
        let since = Utc::now() - chrono::Duration::from_std(LATE_START_WATCH).unwrap_or_default();
        let released = {
            let client = self.store.client().await?;
            rows::forget_released(&client, since).await?;
            rows::released_since(&client, since, 1000).await?
        };
        for process in released {
            let late = self
                .camunda
                .running_instances_tagged(super::PROCESS_TAG, &process.to_string())
                .await?;
            for instance in late {
                tracing::warn!(%process, instance = %instance.id, "an instance of a released start arrived late: removing it");
                self.camunda
                    .delete_process_instance(&instance.id, true)
                    .await?;
            }
        }
        Ok(())
    }

    /// Processes that ended: their state, and the withdrawal of their forms (root
    /// and called instances alike). Returns the instances seen ended.
    async fn sweep_ended(&self) -> Result<HashSet<String>, super::ProcessError> {
        let Some(since) = self
            .since(ENDED_WATCH, self.camunda.latest_end_time())
            .await?
        else {
            return Ok(HashSet::new()); // nothing has ended in the engine yet
        };
        let mut first = 0;
        let mut newest: Option<DateTime<Utc>> = None;
        let mut seen = HashSet::new();
        loop {
            let page = match self
                .camunda
                .historic_process_instances_finished_after(&since, first, PAGE)
                .await
            {
                Ok(page) => page,
                Err(CamundaError::NotFound(_)) => Vec::new(),
                Err(error) => return Err(error.into()),
            };
            let ids: Vec<String> = page.iter().map(|p| p.id.clone()).collect();
            let client = self.store.client().await?;
            let active = rows::active_among(&client, &ids).await?;
            for row in active {
                let Some(ended) = page
                    .iter()
                    .find(|p| Some(&p.id) == row.engine_instance_id.as_ref())
                else {
                    continue;
                };
                let Some((state, reason)) = ended_state(&ended.state) else {
                    continue;
                };
                let ended_at = ended
                    .end_time
                    .as_deref()
                    .and_then(parse_engine_time)
                    .unwrap_or_else(Utc::now);
                if rows::end(&client, row.id, state.as_str(), reason, ended_at)
                    .await?
                    .is_some()
                {
                    tracing::info!(process = %row.id, state = state.as_str(), "process ended in the engine");
                }
            }
            for ended in &page {
                if let Some(time) = ended.end_time.as_deref().and_then(parse_engine_time) {
                    newest = Some(newest.map_or(time, |n| n.max(time)));
                }
            }
            self.withdrawals
                .instances_ended(&ids, PROCESS_ENDED)
                .await?;
            seen.extend(ids);
            if page.len() < PAGE as usize {
                break;
            }
            first += PAGE;
        }
        self.advance(ENDED_WATCH, newest).await?;
        Ok(seen)
    }

    /// Where to read a watch's history from, as an engine time: its watermark less
    /// the overlap. A watch without a watermark starts at the newest time of its
    /// kind the engine has recorded (`latest`, only asked then); `None` when the
    /// engine has recorded none.
    async fn since(
        &self,
        watch: &'static str,
        latest: impl Future<Output = Result<Option<String>, CamundaError>>,
    ) -> Result<Option<String>, super::ProcessError> {
        let overlap = chrono::Duration::from_std(self.settings.overlap).unwrap_or_default();
        let mark = match rows::watermark(&self.store.client().await?, watch).await? {
            Some(mark) => mark,
            None => match latest.await?.as_deref().and_then(parse_engine_time) {
                Some(latest) => {
                    self.saw(watch, latest);
                    latest
                }
                None => return Ok(None),
            },
        };
        Ok(Some(engine_time(mark - overlap)))
    }

    /// Notes an engine time seen for `watch`.
    fn saw(&self, watch: &'static str, time: DateTime<Utc>) {
        let mut seen = self.seen.lock().expect("the seen times");
        match seen.get(watch) {
            Some((newest, _)) if *newest >= time => {}
            _ => {
                seen.insert(watch, (time, Instant::now()));
            }
        }
    }

    /// Moves a watch to the newest engine time a pass saw. A pass that saw nothing
    /// new moves it as far as the engine's clock has surely gone since this replica
    /// last saw one of its times (that time plus the monotonic time elapsed), less
    /// the overlap, so that a quiet watch does not read the same history for ever
    /// and what commits late is still read.
    async fn advance(
        &self,
        watch: &'static str,
        newest: Option<DateTime<Utc>>,
    ) -> Result<(), super::ProcessError> {
        let to = match newest {
            Some(newest) => {
                self.saw(watch, newest);
                newest
            }
            None => {
                let seen = self
                    .seen
                    .lock()
                    .expect("the seen times")
                    .get(watch)
                    .copied();
                let Some((time, at)) = seen else {
                    return Ok(());
                };
                let overlap = chrono::Duration::from_std(self.settings.overlap).unwrap_or_default();
                let elapsed = chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
                if elapsed <= overlap {
                    return Ok(());
                }
                time + elapsed - overlap
            }
        };
        rows::advance_watermark(&self.store.client().await?, watch, to).await?;
        Ok(())
    }

    /// Instances where an activity was cancelled (a boundary event, a terminate end
    /// event) or an external task deleted before completion: their pending forms
    /// are checked, and those that nothing can answer any more are withdrawn.
    async fn sweep_interrupted(&self, ended: &HashSet<String>) -> Result<(), super::ProcessError> {
        let mut affected = HashSet::new();
        for watch in [CANCELED_WATCH, DELETED_WATCH] {
            let since = if watch == CANCELED_WATCH {
                self.since(watch, self.camunda.latest_cancellation_time())
                    .await?
            } else {
                self.since(watch, self.camunda.latest_external_task_deletion_time())
                    .await?
            };
            let Some(since) = since else {
                continue; // nothing of the kind recorded yet
            };
            let mut newest: Option<DateTime<Utc>> = None;
            let mut first = 0;
            loop {
                let page: Vec<(String, Option<String>)> = if watch == CANCELED_WATCH {
                    self.camunda
                        .canceled_activity_instances_after(&since, first, PAGE)
                        .await?
                        .into_iter()
                        .map(|a| (a.process_instance_id, a.end_time))
                        .collect()
                } else {
                    // All of it at once (the engine cannot filter the log by time).
                    self.camunda
                        .external_task_deletions_after(&since)
                        .await?
                        .into_iter()
                        .map(|l| (l.process_instance_id, Some(l.timestamp)))
                        .collect()
                };
                for (instance, time) in &page {
                    if let Some(time) = time.as_deref().and_then(parse_engine_time) {
                        newest = Some(newest.map_or(time, |n| n.max(time)));
                    }
                    if !ended.contains(instance) {
                        affected.insert(instance.clone());
                    }
                }
                if watch == DELETED_WATCH || page.len() < PAGE as usize {
                    break;
                }
                first += PAGE;
            }
            self.advance(watch, newest).await?;
        }
        let affected: Vec<String> = affected.into_iter().collect();
        self.withdrawals.instances_interrupted(&affected).await?;
        Ok(())
    }
}
