//! `ramp.v1.FormService`.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use serde_json::Value;
use tonic::{Request, Response, Status};

use super::caller;
use super::convert::{delivery, delivery_state, form_states, form_status, timestamp};
use super::status::status;
use super::validate::{MAX_TOKEN_LEN, Violations, id_of, non_empty};
use crate::forms::{
    Cursor, FormKind, FormSummary, FormTaskDetail, Forms, ListRequest, NewFormTask,
    RemovalReason as Reason, StreamEvent,
};
use crate::ids::FormTaskId;
use crate::json::json_to_struct;
use crate::proto::form_service_server::FormService;
use crate::proto::*;

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

pub(super) fn summary_to_proto(summary: FormSummary) -> FormTaskSummary {
    FormTaskSummary {
        id: summary.id.to_string(),
        form_name: summary.form_name,
        business_key: summary.business_key,
        assignee: summary.assignee,
        status: form_status(summary.status) as i32,
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
        kind: match summary.kind {
            FormKind::SendTask => crate::proto::FormTaskKind::SendTask,
            FormKind::UserTask => crate::proto::FormTaskKind::UserTask,
        } as i32,
        candidate_groups: summary.candidate_groups,
        candidate_users: summary.candidate_users,
        due_time: summary.due_at.map(timestamp),
        follow_up_time: summary.follow_up_at.map(timestamp),
        priority: summary.priority.unwrap_or_default(),
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
        delivery: task.delivery.map(delivery),
        withdrawal_reason: row.withdrawal_reason.unwrap_or_default(),
        message_name: row.message_name,
        activity_id: row.activity_id,
        engine_task_id: match row.kind {
            FormKind::SendTask => String::new(),
            FormKind::UserTask => row.external_task_id,
        },
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
                Reason::Claimed => RemovalReason::Claimed,
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

impl TryFrom<CreateFormTaskRequest> for NewFormTask {
    type Error = Status;

    fn try_from(r: CreateFormTaskRequest) -> Result<Self, Status> {
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
        let prefill = v.json("prefill", r.prefill.as_ref());
        let new = business_key.map(|business_key| NewFormTask {
            external_task_id: r.external_task_id,
            process_instance_id: r.process_instance_id,
            process_definition_id: non_empty(r.process_definition_id),
            process_definition_key: non_empty(r.process_definition_key),
            business_key,
            activity_id: r.activity_id,
            activity_instance_id: non_empty(r.activity_instance_id),
            execution_id: non_empty(r.execution_id),
            form_name: non_empty(r.form_name),
            message_name: non_empty(r.message_name),
            assignee,
            prefill,
            tenant_id: non_empty(r.tenant_id),
            topic_name: non_empty(r.topic_name),
            context: non_empty(r.context),
        });
        v.finish(new)
    }
}

impl TryFrom<ListFormTasksRequest> for ListRequest {
    type Error = Status;

    fn try_from(r: ListFormTasksRequest) -> Result<Self, Status> {
        let mut v = Violations::new();
        let page = v.page(r.page_size, &r.page_token);
        let assignee = v.email("assignee", &r.assignee, false);
        v.known_enum::<FormTaskStatus>("statuses", &r.statuses);
        let business_key = v.email("business_key", &r.business_key, false);
        v.id(
            "root_process_instance_id",
            &r.root_process_instance_id,
            false,
        );
        v.check()?;
        Ok(ListRequest {
            assignee,
            statuses: form_states(&r.statuses),
            business_key,
            root_process_instance_id: non_empty(r.root_process_instance_id),
            page_size: page.size,
            page_token: page.token,
        })
    }
}

/// Where a PendingForms stream starts: a cursor this server gave out, or the
/// beginning (a snapshot).
fn stream_start(request: &PendingFormsRequest) -> Result<Option<Cursor>, Status> {
    let mut v = Violations::new();
    let raw = &request.cursor;
    v.token("cursor", raw);
    let cursor = if raw.is_empty() || raw.len() > MAX_TOKEN_LEN {
        None
    } else {
        let parsed = Cursor::parse(raw);
        if parsed.is_none() {
            v.add("cursor", "is not a cursor this server gave out");
        }
        parsed
    };
    v.check()?;
    Ok(cursor)
}

/// An answer or a draft of one: which form, the data, and (for an answer) the
/// client's id of the submission.
struct FormData {
    id: FormTaskId,
    data: serde_json::Map<String, Value>,
    request_id: Option<String>,
}

impl FormData {
    fn parse(
        id: &str,
        data: Option<&prost_types::Struct>,
        request_id: Option<String>,
    ) -> Result<Self, Status> {
        let mut v = Violations::new();
        let id = v.uuid("id", id);
        v.structure("data", data);
        if let Some(request_id) = &request_id {
            v.id("request_id", request_id, false);
        }
        let data = v.json("data", data);
        v.reserved("data", &data);
        let parsed = id.map(|id| FormData {
            id: id.into(),
            data,
            request_id: request_id.and_then(non_empty),
        });
        v.finish(parsed)
    }
}

#[tonic::async_trait]
impl FormService for FormApi {
    async fn claim_form_task(
        &self,
        request: Request<crate::proto::ClaimFormTaskRequest>,
    ) -> Result<Response<crate::proto::ClaimFormTaskResponse>, Status> {
        let caller = caller(&request)?;
        let id = id_of::<FormTaskId>("id", &request.get_ref().id)?;
        let task = self.forms.claim(&caller, id).await.map_err(status)?;
        Ok(Response::new(crate::proto::ClaimFormTaskResponse {
            form_task: Some(task_to_proto(task)),
        }))
    }

    async fn unclaim_form_task(
        &self,
        request: Request<crate::proto::UnclaimFormTaskRequest>,
    ) -> Result<Response<crate::proto::UnclaimFormTaskResponse>, Status> {
        let caller = caller(&request)?;
        let id = id_of::<FormTaskId>("id", &request.get_ref().id)?;
        let summary = self.forms.unclaim(&caller, id).await.map_err(status)?;
        Ok(Response::new(crate::proto::UnclaimFormTaskResponse {
            form_task: Some(summary_to_proto(summary)),
        }))
    }

    async fn create_form_task(
        &self,
        request: Request<CreateFormTaskRequest>,
    ) -> Result<Response<CreateFormTaskResponse>, Status> {
        let caller = caller(&request)?;
        let new = NewFormTask::try_from(request.into_inner())?;
        let (task, created) = self.forms.create(&caller, new).await.map_err(status)?;
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
        let id = id_of::<FormTaskId>("id", &request.get_ref().id)?;
        let task = self.forms.get(&caller, id).await.map_err(status)?;
        Ok(Response::new(GetFormTaskResponse {
            form_task: Some(task_to_proto(task)),
        }))
    }

    async fn list_form_tasks(
        &self,
        request: Request<ListFormTasksRequest>,
    ) -> Result<Response<ListFormTasksResponse>, Status> {
        let caller = caller(&request)?;
        let list = ListRequest::try_from(request.into_inner())?;
        let (found, next) = self.forms.list(&caller, list).await.map_err(status)?;
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
        let cursor = stream_start(request.get_ref())?;
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
        let r = request.get_ref();
        let draft = FormData::parse(&r.id, r.data.as_ref(), None)?;
        let summary = self
            .forms
            .save_draft(&caller, draft.id, draft.data)
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
        let answer = FormData::parse(&r.id, r.data.as_ref(), Some(r.request_id))?;
        let submitted = self
            .forms
            .submit(&caller, answer.id, answer.data, answer.request_id)
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
