//! The Camunda 7 REST client (`/engine-rest`; Operaton and CIB seven keep the same
//! API). Every call has a timeout; failures come back as a `CamundaError` that the
//! services map to gRPC codes.

mod error;
mod test_support;
pub mod types;
mod user_tasks;
pub mod variables;

use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

pub use error::CamundaError;
use types::*;
pub use variables::{TypedValue, VariableError, Variables};

/// How to reach the engine.
#[derive(Clone, Debug)]
pub struct CamundaSettings {
    /// The REST base, e.g. `http://127.0.0.1:8080/engine-rest`.
    pub url: String,
    pub user: Option<String>,
    pub password: Option<SecretString>,
    /// The timeout of every call (long polls add their own wait to it).
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct Camunda {
    http: reqwest::Client,
    base: String,
    credentials: Option<(String, SecretString)>,
    timeout: Duration,
    /// Requests sent, for tests and metrics.
    calls: std::sync::Arc<std::sync::atomic::AtomicU64>,
    metrics: Option<crate::metrics::Metrics>,
}

/// A deployment the engine refused, with what it said about each file.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("the engine rejected the deployment: {message}")]
    Parse {
        message: String,
        /// (resource name, problem), in the engine's order.
        problems: Vec<(String, ParseProblem)>,
    },
    #[error(transparent)]
    Camunda(#[from] CamundaError),
}

impl Camunda {
    pub fn new(settings: CamundaSettings) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client builds");
        let credentials = match (settings.user, settings.password) {
            (Some(user), Some(password)) => Some((user, password)),
            (Some(user), None) => Some((user, SecretString::from(""))),
            _ => None,
        };
        Self {
            http,
            base: settings.url.trim_end_matches('/').to_owned(),
            credentials,
            timeout: settings.timeout,
            calls: Default::default(),
            metrics: None,
        }
    }

    /// The same client, recording each call's latency and errors in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut builder = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .timeout(self.timeout);
        // The RPC this call serves, so that the engine's logs can be matched with
        // ramp's.
        if let Some(id) = crate::telemetry::current_request_id() {
            builder = builder.header(crate::telemetry::REQUEST_ID_HEADER, &*id);
        }
        match &self.credentials {
            Some((user, password)) => builder.basic_auth(user, Some(password.expose_secret())),
            None => builder,
        }
    }

    /// Sends and returns the body of a 2xx answer, or the mapped error. Each call
    /// gets an `engine` span (inside the RPC's, so its lines carry the request id),
    /// a debug line with its outcome, and its latency and error in the metrics.
    async fn send(&self, builder: RequestBuilder) -> Result<bytes::Bytes, CamundaError> {
        let request = builder.build().map_err(CamundaError::from_transport)?;
        let operation = operation(
            request.method(),
            request
                .url()
                .path()
                .strip_prefix(self.base_path())
                .unwrap_or(request.url().path()),
        );
        let span = tracing::debug_span!("engine", operation = %operation);
        let started = std::time::Instant::now();
        let result = tracing::Instrument::instrument(
            self.exchange(RequestBuilder::from_parts(self.http.clone(), request)),
            span.clone(),
        )
        .await;
        let elapsed = started.elapsed();
        span.in_scope(|| match &result {
            Ok(_) => tracing::debug!(latency_ms = elapsed.as_secs_f64() * 1000.0, "engine call"),
            Err(error) => {
                tracing::debug!(latency_ms = elapsed.as_secs_f64() * 1000.0, %error, "engine call")
            }
        });
        if let Some(metrics) = &self.metrics {
            metrics.engine_call(
                &operation,
                elapsed,
                result.as_ref().err().map(CamundaError::kind),
            );
        }
        result
    }

    /// The path part of the base URL (`/engine-rest`).
    fn base_path(&self) -> &str {
        let after_scheme = self.base.split_once("://").map_or("", |(_, rest)| rest);
        after_scheme.find('/').map_or("", |i| &after_scheme[i..])
    }

    async fn exchange(&self, builder: RequestBuilder) -> Result<bytes::Bytes, CamundaError> {
        let response = builder.send().await.map_err(CamundaError::from_transport)?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(CamundaError::from_transport)?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(CamundaError::from_response(
                status.as_u16(),
                &String::from_utf8_lossy(&body),
            ))
        }
    }

    async fn json<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T, CamundaError> {
        let body = self.send(builder).await?;
        serde_json::from_slice(&body).map_err(|e| CamundaError::Decode(e.to_string()))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &impl Serialize,
    ) -> Result<T, CamundaError> {
        self.json(self.request(Method::GET, path).query(query))
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, CamundaError> {
        self.json(self.request(Method::POST, path).json(body)).await
    }

    /// A POST whose success has no body (204).
    async fn post_empty(&self, path: &str, body: &impl Serialize) -> Result<(), CamundaError> {
        self.send(self.request(Method::POST, path).json(body))
            .await
            .map(drop)
    }

    // --- engine ---

    /// `GET /version`: the readiness probe.
    pub async fn version(&self) -> Result<String, CamundaError> {
        let answer: Value = self.get("/version", &()).await?;
        Ok(answer["version"].as_str().unwrap_or_default().to_owned())
    }

    // --- deployments and definitions ---

    /// Deploys files (`(resource name, content)`), skipping unchanged ones when
    /// `duplicate_filtering` is set.
    pub async fn deploy(
        &self,
        name: &str,
        resources: Vec<(String, Vec<u8>)>,
        duplicate_filtering: bool,
        tenant_id: Option<&str>,
    ) -> Result<Deployment, DeployError> {
        let mut form = reqwest::multipart::Form::new()
            .text("deployment-name", name.to_owned())
            .text("deployment-source", "ramp".to_owned())
            .text(
                "enable-duplicate-filtering",
                duplicate_filtering.to_string(),
            )
            .text("deploy-changed-only", duplicate_filtering.to_string());
        if let Some(tenant) = tenant_id {
            form = form.text("tenant-id", tenant.to_owned());
        }
        for (resource, content) in resources {
            // Each resource part is named by its (relative) path: the engine keys
            // resources by it, so two files of one name in different folders differ.
            let part = reqwest::multipart::Part::bytes(content).file_name(resource.clone());
            form = form.part(resource, part);
        }
        let response = self
            .request(Method::POST, "/deployment/create")
            .multipart(form)
            .send()
            .await
            .map_err(CamundaError::from_transport)?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(CamundaError::from_transport)?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| CamundaError::Decode(e.to_string()).into());
        }
        if status.as_u16() == 400
            && let Ok(answer) = serde_json::from_slice::<Value>(&body)
            && let Some(details) = answer.get("details").and_then(Value::as_object)
        {
            let mut problems = Vec::new();
            for (resource, report) in details {
                for problem in report["errors"].as_array().into_iter().flatten() {
                    if let Ok(problem) = serde_json::from_value::<ParseProblem>(problem.clone()) {
                        problems.push((resource.clone(), problem));
                    }
                }
            }
            return Err(DeployError::Parse {
                message: answer["message"].as_str().unwrap_or_default().to_owned(),
                problems,
            });
        }
        Err(CamundaError::from_response(status.as_u16(), &String::from_utf8_lossy(&body)).into())
    }

    /// The process definitions of a deployment.
    pub async fn deployment_definitions(
        &self,
        deployment_id: &str,
    ) -> Result<Vec<ProcessDefinition>, CamundaError> {
        self.get("/process-definition", &[("deploymentId", deployment_id)])
            .await
    }

    /// The latest version of a definition key.
    pub async fn latest_definition(&self, key: &str) -> Result<ProcessDefinition, CamundaError> {
        self.get(&format!("/process-definition/key/{}", path(key)), &())
            .await
    }

    /// The latest version of every deployed definition (of each tenant's) that is not
    /// suspended; of those with the given keys only, when `keys` is given (an engine
    /// that holds many definitions answers that at once, and all of them slowly).
    pub async fn latest_definitions(
        &self,
        keys: Option<&[String]>,
    ) -> Result<Vec<ProcessDefinition>, CamundaError> {
        let mut query = vec![
            ("latestVersion", "true".to_owned()),
            ("active", "true".to_owned()),
            ("sortBy", "key".to_owned()),
            ("sortOrder", "asc".to_owned()),
        ];
        if let Some(keys) = keys {
            query.push(("keysIn", keys.join(",")));
        }
        self.get("/process-definition", &query).await
    }

    /// The BPMN XML of a definition, as deployed.
    pub async fn definition_xml(&self, id: &str) -> Result<String, CamundaError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Xml {
            bpmn20_xml: String,
        }
        let xml: Xml = self
            .get(&format!("/process-definition/{}/xml", path(id)), &())
            .await?;
        Ok(xml.bpmn20_xml)
    }

    pub async fn definition(&self, id: &str) -> Result<ProcessDefinition, CamundaError> {
        self.get(&format!("/process-definition/{}", path(id)), &())
            .await
    }

    /// The newest deployments, newest first.
    pub async fn latest_deployments(&self, max: u32) -> Result<Vec<Deployment>, CamundaError> {
        self.get(
            "/deployment",
            &[
                ("sortBy", "deploymentTime"),
                ("sortOrder", "desc"),
                ("maxResults", &max.to_string()),
            ],
        )
        .await
    }

    pub async fn deployment_resources(
        &self,
        deployment_id: &str,
    ) -> Result<Vec<Resource>, CamundaError> {
        self.get(
            &format!("/deployment/{}/resources", path(deployment_id)),
            &(),
        )
        .await
    }

    pub async fn resource_data(
        &self,
        deployment_id: &str,
        resource_id: &str,
    ) -> Result<Vec<u8>, CamundaError> {
        let builder = self.request(
            Method::GET,
            &format!(
                "/deployment/{}/resources/{}/data",
                path(deployment_id),
                path(resource_id)
            ),
        );
        self.send(builder).await.map(|b| b.to_vec())
    }

    // --- process instances ---

    /// Starts the latest version of `key`. `variables` are already typed
    /// (`variables::variables_to_engine`).
    pub async fn start_process(
        &self,
        key: &str,
        business_key: &str,
        variables: &Variables,
    ) -> Result<ProcessInstance, CamundaError> {
        self.post(
            &format!("/process-definition/key/{}/start", path(key)),
            &json!({"businessKey": business_key, "variables": variables}),
        )
        .await
    }

    pub async fn process_instances(
        &self,
        query: &ProcessInstanceQuery,
    ) -> Result<Vec<ProcessInstance>, CamundaError> {
        self.get("/process-instance", query).await
    }

    /// Deletes an instance with the instances its call activities started (the whole
    /// tree below it); an instance already gone is not an error.
    ///
    /// Output mappings are never run: a delete runs them by default, and one that
    /// reads a variable not set yet (a call activity's output of an answer still to
    /// come) makes the engine refuse the delete, while their values would land in an
    /// instance that is being deleted anyway. Cockpit's cancel offers the same.
    /// The model's own listeners run unless `skip_listeners`: ending a process may be
    /// meant to do something.
    pub async fn delete_process_instance(
        &self,
        id: &str,
        skip_listeners: bool,
    ) -> Result<(), CamundaError> {
        let builder = self
            .request(Method::DELETE, &format!("/process-instance/{}", path(id)))
            .query(&[
                ("failIfNotExists", "false"),
                ("skipCustomListeners", &skip_listeners.to_string()),
                ("skipIoMappings", "true"),
                ("skipSubprocesses", "false"),
            ]);
        self.send(builder).await.map(drop)
    }

    /// Every variable of a running instance, in all its scopes (a task's input
    /// mappings included), serialized as the engine holds them.
    pub async fn variable_instances(
        &self,
        process_instance_id: &str,
    ) -> Result<Vec<HistoricVariableInstance>, CamundaError> {
        self.get(
            "/variable-instance",
            &[
                ("processInstanceIdIn", process_instance_id),
                ("deserializeValues", "false"),
            ],
        )
        .await
    }

    /// The names of the variables that live in one activity instance's own scope:
    /// for a task, those its input mappings (`camunda:inputOutput`) set. None when
    /// the task maps no inputs (its variables are then the enclosing scope's).
    pub async fn activity_variable_names(
        &self,
        activity_instance_id: &str,
    ) -> Result<Vec<String>, CamundaError> {
        #[derive(serde::Deserialize)]
        struct Named {
            name: String,
        }
        let found: Vec<Named> = self
            .get(
                "/variable-instance",
                &[
                    ("activityInstanceIdIn", activity_instance_id),
                    ("deserializeValues", "false"),
                ],
            )
            .await?;
        Ok(found.into_iter().map(|v| v.name).collect())
    }

    /// The tree of activity instances of a running instance.
    pub async fn activity_instances(
        &self,
        process_instance_id: &str,
    ) -> Result<ActivityInstance, CamundaError> {
        self.get(
            &format!(
                "/process-instance/{}/activity-instances",
                path(process_instance_id)
            ),
            &(),
        )
        .await
    }

    // --- history ---

    pub async fn historic_process_instance(
        &self,
        id: &str,
    ) -> Result<HistoricProcessInstance, CamundaError> {
        self.get(&format!("/history/process-instance/{}", path(id)), &())
            .await
    }

    /// Instances that ended after `finished_after` (an engine timestamp), oldest
    /// first, one page.
    pub async fn historic_process_instances_finished_after(
        &self,
        finished_after: &str,
        first: u32,
        max: u32,
    ) -> Result<Vec<HistoricProcessInstance>, CamundaError> {
        self.ended_after("/history/process-instance", &[], finished_after, first, max)
            .await
    }

    /// Root instances of `definition_key` with `business_key` started after
    /// `started_after` (running or ended). History filters by
    /// `processInstanceBusinessKey`: it ignores unknown parameters, so a misspelled
    /// filter would silently match everything.
    pub async fn historic_root_instances(
        &self,
        business_key: &str,
        definition_key: &str,
        started_after: &str,
    ) -> Result<Vec<HistoricProcessInstance>, CamundaError> {
        self.get(
            "/history/process-instance",
            &[
                ("processInstanceBusinessKey", business_key),
                ("processDefinitionKey", definition_key),
                ("rootProcessInstances", "true"),
                ("startedAfter", started_after),
                ("sortBy", "startTime"),
                ("sortOrder", "asc"),
            ],
        )
        .await
    }

    /// Root instances (running or ended) that carry the string variable `name` with
    /// `value`. Only values without `_` and `,` can be matched this way (ramp's
    /// UUIDs).
    pub async fn historic_root_instances_tagged(
        &self,
        name: &str,
        value: &str,
    ) -> Result<Vec<HistoricProcessInstance>, CamundaError> {
        self.get(
            "/history/process-instance",
            &[
                ("variables", format!("{name}_eq_{value}").as_str()),
                ("rootProcessInstances", "true"),
                ("sortBy", "startTime"),
                ("sortOrder", "asc"),
            ],
        )
        .await
    }

    /// Of `instance_ids`, those that have (or had) a variable `name`.
    pub async fn instances_with_variable(
        &self,
        name: &str,
        instance_ids: &[String],
    ) -> Result<Vec<String>, CamundaError> {
        if instance_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = instance_ids.iter().map(String::as_str).collect();
        let found = self.historic_variables(&ids, name).await?;
        Ok(found.into_iter().map(|v| v.process_instance_id).collect())
    }

    /// Historic values of one variable in the given instances.
    pub async fn historic_variables(
        &self,
        process_instance_ids: &[&str],
        name: &str,
    ) -> Result<Vec<HistoricVariableInstance>, CamundaError> {
        self.get(
            "/history/variable-instance",
            &[
                ("variableName", name),
                ("processInstanceIdIn", &process_instance_ids.join(",")),
                ("deserializeValues", "false"),
            ],
        )
        .await
    }

    /// Running instances that carry the string variable `name` with `value`.
    pub async fn running_instances_tagged(
        &self,
        name: &str,
        value: &str,
    ) -> Result<Vec<ProcessInstance>, CamundaError> {
        self.get(
            "/process-instance",
            &[("variables", format!("{name}_eq_{value}"))],
        )
        .await
    }

    /// The end time of the instance (root or called) that ended last, by the
    /// engine's clock; `None` while none has ended.
    pub async fn latest_end_time(&self) -> Result<Option<String>, CamundaError> {
        let latest: Option<HistoricProcessInstance> = self
            .newest("/history/process-instance", ("finished", "true"), "endTime")
            .await?;
        Ok(latest.and_then(|p| p.end_time))
    }

    /// When the activity instance cancelled last was cancelled, by the engine's
    /// clock; `None` while none has been.
    pub async fn latest_cancellation_time(&self) -> Result<Option<String>, CamundaError> {
        let latest: Option<HistoricActivityInstance> = self
            .newest(
                "/history/activity-instance",
                ("canceled", "true"),
                "endTime",
            )
            .await?;
        Ok(latest.and_then(|a| a.end_time))
    }

    /// When the external task deleted last was deleted, by the engine's clock;
    /// `None` while none has been.
    pub async fn latest_external_task_deletion_time(&self) -> Result<Option<String>, CamundaError> {
        let latest: Option<ExternalTaskLog> = self
            .newest(
                "/history/external-task-log",
                ("deletionLog", "true"),
                "timestamp",
            )
            .await?;
        Ok(latest.map(|l| l.timestamp))
    }

    /// The newest entry of a history list by `sort_by`, among those `filter`
    /// selects.
    async fn newest<T: DeserializeOwned>(
        &self,
        list: &str,
        filter: (&str, &str),
        sort_by: &str,
    ) -> Result<Option<T>, CamundaError> {
        let newest: Vec<T> = self
            .get(
                list,
                &[
                    filter,
                    ("sortBy", sort_by),
                    ("sortOrder", "desc"),
                    ("maxResults", "1"),
                ],
            )
            .await?;
        Ok(newest.into_iter().next())
    }

    /// The engine's clock, as the `Date` header of its answer to `GET /version`
    /// states it (to the second). A reverse proxy in front of the engine that
    /// writes a `Date` of its own gives its clock instead.
    pub async fn engine_now(&self) -> Result<chrono::DateTime<chrono::Utc>, CamundaError> {
        let response = self
            .request(Method::GET, "/version")
            .send()
            .await
            .map_err(CamundaError::from_transport)?;
        let status = response.status();
        let date = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok());
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(CamundaError::from_response(status.as_u16(), &body));
        }
        date.map(|d| d.with_timezone(&chrono::Utc))
            .ok_or_else(|| CamundaError::Decode("the engine's answer has no Date header".into()))
    }

    /// Activity instances cancelled (interrupted) after `finished_after`.
    pub async fn canceled_activity_instances_after(
        &self,
        finished_after: &str,
        first: u32,
        max: u32,
    ) -> Result<Vec<HistoricActivityInstance>, CamundaError> {
        self.ended_after(
            "/history/activity-instance",
            &[("canceled", "true")],
            finished_after,
            first,
            max,
        )
        .await
    }

    /// One page, oldest first, of the entries of a history list that `filters`
    /// select and that ended after `finished_after`.
    async fn ended_after<T: DeserializeOwned>(
        &self,
        list: &str,
        filters: &[(&str, &str)],
        finished_after: &str,
        first: u32,
        max: u32,
    ) -> Result<Vec<T>, CamundaError> {
        let (first, max) = (first.to_string(), max.to_string());
        let mut query = filters.to_vec();
        query.extend([
            ("finishedAfter", finished_after),
            ("sortBy", "endTime"),
            ("sortOrder", "asc"),
            ("firstResult", &first),
            ("maxResults", &max),
        ]);
        self.get(list, &query).await
    }

    /// Log entries of external tasks deleted before completion, after `after` (an
    /// engine time), newest first.
    ///
    /// The engine's log query has no time filter (it ignores `timestampAfter`, as
    /// it ignores every parameter it does not know), so the log is read newest
    /// first, a page at a time, up to the first entry not after `after`.
    pub async fn external_task_deletions_after(
        &self,
        after: &str,
    ) -> Result<Vec<ExternalTaskLog>, CamundaError> {
        const PAGE: usize = 500;
        let after = parse_engine_time(after)
            .ok_or_else(|| CamundaError::Decode(format!("not an engine time: {after}")))?;
        let mut found = Vec::new();
        loop {
            let page: Vec<ExternalTaskLog> = self
                .get(
                    "/history/external-task-log",
                    &[
                        ("deletionLog", "true"),
                        ("sortBy", "timestamp"),
                        ("sortOrder", "desc"),
                        ("firstResult", &found.len().to_string()),
                        ("maxResults", &PAGE.to_string()),
                    ],
                )
                .await?;
            let full = page.len() == PAGE;
            let before = found.len();
            found.extend(
                page.into_iter()
                    .take_while(|l| parse_engine_time(&l.timestamp).is_none_or(|t| t > after)),
            );
            if !full || found.len() < before + PAGE {
                return Ok(found);
            }
        }
    }

    pub async fn historic_activity_instance(
        &self,
        id: &str,
    ) -> Result<HistoricActivityInstance, CamundaError> {
        self.get(&format!("/history/activity-instance/{}", path(id)), &())
            .await
    }

    /// Every value one variable of an instance has had (history detail: needs the
    /// engine's history level `full`), as raw values.
    ///
    /// `GET /history/detail` ignores `variableName` (measured on 7.24: every update
    /// of every variable comes back) but filters by `variableNameLike`: that is what
    /// is sent, and the rows are checked by name, since `_` and `%` are wildcards
    /// there.
    pub async fn variable_updates(
        &self,
        process_instance_id: &str,
        name: &str,
    ) -> Result<Vec<Value>, CamundaError> {
        let details: Vec<Value> = self
            .get(
                "/history/detail",
                &[
                    ("processInstanceId", process_instance_id),
                    ("variableNameLike", name),
                    ("variableUpdates", "true"),
                    ("deserializeValues", "false"),
                ],
            )
            .await?;
        Ok(details
            .into_iter()
            .filter(|d| d["variableName"].as_str() == Some(name))
            .map(|d| d["value"].clone())
            .collect())
    }

    // --- external tasks ---

    /// Long-polls for tasks. The HTTP timeout is the long poll's wait plus the
    /// client's own timeout.
    pub async fn fetch_and_lock(
        &self,
        request: &FetchAndLock,
    ) -> Result<Vec<ExternalTask>, CamundaError> {
        let wait = Duration::from_millis(request.async_response_timeout.unwrap_or(0));
        let builder = self
            .request(Method::POST, "/external-task/fetchAndLock")
            .timeout(self.timeout + wait)
            .json(request);
        self.json(builder).await
    }

    pub async fn complete_external_task(
        &self,
        id: &str,
        worker_id: &str,
        variables: &Variables,
        local_variables: &Variables,
    ) -> Result<(), CamundaError> {
        self.post_empty(
            &format!("/external-task/{}/complete", path(id)),
            &json!({"workerId": worker_id, "variables": variables, "localVariables": local_variables}),
        )
        .await
    }

    /// Reports a failure; with `retries` 0 the engine raises an incident.
    pub async fn fail_external_task(
        &self,
        id: &str,
        worker_id: &str,
        message: &str,
        details: &str,
        retries: i32,
        retry_timeout_ms: u64,
    ) -> Result<(), CamundaError> {
        self.post_empty(
            &format!("/external-task/{}/failure", path(id)),
            &json!({
                "workerId": worker_id, "errorMessage": message, "errorDetails": details,
                "retries": retries, "retryTimeout": retry_timeout_ms,
            }),
        )
        .await
    }

    pub async fn extend_lock(
        &self,
        id: &str,
        worker_id: &str,
        duration_ms: u64,
    ) -> Result<(), CamundaError> {
        self.post_empty(
            &format!("/external-task/{}/extendLock", path(id)),
            &json!({"workerId": worker_id, "newDuration": duration_ms}),
        )
        .await
    }

    pub async fn unlock(&self, id: &str) -> Result<(), CamundaError> {
        self.post_empty(&format!("/external-task/{}/unlock", path(id)), &json!({}))
            .await
    }

    // --- messages ---

    /// Executions of an instance that wait for message `name`.
    pub async fn executions_waiting_for(
        &self,
        process_instance_id: &str,
        message_name: &str,
    ) -> Result<Vec<Execution>, CamundaError> {
        self.get(
            "/execution",
            &[
                ("processInstanceId", process_instance_id),
                ("messageEventSubscriptionName", message_name),
            ],
        )
        .await
    }

    /// All message subscriptions of an instance.
    pub async fn message_subscriptions_of(
        &self,
        process_instance_id: &str,
    ) -> Result<Vec<EventSubscription>, CamundaError> {
        self.get(
            "/event-subscription",
            &[
                ("eventType", "message"),
                ("processInstanceId", process_instance_id),
            ],
        )
        .await
    }

    /// The ids of the external tasks an instance has now.
    pub async fn external_task_ids_of(
        &self,
        process_instance_id: &str,
    ) -> Result<Vec<String>, CamundaError> {
        let tasks: Vec<Value> = self
            .get(
                "/external-task",
                &[("processInstanceId", process_instance_id)],
            )
            .await?;
        Ok(tasks
            .iter()
            .filter_map(|t| t["id"].as_str().map(str::to_owned))
            .collect())
    }

    /// Triggers one execution's message subscription, passing `variables` to the
    /// instance. A subscription that is gone answers an error: query again.
    pub async fn trigger_message(
        &self,
        execution_id: &str,
        message_name: &str,
        variables: &Variables,
    ) -> Result<(), CamundaError> {
        self.post_empty(
            &format!(
                "/execution/{}/messageSubscriptions/{}/trigger",
                path(execution_id),
                path(message_name)
            ),
            &json!({"variables": variables}),
        )
        .await
    }
}

/// A time as the engine's REST API writes and reads it
/// (`2025-01-31T10:15:30.000+0000`).
pub fn engine_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// The engine's time format, read.
pub fn parse_engine_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// One path segment, percent-encoded.
/// The words of the engine's REST paths that ramp calls; any other segment is an id
/// or a name and becomes `{}`, so that operations stay few.
const PATH_WORDS: &[&str] = &[
    "activity-instance",
    "activity-instances",
    "claim",
    "complete",
    "create",
    "data",
    "deployed-form",
    "deployment",
    "detail",
    "event-subscription",
    "execution",
    "extendLock",
    "external-task",
    "external-task-log",
    "failure",
    "fetchAndLock",
    "form-variables",
    "history",
    "identity-links",
    "key",
    "message",
    "messageSubscriptions",
    "process-definition",
    "process-instance",
    "resources",
    "start",
    "task",
    "trigger",
    "unclaim",
    "unlock",
    "variable-instance",
    "variables",
    "version",
];

/// An engine call as a metrics label: its method and path template, e.g.
/// `POST /execution/{}/messageSubscriptions/{}/trigger`.
fn operation(method: &Method, path: &str) -> String {
    let template: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| if PATH_WORDS.contains(&s) { s } else { "{}" })
        .collect();
    format!("{method} /{}", template.join("/"))
}

fn path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An object of the engine's typed variables from plain JSON values.
pub fn typed(values: &Map<String, Value>) -> Variables {
    variables::variables_to_engine(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_keep_the_path_words_and_hide_ids_and_names() {
        assert_eq!(
            operation(
                &Method::POST,
                "/execution/4f1c-77/messageSubscriptions/Approve/trigger"
            ),
            "POST /execution/{}/messageSubscriptions/{}/trigger"
        );
        assert_eq!(
            operation(&Method::GET, "/history/process-instance/abc"),
            "GET /history/process-instance/{}"
        );
        assert_eq!(operation(&Method::GET, "/version"), "GET /version");
    }
}
