//! Generates the gRPC types and services from `proto/`, with protoc from the
//! `protoc-bin-vendored` crate so that no system protoc is needed, and writes the file
//! descriptor set that server reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/ramp/v1/process.proto",
        "proto/ramp/v1/process_service.proto",
        "proto/ramp/v1/form.proto",
        "proto/ramp/v1/form_service.proto",
        "proto/ramp/v1/admin_service.proto",
    ];
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        // A small first buffer per stream instead of tonic's 8 KiB (see src/codec.rs).
        .codec_path("crate::codec::CompactCodec")
        .file_descriptor_set_path(out_dir.join("ramp_descriptor.bin"))
        .compile_with_config(config, &protos, &["proto"])?;

    println!("cargo:rerun-if-changed=proto");
    // refinery embeds migrations/ at compile time, but the compiler cannot see a
    // file added there: rebuilding when it changes keeps the binary's migrations
    // those of the tree.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
