//! `ramp worker`: the external-task worker. It long-polls the engine for send tasks,
//! turns each into a form task through `FormService.CreateFormTask` (so any other
//! gRPC client could do the same job), and completes the external task.

mod command;
mod topic;

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;

pub use command::{WorkerError, run, run_until};
pub use topic::{Topic, TopicError};

use crate::camunda::types::{ExternalTask, FetchAndLock, FetchTopic};
use crate::camunda::{Camunda, CamundaError, variables};
use crate::proto::CreateFormTaskRequest;
use crate::proto::form_service_client::FormServiceClient;

/// The variable that names a form's assignee, by convention set on the send task
/// by an input mapping: it routes the form and is no part of its prefill.
pub const ASSIGNED_TO: &str = "assignedTo";

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// The ramp server to call, e.g. `http://127.0.0.1:50051`.
    pub server: String,
    /// The worker's token (a `ramp-worker` role).
    pub token: SecretString,
    pub topics: Vec<Topic>,
    /// Only tasks of these process definitions (all when empty): a worker for some
    /// processes only.
    pub definition_keys: Vec<String>,
    /// How long the engine holds a long poll open; below proxies' idle timeouts.
    pub long_poll: Duration,
    /// How long a fetched task stays locked to this worker (extended while busy).
    pub lock: Duration,
    /// Tasks in flight at most.
    pub max_in_flight: usize,
    /// Retries a task gets for transient failures before it becomes an incident.
    pub retries: i32,
    /// The first retry timeout; it doubles with each failure.
    pub retry_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("RAMP_SERVER {0:?} is not a server address")]
pub struct InvalidServer(pub String);

pub struct Worker {
    camunda: Camunda,
    forms: FormServiceClient<Channel>,
    settings: WorkerSettings,
    id: String,
    metrics: Option<crate::metrics::Metrics>,
}

/// How handling one task ended.
#[derive(Debug)]
enum Handled {
    Created,
    /// A task that can never succeed as it is: an incident at once.
    Incident(String),
    /// A failure that may pass: retried by the engine.
    Transient(String),
    /// Shutdown came first: the task was given back.
    Released,
}

impl Worker {
    pub fn new(camunda: Camunda, settings: WorkerSettings) -> Result<Self, InvalidServer> {
        let server = if settings.server.contains("://") {
            settings.server.clone()
        } else {
            format!("http://{}", settings.server)
        };
        let channel = Channel::from_shared(server.clone())
            .map_err(|_| InvalidServer(server))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        let id = format!(
            "ramp-worker-{}-{}",
            std::process::id(),
            &uuid::Uuid::now_v7().simple().to_string()[24..]
        );
        Ok(Self {
            camunda,
            forms: FormServiceClient::new(channel),
            settings,
            id,
            metrics: None,
        })
    }

    /// Counts task outcomes in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Fetches and handles tasks until `shutdown`; then finishes or gives back what
    /// it holds, and returns.
    ///
    /// A long poll in flight is awaited, not dropped: the engine would otherwise
    /// lock the tasks it finds (including ones this worker gives back) for a
    /// connection that is gone, and they would stay locked for the full duration.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.settings.max_in_flight));
        let mut tasks = tokio::task::JoinSet::new();
        // Tasks give back what they hold only once no long poll is in flight.
        let release = CancellationToken::new();
        tracing::info!(worker = %self.id, topics = ?self.settings.topics.iter().map(ToString::to_string).collect::<Vec<_>>(), "worker started");
        let mut backoff = Duration::from_millis(200);
        loop {
            while tasks.try_join_next().is_some() {}
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tasks.join_next() => continue,
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            let request = FetchAndLock {
                worker_id: self.id.clone(),
                max_tasks: free as u32,
                use_priority: true,
                async_response_timeout: Some(self.settings.long_poll.as_millis() as u64),
                topics: self
                    .settings
                    .topics
                    .iter()
                    .map(|t| FetchTopic {
                        topic_name: t.name.clone(),
                        lock_duration: self.settings.lock.as_millis() as u64,
                        include_extension_properties: true,
                        process_definition_key_in: (!self.settings.definition_keys.is_empty())
                            .then(|| self.settings.definition_keys.clone()),
                        ..Default::default()
                    })
                    .collect(),
            };
            let fetched = self.camunda.fetch_and_lock(&request).await;
            let fetched = match fetched {
                Ok(fetched) => {
                    backoff = Duration::from_millis(200);
                    fetched
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "cannot fetch tasks");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            if shutdown.is_cancelled() {
                // Fetched while stopping: give them back at once.
                for task in fetched {
                    if let Err(error) = self.camunda.unlock(&task.id).await {
                        tracing::warn!(task = %task.id, %error, "cannot give back a task");
                    }
                }
                break;
            }
            for task in fetched {
                let permit = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore stays open");
                let worker = self.clone();
                let release = release.clone();
                tasks.spawn(async move {
                    worker.handle(task, release).await;
                    drop(permit);
                });
            }
        }
        tracing::info!(
            in_flight = tasks.len(),
            "stopping: finishing or giving back held tasks"
        );
        release.cancel();
        while tasks.join_next().await.is_some() {}
        tracing::info!("worker stopped");
    }

    async fn handle(&self, task: ExternalTask, shutdown: CancellationToken) {
        let lock_keeper = self.keep_lock(&task.id);
        let outcome = tokio::select! {
            outcome = self.create_form(&task, &shutdown) => outcome,
            _ = lock_keeper => unreachable!("the lock keeper runs until dropped"),
        };
        if let Some(metrics) = &self.metrics {
            metrics.worker_task(match &outcome {
                Handled::Created => "created",
                Handled::Incident(_) => "incident",
                Handled::Transient(_) => "transient",
                Handled::Released => "released",
            });
        }
        let result = match &outcome {
            Handled::Created => self.complete(&task).await,
            Handled::Incident(reason) => {
                tracing::warn!(task = %task.id, activity = %task.activity_id, %reason, "task fails without retries (incident)");
                // The message is what an operator reads in the incident list: the
                // reason itself, not only that there is one.
                self.camunda
                    .fail_external_task(&task.id, &self.id, &incident_message(reason), reason, 0, 0)
                    .await
            }
            Handled::Transient(reason) => {
                let left = task.retries.unwrap_or(self.settings.retries) - 1;
                let failures = (self.settings.retries - left).max(1) as u32;
                let timeout = self.settings.retry_timeout * 2u32.saturating_pow(failures - 1);
                tracing::warn!(task = %task.id, %reason, retries_left = left.max(0), "task failed; the engine will retry");
                self.camunda
                    .fail_external_task(
                        &task.id,
                        &self.id,
                        "ramp could not create the form",
                        reason,
                        left.max(0),
                        timeout.as_millis() as u64,
                    )
                    .await
            }
            Handled::Released => self.camunda.unlock(&task.id).await,
        };
        match result {
            Ok(()) => {
                tracing::info!(task = %task.id, activity = %task.activity_id, outcome = ?outcome, "task handled")
            }
            // Another worker has it now (our lock ran out); the form is made once.
            Err(error @ (CamundaError::NotFound(_) | CamundaError::LockedByOtherWorker(_))) => {
                tracing::warn!(task = %task.id, %error, "the task moved on without us")
            }
            Err(error) => {
                tracing::warn!(task = %task.id, %error, "cannot report the task's outcome; its lock will run out")
            }
        }
    }

    /// Extends the task's lock at half its duration, for as long as it is polled.
    async fn keep_lock(&self, task_id: &str) {
        let every = self.settings.lock / 2;
        loop {
            tokio::time::sleep(every).await;
            if let Err(error) = self
                .camunda
                .extend_lock(task_id, &self.id, self.settings.lock.as_millis() as u64)
                .await
            {
                tracing::warn!(task = %task_id, %error, "cannot extend the lock");
            }
        }
    }

    async fn complete(&self, task: &ExternalTask) -> Result<(), CamundaError> {
        let mut wait = Duration::from_millis(200);
        loop {
            match self
                .camunda
                .complete_external_task(
                    &task.id,
                    &self.id,
                    &Default::default(),
                    &Default::default(),
                )
                .await
            {
                Err(error) if error.is_transient() && wait < Duration::from_secs(5) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                other => return other,
            }
        }
    }

    async fn create_form(&self, task: &ExternalTask, shutdown: &CancellationToken) -> Handled {
        let Some(business_key) = task.business_key.clone().filter(|k| !k.is_empty()) else {
            return Handled::Incident("the process has no business key (the user's email)".into());
        };
        let values = match variables::variables_from_engine(&task.variables) {
            Ok(values) => values,
            Err(error) => {
                tracing::warn!(%error, "a variable cannot be read; reading the others");
                readable(&task.variables)
            }
        };
        let property = |name: &str| {
            task.extension_properties
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let form_name = property("ramp.form").unwrap_or_else(|| task.activity_id.clone());
        let message_name = property("ramp.message").unwrap_or_else(|| form_name.clone());
        let topic = self
            .settings
            .topics
            .iter()
            .find(|t| t.name == task.topic_name);
        let assignee_variable = property("ramp.assignee");
        let assignee = match assignee(topic, &values, assignee_variable.as_deref(), &business_key) {
            Ok(assignee) => assignee,
            Err(reason) => return Handled::Incident(reason),
        };
        let context = property("ramp.context")
            .map(|names| context(&names, &values))
            .unwrap_or_default();
        let request = CreateFormTaskRequest {
            external_task_id: task.id.clone(),
            process_instance_id: task.process_instance_id.clone(),
            process_definition_id: task.process_definition_id.clone().unwrap_or_default(),
            process_definition_key: task.process_definition_key.clone().unwrap_or_default(),
            business_key,
            activity_id: task.activity_id.clone(),
            activity_instance_id: task.activity_instance_id.clone().unwrap_or_default(),
            execution_id: task.execution_id.clone().unwrap_or_default(),
            form_name,
            message_name,
            assignee,
            // The server keeps only the form's own fields, or, for a form without a
            // schema, the send task's inputs.
            prefill: Some(crate::json::json_to_struct(&prefill(
                values,
                assignee_variable.as_deref(),
            ))),
            tenant_id: task.tenant_id.clone().unwrap_or_default(),
            topic_name: task.topic_name.clone(),
            context,
        };
        let mut wait = Duration::from_millis(200);
        loop {
            let mut call = tonic::Request::new(request.clone());
            let bearer = format!("Bearer {}", self.settings.token.expose_secret());
            match bearer.parse() {
                Ok(value) => {
                    call.metadata_mut().insert("authorization", value);
                }
                Err(_) => {
                    return Handled::Incident("the worker's token is not valid header text".into());
                }
            }
            let status = match self.forms.clone().create_form_task(call).await {
                Ok(response) => {
                    let response = response.into_inner();
                    if !response.created {
                        // A repeat (an earlier attempt made the form, then lost the
                        // task): the server has compared it with the stored form and
                        // applied or refused the difference, so the form as answered
                        // is the one the process waits for.
                        let summary = response.form_task.and_then(|t| t.summary);
                        tracing::info!(
                            task = %task.id,
                            form = summary.as_ref().map_or("", |s| s.id.as_str()),
                            assignee = summary.as_ref().map_or("", |s| s.assignee.as_str()),
                            "the form task existed already"
                        );
                    }
                    return Handled::Created;
                }
                Err(status) => status,
            };
            match status.code() {
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::ResourceExhausted
                | Code::Internal
                    if wait <= Duration::from_secs(4) =>
                {
                    tokio::select! {
                        _ = shutdown.cancelled() => return Handled::Released,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait *= 2;
                }
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::ResourceExhausted
                | Code::Internal => {
                    return Handled::Transient(format!(
                        "ramp answered {:?}: {}",
                        status.code(),
                        status.message()
                    ));
                }
                Code::Unauthenticated => {
                    // A renewed token may fix it: let the engine retry.
                    return Handled::Transient(format!(
                        "ramp refused the worker's token: {}",
                        status.message()
                    ));
                }
                // A form for this task exists with other data that ramp cannot apply
                // (see CreateFormTask): the same request would get the same answer, so
                // a person decides.
                Code::AlreadyExists => {
                    return Handled::Incident(format!(
                        "{} — change the process's data or the form task to agree, then retry this incident",
                        status.message()
                    ));
                }
                code => {
                    return Handled::Incident(format!(
                        "ramp refused the form ({code:?}): {}",
                        status.message()
                    ));
                }
            }
        }
    }
}

/// The incident's message for `reason`, bounded (the engine stores at most 4,000
/// characters; the full reason goes into the error details as well).
fn incident_message(reason: &str) -> String {
    const MAX: usize = 1_000;
    let mut message = format!("ramp could not create the form: {reason}");
    if message.len() > MAX {
        let mut end = MAX;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// Variables that can be read, skipping those that cannot.
fn readable(raw: &Map<String, Value>) -> Map<String, Value> {
    raw.iter()
        .filter_map(|(name, value)| {
            let typed: variables::TypedValue = serde_json::from_value(value.clone()).ok()?;
            variables::from_engine(name, &typed)
                .ok()
                .map(|v| (name.clone(), v))
        })
        .collect()
}

/// The longest context line a worker sends, in characters.
const MAX_CONTEXT: usize = 200;

/// A form's context line: the values of the variables that `names` lists
/// (comma-separated; a dotted name reaches into a JSON object), as text, joined by
/// ", ". Values that are unset, empty or not shown as text (null, lists, objects)
/// are left out; yes/no stand for booleans. Bounded to `MAX_CONTEXT` characters.
fn context(names: &str, values: &Map<String, Value>) -> String {
    let shown: Vec<String> = names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .filter_map(|name| {
            let mut path = name.split('.');
            let first = values.get(path.next()?)?;
            let value = path.try_fold(first, |value, step| value.get(step))?;
            let text = match value {
                Value::String(text) => text.split_whitespace().collect::<Vec<_>>().join(" "),
                Value::Number(number) => number.to_string(),
                Value::Bool(true) => "yes".into(),
                Value::Bool(false) => "no".into(),
                Value::Null | Value::Array(_) | Value::Object(_) => return None,
            };
            Some(text).filter(|t| !t.is_empty())
        })
        .collect();
    let line = shown.join(", ");
    if line.chars().count() <= MAX_CONTEXT {
        return line;
    }
    let mut bounded: String = line.chars().take(MAX_CONTEXT - 1).collect();
    bounded.push('…');
    bounded
}

/// What a task offers its form to fill in: its variables, but not ramp's own nor
/// those that name the assignee (they route the form, they do not fill it).
fn prefill(mut values: Map<String, Value>, assignee_variable: Option<&str>) -> Map<String, Value> {
    for name in [Some(ASSIGNED_TO), assignee_variable]
        .into_iter()
        .flatten()
        .chain(crate::processes::RESERVED)
    {
        values.remove(name);
    }
    values
}

/// Who fills the form: the topic's path into a JSON variable, else the
/// `assignedTo` variable (set on the send task by an input mapping), else the
/// variable the `ramp.assignee` property names, else the business key.
fn assignee(
    topic: Option<&Topic>,
    values: &Map<String, Value>,
    assignee_variable: Option<&str>,
    business_key: &str,
) -> Result<String, String> {
    if let Some(path) = topic.and_then(|t| t.assignee_path.as_ref()) {
        let mut value = values
            .get(&path[0])
            .ok_or_else(|| format!("the assignee path {} names no variable", path.join(".")))?;
        for part in &path[1..] {
            value = value.get(part).ok_or_else(|| {
                format!(
                    "the assignee path {} does not exist in the variable",
                    path.join(".")
                )
            })?;
        }
        return value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("the assignee path {} is not text", path.join(".")));
    }
    if let Some(assigned) = values.get(ASSIGNED_TO).and_then(Value::as_str) {
        return Ok(assigned.to_owned());
    }
    if let Some(variable) = assignee_variable {
        return values
            .get(variable)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                format!("the variable {variable} named by ramp.assignee holds no text")
            });
    }
    Ok(business_key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values() -> Map<String, Value> {
        json!({"supplier": {"companyOwner": "owner@example.com"}, "reviewer": "rev@example.com"})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn the_context_line_shows_the_named_values_in_words() {
        let values = json!({
            "supplierName": "  Acme\n Ltd ",
            "amount": 1200.5,
            "critical": true,
            "supplier": {"country": "NL"},
            "empty": "",
            "nothing": null,
            "list": [1],
        });
        let values = values.as_object().unwrap();
        assert_eq!(
            context(
                "supplierName, amount,critical, supplier.country, empty, nothing, list, unset,",
                values
            ),
            "Acme Ltd, 1200.5, yes, NL"
        );
        assert_eq!(context("", values), "");
        let long = json!({"text": "x".repeat(500)});
        let line = context("text", long.as_object().unwrap());
        assert_eq!(line.chars().count(), MAX_CONTEXT);
        assert!(line.ends_with('…'));
    }

    #[test]
    fn an_incident_message_says_why_and_stays_bounded() {
        assert_eq!(
            incident_message("form_name differs"),
            "ramp could not create the form: form_name differs"
        );
        let long = incident_message(&"é".repeat(2_000));
        assert!(long.len() <= 1_000 + '…'.len_utf8());
        assert!(long.ends_with('…'));
    }

    #[test]
    fn the_prefill_leaves_out_ramps_own_variables_and_the_routing() {
        let mut all = values();
        all.insert("assignedTo".into(), json!("mapped@example.com"));
        all.insert("rampProcessId".into(), json!("0192"));
        all.insert("rampSubmissionId".into(), json!("0193"));
        assert_eq!(
            Value::Object(prefill(all, Some("reviewer"))),
            json!({"supplier": {"companyOwner": "owner@example.com"}})
        );
    }

    #[test]
    fn the_assignee_comes_from_the_topic_path_then_the_model_then_the_business_key() {
        let topic = Topic::parse("t:assignee=supplier.companyOwner").unwrap();
        assert_eq!(
            assignee(Some(&topic), &values(), None, "bk@example.com").unwrap(),
            "owner@example.com"
        );
        assert_eq!(
            assignee(None, &values(), Some("reviewer"), "bk@example.com").unwrap(),
            "rev@example.com"
        );
        let mut with_mapping = values();
        with_mapping.insert("assignedTo".into(), json!("mapped@example.com"));
        assert_eq!(
            assignee(None, &with_mapping, Some("reviewer"), "bk@example.com").unwrap(),
            "mapped@example.com"
        );
        assert_eq!(
            assignee(None, &values(), None, "bk@example.com").unwrap(),
            "bk@example.com"
        );
        let missing = Topic::parse("t:assignee=supplier.nobody").unwrap();
        assert!(assignee(Some(&missing), &values(), None, "bk@example.com").is_err());
    }
}
