// Generates the Zerobus message types and the gRPC server trait from proto/zerobus_service.proto.
// protox compiles the .proto in Rust, so no protoc is needed on the build machine.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../../proto";
    println!("cargo:rerun-if-changed={proto_dir}/zerobus_service.proto");
    let fds = protox::compile(["zerobus_service.proto"], [proto_dir])?;
    let mut config = prost_build::Config::new();
    // Every proto `bytes` field (records, descriptor) is generated as `bytes::Bytes`:
    // cloning a record is a refcount increment, never a copy.
    config.bytes(["."]);
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}
