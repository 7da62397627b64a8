//! The typed test client: one caller of the API (a connection and a bearer token),
//! whose methods read as the test's sentence (`app.as_user(&ann).start("VOE")`).
//!
//! Each method sends one request (the ordinary one, or the message a test wrote,
//! bad fields and all) and answers the message inside the response, or the call's
//! `tonic::Status`, so that a test still asserts a refusal with `refused(...)`. A
//! test that sends something odd on the wire on purpose (headers or metadata of its
//! own, no token, gRPC-web bytes) goes around the client.

use std::net::SocketAddr;

use ramp::proto::admin_service_client::AdminServiceClient;
use ramp::proto::form_service_client::FormServiceClient;
use ramp::proto::process_service_client::ProcessServiceClient;
use ramp::proto::*;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::helpers::{TestApp, token, with_token};

/// The admin every test that needs one acts as.
pub const ADMIN: &str = "admin@example.com";
/// The worker every test that needs one acts as.
pub const WORKER: &str = "worker@example.com";

/// A bearer token of an admin.
pub fn admin_token() -> String {
    token(ADMIN, &["ramp-admin"])
}

/// A bearer token of the worker.
pub fn worker_token() -> String {
    token(WORKER, &["ramp-worker"])
}

/// One caller: who it is (`email`, for starts on its own key), its bearer token and,
/// when tagged, the request id its calls carry.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    email: String,
    token: String,
    request_id: Option<String>,
}

impl TestApp {
    /// A client of the user `email`, with no roles.
    pub fn as_user(&self, email: &str) -> Client {
        Client::at(self.addr(), email, token(email, &[]))
    }

    /// A client of a user in the engine's `groups` (its engine user id: its email).
    pub fn in_groups(&self, email: &str, groups: &[&str]) -> Client {
        Client::at(
            self.addr(),
            email,
            crate::helpers::token_in_groups(email, groups),
        )
    }

    /// A client of the worker (role `ramp-worker`).
    pub fn as_worker(&self) -> Client {
        Client::at(self.addr(), WORKER, worker_token())
    }

    /// A client of an admin (role `ramp-admin`).
    pub fn as_admin(&self) -> Client {
        Client::at(self.addr(), ADMIN, admin_token())
    }

    /// A client presenting `token`, one the test made itself (odd claims, another
    /// signer). It has no business key of its own: start with `start_for`.
    pub fn bearing(&self, token: impl Into<String>) -> Client {
        Client::at(self.addr(), "", token.into())
    }
}

impl Client {
    /// A client of the server at `addr`; it connects on its first call.
    pub fn at(addr: SocketAddr, email: &str, token: String) -> Client {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("a valid URI")
            .connect_lazy();
        Client::on(&channel, email, token)
    }

    /// A client on a connection it shares with others (as many callers of one
    /// browser or proxy do).
    pub fn on(channel: &Channel, email: &str, token: String) -> Client {
        Client {
            channel: channel.clone(),
            email: email.to_owned(),
            token,
            request_id: None,
        }
    }

    /// This caller, its calls tagged with `request_id` (`x-request-id`), so that a
    /// test can count what one call asked the engine.
    pub fn tagged(mut self, request_id: &str) -> Client {
        self.request_id = Some(request_id.to_owned());
        self
    }

    /// The user `email`, with no roles, on a shared connection.
    pub fn user_on(channel: &Channel, email: &str) -> Client {
        Client::on(channel, email, token(email, &[]))
    }

    /// The worker on a shared connection.
    pub fn worker_on(channel: &Channel) -> Client {
        Client::on(channel, WORKER, worker_token())
    }

    /// `message` as a request carrying this client's token (and its request id).
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = with_token(message, &self.token);
        if let Some(id) = &self.request_id {
            let id = id.parse().expect("a request id is ASCII");
            request.metadata_mut().insert("x-request-id", id);
        }
        request
    }

    fn form_service(&self) -> FormServiceClient<Channel> {
        FormServiceClient::new(self.channel.clone())
    }

    fn process_service(&self) -> ProcessServiceClient<Channel> {
        ProcessServiceClient::new(self.channel.clone())
    }

    fn admin_service(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    // ProcessService.

    /// Starts `definition` for this client's own business key.
    pub async fn start(&self, definition: &str) -> Result<Process, Status> {
        self.start_for(definition, &self.email).await
    }

    /// Starts `definition` for `business_key` (someone else's, for an admin).
    pub async fn start_for(&self, definition: &str, business_key: &str) -> Result<Process, Status> {
        self.start_with(StartProcessRequest {
            definition_key: definition.into(),
            business_key: business_key.into(),
            ..Default::default()
        })
        .await
    }

    /// Sends a start request as written (variables, a request id).
    pub async fn start_with(&self, request: StartProcessRequest) -> Result<Process, Status> {
        let response = self
            .process_service()
            .start_process(self.request(request))
            .await?;
        Ok(response.into_inner().process.expect("a started process"))
    }

    pub async fn process(&self, id: &str) -> Result<Process, Status> {
        let response = self
            .process_service()
            .get_process(self.request(GetProcessRequest { id: id.into() }))
            .await?;
        Ok(response.into_inner().process.expect("a process"))
    }

    pub async fn processes(
        &self,
        request: ListProcessesRequest,
    ) -> Result<ListProcessesResponse, Status> {
        let response = self
            .process_service()
            .list_processes(self.request(request))
            .await?;
        Ok(response.into_inner())
    }

    pub async fn cancel(&self, id: &str, reason: &str) -> Result<Process, Status> {
        let response = self
            .process_service()
            .cancel_process(self.request(CancelProcessRequest {
                id: id.into(),
                reason: reason.into(),
            }))
            .await?;
        Ok(response.into_inner().process.expect("a cancelled process"))
    }

    pub async fn startable(&self) -> Result<Vec<StartableProcess>, Status> {
        let response = self
            .process_service()
            .list_startable_processes(self.request(ListStartableProcessesRequest {}))
            .await?;
        Ok(response.into_inner().processes)
    }

    // FormService.

    /// Creates (or repeats) a form task, as the worker does.
    pub async fn create_form_task(
        &self,
        request: CreateFormTaskRequest,
    ) -> Result<CreateFormTaskResponse, Status> {
        let response = self
            .form_service()
            .create_form_task(self.request(request))
            .await?;
        Ok(response.into_inner())
    }

    /// Creates a form task, as the worker does, and answers its id.
    pub async fn create_form(&self, request: CreateFormTaskRequest) -> Result<String, Status> {
        let created = self.create_form_task(request).await?;
        let summary = created.form_task.and_then(|task| task.summary);
        Ok(summary.expect("a form task").id)
    }

    pub async fn form(&self, id: &str) -> Result<FormTask, Status> {
        let response = self
            .form_service()
            .get_form_task(self.request(GetFormTaskRequest { id: id.into() }))
            .await?;
        Ok(response.into_inner().form_task.expect("a form task"))
    }

    pub async fn forms(
        &self,
        request: ListFormTasksRequest,
    ) -> Result<ListFormTasksResponse, Status> {
        let response = self
            .form_service()
            .list_form_tasks(self.request(request))
            .await?;
        Ok(response.into_inner())
    }

    pub async fn claim(&self, id: &str) -> Result<FormTask, Status> {
        let response = self
            .form_service()
            .claim_form_task(self.request(ClaimFormTaskRequest { id: id.into() }))
            .await?;
        Ok(response.into_inner().form_task.expect("a form task"))
    }

    pub async fn unclaim(&self, id: &str) -> Result<FormTaskSummary, Status> {
        let response = self
            .form_service()
            .unclaim_form_task(self.request(UnclaimFormTaskRequest { id: id.into() }))
            .await?;
        Ok(response.into_inner().form_task.expect("a form task"))
    }

    pub async fn save_draft(
        &self,
        id: &str,
        data: prost_types::Struct,
    ) -> Result<FormTaskSummary, Status> {
        let response = self
            .form_service()
            .save_draft(self.request(SaveDraftRequest {
                id: id.into(),
                data: Some(data),
            }))
            .await?;
        Ok(response.into_inner().form_task.expect("a form task"))
    }

    pub async fn submit(&self, id: &str, data: prost_types::Struct) -> Result<Submission, Status> {
        self.submit_once(id, data, "").await
    }

    /// Submits under `request_id`: a repeat with the same id answers the first.
    pub async fn submit_once(
        &self,
        id: &str,
        data: prost_types::Struct,
        request_id: &str,
    ) -> Result<Submission, Status> {
        let response = self
            .form_service()
            .submit_form(self.request(SubmitFormRequest {
                id: id.into(),
                data: Some(data),
                request_id: request_id.into(),
            }))
            .await?;
        Ok(response.into_inner().submission.expect("a submission"))
    }

    /// Opens the inbox stream, resuming after `cursor` (or from a snapshot, for "").
    pub async fn pending_forms(
        &self,
        cursor: &str,
    ) -> Result<Streaming<PendingFormsResponse>, Status> {
        let response = self
            .form_service()
            .pending_forms(self.request(PendingFormsRequest {
                cursor: cursor.into(),
            }))
            .await?;
        Ok(response.into_inner())
    }

    // AdminService.

    pub async fn deliveries(
        &self,
        request: ListDeliveriesRequest,
    ) -> Result<ListDeliveriesResponse, Status> {
        let response = self
            .admin_service()
            .list_deliveries(self.request(request))
            .await?;
        Ok(response.into_inner())
    }

    pub async fn retry(&self, delivery: &str) -> Result<DeliveryRecord, Status> {
        let response = self
            .admin_service()
            .retry_delivery(self.request(RetryDeliveryRequest {
                id: delivery.into(),
            }))
            .await?;
        Ok(response.into_inner().delivery.expect("a delivery"))
    }

    pub async fn abandon(&self, delivery: &str, reason: &str) -> Result<DeliveryRecord, Status> {
        let response = self
            .admin_service()
            .abandon_delivery(self.request(AbandonDeliveryRequest {
                id: delivery.into(),
                reason: reason.into(),
            }))
            .await?;
        Ok(response.into_inner().delivery.expect("a delivery"))
    }

    pub async fn reassign(&self, form: &str, assignee: &str) -> Result<FormTaskSummary, Status> {
        let response = self
            .admin_service()
            .reassign_form_task(self.request(ReassignFormTaskRequest {
                form_task_id: form.into(),
                assignee: assignee.into(),
            }))
            .await?;
        Ok(response.into_inner().form_task.expect("a form task"))
    }

    pub async fn user_forms(
        &self,
        request: ListUserFormTasksRequest,
    ) -> Result<ListUserFormTasksResponse, Status> {
        let response = self
            .admin_service()
            .list_user_form_tasks(self.request(request))
            .await?;
        Ok(response.into_inner())
    }

    pub async fn user_processes(
        &self,
        request: ListUserProcessesRequest,
    ) -> Result<ListUserProcessesResponse, Status> {
        let response = self
            .admin_service()
            .list_user_processes(self.request(request))
            .await?;
        Ok(response.into_inner())
    }
}
