//! The one mapping from ramp's errors to gRPC statuses, for every service.
//!
//! Each error knows its code. What the client reads is a sentence in ramp's own
//! words: never the engine's or the database's text, which carries URLs, engine
//! ids, exception classes and SQL. That detail goes to the log instead, with the
//! RPC's request id, where an operator finds it from the id the client got back in
//! `x-request-id`. Variants that carry a message of ramp's own (`NotPending`,
//! `NotActive`, ...) pass it through: whoever makes one writes it for the person
//! who reads it. Field violations (`google.rpc.BadRequest`) stay as they are.

use tonic::{Code, Status};

use super::validate::Violations;
use crate::admin::AdminError;
use crate::forms::FormError;
use crate::processes::ProcessError;
use crate::store::{StoreError, StoreFault};

/// What the client is told of an error.
pub(super) enum Reply {
    /// A message of ramp's own, passed through as it is.
    Told(Code, String),
    /// A fixed message; the error itself goes to the log.
    Logged(Code, &'static str),
    /// Field violations; `note`, when given, goes to the log with the error.
    Fields {
        violations: Violations,
        note: Option<&'static str>,
    },
}

/// An error that knows its gRPC code and what the client may read of it.
pub(super) trait Answer: std::error::Error {
    fn reply(&self) -> Reply;
}

/// The status for `error`, for `.map_err(status)`: the one way any of ramp's errors
/// reaches a client. What is only for the operator is logged here, with the RPC's
/// request id (streams have no RPC span to carry it, so it is a field of its own).
pub(super) fn status(error: impl Answer) -> Status {
    let request_id = crate::telemetry::current_request_id();
    let request_id = request_id.as_deref().unwrap_or("");
    match error.reply() {
        Reply::Told(code, message) => Status::new(code, message),
        Reply::Logged(code, message) => {
            if code == Code::Internal {
                tracing::error!(request_id, code = ?code, error = %error, "{message}");
            } else {
                tracing::warn!(request_id, code = ?code, error = %error, "{message}");
            }
            Status::new(code, message)
        }
        Reply::Fields { violations, note } => {
            if let Some(note) = note {
                tracing::warn!(request_id, error = %error, "{note}");
            }
            violations.into_status()
        }
    }
}

const PAGE_TOKEN: &str = "page_token is not valid for this query";
const ENGINE_UNAVAILABLE: &str = "the process engine is unavailable: try again shortly";
const ENGINE_FAILED: &str = "the process engine failed; the server log has the details";
const DATABASE_UNAVAILABLE: &str = "the database is unavailable: try again shortly";
const DATABASE_FAILED: &str = "internal error; the server log has the details";

fn told(code: Code, message: impl Into<String>) -> Reply {
    Reply::Told(code, message.into())
}

/// Field violations, each a field and its problem.
fn fields<F: AsRef<str>, P: Into<String>>(
    problems: impl IntoIterator<Item = (F, P)>,
    note: Option<&'static str>,
) -> Reply {
    let mut violations = Violations::new();
    for (field, problem) in problems {
        violations.add(field.as_ref(), problem);
    }
    Reply::Fields { violations, note }
}

impl Answer for StoreError {
    fn reply(&self) -> Reply {
        match self.fault() {
            StoreFault::Unavailable => Reply::Logged(Code::Unavailable, DATABASE_UNAVAILABLE),
            StoreFault::Bug => Reply::Logged(Code::Internal, DATABASE_FAILED),
        }
    }
}

impl Answer for ProcessError {
    fn reply(&self) -> Reply {
        match self {
            Self::NotFound => told(Code::NotFound, "process not found"),
            Self::PermissionDenied(message) => told(Code::PermissionDenied, message),
            Self::DefinitionNotFound(_) => {
                told(Code::NotFound, "no process definition has this key")
            }
            Self::AlreadyExists(message) => told(Code::AlreadyExists, message),
            Self::Refused(_) => Reply::Logged(
                Code::InvalidArgument,
                "the process engine refused to start the process with these variables",
            ),
            Self::NotActive(message) | Self::CannotCancel(message) => {
                told(Code::FailedPrecondition, message)
            }
            Self::Unavailable(message) => told(Code::Unavailable, message),
            Self::EngineUnavailable(_) => Reply::Logged(Code::Unavailable, ENGINE_UNAVAILABLE),
            Self::InvalidPageToken => told(Code::InvalidArgument, PAGE_TOKEN),
            Self::Engine(_) => Reply::Logged(Code::Internal, ENGINE_FAILED),
            Self::Store(error) => error.reply(),
        }
    }
}

impl Answer for FormError {
    fn reply(&self) -> Reply {
        match self {
            Self::NotFound => told(Code::NotFound, "form task not found"),
            Self::PermissionDenied(message) => told(Code::PermissionDenied, message),
            Self::Inconsistent(problems) => fields(problems.iter().copied(), None),
            Self::NotPending(message) => told(Code::FailedPrecondition, message),
            Self::Unavailable(message) => told(Code::Unavailable, message),
            Self::InvalidArgument(message) => told(Code::InvalidArgument, message),
            Self::AlreadyExists(message) => told(Code::AlreadyExists, message),
            Self::UnknownInstance(_) => fields(
                [(
                    "process_instance_id",
                    "is not a process instance the engine knows",
                )],
                Some("a form task names a process instance the engine does not know"),
            ),
            Self::InvalidData(problems) => fields(
                problems
                    .iter()
                    .map(|(field, problem)| (format!("data.{field}"), problem.clone())),
                None,
            ),
            Self::InvalidPageToken => told(Code::InvalidArgument, PAGE_TOKEN),
            Self::TooManyStreams(too_many) => told(Code::ResourceExhausted, too_many.to_string()),
            Self::EngineUnavailable(_) => Reply::Logged(Code::Unavailable, ENGINE_UNAVAILABLE),
            Self::Engine(_) => Reply::Logged(Code::Internal, ENGINE_FAILED),
            Self::Store(error) => error.reply(),
        }
    }
}

impl Answer for AdminError {
    fn reply(&self) -> Reply {
        match self {
            Self::NotFound => told(Code::NotFound, "delivery not found"),
            Self::PermissionDenied(message) => told(Code::PermissionDenied, message),
            Self::FailedPrecondition(message) => told(Code::FailedPrecondition, message),
            Self::InvalidPageToken => told(Code::InvalidArgument, PAGE_TOKEN),
            Self::Store(error) => error.reply(),
            Self::Form(error) => error.reply(),
            Self::Process(error) => error.reply(),
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
            status(ProcessError::Refused(ENGINE_400.into())),
            status(ProcessError::from(unreachable.clone())),
            status(ProcessError::Engine(failing.clone())),
            status(FormError::EngineUnavailable(unreachable)),
            status(FormError::Engine(failing)),
            status(FormError::UnknownInstance(CamundaError::NotFound(
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
    fn a_database_out_of_reach_is_unavailable_and_a_database_bug_internal() {
        let slow = status(ProcessError::Store(StoreError::Timeout(
            std::time::Duration::from_secs(5),
        )));
        assert_eq!(slow.code(), Code::Unavailable);
        assert_eq!(slow.message(), DATABASE_UNAVAILABLE);
        let unknown = status(FormError::Store(StoreError::Decode {
            column: "processes.state",
            value: "paused".into(),
        }));
        assert_eq!(unknown.code(), Code::Internal);
        assert_eq!(unknown.message(), DATABASE_FAILED);
    }

    #[test]
    fn problems_of_fields_are_field_violations() {
        let inconsistent = status(FormError::Inconsistent(vec![
            ("business_key", "is not the process's business key"),
            ("assignee", "is not the instance's assignee"),
        ]));
        assert_eq!(
            crate::api::validate::fields(inconsistent),
            ["business_key", "assignee"]
        );
        let invalid = status(FormError::InvalidData(vec![(
            "amount".into(),
            "is required".into(),
        )]));
        assert_eq!(invalid.code(), Code::InvalidArgument);
        assert_eq!(crate::api::validate::fields(invalid), ["data.amount"]);
    }

    #[test]
    fn messages_of_ramps_own_pass_through() {
        let status = status(AdminError::Process(ProcessError::NotActive(
            "the process is completed and cannot be cancelled".into(),
        )));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "the process is completed and cannot be cancelled"
        );
    }
}
