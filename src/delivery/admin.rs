//! What an operator does with deliveries: lists those that need them, retries one,
//! or gives one up.

use super::{DeliveryRecord, DeliveryState, Dispatcher};
use crate::auth::Caller;
use crate::ids::SubmissionId;
use crate::paging::Page;
use crate::store::deliveries as rows;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryAdminError {
    #[error("delivery not found")]
    NotFound,
    /// The delivery is in a state the action does not apply to; says which.
    #[error("{0}")]
    WrongState(String),
    #[error("invalid page token")]
    InvalidPageToken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The deliveries' admin actions.
#[derive(Clone)]
pub struct DeliveryAdmin {
    store: Store,
    dispatcher: Dispatcher,
}

impl DeliveryAdmin {
    pub fn new(store: Store, dispatcher: Dispatcher) -> Self {
        Self { store, dispatcher }
    }

    /// Deliveries in `states` (failed and undeliverable when empty), oldest first.
    pub async fn list(
        &self,
        states: Vec<DeliveryState>,
        page_size: usize,
        page_token: Option<String>,
    ) -> Result<(Vec<DeliveryRecord>, Option<String>), DeliveryAdminError> {
        let states = if states.is_empty() {
            vec![DeliveryState::Failed, DeliveryState::Undeliverable]
        } else {
            states
        };
        // The stored words, as tokens handed out before states were types hold them.
        let words: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let page = Page::new(
            format!("deliveries|{words:?}"),
            page_size,
            page_token.as_deref(),
        )
        .ok_or(DeliveryAdminError::InvalidPageToken)?;
        let mut found = rows::needing_attention(
            &self.store.client().await?,
            &states,
            page.after(),
            page.limit(),
        )
        .await?;
        let next = page.finish(&mut found, |row| (row.created_at, row.id.into()));
        Ok((found, next))
    }

    /// Makes a failed or undeliverable delivery pending again and wakes this
    /// replica's dispatcher.
    pub async fn retry(
        &self,
        caller: &Caller,
        id: SubmissionId,
    ) -> Result<DeliveryRecord, DeliveryAdminError> {
        let client = self.store.client().await?;
        if !rows::retry(&client, id).await? {
            return Err(why_not(&client, id, "failed or undeliverable").await);
        }
        tracing::info!(delivery = %id, admin = %caller.email, "delivery retried by an admin");
        self.dispatcher.wake();
        rows::record_by_id(&client, id)
            .await?
            .ok_or(DeliveryAdminError::NotFound)
    }

    /// Gives up a failed delivery: undeliverable, with the admin's reason.
    pub async fn abandon(
        &self,
        caller: &Caller,
        id: SubmissionId,
        reason: &str,
    ) -> Result<DeliveryRecord, DeliveryAdminError> {
        let client = self.store.client().await?;
        let note = format!("abandoned by {}: {reason}", caller.email);
        if !rows::abandon(&client, id, &note).await? {
            return Err(why_not(&client, id, "failed").await);
        }
        tracing::warn!(delivery = %id, admin = %caller.email, %reason, "delivery abandoned by an admin");
        rows::record_by_id(&client, id)
            .await?
            .ok_or(DeliveryAdminError::NotFound)
    }
}

/// Why an action found nothing to change: the delivery is gone, or in another
/// state than `expected`.
async fn why_not(
    client: &deadpool_postgres::Object,
    id: SubmissionId,
    expected: &str,
) -> DeliveryAdminError {
    match rows::record_by_id(client, id).await {
        Ok(Some(record)) => DeliveryAdminError::WrongState(format!(
            "the delivery is {}, not {expected}",
            record.delivery.state
        )),
        Ok(None) => DeliveryAdminError::NotFound,
        Err(error) => error.into(),
    }
}
