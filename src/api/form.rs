//! `ramp.v1.FormService`.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use serde_json::Value;
use tonic::{Request, Response, Status};

use super::caller;
use super::process::timestamp;
use super::status::status;
use super::validate::Violations;
use crate::delivery::DeliveryState as State;
use crate::forms::{
    Cursor, FormState, FormSummary, FormTaskDetail, Forms, ListRequest, NewFormTask,
    RemovalReason as Reason, StreamEvent,
};
use crate::json::json_to_struct;
use crate::proto::form_service_server::FormService;
use crate::proto::*;

/// Page size when the client asks for none.
const DEFAULT_PAGE_SIZE: usize = 50;

/// The most a PendingForms snapshot message holds (its forms, encoded); a larger
/// snapshot goes in pages. Well under the 4 MiB gRPC clients accept by default.
const SNAPSHOT_PAGE_BYTES: usize = 1 << 20;

pub struct FormApi {
    forms: Forms,
}

impl FormApi {
    pub fn new(forms: Forms) -> Self {
        Self { forms }
    }
}

type PendingFormsStream = Pin<Box<dyn Stream<Item = Result<PendingFormsResponse, Status>> + Send>>;

fn status_of(status: FormState) -> FormTaskStatus {
    match status {
        FormState::Pending => FormTaskStatus::Pending,
        FormState::Completed => FormTaskStatus::Completed,
        FormState::Withdrawn => FormTaskStatus::Withdrawn,
    }
}

pub(super) fn status_name(status: FormTaskStatus) -> Option<FormState> {
    match status {
        FormTaskStatus::Pending => Some(FormState::Pending),
        FormTaskStatus::Completed => Some(FormState::Completed),
        FormTaskStatus::Withdrawn => Some(FormState::Withdrawn),
        FormTaskStatus::Unspecified => None,
    }
}

pub(super) fn summary_to_proto(summary: FormSummary) -> FormTaskSummary {
    FormTaskSummary {
        id: summary.id.to_string(),
        form_name: summary.form_name,
        business_key: summary.business_key,
        assignee: summary.assignee,
        status: status_of(summary.status) as i32,
        process_instance_id: summary.process_instance_id,
        root_process_instance_id: summary.root_process_instance_id,
        process_definition_key: summary.process_definition_key.unwrap_or_default(),
        create_time: Some(timestamp(summary.created_at)),
        update_time: Some(timestamp(summary.updated_at)),
        has_draft: summary.has_draft,
        title: summary.title,
        delivery_state: summary
            .delivery_state
            .map_or(DeliveryState::Unspecified, delivery_state) as i32,
        return_reason: summary.return_reason.unwrap_or_default(),
        return_time: summary.returned_at.map(timestamp),
        task_name: summary.task_name,
        process_name: summary.process_name,
        context: summary.context,
    }
}

pub(super) fn delivery_state(state: State) -> DeliveryState {
    match state {
        State::Pending => DeliveryState::Pending,
        State::Delivered => DeliveryState::Delivered,
        State::Failed => DeliveryState::Failed,
        State::Undeliverable => DeliveryState::Undeliverable,
        State::Refused => DeliveryState::Refused,
    }
}

fn object(value: &Value) -> Option<prost_types::Struct> {
    value.as_object().map(json_to_struct)
}

fn task_to_proto(task: FormTaskDetail) -> crate::proto::FormTask {
    let row = task.task;
    crate::proto::FormTask {
        summary: Some(summary_to_proto(FormSummary::of(&row))),
        schema: task.schema.as_ref().and_then(object),
        prefill: object(&row.prefill),
        draft: row.draft.as_ref().and_then(object),
        submitted_data: task.submission.as_ref().and_then(|s| object(&s.data)),
        submit_time: task.submission.as_ref().map(|s| timestamp(s.created_at)),
        delivery: task.delivery.map(|d| Delivery {
            state: delivery_state(d.state) as i32,
            attempts: d.attempts,
            last_error: d.last_error.unwrap_or_default(),
            next_attempt_time: (d.state == State::Pending).then(|| timestamp(d.next_attempt_at)),
            deliver_time: d.delivered_at.map(timestamp),
        }),
        withdrawal_reason: row.withdrawal_reason.unwrap_or_default(),
        message_name: row.message_name,
        activity_id: row.activity_id,
    }
}

/// A snapshot as messages: pages of at most [`SNAPSHOT_PAGE_BYTES`] of forms (one
/// form larger than that alone), every one but the last with `more_pages` and no
/// cursor (see `PendingFormsResponse.Snapshot`). An empty snapshot is one message.
fn snapshot_pages(forms: Vec<FormSummary>, cursor: Cursor) -> Vec<PendingFormsResponse> {
    use pending_forms_response::{Event, Snapshot};
    use prost::Message;
    let mut pages: Vec<Vec<FormTaskSummary>> = vec![Vec::new()];
    let mut bytes = 0;
    for form in forms.into_iter().map(summary_to_proto) {
        // The form as a repeated field: its tag, its length and itself.
        let len = form.encoded_len();
        let size = 1 + prost::length_delimiter_len(len) + len;
        let page = pages.last_mut().expect("one page at least");
        if !page.is_empty() && bytes + size > SNAPSHOT_PAGE_BYTES {
            pages.push(vec![form]);
            bytes = size;
        } else {
            page.push(form);
            bytes += size;
        }
    }
    let last = pages.len() - 1;
    pages
        .into_iter()
        .enumerate()
        .map(|(i, form_tasks)| PendingFormsResponse {
            cursor: if i == last {
                cursor.encode()
            } else {
                String::new()
            },
            event: Some(Event::Snapshot(Snapshot {
                form_tasks,
                more_pages: i != last,
            })),
        })
        .collect()
}

/// A stream event as the messages that carry it: one, or a snapshot's pages.
fn event_to_protos(event: StreamEvent) -> Vec<PendingFormsResponse> {
    use pending_forms_response::{Event, Heartbeat, Removed};
    let (cursor, event) = match event {
        StreamEvent::Snapshot(forms, cursor) => return snapshot_pages(forms, cursor),
        StreamEvent::Added(summary, cursor) => (cursor, Event::Added(summary_to_proto(summary))),
        StreamEvent::Updated(summary, cursor) => {
            (cursor, Event::Updated(summary_to_proto(summary)))
        }
        StreamEvent::Removed(id, reason, cursor) => {
            let reason = match reason {
                Reason::Completed => RemovalReason::Completed,
                Reason::Withdrawn => RemovalReason::Withdrawn,
                Reason::Reassigned => RemovalReason::Reassigned,
            };
            (
                cursor,
                Event::Removed(Removed {
                    id: id.to_string(),
                    reason: reason as i32,
                }),
            )
        }
        StreamEvent::Heartbeat(cursor) => (cursor, Event::Heartbeat(Heartbeat {})),
    };
    vec![PendingFormsResponse {
        cursor: cursor.encode(),
        event: Some(event),
    }]
}

fn some(text: String) -> Option<String> {
    Some(text).filter(|t| !t.is_empty())
}

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
        v.bpmn_id("process_definition_key", &r.process_definition_key, false);
        let business_key = v.email("business_key", &r.business_key, true);
        v.bpmn_id("activity_id", &r.activity_id, true);
        v.id("activity_instance_id", &r.activity_instance_id, false);
        v.id("execution_id", &r.execution_id, false);
        v.key("form_name", &r.form_name, false);
        v.key("message_name", &r.message_name, false);
        let assignee = v.email("assignee", &r.assignee, false);
        v.structure("prefill", r.prefill.as_ref());
        v.key("tenant_id", &r.tenant_id, false);
        v.key("topic_name", &r.topic_name, false);
        v.free_text("context", &r.context);
        let prefill = match r
            .prefill
            .as_ref()
            .map(crate::json::struct_to_json)
            .transpose()
        {
            Ok(prefill) => prefill.unwrap_or_default(),
            Err(problem) => {
                v.add("prefill", problem);
                Default::default()
            }
        };
        v.check()?;
        if !(caller.worker || caller.admin) {
            return Err(Status::permission_denied("only workers create form tasks"));
        }
        let new = NewFormTask {
            external_task_id: r.external_task_id,
            process_instance_id: r.process_instance_id,
            process_definition_id: some(r.process_definition_id),
            process_definition_key: some(r.process_definition_key),
            business_key: business_key.expect("checked"),
            activity_id: r.activity_id,
            activity_instance_id: some(r.activity_instance_id),
            execution_id: some(r.execution_id),
            form_name: some(r.form_name),
            message_name: some(r.message_name),
            assignee,
            prefill,
            tenant_id: some(r.tenant_id),
            topic_name: some(r.topic_name),
            context: some(r.context),
        };
        // What the engine says of the instance decides, not what the worker says.
        let mut v = Violations::new();
        for (field, problem) in self
            .forms
            .inconsistencies(&new, !caller.admin)
            .await
            .map_err(status)?
        {
            v.add(field, problem);
        }
        v.check()?;
        let (task, created) = self.forms.create(new).await.map_err(status)?;
        Ok(Response::new(CreateFormTaskResponse {
            form_task: Some(task_to_proto(task)),
            created,
        }))
    }

    async fn get_form_task(
        &self,
        request: Request<GetFormTaskRequest>,
    ) -> Result<Response<GetFormTaskResponse>, Status> {
        let caller = caller(&request)?;
        let mut v = Violations::new();
        let id = v.uuid("id", &request.get_ref().id);
        v.check()?;
        let task = self
            .forms
            .get(&caller, id.expect("checked").into())
            .await
            .map_err(status)?;
        Ok(Response::new(GetFormTaskResponse {
            form_task: Some(task_to_proto(task)),
        }))
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
        let business_key = v.email("business_key", &r.business_key, false);
        v.id(
            "root_process_instance_id",
            &r.root_process_instance_id,
            false,
        );
        v.check()?;
        if let Some(assignee) = &assignee
            && !caller.may_act_for(assignee)
        {
            return Err(Status::permission_denied("users list only their own forms"));
        }
        let statuses = r
            .statuses
            .iter()
            .filter_map(|s| FormTaskStatus::try_from(*s).ok().and_then(status_name))
            .collect();
        let (found, next) = self
            .forms
            .list(
                &caller,
                ListRequest {
                    assignee,
                    statuses,
                    business_key,
                    root_process_instance_id: some(r.root_process_instance_id),
                    page_size: if r.page_size == 0 {
                        DEFAULT_PAGE_SIZE
                    } else {
                        r.page_size as usize
                    },
                    page_token: some(r.page_token),
                },
            )
            .await
            .map_err(status)?;
        Ok(Response::new(ListFormTasksResponse {
            form_tasks: found.into_iter().map(summary_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    type PendingFormsStream = PendingFormsStream;

    async fn pending_forms(
        &self,
        request: Request<PendingFormsRequest>,
    ) -> Result<Response<Self::PendingFormsStream>, Status> {
        let caller = caller(&request)?;
        let mut v = Violations::new();
        let raw = &request.get_ref().cursor;
        v.token("cursor", raw);
        let cursor = if raw.is_empty() || raw.len() > super::validate::MAX_TOKEN_LEN {
            None
        } else {
            let parsed = Cursor::parse(raw);
            if parsed.is_none() {
                v.add("cursor", "is not a cursor this server gave out");
            }
            parsed
        };
        v.check()?;
        let events = self.forms.pending(&caller, cursor).map_err(status)?;
        let stream = events.flat_map(|event| {
            futures::stream::iter(match event {
                Ok(event) => event_to_protos(event).into_iter().map(Ok).collect(),
                Err(error) => vec![Err(status(error))],
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn save_draft(
        &self,
        request: Request<SaveDraftRequest>,
    ) -> Result<Response<SaveDraftResponse>, Status> {
        let caller = caller(&request)?;
        let mut v = Violations::new();
        let id = v.uuid("id", &request.get_ref().id);
        v.structure("data", request.get_ref().data.as_ref());
        let data = match request
            .get_ref()
            .data
            .as_ref()
            .map(crate::json::struct_to_json)
            .transpose()
        {
            Ok(data) => data.unwrap_or_default(),
            Err(problem) => {
                v.add("data", problem);
                Default::default()
            }
        };
        v.reserved("data", &data);
        v.check()?;
        let summary = self
            .forms
            .save_draft(&caller, id.expect("checked").into(), data)
            .await
            .map_err(status)?;
        Ok(Response::new(SaveDraftResponse {
            form_task: Some(summary_to_proto(summary)),
        }))
    }

    async fn submit_form(
        &self,
        request: Request<SubmitFormRequest>,
    ) -> Result<Response<SubmitFormResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let id = v.uuid("id", &r.id);
        v.structure("data", r.data.as_ref());
        v.id("request_id", &r.request_id, false);
        let data = match r.data.as_ref().map(crate::json::struct_to_json).transpose() {
            Ok(data) => data.unwrap_or_default(),
            Err(problem) => {
                v.add("data", problem);
                Default::default()
            }
        };
        v.reserved("data", &data);
        v.check()?;
        let submitted = self
            .forms
            .submit(
                &caller,
                id.expect("checked").into(),
                data,
                some(r.request_id),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(SubmitFormResponse {
            submission: Some(Submission {
                id: submitted.submission.id.to_string(),
                form_task_id: submitted.submission.form_task_id.to_string(),
                submitted_by: submitted.submission.submitted_by,
                submit_time: Some(timestamp(submitted.submission.created_at)),
                delivery_state: submitted
                    .delivery_state
                    .map_or(DeliveryState::Unspecified, delivery_state)
                    as i32,
            }),
        }))
    }
}
