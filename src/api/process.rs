//! `ramp.v1.ProcessService`.

use prost_types::Timestamp;
use tonic::{Request, Response, Status};

use super::caller;
use super::status::status;
use super::validate::Violations;
use crate::processes::definitions::Definitions;
use crate::processes::{self, ListRequest, Process, ProcessError, Processes, StartRequest};
use crate::proto::process_service_server::ProcessService;
use crate::proto::*;

/// Page size when the client asks for none.
const DEFAULT_PAGE_SIZE: usize = 50;

pub struct ProcessApi {
    processes: Processes,
    definitions: Definitions,
    /// Definitions users may start; admins may start any.
    startable: Vec<String>,
}

impl ProcessApi {
    pub fn new(processes: Processes, definitions: Definitions, startable: Vec<String>) -> Self {
        Self {
            processes,
            definitions,
            startable,
        }
    }
}

pub(super) fn timestamp(time: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

fn state_to_proto(state: processes::ProcessState) -> ProcessState {
    match state {
        processes::ProcessState::Starting => ProcessState::Starting,
        processes::ProcessState::Active => ProcessState::Active,
        processes::ProcessState::Completed => ProcessState::Completed,
        processes::ProcessState::Cancelled => ProcessState::Cancelled,
        processes::ProcessState::Terminated => ProcessState::Terminated,
        processes::ProcessState::Failed => ProcessState::Failed,
    }
}

fn state_from_proto(state: ProcessState) -> Option<processes::ProcessState> {
    Some(match state {
        ProcessState::Unspecified => return None,
        ProcessState::Starting => processes::ProcessState::Starting,
        ProcessState::Active => processes::ProcessState::Active,
        ProcessState::Completed => processes::ProcessState::Completed,
        ProcessState::Cancelled => processes::ProcessState::Cancelled,
        ProcessState::Terminated => processes::ProcessState::Terminated,
        ProcessState::Failed => processes::ProcessState::Failed,
    })
}

pub(super) fn to_proto(process: Process) -> crate::proto::Process {
    crate::proto::Process {
        id: process.id.to_string(),
        definition_key: process.definition_key,
        business_key: process.business_key,
        state: state_to_proto(process.state) as i32,
        engine_instance_id: process.engine_instance_id.unwrap_or_default(),
        started_by: process.started_by,
        create_time: Some(timestamp(process.created_at)),
        end_time: process.ended_at.map(timestamp),
        end_reason: process.end_reason.unwrap_or_default(),
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
        v.bpmn_id("definition_key", &request.definition_key, true);
        let business_key = v.email("business_key", &request.business_key, true);
        v.structure("variables", request.variables.as_ref());
        v.id("request_id", &request.request_id, false);
        let variables = match request
            .variables
            .as_ref()
            .map(crate::json::struct_to_json)
            .transpose()
        {
            Ok(variables) => variables.unwrap_or_default(),
            Err(problem) => {
                v.add("variables", problem);
                Default::default()
            }
        };
        v.reserved("variables", &variables);
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
        let started = self
            .processes
            .start(
                &caller,
                StartRequest {
                    definition_key: request.definition_key,
                    business_key,
                    variables,
                    request_id: Some(request.request_id).filter(|r| !r.is_empty()),
                },
            )
            .await
            .map_err(status)?;
        Ok(Response::new(StartProcessResponse {
            process: Some(to_proto(started)),
        }))
    }

    async fn get_process(
        &self,
        request: Request<GetProcessRequest>,
    ) -> Result<Response<GetProcessResponse>, Status> {
        let caller = caller(&request)?;
        let mut v = Violations::new();
        let id = v.uuid("id", &request.get_ref().id);
        v.check()?;
        let process = self
            .processes
            .get(&caller, id.expect("checked"))
            .await
            .map_err(status)?;
        Ok(Response::new(GetProcessResponse {
            process: Some(to_proto(process)),
        }))
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
        v.bpmn_id("definition_key", &request.definition_key, false);
        v.known_enum::<ProcessState>("states", &request.states);
        v.check()?;
        if let Some(key) = &business_key
            && !caller.may_act_for(key)
        {
            return Err(Status::permission_denied(
                "users list only their own processes",
            ));
        }
        let states = request
            .states
            .iter()
            .filter_map(|s| ProcessState::try_from(*s).ok().and_then(state_from_proto))
            .collect();
        let (found, next) = self
            .processes
            .list(
                &caller,
                ListRequest {
                    business_key,
                    definition_key: Some(request.definition_key).filter(|d| !d.is_empty()),
                    states,
                    page_size: if request.page_size == 0 {
                        DEFAULT_PAGE_SIZE
                    } else {
                        request.page_size as usize
                    },
                    page_token: Some(request.page_token).filter(|t| !t.is_empty()),
                },
            )
            .await
            .map_err(status)?;
        Ok(Response::new(ListProcessesResponse {
            processes: found.into_iter().map(to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn list_startable_processes(
        &self,
        request: Request<ListStartableProcessesRequest>,
    ) -> Result<Response<ListStartableProcessesResponse>, Status> {
        let caller = caller(&request)?;
        let found = self
            .definitions
            .startable(caller.admin, &self.startable)
            .await
            .map_err(|error| status(ProcessError::from(error)))?;
        Ok(Response::new(ListStartableProcessesResponse {
            processes: found
                .into_iter()
                .map(|s| StartableProcess {
                    key: s.key,
                    name: s.name,
                    description: s.description,
                    version: s.version,
                })
                .collect(),
        }))
    }

    async fn cancel_process(
        &self,
        request: Request<CancelProcessRequest>,
    ) -> Result<Response<CancelProcessResponse>, Status> {
        let caller = caller(&request)?;
        let mut v = Violations::new();
        let id = v.uuid("id", &request.get_ref().id);
        v.free_text("reason", &request.get_ref().reason);
        v.check()?;
        let process = self
            .processes
            .cancel(&caller, id.expect("checked"), &request.get_ref().reason)
            .await
            .map_err(status)?;
        Ok(Response::new(CancelProcessResponse {
            process: Some(to_proto(process)),
        }))
    }
}
