//! `ramp.v1.ProcessService`.

use tonic::{Request, Response, Status};

use super::caller;
use super::convert::timestamp;
use super::status::status;
use super::validate::{Violations, id_of, non_empty};
use crate::ids::ProcessId;
use crate::processes::definitions::Definitions;
use crate::processes::{self, CancelProcess, ListProcesses, Process, Processes, StartProcess};
use crate::proto::process_service_server::ProcessService;
use crate::proto::*;

pub struct ProcessApi {
    processes: Processes,
}

impl ProcessApi {
    /// `startable`: the definitions users may start; admins may start any.
    pub fn new(processes: Processes, definitions: Definitions, startable: Vec<String>) -> Self {
        Self {
            processes: processes.with_startable(definitions, startable),
        }
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

impl TryFrom<StartProcessRequest> for StartProcess {
    type Error = Status;

    fn try_from(request: StartProcessRequest) -> Result<Self, Status> {
        let mut v = Violations::new();
        v.bpmn_id("definition_key", &request.definition_key, true);
        let business_key = v.email("business_key", &request.business_key, true);
        v.structure("variables", request.variables.as_ref());
        v.id("request_id", &request.request_id, false);
        let variables = v.json("variables", request.variables.as_ref());
        v.reserved("variables", &variables);
        let start = business_key.map(|business_key| StartProcess {
            definition_key: request.definition_key,
            business_key,
            variables,
            request_id: non_empty(request.request_id),
        });
        v.finish(start)
    }
}

impl TryFrom<ListProcessesRequest> for ListProcesses {
    type Error = Status;

    fn try_from(request: ListProcessesRequest) -> Result<Self, Status> {
        let mut v = Violations::new();
        let page = v.page(request.page_size, &request.page_token);
        let business_key = v.email("business_key", &request.business_key, false);
        v.bpmn_id("definition_key", &request.definition_key, false);
        v.known_enum::<ProcessState>("states", &request.states);
        v.check()?;
        Ok(ListProcesses {
            business_key,
            definition_key: non_empty(request.definition_key),
            states: request
                .states
                .iter()
                .filter_map(|s| ProcessState::try_from(*s).ok().and_then(state_from_proto))
                .collect(),
            page_size: page.size,
            page_token: page.token,
        })
    }
}

impl TryFrom<CancelProcessRequest> for CancelProcess {
    type Error = Status;

    fn try_from(request: CancelProcessRequest) -> Result<Self, Status> {
        let mut v = Violations::new();
        let id = v.uuid("id", &request.id);
        v.free_text("reason", &request.reason);
        let cancel = id.map(|id| CancelProcess {
            id: id.into(),
            reason: request.reason,
        });
        v.finish(cancel)
    }
}

#[tonic::async_trait]
impl ProcessService for ProcessApi {
    async fn start_process(
        &self,
        request: Request<StartProcessRequest>,
    ) -> Result<Response<StartProcessResponse>, Status> {
        let caller = caller(&request)?;
        let start = StartProcess::try_from(request.into_inner())?;
        let started = self.processes.start(&caller, start).await.map_err(status)?;
        Ok(Response::new(StartProcessResponse {
            process: Some(to_proto(started)),
        }))
    }

    async fn get_process(
        &self,
        request: Request<GetProcessRequest>,
    ) -> Result<Response<GetProcessResponse>, Status> {
        let caller = caller(&request)?;
        let id = id_of::<ProcessId>("id", &request.get_ref().id)?;
        let process = self.processes.get(&caller, id).await.map_err(status)?;
        Ok(Response::new(GetProcessResponse {
            process: Some(to_proto(process)),
        }))
    }

    async fn list_processes(
        &self,
        request: Request<ListProcessesRequest>,
    ) -> Result<Response<ListProcessesResponse>, Status> {
        let caller = caller(&request)?;
        let list = ListProcesses::try_from(request.into_inner())?;
        let (found, next) = self.processes.list(&caller, list).await.map_err(status)?;
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
        let found = self.processes.startable(&caller).await.map_err(status)?;
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
        let cancel = CancelProcess::try_from(request.into_inner())?;
        let process = self
            .processes
            .cancel(&caller, cancel)
            .await
            .map_err(status)?;
        Ok(Response::new(CancelProcessResponse {
            process: Some(to_proto(process)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::validate::fields;

    #[test]
    fn a_start_is_parsed_into_a_command_or_its_field_violations() {
        let start = StartProcess::try_from(StartProcessRequest {
            definition_key: "VOE".into(),
            business_key: "Ann@Example.com".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(start.definition_key, "VOE");
        assert_eq!(start.business_key.as_str(), "ann@example.com");
        assert_eq!(start.request_id, None);

        let empty = StartProcess::try_from(StartProcessRequest::default()).unwrap_err();
        assert_eq!(fields(empty), ["definition_key", "business_key"]);
        let variables = crate::json::json_to_struct(
            serde_json::json!({"rampProcessId": "x"})
                .as_object()
                .unwrap(),
        );
        let reserved = StartProcess::try_from(StartProcessRequest {
            definition_key: "../x".into(),
            business_key: "ann@example.com".into(),
            variables: Some(variables),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            fields(reserved),
            ["definition_key", "variables.rampProcessId"]
        );
    }

    #[test]
    fn a_list_names_a_page_and_known_states_only() {
        let list = ListProcesses::try_from(ListProcessesRequest {
            states: vec![ProcessState::Active as i32],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(list.page_size, crate::api::validate::DEFAULT_PAGE_SIZE);
        assert_eq!(list.states, [processes::ProcessState::Active]);
        let bad = ListProcessesRequest {
            page_size: -1,
            states: vec![0, 99],
            ..Default::default()
        };
        assert_eq!(
            fields(ListProcesses::try_from(bad).unwrap_err()),
            ["page_size", "states", "states"]
        );
    }
}
