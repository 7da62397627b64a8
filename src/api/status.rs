//! The one mapping from ramp's errors to gRPC statuses, for every service.
//!
//! Each error knows its code. What the client reads is a sentence in ramp's own
//! words: never the engine's or the database's text, which carries URLs, engine
//! ids, exception classes and SQL. That detail goes to the log instead, with the
//! RPC's request id, where an operator finds it from the id the client got back in
//! `x-request-id`. Variants that carry a message of ramp's own (`NotPending`,
//! `NotActive`, ...) pass it through: whoever makes one writes it for the person
//! who reads it. Field violations (`google.rpc.BadRequest`) stay as they are.

use std::fmt::Display;

use tonic::{Code, Status};

use super::validate::Violations;
use crate::admin::AdminError;
use crate::forms::FormError;
use crate::processes::ProcessError;
use crate::store::StoreError;

/// The status for `error`, for `.map_err(status)`.
pub(super) fn status<E>(error: E) -> Status
where
    Status: From<E>,
{
    Status::from(error)
}

/// A status whose message the client reads as it is.
fn told(code: Code, message: impl Into<String>) -> Status {
    Status::new(code, message.into())
}

/// A status with a fixed message; `detail` goes only to the log, with the request
/// id (streams have no RPC span to carry it, so it is a field of its own).
fn logged(code: Code, message: &'static str, detail: &dyn Display) -> Status {
    let request_id = crate::telemetry::current_request_id();
    let request_id = request_id.as_deref().unwrap_or("");
    if code == Code::Internal {
        tracing::error!(request_id, code = ?code, error = %detail, "{message}");
    } else {
        tracing::warn!(request_id, code = ?code, error = %detail, "{message}");
    }
    Status::new(code, message)
}

const PAGE_TOKEN: &str = "page_token is not valid for this query";
const ENGINE_UNAVAILABLE: &str = "the process engine is unavailable: try again shortly";
const ENGINE_FAILED: &str = "the process engine failed; the server log has the details";

fn store(error: &StoreError) -> Status {
    logged(
        Code::Unavailable,
        "the database is unavailable: try again shortly",
        error,
    )
}

impl From<ProcessError> for Status {
    fn from(error: ProcessError) -> Self {
        match &error {
            ProcessError::NotFound => told(Code::NotFound, "process not found"),
            ProcessError::DefinitionNotFound(_) => {
                told(Code::NotFound, "no process definition has this key")
            }
            ProcessError::AlreadyExists(message) => told(Code::AlreadyExists, message),
            ProcessError::Refused(_) => logged(
                Code::InvalidArgument,
                "the process engine refused to start the process with these variables",
                &error,
            ),
            ProcessError::NotActive(message) | ProcessError::CannotCancel(message) => {
                told(Code::FailedPrecondition, message)
            }
            ProcessError::Unavailable(message) => told(Code::Unavailable, message),
            ProcessError::EngineUnavailable(_) => {
                logged(Code::Unavailable, ENGINE_UNAVAILABLE, &error)
            }
            ProcessError::InvalidPageToken => told(Code::InvalidArgument, PAGE_TOKEN),
            ProcessError::Engine(_) => logged(Code::Internal, ENGINE_FAILED, &error),
            ProcessError::Store(error) => store(error),
        }
    }
}

impl From<FormError> for Status {
    fn from(error: FormError) -> Self {
        match &error {
            FormError::NotFound => told(Code::NotFound, "form task not found"),
            FormError::NotPending(message) => told(Code::FailedPrecondition, message),
            FormError::Unavailable(message) => told(Code::Unavailable, message),
            FormError::InvalidArgument(message) => told(Code::InvalidArgument, message),
            FormError::AlreadyExists(message) => told(Code::AlreadyExists, message),
            FormError::UnknownInstance(detail) => {
                tracing::warn!(
                    request_id = crate::telemetry::current_request_id().as_deref().unwrap_or(""),
                    error = %detail,
                    "a form task names a process instance the engine does not know"
                );
                let mut violations = Violations::new();
                violations.add(
                    "process_instance_id",
                    "is not a process instance the engine knows",
                );
                violations.check().expect_err("there is a violation")
            }
            FormError::InvalidData(problems) => {
                let mut violations = Violations::new();
                for (field, problem) in problems {
                    violations.add(&format!("data.{field}"), problem.clone());
                }
                violations.check().expect_err("there are problems")
            }
            FormError::InvalidPageToken => told(Code::InvalidArgument, PAGE_TOKEN),
            FormError::TooManyStreams(too_many) => {
                told(Code::ResourceExhausted, too_many.to_string())
            }
            FormError::EngineUnavailable(_) => {
                logged(Code::Unavailable, ENGINE_UNAVAILABLE, &error)
            }
            FormError::Engine(_) => logged(Code::Internal, ENGINE_FAILED, &error),
            FormError::Store(error) => store(error),
        }
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::NotFound => told(Code::NotFound, "delivery not found"),
            AdminError::FailedPrecondition(message) => told(Code::FailedPrecondition, message),
            AdminError::InvalidPageToken => told(Code::InvalidArgument, PAGE_TOKEN),
            AdminError::Store(error) => store(&error),
            AdminError::Form(error) => error.into(),
            AdminError::Process(error) => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camunda::CamundaError;

    /// The engine's own answer to a start whose variable it cannot convert, as
    /// Camunda 7.24 words it.
    const ENGINE_400: &str = "Cannot instantiate process definition loan:1:9f838101-ef00-11f1-960c-02fc00000001: \
        Cannot convert value 'x' of type 'Long' to java type java.lang.Long";

    #[test]
    fn engine_text_never_reaches_the_message() {
        let unreachable = CamundaError::Unavailable(
            "error sending request for url (http://127.0.0.1:8080/engine-rest/process-definition/key/loan)"
                .into(),
        );
        let failing = CamundaError::Engine {
            status: 500,
            kind: "ProcessEngineException".into(),
            message: "ENGINE-12018 in org.camunda.bpm.engine".into(),
            code: None,
        };
        let statuses = [
            Status::from(ProcessError::Refused(ENGINE_400.into())),
            Status::from(ProcessError::from(unreachable.clone())),
            Status::from(ProcessError::Engine(failing.clone())),
            Status::from(FormError::EngineUnavailable(unreachable)),
            Status::from(FormError::Engine(failing)),
            Status::from(FormError::UnknownInstance(CamundaError::NotFound(
                "Historic process instance with id 0192 does not exist".into(),
            ))),
        ];
        let codes: Vec<Code> = statuses.iter().map(Status::code).collect();
        assert_eq!(
            codes,
            [
                Code::InvalidArgument,
                Code::Unavailable,
                Code::Internal,
                Code::Unavailable,
                Code::Internal,
                Code::InvalidArgument,
            ]
        );
        for status in statuses {
            let message = status.message();
            for leak in [
                "http",
                "0192",
                "9f838101",
                "Exception",
                "org.camunda",
                "ENGINE-",
                "java.",
            ] {
                assert!(!message.contains(leak), "{leak} in {message:?}");
            }
        }
    }

    #[test]
    fn messages_of_ramps_own_pass_through() {
        let status = Status::from(AdminError::Process(ProcessError::NotActive(
            "the process is completed and cannot be cancelled".into(),
        )));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "the process is completed and cannot be cancelled"
        );
    }
}
