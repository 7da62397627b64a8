//! AdminService's logic: deliveries that need an operator (list, retry, abandon),
//! reassigning a pending form, and one user's forms and processes. Only admins get
//! here: the API lets a caller in only when [`authorize`] does, before it reads the
//! request.

use crate::auth::Caller;
use crate::delivery::{DeliveryRecord, DeliveryState, Dispatcher};
use crate::email::Email;
use crate::forms::{FormError, FormState, FormSummary, Forms};
use crate::ids::{FormTaskId, SubmissionId};
use crate::processes::{Process, ProcessError, Processes};
use crate::store::deliveries as rows;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("delivery not found")]
    NotFound,
    /// The caller is not an admin, in words it reads as they are.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("invalid page token")]
    InvalidPageToken,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Form(#[from] FormError),
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// Whether `caller` may use AdminService at all: admins only.
pub fn authorize(caller: &Caller) -> Result<(), AdminError> {
    if caller.admin {
        Ok(())
    } else {
        Err(AdminError::PermissionDenied(
            "AdminService needs the ramp-admin role".into(),
        ))
    }
}

#[derive(Clone)]
pub struct Admin {
    store: Store,
    forms: Forms,
    processes: Processes,
    dispatcher: Dispatcher,
}

impl Admin {
    pub fn new(store: Store, forms: Forms, processes: Processes, dispatcher: Dispatcher) -> Self {
        Self {
            store,
            forms,
            processes,
            dispatcher,
        }
    }

    /// Deliveries in `states` (failed and undeliverable when empty), oldest first.
    pub async fn deliveries(
        &self,
        states: Vec<DeliveryState>,
        page_size: usize,
        page_token: Option<String>,
    ) -> Result<(Vec<DeliveryRecord>, Option<String>), AdminError> {
        let states = if states.is_empty() {
            vec![DeliveryState::Failed, DeliveryState::Undeliverable]
        } else {
            states
        };
        // The stored words, as tokens handed out before states were types hold them.
        let words: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let filter = format!("deliveries|{words:?}");
        let after = match &page_token {
            Some(token) => {
                Some(crate::paging::decode(token, &filter).ok_or(AdminError::InvalidPageToken)?)
            }
            None => None,
        };
        let mut found = rows::needing_attention(
            &self.store.client().await?,
            &states,
            after,
            page_size as i64 + 1,
        )
        .await?;
        let next = crate::paging::finish_page(&mut found, page_size, &filter, |row| {
            (row.created_at, row.id.into())
        });
        Ok((found, next))
    }

    /// Makes a failed or undeliverable delivery pending again and wakes this
    /// replica's dispatcher.
    pub async fn retry(
        &self,
        caller: &Caller,
        id: SubmissionId,
    ) -> Result<DeliveryRecord, AdminError> {
        let client = self.store.client().await?;
        if !rows::retry(&client, id).await? {
            return Err(self.why_not(&client, id, "failed or undeliverable").await);
        }
        tracing::info!(delivery = %id, admin = %caller.email, "delivery retried by an admin");
        self.dispatcher.wake();
        rows::record_by_id(&client, id)
            .await?
            .ok_or(AdminError::NotFound)
    }

    /// Gives up a failed delivery: undeliverable, with the admin's reason.
    pub async fn abandon(
        &self,
        caller: &Caller,
        id: SubmissionId,
        reason: &str,
    ) -> Result<DeliveryRecord, AdminError> {
        let client = self.store.client().await?;
        let note = format!("abandoned by {}: {reason}", caller.email);
        if !rows::abandon(&client, id, &note).await? {
            return Err(self.why_not(&client, id, "failed").await);
        }
        tracing::warn!(delivery = %id, admin = %caller.email, %reason, "delivery abandoned by an admin");
        rows::record_by_id(&client, id)
            .await?
            .ok_or(AdminError::NotFound)
    }

    async fn why_not(
        &self,
        client: &deadpool_postgres::Object,
        id: SubmissionId,
        expected: &str,
    ) -> AdminError {
        match rows::record_by_id(client, id).await {
            Ok(Some(record)) => AdminError::FailedPrecondition(format!(
                "the delivery is {}, not {expected}",
                record.delivery.state
            )),
            Ok(None) => AdminError::NotFound,
            Err(error) => error.into(),
        }
    }

    pub async fn reassign(
        &self,
        caller: &Caller,
        id: FormTaskId,
        assignee: &Email,
    ) -> Result<FormSummary, AdminError> {
        let summary = self.forms.reassign(id, assignee).await?;
        tracing::info!(form = %id, admin = %caller.email, "reassignment by an admin");
        Ok(summary)
    }

    pub async fn user_forms(
        &self,
        caller: &Caller,
        user: Email,
        statuses: Vec<FormState>,
        page_size: usize,
        page_token: Option<String>,
    ) -> Result<(Vec<FormSummary>, Option<String>), AdminError> {
        Ok(self
            .forms
            .list(
                caller,
                crate::forms::ListRequest {
                    assignee: Some(user),
                    statuses,
                    business_key: None,
                    root_process_instance_id: None,
                    page_size,
                    page_token,
                },
            )
            .await?)
    }

    pub async fn user_processes(
        &self,
        caller: &Caller,
        user: Email,
        page_size: usize,
        page_token: Option<String>,
    ) -> Result<(Vec<Process>, Option<String>), AdminError> {
        Ok(self
            .processes
            .list(
                caller,
                crate::processes::ListRequest {
                    business_key: Some(user),
                    definition_key: None,
                    states: Vec::new(),
                    page_size,
                    page_token,
                },
            )
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(admin: bool, worker: bool) -> Caller {
        Caller {
            email: Email::parse("ann@example.com").unwrap(),
            worker,
            admin,
            expires_at: None,
        }
    }

    #[test]
    fn only_admins_use_the_admin_service() {
        assert!(authorize(&caller(true, false)).is_ok());
        for not_admin in [caller(false, false), caller(false, true)] {
            match authorize(&not_admin) {
                Err(AdminError::PermissionDenied(why)) => {
                    assert_eq!(why, "AdminService needs the ramp-admin role")
                }
                other => panic!("expected PermissionDenied, got {other:?}"),
            }
        }
    }
}
