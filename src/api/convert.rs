//! Conversions between domain and proto types that more than one service uses.

use prost_types::Timestamp;

use crate::delivery::{self, Delivery};
use crate::forms::FormState;
use crate::proto;

pub(super) fn timestamp(time: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

pub(super) fn delivery_state(state: delivery::DeliveryState) -> proto::DeliveryState {
    use delivery::DeliveryState as State;
    match state {
        State::Pending => proto::DeliveryState::Pending,
        State::Delivered => proto::DeliveryState::Delivered,
        State::Failed => proto::DeliveryState::Failed,
        State::Undeliverable => proto::DeliveryState::Undeliverable,
        State::Refused => proto::DeliveryState::Refused,
    }
}

/// A delivery as its author and admins see it: when the next attempt comes only
/// while one is due. (The engine's own text is for admins only: see
/// `DeliveryRecord.engine_error`.)
pub(super) fn delivery(delivery: Delivery) -> proto::Delivery {
    let pending = delivery.state == delivery::DeliveryState::Pending;
    proto::Delivery {
        state: delivery_state(delivery.state) as i32,
        attempts: delivery.attempts,
        last_error: delivery.last_error.unwrap_or_default(),
        next_attempt_time: pending.then(|| timestamp(delivery.next_attempt_at)),
        deliver_time: delivery.delivered_at.map(timestamp),
    }
}

pub(super) fn form_status(state: FormState) -> proto::FormTaskStatus {
    match state {
        FormState::Pending => proto::FormTaskStatus::Pending,
        FormState::Completed => proto::FormTaskStatus::Completed,
        FormState::Withdrawn => proto::FormTaskStatus::Withdrawn,
    }
}

/// The form states a list asks for; the client's values were checked as known
/// (`Violations::known_enum`), so an unknown one is left out.
pub(super) fn form_states(statuses: &[i32]) -> Vec<FormState> {
    statuses
        .iter()
        .filter_map(|status| match proto::FormTaskStatus::try_from(*status) {
            Ok(proto::FormTaskStatus::Pending) => Some(FormState::Pending),
            Ok(proto::FormTaskStatus::Completed) => Some(FormState::Completed),
            Ok(proto::FormTaskStatus::Withdrawn) => Some(FormState::Withdrawn),
            Ok(proto::FormTaskStatus::Unspecified) | Err(_) => None,
        })
        .collect()
}
