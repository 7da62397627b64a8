//! The tonic layer: checks input, converts between proto and domain types, decides
//! what the caller may do, and maps errors to gRPC statuses. Logic lives in
//! `processes`, `forms` and `admin`.

mod admin;
mod form;
mod process;
mod status;
pub mod validate;

pub use admin::AdminApi;
pub use form::FormApi;
pub use process::ProcessApi;

use tonic::{Request, Status};

use crate::auth::Caller;

/// The caller that `AuthLayer` authenticated. Its absence is a wiring bug, not the
/// client's fault.
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
