//! Generates the gRPC types and services from `proto/`, with protoc from the
//! `protoc-bin-vendored` crate so that no system protoc is needed, and writes the file
//! descriptor set that server reflection serves; and records the commit the binary is
//! built from, for `ramp --version`.

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

    // Not a RAMP_ name: cargo also sets this variable when it runs the tests, and
    // ramp refuses a RAMP_ variable that is not one of its settings.
    println!("cargo:rustc-env=BUILD_COMMIT={}", commit());
    Ok(())
}

/// The commit being built: `SOURCE_COMMIT` when set (a build from an exported tree),
/// else git's HEAD in release builds, else "unknown" (a copy without .git, no git, or
/// a debug build: watching HEAD there would rebuild the crate on every commit).
fn commit() -> String {
    println!("cargo:rerun-if-env-changed=SOURCE_COMMIT");
    if let Ok(commit) = std::env::var("SOURCE_COMMIT") {
        return commit;
    }
    if std::env::var("PROFILE").as_deref() != Ok("release") {
        return "unknown".to_owned();
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|out| out.trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_owned();
    };
    // Build again when HEAD moves: HEAD itself, the branch it names, packed refs.
    // Only files that exist (cargo reruns on every build for one that does not).
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        let path = git(&["rev-parse", "--git-path", &name]);
        if let Some(path) = path.filter(|path| std::path::Path::new(path).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    commit
}
