//! The daemon's library: the domain model of experiments and runs, the store, the scheduling
//! policy, GPU discovery, the daemon core, its gRPC adapters, the process executor, the worker
//! side of an attempt (engine runs, and command runs: `command`), the Prometheus endpoint, the
//! watched folders and the config. The binary
//! in `main.rs` is a thin command-line edge over it.

pub mod command;
pub mod config;
pub mod core;
pub mod executor;
pub mod folders;
pub mod gpu;
pub mod grpc;
pub mod metrics;
pub mod model;
pub mod node;
pub mod run_config;
pub mod scheduler;
pub mod store;
pub mod worker;
