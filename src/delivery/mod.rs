//! Delivery of submitted answers to the receive tasks that wait for them: a
//! dispatcher on every replica claims outbox rows with a lease and delivers each by
//! triggering the waiting execution's message subscription, with the data as
//! instance variables and a marker (`rampSubmissionId`) that makes an uncertain
//! attempt checkable. Never lost, never silent: every answer ends delivered, or
//! `refused` and back with its author (the engine will never take it as it is), or
//! `undeliverable` (the process ended), or `failed` (not through in the time
//! allowed: an operator looks). Never twice: an attempt whose outcome is unknown is
//! checked before any retry.
//!
//! Here: what a delivery is and where it stands; `dispatcher` claims and delivers,
//! `admin` is what operators do (list, retry, abandon). Their SQL, the outbox's
//! write with the answer included, is `store::deliveries`.

pub mod admin;
mod dispatcher;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use dispatcher::{DeliverySettings, Dispatcher, MARKER};

use crate::ids::{FormTaskId, SubmissionId, stored_words};

stored_words!(
    /// Where the delivery of an answer stands.
    DeliveryState {
        /// To deliver: due now or at its next attempt.
        Pending = "pending",
        Delivered = "delivered",
        /// Not delivered in the time allowed, or an error retrying cannot mend: an
        /// operator looks at it (retries or abandons it).
        Failed = "failed",
        /// Nothing can take it any more: the process ended (or an operator gave it up).
        Undeliverable = "undeliverable",
        /// The engine will never take this answer as it is: the form went back to its
        /// author.
        Refused = "refused",
    }
);

/// Where a delivery stands.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub state: DeliveryState,
    pub attempts: i32,
    /// Why the last attempt did not go through, in words for the form's author.
    pub last_error: Option<String>,
    /// The engine's own text of that failure, for operators.
    pub engine_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A delivery with the form it answers, for operators.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    /// The submission's id.
    pub id: SubmissionId,
    pub form_task_id: FormTaskId,
    pub form_name: String,
    pub assignee: String,
    pub business_key: String,
    pub message_name: String,
    pub process_instance_id: String,
    pub delivery: Delivery,
    pub created_at: DateTime<Utc>,
}

/// A message claimed for delivery, under a lease.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: SubmissionId,
    pub form_task_id: FormTaskId,
    /// The message that delivers the answer to a send-task form ('' for a user task).
    pub message_name: String,
    /// The engine's user task that the answer completes, for a user task.
    pub engine_task_id: Option<String>,
    pub process_instance_id: String,
    pub activity_instance_id: Option<String>,
    pub variables: Value,
    pub attempts: i32,
    pub uncertain: bool,
    pub lease_generation: i64,
    /// How long ago the answer was submitted, by the database's clock.
    pub age: Duration,
}

/// What became of an attempt. `reason` says it in words for the form's author
/// (`last_error`); `error` is the engine's own text, for operators (`engine_error`).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Try again after `after`; `uncertain` when this attempt's outcome is unknown.
    Retry {
        after: Duration,
        reason: String,
        error: String,
        uncertain: bool,
    },
    /// Nothing can take the message any more: the process ended.
    Undeliverable {
        reason: String,
        error: String,
    },
    /// Not delivered in the time allowed, or an error retrying cannot mend: an
    /// operator looks at it.
    Failed {
        reason: String,
        error: String,
    },
    /// The engine will never take this answer as it is: the form goes back to its
    /// author (`return_form`).
    Refused {
        reason: String,
        error: String,
    },
}
