//! Camunda Forms for form tasks: the `.form` whose id is the form name, from the
//! deployment of the task's own process (else the newest deployment holding one),
//! kept in the database per deployment so reading a task never needs the engine.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::camunda::{Camunda, CamundaError};
use crate::store::{Store, StoreError, forms as rows};

/// How many of the newest deployments are searched for a form the process's own
/// deployment lacks.
const NEWEST_DEPLOYMENTS: u32 = 20;
/// How many instance → root lookups are remembered.
const ROOT_CACHE: usize = 10_000;
/// How many definitions' deployments and deployments' forms are remembered.
const DEPLOYMENT_CACHE: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    Camunda(#[from] CamundaError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where an instance stands in its call hierarchy.
#[derive(Clone, Debug)]
pub struct Lineage {
    pub root_process_instance_id: String,
    pub process_definition_id: Option<String>,
    /// The instance's own business key (a called instance has one only when its
    /// call activity passes it down).
    pub business_key: Option<String>,
}

/// One fetch at a time per key: callers that miss the same key at once wait for the
/// first, then find what it fetched remembered (many creates for one new instance,
/// or right after a start, would otherwise all ask the engine the same thing).
struct Flights<K> {
    inner: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

impl<K: Hash + Eq + Clone> Flights<K> {
    fn new() -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for this key's turn; the turn ends when the returned value is dropped.
    async fn turn(&self, key: &K) -> Turn<'_, K> {
        let lock = self
            .inner
            .lock()
            .expect("not poisoned")
            .entry(key.clone())
            .or_default()
            .clone();
        let guard = lock.clone().lock_owned().await;
        Turn {
            flights: self,
            key: key.clone(),
            lock,
            _guard: guard,
        }
    }
}

struct Turn<'a, K: Hash + Eq> {
    flights: &'a Flights<K>,
    key: K,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl<K: Hash + Eq> Drop for Turn<'_, K> {
    fn drop(&mut self) {
        let mut inner = self.flights.inner.lock().expect("not poisoned");
        if inner
            .get(&self.key)
            .is_some_and(|lock| Arc::ptr_eq(lock, &self.lock))
        {
            inner.remove(&self.key);
        }
    }
}

pub struct Schemas {
    store: Store,
    camunda: Camunda,
    lineage: Mutex<HashMap<String, Lineage>>,
    lineage_flights: Flights<String>,
    deployment_flights: Flights<String>,
    form_flights: Flights<String>,
    /// Process definition → its deployment (never changes).
    deployments: Mutex<HashMap<String, Option<String>>>,
    /// (deployment, form id) → schema, as stored (a deployment never changes).
    stored: Mutex<HashMap<(String, String), Value>>,
}

/// Remembers `value` under `key`, forgetting everything once `limit` is reached.
fn remember<K: std::hash::Hash + Eq, V>(
    cache: &Mutex<HashMap<K, V>>,
    limit: usize,
    key: K,
    value: V,
) {
    let mut cache = cache.lock().expect("not poisoned");
    if cache.len() >= limit {
        cache.clear();
    }
    cache.insert(key, value);
}

impl Schemas {
    pub fn new(store: Store, camunda: Camunda) -> Self {
        Self {
            store,
            camunda,
            lineage: Mutex::new(HashMap::new()),
            lineage_flights: Flights::new(),
            deployment_flights: Flights::new(),
            form_flights: Flights::new(),
            deployments: Mutex::new(HashMap::new()),
            stored: Mutex::new(HashMap::new()),
        }
    }

    /// The engine these forms come from.
    pub(super) fn camunda(&self) -> &Camunda {
        &self.camunda
    }

    /// The root instance (and definition) of a process instance, from the engine's
    /// history; remembered, since it never changes.
    pub async fn lineage(&self, process_instance_id: &str) -> Result<Lineage, SchemaError> {
        let known = || {
            self.lineage
                .lock()
                .expect("not poisoned")
                .get(process_instance_id)
                .cloned()
        };
        if let Some(known) = known() {
            return Ok(known);
        }
        let _turn = self
            .lineage_flights
            .turn(&process_instance_id.to_owned())
            .await;
        if let Some(known) = known() {
            return Ok(known);
        }
        let history = self
            .camunda
            .historic_process_instance(process_instance_id)
            .await?;
        let lineage = Lineage {
            root_process_instance_id: history
                .root_process_instance_id
                .unwrap_or_else(|| process_instance_id.to_owned()),
            process_definition_id: history.process_definition_id,
            business_key: history.business_key,
        };
        let mut cache = self.lineage.lock().expect("not poisoned");
        if cache.len() >= ROOT_CACHE {
            cache.clear();
        }
        cache.insert(process_instance_id.to_owned(), lineage.clone());
        Ok(lineage)
    }

    /// The form `form_id` for a task of `definition_id`: (deployment, schema).
    pub async fn find(
        &self,
        definition_id: Option<&str>,
        form_id: &str,
    ) -> Result<Option<(String, Value)>, SchemaError> {
        if let Some(definition_id) = definition_id {
            let known = || {
                self.deployments
                    .lock()
                    .expect("not poisoned")
                    .get(definition_id)
                    .cloned()
            };
            let turn = match known() {
                Some(_) => None,
                None => Some(
                    self.deployment_flights
                        .turn(&definition_id.to_owned())
                        .await,
                ),
            };
            let deployment = match known() {
                Some(deployment) => deployment,
                None => {
                    let deployment = self.camunda.definition(definition_id).await?.deployment_id;
                    remember(
                        &self.deployments,
                        DEPLOYMENT_CACHE,
                        definition_id.to_owned(),
                        deployment.clone(),
                    );
                    deployment
                }
            };
            drop(turn);
            if let Some(deployment) = deployment
                && let Some(schema) = self.in_deployment(&deployment, form_id).await?
            {
                return Ok(Some((deployment, schema)));
            }
        }
        for deployment in self.camunda.latest_deployments(NEWEST_DEPLOYMENTS).await? {
            if let Some(schema) = self.in_deployment(&deployment.id, form_id).await? {
                return Ok(Some((deployment.id, schema)));
            }
        }
        Ok(None)
    }

    /// A stored schema (the task's deployment is known).
    pub async fn stored(
        &self,
        deployment_id: &str,
        form_id: &str,
    ) -> Result<Option<Value>, StoreError> {
        self.stored_in(&self.store.client().await?, deployment_id, form_id)
            .await
    }

    /// A stored schema, read (when not remembered) on the caller's connection: a
    /// caller that holds a pooled connection must never wait for a second one, or
    /// as many callers at once as the pool has connections starve it.
    pub async fn stored_in(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        deployment_id: &str,
        form_id: &str,
    ) -> Result<Option<Value>, StoreError> {
        let key = (deployment_id.to_owned(), form_id.to_owned());
        if let Some(schema) = self.stored.lock().expect("not poisoned").get(&key) {
            return Ok(Some(schema.clone()));
        }
        let schema = rows::schema(client, deployment_id, form_id).await?;
        if let Some(schema) = &schema {
            remember(&self.stored, DEPLOYMENT_CACHE, key, schema.clone());
        }
        Ok(schema)
    }

    async fn in_deployment(
        &self,
        deployment_id: &str,
        form_id: &str,
    ) -> Result<Option<Value>, SchemaError> {
        if let Some(schema) = self.stored(deployment_id, form_id).await? {
            return Ok(Some(schema));
        }
        let _turn = self.form_flights.turn(&deployment_id.to_owned()).await;
        if let Some(schema) = self.stored(deployment_id, form_id).await? {
            return Ok(Some(schema));
        }
        // Read every form of the deployment once and keep them all.
        let mut found = None;
        for resource in self.camunda.deployment_resources(deployment_id).await? {
            if !resource.name.ends_with(".form") {
                continue;
            }
            let content = self
                .camunda
                .resource_data(deployment_id, &resource.id)
                .await?;
            let Ok(schema) = serde_json::from_slice::<Value>(&content) else {
                tracing::warn!(deployment_id, resource = %resource.name, "a deployed form is not JSON");
                continue;
            };
            let Some(id) = schema.get("id").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            rows::put_schema(&self.store.client().await?, deployment_id, &id, &schema).await?;
            if id == form_id {
                found = Some(schema);
            }
        }
        Ok(found)
    }
}

/// The data keys a Camunda Form defines at the top level of its data: input fields'
/// `key`, the first segment of a group's `path`, the fields inside groups without a
/// path.
pub fn field_keys(schema: &Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    collect(schema, &mut keys);
    keys
}

fn collect(container: &Value, keys: &mut BTreeSet<String>) {
    for component in container
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(path) = component
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            if let Some(first) = path.split('.').next() {
                keys.insert(first.to_owned());
            }
            continue;
        }
        if let Some(key) = component
            .get("key")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
        {
            keys.insert(key.split('.').next().unwrap_or(key).to_owned());
        }
        if component.get("components").is_some() {
            collect(component, keys);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[tokio::test]
    async fn one_fetch_at_a_time_per_key_and_none_across_keys() {
        let flights = Flights::<String>::new();
        let a = flights.turn(&"a".to_owned()).await;
        let b = tokio::time::timeout(Duration::from_secs(5), flights.turn(&"b".to_owned()))
            .await
            .expect("another key is not held up");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), flights.turn(&"a".to_owned()))
                .await
                .is_err(),
            "the same key waits for its turn"
        );
        drop(a);
        let again = tokio::time::timeout(Duration::from_secs(5), flights.turn(&"a".to_owned()))
            .await
            .expect("its turn comes when the first ends");
        drop(again);
        drop(b);
        assert!(
            flights.inner.lock().unwrap().is_empty(),
            "nothing is kept once every turn ended"
        );
    }

    #[test]
    fn keys_come_from_fields_groups_and_paths() {
        let schema = json!({"components": [
            {"type": "textfield", "key": "companyName"},
            {"type": "text", "text": "no key"},
            {"type": "group", "components": [{"type": "number", "key": "riskScore"}]},
            {"type": "group", "path": "address.main", "components": [{"type": "textfield", "key": "street"}]},
            {"type": "textfield", "key": "contact.email"}
        ]});
        let keys: Vec<_> = field_keys(&schema).into_iter().collect();
        assert_eq!(keys, ["address", "companyName", "contact", "riskScore"]);
    }
}
