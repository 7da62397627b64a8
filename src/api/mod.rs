//! The tonic layer: converts between proto and domain types and maps errors to
//! gRPC statuses. Logic lives in `processes` and `forms`.

mod form;
mod process;

pub use form::FormApi;
pub use process::ProcessApi;

/// The answer of an RPC whose logic is not built yet. The README lists them.
fn not_built(rpc: &str, issue: u32) -> tonic::Status {
    tonic::Status::unimplemented(format!("{rpc} is not built yet (issue #{issue})"))
}
