//! Generates the Rust code of the `cauda.v1` protos with no system `protoc`: `protox` (pure Rust)
//! parses the files into a descriptor set, `tonic-prost-build` generates messages, clients and
//! servers from it, and the encoded descriptor set is written for gRPC reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "cauda/v1/common.proto",
    "cauda/v1/cauda.proto",
    "cauda/v1/worker.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("cauda_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
