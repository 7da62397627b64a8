//! `ramp.v1.ProcessService`.

use tonic::{Request, Response, Status};

use super::validate::Violations;
use super::{caller, not_built};
use crate::proto::process_service_server::ProcessService;
use crate::proto::*;
use crate::store::Store;

pub struct ProcessApi {
    #[allow(dead_code)] // used from issue #5 on
    store: Store,
    /// Definitions users may start; admins may start any.
    startable: Vec<String>,
}

impl ProcessApi {
    pub fn new(store: Store, startable: Vec<String>) -> Self {
        Self { store, startable }
    }
}

#[tonic::async_trait]
impl ProcessService for ProcessApi {
    async fn start_process(
        &self,
        request: Request<StartProcessRequest>,
    ) -> Result<Response<StartProcessResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut v = Violations::new();
        v.key("definition_key", &request.definition_key, true);
        let business_key = v.email("business_key", &request.business_key, true);
        v.structure("variables", request.variables.as_ref());
        v.id("request_id", &request.request_id, false);
        v.check()?;
        let business_key = business_key.expect("checked");

        if !caller.admin && !self.startable.iter().any(|d| d == &request.definition_key) {
            return Err(Status::permission_denied(format!(
                "users may not start process definition {:?}",
                request.definition_key
            )));
        }
        if !caller.may_act_for(&business_key) {
            return Err(Status::permission_denied(
                "users start processes only with their own email as business key",
            ));
        }
        Err(not_built("StartProcess", 5))
    }

    async fn get_process(
        &self,
        request: Request<GetProcessRequest>,
    ) -> Result<Response<GetProcessResponse>, Status> {
        let _caller = caller(&request)?;
        let mut v = Violations::new();
        v.uuid("id", &request.get_ref().id);
        v.check()?;
        Err(not_built("GetProcess", 5))
    }

    async fn list_processes(
        &self,
        request: Request<ListProcessesRequest>,
    ) -> Result<Response<ListProcessesResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut v = Violations::new();
        v.page(request.page_size, &request.page_token);
        let business_key = v.email("business_key", &request.business_key, false);
        v.key("definition_key", &request.definition_key, false);
        v.known_enum::<ProcessState>("states", &request.states);
        v.check()?;
        if let Some(key) = &business_key
            && !caller.may_act_for(key)
        {
            return Err(Status::permission_denied(
                "users list only their own processes",
            ));
        }
        Err(not_built("ListProcesses", 5))
    }

    async fn cancel_process(
        &self,
        request: Request<CancelProcessRequest>,
    ) -> Result<Response<CancelProcessResponse>, Status> {
        let _caller = caller(&request)?;
        let mut v = Violations::new();
        v.uuid("id", &request.get_ref().id);
        v.free_text("reason", &request.get_ref().reason);
        v.check()?;
        Err(not_built("CancelProcess", 5))
    }
}
