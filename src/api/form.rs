//! `ramp.v1.FormService`.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::validate::Violations;
use super::{caller, not_built};
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
        request: Request<CreateFormTaskRequest>,
    ) -> Result<Response<CreateFormTaskResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        v.id("external_task_id", &r.external_task_id, true);
        v.id("process_instance_id", &r.process_instance_id, true);
        v.id("process_definition_id", &r.process_definition_id, false);
        v.key("process_definition_key", &r.process_definition_key, false);
        v.email("business_key", &r.business_key, true);
        v.key("activity_id", &r.activity_id, true);
        v.id("activity_instance_id", &r.activity_instance_id, false);
        v.id("execution_id", &r.execution_id, false);
        v.key("form_name", &r.form_name, false);
        v.key("message_name", &r.message_name, false);
        v.email("assignee", &r.assignee, false);
        v.structure("prefill", r.prefill.as_ref());
        v.key("tenant_id", &r.tenant_id, false);
        v.key("topic_name", &r.topic_name, false);
        v.check()?;
        if !(caller.worker || caller.admin) {
            return Err(Status::permission_denied("only workers create form tasks"));
        }
        Err(not_built("CreateFormTask", 6))
    }

    async fn get_form_task(
        &self,
        request: Request<GetFormTaskRequest>,
    ) -> Result<Response<GetFormTaskResponse>, Status> {
        let _caller = caller(&request)?;
        let mut v = Violations::new();
        v.uuid("id", &request.get_ref().id);
        v.check()?;
        Err(not_built("GetFormTask", 6))
    }

    async fn list_form_tasks(
        &self,
        request: Request<ListFormTasksRequest>,
    ) -> Result<Response<ListFormTasksResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        v.page(r.page_size, &r.page_token);
        let assignee = v.email("assignee", &r.assignee, false);
        v.known_enum::<FormTaskStatus>("statuses", &r.statuses);
        v.email("business_key", &r.business_key, false);
        v.id(
            "root_process_instance_id",
            &r.root_process_instance_id,
            false,
        );
        v.check()?;
        if let Some(assignee) = &assignee
            && !(caller.worker || caller.may_act_for(assignee))
        {
            return Err(Status::permission_denied("users list only their own forms"));
        }
        Err(not_built("ListFormTasks", 6))
    }

    type PendingFormsStream = PendingFormsStream;

    async fn pending_forms(
        &self,
        request: Request<PendingFormsRequest>,
    ) -> Result<Response<Self::PendingFormsStream>, Status> {
        let _caller = caller(&request)?;
        let mut v = Violations::new();
        v.token("cursor", &request.get_ref().cursor);
        v.check()?;
        Err(not_built("PendingForms", 6))
    }

    async fn save_draft(
        &self,
        request: Request<SaveDraftRequest>,
    ) -> Result<Response<SaveDraftResponse>, Status> {
        let _caller = caller(&request)?;
        let mut v = Violations::new();
        v.uuid("id", &request.get_ref().id);
        v.structure("data", request.get_ref().data.as_ref());
        v.check()?;
        Err(not_built("SaveDraft", 6))
    }

    async fn submit_form(
        &self,
        request: Request<SubmitFormRequest>,
    ) -> Result<Response<SubmitFormResponse>, Status> {
        let _caller = caller(&request)?;
        let mut v = Violations::new();
        v.uuid("id", &request.get_ref().id);
        v.structure("data", request.get_ref().data.as_ref());
        v.id("request_id", &request.get_ref().request_id, false);
        v.check()?;
        Err(not_built("SubmitForm", 7))
    }
}
