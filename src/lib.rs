//! ramp: the gRPC backend between Camunda 7 processes and the people who fill their
//! forms. `main.rs` only parses the command line; everything lives here.

pub mod admin;
pub mod api;
pub mod auth;
pub mod camunda;
pub mod codec;
pub mod config;
pub mod cutoff;
pub mod delivery;
pub mod deploy;
pub mod email;
pub mod forms;
pub mod ids;
pub mod json;
pub mod metrics;
pub mod middleware;
pub mod notify;
pub mod ops;
pub mod ownership;
pub mod paging;
pub mod processes;
pub mod retention;
pub mod server;
pub mod signal;
pub mod store;
pub mod telemetry;
pub mod usertasks;
pub mod watched;
pub mod worker;

pub mod proto {
    //! Types and services generated from `proto/ramp/v1` by `build.rs`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("ramp.v1");

    /// The encoded file descriptor set of ramp's protos, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ramp_descriptor");
}
