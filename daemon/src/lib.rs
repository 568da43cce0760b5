//! The daemon's library: the domain model of experiments and runs, the store, the scheduling
//! policy, the daemon core, its gRPC adapters and its config. The binary in `main.rs` is a thin
//! command-line edge over it.

pub mod config;
pub mod core;
pub mod grpc;
pub mod model;
pub mod scheduler;
pub mod store;
