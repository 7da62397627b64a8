//! One integration-test binary for all of ramp's API tests (one build, one link).

mod auth;
mod cli;
mod cors;
mod dev_mode;
mod grpc_web;
mod grpcurl;
mod health;
mod helpers;
mod keys;
mod limits;
mod migrations;
mod oidc;
mod reflection;
mod secrets;
mod shutdown;
mod unbuilt;
