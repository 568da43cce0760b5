//! cauda's gRPC API, generated from `proto/cauda/v1/*.proto` at build time: the public `Cauda`
//! service (the `cauda` CLI's), the internal `Worker` service (worker process to daemon), and
//! the messages they share. The daemon implements the servers; this crate holds no logic beyond
//! the small helpers of its wire conventions (spec errors in statuses, missing per-class
//! accuracies, the bearer token every call carries, digests as hex).

mod bearer;
mod hex;
mod per_class;
mod spec_error;

/// Package `cauda.v1`: messages (each `serde::Serialize` and `Deserialize` in the proto3 JSON
/// mapping, with the `.proto` field names), `cauda_client`/`cauda_server` and
/// `worker_client`/`worker_server`.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    missing_docs,
    unused_qualifications
)]
pub mod v1 {
    tonic::include_proto!("cauda.v1");
    include!(concat!(env!("OUT_DIR"), "/cauda.v1.serde.rs"));
}

pub use bearer::{AUTHORIZATION, Bearer, TokenNotAscii};
pub use hex::hex;
pub use per_class::{per_class_from_wire, per_class_to_wire};
pub use spec_error::{spec_error_from_status, spec_error_status};

/// The encoded `FileDescriptorSet` of the `cauda.v1` files (with source comments), for a gRPC
/// reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cauda_v1_descriptor.bin"));

/// Chunks of a checkpoint stream carry at most this many bytes (1 MiB).
pub const MAX_CHUNK_BYTES: usize = 1 << 20;
