//! `ramp.v1.AdminService`: admins only.

use tonic::{Request, Response, Status};

use super::caller;
use super::convert::{delivery, form_states, timestamp};
use super::form::summary_to_proto;
use super::process::to_proto;
use super::status::status;
use super::validate::{Page, Violations, id_of};
use crate::admin::{self, Admin};
use crate::auth::Caller;
use crate::delivery::{self as outbox, DeliveryRecord as Record};
use crate::email::Email;
use crate::forms::FormState;
use crate::ids::{FormTaskId, SubmissionId};
use crate::proto::admin_service_server::AdminService;
use crate::proto::*;

pub struct AdminApi {
    admin: Admin,
}

impl AdminApi {
    pub fn new(admin: Admin) -> Self {
        Self { admin }
    }
}

/// The caller, if `admin::authorize` lets it in: checked before the request is read,
/// so that a caller who is no admin learns nothing of what its request got wrong.
fn admin<T>(request: &Request<T>) -> Result<Caller, Status> {
    let caller = caller(request)?;
    admin::authorize(&caller).map_err(status)?;
    Ok(caller)
}

fn record_to_proto(record: Record) -> DeliveryRecord {
    let engine_error = record.delivery.engine_error.clone().unwrap_or_default();
    DeliveryRecord {
        id: record.id.to_string(),
        form_task_id: record.form_task_id.to_string(),
        form_name: record.form_name,
        assignee: record.assignee,
        business_key: record.business_key,
        message_name: record.message_name,
        process_instance_id: record.process_instance_id,
        delivery: Some(delivery(record.delivery)),
        create_time: Some(timestamp(record.created_at)),
        engine_error,
    }
}

/// The deliveries an operator asks to see.
struct DeliveryList {
    states: Vec<outbox::DeliveryState>,
    page: Page,
}

impl TryFrom<ListDeliveriesRequest> for DeliveryList {
    type Error = Status;

    fn try_from(r: ListDeliveriesRequest) -> Result<Self, Status> {
        let mut v = Violations::new();
        let page = v.page(r.page_size, &r.page_token);
        let mut states = Vec::new();
        for state in &r.states {
            match DeliveryState::try_from(*state) {
                Ok(DeliveryState::Failed) => states.push(outbox::DeliveryState::Failed),
                Ok(DeliveryState::Undeliverable) => {
                    states.push(outbox::DeliveryState::Undeliverable)
                }
                Ok(DeliveryState::Refused) => states.push(outbox::DeliveryState::Refused),
                _ => v.add(
                    "states",
                    "only FAILED, UNDELIVERABLE and REFUSED may be listed",
                ),
            }
        }
        v.check()?;
        Ok(Self { states, page })
    }
}

/// A delivery to give up, and why.
struct Abandon {
    id: SubmissionId,
    reason: String,
}

impl TryFrom<AbandonDeliveryRequest> for Abandon {
    type Error = Status;

    fn try_from(r: AbandonDeliveryRequest) -> Result<Self, Status> {
        let mut v = Violations::new();
        let id = v.uuid("id", &r.id);
        if r.reason.trim().is_empty() {
            v.add("reason", "is required");
        }
        v.free_text("reason", &r.reason);
        let abandon = id.map(|id| Abandon {
            id: id.into(),
            reason: r.reason.trim().to_owned(),
        });
        v.finish(abandon)
    }
}

/// A pending form to move to another assignee.
struct Reassign {
    id: FormTaskId,
    assignee: Email,
}

impl TryFrom<ReassignFormTaskRequest> for Reassign {
    type Error = Status;

    fn try_from(r: ReassignFormTaskRequest) -> Result<Self, Status> {
        let mut v = Violations::new();
        let id = v.uuid("form_task_id", &r.form_task_id);
        let assignee = v.email("assignee", &r.assignee, true);
        let reassign = id.zip(assignee).map(|(id, assignee)| Reassign {
            id: id.into(),
            assignee,
        });
        v.finish(reassign)
    }
}

/// One user's forms or processes, a page of them.
struct UserList {
    user: Email,
    statuses: Vec<FormState>,
    page: Page,
}

impl UserList {
    fn parse(
        user: &str,
        page_size: i32,
        page_token: &str,
        statuses: &[i32],
    ) -> Result<Self, Status> {
        let mut v = Violations::new();
        let user = v.email("user", user, true);
        let page = v.page(page_size, page_token);
        v.known_enum::<FormTaskStatus>("statuses", statuses);
        let list = user.map(|user| UserList {
            user,
            statuses: form_states(statuses),
            page,
        });
        v.finish(list)
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_deliveries(
        &self,
        request: Request<ListDeliveriesRequest>,
    ) -> Result<Response<ListDeliveriesResponse>, Status> {
        admin(&request)?;
        let list = DeliveryList::try_from(request.into_inner())?;
        let (found, next) = self
            .admin
            .deliveries(list.states, list.page.size, list.page.token)
            .await
            .map_err(status)?;
        Ok(Response::new(ListDeliveriesResponse {
            deliveries: found.into_iter().map(record_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn retry_delivery(
        &self,
        request: Request<RetryDeliveryRequest>,
    ) -> Result<Response<RetryDeliveryResponse>, Status> {
        let caller = admin(&request)?;
        let id = id_of::<SubmissionId>("id", &request.get_ref().id)?;
        let record = self.admin.retry(&caller, id).await.map_err(status)?;
        Ok(Response::new(RetryDeliveryResponse {
            delivery: Some(record_to_proto(record)),
        }))
    }

    async fn abandon_delivery(
        &self,
        request: Request<AbandonDeliveryRequest>,
    ) -> Result<Response<AbandonDeliveryResponse>, Status> {
        let caller = admin(&request)?;
        let abandon = Abandon::try_from(request.into_inner())?;
        let record = self
            .admin
            .abandon(&caller, abandon.id, &abandon.reason)
            .await
            .map_err(status)?;
        Ok(Response::new(AbandonDeliveryResponse {
            delivery: Some(record_to_proto(record)),
        }))
    }

    async fn reassign_form_task(
        &self,
        request: Request<ReassignFormTaskRequest>,
    ) -> Result<Response<ReassignFormTaskResponse>, Status> {
        let caller = admin(&request)?;
        let reassign = Reassign::try_from(request.into_inner())?;
        let summary = self
            .admin
            .reassign(&caller, reassign.id, &reassign.assignee)
            .await
            .map_err(status)?;
        Ok(Response::new(ReassignFormTaskResponse {
            form_task: Some(summary_to_proto(summary)),
        }))
    }

    async fn list_user_form_tasks(
        &self,
        request: Request<ListUserFormTasksRequest>,
    ) -> Result<Response<ListUserFormTasksResponse>, Status> {
        let caller = admin(&request)?;
        let r = request.get_ref();
        let list = UserList::parse(&r.user, r.page_size, &r.page_token, &r.statuses)?;
        let (found, next) = self
            .admin
            .user_forms(
                &caller,
                list.user,
                list.statuses,
                list.page.size,
                list.page.token,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(ListUserFormTasksResponse {
            form_tasks: found.into_iter().map(summary_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn list_user_processes(
        &self,
        request: Request<ListUserProcessesRequest>,
    ) -> Result<Response<ListUserProcessesResponse>, Status> {
        let caller = admin(&request)?;
        let r = request.get_ref();
        let list = UserList::parse(&r.user, r.page_size, &r.page_token, &[])?;
        let (found, next) = self
            .admin
            .user_processes(&caller, list.user, list.page.size, list.page.token)
            .await
            .map_err(status)?;
        Ok(Response::new(ListUserProcessesResponse {
            processes: found.into_iter().map(to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
}
