//! One integration-test binary for all of ramp's API tests (one build, one link).

mod cli;
mod cors;
mod grpc_web;
mod grpcurl;
mod health;
mod helpers;
mod migrations;
mod reflection;
mod shutdown;
mod unbuilt;
