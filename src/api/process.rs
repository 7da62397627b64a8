//! `ramp.v1.ProcessService`.

use tonic::{Request, Response, Status};

use super::not_built;
use crate::proto::process_service_server::ProcessService;
use crate::proto::*;
use crate::store::Store;

pub struct ProcessApi {
    #[allow(dead_code)] // used from issue #5 on
    store: Store,
}

impl ProcessApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl ProcessService for ProcessApi {
    async fn start_process(
        &self,
        _request: Request<StartProcessRequest>,
    ) -> Result<Response<StartProcessResponse>, Status> {
        Err(not_built("StartProcess", 5))
    }

    async fn get_process(
        &self,
        _request: Request<GetProcessRequest>,
    ) -> Result<Response<GetProcessResponse>, Status> {
        Err(not_built("GetProcess", 5))
    }

    async fn list_processes(
        &self,
        _request: Request<ListProcessesRequest>,
    ) -> Result<Response<ListProcessesResponse>, Status> {
        Err(not_built("ListProcesses", 5))
    }

    async fn cancel_process(
        &self,
        _request: Request<CancelProcessRequest>,
    ) -> Result<Response<CancelProcessResponse>, Status> {
        Err(not_built("CancelProcess", 5))
    }
}
