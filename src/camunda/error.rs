//! The engine's failures, reduced to what callers decide on.

/// What went wrong talking to the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CamundaError {
    /// 404: no such definition, instance, task, deployment.
    #[error("not found: {0}")]
    NotFound(String),
    /// 400 for any other reason: the engine's exception type and message.
    #[error("refused by the engine ({kind}): {message}")]
    BadRequest { kind: String, message: String },
    /// A message found nothing waiting for it (yet).
    #[error("no execution waits for the message: {0}")]
    NoMatchingExecution(String),
    /// A message matched several executions and `all` was false.
    #[error("the message matches several executions: {0}")]
    AmbiguousCorrelation(String),
    /// An external task is locked by another worker (or the lock was lost).
    #[error("locked by another worker: {0}")]
    LockedByOtherWorker(String),
    /// A user task someone else holds was claimed (`TaskAlreadyClaimedException`).
    #[error("the task is claimed by someone else: {0}")]
    AlreadyClaimed(String),
    /// Two changes to one instance collided (optimistic locking): retry.
    #[error("conflicting change in the engine: {0}")]
    Conflict(String),
    /// The engine could not be reached, or said it is unavailable: nothing happened.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// A proxy in front of the engine answered 502, 503 or 504: the engine may have
    /// taken the request and acted (the proxy gave up waiting, or lost the answer),
    /// so the outcome is unknown, as after a timeout.
    #[error("outcome unknown: a proxy answered HTTP {status}: {message}")]
    Gateway { status: u16, message: String },
    /// The call timed out, or its connection broke after the request went out: the
    /// engine may or may not have acted.
    #[error("outcome unknown: {0}")]
    Timeout(String),
    /// The engine refused ramp's credentials.
    #[error("the engine refused ramp's credentials (HTTP {0})")]
    Unauthorized(u16),
    /// Any other engine failure. `code` is the engine's error code where it sends
    /// one (Camunda 7.20 and later: 0 unknown, 1 optimistic locking, 10000 deadlock,
    /// 10001 foreign key violation, 10002 a value too long for its column).
    #[error("engine error (HTTP {status}, {kind}): {message}")]
    Engine {
        status: u16,
        kind: String,
        message: String,
        code: Option<i64>,
    },
    /// The engine answered something ramp cannot read.
    #[error("unreadable engine answer: {0}")]
    Decode(String),
}

impl CamundaError {
    /// A short name of the kind of failure, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::BadRequest { .. } => "bad_request",
            Self::NoMatchingExecution(_) => "no_matching_execution",
            Self::AmbiguousCorrelation(_) => "ambiguous_correlation",
            Self::LockedByOtherWorker(_) => "locked_by_other_worker",
            Self::AlreadyClaimed(_) => "already_claimed",
            Self::Conflict(_) => "conflict",
            Self::Unavailable(_) => "unavailable",
            Self::Gateway { .. } => "gateway",
            Self::Timeout(_) => "timeout",
            Self::Unauthorized(_) => "unauthorized",
            Self::Engine { .. } => "engine",
            Self::Decode(_) => "decode",
        }
    }

    /// Whether trying again later may succeed without anything else changing.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Conflict(_) | Self::Timeout(_) | Self::Gateway { .. }
        )
    }

    /// Whether the engine may have acted although the call failed: check before
    /// doing it again.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Gateway { .. })
    }

    /// From an HTTP error answer: status and the engine's JSON error body
    /// (`{"type": "...Exception", "message": "..."}`).
    pub(crate) fn from_response(status: u16, body: &str) -> Self {
        #[derive(serde::Deserialize, Default)]
        struct EngineError {
            #[serde(rename = "type", default)]
            kind: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            code: Option<i64>,
        }
        let error: EngineError = serde_json::from_str(body).unwrap_or_else(|_| EngineError {
            kind: String::new(),
            message: body.chars().take(500).collect(),
            code: None,
        });
        // Compare simple class names: Operaton's packages differ from Camunda's.
        let kind = error.kind.rsplit('.').next().unwrap_or("").to_owned();
        let message = error.message;
        let code = error.code;
        match status {
            404 => Self::NotFound(message),
            401 | 403 => Self::Unauthorized(status),
            400 if kind == "MismatchingMessageCorrelationException"
                || message.contains("MismatchingMessageCorrelationException") =>
            {
                // The same class for both cases: only the text tells them apart.
                if message.contains("ENGINE-13031")
                    || (message.contains("executions match")
                        && !message.contains("No process definition or execution matches"))
                {
                    Self::AmbiguousCorrelation(message)
                } else {
                    Self::NoMatchingExecution(message)
                }
            }
            400 if message.contains("is locked by worker")
                || message.contains("has expired") && message.contains("lock") =>
            {
                Self::LockedByOtherWorker(message)
            }
            400 => Self::BadRequest { kind, message },
            500 if kind == "OptimisticLockingException"
                || message.contains("OptimisticLockingException") =>
            {
                Self::Conflict(message)
            }
            500 if kind == "TaskAlreadyClaimedException" => Self::AlreadyClaimed(message),
            502..=504 => Self::Gateway { status, message },
            _ => Self::Engine {
                status,
                kind,
                message,
                code,
            },
        }
    }

    pub(crate) fn from_transport(error: reqwest::Error) -> Self {
        let detail = error_chain(&error);
        if error.is_connect() {
            Self::Unavailable(detail)
        } else if error.is_timeout() {
            Self::Timeout(format!("no answer in time: {detail}"))
        } else if error.is_decode() {
            Self::Decode(detail)
        } else {
            // The request went out (or may have): a broken connection leaves the
            // outcome open.
            Self::Timeout(format!("connection broke: {detail}"))
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_failures_are_told_apart_by_their_text() {
        let none = r#"{"type":"RestException","message":"org.camunda.bpm.engine.MismatchingMessageCorrelationException: Cannot correlate message 'x': No process definition or execution matches the parameters"}"#;
        assert!(matches!(
            CamundaError::from_response(400, none),
            CamundaError::NoMatchingExecution(_)
        ));
        let two = r#"{"type":"RestException","message":"org.camunda.bpm.engine.MismatchingMessageCorrelationException: ENGINE-13031 Cannot correlate a message with name 'x' to a single execution. 2 executions match the correlation keys"}"#;
        assert!(matches!(
            CamundaError::from_response(400, two),
            CamundaError::AmbiguousCorrelation(_)
        ));
        let operaton = r#"{"type":"MismatchingMessageCorrelationException","message":"Cannot correlate message 'x': No process definition or execution matches the parameters"}"#;
        assert!(matches!(
            CamundaError::from_response(400, operaton),
            CamundaError::NoMatchingExecution(_)
        ));
    }

    #[test]
    fn other_answers_map_by_status_and_type() {
        assert!(
            matches!(CamundaError::from_response(404, r#"{"type":"RestException","message":"gone"}"#), CamundaError::NotFound(m) if m == "gone")
        );
        assert!(matches!(
            CamundaError::from_response(
                500,
                r#"{"type":"org.camunda.bpm.engine.OptimisticLockingException","message":"ENGINE-03005"}"#
            ),
            CamundaError::Conflict(_)
        ));
        assert!(matches!(
            CamundaError::from_response(503, "<html>"),
            CamundaError::Gateway { status: 503, .. }
        ));
        assert!(CamundaError::from_response(504, "").outcome_unknown());
        assert!(!CamundaError::Unavailable("connection refused".into()).outcome_unknown());
        assert!(matches!(
            CamundaError::from_response(401, ""),
            CamundaError::Unauthorized(401)
        ));
        assert!(matches!(
            CamundaError::from_response(
                400,
                r#"{"type":"RestException","message":"External task 1 cannot be completed by worker 'a'. It is locked by worker 'b'."}"#
            ),
            CamundaError::LockedByOtherWorker(_)
        ));
        assert!(matches!(
            CamundaError::from_response(400, r#"{"type":"ParseException","message":"bad"}"#),
            CamundaError::BadRequest { kind, .. } if kind == "ParseException"
        ));
    }
}
