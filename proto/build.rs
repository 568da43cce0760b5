//! Generates the Rust code of the `cauda.v1` protos with no system `protoc`: `protox` (pure Rust)
//! parses the files into a descriptor set, `tonic-prost-build` generates messages, clients and
//! servers from it, the encoded descriptor set is written for gRPC reflection, and `pbjson-build`
//! generates serde for every message from the same descriptors: the proto3 JSON mapping (enum
//! values by name, 64-bit integers as strings), with the `.proto` field names and every field
//! written, which is what the `cauda` CLI's JSON outputs print.

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
    let descriptors = fds.encode_to_vec();
    std::fs::write(out_dir.join("cauda_v1_descriptor.bin"), &descriptors)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .preserve_proto_field_names()
        .emit_fields()
        .ignore_unknown_fields()
        .build(&[".cauda.v1"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
