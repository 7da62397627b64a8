//! AdminService's logic: deliveries that need an operator (list, retry, abandon:
//! `delivery::admin`), reassigning a pending form, and one user's forms and
//! processes. Only admins get here: the API lets a caller in only when [`authorize`]
//! does, before it reads the request.

use crate::auth::Caller;
use crate::delivery::admin::{DeliveryAdmin, DeliveryAdminError};
use crate::delivery::{DeliveryRecord, DeliveryState, Dispatcher};
use crate::email::Email;
use crate::forms::{FormError, FormState, FormSummary, Forms};
use crate::ids::{FormTaskId, SubmissionId};
use crate::processes::{Process, ProcessError, Processes};
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

impl From<DeliveryAdminError> for AdminError {
    fn from(error: DeliveryAdminError) -> Self {
        match error {
            DeliveryAdminError::NotFound => Self::NotFound,
            DeliveryAdminError::WrongState(message) => Self::FailedPrecondition(message),
            DeliveryAdminError::InvalidPageToken => Self::InvalidPageToken,
            DeliveryAdminError::Store(error) => Self::Store(error),
        }
    }
}

#[derive(Clone)]
pub struct Admin {
    deliveries: DeliveryAdmin,
    forms: Forms,
    processes: Processes,
}

impl Admin {
    pub fn new(store: Store, forms: Forms, processes: Processes, dispatcher: Dispatcher) -> Self {
        Self {
            deliveries: DeliveryAdmin::new(store, dispatcher),
            forms,
            processes,
        }
    }

    /// Deliveries in `states` (failed and undeliverable when empty), oldest first.
    pub async fn deliveries(
        &self,
        states: Vec<DeliveryState>,
        page_size: usize,
        page_token: Option<String>,
    ) -> Result<(Vec<DeliveryRecord>, Option<String>), AdminError> {
        Ok(self.deliveries.list(states, page_size, page_token).await?)
    }

    /// See [`DeliveryAdmin::retry`].
    pub async fn retry(
        &self,
        caller: &Caller,
        id: SubmissionId,
    ) -> Result<DeliveryRecord, AdminError> {
        Ok(self.deliveries.retry(caller, id).await?)
    }

    /// See [`DeliveryAdmin::abandon`].
    pub async fn abandon(
        &self,
        caller: &Caller,
        id: SubmissionId,
        reason: &str,
    ) -> Result<DeliveryRecord, AdminError> {
        Ok(self.deliveries.abandon(caller, id, reason).await?)
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
                crate::processes::ListProcesses {
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
            user_id: "ann@example.com".into(),
            groups: Vec::new(),
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
