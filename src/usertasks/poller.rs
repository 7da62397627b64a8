//! The loop that reads the engine's user task changes while this replica holds the
//! lease, and what it remembers between reads.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::UserTaskSettings;
use crate::camunda::types::{HistoricProcessInstance, IdentityLink, Task};
use crate::camunda::variables::{TypedValue, from_engine};
use crate::camunda::{Camunda, CamundaError};
use crate::forms::{EngineUserTask, FormError, Forms, UserTaskEnd};
use crate::store::user_task_watch::{self as watch, WatchLease};
use crate::store::{Store, StoreError};

/// Tasks per page of every engine query.
const PAGE: u32 = 200;

/// Changed tasks whose identity links are read before they are learned in order.
const LINKS_PER_BATCH: usize = 32;

/// Identity link queries in flight at once.
const LINKS_AT_ONCE: usize = 4;

/// Why a read stopped; the watermark stays where it was and the next tick reads
/// again.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Engine(#[from] CamundaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Forms(#[from] FormError),
    /// Another replica took the lease over during the read.
    #[error("the lease passed to another replica")]
    LeaseLost,
}

/// What a task's process instance says of it: the same for all its tasks.
#[derive(Clone, Debug)]
struct Instance {
    business_key: Option<String>,
    root_process_instance_id: String,
    process_definition_key: Option<String>,
}

/// Reads the engine's user tasks into the inbox while it holds the lease.
pub struct UserTaskPoller {
    store: Store,
    camunda: Camunda,
    forms: Forms,
    settings: UserTaskSettings,
    /// This replica, as the lease names it.
    owner: Uuid,
    /// The generation of the lease the memory below was built under.
    generation: Option<i64>,
    /// When the lease was last taken or renewed.
    renewed: Instant,
    /// Open tasks read (or held pending by ramp) under this lease: id → the engine
    /// time of the change last learned (none: held pending, not read yet). A task
    /// read again with the same time is skipped; one not here is seen first, and
    /// only then are its form variables read.
    seen: HashMap<String, Option<DateTime<Utc>>>,
    /// Ended tasks whose end lies inside the overlap: id → end time.
    ended: HashMap<String, DateTime<Utc>>,
    /// Resolved forms by (definition id, task definition key), until the next
    /// full read.
    forms_by_task: HashMap<(String, String), Option<(String, Value)>>,
    /// Process instances by id, until the next full read.
    instances: HashMap<String, Instance>,
}

impl UserTaskPoller {
    pub fn new(store: Store, camunda: Camunda, forms: Forms, settings: UserTaskSettings) -> Self {
        Self {
            store,
            camunda,
            forms,
            settings,
            owner: Uuid::now_v7(),
            generation: None,
            renewed: Instant::now(),
            seen: HashMap::new(),
            ended: HashMap::new(),
            forms_by_task: HashMap::new(),
            instances: HashMap::new(),
        }
    }

    /// Reads every `poll` until shutdown, then gives the lease up.
    pub async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(
            owner = %self.owner,
            poll_ms = self.settings.poll.as_millis() as u64,
            "reading the engine's user tasks while this replica holds the lease"
        );
        let mut failures = 0u32;
        loop {
            match self.tick().await {
                Ok(_) => failures = 0,
                Err(PollError::LeaseLost) => {
                    tracing::info!(owner = %self.owner, "the user task lease passed to another replica");
                    failures = 0;
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, failures, "reading the engine's user tasks failed; trying again");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause(self.settings.poll, failures)) => {}
            }
        }
        if self.generation.is_some() {
            match self.store.client().await {
                Ok(client) => {
                    if let Err(error) = watch::release(&client, self.owner).await {
                        tracing::warn!(%error, "the user task lease could not be given up");
                    }
                }
                Err(error) => tracing::warn!(%error, "the user task lease could not be given up"),
            }
        }
    }

    /// One read, if this replica holds (or can take) the lease. Answers whether it
    /// held it.
    pub async fn tick(&mut self) -> Result<bool, PollError> {
        let Some(lease) = self.hold().await? else {
            return Ok(false);
        };
        let taken = self.generation != Some(lease.generation);
        if taken {
            tracing::info!(owner = %self.owner, generation = lease.generation, "took the user task lease");
            self.forget();
            self.generation = Some(lease.generation);
        }
        match lease.watermark {
            Some(watermark) if !taken && !lease.resync_due => {
                self.read_changes(watermark).await?;
            }
            _ => self.read_all().await?,
        }
        Ok(true)
    }

    /// Takes or renews the lease, noting when.
    async fn hold(&mut self) -> Result<Option<WatchLease>, PollError> {
        let client = self.store.client().await?;
        let lease = watch::take_or_renew(
            &client,
            self.owner,
            self.settings.lease,
            self.settings.resync,
        )
        .await?;
        self.renewed = Instant::now();
        Ok(lease)
    }

    /// Within a long read: renews the lease once a third of it has passed; fails
    /// when it changed hands.
    async fn keep_lease(&mut self) -> Result<(), PollError> {
        if self.renewed.elapsed() < self.settings.lease / 3 {
            return Ok(());
        }
        match self.hold().await? {
            Some(lease) if Some(lease.generation) == self.generation => Ok(()),
            _ => Err(PollError::LeaseLost),
        }
    }

    fn forget(&mut self) {
        self.seen.clear();
        self.ended.clear();
        self.forms_by_task.clear();
        self.instances.clear();
    }

    /// A full read: every open task is learned (those already read with the same
    /// time are skipped), and every task ramp holds pending that the engine no
    /// longer has is ended as history tells. The watermark becomes the engine's
    /// clock from before the read.
    async fn read_all(&mut self) -> Result<(), PollError> {
        let started = self.camunda.engine_now().await?;
        // What ramp stored is known: a task read at the time it was stored is not
        // learned again, so a take-over costs pages, not calls per task.
        let pending: HashMap<String, Option<DateTime<Utc>>> = {
            let client = self.store.client().await?;
            watch::pending_stamps(&client).await?.into_iter().collect()
        };
        for (id, stamp) in &pending {
            self.seen.entry(id.clone()).or_insert(*stamp);
        }
        self.forms_by_task.clear();
        self.instances.clear();
        let mut open = HashSet::new();
        let mut first = 0;
        loop {
            let page = self.camunda.open_tasks(first, PAGE).await?;
            let full = page.len() == PAGE as usize;
            first += PAGE;
            open.extend(page.iter().map(|t| t.id.clone()));
            let (changed, first_sight) = changed(&self.seen, page);
            self.learn(changed, &first_sight).await?;
            if !full {
                break;
            }
            self.keep_lease().await?;
        }
        // Ramp's pending ones the read did not list: gone, unless a change during
        // the read moved them between pages.
        for id in pending.keys().filter(|id| !open.contains(*id)) {
            if self.camunda.user_task(id).await?.is_some() {
                continue;
            }
            let end = match self.camunda.historic_task(id).await? {
                Some(task) if task.completed() => UserTaskEnd::Completed,
                _ => UserTaskEnd::Deleted,
            };
            self.forms.end_user_task(id, end).await?;
        }
        self.seen.retain(|id, _| open.contains(id));
        self.advance(started, true).await
    }

    /// An incremental read: the open tasks changed, and the tasks ended, after the
    /// watermark less the overlap. The watermark moves to the newest engine time
    /// read.
    async fn read_changes(&mut self, watermark: DateTime<Utc>) -> Result<(), PollError> {
        let after = watermark - self.settings.overlap;
        let mut newest = watermark;
        let mut read = Vec::new();
        let mut first = 0;
        loop {
            let page = self.camunda.tasks_updated_after(after, first, PAGE).await?;
            let full = page.len() == PAGE as usize;
            first += PAGE;
            newest = page
                .iter()
                .map(Task::changed_at)
                .fold(newest, DateTime::max);
            read.extend(page);
            if !full {
                break;
            }
        }
        let (changed, first_sight) = changed(&self.seen, read);
        self.learn(changed, &first_sight).await?;

        let mut first = 0;
        loop {
            let page = self
                .camunda
                .tasks_finished_after(after, first, PAGE)
                .await?;
            let full = page.len() == PAGE as usize;
            first += PAGE;
            for task in page {
                let Some(ended_at) = task.end_time else {
                    continue;
                };
                newest = newest.max(ended_at);
                if self.ended.contains_key(&task.id) {
                    continue;
                }
                let end = if task.completed() {
                    UserTaskEnd::Completed
                } else {
                    UserTaskEnd::Deleted
                };
                self.forms.end_user_task(&task.id, end).await?;
                self.seen.remove(&task.id);
                self.ended.insert(task.id, ended_at);
            }
            if !full {
                break;
            }
        }
        self.ended.retain(|_, ended_at| *ended_at > after);
        self.advance(newest, false).await
    }

    async fn advance(&self, watermark: DateTime<Utc>, synced: bool) -> Result<(), PollError> {
        let client = self.store.client().await?;
        let generation = self.generation.ok_or(PollError::LeaseLost)?;
        if watch::advance(&client, self.owner, generation, watermark, synced).await? {
            Ok(())
        } else {
            Err(PollError::LeaseLost)
        }
    }

    /// Learns each task: its candidates, its process instance, its form; its form
    /// variables when `first_sight` names it. A task that ends meanwhile is skipped
    /// (history tells of its end).
    async fn learn(
        &mut self,
        tasks: Vec<Task>,
        first_sight: &HashSet<String>,
    ) -> Result<(), PollError> {
        let unknown: Vec<String> = tasks
            .iter()
            .filter_map(|t| t.process_instance_id.clone())
            .filter(|id| !self.instances.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !unknown.is_empty() {
            for instance in self.camunda.process_instances_by_id(&unknown).await? {
                self.instances
                    .insert(instance.id.clone(), Instance::of(&instance));
            }
        }
        let mut tasks = tasks.into_iter().peekable();
        while tasks.peek().is_some() {
            let batch: Vec<Task> = tasks.by_ref().take(LINKS_PER_BATCH).collect();
            // Each task's identity links, the one call every changed task needs,
            // a few at once.
            let reads: Vec<_> = batch
                .iter()
                .map(|t| {
                    let (camunda, id) = (self.camunda.clone(), t.id.clone());
                    async move { camunda.task_identity_links(&id).await }
                })
                .collect();
            let links: Vec<Result<Vec<IdentityLink>, CamundaError>> = futures::stream::iter(reads)
                .buffered(LINKS_AT_ONCE)
                .collect()
                .await;
            for (task, links) in batch.into_iter().zip(links) {
                // A burst of changes keeps the lease.
                self.keep_lease().await?;
                let stamp = task.changed_at();
                let id = task.id.clone();
                let first = first_sight.contains(&id);
                let read = match links {
                    Ok(links) => self.engine_user_task(task, links, first).await,
                    Err(error) => Err(error.into()),
                };
                match read {
                    Ok(Some(engine_task)) => {
                        self.forms.learn_user_task(engine_task).await?;
                    }
                    // Not a task of a process: nothing ramp shows.
                    Ok(None) => {}
                    // Ended meanwhile: history tells.
                    Err(PollError::Engine(CamundaError::NotFound(_))) => continue,
                    Err(error) => return Err(error),
                }
                self.seen.insert(id, Some(stamp));
            }
        }
        Ok(())
    }

    /// What the engine says of one task, with what the task list did not carry.
    async fn engine_user_task(
        &mut self,
        task: Task,
        links: Vec<IdentityLink>,
        first_sight: bool,
    ) -> Result<Option<EngineUserTask>, PollError> {
        let Some(process_instance_id) = task.process_instance_id.clone() else {
            return Ok(None);
        };
        let task_definition_key = task.task_definition_key.clone().unwrap_or_default();
        let mut candidate_users = Vec::new();
        let mut candidate_groups = Vec::new();
        for link in links {
            if link.kind != "candidate" {
                continue;
            }
            candidate_users.extend(link.user_id);
            candidate_groups.extend(link.group_id);
        }
        let form = self.form(&task).await?;
        let form_variables = if first_sight && form.is_some() {
            readable(self.camunda.task_form_variables(&task.id).await?)
        } else {
            Map::new()
        };
        let instance = self
            .instances
            .get(&process_instance_id)
            .cloned()
            .unwrap_or_else(|| Instance {
                business_key: None,
                root_process_instance_id: process_instance_id.clone(),
                process_definition_key: task
                    .process_definition_id
                    .as_deref()
                    .and_then(|d| d.split(':').next())
                    .map(str::to_owned),
            });
        Ok(Some(EngineUserTask {
            id: task.id,
            name: task.name,
            task_definition_key,
            assignee: task.assignee.filter(|a| !a.is_empty()),
            candidate_users,
            candidate_groups,
            created: task.created,
            last_updated: task.last_updated,
            due: task.due,
            follow_up: task.follow_up,
            priority: task.priority,
            process_instance_id,
            root_process_instance_id: instance.root_process_instance_id,
            business_key: instance.business_key,
            process_definition_id: task.process_definition_id,
            process_definition_key: instance.process_definition_key,
            tenant_id: task.tenant_id,
            execution_id: task.execution_id,
            form,
            form_variables,
        }))
    }

    /// The task's Camunda Form (its id and schema), as the engine resolves it, read
    /// once per task of a model until the next full read.
    async fn form(&mut self, task: &Task) -> Result<Option<(String, Value)>, PollError> {
        let camunda_form = task.camunda_form_ref.is_some()
            || task
                .form_key
                .as_deref()
                .is_some_and(|k| k.starts_with("camunda-forms:"));
        if !camunda_form {
            return Ok(None);
        }
        let cache_key = (
            task.process_definition_id.clone().unwrap_or_default(),
            task.task_definition_key.clone().unwrap_or_default(),
        );
        if let Some(form) = self.forms_by_task.get(&cache_key) {
            return Ok(form.clone());
        }
        let form = match self.camunda.deployed_form(&task.id).await {
            Ok(form) => form.map(|schema| {
                let id = schema["id"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| task.camunda_form_ref.as_ref().map(|r| r.key.clone()))
                    .or_else(|| task.form_key.clone())
                    .unwrap_or_default();
                (id, schema)
            }),
            // A form the engine cannot resolve (a formRef to a form never
            // deployed): the task shows without one.
            Err(CamundaError::BadRequest { message, .. }) => {
                tracing::warn!(engine_task = %task.id, %message, "the user task's form cannot be resolved");
                None
            }
            Err(error) => return Err(error.into()),
        };
        self.forms_by_task.insert(cache_key, form.clone());
        Ok(form)
    }
}

impl Instance {
    fn of(instance: &HistoricProcessInstance) -> Self {
        Self {
            business_key: instance.business_key.clone(),
            root_process_instance_id: instance
                .root_process_instance_id
                .clone()
                .unwrap_or_else(|| instance.id.clone()),
            process_definition_key: instance.process_definition_key.clone(),
        }
    }
}

/// The pause before the next read: the poll interval, doubled for each read that
/// failed in a row (an engine or database that is down is not asked twice a
/// second), up to 30 s.
fn pause(poll: std::time::Duration, failures: u32) -> std::time::Duration {
    (poll * 2u32.pow(failures.min(6))).min(std::time::Duration::from_secs(30).max(poll))
}

/// Of `tasks` read, those changed since they were last learned (`seen`: id → the
/// engine time learned, none when unknown) or never learned, and the ids of those
/// never seen at all (whose form variables are read).
fn changed(
    seen: &HashMap<String, Option<DateTime<Utc>>>,
    tasks: Vec<Task>,
) -> (Vec<Task>, HashSet<String>) {
    let changed: Vec<Task> = tasks
        .into_iter()
        .filter(|t| seen.get(&t.id).copied().flatten() != Some(t.changed_at()))
        .collect();
    let first_sight = changed
        .iter()
        .filter(|t| !seen.contains_key(&t.id))
        .map(|t| t.id.clone())
        .collect();
    (changed, first_sight)
}

/// The variables that read as JSON; one that does not (a Java-serialized object)
/// is left out rather than keep the task out of the inbox.
fn readable(variables: Map<String, Value>) -> Map<String, Value> {
    variables
        .into_iter()
        .filter_map(|(name, raw)| {
            let typed: TypedValue = serde_json::from_value(raw).ok()?;
            match from_engine(&name, &typed) {
                Ok(value) => Some((name, value)),
                Err(error) => {
                    tracing::debug!(%error, "a form variable is left out of the prefill");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(id: &str, created: &str, last_updated: Option<&str>) -> Task {
        serde_json::from_value(json!({
            "id": id, "created": created, "lastUpdated": last_updated,
            "processInstanceId": "pi",
        }))
        .unwrap()
    }

    fn at(text: &str) -> Option<DateTime<Utc>> {
        crate::camunda::parse_engine_time(text)
    }

    #[test]
    fn failed_reads_back_off_up_to_half_a_minute() {
        let poll = std::time::Duration::from_millis(500);
        assert_eq!(pause(poll, 0), poll);
        assert_eq!(pause(poll, 2), poll * 4);
        assert_eq!(pause(poll, 20), std::time::Duration::from_secs(30));
    }

    #[test]
    fn only_tasks_changed_since_they_were_learned_are_learned_again() {
        let (t0, t1) = (
            "2026-12-03T10:00:00.000+0000",
            "2026-12-03T10:00:05.000+0000",
        );
        let seen = HashMap::from([
            // Learned (or stored by ramp) at its current time.
            ("same".to_owned(), at(t0)),
            // Learned before its claim.
            ("claimed".to_owned(), at(t0)),
            // Held pending by ramp from before engine times were kept.
            ("unstamped".to_owned(), None),
        ]);
        let (changed, first_sight) = changed(
            &seen,
            vec![
                task("same", t0, None),
                task("claimed", t0, Some(t1)),
                task("unstamped", t0, None),
                task("new", t1, None),
            ],
        );
        let ids: Vec<&str> = changed.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["claimed", "unstamped", "new"]);
        assert_eq!(first_sight, HashSet::from(["new".to_owned()]));
    }
}
