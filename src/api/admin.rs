//! `ramp.v1.AdminService`: admins only.

use tonic::{Request, Response, Status};

use super::caller;
use super::form::{delivery_state, status_name, summary_to_proto};
use super::process::{timestamp, to_proto};
use super::status::status;
use super::validate::Violations;
use crate::admin::Admin;
use crate::auth::Caller;
use crate::delivery::DeliveryState as State;
use crate::proto::admin_service_server::AdminService;
use crate::proto::*;

/// Page size when the client asks for none.
const DEFAULT_PAGE_SIZE: usize = 50;

pub struct AdminApi {
    admin: Admin,
}

impl AdminApi {
    pub fn new(admin: Admin) -> Self {
        Self { admin }
    }
}

/// The caller, if an admin.
fn admin<T>(request: &Request<T>) -> Result<Caller, Status> {
    let caller = caller(request)?;
    if !caller.admin {
        return Err(Status::permission_denied(
            "AdminService needs the ramp-admin role",
        ));
    }
    Ok(caller)
}

fn record_to_proto(row: crate::delivery::DeliveryRecord) -> DeliveryRecord {
    let d = row.delivery;
    DeliveryRecord {
        id: row.id.to_string(),
        form_task_id: row.form_task_id.to_string(),
        form_name: row.form_name,
        assignee: row.assignee,
        business_key: row.business_key,
        message_name: row.message_name,
        process_instance_id: row.process_instance_id,
        delivery: Some(Delivery {
            state: delivery_state(d.state) as i32,
            attempts: d.attempts,
            last_error: d.last_error.unwrap_or_default(),
            next_attempt_time: (d.state == State::Pending).then(|| timestamp(d.next_attempt_at)),
            deliver_time: d.delivered_at.map(timestamp),
        }),
        create_time: Some(timestamp(row.created_at)),
        engine_error: d.engine_error.unwrap_or_default(),
    }
}

fn page_size(size: i32) -> usize {
    if size == 0 {
        DEFAULT_PAGE_SIZE
    } else {
        size as usize
    }
}

fn token(token: String) -> Option<String> {
    Some(token).filter(|t| !t.is_empty())
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_deliveries(
        &self,
        request: Request<ListDeliveriesRequest>,
    ) -> Result<Response<ListDeliveriesResponse>, Status> {
        admin(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        v.page(r.page_size, &r.page_token);
        let mut states = Vec::new();
        for state in &r.states {
            match DeliveryState::try_from(*state) {
                Ok(DeliveryState::Failed) => states.push(State::Failed),
                Ok(DeliveryState::Undeliverable) => states.push(State::Undeliverable),
                Ok(DeliveryState::Refused) => states.push(State::Refused),
                _ => v.add(
                    "states",
                    "only FAILED, UNDELIVERABLE and REFUSED may be listed",
                ),
            }
        }
        v.check()?;
        let (found, next) = self
            .admin
            .deliveries(states, page_size(r.page_size), token(r.page_token))
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
        let mut v = Violations::new();
        let id = v.uuid("id", &request.get_ref().id);
        v.check()?;
        let record = self
            .admin
            .retry(&caller, id.expect("checked").into())
            .await
            .map_err(status)?;
        Ok(Response::new(RetryDeliveryResponse {
            delivery: Some(record_to_proto(record)),
        }))
    }

    async fn abandon_delivery(
        &self,
        request: Request<AbandonDeliveryRequest>,
    ) -> Result<Response<AbandonDeliveryResponse>, Status> {
        let caller = admin(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let id = v.uuid("id", &r.id);
        if r.reason.trim().is_empty() {
            v.add("reason", "is required");
        }
        v.free_text("reason", &r.reason);
        v.check()?;
        let record = self
            .admin
            .abandon(&caller, id.expect("checked").into(), r.reason.trim())
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
        let r = request.into_inner();
        let mut v = Violations::new();
        let id = v.uuid("form_task_id", &r.form_task_id);
        let assignee = v.email("assignee", &r.assignee, true);
        v.check()?;
        let summary = self
            .admin
            .reassign(
                &caller,
                id.expect("checked").into(),
                &assignee.expect("checked"),
            )
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
        let r = request.into_inner();
        let mut v = Violations::new();
        let user = v.email("user", &r.user, true);
        v.page(r.page_size, &r.page_token);
        v.known_enum::<FormTaskStatus>("statuses", &r.statuses);
        v.check()?;
        let statuses = r
            .statuses
            .iter()
            .filter_map(|s| FormTaskStatus::try_from(*s).ok().and_then(status_name))
            .collect();
        let (found, next) = self
            .admin
            .user_forms(
                &caller,
                user.expect("checked"),
                statuses,
                page_size(r.page_size),
                token(r.page_token),
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
        let r = request.into_inner();
        let mut v = Violations::new();
        let user = v.email("user", &r.user, true);
        v.page(r.page_size, &r.page_token);
        v.check()?;
        let (found, next) = self
            .admin
            .user_processes(
                &caller,
                user.expect("checked"),
                page_size(r.page_size),
                token(r.page_token),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(ListUserProcessesResponse {
            processes: found.into_iter().map(to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
}
