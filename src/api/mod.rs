//! The tonic layer, and only that: each handler parses its request into a typed
//! command (bad input becomes field violations, `validate`), calls the logic with
//! it, and converts the answer to proto (`convert`); errors become statuses in one
//! place (`status`). What a caller may do is decided by the logic, next to what it
//! guards (`processes::rules`, `forms::rules`, `admin::authorize`); the API applies
//! only `admin::authorize` itself, before it reads an admin request.

mod admin;
mod convert;
mod form;
mod process;
mod status;
pub mod validate;

pub use admin::AdminApi;
pub use form::FormApi;
pub use process::ProcessApi;

use tonic::{Request, Status};

use crate::auth::Caller;

/// The caller that the `Authentication` layer authenticated. Its absence is a wiring
/// bug, not the client's fault.
fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("an RPC reached its service without an authenticated caller");
            Status::internal("internal error")
        })
}
