//! `ramp.v1.FormService`.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::not_built;
use crate::proto::form_service_server::FormService;
use crate::proto::*;
use crate::store::Store;

pub struct FormApi {
    #[allow(dead_code)] // used from issue #6 on
    store: Store,
}

impl FormApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

type PendingFormsStream = Pin<Box<dyn Stream<Item = Result<PendingFormsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FormService for FormApi {
    async fn create_form_task(
        &self,
        _request: Request<CreateFormTaskRequest>,
    ) -> Result<Response<CreateFormTaskResponse>, Status> {
        Err(not_built("CreateFormTask", 6))
    }

    async fn get_form_task(
        &self,
        _request: Request<GetFormTaskRequest>,
    ) -> Result<Response<GetFormTaskResponse>, Status> {
        Err(not_built("GetFormTask", 6))
    }

    async fn list_form_tasks(
        &self,
        _request: Request<ListFormTasksRequest>,
    ) -> Result<Response<ListFormTasksResponse>, Status> {
        Err(not_built("ListFormTasks", 6))
    }

    type PendingFormsStream = PendingFormsStream;

    async fn pending_forms(
        &self,
        _request: Request<PendingFormsRequest>,
    ) -> Result<Response<Self::PendingFormsStream>, Status> {
        Err(not_built("PendingForms", 6))
    }

    async fn save_draft(
        &self,
        _request: Request<SaveDraftRequest>,
    ) -> Result<Response<SaveDraftResponse>, Status> {
        Err(not_built("SaveDraft", 6))
    }

    async fn submit_form(
        &self,
        _request: Request<SubmitFormRequest>,
    ) -> Result<Response<SubmitFormResponse>, Status> {
        Err(not_built("SubmitForm", 7))
    }
}
