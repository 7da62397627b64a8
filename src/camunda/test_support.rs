//! Calls ramp itself does not make: the tests and tools use them to drive the engine
//! and to look at what ramp did there (how many requests a client sent, an
//! instance's variables, a correlation, the subscriptions an instance waits on).

use reqwest::Method;

use super::types::{CorrelationMessage, CorrelationResult, EventSubscription};
use super::{Camunda, CamundaError, Variables, path};

/// Used by the tests and tools only.
impl Camunda {
    /// How many requests this client (and its clones) sent.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The instance's variables, typed as the engine holds them.
    pub async fn process_variables(&self, id: &str) -> Result<Variables, CamundaError> {
        self.get(
            &format!("/process-instance/{}/variables", path(id)),
            &[("deserializeValues", "false")],
        )
        .await
    }

    /// Correlates a message; with `result_enabled` the engine says what it hit.
    pub async fn correlate(
        &self,
        message: &CorrelationMessage,
    ) -> Result<Vec<CorrelationResult>, CamundaError> {
        let body = self
            .send(self.request(Method::POST, "/message").json(message))
            .await?;
        if body.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_slice(&body).map_err(|e| CamundaError::Decode(e.to_string()))
    }

    pub async fn message_subscriptions(
        &self,
        process_instance_id: &str,
        message_name: &str,
    ) -> Result<Vec<EventSubscription>, CamundaError> {
        self.get(
            "/event-subscription",
            &[
                ("eventType", "message"),
                ("eventName", message_name),
                ("processInstanceId", process_instance_id),
            ],
        )
        .await
    }
}
