//! Regenerates the checked-in protobuf code (message types with `bytes::Bytes` for every proto
//! `bytes` field, and gRPC server traits):
//! - `rust/proto/src/databricks.zerobus.rs` from `proto/zerobus_service.proto`;
//! - `rust/proto/src/arrow.flight.protocol.rs` from `rust/proto/flight.proto`.
//! protox compiles the .proto in Rust, so no protoc is needed. Run after changing a .proto:
//!   cargo run --manifest-path rust/tools/protogen/Cargo.toml

use std::path::Path;

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

/// Compiles `dir/file` and writes `package.rs` to `dest`, headed by the .proto's hash.
fn generate(dir: &Path, file: &str, package: &str, source: &str, dest: &Path, client: bool) -> Result<(), Box<dyn std::error::Error>> {
    let proto = std::fs::read(dir.join(file))?;
    let fds = protox::compile([file], [dir])?;
    let out = tempfile::tempdir()?;
    let mut config = prost_build::Config::new();
    // Records and descriptors are `bytes::Bytes`: cloning a record is a refcount increment.
    config.bytes(["."]);
    config.out_dir(out.path());
    tonic_prost_build::configure()
        .build_client(client)
        .build_server(true)
        .out_dir(out.path())
        .compile_fds_with_config(fds, config)?;
    let generated = std::fs::read_to_string(out.path().join(format!("{package}.rs")))?;
    let header = format!(
        "// Generated from {source} (FNV-1a 64 {:016x}) by rust/tools/protogen:\n\
         //   cargo run --manifest-path rust/tools/protogen/Cargo.toml\n\
         // Checked in so that builds need neither protox nor prost-build; a test fails when the\n\
         // .proto changed without regenerating.\n",
        fnv1a(&proto)
    );
    std::fs::write(dest, header + &generated)?;
    println!("wrote {}", dest.display());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..").canonicalize()?;
    generate(
        &repo.join("proto"),
        "zerobus_service.proto",
        "databricks.zerobus",
        "proto/zerobus_service.proto",
        &repo.join("rust/proto/src/databricks.zerobus.rs"),
        false,
    )?;
    generate(
        &repo.join("rust/proto"),
        "flight.proto",
        "arrow.flight.protocol",
        "rust/proto/flight.proto",
        &repo.join("rust/proto/src/arrow.flight.protocol.rs"),
        true,
    )?;
    Ok(())
}
