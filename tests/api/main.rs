//! One integration-test binary for all of ramp's API tests (one build, one link).

mod auth;
mod camunda_client;
mod change_log;
mod cli;
mod cors;
mod dev_mode;
mod e2e;
mod engine;
mod fault_proxy;
mod forms;
mod grpc_web;
mod grpcurl;
mod health;
mod helpers;
mod http_fault;
mod keys;
mod limits;
mod migrations;
mod oidc;
mod processes;
mod reflection;
mod secrets;
mod shutdown;
mod submit;
mod web;
mod withdrawal;
